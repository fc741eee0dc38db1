#!/usr/bin/env bash
# The GPU measurements recorded in benchmarks/README.md: step cost on CUDA and the full-profile benchmark.
# Usage: OUT=dir bash benchmarks/run_gpu.sh   (on a machine with CUDA; writes JSON and logs into $OUT)
set -euo pipefail
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 UNLEARN_CACHE=${UNLEARN_CACHE:-/tmp/unlearn-cache}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
SURGERY=ga,neggrad_plus,pcgrad,unilateral_surgery,implicit_surgery,orthograd
python3 -m unlearnlib.bench --step-cost --device cuda --model cnn --batch-size 32 --methods "$SURGERY" \
    --out "$OUT/step_cost_cuda_cnn_b32.json" 2>&1 | tee "$OUT/log_step_cost.txt"
python3 -m unlearnlib.bench --step-cost --device cuda --model resnet18 --batch-size 32 --methods "$SURGERY" \
    --out "$OUT/step_cost_cuda_resnet18_b32.json" 2>&1 | tee -a "$OUT/log_step_cost.txt"
for scenario in class random; do
    python3 -m unlearnlib.bench --profile full --device cuda --scenario $scenario --forget-class 3 \
        --forget-fraction 0.1 --out "$OUT/bench_full_$scenario.json" 2>&1 | tee "$OUT/log_bench_$scenario.txt"
done
