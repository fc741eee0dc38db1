#!/usr/bin/env bash
# The committed results of chapter 11 (and the tables later chapters load): ten seeds of the book's methods on
# four scenarios, with the noise floor, the paired tests and the relearning attack; and the per-example audits
# (U-LiRA, the competition's score) of a few methods on five seeds. They are written into unlearnlib/results/,
# which the package ships, so that a chapter run from an installed wheel finds them (unlearnlib.records).
# Usage, from the repository root, after `make venv`:
#     bash benchmarks/run_evaluation.sh             (about 25 min for the tables, 50 min more for the audits,
#                                                    on one core of a laptop-class CPU)
#     AUDITS=0 bash benchmarks/run_evaluation.sh    (the tables only)
# One torch thread per run; the runs share the model cache ($UNLEARN_CACHE), so shadow models and oracles train once.
set -euo pipefail
OUT=${OUT:-unlearnlib/results}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 UNLEARN_PROFILE=ci PYTHONUNBUFFERED=1
bench() { "$PY" -m unlearnlib.bench --device cpu "$@"; }
EVAL=ga,neggrad_plus,finetune,random_label,scrub,salun,l1_sparse,pcgrad,unilateral_surgery,implicit_surgery,orthograd,ltu,lur,masked:ga,masked:neggrad_plus
AUDITED=ga,neggrad_plus,finetune,pcgrad,orthograd
for spec in "class --forget-class 3:class3" "random --forget-fraction 0.1:random10" \
            "mislabeled --forget-fraction 0.1:mislabeled10" "memorized --forget-fraction 0.1:memorized10"; do
    args=${spec%%:*}; name=${spec##*:}
    # shellcheck disable=SC2086  # $args holds several options on purpose
    bench --seeds 10 --scenario $args --methods "$EVAL" --audit relearn --out "$OUT/eval_$name.json" 2>&1 \
        | tee "benchmarks/cpu/eval_$name.log"
done
if [ "${AUDITS:-1}" != 0 ]; then
    for spec in "class --forget-class 3:class3" "memorized --forget-fraction 0.1:memorized10" \
                "mislabeled --forget-fraction 0.1:mislabeled10"; do
        args=${spec%%:*}; name=${spec##*:}
        # shellcheck disable=SC2086
        bench --seeds 5 --scenario $args --methods "$AUDITED" --audit ulira,competition --out "$OUT/audit_$name.json" \
            2>&1 | tee "benchmarks/cpu/audit_$name.log"
    done
fi
