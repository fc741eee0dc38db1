"""Cost in units that do not depend on the machine: per-sample forward and backward passes (chapter 01 asks when
unlearning is cheaper than retraining; this is the unit of the answer).

Wall-clock time depends on the processor, the kernels, the other programs running and the batch size the
hardware likes; the number of samples pushed through the model does not. Every unlearning run therefore also
reports how many *per-sample passes* it used, and their ratio to retraining's.

Units and conventions
---------------------
* A **per-sample forward pass** is one sample pushed once through the model being unlearned (or through a model
  of the same architecture, such as SCRUB's frozen teacher). A forward of a batch of B samples counts B. Forward-
  only evaluations that the method needs count as forward passes: the loop's accuracy over D_f when it decides
  the stopping rule (an evaluation made only to fill a log, for a plot, is bookkeeping and not counted), the
  test-set accuracy that is random forgetting's stop target, the retain probe
  of implicit surgery, the one-sample shape check at the start of every run, the attack features of LTU.
* A **per-sample backward pass** is one sample's loss backpropagated once through the model. A backward (or
  ``torch.autograd.grad``, or ``torch.func.grad``) of a loss over B samples counts B, however the samples'
  losses are combined (a mean, a weighted sum, two losses in one call).
* **Per-sample gradients** of B samples, by ``vmap``, by the per-layer (ghost, moments) route or by a loop, count
  B forward and B backward passes; where the per-layer route falls back to ``vmap`` for some parameters it runs a
  second forward and backward of the batch, and that is counted too.
* A **Hessian-vector product** (differentiating through a gradient step, as the second-order look-ahead of LUR
  and LTU does) over B samples counts 2B backward passes and no forward pass: reverse-over-reverse
  differentiation walks back once through the stored backward graph and once through the stored forward graph,
  each about the cost of one backward pass, and the activations it needs were kept from the forward pass.
* Operations that push no sample through the model (an l1 penalty, a projection, an optimiser step, the
  logistic attack model of LTU on three features) cost nothing in these units.

Retraining (:func:`training_passes`) is counted by the same rules: ``epochs`` x (size of D_r) forward and backward
passes of :func:`~unlearnlib.train.train_model`'s loop, plus the one-sample forward of its label check.

Why counting at the call sites
------------------------------
The counts are taken where the model runs: each method's step function, the shared loop and the helpers that
call the model report the batch size of the tensors they actually pass (``len(y)``, a Python int known on the
host: no synchronisation with the device, no loop over samples), at the moment they pass them. A stopping rule
that ends a run early, a schedule that changes the kind of step (SCRUB), a per-layer route that falls back to
``vmap``: the count follows, because it is taken when the step runs, not derived from a formula beforehand. What
could still drift is a new model call added without its count; the tests compare every method's count with one
derived by hand from its batch sizes and the steps its log records and, where hooks see every call, with a
count taken by hooks, so such a change fails them.

Module hooks, the other candidate, cannot see everything that runs. A forward pre-hook on the model sees the
batch size of ordinary calls, but under ``torch.func.vmap`` (per-sample gradients) each call shows a batch of
one, the batch dimension being hidden in the functorch wrapper; SCRUB's teacher is another module; the
second-order look-ahead differentiates through a gradient, which no output hook distinguishes from a plain
backward. A hook counter would need private functorch APIs and a special case per method anyway. Hooks are
still the independent check: the tests count with hooks on plain models where hooks see everything, and compare.

Usage::

    with counting() as passes:
        model = get_method("ga")(m0, task)
    passes.forward, passes.backward, passes.total

Outside a :func:`counting` block the counting functions return at once and touch nothing: counting changes no
result (the tests check that the returned models are bit-identical with and without it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

#: the counters currently collecting; nested blocks all receive every count.
_ACTIVE: list["Passes"] = []


@dataclass(eq=False)   # identity, not value: two counters with equal counts are still two counters
class Passes:
    """Per-sample forward and backward passes (chapter 01; the module docstring states the conventions)."""

    forward: int = 0
    backward: int = 0

    @property
    def total(self) -> int:
        """Forward plus backward passes: the row key ``passes``."""
        return self.forward + self.backward

    def as_row(self, reference: "Passes | None" = None) -> dict:
        """The row keys ``passes``, ``passes_vs_retrain`` (against ``reference``, retraining's count),
        ``forward_passes`` and ``backward_passes``."""
        ratio = self.total / reference.total if reference is not None and reference.total > 0 else None
        return {"passes": self.total, "passes_vs_retrain": ratio, "forward_passes": self.forward,
                "backward_passes": self.backward}


@contextlib.contextmanager
def counting():
    """Collect the passes of everything run inside the block into the :class:`Passes` it yields (chapter 01)."""
    passes = Passes()
    _ACTIVE.append(passes)
    try:
        yield passes
    finally:
        _ACTIVE.remove(passes)


def forward(n: int) -> None:
    """Record n per-sample forward passes (n: a batch size, a Python int)."""
    for p in _ACTIVE:
        p.forward += int(n)


def backward(n: int) -> None:
    """Record n per-sample backward passes."""
    for p in _ACTIVE:
        p.backward += int(n)


def forward_backward(n: int) -> None:
    """Record a forward and a backward pass of n samples: a batch gradient, or per-sample gradients."""
    forward(n)
    backward(n)


def hvp(n: int) -> None:
    """Record a Hessian-vector product of a loss over n samples: 2n backward passes (module docstring)."""
    backward(2 * n)


def training_passes(n_train: int, epochs: int) -> Passes:
    """The passes of :func:`~unlearnlib.train.train_model` on ``n_train`` samples for ``epochs`` epochs (chapter
    01): every sample once per epoch forward and backward (the last, smaller batch included), and the one-sample
    forward of :func:`~unlearnlib.train.check_labels`. Retraining is cached on disk, so its count is computed here
    from the loop's structure; a test runs the loop with hooks and checks it."""
    return Passes(forward=epochs * n_train + 1, backward=epochs * n_train)
