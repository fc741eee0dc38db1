"""The per-layer route of unlearnlib.grads against two independent implementations, used here as test-only
references (pinned in requirements.txt; the library never imports them, checked below):

* Opacus ``GradSampleModule`` (per-sample gradients by module hooks, written for DP-SGD): every parameter of
  every model of the book, the MLP, the CNN, the wide CNN and ResNet-18 (its Linear, Conv2d and GroupNorm
  samplers). From its per-sample gradients we form the Gram matrix, the products with a direction, a weighted
  combination and the per-coordinate moments, and compare ours with them.
* BackPACK ``SumGradSquared`` and ``Variance`` (Dangel et al., arXiv 1912.10985): the sum of squared per-sample
  gradients and their (biased) variance per coordinate. BackPACK has no GroupNorm extension, so it covers every
  parameter of the MLP, and the Linear and Conv2d parameters (weights and biases) of the CNN, the wide CNN and
  ResNet-18, which are the parameters whose moments need the per-layer arithmetic; their GroupNorm parameters
  are covered by Opacus. The covered set is asserted, so nothing is skipped silently.

Both in float32 and float64. Tolerances from tests/errormodel.py: two float32 computations of one per-sample
gradient differ by at most r ‖g_i‖ (r = ``gradient_rtol``, scaled by eps64 / eps32 in float64), and the bounds
of tests/test_ghost_route.py follow. Every comparison has a planted error that fails it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

# Plain imports, not importorskip: without the references these tests must fail, not vanish.
import backpack
import opacus
import pytest
import torch
from backpack.extensions import SumGradSquared, Variance
from torch import nn

from unlearnlib.grads import flatten, per_sample_factors, trainable
from unlearnlib.models import make_model

from errormodel import EPS32, gradient_rtol

REPO = Path(__file__).resolve().parents[1]
MODELS = [("mlp", (1, 8, 8), 8), ("cnn", (1, 8, 8), 8), ("cnn-wide", (1, 8, 8), 6), ("resnet18", (3, 32, 32), 3)]
CASES = [(*m, dt) for m in MODELS for dt in (torch.float32, torch.float64)]


@pytest.fixture(scope="module", params=CASES, ids=[f"{c[0]}-{str(c[3])[6:]}" for c in CASES])
def case(request):
    name, shape, b, dtype = request.param
    model = make_model(name, shape, 10, seed=0).to(dtype)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(b, *shape, generator=g).to(dtype)
    y = torch.randint(0, 10, (b,), generator=g)
    r = gradient_rtol(model, x[:1])
    if dtype == torch.float64:
        r *= torch.finfo(torch.float64).eps / EPS32
    return model, x, y, per_sample_factors(model, x, y), r


def _opacus(model, x, y):
    """Opacus's per-sample gradients {name: [B, *shape]} of the per-sample losses."""
    gsm = opacus.GradSampleModule(copy.deepcopy(model), loss_reduction="sum")
    nn.functional.cross_entropy(gsm(x), y, reduction="sum").backward()
    return {n: p.grad_sample.detach() for n, p in gsm._module.named_parameters() if p.requires_grad}


def _backpack(model, x, y):
    """BackPACK's sum of squares and variance per covered parameter (its Linear and Conv2d modules)."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            backpack.extend(mod)
    loss = backpack.extend(nn.CrossEntropyLoss(reduction="sum"))
    with backpack.backpack(SumGradSquared(), Variance()):
        loss(m(x), y).backward()
    return {n: (p.sum_grad_squared.detach(), p.variance.detach()) for n, p in m.named_parameters()
            if hasattr(p, "sum_grad_squared")}


def test_gram_products_combination_and_moments_match_opacus(case):
    model, x, y, factors, r = case
    ref = _opacus(model, x, y)
    assert list(ref) == list(trainable(model))                        # Opacus covers every parameter
    G = torch.cat([ref[n].reshape(len(y), -1) for n in ref], 1).double()
    norms = G.norm(dim=1)
    # Gram matrix
    K, d = factors.gram_dots({n: torch.ones_like(p) for n, p in trainable(model).items()})
    err = ((K - G @ G.T).abs() / torch.outer(norms, norms)).max().item()
    assert err <= 2 * r + r * r
    perm = torch.arange(len(y)).roll(1)
    assert ((K[perm][:, perm] - G @ G.T).abs() / torch.outer(norms, norms)).max().item() > 2 * r + r * r
    # products with a direction (all ones): the sums of the per-sample gradients' entries
    ones = torch.ones(G.shape[1], dtype=torch.float64)
    assert ((d - G @ ones).abs() / (norms * ones.norm())).max().item() <= r
    # a weighted combination, and its planted sign error
    w = torch.linspace(-1, 1, len(y), dtype=torch.float64) + 0.3
    bound = r * (w.abs() * norms).sum().item()
    assert (flatten(factors.combine(w)).double() - G.T @ w).norm().item() <= bound
    assert (flatten(factors.combine(-w)).double() - G.T @ w).norm().item() > bound
    # moments
    mean, second = (flatten(t).double() for t in factors.moments())
    assert (mean - G.mean(0)).norm().item() <= r * norms.mean().item()
    s_bound = (2 * r + r * r) * (norms ** 2).mean().item()
    assert (second - (G * G).mean(0)).abs().sum().item() <= s_bound
    assert (second - (G[1:] * G[1:]).mean(0)).abs().sum().item() > s_bound          # planted: a sample lost


def test_sum_of_squares_and_variance_match_backpack(case):
    model, x, y, factors, r = case
    ref = _backpack(model, x, y)
    covered = [n for name, mod in model.named_modules() if isinstance(mod, (nn.Linear, nn.Conv2d))
               for n in (f"{name}.weight", f"{name}.bias") if n in trainable(model)]
    assert sorted(ref) == sorted(covered) and covered                 # what BackPACK covers, stated above
    B = len(y)
    eps = torch.finfo(x.dtype).eps
    mean, second = factors.moments()
    blocks = factors.gram_dots(per_tensor=True)
    for n in covered:
        sq = blocks[n][0].diagonal()                                   # ‖g_{i,n}‖², per sample, this tensor
        S, gbar = sq.mean().item(), sq.sqrt().mean().item()
        ours_sum = (second[n] * B).double()
        s_bound = (2 * r + r * r) * S * B
        assert (ours_sum - ref[n][0].double()).abs().sum().item() <= s_bound, n
        m = mean[n].double()
        ours_var = (second[n].double() - m * m)
        # var = second − mean²: the error of second, of mean² (|Δ(m²)|₁ ≤ ‖Δm‖ (2‖m‖ + ‖Δm‖)), and the
        # rounding of the float subtraction in either implementation (2 eps · second, twice)
        v_bound = (2 * r + r * r) * S + r * gbar * (2 * m.norm().item() + r * gbar) + 4 * eps * S
        assert (ours_var - ref[n][1].double()).abs().sum().item() <= v_bound, n
    # planted: the squares of the first covered tensor summed without one sample
    n = covered[0]
    K = blocks[n][0]
    G_missing = (second[n] * B).double() - (K[0, 0] / K.diagonal().sum()) * (second[n] * B).double()
    assert (G_missing - ref[n][0].double()).abs().sum().item() > (2 * r + r * r) * K.diagonal().mean().item() * B


def test_the_library_never_imports_the_references():
    pattern = re.compile(r"^\s*(import|from)\s+(opacus|backpack)\b", re.M)
    found = [str(p) for p in sorted((REPO / "unlearnlib").rglob("*.py")) if pattern.search(p.read_text())]
    assert not found, found
