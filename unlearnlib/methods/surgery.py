"""Explicit gradient surgery on the forget/retain conflict: PCGrad and unilateral surgery (chapter 05).

Implicit surgery, which reaches the unilateral solution with one backward pass, is in
:mod:`unlearnlib.methods.implicit` (chapter 06).

Conventions (descent, the step is θ ← θ − η d): the forget objective is L_f = −CE_f, so ``g_f = ∇L_f`` is the
gradient-ascent direction; the retain objective is L_r = CE_r with ``g_r = ∇L_r``. They *conflict* when
⟨g_f, g_r⟩ < 0: a step along g_f then raises the retain loss to first order.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnlib.data import UnlearningTask
from unlearnlib.grads import loss_grad, pcgrad as pcgrad_combine, unilateral_surgery as unilateral_direction
from unlearnlib.methods._loop import run_unlearning, set_grads


def _neg_ce(logits, y):
    return -nn.functional.cross_entropy(logits, y)


def forget_retain_grads(model: nn.Module, xf, yf, xr, yr) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat g_f = ∇(−CE_f) and g_r = ∇CE_r: two backward passes (chapter 05)."""
    return loss_grad(model, xf, yf, _neg_ce), loss_grad(model, xr, yr)


def pcgrad(model: nn.Module, task: UnlearningTask, epochs: float = 5, lr: float = 0.01, beta: float = 0.97,
           batch_size: int = 32, seed: int = 0, stop_at: float | str | None = "auto", **kw) -> nn.Module:
    """PCGrad (Yu et al., arXiv 2001.06782) on the two tasks (1 − β)·forget and β·retain (chapter 05).

    Each task gradient is projected onto the normal plane of the other when they conflict, and the two are
    summed; without conflict this is exactly NegGrad+ with the same β. Two backward passes per step.
    """
    def step(m, xf, yf, xr, yr):
        g_f, g_r = forget_retain_grads(m, xf, yf, xr, yr)
        set_grads(m, pcgrad_combine([(1 - beta) * g_f, beta * g_r]))
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="retain", seed=seed,
                          stop_at=stop_at, desc="pcgrad", **kw)


def unilateral_surgery(model: nn.Module, task: UnlearningTask, epochs: float = 40, lr: float = 2e-4,
                       eps: float = 0.0, batch_size: int = 32, seed: int = 0, stop_at: float | str | None = "auto",
                       history: list | None = None, **kw) -> nn.Module:
    """Explicit unilateral surgery (Zhou et al., arXiv 2510.22124): d = g_f + λ* g_r with the closed-form
    λ* = max(0, (−⟨g_r, g_f⟩ − ε) / ‖g_r‖²) of min ½‖d − g_f‖² s.t. ⟨g_r, d⟩ ≥ −ε (chapter 05).

    Only the forget gradient is operated on, adding just enough of g_r that the first-order retain loss rises by at
    most ε per unit step. Two backward passes per step. ``history``, if a list, receives λ* of every step.
    """
    def step(m, xf, yf, xr, yr):
        g_f, g_r = forget_retain_grads(m, xf, yf, xr, yr)
        d, lam = unilateral_direction(g_f, g_r, eps)
        if history is not None:
            history.append(lam.item())
        set_grads(m, d)
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="forget", seed=seed,
                          stop_at=stop_at, desc="unilateral_surgery", **kw)
