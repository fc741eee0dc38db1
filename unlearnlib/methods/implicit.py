"""Implicit gradient surgery: the multiplier of unilateral surgery by projected dual ascent from the *measured*
change of the retain loss, one backward pass per step (Zhou et al., arXiv 2510.22124) (chapter 06).

Conventions as in :mod:`unlearnlib.methods.surgery` (descent, the step is θ ← θ − η d; L_f = −CE_f, L_r = CE_r).
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnlib.data import UnlearningTask
from unlearnlib.methods._loop import run_unlearning


def dual_step(lam: torch.Tensor, loss_before: torch.Tensor, loss_after: torch.Tensor, lr: float, eps: float,
              dual_lr: float) -> torch.Tensor:
    """One projected dual-ascent step of implicit surgery (chapter 06):
    λ ← max(0, λ − β δ) with δ = (ℓ_r(θ_t) − ℓ_r(θ_{t+1})) / η + ε, a finite-difference estimate of ⟨g_r, d⟩ + ε."""
    return (lam - dual_lr * ((loss_before - loss_after) / lr + eps)).clamp_min(0.0)


def implicit_surgery(model: nn.Module, task: UnlearningTask, epochs: float = 40, lr: float = 2e-4, eps: float = 0.0,
                     dual_lr: float = 0.5, lam0: float = 0.0, batch_size: int = 32, seed: int = 0,
                     stop_at: float | str | None = "auto", history: list | None = None, **kw) -> nn.Module:
    """Implicit gradient surgery (Zhou et al., arXiv 2510.22124): the multiplier λ by projected dual ascent from the
    *measured* change of the retain loss, so one backward pass per step (chapter 06).

    Each step: one forward of the forget and retain batches together, one backward of L_f + λ L_r, the optimiser
    step, then one forward of the same retain batch (no gradient) to measure

        δ = (ℓ_r(θ_t) − ℓ_r(θ_{t+1})) / η + ε,      λ ← max(0, λ − β δ),

    which is the paper's update (β = ``dual_lr``). δ estimates ⟨g_r, d⟩ + ε, the negative derivative of the dual
    function, by a finite difference; the dual step is stable only while β‖g_r‖² < 2 (derived in chapter 06).
    λ stays a tensor on the device: no host synchronisation per step. ``history``, if a list, receives λ per
    step (this does synchronise).
    """
    lam = torch.tensor(float(lam0))

    def step(m, xf, yf, xr, yr):
        nonlocal lam
        lam = lam.to(xf.device)
        logits = m(torch.cat([xf, xr]))
        loss_r = nn.functional.cross_entropy(logits[len(xf):], yr)
        (-nn.functional.cross_entropy(logits[:len(xf)], yf) + lam * loss_r).backward()
        step.probe = (xr, yr, loss_r.detach())

    def dual_update(m, opt):
        nonlocal lam
        xr, yr, before = step.probe
        with torch.no_grad():
            after = nn.functional.cross_entropy(m(xr), yr)
        lam = dual_step(lam, before, after, opt.param_groups[0]["lr"], eps, dual_lr)
        if history is not None:
            history.append(lam.item())
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="forget", seed=seed,
                          stop_at=stop_at, post_step=dual_update, desc="implicit_surgery", **kw)
