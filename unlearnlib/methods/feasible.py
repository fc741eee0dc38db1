"""Masked feasible updates: keep only the coordinates of an update that probably agree with the retain gradient
(Dine, Furon & Faure, arXiv 2511.02435) (chapter 10).

Our reconstruction (the paper's full text was not available): a step θ ← θ − η u changes the retain loss, to first
order, by −η Σ_i u_i g_{r,i}. Every coordinate with u_i g_{r,i} ≥ 0 can only help, so the masked update m ⊙ u with
m_i = 1 only on such coordinates is *locally feasible*. The batch gradient g_r is noisy, so each coordinate is
kept only when a one-sided test on the B per-sample retain gradients says the sign agreement holds at level δ:

    t_i = sign(u_i) · mean_j g_{r,i}^{(j)} / (std_j g_{r,i}^{(j)} / √B),   m_i = 1[t_i ≥ t_{B−1}⁻¹(1 − δ)],

with t_{B−1} Student's t distribution (B − 1 degrees of freedom). δ = 0.5 gives the threshold 0: plain sign
agreement. Smaller δ keeps fewer, surer coordinates.

The guarantee, per coordinate and per step: if the test batch is drawn independently of u, then for every
coordinate whose true retain gradient (the mean over D_r) does not strictly agree with u_i in sign,
P(m_i = 1 | u) ≤ δ, exactly when the per-sample gradients are Gaussian, up to the normal approximation of the
studentised mean otherwise. A batch that also built u breaks it (NegGrad+'s u contains that batch's g_r, and
the test then mostly confirms its own noise), so the masked methods draw their own test batch from D_r.

The step tested is the step taken: u is SGD's heavy-ball velocity v = μ v_prev + g + λ θ (momentum μ, weight
decay λ), not the gradient g; only m ⊙ v is applied, and the velocity of every masked coordinate is cleared
(v ← m ⊙ v), so no stale velocity is released when a coordinate is kept again later.
"""

from __future__ import annotations

import functools
import inspect

import torch
from scipy.stats import t as student_t
from torch import nn

from unlearnlib import cost
from unlearnlib.errors import UnlearnError
from unlearnlib.grads import check_trainable_per_sample, per_sample_factors, per_sample_grads, trainable
from unlearnlib.methods._loop import run_unlearning, to_host


#: how the test obtains its statistics: per-coordinate moments from the per-layer route, or vmap gradients.
ROUTES = ("moments", "vmap")


def feasibility_mask(model: nn.Module, xr: torch.Tensor, yr: torch.Tensor, delta: float = 0.1,
                     update: dict[str, torch.Tensor] | None = None, route: str = "moments") -> dict[str, torch.Tensor]:
    """The 0/1 mask of the coordinates of ``update`` (default: the current ``.grad``, the base method's descent
    direction u) that pass the one-sided sign-agreement test at level ``delta`` on the per-sample retain
    gradients of the batch (chapter 10). Needs at least two retain samples. The level holds only if the batch
    is independent of ``update`` (see the module docstring).

    ``route="moments"`` (default) computes only what the test uses, the per-coordinate mean and mean square of
    the per-sample gradients, layer by layer (:meth:`~unlearnlib.grads.PerSampleFactors.moments`), and never
    holds the B x P matrix; ``route="vmap"`` forms it (the reference, :func:`sign_test`)."""
    if len(yr) < 2:
        raise UnlearnError("the feasibility test needs at least two retain samples per batch")
    _check_delta(delta)
    if route not in ROUTES:
        raise UnlearnError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    params = trainable(model)
    if update is None:
        update = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in params.items()}
    if route == "vmap":
        masks = sign_test(per_sample_grads(model, xr, yr), update, delta)
        cost.forward_backward(len(yr))
        return masks
    factors = per_sample_factors(model, xr, yr)
    cost.forward_backward(len(yr) * (2 if "vmap" in factors.route.values() else 1))  # a vmap fallback: twice
    mean, second = factors.moments()
    return sign_test_moments(mean, second, len(yr), update, delta)


def _check_delta(delta: float) -> None:
    if not 0 < delta <= 0.5:
        raise UnlearnError(f"the test level delta must lie in (0, 0.5], got {delta}")


@functools.lru_cache(maxsize=64)   # called once per step with the same arguments; scipy's ppf is not free
def critical_value(delta: float, batch: int) -> float:
    """The one-sided critical value t_{B−1}⁻¹(1 − δ) for a test batch of ``batch`` samples (0 at δ = 0.5)."""
    return 0.0 if delta == 0.5 else float(student_t.ppf(1 - delta, batch - 1))


def sign_test(per_sample: dict[str, torch.Tensor], update: dict[str, torch.Tensor],
              delta: float) -> dict[str, torch.Tensor]:
    """The mask m_i = 1[sign(u_i) · mean / (std / √B) ≥ t_{B−1}⁻¹(1 − δ)] from per-sample gradients
    ``{name: [B, *shape]}`` and the step ``update`` u (chapter 10)."""
    _check_delta(delta)
    masks = {}
    for n, G in per_sample.items():
        B = G.shape[0]
        if B < 2:
            raise UnlearnError("the feasibility test needs at least two retain samples per batch")
        se = G.std(0, unbiased=True) / B ** 0.5
        z = torch.sign(update[n]) * G.mean(0) / se.clamp_min(1e-30)
        masks[n] = (z >= critical_value(delta, B)).to(G.dtype)
    return masks


def sign_test_moments(mean: dict[str, torch.Tensor], second: dict[str, torch.Tensor], batch: int,
                      update: dict[str, torch.Tensor], delta: float) -> dict[str, torch.Tensor]:
    """The mask of :func:`sign_test` from the per-coordinate moments of ``batch`` per-sample gradients: ``mean``
    (their mean) and ``second`` (the mean of their squares) (chapter 10).

    The unbiased variance is B/(B − 1) · (second − mean²). In floating point the difference cancels where the
    mean dominates, but only there: a coordinate whose variance is lost to rounding has a t-statistic of magnitude ≳ 1/√eps, far beyond
    any critical value, so the decision is the two-pass test's except within rounding of the threshold.
    """
    _check_delta(delta)
    if batch < 2:
        raise UnlearnError("the feasibility test needs at least two retain samples per batch")
    crit = critical_value(delta, batch)
    # All tensors at once (flattened): a handful of operations per step instead of a handful per tensor.
    names = list(mean)
    m, sq, u = (torch.cat([t[n].reshape(-1) for n in names]) for t in (mean, second, update))
    var = (sq - m * m).clamp_min(0) * (batch / (batch - 1))
    z = torch.sign(u) * m / (var.sqrt() / batch ** 0.5).clamp_min(1e-30)
    flat = (z >= crit).to(m.dtype)
    return dict(zip(names, (c.view_as(mean[n]) for c, n in zip(flat.split([mean[n].numel() for n in names]), names))))


class FeasibilityMasker:
    """``mask_fn`` for :func:`~unlearnlib.methods._loop.run_unlearning` that tests the step SGD takes (chapter 10).

    It owns the heavy-ball velocity: at each step v = μ v_prev + g + λ θ from the ``.grad`` g the base method
    filled, the test on a retain batch of ``test_batch`` samples drawn from ``retain`` (x, y) with its own
    generator (independent of the base's batch), ``.grad`` ← v, and v_prev ← m ⊙ v (masked velocity cleared).
    The loop's optimiser must therefore be plain SGD (momentum 0, weight decay 0), so the step taken is
    exactly −η m ⊙ v; :func:`masked` arranges that. ``history`` receives the kept fraction of every step.
    """

    def __init__(self, delta: float = 0.1, history: list | None = None, *,
                 retain: tuple[torch.Tensor, torch.Tensor], test_batch: int = 32, momentum: float = 0.0,
                 weight_decay: float = 0.0, seed: int = 0, route: str = "moments"):
        _check_delta(delta)
        if route not in ROUTES:
            raise UnlearnError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
        self.route = route
        self.x_pool, self.y_pool = retain
        if len(self.y_pool) < 2:
            raise UnlearnError("the feasibility test needs at least two retain samples to draw its batch from")
        self.batch = max(2, min(int(test_batch), len(self.y_pool)))
        self.delta, self.history = delta, history
        self.momentum, self.weight_decay = momentum, weight_decay
        # a stream of its own, distinct from the loop's batch streams (seeded by ``seed``)
        self.gen = torch.Generator().manual_seed(1_000_003 + seed)
        self.velocity: dict[str, torch.Tensor] = {}
        self._start = len(history) if history is not None else 0

    def __call__(self, model, xr, yr):
        # xr, yr: the base's retain batch, which built g; testing on it would void the level
        params = trainable(model)
        names, ps = list(params), list(params.values())
        # One list operation per stage for all tensors (torch._foreach_*), not one per tensor.
        with torch.no_grad():
            steps = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in ps]
            if self.weight_decay:
                torch._foreach_add_(steps, [p.detach() for p in ps], alpha=self.weight_decay)
            if self.momentum and self.velocity:   # torch.optim.SGD's order: μ v_prev + d
                steps = torch._foreach_add(torch._foreach_mul([self.velocity[n] for n in names], self.momentum),
                                           steps)
        step = dict(zip(names, steps))
        idx = torch.randperm(len(self.y_pool), generator=self.gen)[:self.batch].to(self.y_pool.device)
        # the default route is passed implicitly, so the call keeps the signature of earlier versions
        route = {} if self.route == "moments" else {"route": self.route}
        masks = feasibility_mask(model, self.x_pool[idx], self.y_pool[idx], self.delta, update=step, **route)
        with torch.no_grad():
            for p, d in zip(ps, steps):
                p.grad = d
            if self.momentum:
                self.velocity = dict(zip(names, torch._foreach_mul(steps, [masks[n] for n in names])))
        if self.history is not None:
            kept = torch.cat([m.reshape(-1) for m in masks.values()]).mean()
            self.history.append(kept.detach())  # a device tensor; see finish()
        return masks

    def finish(self) -> None:
        """Turn the recorded fractions into floats with one host copy (call after the run)."""
        if self.history is not None:
            to_host(self.history, self._start)


def _default(fns, name: str, hp: dict):
    """``hp[name]`` if given, else the first default of ``name`` among the signatures of ``fns``."""
    if name in hp:
        return hp[name]
    for f in fns:
        par = inspect.signature(f).parameters.get(name)
        if par is not None and par.default is not inspect.Parameter.empty:
            return par.default
    raise UnlearnError(f"no default for {name!r}")


def masked(base, **defaults):
    """The masked add-on applied to a base method of the shared loop: ``masked(ga)`` is ``masked:ga`` (chapter 10).

    Extra hyperparameters: ``delta`` (test level), ``test_batch`` (size of the independent retain batch of the
    test; default: the base's batch size), ``kept`` (a list that receives the kept fraction per step) and
    ``route`` (``"moments"``, the default, or ``"vmap"``: see :func:`feasibility_mask`).
    Every other hyperparameter goes to the base method; ``defaults`` override the base's own defaults (a mask
    shrinks every step, so the masked method usually wants a larger learning rate than its base). The base's
    momentum and weight decay are applied by the :class:`FeasibilityMasker`, which tests the resulting step, and
    the loop's optimiser runs as plain SGD. The test batch is drawn from the retain samples the base may use
    (``retain_positions`` when given); a base that restricts them internally (LTU) is tested on all of D_r.
    The test needs per-sample retain gradients in training mode, so a model with BatchNorm or Dropout is refused
    before the first step (:func:`~unlearnlib.grads.check_trainable_per_sample`).
    """
    def method(model: nn.Module, task, delta: float = 0.1, kept: list | None = None,
               test_batch: int | None = None, route: str = "moments", **hp):
        check_trainable_per_sample(model, f"masked:{base.__name__}")
        hp = {**defaults, **hp}
        fns = (base, run_unlearning)
        device = next(model.parameters()).device
        x_pool, y_pool = task.x_retain.to(device), task.y_retain.to(device)
        if hp.get("retain_positions") is not None:
            pos = torch.as_tensor(hp["retain_positions"]).long().to(device)
            x_pool, y_pool = x_pool[pos], y_pool[pos]
        masker = FeasibilityMasker(
            delta, kept, retain=(x_pool, y_pool),
            test_batch=test_batch if test_batch is not None else _default(fns, "batch_size", hp),
            momentum=_default(fns, "momentum", hp), weight_decay=_default(fns, "weight_decay", hp),
            seed=_default(fns, "seed", hp), route=route)
        out = base(model, task, mask_fn=masker, **{**hp, "momentum": 0.0, "weight_decay": 0.0})
        masker.finish()
        return out
    method.__name__ = f"masked_{base.__name__}"
    method.__doc__ = f"``masked:{base.__name__}``: {base.__name__} with the feasibility mask (chapter 10)."
    return method


def false_keep_rate(delta: float = 0.1, batch: int = 32, trials: int = 200, coords: int = 100,
                    same_batch: bool = False, beta: float = 0.97, means: torch.Tensor | None = None,
                    seed: int = 0) -> tuple[int, int]:
    """Measure the test's level on a synthetic problem with known retain gradients (chapter 10).

    Per coordinate i, per-sample retain gradients are N(μ_i, 1) (``means``, default 0: the boundary where the
    false-keep probability is largest). The step is NegGrad+'s u = β ḡ_A − (1 − β) g_f on a retain batch A and
    an independent forget gradient g_f. The test runs on an independent batch C, or on A itself
    (``same_batch``: the step then contains the tested noise). A coordinate is infeasible when u_i μ_i ≤ 0.
    Returns (false keeps, infeasible coordinates tested), summed over the trials.
    """
    g = torch.Generator().manual_seed(seed)
    mu = torch.zeros(coords, dtype=torch.float64) if means is None else means.to(torch.float64)
    a = mu + torch.randn(trials, batch, coords, generator=g, dtype=torch.float64)
    g_f = torch.randn(trials, coords, generator=g, dtype=torch.float64) / batch ** 0.5
    u = beta * a.mean(1) - (1 - beta) * g_f
    c = a if same_batch else mu + torch.randn(trials, batch, coords, generator=g, dtype=torch.float64)
    infeasible = u * mu <= 0
    kept = torch.stack([sign_test({"w": c[k]}, {"w": u[k]}, delta)["w"] for k in range(trials)]).bool()
    return int((kept & infeasible).sum()), int(infeasible.sum())
