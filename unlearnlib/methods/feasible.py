"""Masked feasible updates: keep only the coordinates of an update that probably agree with the retain gradient
(Dine, Furon & Faure, arXiv 2511.02435) (chapter 10).

Our reconstruction (the paper's full text was not available): a step θ ← θ − η u changes the retain loss, to first
order, by −η Σ_i u_i g_{r,i}. Every coordinate with u_i g_{r,i} ≥ 0 can only help, so the masked update m ⊙ u with
m_i = 1 only on such coordinates is *locally feasible*. The batch gradient g_r is noisy, so each coordinate is
kept only when a one-sided test on the B per-sample retain gradients says the sign agreement holds at level δ:

    z_i = sign(u_i) · mean_j g_{r,i}^{(j)} / (std_j g_{r,i}^{(j)} / √B),    m_i = 1[z_i ≥ Φ⁻¹(1 − δ)].

δ = 0.5 gives the threshold 0: plain sign agreement. Smaller δ keeps fewer, surer coordinates.
"""

from __future__ import annotations

from statistics import NormalDist

import torch
from torch import nn

from unlearnlib.errors import UnlearnError
from unlearnlib.grads import per_sample_grads, trainable
from unlearnlib.methods._loop import to_host


def feasibility_mask(model: nn.Module, xr: torch.Tensor, yr: torch.Tensor, delta: float = 0.1,
                     update: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The 0/1 mask of the coordinates of ``update`` (default: the current ``.grad``, the base method's descent
    direction u) that pass the one-sided sign-agreement test at level ``delta`` on the per-sample retain
    gradients of the batch (chapter 10). Needs at least two retain samples."""
    if not 0 < delta <= 0.5:
        raise UnlearnError(f"the test level delta must lie in (0, 0.5], got {delta}")
    if len(yr) < 2:
        raise UnlearnError("the feasibility test needs at least two retain samples per batch")
    params = trainable(model)
    if update is None:
        update = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in params.items()}
    per_sample = per_sample_grads(model, xr, yr)
    threshold = NormalDist().inv_cdf(1 - delta)
    masks = {}
    for n, G in per_sample.items():
        mean = G.mean(0)
        se = G.std(0, unbiased=True) / len(yr) ** 0.5
        z = torch.sign(update[n]) * mean / se.clamp_min(1e-30)
        masks[n] = (z >= threshold).to(G.dtype)
    return masks


class FeasibilityMasker:
    """``mask_fn`` for :func:`~unlearnlib.methods._loop.run_unlearning` that also records the kept fraction
    of every step (chapter 10)."""

    def __init__(self, delta: float = 0.1, history: list | None = None):
        self.delta, self.history = delta, history
        self._start = len(history) if history is not None else 0

    def __call__(self, model, xr, yr):
        masks = feasibility_mask(model, xr, yr, self.delta)
        if self.history is not None:
            kept = sum(m.sum() for m in masks.values()) / sum(m.numel() for m in masks.values())
            self.history.append(kept.detach())  # a device tensor; see finish()
        return masks

    def finish(self) -> None:
        """Turn the recorded fractions into floats with one host copy (call after the run)."""
        if self.history is not None:
            to_host(self.history, self._start)


def masked(base, **defaults):
    """The masked add-on applied to a base method of the shared loop: ``masked(ga)`` is ``masked:ga`` (chapter 10).

    Extra hyperparameters: ``delta`` (test level) and ``kept`` (a list that receives the kept fraction per step).
    Every other hyperparameter goes to the base method; ``defaults`` override the base's own defaults (a mask
    shrinks every step, so the masked method usually wants a larger learning rate than its base).
    """
    def method(model: nn.Module, task, delta: float = 0.1, kept: list | None = None, **hp):
        masker = FeasibilityMasker(delta, kept)
        out = base(model, task, mask_fn=masker, **{**defaults, **hp})
        masker.finish()
        return out
    method.__name__ = f"masked_{base.__name__}"
    method.__doc__ = f"``masked:{base.__name__}``: {base.__name__} with the feasibility mask (chapter 10)."
    return method
