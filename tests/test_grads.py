"""Gradients: per-sample gradients (contract item 3) and the projections of Part II (contract item 4)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib import UnlearnError
from unlearnlib.grads import (conflict_rate, cosine, flatten, flatten_batched, layer_cosines, loss_grad, pcgrad,
                              per_sample_grads, per_sample_grads_loop, project_orthogonal, trainable,
                              unflatten, unilateral_surgery)
from unlearnlib.models import make_model

from errormodel import gradient_rtol, relative_errors

CASES = [("mlp", (1, 8, 8), 16), ("cnn", (1, 8, 8), 16), ("resnet18", (3, 32, 32), 3)]


def _batch(shape, b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, *shape, generator=g), torch.randint(0, 10, (b,), generator=g)


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request):
    name, shape, b = request.param
    model = make_model(name, shape, 10, seed=0)
    x, y = _batch(shape, b)
    return model, x, y, per_sample_grads(model, x, y)


def test_per_sample_grads_layout(case):
    model, x, y, ps = case
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert list(ps) == names  # named_parameters() order
    for n, p in model.named_parameters():
        assert ps[n].shape == (len(y), *p.shape)
        assert ps[n].dtype == p.dtype


def _sample_errors(a: dict, b: dict) -> torch.Tensor:
    """Relative error of every sample's whole gradient (all its parameters), ``a`` against the reference ``b``."""
    return relative_errors(flatten_batched(a), flatten_batched(b))


def _mean_error(ps: dict, batch_grad: torch.Tensor) -> float:
    """Error of the batch gradient against the mean of the per-sample gradients, relative to the mean per-sample
    norm: the samples' gradients partly cancel in the mean, and the rounding error scales with the terms."""
    F = flatten_batched(ps)
    return relative_errors(F.mean(0), batch_grad, scale=F.double().norm(dim=1).mean()).item()


def test_per_sample_grads_mean_is_batch_gradient(case):
    model, x, y, ps = case
    assert _mean_error(ps, loss_grad(model, x, y)) < gradient_rtol(model, x)


def test_per_sample_grads_equal_python_loop(case):
    model, x, y, ps = case
    loop = per_sample_grads_loop(model, x, y)
    assert list(loop) == list(ps)
    # The loop runs the layers on batches of one, the vmap on the whole batch: different kernels (tests/errormodel.py).
    assert _sample_errors(ps, loop).max().item() < gradient_rtol(model, x[:1])
    # Each row really is the gradient of one sample (not, say, B x the mean).
    row0 = flatten({n: t[0] for n, t in ps.items()})
    assert relative_errors(row0, loss_grad(model, x[:1], y[:1])).item() < gradient_rtol(model, x[:1])


def test_per_sample_grads_chunked(case):
    model, x, y, ps = case
    chunked = per_sample_grads(model, x, y, chunk_size=2)
    assert _sample_errors(chunked, ps).max().item() < gradient_rtol(model, x)


# Planted errors: each tolerance above must reject a realistic mistake, or it could not fail.
PLANTED = {
    # a backward pass with the wrong sign in one layer: the output layer's weight gradient negated
    "sign flipped in the output layer": lambda ps: {n: -t if n == list(ps)[-2] else t for n, t in ps.items()},
    # a term dropped: the output layer's bias gradient (the softmax residual p − onehot itself) left out
    "output bias dropped": lambda ps: {n: torch.zeros_like(t) if n == list(ps)[-1] else t for n, t in ps.items()},
    # an indexing slip: every sample gets its neighbour's gradient
    "samples shifted by one": lambda ps: {n: t.roll(1, dims=0) for n, t in ps.items()},
}


@pytest.mark.parametrize("plant", PLANTED)
def test_per_sample_tolerance_rejects_planted_errors(case, plant):
    model, x, y, ps = case
    wrong = PLANTED[plant](ps)
    assert any(not torch.equal(wrong[n], ps[n]) for n in ps), "the plant changed nothing"
    assert _sample_errors(wrong, ps).max().item() > gradient_rtol(model, x[:1])


def test_mean_tolerance_rejects_planted_errors(case):
    model, x, y, ps = case
    batch = loss_grad(model, x, y)
    rtol = gradient_rtol(model, x)
    F = flatten_batched(ps)
    assert _mean_error(ps, batch) < rtol
    assert _mean_error(ps, F.sum(0)) > rtol                                   # the 1/B dropped: a sum, not a mean
    assert _mean_error(ps, F[1:].mean(0)) > rtol                              # one sample left out
    assert _mean_error(ps, loss_grad(model, x, y.roll(1))) > rtol             # labels of the neighbours


def test_per_sample_grads_differ_between_samples(case):
    model, x, y, ps = case
    F = flatten_batched(ps)
    assert not torch.allclose(F[0], F[1])


def test_per_sample_grads_skip_frozen_parameters():
    model = make_model("cnn", (1, 8, 8), 10, seed=0)
    frozen = "head.weight"
    model.get_parameter(frozen).requires_grad_(False)
    x, y = _batch((1, 8, 8), 6)
    ps = per_sample_grads(model, x, y)
    assert frozen not in ps and list(ps) == list(trainable(model))
    assert _mean_error(ps, loss_grad(model, x, y)) < gradient_rtol(model, x)


def test_per_sample_grads_custom_loss():
    model = make_model("mlp", (1, 8, 8), 10, seed=0)
    x, y = _batch((1, 8, 8), 5)
    loss_fn = lambda logits, t: nn.functional.cross_entropy(logits, t, label_smoothing=0.2)
    ps = per_sample_grads(model, x, y, loss_fn=loss_fn)
    loop = per_sample_grads_loop(model, x, y, loss_fn=loss_fn)
    rtol = gradient_rtol(model, x[:1])
    assert _sample_errors(ps, loop).max().item() < rtol
    assert _mean_error(ps, loss_grad(model, x, y, loss_fn=loss_fn)) < gradient_rtol(model, x)
    # Planted: the smoothing term dropped (plain cross-entropy) is rejected by the same tolerance.
    plain = per_sample_grads(model, x, y)
    assert _sample_errors(plain, loop).max().item() > rtol


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10))


def test_train_mode_batchnorm_is_refused():
    model = _bn_model().train()
    x, y = _batch((1, 8, 8), 4)
    with pytest.raises(UnlearnError, match="BatchNorm") as info:
        per_sample_grads(model, x, y)
    assert "\n" not in str(info.value)


def test_eval_mode_batchnorm_is_fine():
    model = _bn_model().eval()
    x, y = _batch((1, 8, 8), 4)
    ps = per_sample_grads(model, x, y)
    assert _mean_error(ps, loss_grad(model, x, y)) < gradient_rtol(model, x)


# ---------------------------------------------------------------------------------------------------------------
# Flattening, cosines
# ---------------------------------------------------------------------------------------------------------------

def test_flatten_unflatten_roundtrip():
    model = make_model("cnn", (1, 8, 8), 10, seed=0)
    like = trainable(model)
    vec = flatten(like)
    assert vec.numel() == sum(p.numel() for p in like.values())
    back = unflatten(vec, like)
    assert list(back) == list(like) and all(torch.equal(back[n], like[n]) for n in like)
    with pytest.raises(UnlearnError):
        unflatten(torch.zeros(vec.numel() + 1), like)


def test_cosine_and_conflict_rate():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    assert cosine(a, b).item() == pytest.approx(-2 ** -0.5)
    rows = cosine(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [0.0, -3.0]]))
    torch.testing.assert_close(rows, torch.tensor([1.0, -1.0]))
    assert conflict_rate(torch.tensor([-0.5, 0.1, 0.2, -0.0])) == 0.25
    like = {"a": torch.zeros(2), "b": torch.zeros(1)}
    cos = layer_cosines(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([1.0, 0.0, -1.0]), like)
    assert cos == pytest.approx({"a": 1.0, "b": -1.0})


# ---------------------------------------------------------------------------------------------------------------
# Projections (methods.md §10.9)
# ---------------------------------------------------------------------------------------------------------------

def _conflicting_pair(seed, p=20):
    g = torch.Generator().manual_seed(seed)
    while True:
        a, b = torch.randn(p, generator=g, dtype=torch.float64), torch.randn(p, generator=g, dtype=torch.float64)
        if a.dot(b) < -0.5:
            return a, b


def test_pcgrad_two_tasks():
    g1, g2 = _conflicting_pair(0)
    out = pcgrad([g1, g2])
    p1 = g1 - g1.dot(g2) / g2.dot(g2) * g2
    p2 = g2 - g2.dot(g1) / g1.dot(g1) * g1
    torch.testing.assert_close(out, p1 + p2)
    assert abs(p1.dot(g2).item()) < 1e-10 and abs(p2.dot(g1).item()) < 1e-10
    # No conflict: plain sum.
    torch.testing.assert_close(pcgrad([g1, -g2]), g1 - g2)
    with pytest.raises(UnlearnError):
        pcgrad([g1])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_unilateral_surgery_kkt(seed, eps):
    g_f, g_r = _conflicting_pair(seed)
    d, lam = unilateral_surgery(g_f, g_r, eps)
    # KKT of min ½‖d − g_f‖² s.t. ⟨g_r, d⟩ ≥ −ε: stationarity d − g_f = λ g_r, λ ≥ 0, feasibility,
    # complementary slackness (here the constraint is active since ⟨g_r, g_f⟩ < −0.5 < −ε).
    assert lam.item() > 0
    torch.testing.assert_close(d - g_f, lam * g_r)
    assert g_r.dot(d).item() == pytest.approx(-eps, abs=1e-10)
    # Optimality against random feasible points.
    gen = torch.Generator().manual_seed(100 + seed)
    for _ in range(20):
        z = d + 0.5 * torch.randn(d.shape, generator=gen, dtype=d.dtype)
        if g_r.dot(z) >= -eps:
            assert (z - g_f).norm() >= (d - g_f).norm() - 1e-12


def test_unilateral_surgery_inactive_and_infinite_eps():
    g_f, g_r = _conflicting_pair(0)
    d, lam = unilateral_surgery(g_f, -g_r, 0.0)  # no conflict
    assert lam.item() == 0 and torch.equal(d, g_f)
    d, lam = unilateral_surgery(g_f, g_r, float("inf"))
    assert lam.item() == 0 and torch.equal(d, g_f)
    d0, _ = unilateral_surgery(g_f, g_r, 0.0)  # ε = 0: PCGrad's one-sided projection
    torch.testing.assert_close(d0, g_f - g_f.dot(g_r) / g_r.dot(g_r) * g_r)


@pytest.mark.parametrize("method", ["qr", "lstsq"])
def test_project_orthogonal(method):
    gen = torch.Generator().manual_seed(0)
    G = torch.randn(5, 40, generator=gen)
    g = torch.randn(40, generator=gen)
    out = project_orthogonal(g, G, method=method)
    assert out.shape == g.shape and out.dtype == g.dtype
    # Householder QR and SVD-based least squares are backward stable: |G out| ≤ c·eps·P·‖G‖‖g‖ with c a small
    # constant (Higham, "Accuracy and Stability of Numerical Algorithms", ch. 19-20); eps32·P = 5e-6 for P = 40.
    # A planted error (the projection skipped, or made onto G's span instead of its complement) gives O(1).
    assert (G @ out).abs().max().item() < 1e-4 * g.norm().item() * G.norm(dim=1).max().item()
    assert (G @ g).abs().max().item() > 1e-4 * g.norm().item() * G.norm(dim=1).max().item()
    # g − out lies in the row span of G (least-squares residual ~0) and out is idempotent.
    c = torch.linalg.lstsq(G.T.double(), (g - out).double()[:, None]).solution
    assert (G.T.double() @ c - (g - out).double()[:, None]).norm().item() < 1e-4
    torch.testing.assert_close(project_orthogonal(out, G, method=method), out, atol=1e-5, rtol=1e-4)


def test_project_orthogonal_rank_deficient_and_wide():
    gen = torch.Generator().manual_seed(1)
    G = torch.randn(3, 30, dtype=torch.float64, generator=gen)
    G = torch.cat([G, G[:1] * 2, G[1:2] - G[2:3]])  # 5 rows of rank 3
    g = torch.randn(30, dtype=torch.float64, generator=gen)
    out = project_orthogonal(g, G)
    assert (G @ out).abs().max().item() < 1e-10
    assert out.norm().item() > 0.5 * g.norm().item()  # only 3 directions removed out of 30
    # B ≥ P with full column rank: the complement is {0}.
    wide = torch.randn(12, 8, dtype=torch.float64, generator=gen)
    assert project_orthogonal(torch.randn(8, dtype=torch.float64, generator=gen), wide).norm().item() < 1e-10


def test_project_orthogonal_near_collinear_qr_stays_accurate():
    # methods.md §10.9: with near-collinear rows the Gram route loses ~8 digits; QR must not.
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(50, dtype=torch.float64, generator=gen)
    G = torch.stack([a, a + 1e-7 * torch.randn(50, dtype=torch.float64, generator=gen)])
    g = torch.randn(50, dtype=torch.float64, generator=gen)
    out = project_orthogonal(g, G)
    rel = (G @ out).abs() / (G.norm(dim=1) * g.norm())
    assert rel.max().item() < 1e-12


def test_project_orthogonal_agrees_between_methods():
    gen = torch.Generator().manual_seed(3)
    G = torch.randn(6, 25, dtype=torch.float64, generator=gen)
    g = torch.randn(25, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(project_orthogonal(g, G, "qr"), project_orthogonal(g, G, "lstsq"))


def test_projection_bad_shapes():
    with pytest.raises(UnlearnError):
        project_orthogonal(torch.zeros(4), torch.zeros(2, 5))
    with pytest.raises(UnlearnError):
        project_orthogonal(torch.zeros(2, 2), torch.zeros(2, 4))
    with pytest.raises(UnlearnError):
        unilateral_surgery(torch.zeros(3), torch.zeros(4))
    with pytest.raises(UnlearnError):
        project_orthogonal(torch.zeros(4), torch.zeros(2, 4), method="svd")


@pytest.mark.parametrize("method", ["qr", "lstsq"])
def test_project_orthogonal_rank_tolerance_does_not_grow_with_P(method):
    # Chapter 07, §7.2: a rank tolerance of eps · max(P, B) (the usual default) exceeds the relative singular values
    # 1e-2 and 1e-3 below once P · eps > 1e-2, i.e. P ≳ 1e5 in float32, and those genuine directions would not be
    # removed. For ResNet-18 (P ≈ 1.1e7) it exceeds 1 and nothing would be removed at all.
    gen = torch.Generator().manual_seed(4)
    P = 200_000
    G = torch.randn(3, P, generator=gen) * torch.tensor([[1.0], [1e-2], [1e-3]])
    g = torch.randn(P, generator=gen)
    out = project_orthogonal(g, G, method=method)
    rel = (G.double() @ out.double()).abs() / (G.double().norm(dim=1) * g.double().norm())
    assert rel.max().item() < 1e-5


def test_project_orthogonal_keeps_dtype_computes_in_float32_and_handles_zero_rows():
    gen = torch.Generator().manual_seed(5)
    G = torch.randn(4, 64, generator=gen)
    g = torch.randn(64, generator=gen)
    out16 = project_orthogonal(g.bfloat16(), G.bfloat16())
    assert out16.dtype == torch.bfloat16
    ref = project_orthogonal(g.bfloat16().float(), G.bfloat16().float()).bfloat16()
    torch.testing.assert_close(out16, ref)                           # same as computing in float32, then casting
    for method in ("qr", "lstsq"):
        assert torch.equal(project_orthogonal(g, torch.zeros(3, 64), method=method), g)   # nothing to remove
    with pytest.raises(UnlearnError, match="rtol"):
        project_orthogonal(g, G, rtol=1.5)


def test_project_orthogonal_real_per_sample_gradients_large_batch(original, data):
    # 128 real per-sample gradients of the trained CNN: their smallest singular values are ~1e-3 of the largest,
    # below the old tolerance eps · P. Both routes must stay orthogonal at the float32 level.
    x, y = data.x_train[:128], data.y_train[:128]
    G = flatten_batched(per_sample_grads(original, x, y))
    g = loss_grad(original, data.x_train[500:532], data.y_train[500:532])
    for method, tol in (("qr", 1e-5), ("lstsq", 1e-4)):
        out = project_orthogonal(g, G, method=method)
        rel = (G.double() @ out.double()).abs() / (G.double().norm(dim=1) * g.double().norm())
        assert rel.max().item() < tol, method
    ref = project_orthogonal(g.double(), G.double())
    assert (project_orthogonal(g, G).double() - ref).norm() < 1e-5 * g.norm()
