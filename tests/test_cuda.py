"""The library on a real GPU: every registered method, per-sample gradients, the QR projection and one chapter.

Runs wherever CUDA is available and is skipped elsewhere; it imports and collects on any machine. The CPU-only
suite already proves, on the meta device, that no CPU tensor meets a device tensor and that no method waits for
the device once per step (tests/test_device_clean.py); this file checks that the numbers are right on CUDA too.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from errormodel import gradient_rtol, relative_errors

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="CUDA is not available on this machine: the GPU tests run only where it is")

REPO = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def cuda_setup():
    from unlearnlib.data import load_dataset, make_task
    from unlearnlib.models import make_model

    data = load_dataset("digits")
    task = make_task(data, "class", forget_class=3, seed=0)
    model = make_model("cnn", data.input_shape, data.num_classes, seed=0)
    return data, task, model


def _names():
    from unlearnlib.methods import REGISTRY

    return list(REGISTRY)


@pytest.mark.parametrize("name", _names())
def test_every_method_runs_on_cuda(name, cuda_setup, cfg):
    from unlearnlib.methods import get_method

    data, task, model = cuda_setup
    model = model.to(CUDA)
    kw = dict(train_config=replace(cfg, epochs=1)) if name == "retrain" else dict(steps=3, stop_at=None)
    out = get_method(name)(model, task.to(CUDA), seed=0, **kw)
    params = list(out.parameters())
    assert all(p.device.type == "cuda" for p in params)
    assert all(torch.isfinite(p).all() for p in params)
    if name != "retrain":   # it moved
        assert any(not torch.equal(p, q) for p, q in zip(params, model.parameters()))


@pytest.mark.parametrize("name,shape,b", [("cnn", (1, 8, 8), 16), ("resnet18", (3, 32, 32), 3)])
def test_per_sample_grads_vmap_equals_loop_on_cuda(name, shape, b):
    from unlearnlib.grads import flatten_batched, per_sample_grads, per_sample_grads_loop
    from unlearnlib.models import make_model

    model = make_model(name, shape, 10, seed=0).to(CUDA)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(b, *shape, generator=g).to(CUDA), torch.randint(0, 10, (b,), generator=g).to(CUDA)
    # TF32 would change the error model (eps 2^-10 instead of 2^-23): the comparison is of float32 arithmetic.
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        vm = flatten_batched(per_sample_grads(model, x, y))
        lp = flatten_batched(per_sample_grads_loop(model, x, y))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert vm.device.type == "cuda"
    err = relative_errors(vm, lp)
    rtol = gradient_rtol(model, x[:1])
    assert err.max().item() < rtol
    assert relative_errors(vm.roll(1, 0), lp).max().item() > rtol     # planted: samples shifted by one


def test_project_orthogonal_on_cuda():
    from unlearnlib.grads import project_orthogonal

    gen = torch.Generator().manual_seed(0)
    G = torch.randn(6, 500, generator=gen).to(CUDA)
    g = torch.randn(500, generator=gen).to(CUDA)
    for method in ("qr", "lstsq"):
        out = project_orthogonal(g, G, method=method)
        assert out.device.type == "cuda"
        rel = (G.double() @ out.double()).abs() / (G.double().norm(dim=1) * g.double().norm())
        # Householder QR is backward stable: residual ~ eps32 · sqrt(P) ≈ 3e-6 for P = 500; 1e-4 leaves room for
        # the pseudo-inverse route, whose error grows with the condition number of G (here ~ 1.5).
        assert rel.max().item() < 1e-4, method
        ref = project_orthogonal(g.cpu().double(), G.cpu().double())
        assert (out.cpu().double() - ref).norm() < 1e-4 * g.norm().item()


def test_chapter_02_executes_on_cuda(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    jupytext = pytest.importorskip("jupytext")
    pytest.importorskip("ipykernel")
    nb = jupytext.read(REPO / "notebooks" / "02_first_order_baselines.py")
    env = {"UNLEARN_DEVICE": "cuda", "UNLEARN_PROFILE": "ci", "MPLBACKEND": "Agg",
           "UNLEARN_CACHE": str(tmp_path / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)   # the kernel inherits the environment
    try:
        nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
