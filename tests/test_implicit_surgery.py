"""Implicit gradient surgery (chapter 06): the dual step, its stability conditions, the ε of the official code,
one backward pass per step, and the library's method against a hand-written loop."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearnlib import UnlearnError, data, grads, models
from unlearnlib.diagnostics import count_passes
from unlearnlib.methods import get_method
from unlearnlib.methods.implicit import dual_step, eps_from_code_error, implicit_surgery


# ---------------------------------------------------------------------------------------------------------------
# The dual step on a quadratic toy with frozen gradients.
# ---------------------------------------------------------------------------------------------------------------

def _toy(curvature=0.0, n=12, seed=0):
    """ℓ_r(θ) = ⟨b, θ⟩ + ½ c‖θ‖² at θ0 = 0, and a forget gradient a that conflicts with g_r = b."""
    rng = np.random.default_rng(seed)
    a = torch.tensor(rng.normal(size=n))
    b = -0.7 * a + 0.4 * torch.tensor(rng.normal(size=n))
    assert a @ b < 0
    l_r = lambda th: b @ th + 0.5 * curvature * th @ th
    return a, b, l_r


def _frozen_dual(a, b, l_r, ratio, eps, lr, iters, momentum=0.0):
    """The implicit dual iteration with θ frozen at 0: each trial step is taken, measured and undone.
    With momentum μ, the trial step is the heavy-ball buffer b_k = μ b_{k-1} + d(λ_k) (chapter 06)."""
    beta = ratio / float(b @ b)
    lam, buf, seen = torch.tensor(0.0, dtype=a.dtype), torch.zeros_like(a), []
    theta0 = torch.zeros_like(a)
    for _ in range(iters):
        buf = momentum * buf + (a + lam * b)
        lam = dual_step(lam, l_r(theta0), l_r(theta0 - lr * buf), lr, eps, beta)
        seen.append(float(lam))
    return np.array(seen)


def test_dual_step_formula_and_projection():
    lam = torch.tensor(2.0)
    # retain loss fell by 1e-3 over a step of 1e-2: δ = 0.1 + ε
    out = dual_step(lam, torch.tensor(0.5), torch.tensor(0.499), lr=1e-2, eps=0.05, dual_lr=4.0)
    assert torch.isclose(out, torch.tensor(2.0 - 4.0 * (0.1 + 0.05)), atol=1e-5)
    # the retain loss rose: λ grows
    assert dual_step(lam, torch.tensor(0.5), torch.tensor(0.51), 1e-2, 0.0, 1.0) > lam
    # a large improvement would push λ below zero: it is projected to exactly 0
    assert dual_step(lam, torch.tensor(0.5), torch.tensor(0.3), 1e-2, 0.0, 1.0) == 0.0


@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.9])
def test_frozen_dual_converges_to_the_closed_form_below_two(ratio):
    a, b, l_r = _toy(curvature=0.0)  # linear ℓ_r: the finite difference is exact
    eps = 0.05
    _, lam_star = grads.unilateral_surgery(a, b, eps)
    seen = _frozen_dual(a, b, l_r, ratio, eps, lr=1e-3, iters=400)
    assert lam_star > 0
    assert abs(seen[-1] - float(lam_star)) < 1e-6 * float(lam_star)
    # the error contracts by exactly |1 - β‖g_r‖²| per step (before convergence to rounding)
    e = np.abs(seen[:12] - float(lam_star))
    if ratio == 1.0:  # a contraction factor of 0: exact after one step
        assert e[1:].max() < 1e-12
    else:
        np.testing.assert_allclose(e[1:] / e[:-1], abs(1 - ratio), rtol=1e-6)


@pytest.mark.parametrize("ratio", [2.1, 3.0])
def test_frozen_dual_above_two_cycles_between_zero_and_ratio_times_lambda_star(ratio):
    a, b, l_r = _toy(curvature=0.0)
    _, lam_star = grads.unilateral_surgery(a, b, 0.0)
    seen = _frozen_dual(a, b, l_r, ratio, 0.0, lr=1e-3, iters=200)
    tail = seen[-20:]
    # from λ = 0 the step lands at ratio·λ*, overshoots past 0 and is projected back: a 2-cycle, never λ*
    assert np.allclose(tail[::2], tail[0]) and np.allclose(tail[1::2], tail[1])
    assert sorted([tail[0], tail[1]]) == pytest.approx([0.0, ratio * float(lam_star)], rel=1e-9, abs=1e-12)
    assert np.abs(tail - float(lam_star)).min() > 0.9 * float(lam_star)


def test_finite_difference_bias_is_first_order_in_the_step():
    # With curvature c the fixed point solves ⟨b, d⟩ − (η/2) c ‖d‖² + ε = 0 instead of ⟨b, d⟩ + ε = 0.
    a, b, l_r = _toy(curvature=0.5)
    _, lam_star = grads.unilateral_surgery(a, b, 0.0)
    err = []
    for lr in (1e-2, 5e-3):
        seen = _frozen_dual(a, b, l_r, 1.0, 0.0, lr=lr, iters=300)
        err.append(seen[-1] - float(lam_star))
    assert err[0] > 0 and err[1] > 0                   # the bias makes λ larger (a more cautious step)
    assert err[0] / err[1] == pytest.approx(2.0, rel=0.02)  # halving η halves it


def test_momentum_widens_the_stable_range_to_two_times_one_plus_mu():
    a, b, l_r = _toy(curvature=0.0)
    mu = 0.9
    _, lam_star = grads.unilateral_surgery(a, b, 0.0)
    for ratio in (2.1, 3.5):  # unstable without momentum, stable with it
        seen = _frozen_dual(a, b, l_r, ratio, 0.0, lr=1e-3, iters=3000, momentum=mu)
        assert abs(seen[-1] - float(lam_star)) < 1e-4 * float(lam_star), ratio
    seen = _frozen_dual(a, b, l_r, 3.9, 0.0, lr=1e-3, iters=3000, momentum=mu)  # above 2(1 + μ) = 3.8
    assert np.abs(seen[-200:] - float(lam_star)).max() > 0.5 * float(lam_star)
    # the characteristic polynomial z² − (1 + μ − x) z + μ of the linearised iteration
    for x, stable in ((0.01, True), (2.1, True), (3.79, True), (3.81, False), (-0.01, False)):
        assert (np.abs(np.roots([1.0, -(1 + mu - x), mu])).max() < 1) == stable, x


def test_eps_from_code_error_is_a_negative_tolerance_to_first_order():
    before, lr, error = torch.tensor(0.04, dtype=torch.float64), 1e-3, 0.01
    eps = eps_from_code_error(error, float(before), lr)
    assert eps < 0 and eps == pytest.approx(-error * 0.04 / lr)
    for rel_change in (-2e-3, -1e-4, 1e-4, 5e-3):
        after = before * (1 - rel_change)
        code = torch.log(before) - torch.log(after) - error
        paper = (before - after) / lr + eps
        assert torch.isclose(code, lr / before * paper, rtol=0, atol=float(rel_change) ** 2 + 1e-12)
    with pytest.raises(UnlearnError):
        eps_from_code_error(0.01, 0.0, 1e-3)


# ---------------------------------------------------------------------------------------------------------------
# The method on a network.
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_task():
    d = data.load_dataset("digits")
    task = data.make_task(d, "class", forget_class=3)
    model = models.make_model("mlp", d.input_shape, d.num_classes, seed=0)
    from unlearnlib.train import TrainConfig, train_model
    train_model(model, d.x_train, d.y_train, TrainConfig(model="mlp", epochs=10), progress=False)
    return model, task


@pytest.mark.parametrize("name, backward_per_step, forward_per_step",
                         [("implicit_surgery", 1, 2), ("unilateral_surgery", 2, 2), ("ga", 1, 1)])
def test_backward_passes_per_step(mlp_task, name, backward_per_step, forward_per_step):
    # Passes *per step*: the difference between a 7-step and a 2-step run, so that a fixed cost per call (the
    # loop's one-sample check that the model accepts the task's inputs) does not count. The collapse guard's checks
    # (chapter 12) are switched off: they are forward passes of the loop, not of the step.
    model, task = mlp_task
    seen = {}
    for steps in (2, 7):
        counted = copy.deepcopy(model)
        counts = count_passes(counted)
        get_method(name)(counted, task, steps=steps, stop_at=None, lr=1e-3, guard=None)
        seen[steps] = counts
    assert seen[7]["backward"] - seen[2]["backward"] == backward_per_step * 5
    assert seen[7]["forward"] - seen[2]["forward"] == forward_per_step * 5
    assert seen[2]["backward"] == backward_per_step * 2  # the check runs without a gradient


def _my_implicit(model0, task, steps, lr, eps, beta, lam0, batch_size):
    """The implicit step written out (chapter 06), on full batches drawn in the library's order (forget
    permutation, then retain permutation, at every step)."""
    model = copy.deepcopy(model0).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    assert batch_size >= len(task.retain_idx) and batch_size >= len(task.forget_idx)
    xf, yf, xr, yr = task.x_forget, task.y_forget, task.x_retain, task.y_retain
    lam, lams = lam0, []
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        fi, ri = torch.randperm(len(yf), generator=g), torch.randperm(len(yr), generator=g)
        opt.zero_grad()
        z = model(torch.cat([xf[fi], xr[ri]]))
        before = F.cross_entropy(z[len(fi):], yr[ri])
        (-F.cross_entropy(z[:len(fi)], yf[fi]) + lam * before).backward()
        opt.step()
        with torch.no_grad():
            after = F.cross_entropy(model(xr[ri]), yr[ri])
        lam = max(0.0, lam - beta * ((before.item() - after.item()) / lr + eps))
        lams.append(lam)
    return model.eval(), lams


def test_library_matches_a_hand_written_loop_on_full_batches(mlp_task):
    model, task = mlp_task
    kw = dict(steps=5, lr=0.02, eps=0.01, beta=100.0, lam0=1.0, batch_size=5000)
    ours, lams = _my_implicit(model, task, **kw)
    hist = []
    lib = implicit_surgery(model, task, steps=5, lr=0.02, eps=0.01, dual_lr=100.0, lam0=1.0, batch_size=5000,
                           stop_at=None, history=hist)
    assert np.ptp(hist) > 1.0 and min(hist) == 0.0  # λ moved and was projected: the check is not vacuous
    np.testing.assert_allclose(hist, lams, rtol=1e-4, atol=1e-5)
    moved = max((p - q).abs().max().item() for p, q in zip(lib.parameters(), model.parameters()))
    diff = max((p - q).abs().max().item() for p, q in zip(lib.parameters(), ours.parameters()))
    assert moved > 1e-3 and diff < 1e-5


def test_post_step_is_chained_and_bad_input_is_refused(mlp_task):
    model, task = mlp_task
    calls, hist = [], []
    implicit_surgery(model, task, steps=6, stop_at=None, history=hist, post_step=lambda m, opt: calls.append(len(hist)))
    assert calls == [1, 2, 3, 4, 5, 6]  # after the dual update of every step
    for bad in (dict(dual_lr=-1.0), dict(lam0=-0.5), dict(eps=math.inf)):
        with pytest.raises(UnlearnError):
            implicit_surgery(model, task, steps=1, **bad)
