#!/usr/bin/env bash
# The CPU measurements recorded in benchmarks/README.md: the method tables (digits, ci profile, 3 seeds) and the
# step-cost ratios. Usage, from the repository root, after `make venv`:
#     bash benchmarks/run_cpu.sh            (writes benchmarks/cpu/*.json and the logs beside them)
#     VERDICT=1 bash benchmarks/run_cpu.sh  (also Part III: the tuned values, the ten-seed benchmark, the stress set
#                                            and the cost curve, into unlearnlib/tuned and unlearnlib/results)
#     LM=1 bash benchmarks/run_cpu.sh       (also Part IV: the language-model sweep and the facts benchmark)
# One torch thread, so that the step-cost ratios do not depend on how many cores happen to be free.
set -euo pipefail
OUT=${OUT:-benchmarks/cpu}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 UNLEARN_PROFILE=ci PYTHONUNBUFFERED=1
bench() { "$PY" -m unlearnlib.bench --device cpu --seeds 3 "$@"; }
PART1=retrain,finetune,ga,neggrad_plus,random_label,scrub,salun,l1_sparse
SURGERY=retrain,ga,neggrad_plus,pcgrad,unilateral_surgery,unilateral_surgery_rl,implicit_surgery,implicit_surgery_rl,orthograd
META=retrain,ga,neggrad_plus,ltu,ltu_ascent,lur,masked:ga,masked:neggrad_plus
bench --scenario class --forget-class 3 --methods "$PART1" --out "$OUT/part1_class3.json" 2>&1 | tee "$OUT/part1_class3.log"
for name in surgery meta; do
    methods=$([ $name = surgery ] && echo "$SURGERY" || echo "$META")
    bench --scenario class --forget-class 3 --methods "$methods" --out "$OUT/${name}_class3.json" 2>&1 | tee "$OUT/${name}_class3.log"
    bench --scenario random --forget-fraction 0.1 --methods "$methods" --out "$OUT/${name}_random10.json" 2>&1 | tee "$OUT/${name}_random10.log"
done
"$PY" -m unlearnlib.bench --step-cost --device cpu --model cnn --batch-size 32 --out unlearnlib/results/step_cost_cnn_b32.json 2>&1 \
    | tee "$OUT/step_cost_cnn_b32.log"

# Part III (chapter 12), with VERDICT=1: the oracle-free tuning protocol on every setting the book reports (the
# values land in unlearnlib/tuned/, which the package ships and the benchmark applies by default), then every
# registered method on the four scenarios over ten seeds with the noise floor, the paired tests and the relearning
# attack (unlearnlib/results/bench_*.json, which chapter 12 loads), and the stress set tuned and benchmarked.
# About 25 minutes of tuning and 40 of benchmark on one core; TUNE=0 skips the tuning and uses the stored values.
if [ "${VERDICT:-0}" = 1 ]; then
    TUNED=unlearnlib/tuned RESULTS=unlearnlib/results
    mkdir -p "$TUNED" "$RESULTS"
    tune() { "$PY" -m unlearnlib.bench --device cpu --tune "$@"; }
    if [ "${TUNE:-1}" = 1 ]; then
        tune --scenario class --forget-class 3 --out "$TUNED/digits-class.json" 2>&1 | tee "$OUT/tune_digits-class.log"
        for sc in random mislabeled memorized; do
            tune --scenario $sc --forget-fraction 0.1 --out "$TUNED/digits-$sc.json" 2>&1 | tee "$OUT/tune_digits-$sc.log"
        done
        tune --scenario class --forget-class 3 --retain-fraction 0.05 --out "$TUNED/digits-class-retain5.json" 2>&1 \
            | tee "$OUT/tune_digits-class-retain5.log"
        # The stress set's models take a minute each to train: one tuning seed.
        tune --dataset digits-stress --scenario class --forget-class 3 --seeds 1 \
            --out "$TUNED/digits-stress-class.json" 2>&1 | tee "$OUT/tune_digits-stress-class.log"
    fi
    for spec in "class --forget-class 3:class3" "random --forget-fraction 0.1:random10" \
                "mislabeled --forget-fraction 0.1:mislabeled10" "memorized --forget-fraction 0.1:memorized10"; do
        args=${spec%%:*}; name=${spec##*:}
        # shellcheck disable=SC2086  # $args holds several options on purpose
        "$PY" -m unlearnlib.bench --device cpu --seeds 10 --scenario $args --audit relearn \
            --out "$RESULTS/bench_$name.json" 2>&1 | tee "$OUT/bench_$name.log"
    done
    # A 5 % retain subset: every method at the values tuned for it, then the defaults of the methods that chapters
    # 07 and 08 tuned for the subset themselves (the same seeds and subsets, to be paired with the former).
    "$PY" -m unlearnlib.bench --device cpu --seeds 10 --scenario class --forget-class 3 --retain-fraction 0.05 \
        --audit relearn --out "$RESULTS/bench_class3_retain5.json" 2>&1 | tee "$OUT/bench_class3_retain5.log"
    "$PY" -m unlearnlib.bench --device cpu --seeds 10 --scenario class --forget-class 3 --retain-fraction 0.05 \
        --tuned none --methods neggrad_plus,orthograd,ltu_ascent,ltu \
        --out "$RESULTS/bench_class3_retain5_defaults.json" 2>&1 | tee "$OUT/bench_class3_retain5_defaults.log"
    # Both class-wise settings again with oneDNN off before training, every model trained afresh on the other
    # kernels in a cache of its own: how far another CPU moves the verdicts (chapters 12 and 13).
    OFF_CACHE=$(mktemp -d)
    off() { UNLEARN_ONEDNN=0 UNLEARN_CACHE="$OFF_CACHE" "$PY" -m unlearnlib.bench --device cpu --seeds 10 \
        --scenario class --forget-class 3 "$@"; }
    off --audit relearn --out "$RESULTS/bench_class3_onednn_off.json" 2>&1 | tee "$OUT/bench_class3_onednn_off.log"
    off --retain-fraction 0.05 --audit relearn --out "$RESULTS/bench_class3_retain5_onednn_off.json" 2>&1 \
        | tee "$OUT/bench_class3_retain5_onednn_off.log"
    off --retain-fraction 0.05 --tuned none --methods neggrad_plus,orthograd,ltu_ascent,ltu \
        --out "$RESULTS/bench_class3_retain5_defaults_onednn_off.json" 2>&1 \
        | tee "$OUT/bench_class3_retain5_defaults_onednn_off.log"
    # The stress set twice: the registry's defaults without the guard (what the defaults do on harder data), then
    # the tuned values with the guard.
    "$PY" -m unlearnlib.bench --device cpu --dataset digits-stress --scenario class --forget-class 3 --seeds 2 \
        --tuned none --guard none --out "$RESULTS/stress_class3_defaults.json" 2>&1 \
        | tee "$OUT/stress_class3_defaults.log"
    "$PY" -m unlearnlib.bench --device cpu --dataset digits-stress --scenario class --forget-class 3 --seeds 2 \
        --out "$RESULTS/bench_stress_class3.json" 2>&1 | tee "$OUT/bench_stress_class3.log"
    # The cost against the size of the retain set, on the stress set at its tuned values (about 40 minutes).
    "$PY" benchmarks/cost_curve.py --seeds 0,1
fi

# Part IV (chapters 14-15), with LM=1: the defaults' sweep of the language-model methods on the held-out seeds, then
# every language method on the facts (10 % of the people forgotten) over five seeds (about 15 minutes on one core).
if [ "${LM:-0}" = 1 ]; then
    "$PY" -m unlearnlib.lm_bench --sweep --out unlearnlib/results/lm_sweep.json 2>&1 | tee "$OUT/lm_sweep.log"
    "$PY" -m unlearnlib.lm_bench --seeds 5 --profile ci --out unlearnlib/results/facts_forget10.json 2>&1 \
        | tee "$OUT/facts_forget10.log"
fi
