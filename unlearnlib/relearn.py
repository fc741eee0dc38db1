"""The relearning attack (chapter 11): how fast does forgotten knowledge come back?

An unlearned model can look like the oracle and still hold what it was asked to forget, suppressed rather than
removed. The attack fine-tunes a copy of the model for a few steps on a small part A of the forget set (what an
attacker, or a later user's data, might contain) and measures the accuracy on the rest of the forget set, D_f \\ A,
after every step. The oracle, which never saw D_f, sets the pace that generalisation from A alone allows; an
unlearned model that recovers much faster had kept D_f in its weights. As a control the same attack runs with a
sample of D_r of the same size instead of A: recovery that the control shows too is not relearning of D_f.
(Relearning attacks on language models: Hu et al., arXiv 2406.13356; on image classifiers, where fine-tuning on
D_r alone can bring the forget accuracy back: Siddiqui et al., arXiv 2505.22310.)
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np
import torch
from torch import nn

from unlearnlib.data import UnlearningTask
from unlearnlib.errors import UnlearnError


def attack_split(task: UnlearningTask, fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacker's part A of D_f and the held-out rest, as positions into D_f (chapter 11): a random
    ``fraction`` of D_f, at least one sample, leaving at least one held out."""
    n = len(task.forget_idx)
    if n < 2:
        raise UnlearnError(f"the relearning attack needs a forget set of at least 2 samples (one to relearn on, one "
                           f"to measure), got {n}")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise UnlearnError(f"the attack fraction must lie strictly between 0 and 1, got {fraction!r}")
    k = min(max(1, int(round(fraction * n))), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(task.forget_idx.device)
    return perm[:k].sort().values, perm[k:].sort().values


def relearn_curve(model: nn.Module, task: UnlearningTask, steps: int = 10, lr: float = 0.01, fraction: float = 0.2,
                  seed: int = 0, control: bool = False) -> np.ndarray:
    """Accuracy in % on the held-out part of D_f after 0, 1, ..., ``steps`` full-batch SGD steps of a copy of
    ``model`` on the attacker's part A of D_f (chapter 11); ``control=True`` trains on as many samples of D_r
    instead. The model is not changed. One host copy, at the end.

    The default learning rate, a fifth of the training recipe's, is small enough that the oracle, which never
    saw D_f, does not learn a whole class from a fifth of its samples within the default ten steps on digits:
    recovery within them is then knowledge that was still in the model."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise UnlearnError(f"steps must be a non-negative integer, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf:
        raise UnlearnError(f"lr must be a positive finite number, got {lr!r}")
    attack, held = attack_split(task, fraction, seed)
    if control:
        g = torch.Generator().manual_seed(seed + 1)
        pick = torch.randperm(len(task.retain_idx), generator=g)[:len(attack)].to(task.retain_idx.device)
        x_a, y_a = task.x_retain[pick], task.y_retain[pick]
    else:
        x_a, y_a = task.x_forget[attack], task.y_forget[attack]
    x_h, y_h = task.x_forget[held], task.y_forget[held]
    attacked = copy.deepcopy(model)
    opt = torch.optim.SGD(attacked.parameters(), lr=lr)

    def held_accuracy():
        attacked.eval()
        with torch.no_grad():
            acc = (attacked(x_h).argmax(1) == y_h).float().mean() * 100
        attacked.train()
        return acc

    curve = [held_accuracy()]
    for _ in range(steps):
        loss = nn.functional.cross_entropy(attacked(x_a), y_a)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(held_accuracy())
    return torch.stack(curve).cpu().numpy()  # host: the whole curve, once


def steps_to_recover(curve: np.ndarray, level: float) -> int | None:
    """The first step at which the held-out forget accuracy reaches ``level`` %, or ``None`` (chapter 11)."""
    hit = np.nonzero(np.asarray(curve) >= level)[0]
    return int(hit[0]) if len(hit) else None
