"""Gradients: flattening, per-sample gradients with ``torch.func``, cosines and conflict statistics, and the
projections of Part II (chapters 04-07).

All projections work on flat tensors: a gradient is one vector of the P trainable parameters, concatenated in
``model.named_parameters()`` order. Inner products are therefore *global* (summed over all tensors); the
per-tensor ("blockwise") variant of OrthoGrad is a separate, explicit option (chapter 07).

Every function that runs the model or projects computes in float32 (or float64) even when called inside a
mixed-precision region (``torch.autocast``), see ``_fp32``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnlib.errors import UnlearnError


def _fp32(fn):
    """Run ``fn`` with autocast switched off (chapter 07). Mixed precision is for training (bfloat16 keeps 8 bits
    of mantissa): inside an autocast region the per-sample gradients would come from bfloat16 activations, and
    projections would take products in bfloat16, whose rounding (about 4e-3) is far above the rank tolerance of
    :func:`project_orthogonal` and the cancellations of PCGrad. The weights stay float32 under autocast, so with
    it off the model computes in float32, as everywhere else."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        active = [d for d in ("cuda", "cpu") if torch.is_autocast_enabled(d)]
        if not active:
            return fn(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for d in active:
                stack.enter_context(torch.autocast(d, enabled=False))
            return fn(*args, **kwargs)
    return wrapper


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


@_fp32
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


@_fp32
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


@_fp32
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


@_fp32
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


@_fp32
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


@_fp32
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


@_fp32
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


# ---------------------------------------------------------------------------------------------------------------
# The per-layer ("ghost") route: what OrthoGrad and the masked test need, without the B x P matrix (chapter 07).
# ---------------------------------------------------------------------------------------------------------------
#
# A linear map z = W a applied at T positions (T = 1 for a Linear layer on vectors, the output pixels of a
# convolution, whose inputs a are the unfolded patches) has the per-sample weight gradient
#     g_i = Σ_t b_{i,t} a_{i,t}ᵀ,   b_{i,t} = ∂ℓ_i / ∂z_{i,t},
# so everything OrthoGrad and the masked test need follows from the layer inputs a and the output gradients b,
# which one forward pass and one backward pass (to the layer outputs only) provide:
#     ⟨g_i, g_j⟩ = Σ_{t,s} (a_{i,t}·a_{j,s}) (b_{i,t}·b_{j,s})       (Gram matrix, B²T²(D + p) operations)
#     ⟨g_i, V⟩   = Σ_t b_{i,t}ᵀ V a_{i,t}                          (products with a direction)
#     Σ_i w_i g_i = Σ_{i,t} w_i b_{i,t} a_{i,t}ᵀ                      (a weighted gradient: one weight-gradient)
# The Gram matrix can also be had by forming the layer's B per-sample gradients (B·T·D·p operations) and
# multiplying them (B²·D·p); per layer, the cheaper of the two is used (``_ghost_is_cheaper``), as in mixed ghost
# clipping (Bu et al., arXiv 2205.10683). Only one layer's per-sample block exists at any time.
# GroupNorm's affine parameters (and biases) have per-sample gradients of C numbers per sample; they are formed
# directly. Parameters of any other module (or of a convolution this route does not cover: groups, non-zero
# padding modes) fall back to vmap per-sample gradients of those parameters only (``route`` says which).

#: the module types whose per-sample gradients the per-layer route computes from inputs and output gradients.
GHOST_MODULES = (nn.Linear, nn.Conv2d, nn.GroupNorm)


def _supported(m: nn.Module) -> bool:
    if isinstance(m, nn.Conv2d):
        return m.groups == 1 and m.padding_mode == "zeros" and not isinstance(m.padding, str)
    return isinstance(m, GHOST_MODULES)


def _ghost_is_cheaper(B: int, T: int, D: int, p: int) -> bool:
    """Operation count of the Gram matrix of one linear layer: the ghost form B²T²(D + p) against forming the
    per-sample gradients, B·T·D·p, and multiplying them, B²·D·p (chapter 07)."""
    return B * B * T * T * (D + p) < B * T * D * p + B * B * D * p


class PerSampleFactors:
    """The per-sample gradients of one batch, held per layer in factored form (chapter 07).

    Made by :func:`per_sample_factors`. Everything is returned per parameter name (``named_parameters()``
    order of the trainable parameters). The Gram matrix and the products with a direction (:meth:`gram_dots`)
    are accumulated in float64: they are B x B and B numbers, and the Gram route then resolves the same
    directions as a QR of G in float32 (:func:`gram_coefficients`). ``route[name]`` is ``"ghost"`` (Gram from
    inputs and output gradients), ``"materialised"`` (the layer's B per-sample gradients formed, one layer at a
    time), ``"per-sample"`` (GroupNorm affine and biases: C numbers per sample) or ``"vmap"`` (fallback for
    parameters of other modules).
    """

    #: the per-sample blocks that :meth:`gram_dots` forms are kept for :meth:`combine` up to this many bytes in all
    #: (a product with a kept block costs B·p·D instead of a weight-gradient pass, B·T·p·D).
    KEEP_BYTES = 1 << 28
    #: :meth:`moments` forms a layer's per-sample gradients in chunks of samples of at most this many bytes.
    CHUNK_BYTES = 1 << 26

    def __init__(self, names, shapes, batch, dtype, device):
        self.names, self.shapes, self.batch, self.dtype, self.device = names, shapes, batch, dtype, device
        self.outer: list[dict] = []          # one linear layer each: module, raw inputs "x", output gradients "dy"
        self.dense: dict[str, torch.Tensor] = {}     # name -> [B, *shape]
        self.route: dict[str, str] = {}

    def rows(self, index: slice) -> "PerSampleFactors":
        """The same factors restricted to the samples ``index`` (a slice of the batch; views, no copies)."""
        sub = PerSampleFactors(self.names, self.shapes, len(range(*index.indices(self.batch))), self.dtype,
                               self.device)
        sub.route = self.route
        sub.outer = [{**layer, "x": [x[index] for x in layer["x"]], "dy": [dy[index] for dy in layer["dy"]]}
                     for layer in self.outer]
        for layer in sub.outer:
            layer.pop("G", None)
        sub.dense = {n: g[index] for n, g in self.dense.items()}
        return sub

    @staticmethod
    def _ab(layer):
        """Inputs [B, T, D] and output gradients [B, T, p] of one linear layer (convolution patches unfolded)."""
        m = layer["module"]
        if isinstance(m, nn.Conv2d):
            a = [nn.functional.unfold(x, m.kernel_size, m.dilation, m.padding, m.stride).transpose(1, 2)
                 for x in layer["x"]]
            b = [dy.flatten(2).transpose(1, 2) for dy in layer["dy"]]
        else:
            a = [x.reshape(x.shape[0], -1, x.shape[-1]) for x in layer["x"]]
            b = [dy.reshape(dy.shape[0], -1, dy.shape[-1]) for dy in layer["dy"]]
        return (a[0], b[0]) if len(a) == 1 else (torch.cat(a, 1), torch.cat(b, 1))

    @staticmethod
    def _materialise(a, b):
        """One layer's per-sample gradients [B, p·D] from its factors: Σ_t b_{i,t} a_{i,t}ᵀ for every sample."""
        return torch.bmm(b.transpose(1, 2), a).reshape(a.shape[0], -1)

    @_fp32
    def gram_dots(self, v: dict[str, torch.Tensor] | None = None, per_tensor: bool = False):
        """The Gram matrix K = G Gᵀ [B, B] and, if ``v`` (a direction, per name) is given, d = G v [B], both
        float64; summed over all parameters, or ``{name: (K, d)}`` with ``per_tensor``."""
        B, acc = self.batch, torch.float64
        out, kept = {}, 0

        def dense_block(G, vn):     # G [B, n] in the working precision; products in float64, in column chunks
            K = torch.zeros(B, B, dtype=acc, device=G.device)
            d = torch.zeros(B, dtype=acc, device=G.device) if vn is not None else None
            step = max(1, (1 << 22) // B)     # about 32 MB of float64 at a time: never a float64 copy of a large block
            for j in range(0, G.shape[1], step):
                Gc = G[:, j:j + step].to(acc)
                K = K + Gc @ Gc.T
                if vn is not None:
                    d = d + Gc @ vn[j:j + step].to(acc)
            return K, d

        for layer in self.outer:
            name = layer["weight"]
            vn = v[name].reshape(-1) if v is not None else None
            a, b = self._ab(layer)
            if layer["ghost"]:
                a, b = a.to(acc), b.to(acc)
                T = a.shape[1]
                aa = (a.reshape(B * T, -1) @ a.reshape(B * T, -1).T).view(B, T, B, T)
                bb = (b.reshape(B * T, -1) @ b.reshape(B * T, -1).T).view(B, T, B, T)
                K = (aa * bb).sum((1, 3))
                d = ((a @ vn.to(acc).view(b.shape[-1], -1).T) * b).sum((1, 2)) if vn is not None else None
                out[name] = (K, d)
            else:
                G = self._materialise(a, b)
                out[name] = dense_block(G, vn)
                if kept + G.numel() * G.element_size() <= self.KEEP_BYTES:
                    layer["G"], kept = G, kept + G.numel() * G.element_size()
        if per_tensor:
            for n, g in self.dense.items():
                out[n] = dense_block(g.reshape(B, -1), v[n].reshape(-1) if v is not None else None)
            return out
        if self.dense:   # the small blocks together: one product instead of one per tensor
            names = list(self.dense)
            G = torch.cat([self.dense[n].reshape(B, -1) for n in names], 1)
            vn = torch.cat([v[n].reshape(-1) for n in names]) if v is not None else None
            out["(per-sample)"] = dense_block(G, vn)
        K = sum(k for k, _ in out.values())
        d = sum(dd for _, dd in out.values()) if v is not None else None
        return K, d

    @_fp32
    def combine(self, w) -> dict[str, torch.Tensor]:
        """Σ_i w_i g_i per parameter, in the parameters' dtype; ``w`` is [B] or ``{name: [B]}`` (one weight vector
        per tensor). With w = 1/B it is the mean gradient. For a layer this is the weight gradient of its output
        gradients scaled by w, one call of the layer's own weight-gradient kernel."""
        out = {}
        for layer in self.outer:
            name, m = layer["weight"], layer["module"]
            wn = (w[name] if isinstance(w, dict) else w).to(self.dtype)
            if "G" in layer:
                out[name] = wn @ layer["G"]
            elif isinstance(m, nn.Conv2d):
                out[name] = sum(nn.grad.conv2d_weight(x, m.weight.shape, dy * wn[:, None, None, None], m.stride,
                                                      m.padding, m.dilation, m.groups)
                                for x, dy in zip(layer["x"], layer["dy"]))
            else:
                a, b = self._ab(layer)
                out[name] = (b * wn[:, None, None]).reshape(-1, b.shape[-1]).T @ a.reshape(-1, a.shape[-1])
        for name, g in self.dense.items():
            wn = (w[name] if isinstance(w, dict) else w).to(g.dtype)
            out[name] = (wn @ g.reshape(self.batch, -1)).view(self.shapes[name])
        return {n: out[n].reshape(self.shapes[n]) for n in self.names}

    @_fp32
    def moments(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per coordinate, the mean of the B per-sample gradients and the mean of their squares (chapter 10).

        A layer applied at one position (T = 1: a Linear layer on vectors) needs no per-sample gradients:
        Σ_i g_i² = (b∘b)ᵀ(a∘a). With T > 1 the square of a sum over positions does not factor, so the layer's
        per-sample block is formed, one layer at a time, as BackPACK's ``SumGradSquared`` does for convolutions
        (Dangel et al., arXiv 1912.10985).
        """
        B = self.batch
        mean, second = {}, {}
        for layer in self.outer:
            name = layer["weight"]
            a, b = self._ab(layer)
            if a.shape[1] == 1:
                a, b = a[:, 0], b[:, 0]
                mean[name], second[name] = b.T @ a / B, (b * b).T @ (a * a) / B
            else:   # in chunks of samples, so that at most CHUNK_BYTES of per-sample gradients exist at a time
                n = max(1, self.CHUNK_BYTES // (a.shape[2] * b.shape[2] * a.element_size()))
                total, squares = 0, 0
                for j in range(0, B, n):
                    G = self._materialise(a[j:j + n], b[j:j + n])
                    total, squares = total + G.sum(0), squares + (G * G).sum(0)
                mean[name], second[name] = total / B, squares / B
        if self.dense:   # the small blocks together: two reductions instead of two per tensor
            names = list(self.dense)
            G = torch.cat([self.dense[n].reshape(B, -1) for n in names], 1)
            sizes = [self.dense[n][0].numel() for n in names]
            mean.update(zip(names, G.mean(0).split(sizes)))
            second.update(zip(names, (G * G).mean(0).split(sizes)))
        return ({n: mean[n].reshape(self.shapes[n]) for n in self.names},
                {n: second[n].reshape(self.shapes[n]) for n in self.names})

    def counted_bytes(self, gram: bool = True) -> int:
        """The bytes this route holds at its peak beyond a batch backward pass, counted from the shapes (chapter 07):
        the layer inputs (kept alive after autograd would have freed them) and output gradients, the per-sample
        blocks of GroupNorm, biases and fallback parameters, the materialised blocks kept for :meth:`combine`
        (``KEEP_BYTES`` at most), plus the largest per-layer temporary: the unfolded patches and either the layer's
        per-sample block with one float64 chunk, or the float64 factors and their two B·T x B·T products (ghost
        form); and the B x B Gram matrix. ``gram=False`` counts what :meth:`moments` needs: no Gram matrix, no
        kept blocks, no float64 chunk."""
        item = torch.empty((), dtype=self.dtype).element_size()
        B = self.batch
        held = sum(t.numel() for layer in self.outer for t in (*layer["x"], *layer["dy"])) * item
        held += sum(t.numel() for t in self.dense.values()) * item
        temp, kept = 0, 0
        for layer in self.outer:
            T, D, p = layer["T"], layer["D"], layer["p"]
            if gram and not layer["ghost"] and kept + B * D * p * item <= self.KEEP_BYTES:   # kept for combine()
                kept += B * D * p * item
            unfolded = B * T * D * item if isinstance(layer["module"], nn.Conv2d) else 0
            if not gram:                 # moments: T = 1 factored, else a chunk of samples and its square
                n = min(B, max(1, self.CHUNK_BYTES // (D * p * item)))
                work = 0 if T == 1 else 2 * n * D * p * item + 2 * D * p * item
            elif layer["ghost"]:
                work = 2 * (B * T) ** 2 * 8 + B * T * (D + p) * 8
            else:
                work = B * D * p * item + B * min(D * p, max(1, (1 << 22) // B)) * 8
            temp = max(temp, unfolded + work)
        return held + kept + temp + (2 * B * B * 8 if gram else 0)


@_fp32
def per_sample_factors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=None) -> PerSampleFactors:
    """Per-sample gradients of the batch in per-layer factored form: one forward pass with hooks that keep each
    layer's input, one backward pass to the layer outputs (no parameter gradient is formed) (chapter 07).

    Accepts exactly what :func:`per_sample_grads` accepts (the same checks). ``loss_fn`` must reduce by mean over
    samples; it is multiplied by B so that the output gradients are those of the per-sample losses. Which form
    each layer uses is decided here, by ``_ghost_is_cheaper``.
    """
    _check_per_sample_call(model, x, y, loss_fn)
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = trainable(model)
    B = x.shape[0]
    first = next(iter(params.values()), None)
    if first is None:
        raise UnlearnError("the model has no trainable parameters")
    out = PerSampleFactors(list(params), {n: p.shape for n, p in params.items()}, B, first.dtype, first.device)
    ids = {id(p): n for n, p in params.items()}
    layers, handled = {}, set()
    for m in model.modules():
        own = {k: ids[id(p)] for k, p in m.named_parameters(recurse=False) if id(p) in ids}
        if own and _supported(m):
            layers[id(m)] = {"module": m, "own": own, "x": [], "o": [], "dy": []}
            handled.update(own.values())

    def hook(m, inputs, output):
        layers[id(m)]["x"].append(inputs[0].detach())      # shares the version counter of the input
        layers[id(m)]["o"].append((output, output._version, inputs[0]._version))

    handles = [layer["module"].register_forward_hook(hook) for layer in layers.values()]
    try:
        with torch.enable_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    # A layer whose input or output was later changed in place (an ``inplace=True`` activation) no longer holds
    # the tensors its gradient needs: its parameters go to the vmap fallback instead.
    for key in [k for k, layer in layers.items()
                if any(o._version != v or xi._version != vx for (o, v, vx), xi in zip(layer["o"], layer["x"]))]:
        handled.difference_update(layers.pop(key)["own"].values())
    for layer in layers.values():
        layer["o"] = [o for o, _, _ in layer["o"]]
    if logits.dim() != 2 or logits.shape[0] != B:
        raise UnlearnError(f"the model maps a batch of {B} to outputs of shape {tuple(logits.shape)}, not [B, C]")
    outputs = [o for layer in layers.values() for o in layer["o"]]
    grads = torch.autograd.grad(loss_fn(logits, y) * B, outputs, allow_unused=True) if outputs else ()
    k = 0
    for layer in layers.values():
        n_uses = len(layer["o"])
        layer["dy"] = [g.detach() if g is not None else torch.zeros_like(o)
                       for g, o in zip(grads[k:k + n_uses], layer["o"])]
        k += n_uses
        layer["o"] = []
        m, own = layer["module"], layer["own"]
        if not layer["x"]:           # never called in this forward pass: its gradients are zero
            for name in own.values():
                out.dense[name] = torch.zeros(B, *params[name].shape, dtype=params[name].dtype, device=x.device)
                out.route[name] = "per-sample"
            continue
        if isinstance(m, nn.GroupNorm):
            if "weight" in own:
                xhat = [nn.functional.group_norm(xi, m.num_groups, eps=m.eps) for xi in layer["x"]]
                out.dense[own["weight"]] = sum((dy * xh).reshape(B, m.num_channels, -1).sum(2)
                                               for dy, xh in zip(layer["dy"], xhat))
            if "bias" in own:
                out.dense[own["bias"]] = sum(dy.reshape(B, m.num_channels, -1).sum(2) for dy in layer["dy"])
            out.route.update({name: "per-sample" for name in own.values()})
            continue
        if isinstance(m, nn.Conv2d):
            D = m.in_channels * math.prod(m.kernel_size)
            T = sum(dy[0, 0].numel() for dy in layer["dy"])
            p = m.out_channels
            bias = (lambda dy: dy.flatten(2).sum(2))
        else:
            D, p = m.in_features, m.out_features
            T = sum(dy[0].numel() // p for dy in layer["dy"])
            bias = (lambda dy: dy.reshape(B, -1, p).sum(1))
        if "bias" in own:
            out.dense[own["bias"]] = sum(bias(dy) for dy in layer["dy"])
            out.route[own["bias"]] = "per-sample"
        if "weight" in own:
            layer.update(weight=own["weight"], T=T, D=D, p=p, ghost=_ghost_is_cheaper(B, T, D, p))
            out.outer.append(layer)
            out.route[own["weight"]] = "ghost" if layer["ghost"] else "materialised"
    rest = [n for n in params if n not in handled]
    if rest:
        out.dense.update(_per_sample_subset(model, x, y, loss_fn, rest))
        out.route.update({n: "vmap" for n in rest})
    return out


def _per_sample_subset(model, x, y, loss_fn, names) -> dict[str, torch.Tensor]:
    """vmap per-sample gradients of the parameters ``names`` only, the others held fixed (the fallback)."""
    params = {n: p.detach() for n, p in model.named_parameters() if n in names}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in names}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def one_sample_loss(p, xi, yi):
        return loss_fn(functional_call(model, (p, frozen, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    return vmap(grad(one_sample_loss), in_dims=(None, 0, 0))(params, x, y)


@_fp32
def gram_coefficients(K: torch.Tensor, d: torch.Tensor, rtol: float | None = None) -> torch.Tensor:
    """c with Gᵀc the orthogonal projection of g onto the span of the rows of G, from K = GGᵀ and d = Gg only
    (chapter 07): c = K⁺d, the pseudo-inverse through an eigendecomposition of K in float64 with eigenvalues
    below ``rtol`` · λ_max counted as zero.

    ``rtol`` defaults to (``RANK_RTOL_EPS`` · eps of float32)², the square of :func:`project_orthogonal`'s cut on
    singular values: K is the *exact* (to float64 rounding) Gram matrix of the float32 per-sample gradients, so
    its eigenvalues are the squared singular values of that G to about 1e-16 λ_max, far below the cut. Formed
    in float32 instead, K would be accurate only to about 1e-7 λ_max and directions with σ < 3e-4 σ_max would be
    lost (chapter 07).
    """
    K, d = K.to(torch.float64), d.to(torch.float64)
    rtol = (RANK_RTOL_EPS * torch.finfo(torch.float32).eps) ** 2 if rtol is None else rtol
    if K.device.type == "cpu" and not bool(torch.isfinite(K).all() & torch.isfinite(d).all()):
        raise UnlearnError("the Gram matrix or the products have NaN or infinite entries; the gradients diverged "
                           "(lower the learning rate) or the model has NaN weights")
    lam, V = torch.linalg.eigh(K)
    nan_guard = lam.sum() * 0          # NaN when K is not finite, so a NaN is carried to the result (see above)
    keep = (lam > rtol * lam.max()).to(K.dtype) + nan_guard
    return V @ (keep * (V.T @ d) / torch.where(keep > 0, lam, torch.ones_like(lam)))


#: the per-sample routes whose memory :func:`per_sample_bytes` counts.
BYTE_ROUTES = ("ghost", "moments", "vmap", "loop")


def per_sample_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, route: str) -> int:
    """The bytes a route allocates for the per-sample work on the batch (x, y) at its peak, beyond a batch
    backward pass, counted from the shapes (chapter 07); nothing is computed (it runs on the ``meta`` device).

    ``"vmap"`` and ``"loop"``: the B x P matrix G and the copy that the QR factorisation overwrites,
    2·B·P numbers. ``"ghost"`` (OrthoGrad) and ``"moments"`` (the masked test): what
    :meth:`PerSampleFactors.counted_bytes` counts (layer inputs and output gradients, one layer's temporaries).
    """
    if route not in BYTE_ROUTES:
        raise UnlearnError(f"route must be one of {', '.join(BYTE_ROUTES)}, got {route!r}")
    params = trainable(model)
    item = next(iter(params.values())).element_size()
    if route in ("vmap", "loop"):
        return 2 * x.shape[0] * sum(p.numel() for p in params.values()) * item
    meta = copy.deepcopy(model).to("meta")   # shapes only: no data, no arithmetic
    with torch.enable_grad():
        factors = per_sample_factors(meta, x.to("meta"), y.to("meta"))
    return factors.counted_bytes(gram=route == "ghost")
