"""Diagnosing gradient conflict: loss changes along a direction, forget/retain gradient pairs, per-layer and
per-sample cosines, and a ``post_step`` hook that records them along a run (chapter 04).

Conventions (chapter 04, §4.2). Every objective is *minimised* and every update is written in the descent
convention, ``θ ← θ − η d``. The forget objective is ``L_f = −CE_f`` by default (gradient ascent written as
descent), so the forget gradient is ``g_f = ∇L_f = −∇CE_f``; the retain gradient is ``g_r = ∇L_r`` with ``L_r``
the retain cross-entropy. To first order a step along ``d`` changes a loss ``L`` by ``−η ⟨∇L, d⟩``, so the two
gradients **conflict** when ``⟨g_f, g_r⟩ < 0``: a step that lowers ``L_f`` then raises ``L_r``.

The tracker is a diagnostic and costs what it measures; see :class:`ConflictTracker` for the numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from unlearnlib.data import UnlearningTask
from unlearnlib.errors import UnlearnError
from unlearnlib.grads import flatten_batched, per_sample_grads, trainable

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def neg_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The forget objective of gradient ascent in the descent convention, ``L_f = −CE`` (chapters 02, 04)."""
    return -nn.functional.cross_entropy(logits, y)


# ---------------------------------------------------------------------------------------------------------------
# The first-order model of a loss change (§4.2).
# ---------------------------------------------------------------------------------------------------------------

def loss_change(model: nn.Module, x: torch.Tensor, y: torch.Tensor, direction: torch.Tensor, etas,
                loss_fn: LossFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Measured and first-order loss changes of the step ``θ − η d`` for each ``η`` in ``etas`` (chapter 04).

    Returns ``(measured, predicted)``, two tensors of ``len(etas)`` values: ``L(θ − η d) − L(θ)`` evaluated
    exactly (with ``functional_call``, the model is not changed), and the linear prediction ``−η ⟨∇L(θ), d⟩``.
    ``direction`` is a flat vector over the trainable parameters (``unlearnlib.grads.flatten`` order). The
    computation runs in the model's dtype: use a float64 copy of the model to see errors below float32 rounding.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = {n: p.detach() for n, p in trainable(model).items()}
    numel = sum(p.numel() for p in params.values())
    if direction.dim() != 1 or direction.numel() != numel:
        raise UnlearnError(f"direction must be a flat vector of the model's {numel} trainable parameters, "
                           f"got shape {tuple(direction.shape)}")
    etas = torch.as_tensor(etas, dtype=direction.dtype, device=direction.device).reshape(-1)
    if etas.numel() == 0:
        raise UnlearnError("etas is empty; pass the step sizes to evaluate, e.g. torch.logspace(-6, -2, 9)")
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    pieces = dict(zip(params, direction.to(next(iter(params.values())).dtype).split(
        [p.numel() for p in params.values()])))

    def loss_at(p):
        return loss_fn(functional_call(model, (p, frozen, buffers), (x,)), y)

    with torch.enable_grad():
        leaf = {n: p.clone().requires_grad_(True) for n, p in params.items()}
        base = loss_at(leaf)
        g = torch.autograd.grad(base, list(leaf.values()))
    slope = sum((gi.reshape(-1) * pieces[n]).sum() for gi, n in zip(g, params))      # ⟨∇L, d⟩
    with torch.no_grad():
        measured = torch.stack([loss_at({n: p - eta * pieces[n].view_as(p) for n, p in params.items()}) - base
                                for eta in etas])
    return measured.detach(), (-etas * slope).detach()


# ---------------------------------------------------------------------------------------------------------------
# Gradient pairs, per-layer and per-sample cosines (§4.3, §4.4).
# ---------------------------------------------------------------------------------------------------------------

def _grad_and_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn):
    """Flat gradient, loss and accuracy (in %, a 0-d tensor: no host sync) of one batch-mean loss."""
    params = list(trainable(model).values())
    with torch.enable_grad():
        logits = model(x)
        loss = loss_fn(logits, y)
        g = torch.autograd.grad(loss, params, allow_unused=True)
    flat = torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1) for gi, p in zip(g, params)])
    acc = 100.0 * (logits.detach().argmax(1) == y).float().mean()
    return flat, loss.detach(), acc


def forget_retain_grads(model: nn.Module, x_forget: torch.Tensor, y_forget: torch.Tensor, x_retain: torch.Tensor,
                        y_retain: torch.Tensor, forget_loss: LossFn | None = None,
                        retain_loss: LossFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat gradients ``(g_f, g_r)`` of the forget objective (default ``−CE``) and the retain loss (chapter 04).

    Both are gradients of batch-mean losses in the descent convention, over whatever samples are passed (the
    whole forget set and a retain probe, in §4.3). Two forward and two backward passes; ``.grad`` is untouched.
    """
    if len(y_forget) == 0 or len(y_retain) == 0:
        raise UnlearnError("forget_retain_grads needs at least one forget and one retain sample")
    g_f = _grad_and_loss(model, x_forget, y_forget, forget_loss or neg_ce)[0]
    g_r = _grad_and_loss(model, x_retain, y_retain, retain_loss or nn.functional.cross_entropy)[0]
    return g_f, g_r


def count_passes(model: nn.Module) -> dict[str, int]:
    """Count the forward passes of ``model`` and the backward passes through its output (chapter 06, §6.8).

    Installs a forward hook that counts every call and, when the output requires a gradient, puts a tensor hook on
    it that counts each backward pass through it. Returns the live ``{"forward", "backward"}`` dict. The hook is a
    plain function over that dict (not a bound method), so the deep copy that every method makes of its input
    keeps counting into the same dict.
    """
    counts = {"forward": 0, "backward": 0}

    def on_backward(grad):
        counts["backward"] += 1

    def on_forward(module, inputs, output):
        counts["forward"] += 1
        if output.requires_grad:
            output.register_hook(on_backward)

    model.register_forward_hook(on_forward)
    return counts


def layer_index(model: nn.Module) -> tuple[list[str], torch.Tensor]:
    """Names of the trainable parameter tensors and, for each of the P flat coordinates, its tensor's index
    (chapter 04). With it, per-layer reductions of flat vectors are one ``index_add_``, without a Python loop."""
    params = trainable(model)
    names = list(params)
    device = next(iter(params.values())).device
    sizes = torch.tensor([p.numel() for p in params.values()], device=device)
    return names, torch.repeat_interleave(torch.arange(len(names), device=device), sizes)


def blockwise_cosines(a: torch.Tensor, b: torch.Tensor, index: torch.Tensor, n_blocks: int | None = None,
                      eps: float = 1e-12) -> torch.Tensor:
    """Cosine of two flat vectors restricted to each block (parameter tensor) of ``index`` (chapter 04).

    ``index`` is the second output of :func:`layer_index`. Returns a tensor ``[n_blocks]`` and never leaves the
    device (compare :func:`unlearnlib.grads.layer_cosines`, which returns Python floats). A block where one of
    the vectors is zero gets cosine 0.
    """
    if a.shape != b.shape or a.shape != index.shape:
        raise UnlearnError(f"a, b and index must be flat and of the same length, got {tuple(a.shape)}, "
                           f"{tuple(b.shape)}, {tuple(index.shape)}")
    n = int(n_blocks) if n_blocks is not None else int(index.max()) + 1
    zeros = torch.zeros(n, dtype=a.dtype, device=a.device)
    dot = zeros.index_add(0, index, a * b)
    na = zeros.index_add(0, index, a * a).sqrt()
    nb = zeros.index_add(0, index, b * b).sqrt()
    return dot / (na * nb).clamp_min(eps)


def sample_cosines(model: nn.Module, g: torch.Tensor, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None = None,
                   chunk_size: int | None = None, eps: float = 1e-12) -> torch.Tensor:
    """``cos(g, g^(i))`` for every sample ``i`` of ``(x, y)``, with ``g^(i)`` its per-sample gradient (chapter 04).

    The per-sample gradients come from :func:`unlearnlib.grads.per_sample_grads` (``vmap`` of ``grad``); the
    ``[B, P]`` matrix is formed once and reduced against ``g``. ``loss_fn`` defaults to cross-entropy.
    """
    G = flatten_batched(per_sample_grads(model, x, y, loss_fn=loss_fn, chunk_size=chunk_size))
    if G.shape[1] != g.numel():
        raise UnlearnError(f"g has {g.numel()} entries but the model has {G.shape[1]} trainable parameters")
    return (G @ g) / (G.norm(dim=1) * g.norm()).clamp_min(eps)


def conflict_by_class(cosines, labels, num_classes: int) -> dict[str, np.ndarray]:
    """Per class of the samples: their number, mean cosine and conflict rate (share of cosines < 0) (chapter 04).

    ``cosines`` is ``[B]`` or ``[T, B]`` (several records of the same probe: the statistics pool them); ``labels``
    is ``[B]``. Returns ``{"count", "mean_cos", "conflict_rate"}``, arrays of ``num_classes`` (NaN for a class
    absent from the probe).
    """
    c = np.atleast_2d(np.asarray(cosines, dtype=float))
    lab = np.asarray(labels).reshape(-1)
    if c.shape[1] != len(lab):
        raise UnlearnError(f"{c.shape[1]} cosines per record but {len(lab)} labels; they must match")
    count = np.bincount(lab, minlength=num_classes)[:num_classes]
    mean, rate = np.full(num_classes, np.nan), np.full(num_classes, np.nan)
    for k in np.flatnonzero(count):
        mean[k] = c[:, lab == k].mean()
        rate[k] = (c[:, lab == k] < 0).mean()
    return {"count": count, "mean_cos": mean, "conflict_rate": rate}


# ---------------------------------------------------------------------------------------------------------------
# The post-step hook.
# ---------------------------------------------------------------------------------------------------------------

class ConflictTracker:
    """A ``post_step(model, opt)`` hook that records the forget/retain gradient conflict along a run (chapter 04).

    Every ``every`` optimiser steps it computes, at the current parameters:

    - ``g_f``: the gradient of the forget objective (default ``L_f = −CE``) over the **whole** forget set;
    - ``g_r``: the gradient of the retain cross-entropy over a **fixed probe** of ``probe_size`` retain samples,
      drawn once from ``probe_seed`` (``None``: all of ``D_r``). The same probe is used at every record, so
      changes along the run are changes of the model, not of the sample;
    - their cosine, both norms, the two losses and the two accuracies (forget set, probe);
    - with ``per_layer=True``, the cosine restricted to each parameter tensor (:func:`blockwise_cosines`);
    - with ``per_sample=True``, every ``sample_every`` records (default 1), ``cos(g_f, g_r^(i))`` for each probe
      sample ``i`` and the conflict rate, the share of probe samples with a negative cosine
      (:func:`sample_cosines`).

    Use it with any method that runs through ``run_unlearning``: ``method(model, task, post_step=tracker)``. In
    :func:`unlearnlib.experiment.compare_methods`, attach one tracker per run with a setup function::

        trackers = {}
        def setup(task, seed):
            trackers[task.scenario, seed] = ConflictTracker(task, every=5)
            return {"post_step": trackers[task.scenario, seed]}
        comparison = compare_methods({"ga": ("ga", setup)}, "class")

    Call :meth:`record` yourself to add a point, e.g. ``tracker.record(model0, step=0)`` at ``θ0`` before the
    run (chapter 04, §4.3, does this in its setup function).

    Read the results after the run: :attr:`steps`, :attr:`cos`, :attr:`forget_norm`, :attr:`retain_norm`,
    :attr:`forget_loss`, :attr:`retain_loss`, :attr:`forget_acc`, :attr:`retain_acc`, :attr:`layer_cos`
    ``[T, L]`` with ``layer_names``,
    :attr:`sample_steps`, :attr:`sample_cos` ``[T_s, B]``, :attr:`conflict_rate`, and :attr:`probe_labels`;
    all NumPy arrays.

    **Cost.** Each record is one forward and backward pass over ``D_f`` and one over the probe, i.e. the work of
    about ``(|D_f| + probe_size) / batch_size`` unlearning steps; ``per_layer`` adds nothing measurable;
    ``per_sample`` adds a vmapped per-sample backward over the probe (several times a batch backward, and
    ``probe_size × P`` floats of memory; ``chunk_size`` bounds it). The hook itself never synchronises with the
    device: results stay as tensors on the device and are converted to NumPy once, when first read. The model is
    measured in evaluation mode (restored afterwards), so a hook never changes normalisation statistics, and
    ``.grad`` and the optimiser state are not touched: the run is the same with or without the tracker.
    """

    def __init__(self, task: UnlearningTask, *, every: int = 1, probe_size: int | None = 256, probe_seed: int = 0,
                 per_layer: bool = False, per_sample: bool = False, sample_every: int = 1,
                 forget_loss: LossFn | None = None, chunk_size: int | None = None):
        if int(every) < 1 or int(sample_every) < 1:
            raise UnlearnError(f"every and sample_every must be at least 1, got {every} and {sample_every}")
        if len(task.forget_idx) == 0:
            raise UnlearnError("the task's forget set is empty; there is no forget gradient to track")
        n_r = len(task.retain_idx)
        if probe_size is not None and not 1 <= int(probe_size) <= n_r:
            raise UnlearnError(f"probe_size must lie in 1..{n_r} (the retain set's size), or None for all of D_r; "
                               f"got {probe_size}")
        self.every, self.sample_every = int(every), int(sample_every)
        self.per_layer, self.per_sample = bool(per_layer), bool(per_sample)
        self.forget_objective = forget_loss or neg_ce
        self.chunk_size = chunk_size
        self.x_forget, self.y_forget = task.x_forget, task.y_forget
        if probe_size is None:
            pos = torch.arange(n_r)
        else:
            pos = torch.randperm(n_r, generator=torch.Generator().manual_seed(probe_seed))[:int(probe_size)]
        self.probe_positions = pos.numpy()
        pos = pos.to(task.y_retain.device)
        self.x_probe, self.y_probe = task.x_retain[pos], task.y_retain[pos]
        self.calls = 0
        self.layer_names: list[str] = []
        self._index = None
        self._rec: dict[str, list] = {k: [] for k in ("step", "cos", "forget_norm", "retain_norm", "forget_loss",
                                                      "retain_loss", "forget_acc", "retain_acc", "layer_cos",
                                                      "sample_step", "sample_cos")}
        self._cache: dict[str, np.ndarray] = {}
        self._n_records = 0

    # -- the hook ------------------------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, opt: torch.optim.Optimizer | None = None) -> None:
        """The ``post_step`` hook of ``run_unlearning``: count the step and record every ``every`` steps."""
        self.calls += 1
        if self.calls % self.every == 0:
            self.record(model, step=self.calls)

    def record(self, model: nn.Module, step: int) -> None:
        """Measure ``model`` now and store the result under ``step`` (no host-device synchronisation)."""
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            xf, yf = self.x_forget.to(device), self.y_forget.to(device)
            xr, yr = self.x_probe.to(device), self.y_probe.to(device)
            g_f, lf, af = _grad_and_loss(model, xf, yf, self.forget_objective)
            g_r, lr, ar = _grad_and_loss(model, xr, yr, nn.functional.cross_entropy)
            nf, nr = g_f.norm(), g_r.norm()
            rec = self._rec
            rec["step"].append(int(step))
            rec["cos"].append(g_f.dot(g_r) / (nf * nr).clamp_min(1e-12))
            rec["forget_norm"].append(nf)
            rec["retain_norm"].append(nr)
            rec["forget_loss"].append(lf)
            rec["retain_loss"].append(lr)
            rec["forget_acc"].append(af)
            rec["retain_acc"].append(ar)
            if self.per_layer:
                if self._index is None:
                    self.layer_names, self._index = layer_index(model)
                rec["layer_cos"].append(blockwise_cosines(g_f, g_r, self._index, len(self.layer_names)))
            if self.per_sample and self._n_records % self.sample_every == 0:
                rec["sample_step"].append(int(step))
                rec["sample_cos"].append(sample_cosines(model, g_f, xr, yr, chunk_size=self.chunk_size))
            self._n_records += 1
            self._cache.clear()
        finally:
            model.train(was_training)

    # -- results -------------------------------------------------------------------------------------------------
    def _array(self, key: str) -> np.ndarray:
        if key not in self._cache:
            vals = self._rec[key]
            if not vals:
                self._cache[key] = np.array([])
            elif isinstance(vals[0], int):
                self._cache[key] = np.array(vals, dtype=int)
            else:
                self._cache[key] = torch.stack(vals).detach().double().cpu().numpy()
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._rec["step"])

    @property
    def steps(self) -> np.ndarray:
        """The optimiser step of each record (0 for a record made before the run)."""
        return self._array("step")

    @property
    def cos(self) -> np.ndarray:
        """``cos(g_f, g_r)`` at each record."""
        return self._array("cos")

    @property
    def forget_norm(self) -> np.ndarray:
        """``‖g_f‖`` at each record."""
        return self._array("forget_norm")

    @property
    def retain_norm(self) -> np.ndarray:
        """``‖g_r‖`` (probe) at each record."""
        return self._array("retain_norm")

    @property
    def forget_loss(self) -> np.ndarray:
        """The forget objective ``L_f`` over ``D_f`` at each record (``−CE_f`` by default)."""
        return self._array("forget_loss")

    @property
    def retain_loss(self) -> np.ndarray:
        """The retain cross-entropy over the probe at each record."""
        return self._array("retain_loss")

    @property
    def forget_acc(self) -> np.ndarray:
        """The accuracy on ``D_f`` at each record, in % (free: the logits are computed for ``g_f`` anyway)."""
        return self._array("forget_acc")

    @property
    def retain_acc(self) -> np.ndarray:
        """The accuracy on the probe at each record, in %."""
        return self._array("retain_acc")

    @property
    def layer_cos(self) -> np.ndarray:
        """``[T, L]``: the cosine per parameter tensor (``per_layer=True``), rows in :attr:`steps` order."""
        if not self.per_layer:
            raise UnlearnError("this tracker was built without per_layer=True; build it with per_layer=True")
        return self._array("layer_cos")

    @property
    def sample_steps(self) -> np.ndarray:
        """The steps at which per-sample cosines were recorded (``per_sample=True``)."""
        return self._array("sample_step")

    @property
    def sample_cos(self) -> np.ndarray:
        """``[T_s, B]``: ``cos(g_f, g_r^(i))`` for every probe sample ``i`` at each of :attr:`sample_steps`."""
        if not self.per_sample:
            raise UnlearnError("this tracker was built without per_sample=True; build it with per_sample=True")
        return self._array("sample_cos")

    @property
    def conflict_rate(self) -> np.ndarray:
        """The share of probe samples whose gradient conflicts with ``g_f`` (cosine < 0), at :attr:`sample_steps`."""
        c = self.sample_cos
        return (c < 0).mean(axis=1) if c.size else np.array([])

    @property
    def probe_labels(self) -> np.ndarray:
        """The labels of the probe samples, in the order of the columns of :attr:`sample_cos`."""
        return self.y_probe.detach().cpu().numpy()

    def summary(self) -> dict:
        """First and last cosine, the minimum, and the share of records in conflict (chapter 04)."""
        if len(self) == 0:
            raise UnlearnError("the tracker has no records yet; run a method with post_step=tracker first")
        c = self.cos
        out = {"records": len(self), "cos_first": float(c[0]), "cos_last": float(c[-1]), "cos_min": float(c.min()),
               "share_in_conflict": float((c < 0).mean())}
        if self.per_sample and self.sample_cos.size:
            out["conflict_rate_first"], out["conflict_rate_last"] = map(float, self.conflict_rate[[0, -1]])
        return out
