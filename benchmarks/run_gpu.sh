#!/usr/bin/env bash
# The GPU checks and measurements, as one script for a machine with CUDA and no network. At most 8 minutes:
# every step below has a time limit.
#   1. nvidia-smi and the torch/CUDA versions;
#   2. tests/test_cuda.py (every method, per-sample gradients, the projection, chapter 02 on the GPU) and
#      tests/test_device_clean.py (devices and host syncs, on the meta device);
#   3. one chapter (05) executed at ci sizes on the GPU;
#   4. the step-cost benchmark on the GPU, every per-sample route (per-layer, vmap; the Python loop for the CNN):
#      the CNN at B = 32 (digits) and ResNet-18 on 32x32 inputs at B = 32 and B = 128 (a synthetic .npz of random
#      images: time and memory do not depend on the pixel values), with the peak CUDA memory of each method.
# Usage, from the repository root of a copy of the working tree:
#     bash benchmarks/run_gpu.sh [OUTDIR]   (or OUT=OUTDIR; default benchmarks/gpu: JSON, logs, the device name)
# No virtual environment is needed: it uses the first python that imports torch ($PYTHON, .venv, python3,
# python), with the repository on PYTHONPATH instead of an install (pytest, jupytext, nbclient and ipykernel
# must be importable for steps 2 and 3). It stops at once, with a message, where CUDA is not available.
set -euo pipefail
OUT=${1:-${OUT:-benchmarks/gpu}}
mkdir -p "$OUT"
START=$(date +%s)

PY=""
for cand in ${PYTHON:-} .venv/bin/python python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then PY=$cand; break; fi
done
if [ -z "$PY" ]; then echo "run_gpu.sh: no python with torch found (set PYTHON=...)" >&2; exit 2; fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "run_gpu.sh: CUDA is not available to $PY (torch $("$PY" -c 'import torch; print(torch.__version__)')):" \
         "this script is for a machine with an NVIDIA GPU; on a CPU use benchmarks/run_cpu.sh" >&2
    exit 3
fi

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg UNLEARN_PROFILE=ci
export UNLEARN_DEVICE=cuda UNLEARN_CACHE=${UNLEARN_CACHE:-$(mktemp -d)/unlearn-cache}
LOG="$OUT/run_gpu.log"
: > "$LOG"
step() { echo "==> $* ($(( $(date +%s) - START )) s)" | tee -a "$LOG"; }
rc=0
STATUS=()   # "name=ok|failed" per step, for summary.json
record() { STATUS+=("$1=$2"); [ "$2" = ok ] || rc=1; }

step "device"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || nvidia-smi || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0))"
} 2>&1 | tee "$OUT/device.txt" | tee -a "$LOG"

step "tests: test_cuda.py and test_device_clean.py"
if timeout 130 "$PY" -m pytest tests/test_cuda.py tests/test_device_clean.py -q -p no:cacheprovider \
        --junitxml="$OUT/tests.xml" 2>&1 | tee -a "$LOG"; then record tests ok; else record tests failed; fi

step "chapter 05 at ci sizes on the GPU"
cat > "$OUT/run_chapter.py" <<'PYEOF'
import sys, time
import jupytext, nbclient
nb = jupytext.read(sys.argv[1])
t = time.time()
nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
print(f"{sys.argv[1]} executed on the GPU in {time.time() - t:.0f} s")
PYEOF
if timeout 90 "$PY" "$OUT/run_chapter.py" notebooks/05_gradient_surgery.py 2>&1 | tee -a "$LOG"; then
    record chapter_05 ok; else record chapter_05 failed; fi

step "step cost on the GPU"
"$PY" - "$OUT/synthetic32.npz" <<'PYEOF'
import sys
import numpy as np
r = np.random.default_rng(0)
np.savez(sys.argv[1], x_train=r.integers(0, 256, (2048, 32, 32, 3), dtype=np.uint8), y_train=r.integers(0, 10, 2048),
         x_test=r.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8), y_test=r.integers(0, 10, 256))
PYEOF
# the per-sample methods and their bases; the [vmap] and [loop] variants are added by the benchmark itself
COST=ga,neggrad_plus,orthograd,masked:ga,masked:neggrad_plus
for spec in "cnn 32 digits 50" "resnet18 32 $OUT/synthetic32.npz 70" "resnet18 128 $OUT/synthetic32.npz 130"; do
    set -- $spec
    if timeout "$4" "$PY" -m unlearnlib.bench --step-cost --device cuda --model "$1" --batch-size "$2" \
            --dataset "$3" --methods "$([ "$1" = cnn ] && echo "$COST" || echo ga,orthograd,masked:ga)" \
            --out "$OUT/step_cost_cuda_${1}_b${2}.json" 2>&1 | tee -a "$LOG"; then
        record "step_cost_${1}_b${2}" ok; else record "step_cost_${1}_b${2}" failed; fi
done

# One JSON that says where it ran and how each step ended (the step-cost JSONs hold the timings).
"$PY" - "$OUT/summary.json" "$(( $(date +%s) - START ))" "${STATUS[@]}" <<'PYEOF'
import json, sys, torch
out, seconds, steps = sys.argv[1], int(sys.argv[2]), dict(s.split("=", 1) for s in sys.argv[3:])
summary = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
           "seconds": seconds, "steps": steps}
json.dump(summary, open(out, "w"), indent=2)
print(json.dumps(summary))
PYEOF
step "done, exit $rc"
exit $rc
