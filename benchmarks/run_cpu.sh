#!/usr/bin/env bash
# The CPU measurements recorded in benchmarks/README.md: the method tables (digits, ci profile, 3 seeds) and the
# step-cost ratios. Usage, from the repository root, after `make venv`:
#     bash benchmarks/run_cpu.sh            (writes benchmarks/cpu/*.json and the logs beside them)
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
"$PY" -m unlearnlib.bench --step-cost --device cpu --model cnn --batch-size 32 --out "$OUT/step_cost_cnn_b32.json" 2>&1 \
    | tee "$OUT/step_cost_cnn_b32.log"
