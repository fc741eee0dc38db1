"""The gradient tests again, with PyTorch's oneDNN kernels switched the other way.

Which convolution kernels run depends on the CPU (oneDNN picks by instruction set), so a tolerance that holds
with one kernel family can fail on another machine. This test reruns the per-sample gradient tests of
tests/test_grads.py in a subprocess with ``UNLEARN_ONEDNN`` flipped (off when this process has it on, on when
off), so that every CI run checks both kernel families without a second CI job. Switching oneDNN off also asks ATen
and MKL for their AVX2 kernels, the stronger stand-in for another CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                    reason="this torch has no oneDNN kernels: there is no other kernel family to switch to")
def test_gradient_tests_pass_with_onednn_switched():
    flipped = "1" if not torch.backends.mkldnn.enabled else "0"
    env = {**os.environ, "UNLEARN_ONEDNN": flipped, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if flipped == "0":   # the stronger stand-in for another machine: AVX2 kernels in ATen and MKL as well
        env.update(ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    # The per-sample tests and their planted errors, on the untrained models of the module's fixture (the test on
    # the trained CNN needs the session's trained model, which the subprocess would have to train again).
    args = [sys.executable, "-m", "pytest", "tests/test_grads.py", "-q", "-p", "no:cacheprovider", "-k",
            "per_sample and not real_per_sample or mean_tolerance", "-W", "ignore::DeprecationWarning"]
    run = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"UNLEARN_ONEDNN={flipped}:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout and " failed" not in run.stdout
