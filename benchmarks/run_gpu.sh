#!/usr/bin/env bash
# The GPU checks and measurements, as one script for a machine with CUDA and no network. At most 8 minutes: every
# step has its own time limit, and no step runs past a budget of BUDGET seconds (450 by default) from the start; a
# step the budget no longer reaches is recorded as skipped. The steps, most important first:
#   1. nvidia-smi and the torch/CUDA versions;
#   2. tests/test_cuda.py (every method, per-sample gradients, the projection, chapter 02 on the GPU),
#      tests/test_device_clean.py (devices and host syncs, on the meta device) and the GPU test of
#      tests/test_full_profile.py (the full profile's recipe trains ResNet-18 in mixed precision);
#   3. benchmark rows of the realistic track (benchmarks/realistic_rows.py): ResNet-18 on synthetic 32x32 images,
#      an original model and a retrain oracle trained with the full profile's recipe (crops and flips, mixed
#      precision) for 15 epochs, then ga, neggrad_plus, pcgrad, implicit_surgery, orthograd and masked:ga, each
#      timed and counted in passes against retraining, each in its own process with its own limit; the report
#      says whether every conflict-aware method unlearns in at most a tenth of the retraining time (a
#      measurement, not a check: the script does not fail when it does not hold);
#   4. the step-cost benchmark on the GPU, every per-sample route (per-layer, vmap; the Python loop for the CNN):
#      the CNN at B = 32 (digits) and ResNet-18 on 32x32 inputs at B = 32 and B = 128 (a synthetic .npz of random
#      images: time and memory do not depend on the pixel values), with the peak CUDA memory of each method;
#   5. one chapter (05) executed at ci sizes on the GPU.
# Usage, from the repository root of a copy of the working tree:
#     bash benchmarks/run_gpu.sh [--dry-run] [OUTDIR]   (or OUT=OUTDIR; default benchmarks/gpu: JSON, logs, device)
# --dry-run prints every step with its command and limit and runs nothing (no GPU needed; the tests use it).
# No virtual environment is needed: it uses the first python that imports torch ($PYTHON, .venv, python3,
# python), with the repository on PYTHONPATH instead of an install (pytest, jupytext, nbclient and ipykernel
# must be importable for steps 2 and 5). It stops at once, with a message, where CUDA is not available.
set -euo pipefail
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:-${OUT:-benchmarks/gpu}}
BUDGET=${BUDGET:-450}
START=$(date +%s)

PY=""
for cand in ${PYTHON:-} .venv/bin/python python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then PY=$cand; break; fi
done
if [ -z "$PY" ]; then echo "run_gpu.sh: no python with torch found (set PYTHON=...)" >&2; exit 2; fi
if [ "$DRY" = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "run_gpu.sh: CUDA is not available to $PY (torch $("$PY" -c 'import torch; print(torch.__version__)')):" \
         "this script is for a machine with an NVIDIA GPU; on a CPU use benchmarks/run_cpu.sh" >&2
    exit 3
fi

mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg UNLEARN_PROFILE=ci
export UNLEARN_DEVICE=cuda UNLEARN_CACHE=${UNLEARN_CACHE:-$(mktemp -d)/unlearn-cache}
LOG="$OUT/run_gpu.log"
: > "$LOG"
say() { echo "==> $* ($(( $(date +%s) - START )) s)" | tee -a "$LOG"; }
rc=0
STATUS=()   # "name=ok|failed|skipped" per step, for summary.json
record() { STATUS+=("$1=$2"); [ "$2" = ok ] || [ "$2" = planned ] || rc=1; }
# run_step NAME LIMIT COMMAND...: run COMMAND for at most LIMIT seconds, and never past the budget.
run_step() {
    local name=$1 limit=$2 left
    shift 2
    if [ "$DRY" = 1 ]; then
        printf 'step %-28s limit %4s s: %s\n' "$name" "$limit" "$*" | tee -a "$LOG"
        PLANNED=$(( PLANNED + limit )); record "$name" planned; return 0
    fi
    left=$(( START + BUDGET - $(date +%s) ))
    if [ "$left" -lt 10 ]; then say "$name: skipped, the time budget of $BUDGET s is spent"; record "$name" skipped
        return 0; fi
    [ "$limit" -le "$left" ] || limit=$left
    say "$name (limit $limit s)"
    if timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"; then record "$name" ok; else record "$name" failed; fi
}
PLANNED=0

say "device"
if [ "$DRY" = 0 ]; then
    { timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || timeout 30 nvidia-smi || true
      timeout 60 "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0))" || true
    } 2>&1 | tee "$OUT/device.txt" | tee -a "$LOG"
fi

run_step tests 150 "$PY" -m pytest tests/test_cuda.py tests/test_device_clean.py \
    tests/test_full_profile.py::test_mixed_precision_training_on_cuda -q -p no:cacheprovider \
    --junitxml="$OUT/tests.xml"

# Realistic rows: one process per step, so that each has its own limit; the models are shared through the cache.
ROWS="$OUT/realistic"
run_step rows_train 90 "$PY" benchmarks/realistic_rows.py --device cuda --out "$ROWS" train
for method in ga neggrad_plus pcgrad implicit_surgery orthograd masked:ga; do
    run_step "rows_$method" 40 "$PY" benchmarks/realistic_rows.py --device cuda --out "$ROWS" method "$method"
done
run_step rows_report 15 "$PY" benchmarks/realistic_rows.py --out "$ROWS" report

if [ "$DRY" = 0 ] && [ $(( START + BUDGET - $(date +%s) )) -ge 10 ]; then
timeout 60 "$PY" - "$OUT/synthetic32.npz" <<'PYEOF' || true   # a failure shows in the step-cost steps below
import sys
import numpy as np
r = np.random.default_rng(0)
np.savez(sys.argv[1], x_train=r.integers(0, 256, (2048, 32, 32, 3), dtype=np.uint8), y_train=r.integers(0, 10, 2048),
         x_test=r.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8), y_test=r.integers(0, 10, 256))
PYEOF
fi
# the per-sample methods and their bases; the [vmap] and [loop] variants are added by the benchmark itself
COST=ga,neggrad_plus,orthograd,masked:ga,masked:neggrad_plus
for spec in "cnn 32 digits 50" "resnet18 32 $OUT/synthetic32.npz 70" "resnet18 128 $OUT/synthetic32.npz 130"; do
    read -r model batch dataset limit <<< "$spec"
    run_step "step_cost_${model}_b${batch}" "$limit" "$PY" -m unlearnlib.bench --step-cost --device cuda \
        --model "$model" --batch-size "$batch" --dataset "$dataset" \
        --methods "$([ "$model" = cnn ] && echo "$COST" || echo ga,orthograd,masked:ga)" \
        --out "$OUT/step_cost_cuda_${model}_b${batch}.json"
done

cat > "$OUT/run_chapter.py" <<'PYEOF'
import sys, time
import jupytext, nbclient
nb = jupytext.read(sys.argv[1])
t = time.time()
nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
print(f"{sys.argv[1]} executed on the GPU in {time.time() - t:.0f} s")
PYEOF
run_step chapter_05 90 "$PY" "$OUT/run_chapter.py" notebooks/05_gradient_surgery.py

if [ "$DRY" = 1 ]; then
    echo "dry run: ${#STATUS[@]} steps, limits summing to $PLANNED s; the budget of $BUDGET s caps the whole run" \
         "(steps run in this order until it is spent)" | tee -a "$LOG"
    exit 0
fi
# One JSON that says where it ran and how each step ended (the step-cost and realistic JSONs hold the numbers).
timeout 60 "$PY" - "$OUT/summary.json" "$(( $(date +%s) - START ))" "${STATUS[@]}" <<'PYEOF' || rc=1
import json, sys, torch
out, seconds, steps = sys.argv[1], int(sys.argv[2]), dict(s.split("=", 1) for s in sys.argv[3:])
summary = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
           "seconds": seconds, "steps": steps}
json.dump(summary, open(out, "w"), indent=2)
print(json.dumps(summary))
PYEOF
say "done, exit $rc"
exit $rc
