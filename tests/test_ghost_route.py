"""The per-layer ("ghost") route of unlearnlib.grads (chapter 07): the Gram matrix, the products with a direction,
weighted combinations and per-coordinate moments of the per-sample gradients, computed without the B x P matrix,
against the vmap per-sample gradients of every model of the book.

Tolerances come from tests/errormodel.py. The two routes compute the same per-sample gradients g_i with
different kernels, so each g_i may differ by e_i with ‖e_i‖ ≤ r ‖g_i‖, r = ``gradient_rtol`` (float32; scaled by
eps64 / eps32 for float64 models). What follows from that, by Cauchy-Schwarz:

* Gram entries:       |ΔK_ij| ≤ (2r + r²) ‖g_i‖ ‖g_j‖
* products:           |Δ⟨g_i, v⟩| ≤ r ‖g_i‖ ‖v‖
* combinations:       ‖Δ Σ w_i g_i‖ ≤ r Σ |w_i| ‖g_i‖
* mean / mean square: ‖Δ mean‖ ≤ r mean ‖g_i‖,  ‖Δ mean of squares‖₁ ≤ (2r + r²) mean ‖g_i‖²
* projection:         ‖ΔP g‖ ≤ 2 ‖ΔG‖ / σ_min ‖g‖ (the perturbation of an orthogonal projector onto the row span
                      of G; σ_min: its smallest kept singular value), with ‖ΔG‖ ≤ r ‖G‖_F.

Each is checked against a planted error (a layer dropped, a sign flipped, samples shifted) that must fail it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib import UnlearnError
from unlearnlib.grads import (_ghost_is_cheaper, flatten, flatten_batched, gram_coefficients, per_sample_bytes,
                              per_sample_factors, per_sample_grads, project_orthogonal, trainable, unflatten)
from unlearnlib.methods.feasible import feasibility_mask, sign_test, sign_test_moments
from unlearnlib.models import count_parameters, make_model

from errormodel import EPS32, gradient_rtol

#: every model of the book, in float32; the small ones in float64 as well.
CASES = [("mlp", (1, 8, 8), 12, torch.float32), ("cnn", (1, 8, 8), 12, torch.float32),
         ("cnn-wide", (1, 8, 8), 8, torch.float32), ("resnet18", (3, 32, 32), 4, torch.float32),
         ("mlp", (1, 8, 8), 12, torch.float64), ("cnn", (1, 8, 8), 12, torch.float64)]


def _rtol(model, x):
    """The error model's bound, in units of the working precision (it counts reductions; eps sets the scale)."""
    r = gradient_rtol(model, x[:1])
    return r * (torch.finfo(torch.float64).eps / EPS32) if x.dtype == torch.float64 else r


@pytest.fixture(scope="module", params=CASES, ids=[f"{c[0]}-{str(c[3])[6:]}" for c in CASES])
def case(request):
    name, shape, b, dtype = request.param
    model = make_model(name, shape, 10, seed=0).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, *shape, generator=g).to(dtype)
    y = torch.randint(0, 10, (b,), generator=g)
    G = flatten_batched(per_sample_grads(model, x, y)).double()
    return model, x, y, G, per_sample_factors(model, x, y), _rtol(model, x)


def _direction(model, seed=2):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in trainable(model).items()}


def _gram_error(K, G):
    norms = G.norm(dim=1)
    return ((K - G @ G.T).abs() / torch.outer(norms, norms)).max().item()


def test_gram_and_products_match_vmap(case):
    model, x, y, G, factors, r = case
    v = _direction(model)
    K, d = factors.gram_dots(v)
    assert K.dtype == d.dtype == torch.float64 and K.shape == (len(y), len(y))
    assert _gram_error(K, G) <= 2 * r + r * r
    vf = flatten(v).double()
    assert ((d - G @ vf).abs() / (G.norm(dim=1) * vf.norm())).max().item() <= r
    # per tensor: the blocks add up to the whole
    blocks = factors.gram_dots(v, per_tensor=True)
    assert set(blocks) == set(trainable(model))
    assert torch.allclose(sum(k for k, _ in blocks.values()), K, rtol=1e-10, atol=1e-12 * K.abs().max().item())


def test_gram_tolerance_rejects_planted_errors(case):
    model, x, y, G, factors, r = case
    K, _ = factors.gram_dots()
    blocks = factors.gram_dots(per_tensor=True)
    biggest = max(blocks, key=lambda n: blocks[n][0].trace().item())
    assert _gram_error(K - blocks[biggest][0], G) > 2 * r + r * r           # one layer dropped
    perm = torch.arange(len(y)).roll(1)
    assert _gram_error(K[perm][:, perm], G) > 2 * r + r * r                 # samples shifted by one


def test_combination_and_moments_match_vmap(case):
    model, x, y, G, factors, r = case
    B = len(y)
    w = torch.linspace(-1, 2, B, dtype=torch.float64)
    comb = flatten(factors.combine(w)).double()
    bound = r * (w.abs() * G.norm(dim=1)).sum().item()
    assert (comb - G.T @ w).norm().item() <= bound
    assert (flatten(factors.combine(-w)).double() - G.T @ w).norm().item() > bound          # planted: sign
    mean, second = factors.moments()
    mean, second = flatten(mean).double(), flatten(second).double()
    assert (mean - G.mean(0)).norm().item() <= r * G.norm(dim=1).mean().item()
    assert (second - (G * G).mean(0)).abs().sum().item() <= (2 * r + r * r) * (G * G).sum(1).mean().item()
    assert (mean - G[1:].mean(0)).norm().item() > r * G.norm(dim=1).mean().item()           # planted: a sample lost


def test_projection_matches_qr(case):
    model, x, y, G, factors, r = case
    # a direction with as much inside the span of the rows of G as outside it, so that the projection matters
    g0 = flatten(_direction(model, seed=3)).double()
    inside = G.T @ torch.linspace(1, 2, len(y), dtype=torch.float64)
    g = (g0 / g0.norm() + inside / inside.norm()).to(x.dtype)
    c = gram_coefficients(*factors.gram_dots(unflatten(g, trainable(model))))
    ghost = g.double() - flatten(factors.combine(c)).double()
    qr = project_orthogonal(g.double(), G)
    sv = torch.linalg.svdvals(G)
    sigma_min = sv[sv > 1e-5 * sv[0]].min()
    bound = 2 * r * G.norm() / sigma_min
    assert (ghost - qr).norm() / g.norm() <= bound
    # planted: one sample's gradient lost (its row of K and d left out, its coefficient zero)
    K, d = factors.gram_dots(unflatten(g, trainable(model)))
    c_wrong = torch.cat([gram_coefficients(K[:-1, :-1], d[:-1]), torch.zeros(1, dtype=torch.float64)])
    wrong = g.double() - flatten(factors.combine(c_wrong)).double()
    assert (wrong - qr).norm() / g.norm() > bound


def test_each_layer_takes_the_cheaper_form():
    # the ghost-clipping count: T = 1 (a Linear layer on vectors) is always ghost; a 3x3 convolution over a
    # 32 x 32 image (ResNet-18's first stage, T = 1024) is materialised; its last stage (T = 16) is ghost.
    assert _ghost_is_cheaper(128, 1, 512, 10)
    assert not _ghost_is_cheaper(128, 1024, 576, 64)
    assert _ghost_is_cheaper(128, 16, 4608, 512)
    model = make_model("resnet18", (3, 32, 32), 10, seed=0).to("meta")
    factors = per_sample_factors(model, torch.zeros(128, 3, 32, 32, device="meta"),
                                 torch.zeros(128, dtype=torch.long, device="meta"))
    route = factors.route
    assert route["stem.0.weight"] == "materialised" and route["layers.7.conv2.weight"] == "ghost"
    assert route["head.weight"] == "ghost" and route["stem.1.weight"] == "per-sample"
    assert set(route) == set(n for n, _ in model.named_parameters())


def test_counted_memory_of_resnet18_at_batch_128():
    # What the benchmark reports on the CPU: counted, not measured (tests/test_cuda.py has no timing either).
    model = make_model("resnet18", (3, 32, 32), 10, seed=0)
    x, y = torch.zeros(128, 3, 32, 32), torch.zeros(128, dtype=torch.long)
    vm = per_sample_bytes(model, x, y, "vmap")
    assert vm == 2 * 128 * count_parameters(model) * 4 and vm > 5 * 2**30
    ghost = per_sample_bytes(model, x, y, "ghost")
    assert 0 < ghost < 2 * 2**30 and ghost < vm / 5
    with pytest.raises(UnlearnError, match="route"):
        per_sample_bytes(model, x, y, "nope")


class _Odd(nn.Module):
    """Modules the route does not factor (a grouped convolution, LayerNorm, a bare parameter) beside ones it
    does, and one Linear layer applied twice (its per-sample gradient is the sum over both uses)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, groups=2)
        self.norm = nn.LayerNorm(4 * 16)
        self.shared = nn.Linear(64, 64)
        self.scale = nn.Parameter(torch.ones(64))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.norm(self.conv(x).flatten(1))
        h = torch.tanh(self.shared(torch.tanh(self.shared(h)))) * self.scale
        return self.head(h)


def test_unsupported_modules_fall_back_and_shared_layers_add_up():
    torch.manual_seed(0)
    model = _Odd()
    x, y = torch.randn(6, 2, 4, 4), torch.randint(0, 10, (6,))
    factors = per_sample_factors(model, x, y)
    assert factors.route["conv.weight"] == "vmap" and factors.route["norm.weight"] == "vmap"
    assert factors.route["scale"] == "vmap" and factors.route["shared.weight"] == "ghost"
    G = flatten_batched(per_sample_grads(model, x, y)).double()
    K, _ = factors.gram_dots()
    r = gradient_rtol(model, x[:1])
    assert _gram_error(K, G) <= 2 * r + r * r
    w = torch.randn(6, dtype=torch.float64)
    assert (flatten(factors.combine(w)).double() - G.T @ w).norm() <= r * (w.abs() * G.norm(dim=1)).sum()


def test_moment_form_decides_as_the_two_pass_test(data):
    # The same per-sample gradients through both formulas: they differ only by the rounding of the one-pass
    # variance, |Δvar| ≤ 4 eps · mean of squares (B/(B − 1) aside), so a decision may differ only where
    # |z − t_crit| ≤ |z| · |Δvar| / (2 var) (a first-order bound on Δz).
    model = make_model("cnn", data.input_shape, 10, seed=0)
    x, y = data.x_train[:32], data.y_train[:32]
    ps = per_sample_grads(model, x, y)
    u = _direction(model, seed=4)
    B = len(y)
    for delta in (0.05, 0.1, 0.5):
        two_pass = flatten(sign_test(ps, u, delta))
        mean = {n: t.mean(0) for n, t in ps.items()}
        second = {n: (t * t).mean(0) for n, t in ps.items()}
        one_pass = flatten(sign_test_moments(mean, second, B, u, delta))
        G = flatten_batched(ps).double()
        var = G.var(0)
        z = torch.sign(flatten(u)).double() * G.mean(0) / (var.sqrt() / B ** 0.5)
        from unlearnlib.methods.feasible import critical_value
        slack = z.abs() * 4 * EPS32 * (G * G).mean(0) / (2 * var.clamp_min(1e-300)) + 1e-12
        differ = two_pass != one_pass
        assert ((z[differ] - critical_value(delta, B)).abs() <= slack[differ]).all()
        assert differ.sum() <= 0.001 * differ.numel()
        # planted: the update's sign flipped changes most decisions
        flipped = flatten(sign_test_moments(mean, second, B, {n: -t for n, t in u.items()}, delta))
        assert (flipped != two_pass).sum() > 0.1 * differ.numel()
    # the library call: the moments route against the vmap route, on the model's own gradients
    lib = flatten(feasibility_mask(model, x, y, 0.1, update=u))
    ref = flatten(feasibility_mask(model, x, y, 0.1, update=u, route="vmap"))
    assert (lib != ref).float().mean().item() <= 0.001
    with pytest.raises(UnlearnError, match="route"):
        feasibility_mask(model, x, y, 0.1, update=u, route="nope")


def test_orthograd_refuses_an_unknown_route(data):
    # That the default (ghost) route takes the OrthoGrad step of the update rule, to the error model, is
    # tests/test_orthograd.py::test_library_step_is_the_update_rule (its reference is vmap and QR).
    from unlearnlib.data import make_task
    from unlearnlib.methods.orthogonal import orthograd

    task = make_task(data, "class", forget_class=3, seed=0)
    with pytest.raises(UnlearnError, match="per_sample"):
        orthograd(make_model("cnn", data.input_shape, 10, seed=0), task, steps=1, per_sample="nope")


def test_a_layer_changed_in_place_afterwards_falls_back_to_vmap():
    # nn.ReLU(inplace=True) overwrites the convolution's output, so the hook's tensors are stale: the route must
    # notice (version counters) and give those parameters to vmap, not return gradients of the wrong tensor.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(64, 10))
    x, y = torch.randn(5, 1, 4, 4), torch.randint(0, 10, (5,))
    factors = per_sample_factors(model, x, y)
    assert factors.route["0.weight"] == "vmap" and factors.route["3.weight"] == "ghost"
    G = flatten_batched(per_sample_grads(model, x, y)).double()
    r = gradient_rtol(model, x[:1])
    assert _gram_error(factors.gram_dots()[0], G) <= 2 * r + r * r
