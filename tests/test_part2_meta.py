"""Invariants of Part II, gradient conflicts II: LUR, LTU, masked feasible updates (chapters 08-10)."""

import numpy as np
import pytest
import torch
from torch.func import grad, jvp

from unlearnlib import UnlearnError, data, grads, models
from unlearnlib.methods import REGISTRY, get_method
from unlearnlib.methods.lookahead import functional_loss, lookahead_grads, lur_meta_gradient, lur_objective
from unlearnlib.methods.meta_learning import retain_subset
from unlearnlib.methods.feasible import critical_value, feasibility_mask


@pytest.fixture(scope="module")
def setting():
    d = data.load_dataset("digits")
    task = data.make_task(d, "class", forget_class=3, seed=0)
    model = models.make_model("mlp", d.input_shape, d.num_classes, seed=0).double()
    b = (task.x_forget[:12].double(), task.y_forget[:12], task.x_retain[:12].double(), task.y_retain[:12])
    return d, task, model, b


def _shifted(model, shift, fn):
    params = grads.trainable(model)
    with torch.no_grad():
        for p, s in zip(params.values(), grads.unflatten(shift, params).values()):
            p.add_(s)
    try:
        return fn()
    finally:
        with torch.no_grad():
            for p, s in zip(params.values(), grads.unflatten(shift, params).values()):
                p.sub_(s)


def test_lur_meta_gradient_equals_finite_differences_of_the_lookahead_objective(setting):
    _, _, model, (xf, yf, xr, yr) = setting
    alpha = 0.5
    exact = lur_meta_gradient(model, xf, yf, xr, yr, alpha)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(exact.shape, generator=gen, dtype=exact.dtype)
        v /= v.norm()
        h = 1e-6  # small enough that no ReLU changes state
        fd = (_shifted(model, h * v, lambda: lur_objective(model, xf, yf, xr, yr, alpha).item())
              - _shifted(model, -h * v, lambda: lur_objective(model, xf, yf, xr, yr, alpha).item())) / (2 * h)
        assert fd == pytest.approx(float(exact @ v), rel=1e-5, abs=1e-9)


def test_first_order_and_exact_differ_by_the_hessian_term(setting):
    # exact − first order = −α w_f H_r ∇L_u(θ'), a Hessian-vector product of the retain loss at θ.
    _, _, model, (xf, yf, xr, yr) = setting
    alpha, w_f = 0.3, 1.0
    exact = lur_meta_gradient(model, xf, yf, xr, yr, alpha, w_f=w_f)
    first = lur_meta_gradient(model, xf, yf, xr, yr, alpha, w_f=w_f, second_order=False)
    params = {k: v.detach() for k, v in grads.trainable(model).items()}
    L_r, L_u = functional_loss(model, xr, yr), functional_loss(model, xf, yf, sign=-1.0)
    fast, meta = lookahead_grads(params, L_r, {"u": L_u}, alpha, second_order=False)
    _, hvp = jvp(grad(L_r), (params,), (meta["u"],))
    predicted = -alpha * w_f * grads.flatten(hvp)
    assert torch.allclose(exact - first, predicted, atol=1e-10, rtol=1e-7)
    assert (exact - first).norm() > 1e-3 * first.norm()  # the term is not negligible here


def test_lookahead_does_not_touch_normalisation_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                                torch.nn.ReLU(), torch.nn.Linear(16, 10))
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    with pytest.raises(UnlearnError, match="BatchNorm"):  # train mode would update the running statistics
        lur_meta_gradient(model, x, y, x, y, alpha=0.1)
    model.eval()
    before = {k: v.clone() for k, v in model.named_buffers()}
    lur_meta_gradient(model, x, y, x, y, alpha=0.1)
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())


def test_ltu_support_and_query_are_disjoint(setting):
    _, task, _, _ = setting
    for fraction in (0.01, 0.05, 0.5, 1.0):
        support, query = retain_subset(task, fraction, seed=3)
        assert set(support.tolist()).isdisjoint(query.tolist())
        assert len(support) >= 2 and len(query) >= 2
        assert abs(len(support) + len(query) - max(4, round(fraction * len(task.retain_idx)))) <= 1
    with pytest.raises(UnlearnError):
        retain_subset(task, 0.0)


def test_harmonised_meta_gradients_keep_a_non_negative_inner_product(setting):
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = torch.tensor(rng.normal(size=40)), torch.tensor(rng.normal(size=40))
        a2, b2 = grads.harmonize(a, b)
        assert torch.dot(a2, b2) >= -1e-12
        if torch.dot(a, b) >= 0:
            assert torch.equal(a2, a) and torch.equal(b2, b)
    # and along a real LTU run the harmonised update is what is applied: the method records the raw cosines
    _, task, model, _ = setting
    cosines = []
    get_method("ltu")(model.float(), task, steps=5, stop_at=None, history=cosines, forget_signal="ascent")
    model.double()
    assert len(cosines) == 5 and all(-1 <= c <= 1 for c in cosines)


def test_mask_keeps_only_coordinates_that_pass_the_test(setting):
    _, _, model, (xf, yf, xr, yr) = setting
    u = {k: v for k, v in zip(grads.trainable(model), torch.split(grads.loss_grad(model, xf, yf), [
        p.numel() for p in grads.trainable(model).values()]))}
    u = {k: v.view_as(p) for (k, v), p in zip(u.items(), grads.trainable(model).values())}
    per_sample = grads.per_sample_grads(model, xr, yr)
    for delta in (0.01, 0.1, 0.3):
        masks = feasibility_mask(model, xr, yr, delta, update=u)
        z_crit = critical_value(delta, len(yr))  # Student's t, B - 1 degrees of freedom
        kept = 0
        for n, G in per_sample.items():
            z = torch.sign(u[n]) * G.mean(0) / (G.std(0) / len(yr) ** 0.5).clamp_min(1e-30)
            assert torch.all(z[masks[n].bool()] >= z_crit)
            assert torch.all(z[~masks[n].bool()] < z_crit)
            kept += int(masks[n].sum())
        assert kept > 0
    at_half = feasibility_mask(model, xr, yr, 0.5, update=u)
    for n, G in per_sample.items():  # δ = 0.5: plain sign agreement of u with the mean retain gradient
        assert torch.equal(at_half[n].bool(), u[n] * G.mean(0) >= 0)


def test_masked_coordinates_are_bit_identical_under_momentum_and_weight_decay(setting):
    _, task, _, _ = setting
    model = models.make_model("mlp", task.data.input_shape, task.data.num_classes, seed=1)
    steps, seen = [], []

    def record(m, xr, yr):
        masks = feasibility_mask(m, xr, yr, 0.1)
        seen.append(({n: p.detach().clone() for n, p in m.named_parameters()}, masks))
        return masks

    from unlearnlib.methods._loop import run_unlearning, ce
    out = run_unlearning(model, task, lambda m, xf, yf, xr, yr: (-ce(m, xf, yf)).backward(), epochs=1, lr=0.05,
                         momentum=0.9, weight_decay=0.05, steps=6, mask_fn=record,
                         post_step=lambda m, opt: steps.append({n: p.detach().clone() for n, p in m.named_parameters()}))
    assert len(steps) == 6
    moved = 0
    for (before, masks), after in zip(seen, steps):
        for n, m in masks.items():
            frozen = ~m.bool()
            assert torch.equal(after[n][frozen], before[n][frozen])
            moved += int((after[n][m.bool()] != before[n][m.bool()]).sum())
    assert moved > 0  # kept coordinates did move: the test is not vacuous
    assert out is not model


def test_masked_methods_are_registered_and_resolved():
    for base in ("ga", "neggrad_plus", "random_label"):
        assert f"masked:{base}" in REGISTRY
    assert callable(get_method("masked:salun"))
    for bad in ("masked:retrain", "masked:nope"):
        with pytest.raises(UnlearnError):
            get_method(bad)
    with pytest.raises(UnlearnError):
        feasibility_mask(models.make_model("mlp", (1, 8, 8), 10), torch.zeros(1, 1, 8, 8), torch.zeros(1).long())
