"""OrthoGrad: project the unlearning gradient onto the orthogonal complement of the batch's per-sample retain
gradients (Shamsian et al., arXiv 2503.02312) (chapter 07).

Defaults were chosen by the rule of :mod:`unlearnlib.methods.baselines` (held-out seeds 100-104, class-wise
forgetting of class 3, the highest retain accuracy among the settings whose forget accuracy reaches the target) in
the setting the method is designed for, a 5 % retain subset (``retain_positions``), over lr ∈ {0.003, 0.01, 0.03,
0.1} × alpha ∈ {0.25, 0.5, 0.75} with 40 epochs: lr 0.01, alpha 0.5 (chapter 07). With the whole retain set the
same rule picks lr 0.03, alpha 0.75 (mean retain accuracy 99.7 % against 99.5 % for the defaults).
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnlib import cost
from unlearnlib.data import UnlearningTask
from unlearnlib.errors import UnlearnError
from unlearnlib.grads import (check_trainable_per_sample, flatten, flatten_batched, gram_coefficients, loss_grad,
                              per_sample_factors, per_sample_grads, per_sample_grads_loop, project_orthogonal,
                              trainable, unflatten)
from unlearnlib.methods._loop import run_unlearning, set_grads

SCOPES = ("global", "tensor")
#: how the per-sample retain gradients are obtained: the per-layer route (default), vmap, or a Python loop.
PER_SAMPLE_ROUTES = ("ghost", "vmap", "loop")


def orthogonal_direction(g_u: torch.Tensor, G: torch.Tensor, sizes: list[int], scope: str = "global") -> torch.Tensor:
    """g_u with the span of the rows of G [B, P] removed, globally or tensor by tensor (chapter 07).

    ``scope="tensor"`` projects every parameter tensor separately (the public OrthoGrad code does this); a tensor
    with no more entries than there are retain samples is then spanned completely and its update is zero. The
    result is orthogonal to every row of G in both scopes; per tensor it is orthogonal to every *piece* of every
    row as well, so it removes at least as much of g_u.
    """
    if scope == "global":
        return project_orthogonal(g_u, G)
    if scope != "tensor":
        raise UnlearnError(f"unknown OrthoGrad scope {scope!r}; use 'global' or 'tensor'")
    if sum(sizes) != g_u.numel():
        raise UnlearnError(f"the tensor sizes add up to {sum(sizes)} but g_u has {g_u.numel()} entries")
    # One small QR per tensor: the tensors have different sizes, so the loop over them cannot be batched.
    return torch.cat([project_orthogonal(gu, Gb) for gu, Gb in zip(g_u.split(sizes), G.split(sizes, dim=1))])


def orthograd(model: nn.Module, task: UnlearningTask, epochs: float = 40, lr: float = 0.01, alpha: float = 0.5,
              batch_size: int = 32, scope: str = "global", mode: str = "per_sample", per_sample: str = "ghost",
              seed: int = 0, stop_at: float | str | None = "auto", momentum: float = 0.0, weight_decay: float = 0.0,
              history: list | None = None, **kw) -> nn.Module:
    """OrthoGrad (chapter 07): θ ← θ − η [α ḡ_r − (1 − α) g_u^⊥].

    g_u is the batch-mean gradient of the *ascended* forget loss CE_f; g_u^⊥ is g_u with the span of the B
    per-sample retain gradients removed (``scope``: one global projection, or one per parameter tensor as in the
    public code), so a small step changes no retain sample's loss in the batch to first order; ḡ_r is their
    mean. ``mode="mean"`` projects against the mean retain gradient only (the paper's ablation; it needs no
    per-sample gradients, so it computes ḡ_r as the batch gradient). ``per_sample`` chooses the route:
    ``"ghost"`` (default) never forms the B x P matrix G: the per-layer route of
    :func:`~unlearnlib.grads.per_sample_factors` gives K = GGᵀ and G g_u, and the whole update
    α ḡ_r + (1 − α) Gᵀc − (1 − α) g_u is one weighted gradient Gᵀ(α/B + (1 − α) c) of the retain batch
    (:func:`~unlearnlib.grads.gram_coefficients`), in O(P + B²) memory beyond one layer's block; ``"vmap"``
    forms G and projects with QR (:func:`~unlearnlib.grads.project_orthogonal`), the reference;
    ``"loop"`` forms G with a Python loop (for timing only). Plain SGD by default (momentum and weight decay
    would undo the orthogonality). ``history``, if a list, receives ‖g_u^⊥‖ / ‖g_u‖ of every step, as floats
    once the run is over (no host synchronisation inside the loop). Pass ``retain_positions`` (see
    :func:`~unlearnlib.methods._loop.run_unlearning`) to restrict the retain batches to a small subset of D_r,
    the setting the paper assumes. A model with BatchNorm or Dropout is refused with ``mode="per_sample"``: its
    per-sample gradients in training mode are not defined (:func:`~unlearnlib.grads.check_trainable_per_sample`).
    """
    if mode not in ("per_sample", "mean"):
        raise UnlearnError(f"unknown OrthoGrad mode {mode!r}; use 'per_sample' or 'mean'")
    if per_sample not in PER_SAMPLE_ROUTES:
        raise UnlearnError(f"per_sample must be one of {', '.join(PER_SAMPLE_ROUTES)}, got {per_sample!r}")
    if scope not in SCOPES:
        raise UnlearnError(f"unknown OrthoGrad scope {scope!r}; use 'global' or 'tensor'")
    if not 0 <= alpha < 1:
        raise UnlearnError(f"alpha must lie in [0, 1), got {alpha}")
    if mode == "per_sample":
        check_trainable_per_sample(model, "orthograd")
    per_sample_fn = per_sample_grads if per_sample == "vmap" else per_sample_grads_loop
    sizes = [p.numel() for p in trainable(model).values()]
    ratios: list[torch.Tensor] = []

    def ghost_step(m, xf, yf, xr, yr):
        # Three passes: g_u (forward and backward on the forget batch), then one forward and one backward to the
        # layer outputs on the retain batch, which give K, G g_u and any combination Gᵀw (chapter 07). Running the
        # two batches through one pass would save a little time on small models, at the price of holding the
        # forget batch's layer inputs too.
        g_u = loss_grad(m, xf, yf)
        gu = unflatten(g_u, trainable(m))
        factors = per_sample_factors(m, xr, yr)
        B = len(yr)
        cost.forward_backward(len(yf) + B)
        if "vmap" in factors.route.values():   # parameters of unsupported layers: a second pass, by vmap
            cost.forward_backward(B)
        if scope == "global":
            K, d = factors.gram_dots(gu)
            c = gram_coefficients(K, d)
            w, removed = alpha / B + (1 - alpha) * c, d @ c          # ‖Gᵀc‖² = dᵀK⁺d = dᵀc
        else:
            blocks = factors.gram_dots(gu, per_tensor=True)
            cs = {n: gram_coefficients(K, d) for n, (K, d) in blocks.items()}
            w = {n: alpha / B + (1 - alpha) * c for n, c in cs.items()}
            removed = sum(blocks[n][1] @ c for n, c in cs.items())
        if history is not None:   # ‖g_u^⊥‖² = ‖g_u‖² − ‖Gᵀc‖² (Pythagoras), in float64
            gu2 = g_u.double().dot(g_u.double())
            ratios.append(((gu2 - removed).clamp_min(0).sqrt() / gu2.sqrt().clamp_min(1e-20)).to(g_u.dtype).detach())
        set_grads(m, flatten(factors.combine(w)) - (1 - alpha) * g_u)

    def step(m, xf, yf, xr, yr):
        if mode == "per_sample" and per_sample == "ghost":
            return ghost_step(m, xf, yf, xr, yr)
        g_u = loss_grad(m, xf, yf)
        if mode == "per_sample":
            G = flatten_batched(per_sample_fn(m, xr, yr))
            g_bar = G.mean(0)
        else:  # the mean of the per-sample gradients is the batch gradient (GroupNorm, or BatchNorm in eval mode)
            g_bar = loss_grad(m, xr, yr)
            G = g_bar[None]
        cost.forward_backward(len(yf) + len(yr))   # per-sample or batch gradients of the retain batch alike
        g_perp = orthogonal_direction(g_u, G, sizes, scope)
        if history is not None:
            ratios.append((g_perp.norm() / g_u.norm().clamp_min(1e-20)).detach())
        set_grads(m, alpha * g_bar - (1 - alpha) * g_perp)

    out = run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="forget", seed=seed,
                         stop_at=stop_at, momentum=momentum, weight_decay=weight_decay, desc="orthograd", **kw)
    if history is not None:
        history.extend(torch.stack(ratios).cpu().tolist() if ratios else [])
    return out
