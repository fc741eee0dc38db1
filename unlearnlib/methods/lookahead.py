"""Look-ahead (meta-learning) unlearning: the shared look-ahead primitives and LUR (chapter 09; LTU, chapter 08, is
in :mod:`unlearnlib.methods.meta_learning`).

Both evaluate a loss at *fast weights* θ' = θ − α ∇L_in(θ) reached by one inner step, and differentiate through
that step. With ``torch.func`` this is a composition of ``grad`` and ``vjp``: the exact meta-gradient
∇_θ L_out(θ') = (I − α H_in) ∇L_out(θ') contains a Hessian-vector product; the first-order variant drops it.
A look-ahead forward must not update normalisation statistics: train-mode BatchNorm would, so it is refused
with a clear error (the book's models use GroupNorm, which keeps no statistics; eval-mode BatchNorm only reads
them), and buffers are passed as copies.

Defaults were chosen as in :mod:`unlearnlib.methods.baselines` (held-out seeds, oracle-free rule, class 3).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vjp

from unlearnlib import cost
from unlearnlib.data import UnlearningTask
from unlearnlib.grads import _check_batchnorm, flatten, trainable
from unlearnlib.methods._loop import run_unlearning, set_grads


def functional_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sign: float = 1.0):
    """``p -> sign · CE(model with parameters p on (x, y))``, buffers copied (chapter 09)."""
    _check_batchnorm(model)
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    return lambda p: sign * nn.functional.cross_entropy(functional_call(model, (p, buffers), (x,)), y)


def lookahead_grads(params: dict, inner, outers: dict, alpha: float, second_order: bool = True):
    """Meta-gradients of every ``outer`` loss at the fast weights θ' = θ − α ∇inner(θ) (chapter 09).

    Returns ``(fast, {name: ∇_θ outer(θ')})`` as dicts of tensors. ``second_order=False`` treats ∇inner(θ) as a
    constant, so the meta-gradient is just ∇outer(θ') (first-order MAML).

    Cost (:mod:`unlearnlib.cost`; the losses are closures, so the caller, who knows their batches, records it): a
    forward and backward pass of the inner batch, one of each outer batch and, with ``second_order``, one
    Hessian-vector product of the inner batch per outer loss.
    """
    def step(p):
        g = grad(inner)(p)
        if not second_order:
            g = {k: v.detach() for k, v in g.items()}
        return {k: p[k] - alpha * g[k] for k in p}

    fast, pullback = vjp(step, params)
    out = {}
    for name, outer in outers.items():
        g_out = grad(outer)({k: v.detach() for k, v in fast.items()})
        out[name] = pullback(g_out)[0] if second_order else g_out
    return fast, out


def lur_objective(model: nn.Module, xf, yf, xr, yr, alpha: float, w_r: float = 1.0, w_f: float = 1.0):
    """The look-ahead objective J(θ) = w_r L_r(θ) + w_f L_u(θ − α ∇L_r(θ)), L_u = −CE_f (chapter 09)."""
    params = {k: v.detach() for k, v in trainable(model).items()}
    L_r, L_u = functional_loss(model, xr, yr), functional_loss(model, xf, yf, sign=-1.0)
    g = grad(L_r)(params)
    return w_r * L_r(params) + w_f * L_u({k: params[k] - alpha * g[k] for k in params})


def lur_meta_gradient(model: nn.Module, xf, yf, xr, yr, alpha: float, w_r: float = 1.0, w_f: float = 1.0,
                      second_order: bool = True) -> torch.Tensor:
    """Flat ∇_θ J of :func:`lur_objective` (exact), or its first-order approximation (chapter 09)."""
    params = {k: v.detach() for k, v in trainable(model).items()}
    L_r, L_u = functional_loss(model, xr, yr), functional_loss(model, xf, yf, sign=-1.0)
    _, meta = lookahead_grads(params, L_r, {"u": L_u}, alpha, second_order)
    g_r = grad(L_r)(params)
    cost.forward_backward(2 * len(yr) + len(yf))   # the inner step, the outer loss at θ', and g_r again
    if second_order:
        cost.hvp(len(yr))
    return flatten({k: w_r * g_r[k] + w_f * meta["u"][k] for k in params})


def lur(model: nn.Module, task: UnlearningTask, epochs: float = 40, lr: float = 1e-3, alpha: float = 0.1,
        w_r: float = 1.0, w_f: float = 1.0, second_order: bool = True, batch_size: int = 32, seed: int = 0,
        stop_at: float | str | None = "auto", **kw) -> nn.Module:
    """LUR, learning to unlearn while retaining (Patel & Qiu, arXiv 2503.06339), as we reconstruct it (chapter 09).

    Minimises J(θ) = w_r L_r(θ) + w_f L_u(θ − α ∇L_r(θ)) with L_u = −CE_f, the loss *minimised* for unlearning
    (putting +CE_f there turns the implicit regulariser into a conflict maximiser). To first order in α,
    J ≈ w_r L_r + w_f L_u − α w_f ⟨∇L_u, ∇L_r⟩: minimising J rewards alignment of the two gradients.
    """
    def step(m, xf, yf, xr, yr):
        set_grads(m, lur_meta_gradient(m, xf, yf, xr, yr, alpha, w_r, w_f, second_order))
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="forget", seed=seed,
                          stop_at=stop_at, desc="lur", **kw)
