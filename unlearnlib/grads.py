"""Gradients: flattening, per-sample gradients with ``torch.func``, cosines and conflict statistics, and the
projections of Part II (chapters 04-07).

All projections work on flat tensors: a gradient is one vector of the P trainable parameters, concatenated in
``model.named_parameters()`` order. Inner products are therefore *global* (summed over all tensors); the
per-tensor ("blockwise") variant of OrthoGrad is a separate, explicit option (chapter 07).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnlib.errors import UnlearnError


def trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by name, in ``named_parameters()`` order (chapter 02)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def flatten(tensors) -> torch.Tensor:
    """Concatenate a dict or list of tensors into one flat vector; a leading batch dim is kept (chapter 02)."""
    values = list(tensors.values()) if isinstance(tensors, dict) else list(tensors)
    return torch.cat([t.reshape(-1) for t in values])


def flatten_batched(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-sample gradients ``{name: [B, *shape]}`` as one matrix ``[B, P]`` (chapter 04)."""
    values = list(tensors.values())
    if not values:
        raise UnlearnError("flatten_batched got no tensors; pass the dict that per_sample_grads returns")
    if any(t.dim() == 0 or t.shape[0] != values[0].shape[0] for t in values):
        raise UnlearnError("flatten_batched needs per-sample tensors [B, *shape] with the same B "
                           f"(got shapes {[tuple(t.shape) for t in values][:4]}); pass what per_sample_grads returns")
    return torch.cat([t.reshape(t.shape[0], -1) for t in values], dim=1)


def unflatten(vec: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat vector back into tensors shaped like ``like`` (chapter 02)."""
    out, i = {}, 0
    for name, t in like.items():
        out[name] = vec[i:i + t.numel()].view_as(t)
        i += t.numel()
    if i != vec.numel():
        raise UnlearnError(f"a flat vector of length {vec.numel()} does not match {i} parameters")
    return out


def loss_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=None) -> torch.Tensor:
    """Flat gradient of the batch-mean loss (default: cross-entropy) w.r.t. the trainable parameters (chapter 02)."""
    _check_batch(x, y, "loss gradients")
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = trainable(model)
    g = torch.autograd.grad(loss_fn(model(x), y), list(params.values()), allow_unused=True)
    return torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1) for gi, p in zip(g, params.values())])


def _check_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise UnlearnError("per-sample and look-ahead gradients need a model without train-mode BatchNorm; "
                               "call model.eval() first or use a GroupNorm model (unlearnlib.models)")


def _check_dropout(model: nn.Module) -> None:
    # vmap runs one traced forward for the whole batch, so it cannot draw a separate dropout mask per sample
    # (torch.func refuses random operations by default). Refusing is the honest choice: silently switching
    # dropout off would compute the gradients of another model than the one being trained.
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            raise UnlearnError("per-sample gradients need a model without active Dropout (vmap cannot draw a "
                               "mask per sample); call model.eval() first or use a model without Dropout")


def check_trainable_per_sample(model: nn.Module, who: str) -> None:
    """Refuse, before any step, a model whose per-sample gradients are undefined *in training mode* (chapter 07).

    Methods of the shared loop train a copy in training mode, so calling ``model.eval()`` does not help them:
    BatchNorm would mix the samples of a batch and Dropout would need a mask per sample, which ``vmap`` cannot
    draw. The library's models (GroupNorm, no Dropout) always qualify.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise UnlearnError(f"{who} needs per-sample gradients in training mode, which BatchNorm does not have "
                               "(it mixes the samples of a batch); use a GroupNorm model (unlearnlib.models)")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise UnlearnError(f"{who} needs per-sample gradients, which vmap cannot compute through Dropout (one "
                               "mask per sample); use a model without Dropout (unlearnlib.models)")


def _check_batch(x: torch.Tensor, y: torch.Tensor, what: str = "per-sample gradients") -> None:
    """Shapes only (no host synchronisation): a batch of inputs [B, ...] and one integer label per sample [B]."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise UnlearnError(f"{what} need tensors x and y, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() < 2:
        raise UnlearnError(f"{what} need a batch of inputs [B, ...], got x of shape {tuple(x.shape)}; "
                           "add the batch dimension with x.unsqueeze(0)")
    if y.dim() != 1:
        raise UnlearnError(f"{what} need one label per sample, y of shape [B], got {tuple(y.shape)}; "
                           "for a single sample use y.reshape(1)")
    if x.shape[0] != y.shape[0]:
        raise UnlearnError(f"x has {x.shape[0]} samples but y has {y.shape[0]}; they must match")


def _check_per_sample_call(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> None:
    """What :func:`per_sample_grads` and :func:`per_sample_grads_loop` both require (shapes and modules only)."""
    _check_batch(x, y)
    if x.shape[0] == 0:
        raise UnlearnError("per-sample gradients of an empty batch were requested; pass at least one sample")
    if loss_fn is None and (y.is_floating_point() or y.dtype == torch.bool):
        raise UnlearnError(f"the default cross-entropy needs integer class labels, got y of dtype {y.dtype}")
    _check_batchnorm(model)
    _check_dropout(model)


def _check_logits(logits: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.shape[0] != 1:
        raise UnlearnError(f"the model maps one sample to outputs of shape {tuple(logits.shape)}, not [1, C]; "
                           "give x as a batch [B, *input_shape] of the shape the model expects")


def per_sample_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=None,
                     chunk_size: int | None = None) -> dict[str, torch.Tensor]:
    """Per-sample gradients of the loss of every sample in the batch (chapter 04).

    Returns ``{name: tensor [B, *param.shape]}`` for the trainable parameters in ``model.named_parameters()``
    order. Computed with ``torch.func``: ``grad`` of a function of one sample, ``vmap``-ed over the batch, with the
    parameters and buffers passed explicitly to ``functional_call``; ``chunk_size`` bounds the memory of the
    vmap. ``loss_fn(logits, targets)`` must reduce by mean (the default is cross-entropy); it is called on a
    batch of one. Their mean equals the gradient of the batch-mean loss.
    """
    _check_per_sample_call(model, x, y, loss_fn)
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = {k: v.detach() for k, v in trainable(model).items()}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def one_sample_loss(p, xi, yi):
        logits = functional_call(model, (p, frozen, buffers), (xi.unsqueeze(0),))
        _check_logits(logits)  # shapes are static under vmap, so this costs nothing per sample
        return loss_fn(logits, yi.unsqueeze(0))

    try:
        return vmap(grad(one_sample_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, x, y)
    except RuntimeError as exc:
        # Inside vmap a wrong input shape surfaces as an error about batched tensors; name the real problem when
        # the model cannot even be applied to one sample of x outside vmap, else re-raise unchanged.
        try:
            with torch.no_grad():
                functional_call(model, (params, frozen, buffers), (x[:1],))
        except RuntimeError as plain:
            first = str(plain).strip().splitlines()[0][:160] if str(plain).strip() else type(plain).__name__
            raise UnlearnError(f"the model cannot be applied to x[:1] of shape {tuple(x[:1].shape)} ({first}); "
                               "give x as a batch [B, *input_shape] of the shape the model expects") from exc
        raise


def per_sample_grads_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=None) -> dict[str, torch.Tensor]:
    """The same as :func:`per_sample_grads` with a Python loop over samples: the slow reference (chapter 04).

    It accepts exactly the models and batches that :func:`per_sample_grads` accepts: a train-mode BatchNorm model
    would otherwise give gradients of another model (batch statistics of one sample) and change its running
    statistics as a side effect.
    """
    _check_per_sample_call(model, x, y, loss_fn)
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = trainable(model)
    rows = []
    for i in range(x.shape[0]):
        logits = model(x[i:i + 1])
        _check_logits(logits)
        g = torch.autograd.grad(loss_fn(logits, y[i:i + 1]), list(params.values()))
        rows.append(g)
    return {n: torch.stack([r[j] for r in rows]) for j, n in enumerate(params)}


def cosine(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Cosine similarity of flat vectors, or row-wise for matrices of the same shape (chapter 04)."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)


def layer_cosines(g_f: torch.Tensor, g_r: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, float]:
    """Cosine between forget and retain gradients restricted to each parameter tensor (chapter 04)."""
    f, r = unflatten(g_f, like), unflatten(g_r, like)
    return {n: cosine(f[n].reshape(-1), r[n].reshape(-1)).item() for n in like}


def conflict_rate(cosines: torch.Tensor) -> float:
    """Fraction of cosines below zero, i.e. of pairs whose gradients conflict (chapter 04)."""
    return (cosines < 0).float().mean().item()


# ---------------------------------------------------------------------------------------------------------------
# Projections of Part II (flat tensors only).
# ---------------------------------------------------------------------------------------------------------------

def _flat(t: torch.Tensor, what: str) -> torch.Tensor:
    if t.dim() != 1:
        raise UnlearnError(f"{what} must be a flat vector (use unlearnlib.grads.flatten), got shape {tuple(t.shape)}")
    return t


def pcgrad(grads) -> torch.Tensor:
    """PCGrad (Yu et al., arXiv 2001.06782) on a list of flat task gradients; returns the summed update (chapter 05).

    Each gradient is projected onto the normal plane of every *original* other gradient it conflicts with
    (negative inner product), visiting the others in order; the projected gradients are summed. With two tasks
    the visiting order does not matter.
    """
    grads = [_flat(g, "each gradient") for g in grads]
    if len(grads) < 2:
        raise UnlearnError("pcgrad needs at least two task gradients")
    if len({g.numel() for g in grads}) != 1:
        raise UnlearnError("pcgrad: all gradients must have the same length")
    out = torch.zeros_like(grads[0])
    for i, gi in enumerate(grads):
        g = gi.clone()
        for j, gj in enumerate(grads):
            if i == j:
                continue
            dot = torch.dot(g, gj)
            # torch.where keeps this free of host-device synchronisation. No floor on ‖g_j‖²: a conflict
            # (dot < 0) implies g_j ≠ 0, so the quotient is finite, and the projection is exactly homogeneous in
            # the scale of the gradients (a fixed floor would silently shorten it for tiny gradients).
            g = g - torch.where(dot < 0, dot / gj.dot(gj), torch.zeros_like(dot)) * gj
        out = out + g
    return out


def unilateral_surgery(g_f: torch.Tensor, g_r: torch.Tensor, eps: float = 0.0):
    """Unilateral gradient surgery, the closed form of min ½‖d − g_f‖² s.t. ⟨g_r, d⟩ ≥ −ε (chapter 05).

    Returns ``(d, lam)`` with ``d = g_f + lam g_r`` and ``lam = max(0, (−⟨g_r, g_f⟩ − ε) / ‖g_r‖²)``. Both
    gradients are in the *descent* convention (the step is θ ← θ − η d). ε = 0 is the one-sided projection of
    PCGrad; ε = ∞ is plain ``g_f``. The statement is Zhou et al. (arXiv 2510.22124); the KKT derivation is ours.
    """
    g_f, g_r = _flat(g_f, "g_f"), _flat(g_r, "g_r")
    if g_f.shape != g_r.shape:
        raise UnlearnError(f"g_f has {g_f.numel()} entries but g_r has {g_r.numel()}; they must match")
    # No floor on ‖g_r‖² (it would make λ* wrong for tiny gradients); g_r = 0 gives λ* = 0, d = g_f: nothing of
    # g_r can be added, and the update is the same whatever λ* is.
    nr = g_r.dot(g_r)
    lam = torch.where(nr > 0, (-torch.dot(g_r, g_f) - eps) / nr, torch.zeros_like(nr)).clamp_min(0.0)
    return g_f + lam * g_r, lam


#: default relative rank tolerance of :func:`project_orthogonal`, in units of the working precision's epsilon.
RANK_RTOL_EPS = 100


def project_orthogonal(g: torch.Tensor, G: torch.Tensor, method: str = "qr", rtol: float | None = None) -> torch.Tensor:
    """Project ``g`` [P] onto the orthogonal complement of the rows of ``G`` [B, P] (chapter 07, OrthoGrad).

    ``method="qr"``: Householder QR of Gᵀ = QR, kept in LAPACK's compact form (``geqrf``) and applied with
    ``ormqr``, so the P x B factor Q is never formed; then an SVD of the small factor R = U S Vᵀ. The directions
    QU whose singular value exceeds ``rtol`` · S_max are an orthonormal basis of the span of the rows of G, so
    rank-deficient G and B ≥ P are handled. ``method="lstsq"``: g − Gᵀc with c the minimum-norm least-squares
    solution of Gᵀc ≈ g, singular values below ``rtol`` · S_max counting as zero (LAPACK's ``gelsd`` on the CPU;
    on other devices, whose ``lstsq`` assumes full rank, the pseudo-inverse ``torch.linalg.pinv``). Both
    compute in at least float32 and never form or invert the Gram matrix GGᵀ, whose condition number is the
    square of G's. Cost O(PB²) time, O(PB) memory.

    ``rtol`` defaults to ``RANK_RTOL_EPS`` (100) times the epsilon of the working precision, *independent of P*:
    rounding G to that precision moves its singular values by about eps · S_max, so anything far above that is a
    real direction. The usual default of rank-revealing routines, eps · max(P, B) (``torch.linalg.lstsq``,
    ``matrix_rank``), grows with P: for the CNN of the book in float32 it drops genuine directions as soon as B
    reaches about 100, and for ResNet-18 (P ≈ 1.1e7) it exceeds 1 and the projection removes nothing (chapter 07).
    """
    g = _flat(g, "g")
    if G.dim() != 2 or G.shape[1] != g.numel():
        raise UnlearnError(f"G must have shape [B, {g.numel()}] to project a vector of length {g.numel()}, "
                           f"got {tuple(G.shape)}")
    if rtol is not None and not 0 <= rtol < 1:
        raise UnlearnError(f"rtol is a relative tolerance on singular values and must lie in [0, 1), got {rtol}")
    # Non-finite input is an error on the CPU, where the check costs no device synchronisation. On other devices
    # it would cost one per call (per step of OrthoGrad), so there a NaN or infinity is instead carried through
    # to a NaN result (see ``nan_guard`` below), never to a plausible finite vector.
    if g.device.type == "cpu" and not bool(torch.isfinite(g).all() & torch.isfinite(G).all()):
        raise UnlearnError("project_orthogonal got NaN or infinite entries in g or G; the gradients diverged "
                           "(lower the learning rate) or the model has NaN weights")
    dtype = torch.promote_types(g.dtype, torch.float32)
    rtol = RANK_RTOL_EPS * torch.finfo(dtype).eps if rtol is None else rtol
    v, A = g.to(dtype), G.to(dtype).T  # A: [P, B], column-major already, so geqrf needs no copy to reorder it
    if method == "qr":
        k = min(A.shape)
        packed, tau = torch.geqrf(A)                      # A = QR, Q as k Householder reflectors
        R = packed[:k].triu()                             # [k, B]
        U, S, _ = torch.linalg.svd(R, full_matrices=False)
        qtv = torch.ormqr(packed, tau, v[:, None], transpose=True)[:k, 0]   # first k entries of Qᵀv
        # Zeroing the coefficients of negligible singular directions (instead of indexing them away) keeps the
        # computation free of data-dependent shapes and of host-device synchronisation.
        coef = torch.zeros_like(v)
        # ``nan_guard`` is exactly 0 for finite S and NaN otherwise: a comparison with NaN is False, so without it
        # a non-finite G would silently zero every coefficient and return g unprojected.
        nan_guard = S.sum() * 0
        coef[:k] = U @ (((S > rtol * S.max()).to(dtype) + nan_guard) * (U.T @ qtv))
        out = v - torch.ormqr(packed, tau, coef[:, None])[:, 0]
    elif method == "lstsq":
        if A.device.type == "cpu":
            c = torch.linalg.lstsq(A, v[:, None], rcond=rtol, driver="gelsd").solution[:, 0]
        else:  # CUDA's lstsq (gels) ignores rcond and needs full rank; pinv is the same minimum-norm solution
            c = torch.linalg.pinv(A, rtol=rtol) @ v
        out = v - A @ c
    else:
        raise UnlearnError(f"unknown projection method {method!r}; use 'qr' or 'lstsq'")
    return out.to(g.dtype)


def harmonize(g_a: torch.Tensor, g_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient harmonisation of two flat gradients, as PCGrad does it (chapter 08, LTU).

    When ⟨g_a, g_b⟩ < 0, each is projected onto the normal plane of the *other original*; otherwise both are
    returned unchanged. The results never have a negative inner product: each is orthogonal to the other's
    original, so ⟨g_a', g_b'⟩ = −c ⟨g_a', g_a⟩ with c = ⟨g_a, g_b⟩/‖g_a‖² < 0 and ⟨g_a', g_a⟩ ≥ 0.
    """
    g_a, g_b = _flat(g_a, "g_a"), _flat(g_b, "g_b")
    dot = torch.dot(g_a, g_b)
    conflict = dot < 0
    if g_a.shape != g_b.shape:
        raise UnlearnError(f"g_a has {g_a.numel()} entries but g_b has {g_b.numel()}; they must match")
    # A conflict implies both are non-zero, so no floor on the squared norms: exactly homogeneous in the scale.
    a = g_a - torch.where(conflict, dot / g_b.dot(g_b), torch.zeros_like(dot)) * g_b
    b = g_b - torch.where(conflict, dot / g_a.dot(g_a), torch.zeros_like(dot)) * g_a
    return a, b
