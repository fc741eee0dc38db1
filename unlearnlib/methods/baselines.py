"""First-order baselines: retrain, fine-tune, gradient ascent, NegGrad+, random labels (chapter 02).

Each function takes ``(model, task, **hyperparameters)`` and returns a new model; the input is never mutated.
Gradients here are in the descent convention: the optimiser steps against ``.grad``. Each step records its
per-sample passes (:mod:`unlearnlib.cost`): :func:`~unlearnlib.methods._loop.ce` the forwards, the step the
backward it takes.

Default hyperparameters were chosen on digits with the small CNN of the ``ci`` profile, on held-out seeds
(100 to 104, never the seeds 0, 1, 2, ... that the chapters and the benchmark report), by an oracle-free rule: the highest
retain accuracy among the settings whose forget accuracy reaches the target of
:func:`~unlearnlib.methods._loop.forget_target`, in class-wise forgetting of class 3. Methods that push the forget
set away stop as soon as that target is reached (``stop_at="auto"``).
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnlib import cost
from unlearnlib.config import get_profile
from unlearnlib.data import UnlearningTask
from unlearnlib.methods._loop import ce, other_labels, run_unlearning
from unlearnlib.train import TrainConfig, retrained_model


def retrain(model: nn.Module, task: UnlearningTask, train_config: TrainConfig | None = None, seed: int = 0,
            use_cache: bool = True, **_) -> nn.Module:
    """Retrain from scratch on D_r with the original recipe: the oracle (chapter 01). Cached on disk.

    ``model`` only fixes the device; the architecture and recipe come from ``train_config`` (default: the
    current profile's).
    """
    cfg = train_config or TrainConfig.from_profile(get_profile())
    return retrained_model(task, cfg, seed=seed, device=next(model.parameters()).device, progress=False,
                           use_cache=use_cache)


def finetune(model: nn.Module, task: UnlearningTask, epochs: float = 10, lr: float = 0.1, batch_size: int = 32,
             seed: int = 0, **kw) -> nn.Module:
    """Fine-tune on the retain set only, min_θ L_r(θ) from θ0 (chapter 02): forgetting by interference."""
    def step(m, xf, yf, xr, yr):
        ce(m, xr, yr).backward()
        cost.backward(len(yr))
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="retain", seed=seed,
                          desc="finetune", **kw)


def ga(model: nn.Module, task: UnlearningTask, epochs: float = 40, lr: float = 2e-4, batch_size: int = 32,
       seed: int = 0, stop_at: float | str | None = "auto", check_every: int | None = 1, **kw) -> nn.Module:
    """Gradient ascent on the forget set, min_θ −CE_f(θ) (chapter 02).

    CE is unbounded above, so GA diverges if run long enough; by default it stops as soon as the forget accuracy
    reaches the oracle-free target of :func:`unlearnlib.methods._loop.forget_target`, checked after every step
    (``check_every=1``): GA's collapse is abrupt, and a check once per pass overshoots it.
    """
    def step(m, xf, yf, xr, yr):
        (-ce(m, xf, yf)).backward()
        cost.backward(len(yf))
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="forget", seed=seed,
                          stop_at=stop_at, check_every=check_every, desc="ga", **kw)


def neggrad_plus(model: nn.Module, task: UnlearningTask, epochs: float = 5, lr: float = 0.01, beta: float = 0.97,
                 batch_size: int = 32, seed: int = 0, stop_at: float | str | None = "auto", **kw) -> nn.Module:
    """NegGrad+: min_θ β L_r(θ) − (1 − β) CE_f(θ), over retain batches with the forget set cycled (chapter 02).

    The form of SCRUB's paper (Kurmanji et al., arXiv 2302.09880); one backward pass of the combined loss.
    """
    def step(m, xf, yf, xr, yr):
        (beta * ce(m, xr, yr) - (1 - beta) * ce(m, xf, yf)).backward()
        cost.backward(len(yr) + len(yf))
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="retain", seed=seed,
                          stop_at=stop_at, desc="neggrad_plus", **kw)


def random_label(model: nn.Module, task: UnlearningTask, epochs: float = 20, lr: float = 1e-4, batch_size: int = 32,
                 seed: int = 0, stop_at: float | str | None = "auto", check_every: int | None = 1,
                 **kw) -> nn.Module:
    """Random labels: fit D_f to fresh random labels (never the true one) while fitting D_r (chapter 02).

    Each step sums the cross-entropy of a forget batch with labels redrawn for that step and of a retain batch
    with true labels (the joint form; SalUn's code alternates whole passes instead).
    """
    g = torch.Generator().manual_seed(seed + 1)
    c = task.data.num_classes

    def step(m, xf, yf, xr, yr):
        (ce(m, xf, other_labels(yf, c, g)) + ce(m, xr, yr)).backward()
        cost.backward(len(yf) + len(yr))
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="forget", seed=seed,
                          stop_at=stop_at, check_every=check_every, desc="random_label", **kw)
