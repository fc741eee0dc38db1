"""The rounding-error model behind the tolerances of the unit tests that compare two float32 computations of the
same gradient (a ``vmap`` against a Python loop, a batch against the mean of its samples, one backward pass of a
combined loss against two).

Two such computations do the same arithmetic in a different order, or with a different algorithm, so they differ
by rounding (and at ReLU kinks, see below). The model of rounding:

* A reduction of length K (a dot product, a sum over positions) in float32, accumulated in any order, has a
  relative error of about ``c · eps · sqrt(K)`` with respect to the sum of the magnitudes of its terms, where
  ``eps = 2^-23`` (the probabilistic bound of Higham and Mary, SIAM J. Sci. Comput. 41 (2019): rounding errors
  behave like independent random variables, so they add in quadrature, not linearly). Two orders differ by
  about the same amount.
* A gradient of a network of L weight layers (convolutions and linear maps) goes through L reductions forward
  and L backward; each adds its relative error, so the total is at most ``2 L`` times that of the longest
  reduction, whose length K is the largest fan-in (``C_in · k_h · k_w`` or ``in_features``) or the largest
  number of output positions times the batch that a weight gradient sums over.
* The constant ``c`` depends on the algorithm, and the two computations need not use the same one: a CPU
  convolution may run a direct kernel, an implicit GEMM (the sum split into blocks) or a Winograd kernel,
  chosen by the library (oneDNN on x86, or plain ATen when it is off) from the shapes, the batch size and the
  instruction set. Direct and GEMM kernels have ``c ≈ 1``. Winograd's transforms multiply the error: by a few
  for F(2x2, 3x3) and by about 10 for F(4x4, 3x3) (Barabasz, Anderson, Soodhalter and Gregg, ACM TOMS 46 (2020),
  "Error analysis and improving the accuracy of Winograd convolution for deep neural networks"). ``c = 10``
  therefore admits every kernel those libraries choose. For ResNet-18 (L = 21, K = 4608) the bound is 3.4e-3;
  oneDNN's kernels on an AMD EPYC put one sample's gradient 1.6e-3 from the loop's, inside it (with oneDNN
  off the two agree to 4e-7). Whether that difference is a Winograd constant or the ReLU kinks described
  below, the machines at hand could not tell apart; both are differences between right answers.

Rounding is not the only source of disagreement. The gradient of a ReLU network jumps where a unit changes state;
a unit whose input lies within rounding distance of 0 can be on for one kernel and off for the other, and then
both gradients are right (each is a valid subgradient) and differ by that unit's whole contribution. In a wide
network (ResNet-18) each unit carries a tiny share and such flips stay inside the bound above; in the book's
small CNN after a few training steps, one flip changed a sample's gradient by 4e-2. Comparisons along a
trained trajectory therefore leave out the samples that :func:`near_kink` marks, and comparisons of whole runs
(two trajectories that differ by rounding cross kinks at different steps and part for good) are replaced by
step-by-step comparisons at the same parameters.

The error is measured as a relative norm per sample, ``‖a − b‖ / ‖b‖`` over all the sample's parameters, not
element by element: a single entry that is the difference of large terms can lose all its digits without the
gradient being wrong, so elementwise tolerances either fail on another machine or must be made too loose to
catch anything. Every tolerance built here has a test (in tests/test_grads.py) in which a planted error (a sign
flipped, a term dropped, one sample's gradient taken from another sample) fails it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

EPS32 = torch.finfo(torch.float32).eps
#: the algorithm constant: covers direct, implicit-GEMM and Winograd F(4x4, 3x3) kernels (see above).
C_ALG = 10.0


def reduction_profile(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """``(L, K)``: the number of weight layers and the longest float32 reduction in a forward and backward pass
    of ``model`` on ``x`` (K counts the batch: a weight gradient sums over samples and output positions)."""
    layers: list[int] = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            taps = math.prod(module.kernel_size)
            fan_in = module.in_channels // module.groups * taps      # forward: one output entry
            fan_out = module.out_channels // module.groups * taps    # backward: one input-gradient entry
            positions = output.shape[0] * output.shape[-2] * output.shape[-1]   # weight gradient
        else:
            fan_in, fan_out = module.in_features, module.out_features
            positions = output.reshape(-1, module.out_features).shape[0]
        layers.append(max(fan_in, fan_out, positions))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return len(layers), max(layers)


def gradient_rtol(model: nn.Module, x: torch.Tensor, c: float = C_ALG) -> float:
    """The relative-norm tolerance ``c · eps · sqrt(K) · 2L`` between two float32 computations of a gradient of
    ``model`` on the batch ``x`` (module docstring)."""
    L, K = reduction_profile(model, x)
    return c * EPS32 * math.sqrt(K) * 2 * L


def relative_errors(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise ``‖a − b‖ / scale`` for matrices [B, P] (or one value for vectors); ``scale`` defaults to ``‖b‖``.

    Pass ``scale`` when ``b`` is a sum whose terms cancel (a mean of per-sample gradients): the rounding error
    is relative to the size of the terms, not of their sum.
    """
    a, b = a.double(), b.double()
    if scale is None:
        scale = b.norm(dim=-1)
    return (a - b).norm(dim=-1) / scale


def near_kink(model: nn.Module, x: torch.Tensor, rtol: float) -> torch.Tensor:
    """A mask [B] of the samples with a ReLU input within rounding distance of the kink at 0.

    The gradient of a ReLU network is discontinuous where a unit changes state. When a unit's input is smaller
    than the rounding error of computing it (``rtol`` times the typical size of that layer's inputs), two
    kernels can disagree on its sign, and both gradients are right (each is a valid subgradient): the
    difference is the unit's whole contribution, not a rounding error. Such samples are left out of an
    elementwise comparison of gradients; the caller checks that enough samples remain.
    """
    close = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    def hook(module, inputs, output):
        z = inputs[0].detach().flatten(1)
        close.logical_or_((z.abs() < rtol * z.abs().mean()).any(1))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return close
