"""OrthoGrad (chapter 07): the update rule, its scopes and modes, the first-order guarantee, the diagnostics."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from unlearnlib import UnlearnError
from unlearnlib.data import make_task
from unlearnlib.grads import (flatten_batched, loss_grad, per_sample_grads, per_sample_grads_loop,
                              project_orthogonal, trainable, unflatten)
from unlearnlib.methods import get_method
from unlearnlib.methods.orthogonal import orthogonal_direction, orthograd
from unlearnlib.models import make_model

from conftest import same_state, state_of
from errormodel import gradient_rtol, near_kink, relative_errors


@pytest.fixture(scope="module")
def small_task(data):
    """Class-wise forgetting of digit 3 with only 40 forget images (so a full forget batch is cheap)."""
    task = make_task(data, "class", forget_class=3, seed=0)
    task = copy.copy(task)
    task.forget_idx = task.forget_idx[:40]
    return task


@pytest.fixture(scope="module")
def cnn(data):
    return make_model("cnn", data.input_shape, data.num_classes, seed=0)


def _flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _manual(model0, xf, yf, xr, yr, steps, lr, alpha, mode, scope):
    """θ ← θ − η [α ḡ_r − (1 − α) g_u^⊥] with plain SGD, written out (chapter 07, §7.4)."""
    model = copy.deepcopy(model0).train()
    params = trainable(model)
    sizes = [p.numel() for p in params.values()]
    for _ in range(steps):
        g_u = loss_grad(model, xf, yf)
        G = flatten_batched(per_sample_grads(model, xr, yr))
        g_bar = G.mean(0)
        basis = G if mode == "per_sample" else g_bar[None]
        blocks = zip(g_u.split(sizes), basis.split(sizes, dim=1)) if scope == "tensor" else [(g_u, basis)]
        g_perp = torch.cat([project_orthogonal(a, b) for a, b in blocks])
        d = alpha * g_bar - (1 - alpha) * g_perp
        with torch.no_grad():
            for p, dp in zip(params.values(), unflatten(d, params).values()):
                p.sub_(lr * dp)
    return model


@pytest.mark.parametrize("mode,scope,alpha", [("per_sample", "global", 0.5), ("per_sample", "tensor", 0.5),
                                              ("mean", "global", 0.5), ("per_sample", "global", 0.0)])
def test_library_step_is_the_update_rule(small_task, cnn, mode, scope, alpha):
    # Full batches: the whole (shortened) forget set and a fixed retain subset, so the order in which the library
    # draws them does not matter; only these retain samples may be used (retain_positions).
    pos = torch.arange(0, 400, 25)                                       # 16 retain samples
    xr, yr = small_task.x_retain[pos], small_task.y_retain[pos]
    ours = _manual(cnn, small_task.x_forget, small_task.y_forget, xr, yr, steps=3, lr=0.05, alpha=alpha,
                   mode=mode, scope=scope)
    lib = orthograd(cnn, small_task, steps=3, lr=0.05, alpha=alpha, mode=mode, scope=scope, batch_size=64,
                    retain_positions=pos, stop_at=None)
    theta0, a, b = _flat_params(cnn), _flat_params(ours), _flat_params(lib)
    # Both run the same kernels on the same full batches; they differ only in how the SGD step is applied, so the
    # difference, relative to how far the run moved, is far inside the error model of 3 steps of gradients
    # (tests/errormodel.py). Planted: one step with the sign of the update flipped moves θ elsewhere by O(1).
    moved = (b - theta0).norm()
    assert moved > 1e-3                                                 # it moved: the comparison is not vacuous
    rtol = 3 * gradient_rtol(cnn, xr)
    assert (a - b).norm() / moved < rtol
    wrong = _manual(cnn, small_task.x_forget, small_task.y_forget, xr, yr, steps=3, lr=0.05, alpha=-alpha - 0.5,
                    mode=mode, scope=scope)
    assert (_flat_params(wrong) - b).norm() / moved > rtol


def test_loop_and_vmap_give_the_same_steps(small_task, cnn, monkeypatch):
    # Step by step: at the parameters and on the batch of every step of the loop run, the vmap gives the same
    # per-sample gradients up to the error model. (Two whole runs are not comparable this way: the two kernels
    # round differently, and a ReLU unit within rounding distance of its kink makes the runs part for good.)
    # Planted errors of this comparison are tested in tests/test_grads.py.
    from unlearnlib.methods import orthogonal

    errors = []

    def loop_and_compare(model, x, y, *args, **kwargs):
        loop = per_sample_grads_loop(model, x, y, *args, **kwargs)
        vmap = per_sample_grads(model, x, y, *args, **kwargs)
        rtol = gradient_rtol(model, x[:1])
        # A sample with a ReLU input within rounding distance of 0 has two right answers (errormodel.near_kink):
        # with oneDNN off, one of the second step's samples has an input of 2e-7 and its gradients differ by 4e-2.
        keep = ~near_kink(model, x, rtol)
        assert keep.sum() >= len(y) // 2, "too few samples away from a kink to compare"
        errors.append((relative_errors(flatten_batched(vmap), flatten_batched(loop))[keep].max().item(), rtol))
        return loop

    monkeypatch.setattr(orthogonal, "per_sample_grads_loop", loop_and_compare)
    out = orthograd(cnn, small_task, per_sample="loop", steps=3, lr=0.05, batch_size=16, stop_at=None, seed=1)
    assert len(errors) == 3                                              # the loop option ran the loop, every step
    assert all(err < rtol for err, rtol in errors), errors
    assert (_flat_params(out) - _flat_params(cnn)).abs().max() > 1e-4


def test_does_not_mutate_its_input_and_is_registered(small_task, cnn):
    before = state_of(cnn)
    out = get_method("orthograd")(cnn, small_task, steps=2, stop_at=None)
    assert same_state(before, state_of(cnn)) and not same_state(before, state_of(out))
    assert not out.training


def test_history_records_the_preserved_signal_ratio(small_task, cnn):
    pos = torch.arange(0, 400, 25)
    hist: list = []
    log: list = []
    orthograd(cnn, small_task, steps=4, lr=0.05, batch_size=64, retain_positions=pos, stop_at=None, history=hist,
              log=log)
    assert len(hist) == 4 == log[-1]["step"] and all(isinstance(h, float) for h in hist)
    assert all(0 < h <= 1 + 1e-6 for h in hist)
    # The first step uses θ0 and the full batches: ρ = ‖g_u^⊥‖ / ‖g_u‖ computed by hand.
    g_u = loss_grad(cnn, small_task.x_forget, small_task.y_forget)
    G = flatten_batched(per_sample_grads(cnn, small_task.x_retain[pos], small_task.y_retain[pos]))
    assert hist[0] == pytest.approx((project_orthogonal(g_u, G).norm() / g_u.norm()).item(), rel=1e-4)
    # An existing list is extended, not replaced.
    orthograd(cnn, small_task, steps=2, batch_size=64, retain_positions=pos, stop_at=None, history=hist)
    assert len(hist) == 6


def test_preserved_ratio_ordering_tensor_global_mean(data, cnn):
    x, y = data.x_train[:32], data.y_train[:32]
    g_u = loss_grad(cnn, data.x_train[500:540], data.y_train[500:540])
    G = flatten_batched(per_sample_grads(cnn, x, y))
    sizes = [p.numel() for p in trainable(cnn).values()]
    rho = {s: (orthogonal_direction(g_u, G, sizes, s).norm() / g_u.norm()).item() for s in ("tensor", "global")}
    rho["mean"] = (orthogonal_direction(g_u, G.mean(0, keepdim=True), sizes, "global").norm() / g_u.norm()).item()
    # Nested subspaces: per-tensor constraints ⊇ global ⊇ the single mean constraint.
    assert rho["tensor"] < rho["global"] < rho["mean"] <= 1 + 1e-6


def test_tensor_scope_is_blockwise_projection_and_zeroes_spanned_blocks():
    gen = torch.Generator().manual_seed(0)
    sizes = [50, 6, 12, 3]
    G = torch.randn(8, sum(sizes), generator=gen, dtype=torch.float64)
    G[:, 56:68] = G[:3, 56:68].repeat(3, 1)[:8]       # block of 12 with only rank 3 although B = 8 < 12
    g = torch.randn(sum(sizes), generator=gen, dtype=torch.float64)
    out = orthogonal_direction(g, G, sizes, "tensor").split(sizes)
    for blk, gb, Gb, size in zip(out, g.split(sizes), G.split(sizes, dim=1), sizes):
        torch.testing.assert_close(blk, project_orthogonal(gb, Gb))
        assert (Gb @ blk).abs().max() < 1e-10                           # orthogonal to every piece
        spanned = torch.linalg.matrix_rank(Gb) == size
        assert (blk.norm() < 1e-10) == bool(spanned)
    assert [bool(torch.linalg.matrix_rank(Gb) == s) for Gb, s in zip(G.split(sizes, dim=1), sizes)] == \
        [False, True, False, True]
    glob = orthogonal_direction(g, G, sizes, "global")
    assert (G @ glob).abs().max() < 1e-10 and all(b.norm() > 1e-3 for b in glob.split(sizes))


def test_first_order_guarantee_holds_in_both_scopes(data):
    model = make_model("cnn", data.input_shape, data.num_classes, seed=3).double()
    xr, yr = data.x_train[:16].double(), data.y_train[:16]
    g_u = loss_grad(model, data.x_train[200:232].double(), data.y_train[200:232])
    G = flatten_batched(per_sample_grads(model, xr, yr))
    sizes = [p.numel() for p in trainable(model).values()]
    params = trainable(model)

    def largest_change(d, eta):
        before = F.cross_entropy(model(xr), yr, reduction="none")
        with torch.no_grad():
            for p, dp in zip(params.values(), unflatten(eta * d, params).values()):
                p.add_(dp)
            after = F.cross_entropy(model(xr), yr, reduction="none")
            for p, dp in zip(params.values(), unflatten(eta * d, params).values()):
                p.sub_(dp)
        return (after - before).abs().max().item()

    eta = 1e-5 / g_u.norm().item()
    plain = largest_change(g_u, eta) / largest_change(g_u, eta / 2)
    assert 1.9 < plain < 2.1
    for scope in ("global", "tensor"):
        d = orthogonal_direction(g_u, G, sizes, scope)
        assert 3.5 < largest_change(d, eta) / largest_change(d, eta / 2) < 4.5, scope


@pytest.mark.parametrize("kwargs,match", [({"mode": "median"}, "mode"), ({"scope": "layer"}, "scope"),
                                          ({"alpha": 1.0}, "alpha"), ({"alpha": -0.1}, "alpha"),
                                          ({"per_sample": "jacrev"}, "per_sample")])
def test_bad_hyperparameters_are_refused_before_any_work(small_task, cnn, kwargs, match):
    with pytest.raises(UnlearnError, match=match) as info:
        orthograd(cnn, small_task, steps=1, **kwargs)
    assert "\n" not in str(info.value)


def test_orthogonal_direction_checks_its_input():
    with pytest.raises(UnlearnError, match="scope"):
        orthogonal_direction(torch.zeros(4), torch.zeros(2, 4), [4], "layer")
    with pytest.raises(UnlearnError, match="sizes"):
        orthogonal_direction(torch.zeros(4), torch.zeros(2, 4), [3], "tensor")
