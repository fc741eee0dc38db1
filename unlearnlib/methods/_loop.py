"""The loop every first-order unlearning method shares (chapter 02), and the pieces that several methods use.

A method supplies one function, ``step(model, xf, yf, xr, yr)``, that fills the ``.grad`` of the trainable
parameters for one step (for most methods: build a loss and call ``backward``). The loop owns everything else:
copying the input model (methods never mutate it), the optimiser, the batch streams, the progress bar, the
post-step hooks (masks) and the stopping rule.

Cost (:mod:`unlearnlib.cost`): everything here that pushes samples through the model records them where it does so
(the shape check, the stopping rule's evaluation, :func:`ce`); a step function records the backward passes of its
own ``backward`` calls, and the forwards that do not go through :func:`ce`.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # text bars: they work in terminals, notebooks and the built book alike

from unlearnlib import cost
from unlearnlib.data import UnlearningTask, cycle_batches
from unlearnlib.errors import UnlearnError
from unlearnlib.metrics import accuracy
from unlearnlib.train import has_nonfinite

StepFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]

#: the collapse guard's default margin, in points of accuracy (chapter 12): a run stops, and backs off to its last
#: checked state, once its accuracy on a slice of the retain data falls more than this below the original model's.
GUARD_MARGIN = 25.0
#: the size of the guard's slice of the retain data.
GUARD_SIZE = 256
#: the most steps between two checks of the guard.
GUARD_EVERY = 50


def fresh_copy(model: nn.Module) -> nn.Module:
    """A deep copy in training mode, so the caller's model is never changed (chapter 02)."""
    clone = copy.deepcopy(model)
    clone.train()
    return clone


def forget_target(task: UnlearningTask, model: nn.Module) -> float:
    """The oracle-free stopping target for the forget accuracy, in % (chapter 02).

    Class-wise: chance level, 100 / C (a model that no longer knows the class can at best guess it). Mislabeled
    (chapter 11): chance level too, since the forget labels are known to be wrong, a corrected model should
    predict them no better than guessing. Memorized (chapter 11): the accuracy that shadow models which never
    trained on these samples have on them, when the task carries it (``task.unseen_forget_acc``). Random, and
    memorized without it: the model's own accuracy on the test set (forgotten samples should look like samples it
    never saw). None uses the retrain oracle, which a real deployment does not have.
    """
    if task.scenario in ("class", "mislabeled"):
        return 100.0 / task.data.num_classes
    if getattr(task, "unseen_forget_acc", None) is not None:
        return float(task.unseen_forget_acc)
    cost.forward(len(task.y_test))
    return accuracy(model, task.x_test, task.y_test)


def run_unlearning(model: nn.Module, task: UnlearningTask, step: StepFn, *, epochs: float, lr: float,
                   batch_size: int = 32, over: str = "forget", seed: int = 0, momentum: float = 0.9,
                   weight_decay: float = 5e-4, stop_at: float | str | None = None,
                   post_step: Callable[[nn.Module, torch.optim.Optimizer], None] | None = None,
                   desc: str = "unlearn", progress: bool = False, log: list | None = None,
                   steps: int | None = None, check_every: int | None = None,
                   mask_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], dict] | None = None,
                   retain_positions: torch.Tensor | None = None, guard: float | None = GUARD_MARGIN,
                   max_passes: int | None = None) -> nn.Module:
    """Run ``step`` for ``epochs`` passes over the forget (``over="forget"``) or retain set (chapter 02).

    The other set is cycled alongside. ``stop_at``: stop as soon as the forget accuracy (checked after every
    pass) is at or below this many %, ``"auto"`` for :func:`forget_target`, ``None`` to run all epochs.
    ``log``, when a list, receives one dict per pass (``step``, ``forget_acc``) for plots. ``steps`` overrides the
    number of steps that ``epochs`` implies (the step-cost benchmark uses it). ``check_every``: check the stopping
    rule every so many steps instead of once per pass (each check is a forward pass over D_f and a host sync).

    ``mask_fn(model, xr, yr)``, when given, is called after ``step`` has filled the gradients (the base method's
    update direction) and returns a 0/1 mask per parameter name (chapter 10). The gradients are masked, and after
    the optimiser step every masked coordinate is put back to its value before the step, so neither momentum nor
    weight decay can move it: the mask applies to the *final* update.

    ``retain_positions``, when given, are positions into ``task.x_retain``: the only retain samples the method may
    use (a small retain subset, as LTU and OrthoGrad assume, chapters 07-08); the metrics still use all of D_r.

    ``guard`` (chapter 12), the collapse guard, needs no oracle: a fixed slice of at most :data:`GUARD_SIZE` of the
    retain samples the method may use is scored before the first step, every pass (at most every
    :data:`GUARD_EVERY` steps) and at the end. If the final model's accuracy on it is more than ``guard`` points
    below the starting model's, the run returns instead the parameters of its last check that held (the starting
    ones if none did). ``None`` switches it off. ``max_passes``: stop once the loop has used this many per-sample passes
    (:mod:`unlearnlib.cost`; the tuning protocol's equal budget). The returned model carries ``guard_stopped``
    and ``budget_stopped`` (booleans) and ``steps_taken``; a guard stop is also logged (``"guard": True``).
    """
    if over not in ("forget", "retain"):
        raise UnlearnError(f"over must be 'forget' or 'retain', got {over!r}")
    if len(task.forget_idx) == 0:
        raise UnlearnError("the forget set is empty; there is nothing to unlearn")
    check_loop_args(lr, epochs, batch_size, momentum, weight_decay, steps, check_every, stop_at)
    if guard is not None and (not _is_real(guard) or not 0 < guard < math.inf):
        raise UnlearnError(f"guard must be None (off) or a positive margin in points of accuracy, got {guard!r}")
    if max_passes is not None and (not _is_int(max_passes) or max_passes < 1):
        raise UnlearnError(f"max_passes must be a positive integer (or None: no budget), got {max_passes!r}")
    check_model(model, task)
    device = next(model.parameters()).device
    target = forget_target(task, model) if stop_at == "auto" else stop_at
    model = fresh_copy(model)
    g = torch.Generator().manual_seed(seed)
    xf, yf, xr, yr = task.x_forget.to(device), task.y_forget.to(device), task.x_retain.to(device), task.y_retain.to(device)
    if retain_positions is not None:
        retain_positions = torch.as_tensor(retain_positions).long().to(device)
        if retain_positions.numel() == 0:
            raise UnlearnError("retain_positions is empty; give at least one position into task.x_retain")
        if retain_positions.min() < 0 or retain_positions.max() >= len(yr):
            raise UnlearnError(f"retain_positions must lie in 0..{len(yr) - 1} (positions into task.x_retain)")
        xr, yr = xr[retain_positions], yr[retain_positions]
    forget_stream = cycle_batches(len(yf), batch_size, g, device)
    retain_stream = cycle_batches(len(yr), batch_size, g, device)
    n_driver = len(yf) if over == "forget" else len(yr)
    steps_per_epoch = -(-n_driver // batch_size)
    total = steps if steps is not None else max(1, int(round(epochs * steps_per_epoch)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    guard_state = _Guard(model, params, xr, yr, guard, seed) if guard is not None else None
    guard_every = min(steps_per_epoch, GUARD_EVERY)
    stopped_by_guard = stopped_by_budget = False
    with cost.counting() as used:
        t = -1
        for t in tqdm(range(total), desc=desc, disable=not progress, leave=False, delay=5):
            fi, ri = next(forget_stream), next(retain_stream)
            _one_step(model, opt, step, xf[fi], yf[fi], xr[ri], yr[ri], mask_fn, post_step)
            last = t + 1 == total
            if guard_state is not None and (t + 1) % guard_every == 0 and not last:
                guard_state.check(model)
            end_of_pass = (t + 1) % (check_every or steps_per_epoch) == 0 or last
            if end_of_pass and (target is not None or log is not None):
                if target is not None:  # the stopping rule's price; an evaluation only for the log is bookkeeping
                    cost.forward(len(yf))
                acc = accuracy(model, xf, yf)
                if log is not None:
                    log.append({"step": t + 1, "forget_acc": acc})
                if target is not None and acc <= target:
                    break
            if max_passes is not None and used.total >= max_passes:
                stopped_by_budget = not last
                break
        # The guard judges the model the run returns: a run may pass through a collapse and recover (fine-tuning
        # with a large step does), and that is no failure; a run that ends collapsed returns its last good state.
        if guard_state is not None and not guard_state.check(model):
            guard_state.restore()
            stopped_by_guard = True
            if log is not None:
                log.append({"step": t + 1, "forget_acc": accuracy(model, xf, yf), "guard": True})
    model.eval()
    model.guard_stopped, model.budget_stopped, model.steps_taken = stopped_by_guard, stopped_by_budget, t + 1
    return model


def _one_step(model, opt, step, xf, yf, xr, yr, mask_fn, post_step) -> None:
    """One step of the shared loop: the method's direction, the optimiser (masked or not), the hooks."""
    opt.zero_grad(set_to_none=True)
    step(model, xf, yf, xr, yr)
    if mask_fn is None:
        opt.step()
    else:
        _masked_step(model, opt, mask_fn(model, xr, yr))
    if post_step is not None:
        post_step(model, opt)


class _Guard:
    """The collapse guard of :func:`run_unlearning` (chapter 12): accuracy on a fixed slice of the usable retain
    samples, against the starting model's minus a margin; keeps the parameters of the last check that passed."""

    def __init__(self, model: nn.Module, params: list, xr: torch.Tensor, yr: torch.Tensor, margin: float,
                 seed: int):
        g = torch.Generator().manual_seed(seed + 7919)  # its own stream: the batches do not depend on the guard
        pick = torch.randperm(len(yr), generator=g)[:GUARD_SIZE].to(yr.device)  # host: CPU generator, moved
        self.x, self.y = xr[pick], yr[pick]
        self.params = params
        self.kept = [p.detach().clone() for p in params]
        cost.forward(len(self.y))
        self.floor = accuracy(model, self.x, self.y) - margin

    def check(self, model: nn.Module) -> bool:
        """Score the slice (one host sync); when it holds, keep the current parameters as the last good state."""
        cost.forward(len(self.y))
        ok = accuracy(model, self.x, self.y) >= self.floor
        if ok:
            with torch.no_grad():
                for p, kept in zip(self.params, self.kept):
                    kept.copy_(p)
        return ok

    def restore(self) -> None:
        """Put the parameters back to the last state that held (the starting one if none did)."""
        with torch.no_grad():
            for p, kept in zip(self.params, self.kept):
                p.copy_(kept)


def check_loop_args(lr, epochs, batch_size, momentum, weight_decay, steps, check_every, stop_at) -> None:
    """The checks of the shared loop's arguments, one clear error each (chapter 02; the language-model loop of
    chapter 15 uses them too)."""
    # ``not x > 0`` rather than ``x <= 0``: NaN fails every comparison and would pass the latter.
    if (not _is_real(lr) or not _is_real(epochs) or not 0 < lr < math.inf or not 0 < epochs < math.inf
            or not _is_int(batch_size) or batch_size < 1):
        raise UnlearnError(f"lr, epochs and batch_size must be positive (got {lr}, {epochs}, {batch_size}); "
                           "lr and epochs finite numbers, batch_size an integer")
    for name, value in (("momentum", momentum), ("weight_decay", weight_decay)):
        if not _is_real(value) or not 0 <= value < math.inf:
            raise UnlearnError(f"{name} must be a non-negative finite number, got {value!r}")
    if steps is not None and (not _is_int(steps) or steps < 1):
        raise UnlearnError(f"steps must be a positive integer (or None to use epochs), got {steps!r}")
    if check_every is not None and (not _is_int(check_every) or check_every < 1):
        raise UnlearnError(f"check_every must be a positive integer (or None: once per pass), got {check_every!r}")
    check_stop_at(stop_at, "stop_at")


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def check_stop_at(value, name: str = "stop_at") -> None:
    """A stopping target is ``None``, ``"auto"`` or a forget accuracy in % (a real number, not NaN)."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return
    if not _is_real(value) or math.isnan(value):
        raise UnlearnError(f"{name} must be None, 'auto' or a forget accuracy in % (e.g. 10.0), got {value!r}")


def check_model(model: nn.Module, task: UnlearningTask) -> None:
    """Refuse a model with NaN or infinite weights, or whose outputs do not match the task's classes.

    One forward pass of one sample in eval mode (no running statistic changes, no dropout mask is drawn) and one
    host synchronisation per call, never per step.
    """
    if bool(has_nonfinite(model)):
        raise UnlearnError("the model has NaN or infinite weights; it diverged earlier: start from a finite model "
                           "(retrain it, or lower the learning rate that produced it)")
    first = next(model.parameters())
    # In the model's own dtype: this check must not add a dtype error of its own (a float64 model is legitimate).
    x1 = task.data.x_train[:1].to(first.device, first.dtype if first.is_floating_point() else None)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        out = model(x1)
    cost.forward(len(x1))
    for m, mode in modes:
        m.training = mode
    if out.dim() != 2 or out.shape[1] != task.data.num_classes:
        raise UnlearnError(f"the model has outputs of shape {tuple(out.shape[1:])} but the task has "
                           f"{task.data.num_classes} classes; build the model with data.num_classes outputs")


def _masked_step(model: nn.Module, opt: torch.optim.Optimizer, masks: dict[str, torch.Tensor]) -> None:
    """One optimiser step that leaves every coordinate with mask 0 exactly where it was (chapter 10)."""
    named = [(n, p) for n, p in model.named_parameters() if n in masks]
    before = [p.detach().clone() for _, p in named]
    for n, p in named:
        if p.grad is not None:
            p.grad.mul_(masks[n])
    opt.step()
    with torch.no_grad():
        for (n, p), old in zip(named, before):
            p.copy_(torch.where(masks[n].bool(), p, old))


def ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Batch-mean cross-entropy; zero for an empty batch instead of NaN (chapter 02). Records len(y) forward
    passes (:mod:`unlearnlib.cost`); the caller records the backward pass it takes."""
    if len(y) == 0:
        return torch.zeros((), device=x.device)
    cost.forward(len(y))
    return nn.functional.cross_entropy(model(x), y)


def other_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniformly random labels that always differ from ``y`` (chapter 02, random labels)."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + shift) % num_classes


def to_host(values: list, start: int = 0) -> list:
    """Replace the 0-d tensors ``values[start:]`` by Python floats with one host copy (chapter 05).

    A method that records a value per step (a multiplier, a cosine) appends it as a device tensor, so the loop
    never waits for the device; the list is turned into floats once, after the run.
    """
    if len(values) > start:
        values[start:] = torch.stack([v.reshape(()) for v in values[start:]]).tolist()
    return values


def set_grads(model: nn.Module, flat: torch.Tensor) -> None:
    """Write a flat update direction into the ``.grad`` of the trainable parameters (chapter 05)."""
    i = 0
    for p in model.parameters():
        if p.requires_grad:
            p.grad = flat[i:i + p.numel()].view_as(p).clone()
            i += p.numel()


class MaskKeeper:
    """Keep parameters exactly at their starting values wherever a 0/1 mask is 0 (chapter 03, SalUn).

    Masking the gradient is not enough: SGD's weight decay and momentum act inside ``step()`` after the
    gradient was masked, so masked weights would still move (the bug of SalUn's code until 2026). This hook runs
    after every optimiser step, restores the masked weights bit for bit and clears their momentum.
    """

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]):
        self.masks = masks
        self.start = {n: p.detach().clone() for n, p in model.named_parameters() if n in masks}

    def __call__(self, model: nn.Module, opt: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n not in self.masks:
                    continue
                keep = self.masks[n].bool()
                p.copy_(torch.where(keep, p, self.start[n]))
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(keep)
