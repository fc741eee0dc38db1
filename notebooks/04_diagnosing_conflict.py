# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Diagnosing gradient conflict
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/04_diagnosing_conflict.ipynb)
#
# Part I ended with a diagnosis in words: gradient ascent on the forget set damages the retain set, because the
# step that removes $D_f$ moves weights that $D_r$ needs as well. Part II turns this into geometry. The forget
# objective and the retain objective each have a gradient, $g_f$ and $g_r$; when the two point in "opposite"
# directions, any step that makes progress on one loses ground on the other. This chapter builds the tools to
# *measure* that conflict, at the level of the whole model, of each layer and of each sample, and then measures
# it along the runs of the two baselines of chapter 02. The measurements correct the diagnosis in one important
# way: at the start of unlearning there is no conflict to speak of; the run creates it. The later chapters of
# Part II are different answers to the question this chapter poses: how do we step along $g_f$ without paying on
# $D_r$ once it does?
#
# **What you will learn**
#
# - how to compute the gradient of *every sample* of a batch at once with `torch.func` (`vmap` of `grad`), why
#   this gives exactly the per-sample gradients, why their mean is the batch gradient, why train-mode BatchNorm
#   breaks this, and what it costs in time and memory;
# - the first-order model of a loss change, $\Delta L \approx -\eta \langle \nabla L, d \rangle$, checked
#   numerically down to its $O(\eta^2)$ error, and the definition of *conflict* it leads to;
# - a result that runs against the intuition of Part I: at the trained model $\theta_0$ the forget and retain gradients do **not**
#   conflict. In class-wise forgetting they are strongly aligned, and we derive a lower bound on their cosine; in
#   random forgetting they are weakly aligned on average, with a sign set by a competition between the training
#   gradient and the per-sample noise that we compute exactly (and the tensors ruled by weight decay conflict);
# - how the conflict is *created* by gradient ascent and NegGrad+, in class-wise and random forgetting, overall,
#   per layer and per sample, and which retain samples it hits;
# - a map of how the methods of chapters 05–10 manage the conflict.

# %%
# Colab only: install the book's library, unlearnlib, from this release of the book.
import sys

if "google.colab" in sys.modules:
    import subprocess

    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "unlearnlib @ git+https://github.com/unlearn-book/unlearn-book@v0.1.0"],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        print(pip.stdout, pip.stderr, sep="\n")
        raise RuntimeError(
            "pip could not install unlearnlib (its output is above): check that "
            "this Colab session is online, then run this cell again"
        )

# %%
import copy
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from torch.func import functional_call, grad, jvp, vjp, vmap

import unlearnlib.config
from unlearnlib import UnlearnError
from unlearnlib.bench import median_time
from unlearnlib.data import load_dataset, make_task
from unlearnlib.diagnostics import (
    ConflictTracker,
    blockwise_cosines,
    conflict_by_class,
    forget_retain_grads,
    layer_index,
    loss_change,
    neg_ce,
    sample_cosines,
)
from unlearnlib.experiment import compare_methods
from unlearnlib.grads import (
    conflict_rate,
    cosine,
    flatten,
    flatten_batched,
    layer_cosines,
    loss_grad,
    per_sample_grads,
    per_sample_grads_loop,
    trainable,
)
from unlearnlib.methods import ga
from unlearnlib.methods._loop import run_unlearning
from unlearnlib.models import count_parameters, make_model
from unlearnlib.plots import histograms
from unlearnlib.train import TrainConfig, original_model

profile = unlearnlib.config.get_profile()
device = unlearnlib.config.get_device()
cfg = TrainConfig.from_profile(profile)
SEEDS = list(range(profile.seeds))
FORGET_CLASS = 3
print(
    f"profile {profile.name}: dataset {profile.dataset}, model {profile.model}, "
    f"seeds {SEEDS}, device {device}"
)

data = load_dataset(profile.dataset).to(device)
m0 = original_model(data, cfg, seed=SEEDS[0], device=device)
task = make_task(data, "class", forget_class=FORGET_CLASS, seed=SEEDS[0])
P = count_parameters(m0)
print(task.describe())
print(f"the model has P = {P} trainable parameters")

# %% [markdown]
# ## Per-sample gradients
#
# ### The problem
#
# A mini-batch of $B$ samples $(x_i, y_i)$ has the loss
#
# $$
# L_B(\theta) = \frac{1}{B} \sum_{i=1}^{B} \ell(\theta; x_i, y_i),
# \qquad g_i = \nabla_\theta\, \ell(\theta; x_i, y_i) \in \mathbb R^{P} .
# $$ (eq-04-batch-loss)
#
# Back-propagation through $L_B$ returns one vector, $\nabla L_B$. To know whether *each* retain sample is hurt by a
# forget step (§4.4), and for OrthoGrad in chapter 07, we need the $B$ vectors $g_i$ themselves. The obvious way is
# a Python loop with one backward pass per sample: correct, and slow, because each pass runs the network on a
# batch of one and the hardware is used for a sliver of what it can do at once.
#
# ### The derivation
#
# **Per-sample gradients average to the batch gradient.** The gradient is a linear operator, so it passes
# through the sum in {eq}`eq-04-batch-loss`:
#
# $$
# \nabla_\theta L_B(\theta) = \frac{1}{B} \sum_{i=1}^{B} \nabla_\theta\, \ell(\theta; x_i, y_i) = \frac{1}{B}\sum_{i=1}^{B} g_i .
# $$ (eq-04-mean-of-per-sample)
#
# This needs one assumption, which is easy to overlook: that the loss of sample $i$ depends on $\theta$ and on
# $(x_i, y_i)$ *only*. We come back to it with BatchNorm below.
#
# **`grad` of a one-sample function.** `torch.func` works with plain functions rather than modules. We write the
# loss of *one* sample as a function of the parameters,
#
# $$
# f(\theta, x, y) = \ell(\theta; x, y),
# $$ (eq-04-one-sample)
#
# and `grad(f)` is the function $(\theta, x, y) \mapsto \nabla_\theta f(\theta, x, y)$ (it differentiates with
# respect to the first argument). For this to make sense, the parameters must *be* an argument: a module keeps
# its weights as internal state, so we call it through `functional_call(model, (params, buffers), inputs)`,
# which runs the module's `forward` with the tensors we pass in place of its own. Buffers (running statistics of a
# normalisation layer, for instance) are passed the same way, explicitly, so that nothing the function reads is
# hidden state; our GroupNorm models have none, but the code should not depend on that. The model expects a
# batch dimension, so inside $f$ the sample is given one of size 1, and a mean-reduced loss of a batch of one is
# the loss of that sample.
#
# **`vmap` over the batch.** `vmap(h, in_dims=(None, 0, 0))` turns a function of one sample into a function of a
# batch: its result, at index $i$ of the output, is $h(\theta, x_i, y_i)$, with $\theta$ shared (`None`: not mapped)
# and $x, y$ sliced along dimension 0. That is its *definition*; its *implementation* does not loop but rewrites
# every operation of $h$ to carry an extra batch dimension. Applied to $h = $ `grad(f)` it returns
# $[g_1, \dots, g_B]$, every parameter tensor with a leading dimension $B$. In the backward pass of an ordinary
# batch, the gradient of a weight is a contraction *over the batch* (for a linear layer, $\sum_i \delta_i a_i^\top$);
# under `vmap` the same products are formed but not summed over $i$.
#
# **Why train-mode BatchNorm breaks it.** A BatchNorm layer in training mode normalises every activation with the
# mean $\mu_B$ and variance $\sigma_B^2$ *of the current batch*. The loss of sample $i$ is then
# $\ell(\theta; x_i, y_i, \mu_B, \sigma_B^2)$, and $\mu_B, \sigma_B^2$ depend on all samples and on $\theta$. Two
# things go wrong. There is no well-defined "gradient of sample $i$": the batch gradient also contains the terms
# $\partial \ell_i / \partial \mu_B \cdot \partial \mu_B / \partial \theta$ through which every sample moves every other
# sample's loss. And the one-sample function {eq}`eq-04-one-sample` is a *different* network: it normalises a
# batch of one with its own statistics. The mean of its gradients is not the batch gradient, so
# {eq}`eq-04-mean-of-per-sample` fails. In evaluation mode BatchNorm uses fixed running statistics and is harmless,
# but then the model no longer computes what it computed in training. Group Normalization
# {cite}`wu2018groupnorm` (Wu & He, arXiv 1803.08494) normalises each sample on its own, over groups of channels,
# so it behaves the same in training and evaluation and has no cross-sample terms. That is why every model of
# this book uses GroupNorm (chapter 01).
#
# ### From scratch
#
# The whole method is a handful of lines.


# %%
def my_per_sample_grads(model, x, y, loss_fn=F.cross_entropy, chunk_size=None):
    """{name: [B, *param.shape]}: the gradient of the loss of every sample,
    by vmap(grad(one-sample loss))."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss_of_one(p, xi, yi):  # f(θ, x, y) of (eq-04-one-sample)
        logits = functional_call(
            model, (p, frozen, buffers), (xi.unsqueeze(0),)
        )  # a batch of one
        return loss_fn(logits, yi.unsqueeze(0))

    return vmap(grad(loss_of_one), in_dims=(None, 0, 0), chunk_size=chunk_size)(
        params, x, y
    )


def my_per_sample_grads_loop(model, x, y, loss_fn=F.cross_entropy):
    """The slow reference: one backward pass per sample."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = [
        torch.autograd.grad(loss_fn(model(x[i : i + 1]), y[i : i + 1]), params)
        for i in range(len(y))
    ]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return {n: torch.stack([r[j] for r in rows]) for j, n in enumerate(names)}


# %% [markdown]
# ### Checked against the loop and against `unlearnlib`
#
# On a batch of retain samples we compare our `vmap` version with our loop, with the library's
# `unlearnlib.grads.per_sample_grads` (same method) and `per_sample_grads_loop` (the loop), and check
# {eq}`eq-04-mean-of-per-sample` against the library's batch gradient `loss_grad`. All in float32: the tolerances
# allow for a different order of summation, nothing more. The check is not vacuous: per-sample gradients differ
# from each other by far more than the tolerance.

# %%
xb, yb = task.x_retain[:64], task.y_retain[:64]
ours = flatten_batched(my_per_sample_grads(m0, xb, yb))  # [B, P]
ours_loop = flatten_batched(my_per_sample_grads_loop(m0, xb, yb))
lib = flatten_batched(per_sample_grads(m0, xb, yb))
lib_loop = flatten_batched(per_sample_grads_loop(m0, xb, yb))
batch_grad = loss_grad(m0, xb, yb)
tol = dict(rtol=1e-4, atol=1e-6)
assert ours.shape == (len(yb), P)
assert torch.allclose(ours, lib, **tol) and torch.allclose(ours, ours_loop, **tol)
assert torch.allclose(lib, lib_loop, **tol)
assert torch.allclose(ours.mean(0), batch_grad, **tol)  # (eq-04-mean-of-per-sample)
spread = (ours - ours.mean(0)).abs().max().item()
assert spread > 1e3 * tol["atol"]
print(
    f"B = {len(yb)}, P = {P}: vmap = loop = library "
    f"(largest difference {(ours - ours_loop).abs().max():.1e})\n"
    f"mean of per-sample = batch gradient "
    f"(largest difference {(ours.mean(0) - batch_grad).abs().max():.1e})\n"
    f"per-sample gradients differ from their mean by up to {spread:.1e}"
)

# %% [markdown]
# ### What it costs
#
# **Time.** We time both versions with `unlearnlib.bench.median_time`: one warm-up call (the first call pays
# for memory allocation and for tracing the vmapped function), then the median of several timed calls. The ratio depends on the machine, the batch size and the model, and on what else the machine is doing,
# so we print it rather than assert it; the benchmarks of the repository measure such costs properly.
#
# **Memory.** The result is a $B \times P$ matrix: $B$ full copies of the gradient. For our small CNN that is
# nothing; for a ResNet-18 with its 11 million parameters, a batch of 32 per-sample gradients in float32 takes more
# than a gigabyte, and the intermediate activations of the vectorised backward pass come on top. The `chunk_size`
# argument of `vmap` processes the batch in chunks of that many samples, trading time for peak memory; the
# result itself is still $B \cdot P$ numbers.

# %%
t_vmap = median_time(lambda: my_per_sample_grads(m0, xb, yb))
t_loop = median_time(lambda: my_per_sample_grads_loop(m0, xb, yb))
print(
    f"B = {len(yb)}: vmap {1e3 * t_vmap:.1f} ms, loop {1e3 * t_loop:.1f} ms, "
    f"loop / vmap = {t_loop / t_vmap:.1f}x (median of 5; this machine, now)"
)
assert torch.allclose(
    flatten_batched(my_per_sample_grads(m0, xb, yb, chunk_size=16)), ours, **tol
)

for name, shape in (
    ("cnn", data.input_shape),
    ("cnn-wide", data.input_shape),
    ("resnet18", (3, 32, 32)),
):
    p_m = count_parameters(make_model(name, shape, 10))
    print(
        f"{name:9s} P = {p_m:>10,d}: B = 32 per-sample gradients in float32 take "
        f"{32 * p_m * 4 / 2**20:8.1f} MiB"
    )

# %% [markdown]
# ### BatchNorm, seen failing
#
# To see the BatchNorm problem rather than take it on trust, we build a tiny network with a BatchNorm layer and
# compare, in training and in evaluation mode, the batch gradient with the mean of gradients computed one sample
# at a time. The same network with GroupNorm in its place passes in both modes. The library refuses train-mode
# BatchNorm with an explicit error instead of returning wrong numbers.


# %%
def tiny_net(norm):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        norm(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    ).to(device)


def mean_gap(model):
    """Largest |batch gradient - mean of one-sample gradients|, relative to the batch
    gradient's largest entry."""
    g_batch = loss_grad(model, xb[:16], yb[:16])
    g_mean = flatten_batched(my_per_sample_grads_loop(model, xb[:16], yb[:16])).mean(0)
    return ((g_batch - g_mean).abs().max() / g_batch.abs().max()).item()


gaps = {}
print("relative gap between the batch gradient and the mean of per-sample gradients:")
for label, norm in (
    ("BatchNorm", nn.BatchNorm2d),
    ("GroupNorm", lambda c: nn.GroupNorm(2, c)),
):
    for mode in ("train", "eval"):
        net = tiny_net(norm)
        net.train(mode == "train")
        gaps[label, mode] = mean_gap(net)
        print(f"  {label} in {mode:5s} mode: {gaps[label, mode]:.1e}")
assert gaps["BatchNorm", "train"] > 0.05
assert (
    max(
        gaps["BatchNorm", "eval"], gaps["GroupNorm", "train"], gaps["GroupNorm", "eval"]
    )
    < 1e-4
)
try:
    per_sample_grads(tiny_net(nn.BatchNorm2d).train(), xb[:4], yb[:4])
    raise AssertionError("train-mode BatchNorm should have been refused")
except UnlearnError as err:
    print("unlearnlib:", err)

# %% [markdown]
# ## The first-order model of a loss change
#
# ### The derivation
#
# Take a loss $L(\theta)$, a direction $d$ and the step $\theta^+ = \theta - \eta d$ of the descent convention
# ({eq}`eq-02-descent-step`). Along the segment put $\varphi(s) = L(\theta - s d)$ for $0 \le s \le \eta$, so that
# $\varphi'(s) = -\langle \nabla L(\theta - s d), d\rangle$ and $\varphi''(s) = d^\top \nabla^2 L(\theta - s d)\, d$.
# If $L$ is twice continuously differentiable on the segment, Taylor's theorem with the Lagrange form of the
# remainder gives, for some $\xi \in (0, 1)$,
#
# $$
# L(\theta - \eta d) = L(\theta) - \eta \langle \nabla L(\theta), d \rangle
#   + \frac{\eta^2}{2}\, d^\top \nabla^2 L(\theta - \xi \eta d)\, d .
# $$ (eq-04-taylor)
#
# So the change of the loss is, to first order,
#
# $$
# \Delta L = L(\theta - \eta d) - L(\theta) \approx -\eta \langle \nabla L(\theta), d\rangle, \qquad
# \big|\Delta L + \eta \langle \nabla L(\theta), d\rangle\big| \le \frac{\eta^2}{2} \max_{0 \le s \le \eta}
#   \big|d^\top \nabla^2 L(\theta - s d)\, d\big| .
# $$ (eq-04-first-order)
#
# The error of the linear prediction is $O(\eta^2)$: halving the step divides it by four, so on a log-log plot of
# the error against $\eta$ it is a line of slope 2, and the ratio error$/\eta^2$ tends to
# $\tfrac12 d^\top \nabla^2 L(\theta)\, d$ as $\eta \to 0$.
#
# **ReLU kinks.** Our networks are not twice differentiable everywhere: a ReLU has a kink at zero. Along the
# segment, the pre-activation $a_j(s)$ of one unit for one sample may change sign at some $s_j$; there $\varphi'$
# jumps by some amount $J_j$, and $\varphi$ is smooth only between consecutive crossings. One crossing at
# $s_1 < \eta$ adds $J_1 (\eta - s_1)$ to the remainder: an error that grows *linearly* in $\eta$, a first-order
# effect that {eq}`eq-04-taylor` does not cover. So {eq}`eq-04-first-order` holds as stated only for steps shorter
# than the first crossing, and a loss with a single kink near $\theta$ would show an error of slope 1 beyond it.
# A loss over a whole data set, however, has millions of pre-activations (one per unit and per sample), and their
# crossings are dense. To first order $a_j(s) \approx a_j - s\,\dot a_j$ crosses zero at $s_j = a_j / \dot a_j$;
# if these crossing points have a density $\kappa$ near $s = 0$, a step of length $\eta$ crosses about $\kappa\eta$ of
# them, and with $\bar J$ the mean jump their total contribution
# $\sum_{s_j < \eta} J_j(\eta - s_j) \approx \kappa\eta \cdot \bar J \cdot \eta/2$ is again quadratic in $\eta$: in
# aggregate the kinks act like extra curvature. Both predictions can be checked:
# below the first crossing the error must equal $\tfrac12\eta^2 d^\top\nabla^2 L\, d$, and where crossings
# accumulate their number must grow with slope 1 while the error keeps slope 2.
#
# ### From scratch
#
# The measured change needs the loss at displaced parameters without touching the model, which is again a job for
# `functional_call`; the predicted change needs one gradient. The direction $d$ is a flat vector in
# `named_parameters()` order (chapter 02's `flatten`).


# %%
def split_like(d, params):
    """A flat vector as a dict of tensors shaped like `params` (the inverse of chapter
    02's `flatten`)."""
    pieces = d.split([p.numel() for p in params.values()])
    return {n: piece.view_as(p) for (n, p), piece in zip(params.items(), pieces)}


def my_loss_change(model, x, y, d, etas, loss_fn=F.cross_entropy):
    """(measured, predicted): L(θ - η d) - L(θ) and -η <∇L(θ), d> for each η, without
    changing the model."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    pieces = split_like(d, params)

    def loss_at(p):
        return loss_fn(functional_call(model, p, (x,)), y)

    slope = sum(
        (gn * pieces[n]).sum() for n, gn in grad(loss_at)(params).items()
    )  # <∇L(θ), d>
    base = loss_at(params)
    measured = torch.stack(
        [
            loss_at({n: p - eta * pieces[n] for n, p in params.items()}) - base
            for eta in etas
        ]
    )
    etas = torch.as_tensor(etas, dtype=d.dtype, device=d.device)
    return measured.detach(), (-etas * slope).detach()


# %% [markdown]
# We do this check in float64: the float32 rounding of a loss of order $10^{-2}$ is about $10^{-9}$, far above
# the errors we want to see at small $\eta$. A float64 copy of $\theta_0$ is the same network, evaluated more
# precisely. We take two unit directions: the GA direction $g_f/\lVert g_f\rVert$ (defined at the end of this
# section), and a random
# one, and evaluate the retain loss $L_r$ over all of $D_r$. Our function and the library's
# `unlearnlib.diagnostics.loss_change` must agree to float64 rounding; the check is not vacuous, because at the
# larger steps the measured and predicted changes differ by far more than that tolerance.

# %%
m64 = copy.deepcopy(m0).double().eval()
xr64, yr = task.x_retain.double(), task.y_retain
xf64, yf = task.x_forget.double(), task.y_forget
unit = lambda v: v / v.norm()
g_f64 = loss_grad(m64, xf64, yf, neg_ce)  # g_f = ∇(−CE_f), defined below
directions = {
    "GA direction": unit(g_f64),
    "random direction": unit(
        torch.randn(
            P, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        ).to(device)
    ),
}
ETAS = torch.logspace(-6, -1, 11, dtype=torch.float64, device=device)
eta_np = ETAS.cpu().numpy()  # the same steps, for NumPy and the plots

ours_m, ours_p = my_loss_change(m64, xr64, yr, directions["GA direction"], ETAS)
lib_m, lib_p = loss_change(m64, xr64, yr, directions["GA direction"], ETAS)
assert torch.allclose(ours_m, lib_m, rtol=1e-9, atol=1e-15) and torch.allclose(
    ours_p, lib_p, rtol=1e-9, atol=1e-15
)
assert (ours_m - ours_p).abs().max() > 1e6 * (ours_m - lib_m).abs().max()
print(
    f"ours = library (largest difference {(ours_m - lib_m).abs().max():.1e});\n"
    f"the linear prediction misses by up to {(ours_m - ours_p).abs().max():.1e}"
)

# %% [markdown]
# For each direction and step we record the error of the linear prediction, the number of ReLU pre-activations
# (over all units and all retain samples) whose sign differs between $\theta$ and $\theta - \eta d$, and, at
# $\theta$, the curvature $d^\top \nabla^2 L_r\, d$, computed exactly with one Hessian-vector product (`vjp` of
# `grad`: reverse-mode differentiation of the gradient, as chapter 09 will do for LUR). We also locate the first
# kink without searching for it: one forward-mode pass (`jvp`) gives every pre-activation $a_j$ together with its
# derivative $\dot a_j$ along the step, and the first crossing of the linearised pre-activations,
# $\eta_1 = \min\{-a_j/\dot a_j > 0\}$, is where the first kink lies, up to the curvature of $a_j(s)$, which over
# such short steps is negligible. At $\eta_1/2$ the step must then cross no kink, and at $2\eta_1$ at least one.


# %%
def relu_inputs(model, params, x):
    """Every pre-activation that enters a ReLU, for every sample, as one flat vector."""
    seen = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].reshape(-1)))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        functional_call(model, params, (x,))
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(seen)


def curvature(model, x, y, d):
    """d^T ∇²L(θ) d with one Hessian-vector product: the vjp of the gradient.

    H is symmetric, so d^T H = (H d)^T."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    pieces = split_like(d, params)
    f = lambda p: F.cross_entropy(functional_call(model, p, (x,)), y)
    _, vjp_fn = vjp(grad(f), params)
    hd = vjp_fn(pieces)[0]
    return sum((hd[n] * pieces[n]).sum() for n in params).item()


def first_crossing(model, params, x, d):
    """The smallest η > 0 at which a linearised pre-activation a_j + η ȧ_j changes sign
    along θ − η d; ȧ_j comes from one jvp."""
    tangent = {n: -piece for n, piece in split_like(d, params).items()}
    a, a_dot = jvp(lambda p: relu_inputs(model, p, x), (params,), (tangent,))
    s = -a / a_dot
    return s[s > 0].min().item()


params64 = {n: p.detach() for n, p in m64.named_parameters()}
signs0 = relu_inputs(m64, params64, xr64) > 0
loss_r64 = F.cross_entropy(m64(xr64), yr).item()
taylor = {}
for name, d in directions.items():
    measured, predicted = loss_change(m64, xr64, yr, d, ETAS)
    pieces = split_like(d, params64)

    def sign_changes(eta):
        moved = {n: p - eta * pieces[n] for n, p in params64.items()}
        return int(((relu_inputs(m64, moved, xr64) > 0) != signs0).sum())

    eta_1 = first_crossing(m64, params64, xr64, d)
    m_half, p_half = loss_change(m64, xr64, yr, d, [eta_1 / 2])
    taylor[name] = {
        "measured": measured.cpu().numpy(),
        "predicted": predicted.cpu().numpy(),
        "error": (measured - predicted).cpu().numpy(),
        "crossings": np.array([sign_changes(eta) for eta in ETAS]),
        "dHd": curvature(m64, xr64, yr, d),
        "eta_1": eta_1,
        "error_half": (m_half - p_half).item(),
        "crossings_half": sign_changes(eta_1 / 2),
        "crossings_2": sign_changes(2 * eta_1),
    }
print(f"{signs0.numel():,d} ReLU pre-activations over the {len(yr)} retain samples")
for name, tr in taylor.items():
    print(
        f"== {name}: d^T H d = {tr['dHd']:.3e}; first linearised crossing at "
        f"eta_1 = {tr['eta_1']:.2e}"
    )
    print(f"{'eta':>9s}{'measured':>13s}{'predicted':>13s}{'error':>11s}{'rel.':>9s}"
          f"{'sign changes':>14s}")
    for eta, m_, p_, e_, c_ in zip(
        eta_np, tr["measured"], tr["predicted"], tr["error"], tr["crossings"]
    ):
        rel = abs(e_ / p_)
        print(f"{eta:9.1e}{m_:+13.4e}{p_:+13.4e}{e_:+11.2e}{rel:9.1e}{c_:14,d}")

# %%
SMALL = eta_np <= 1e-3  # the range of the slope fit of the error
DENSE = eta_np <= 1e-2  # where crossings are counted: far from saturation
log_eta = np.log(eta_np)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for k, (name, tr) in enumerate(taylor.items()):
    err = np.abs(tr["error"])
    slope = np.polyfit(log_eta[SMALL], np.log(err[SMALL]), 1)[0]
    tr["slope"] = slope
    axes[0].loglog(
        eta_np,
        err,
        "o-",
        color=f"C{k}",
        label=f"{name} (fitted slope {slope:.2f} for η ≤ 1e-3)",
    )
    axes[0].loglog(
        eta_np,
        0.5 * abs(tr["dHd"]) * eta_np**2,
        ":",
        color=f"C{k}",
        label=r"$\frac{1}{2}\eta^2 |d^\top H d|$",
    )
    fit = (tr["crossings"] >= 10) & DENSE
    tr["crossing_slope"] = np.polyfit(log_eta[fit], np.log(tr["crossings"][fit]), 1)[0]
    shown = tr["crossings"] > 0
    axes[1].loglog(
        eta_np[shown],
        tr["crossings"][shown],
        "o-",
        color=f"C{k}",
        label=f"{name} (slope {tr['crossing_slope']:.2f} where ≥ 10, η ≤ 1e-2)",
    )
axes[0].set_xlabel(r"step $\eta$ (unit direction)")
axes[0].set_ylabel(r"$|\Delta L_r + \eta\langle\nabla L_r, d\rangle|$")
axes[0].set_title("Error of the linear prediction")
axes[0].legend(fontsize=8)
axes[1].set_xlabel(r"step $\eta$")
axes[1].set_ylabel("ReLU pre-activations that changed sign")
axes[1].set_title("Kinks crossed by the step")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The checks of this figure, with their margins. A fitted slope within 0.2 of 2 is quadratic
# (a single kink would give 1). At $\eta_1/2$ the ratio of the error to
# $\tfrac12\eta^2 d^\top H d$ may differ from 1 by the third-order term of {eq}`eq-04-taylor`, relatively
# $O(\eta)$ and below $10^{-3}$ at these steps, and by the float64 rounding of the two losses,
# at most about $u\sqrt{n}\,L_r$ for a mean of $n$ terms ($u = 2.2\cdot10^{-16}$): we allow 1 % plus four
# times that rounding. Dropping the $\tfrac12$ or flipping the sign of the prediction fails by a factor of 2 or
# more. The crossings are Poisson-like counts: fitted where there are at least 10 of them over $\eta \le 10^{-2}$
# (one and a half decades or more), their slope has a standard error below 0.1, so we allow 0.75 to 1.3.

# %%
U64 = torch.finfo(torch.float64).eps
for name, tr in taylor.items():
    remainder = (
        0.5 * (tr["eta_1"] / 2) ** 2 * tr["dHd"]
    )  # the Taylor remainder at eta_1 / 2
    ratio = tr["error_half"] / remainder
    rounding = (
        U64 * len(yr) ** 0.5 * loss_r64 / abs(remainder)
    )  # relative float64 rounding
    print(
        f"{name}: slope {tr['slope']:.3f}; crossings grow with slope "
        f"{tr['crossing_slope']:.2f}\n  eta_1 = {tr['eta_1']:.2e}; sign changes at "
        f"eta_1/2: {tr['crossings_half']}, at 2 eta_1: {tr['crossings_2']}\n"
        f"  at eta_1/2 error / (eta^2 d^T H d / 2) = {ratio:.5f} "
        f"(rounding allowance {4 * rounding:.0e})"
    )
    assert 1.8 < tr["slope"] < 2.2, "the error of the linear prediction is O(eta^2)"
    assert tr["crossings_half"] == 0 < tr["crossings_2"], "eta_1 locates the first kink"
    assert abs(ratio - 1) < 0.01 + 4 * rounding, (
        "below it, the error is the Taylor remainder"
    )
    assert 0.75 < tr["crossing_slope"] < 1.3, (
        "the number of kinks crossed grows like eta"
    )
ga_dir = taylor["GA direction"]
assert ga_dir["measured"][-1] > 0 > ga_dir["predicted"][-1], (
    "at the largest step the prediction has the wrong sign"
)

# %% [markdown]
# The error is quadratic in the step over the whole range we fit, three decades wide, with a fitted slope close to
# 2 for both directions. The linearised first crossing $\eta_1$ (printed) is where the first kink really is: half
# that step crosses none, twice that step at least one. Below it the error is the Taylor remainder
# $\tfrac12\eta^2 d^\top\nabla^2L_r\,d$ computed from the exact Hessian-vector product, to better than 1 %. Beyond
# $\eta_1$ the steps cross more and more kinks, and their number grows about in proportion to $\eta$, as the
# density argument predicts; the error keeps its slope 2. For the
# largest steps the linear model fails completely (at $\eta = 0.1$ along the GA direction the predicted change does
# not even have the right sign): first-order reasoning is about *small* steps, and a learning rate is "small" only
# relative to the curvature along the direction taken.
#
# ### What conflict means for one step of gradient ascent
#
# We keep the convention of chapter 02: the forget objective is *minimised*, $L_f = -\mathrm{CE}_f$, its gradient
# is $g_f = \nabla L_f = -\nabla \mathrm{CE}_f$, and the retain loss $L_r$ has the gradient $g_r = \nabla L_r$. A
# GA step takes $d = g_f$. Put it into {eq}`eq-04-first-order` for both losses:
#
# $$
# \Delta L_f \approx -\eta\, \lVert g_f \rVert^2 \le 0, \qquad \Delta L_r \approx -\eta\, \langle g_r, g_f \rangle .
# $$ (eq-04-ga-step)
#
# The first is never positive: a small enough GA step always makes progress on its own objective. The second has
# the sign of $-\langle g_f, g_r\rangle$. We say that the two gradients **conflict** when
#
# $$
# \langle g_f, g_r \rangle < 0 \quad\Longleftrightarrow\quad \cos(g_f, g_r) = \frac{\langle g_f, g_r\rangle}{\lVert g_f\rVert\,\lVert g_r\rVert} < 0 ,
# $$ (eq-04-conflict)
#
# and that they are *aligned* when the inner product is positive: then a GA step lowers the retain loss too. The
# cosine has the sign of the inner product and does not depend on the scale of either gradient, which is why we
# track it. The same reasoning holds sample by sample, $\Delta\ell_i \approx -\eta \langle g_r^{(i)}, d\rangle$: a
# retain sample $i$ conflicts with the step when $\cos(g_f, g_r^{(i)}) < 0$. Since
# $\langle g_f, g_r\rangle = \frac1B\sum_i \langle g_f, g_r^{(i)}\rangle$ ({eq}`eq-04-mean-of-per-sample`), a batch
# can be aligned on average while many of its samples conflict (§4.4). A warning about signs: written with the
# *ascended* loss $\mathrm{CE}_f$, conflict reads $\langle \nabla \mathrm{CE}_f, g_r\rangle > 0$. Every chapter of
# Part II uses {eq}`eq-04-conflict`, in the descent convention.
#
# The library's GA does not step along $g_f$ alone: SGD adds weight decay, and the first step of
# {eq}`eq-02-sgd-momentum` (momentum has nothing to accumulate yet) is $\theta_1 = \theta_0 - \eta\,(g_f + \lambda\theta_0)$.
# The predicted change of the retain loss then has a conflict term and a weight-decay term,
# $\Delta L_r \approx -\eta\langle g_r, g_f\rangle - \eta\lambda\langle g_r, \theta_0\rangle$. We check this on the
# library's first GA step, at its default learning rate, with the whole forget set as the batch (so the step uses
# exactly the $g_f$ of {eq}`eq-04-ga-step`), for both scenarios and every seed. First we check that the library's
# step is the one we wrote down; then we compare the predicted and the measured change of $L_r$ over all of $D_r$,
# in float64.

# %%
LR_GA = inspect.signature(ga).parameters["lr"].default
WD = inspect.signature(run_unlearning).parameters["weight_decay"].default
M0 = {s: original_model(data, cfg, seed=s, device=device) for s in SEEDS}
TASKS = {
    (sc, s): make_task(data, sc, forget_fraction=0.1, forget_class=FORGET_CLASS, seed=s)
    for sc in ("class", "random")
    for s in SEEDS
}
one_step = []
for (sc, s), t in TASKS.items():
    lib_step = ga(M0[s], t, steps=1, batch_size=len(t.forget_idx), stop_at=None, seed=s)
    theta0 = flatten([p.detach() for p in M0[s].parameters()])
    g_f = loss_grad(M0[s], t.x_forget, t.y_forget, neg_ce)
    ours_theta1 = theta0 - LR_GA * (g_f + WD * theta0)
    lib_theta1 = flatten([p.detach() for p in lib_step.parameters()])
    assert (lib_theta1 - ours_theta1).abs().max() < 0.02 * (
        lib_theta1 - theta0
    ).abs().max()
    m64_s = copy.deepcopy(M0[s]).double().eval()
    x_f, x_r = t.x_forget.double(), t.x_retain.double()
    gf, gr = (
        loss_grad(m64_s, x_f, t.y_forget, neg_ce),
        loss_grad(m64_s, x_r, t.y_retain),
    )
    th = theta0.double()
    measured, predicted = loss_change(m64_s, x_r, t.y_retain, gf + WD * th, [LR_GA])
    one_step.append(
        {
            "scenario": sc,
            "seed": s,
            "conflict_term": -LR_GA * gf.dot(gr).item(),
            "decay_term": -LR_GA * WD * th.dot(gr).item(),
            "predicted": predicted.item(),
            "measured": measured.item(),
            "cos": cosine(gf, gr).item(),
        }
    )
print(
    f"one library GA step at lr {LR_GA:g} (weight decay {WD:g}), the whole D_f as "
    "the batch;\nchanges of L_r over D_r:"
)
print(
    f"{'':10s}{'seed':>4s}{'cos(g_f,g_r)':>13s}{'-η<g_r,g_f>':>12s}{'-ηλ<g_r,θ0>':>12s}"
    f"{'predicted':>11s}{'measured':>11s}{'rel. err':>9s}"
)
for r in one_step:
    r["rel_error"] = abs(r["measured"] - r["predicted"]) / abs(r["predicted"])
    print(
        f"{r['scenario']:10s}{r['seed']:4d}{r['cos']:+13.3f}{r['conflict_term']:+12.2e}"
        f"{r['decay_term']:+12.2e}{r['predicted']:+11.3e}{r['measured']:+11.3e}"
        f"{r['rel_error']:9.1e}"
    )

# %% tags=["hide-input"]
# The second-order term of (eq-04-taylor) at GA's learning rate is about 1e-3 of the
# first-order terms (the class-wise rows), so 2 % of their size bounds the error; a
# dropped decay term or a flipped sign breaks it.
for r in one_step:
    scale = abs(r["conflict_term"]) + abs(
        r["decay_term"]
    )  # the size of the first-order terms
    assert abs(r["measured"] - r["predicted"]) < 0.02 * scale, (
        "the first-order prediction is accurate"
    )
    if (
        abs(r["predicted"]) > 0.02 * scale
    ):  # the sign is predicted where it exceeds the error
        assert np.sign(r["measured"]) == np.sign(r["predicted"])
    assert r["decay_term"] > 0, "shrinking the weights raises the retain loss"
    if r["scenario"] == "class":
        assert r["rel_error"] < 0.01 and abs(r["decay_term"]) < 0.05 * abs(
            r["conflict_term"]
        )
        assert r["measured"] < 0, "class-wise: GA's first step LOWERS the retain loss"
share = lambda r: abs(r["decay_term"]) / abs(r["conflict_term"])
rows = {(r["scenario"], r["seed"]): r for r in one_step}
for s in SEEDS:
    assert share(rows["random", s]) > share(rows["class", s]), (
        "decay's share is larger in random"
    )
size = {
    sc: np.mean([abs(rows[sc, s]["measured"]) for s in SEEDS])
    for sc in ("class", "random")
}
assert size["random"] < size["class"] / 10, (
    "random: the change is smaller, on average by far"
)

# %% [markdown]
# At GA's learning rate the linear prediction is accurate to within 2 % of the size of its two terms, and in
# class-wise forgetting to better than 1 % of the change. In random forgetting the gradient term and the weight-decay
# term can nearly cancel, and then the small remainder is known less precisely, relative to what is left. The
# weight-decay term is positive everywhere (shrinking the weights of a well-fit network lowers its confidence and
# so raises its loss); in class-wise forgetting it is at most a few percent of the gradient term, in random
# forgetting, where the gradient term is small, a much larger share of it. And the table holds the surprise of
# this chapter: in class-wise forgetting the first GA step **lowers** the retain loss on every seed, because
# $\cos(g_f, g_r) > 0$ there; in random forgetting the change is more than ten times smaller on average. At
# $\theta_0$ the gradients that Part II is about do not conflict. §4.3 measures this carefully and explains it.
#
# ## Conflict at $\theta_0$ and along the runs
#
# ### What we measure
#
# Throughout, $g_f$ is the gradient of $L_f = -\mathrm{CE}_f$ over the **whole** forget set and $g_r$ the gradient
# of the retain loss. Computing $g_r$ over all of $D_r$ at every step of a run would cost more than the run, so the
# library's `ConflictTracker` (below) uses a fixed *probe*: 256 retain samples drawn once, the same at every
# record. At $\theta_0$ we compute both: the probe's cosine, and the cosine with the gradient of the whole retain
# set, which we write $h_r = \nabla L_r$ (over $D_r$) to tell it apart. First, the tracker's number must be the
# cosine we would compute by hand on its probe.

# %%
PROBE = 256
at_theta0 = []
for (sc, s), t in TASKS.items():
    tracker = ConflictTracker(t, probe_size=PROBE)
    tracker.record(M0[s], step=0)
    g_f, g_r_probe = forget_retain_grads(
        M0[s], t.x_forget, t.y_forget, tracker.x_probe, tracker.y_probe
    )
    direct = cosine(g_f, g_r_probe).item()
    assert abs(tracker.cos[0] - direct) < 1e-5 and tracker.steps[0] == 0
    at_theta0.append(
        {
            "scenario": sc,
            "seed": s,
            "probe": tracker.cos[0],
            "full": cosine(g_f, loss_grad(M0[s], t.x_retain, t.y_retain)).item(),
        }
    )
print(
    f"cos(g_f, g_r) at θ0: g_f over all of D_f;\n"
    f"g_r over the tracker's probe of {PROBE} / over all of D_r"
)
for r in at_theta0:
    print(
        f"  {r['scenario']:6s} seed {r['seed']}: probe {r['probe']:+.3f}, "
        f"all of D_r {r['full']:+.3f}"
    )
cos0 = {(r["scenario"], r["seed"]): r for r in at_theta0}
assert all(
    cos0["class", s]["full"] > 0.8 and cos0["class", s]["probe"] > 0 for s in SEEDS
), "class-wise: aligned"
assert max(cos0["random", s]["full"] for s in SEEDS) < min(
    cos0["class", s]["full"] for s in SEEDS
), "random: far less aligned"

# %% [markdown]
# At $\theta_0$ **there is no conflict**. In class-wise forgetting the forget and retain gradients are strongly
# aligned, with a cosine above 0.8 against the whole retain set, and positive against the probe. In random
# forgetting the cosine with the whole retain set is smaller on every seed and varies from seed to seed; we will
# see that its sign depends on the forget set drawn, and that the probe's value is then mostly sampling noise. The intuition of chapter 02, "the step that
# removes $D_f$ damages $D_r$", is therefore wrong at the start of the run. Why?
#
# ### Why the gradients are aligned at $\theta_0$: the derivation
#
# **A balance identity.** Let $N$, $n_f$, $n_r$ be the sizes of $D$, $D_f$, $D_r$ ($N = n_f + n_r$), let
# $h_f = \nabla\mathrm{CE}_f$ and $h_r = \nabla L_r$ be the mean cross-entropy gradients of the forget and retain
# sets, and $m = \nabla L_D$ the mean gradient of the whole training set, all at $\theta_0$. Since $D_f$ and $D_r$
# partition $D$, by {eq}`eq-04-mean-of-per-sample`,
#
# $$
# n_f h_f + n_r h_r = N m \quad\Longrightarrow\quad h_r = \frac{n_f}{n_r}\, g_f + \frac{N}{n_r}\, m
# \qquad (g_f = -h_f).
# $$ (eq-04-balance)
#
# The retain gradient is the GA direction, scaled by $n_f/n_r$, plus a multiple of the training gradient. This is
# exact, for any parameters and any split. It says that, up to the residual $m$, the retain set pulls the weights
# exactly where the forget set has been holding them back: at the end of training the mean gradients of the
# subsets balance like the forces of a tug of war, and GA, which *reverses* the forget set's pull, moves the
# weights the way the retain set was pulling anyway.
#
# **Class-wise forgetting: a lower bound on the cosine.** Write {eq}`eq-04-balance` as $h_r = u + v$ with
# $u = (n_f/n_r) g_f$ and $v = (N/n_r) m$. Every vector within distance $\lVert v\rVert$ of $u$ makes an angle of at
# most $\arcsin(\lVert v\rVert/\lVert u\rVert)$ with $u$, so
#
# $$
# \cos(g_f, h_r) \ge \sqrt{1 - r^2}, \qquad r = \frac{\lVert v\rVert}{\lVert u\rVert}
#   = \frac{N\,\lVert \nabla L_D(\theta_0)\rVert}{n_f\, \lVert \nabla \mathrm{CE}_f(\theta_0)\rVert}, \qquad \text{when } r < 1 .
# $$ (eq-04-bound)
#
# The gradients are aligned whenever the whole training set's gradient, weighted by $N$, is smaller than the forget
# set's, weighted by $n_f$. At a well-fit model both are small in absolute terms (the loss is near zero, and the
# cross-entropy gradient of a confident sample, $p - e_y$ at the logits, nearly vanishes), but they are small in
# different ways. $n_f h_f$ is the coherent pull of one whole class: every image of digit 3 pushes the same head
# row and the same features. $N m$ is the *sum* of ten such pulls, which the end of training has balanced against
# each other. What is left of $m$ is set by the weight-decay equilibrium of training, which minimised
# $L_D + \frac\lambda2\lVert\theta\rVert^2$: at a stationary point of that objective $m = -\lambda\theta_0$, not 0.
# Our networks only partly admit such a point. A convolution followed by GroupNorm is scale invariant,
# $L(\alpha w) = L(w)$ for $\alpha > 0$, and differentiating in $\alpha$ at $\alpha = 1$ gives
#
# $$
# \langle \nabla_w L, w\rangle = 0 ,
# $$ (eq-04-scale-invariance)
#
# so for those weights $m_w = -\lambda w$ is impossible (their norm is set by a balance between gradient noise and
# decay, not by a stationary point). For the tensors whose scale matters (the affine parameters of the last
# GroupNorm and the head) the equilibrium $m \approx -\lambda\theta_0$ should hold. We check all of this on the
# per-sample gradients of the whole training set at $\theta_0$.
#
# **Random forgetting: an exact expectation.** Now $D_f$ is a uniformly random subset of $n_f$ of the $N$ training
# samples. With $\sigma^2 = \frac1N\sum_{i\in D}\lVert \nabla\ell_i - m\rVert^2$ the per-sample variance of the
# gradient, sampling without replacement gives $\mathbb E\, h_f = m$ and
# $\mathbb E\lVert h_f - m\rVert^2 = \frac{\sigma^2}{n_f}\frac{N-n_f}{N-1}$. Inserting {eq}`eq-04-balance`,
# $\langle g_f, h_r\rangle = -\langle h_f, h_r\rangle = \big(n_f\lVert h_f\rVert^2 - N\langle h_f, m\rangle\big)/n_r$, and taking
# the expectation,
#
# $$
# \mathbb E\,\langle g_f, h_r\rangle = \frac{\sigma^2}{N-1} - \lVert m\rVert^2
#   = \lVert m\rVert^2\Big(\frac1\rho - 1\Big), \qquad \rho = \frac{(N-1)\,\lVert m\rVert^2}{\sigma^2} .
# $$ (eq-04-random-expectation)
#
# Mind the signs and the dependence. Had $D_f$ and $D_r$ been *independent* samples of the data distribution, we
# would get $\mathbb E\langle g_f, h_r\rangle = -\langle \mathbb E h_f, \mathbb E h_r\rangle = -\lVert m\rVert^2 \le 0$: conflict on
# average, because the same mean gradient appears in both with opposite signs. But the two sets partition one finite
# $D$: when the forget set happens to have a gradient $m + e$, the retain set has $m - \frac{n_f}{n_r}e$, and this
# negative correlation of the noise, flipped by $g_f = -h_f$, adds $+\sigma^2/(N-1)$. So the sign is a competition
# between the training gradient and the per-sample noise: aligned on average when $\rho < 1$, in conflict when
# $\rho > 1$. Inner products add up over parameter tensors, so {eq}`eq-04-random-expectation` holds tensor by
# tensor too, with its own $\rho_l$.
#
# ### The derivation, checked
#
# We compute the per-sample gradients of all $N$ training samples at $\theta_0$ for every seed (§4.1's `vmap`), and
# from them $m$, $\sigma^2$, $h_f$, $h_r$. For random forgetting we estimate the expectation of
# {eq}`eq-04-random-expectation` by Monte Carlo over 300 random forget sets of the same size, one matrix product
# for all of them.

# %%
N_TRAIN = len(data.y_train)
LAYERS, LAYER_IDX = layer_index(m0)
# every convolution is followed by a GroupNorm: its weight is scale free
SCALE_FREE = [f"{n}.weight" for n, m in m0.named_modules() if isinstance(m, nn.Conv2d)]
N_MC = 300


def per_tensor(v):
    """Sum of a flat vector's entries within each parameter tensor (one index_add,
    on v's device)."""
    zeros = torch.zeros(len(LAYERS), dtype=v.dtype, device=v.device)
    return zeros.index_add(0, LAYER_IDX, v)


derivation = {}

for s in SEEDS:
    G = flatten_batched(
        per_sample_grads(M0[s], data.x_train, data.y_train, chunk_size=512)
    )  # [N, P]
    m = G.mean(0)
    sigma2 = (G - m).pow(2).sum(1).mean().item()
    theta0 = flatten([p.detach() for p in M0[s].parameters()])
    m_norm, decay_norm = per_tensor(m * m).sqrt(), per_tensor((WD * theta0) ** 2).sqrt()
    cos_m = blockwise_cosines(m, theta0, LAYER_IDX, len(LAYERS))
    d = {
        "G": G,
        "m": m,
        "sigma2": sigma2,
        "rho": (N_TRAIN - 1) * m.pow(2).sum().item() / sigma2,
        "cos_m_theta": cos_m.cpu().numpy(),
        "m_over_decay": (m_norm / decay_norm).cpu().numpy(),
    }
    # class-wise: the identity and the bound
    t = TASKS["class", s]
    g_f = loss_grad(M0[s], t.x_forget, t.y_forget, neg_ce)
    h_r = G[t.retain_idx].mean(0)
    n_f, n_r = len(t.forget_idx), len(t.retain_idx)
    assert torch.allclose(G[t.forget_idx].mean(0), -g_f, atol=1e-6)
    assert torch.allclose(
        h_r, (n_f * g_f + N_TRAIN * m) / n_r, atol=1e-6
    )  # (eq-04-balance)
    d["r"] = (N_TRAIN * m.norm() / (n_f * g_f.norm())).item()
    d["cos_class"] = cosine(g_f, h_r).item()
    # random: Monte Carlo over forget sets drawn like make_task draws them
    n_fr = len(TASKS["random", s].forget_idx)
    gen = torch.Generator().manual_seed(1000 + s)
    chosen = torch.argsort(torch.rand(N_MC, N_TRAIN, generator=gen), dim=1)[
        :, :n_fr
    ].to(device)
    W = torch.zeros(N_MC, N_TRAIN, device=device).scatter_(1, chosen, 1.0)
    H_f = W @ G / n_fr  # [N_MC, P], one forget set per row
    H_r = (N_TRAIN * m - n_fr * H_f) / (N_TRAIN - n_fr)
    inner = -(H_f * H_r).sum(1)  # <g_f, h_r> for each forget set
    d["mc_mean"], d["mc_se"] = inner.mean().item(), (inner.std() / N_MC**0.5).item()
    d["mc_aligned"] = (inner > 0).float().mean().item()
    d["formula"] = sigma2 / (N_TRAIN - 1) - m.pow(2).sum().item()
    # per tensor, for the seed's actual random task
    tr_ = TASKS["random", s]
    g_fr = loss_grad(M0[s], tr_.x_forget, tr_.y_forget, neg_ce)
    h_r_random = G[tr_.retain_idx].mean(0)
    cos_random = blockwise_cosines(g_fr, h_r_random, LAYER_IDX, len(LAYERS))
    d["cos_layers_random"] = cos_random.cpu().numpy()
    sq, var = per_tensor(m * m), per_tensor(((G - m) ** 2).mean(0))
    d["rho_layers"] = ((N_TRAIN - 1) * sq / var).cpu().numpy()
    derivation[s] = d
    print(
        f"seed {s}: class-wise r = {d['r']:.2f}, "
        f"bound sqrt(1 - r^2) = {np.sqrt(1 - d['r'] ** 2):.3f} <= "
        f"cos(g_f, h_r) = {d['cos_class']:.3f}\n"
        f"        random: rho = {d['rho']:.2f}; E<g_f, h_r> by "
        f"(eq-04-random-expectation) {d['formula']:.3e},\n"
        f"        by Monte Carlo {d['mc_mean']:.3e} ± {d['mc_se']:.1e}; "
        f"aligned in {100 * d['mc_aligned']:.0f} % of {N_MC} random forget sets"
    )

# %%
COLUMNS = {
    "cos(m, θ0)": ("cos_m_theta", "+7.4f"),
    "|m| / |λθ0|": ("m_over_decay", "7.2f"),
    "rho_l": ("rho_layers", "7.2f"),
    "cos_l, random": ("cos_layers_random", "+7.2f"),
}
print("per parameter tensor, one value per seed; cos_l, random: cos(g_f, h_r)")
print("restricted to the tensor, in random forgetting")
for pair in (list(COLUMNS)[:2], list(COLUMNS)[2:]):
    print(f"{'tensor':18s}" + "".join(f"{k:>26s}" for k in pair))
    for j, name in enumerate(LAYERS):
        cells = [
            "".join(format(derivation[s][key][j], fmt) for s in SEEDS)
            for key, fmt in (COLUMNS[k] for k in pair)
        ]
        print(f"{name:18s}" + "".join(f"{c:>26s}" for c in cells))

# %% tags=["hide-input"]
# Margins. (eq-04-bound) is a theorem: it may fail only by the float32 rounding of the
# cosines (1e-5). The Monte Carlo mean carries its standard error: 4 of them make a
# false alarm rarer than 1e-4. The sign of E<g_f, h_r> changes at rho = 1
# (eq-04-random-expectation), so rho_l = 1 is where a tensor's expected alignment
# changes sign. (eq-04-scale-invariance) holds up to the float32 rounding of m, a mean
# of N per-sample gradients that nearly cancel: below 1e-3 in the cosine, while the
# other tensors' cosines are of order 0.1 to 1.
WD_TENSORS = {
    "features.7.weight",
    "features.7.bias",
    "head.weight",
}  # last GroupNorm's affine, head weight
j_free = [LAYERS.index(n) for n in SCALE_FREE]
j_wd = [LAYERS.index(n) for n in WD_TENSORS]
for s, d in derivation.items():
    bound = np.sqrt(1 - d["r"] ** 2)
    assert d["r"] < 0.8, "r is well below 1, so the bound applies and says much"
    assert bound <= d["cos_class"] + 1e-5 and d["cos_class"] > 0.8, (
        "(eq-04-bound) holds"
    )
    assert abs(d["mc_mean"] - d["formula"]) < 4 * d["mc_se"], (
        "(eq-04-random-expectation) matches the Monte Carlo"
    )
    assert d["rho"] < 1 and d["formula"] > 0, (
        "rho < 1: aligned on average in random forgetting"
    )
    assert d["mc_aligned"] > 0.5, "... on most random forget sets"
    assert {LAYERS[j] for j in np.nonzero(d["rho_layers"] > 1)[0]} == WD_TENSORS, (
        "rho_l > 1 exactly in the tensors ruled by weight decay"
    )
    assert np.abs(d["cos_m_theta"][j_free]).max() < 1e-3, (
        "(eq-04-scale-invariance): m is orthogonal to conv weights"
    )
    # "mostly along": more than half of |m|^2 lies along -θ0, i.e. cos^2 > 1/2
    assert d["cos_m_theta"][j_wd].max() < -(0.5**0.5), (
        "where scale matters, m points along -θ0 ..."
    )
    assert (0.1 < d["m_over_decay"][j_wd]).all() and (
        d["m_over_decay"][j_wd] < 10
    ).all(), "... with |m| of the order of |λ θ0|"
rho_l = np.stack([derivation[s]["rho_layers"] for s in SEEDS])
cos_l = np.stack([derivation[s]["cos_layers_random"] for s in SEEDS])
assert (cos_l[rho_l > 1] < 0).all(), (
    "random forgetting: tensors with rho_l > 1 conflict, on every seed"
)
agree = (cos_l[rho_l < 1] > 0).mean()
assert agree > 0.5, "tensors with rho_l < 1 are mostly aligned"
print(
    f"tensors with rho_l > 1: {sorted({LAYERS[j] for j in np.nonzero(rho_l > 1)[1]})}, "
    f"all in conflict;\ntensors with rho_l < 1 aligned in {100 * agree:.0f} % "
    f"of (tensor, seed) pairs"
)

# %% [markdown]
# Every piece of the derivation checks out on every seed.
#
# - **Class-wise**, $r$ is well below 1 (printed above): the whole training set's gradient, weighted by $N$, is
#   a fraction of the forget class's, weighted by $n_f$. The bound {eq}`eq-04-bound` then guarantees a strong
#   alignment, and the measured cosine, above 0.8 on every seed, lies above the bound. GA at $\theta_0$ is, to first
#   order, a step that the retain set wants too.
# - **The residual $m$** is shaped by the weight-decay equilibrium as derived: it is orthogonal to every
#   convolution weight (a cosine below $10^{-3}$ in absolute value, {eq}`eq-04-scale-invariance`), while for the
#   last GroupNorm and the head's weight it points mostly along $-\theta_0$ (cosine below $-1/\sqrt2$: more than
#   half of its squared norm lies along that direction), with a norm of
#   the order of $\lambda\lVert\theta_0\rVert$: in those tensors the data push the weights outwards and weight decay pulls
#   them back.
# - **Random forgetting**: {eq}`eq-04-random-expectation` agrees with the Monte Carlo estimate within its
#   sampling error, and $\rho < 1$: the training gradient is small next to the per-sample noise, so forget and
#   retain gradients are aligned on average, and on most random forget sets (the share is printed). The expectation is
#   small, though: the cosine it implies is far below the class-wise one.
# - **Per tensor, random forgetting conflicts where weight decay rules.** The same three tensors, the last
#   GroupNorm's weight and bias and the head's weight, have $\rho_l > 1$, because their $m$ is the systematic
#   weight-decay push $\approx -\lambda\theta_0$ rather than noise; there the gradients conflict on every seed, as
#   {eq}`eq-04-random-expectation` predicts. Everywhere else $\rho_l < 1$ and the tensors are (mostly) aligned. A
#   random forget set, like any subset of the data, shares the data's push against weight decay, and GA reverses
#   its share of that push.
#
# ### How noisy is the probe?
#
# The tracker's probe estimates $h_r$ from 256 samples. Its error has the expected squared norm
# $\mathbb E\lVert g_r^{S} - h_r\rVert^2 = \frac{\sigma_r^2}{|S|}\frac{n_r - |S|}{n_r - 1}$ (the same sampling formula as
# above, within $D_r$), to be compared with $\lVert h_r\rVert^2$, which at $\theta_0$ is tiny. We draw 20 probes
# per task from the per-sample gradients and look at the spread of their cosines.

# %%
probe_noise = {}
for (sc, s), t in TASKS.items():
    G_r = derivation[s]["G"][t.retain_idx]
    h_r = G_r.mean(0)
    g_f = loss_grad(M0[s], t.x_forget, t.y_forget, neg_ce)
    n_r = len(t.retain_idx)
    noise = (G_r - h_r).pow(2).sum(1).mean().item() / PROBE * (n_r - PROBE) / (n_r - 1)
    draws = [
        torch.randperm(n_r, generator=torch.Generator().manual_seed(k))[:PROBE].to(
            device
        )
        for k in range(20)
    ]
    cosines = [cosine(g_f, G_r[rows].mean(0)).item() for rows in draws]
    probe_noise[sc, s] = {
        "noise_to_signal": noise / h_r.pow(2).sum().item(),
        "cos": np.array(cosines),
    }
    print(
        f"{sc:6s} seed {s}: E|probe error|^2 / |h_r|^2 = "
        f"{probe_noise[sc, s]['noise_to_signal']:5.2f}; cosine over 20 probes:\n"
        f"{'':15s}min {min(cosines):+.2f}, median {np.median(cosines):+.2f}, "
        f"max {max(cosines):+.2f} (all of D_r: {cos0[sc, s]['full']:+.2f})"
    )
for s in SEEDS:
    assert (
        probe_noise["class", s]["noise_to_signal"]
        < probe_noise["random", s]["noise_to_signal"]
    )
    # noise adds length but no alignment: a probe's cosine is about
    # cos / sqrt(1 + noise_to_signal)
    assert np.mean(probe_noise["class", s]["cos"] > 0) >= 0.9, (
        "class-wise: nearly every probe is aligned"
    )
    assert np.median(probe_noise["class", s]["cos"]) < cos0["class", s]["full"], (
        "... and underestimates it"
    )
    assert probe_noise["random", s]["noise_to_signal"] > 1, (
        "random: at θ0 the probe's error exceeds the signal"
    )
    assert (
        probe_noise["random", s]["cos"].min()
        < 0
        < probe_noise["random", s]["cos"].max()
    ), "... and sign flips"

# %% [markdown]
# At $\theta_0$ the probe's sampling error is larger than the retain gradient itself in random forgetting, and
# its cosine takes both signs depending on which 256 samples were drawn; in class-wise forgetting nearly every
# probe sees the alignment, though it underestimates it (the noise adds length to $g_r^{S}$ but not alignment). So
# a probe is a good instrument once the retain gradient has grown, along the runs below, and a poor one at a
# well-fit model: a statement about conflict at $\theta_0$ needs the whole retain set.
#
# ### Along the runs: the library's `ConflictTracker`
#
# Conflict is not a property of the task but of the point in weight space, so we follow it along the runs of GA and
# NegGrad+ from chapter 02, with their library defaults and the oracle-free stopping rule. The library's tracker
# is a `post_step(model, opt)` hook of `run_unlearning`. Every `every` steps it computes $g_f$ over the whole
# forget set and $g_r$ over its fixed probe and stores their cosine, both norms and both losses; with
# `per_layer=True` the cosine restricted to each parameter tensor; with `per_sample=True` (every `sample_every`
# records) $\cos(g_f, g_r^{(i)})$ for each probe sample and the conflict rate. It stores tensors and never calls
# `.item()`: the values are converted to NumPy once, when read. It measures in evaluation mode and does not touch
# `.grad` or the optimiser, so the run is the same with or without it.
#
# First, the from-scratch version, the few lines one would write in a notebook (chapter 09 does exactly this),
# and the check that the library's tracker records the same cosines on the same run.


# %%
def my_cosine_hook(task, probe_positions, every, store):
    """A post_step hook: every `every` steps, store
    cos(∇(−CE_f) over D_f, ∇CE over a fixed retain probe)."""
    xr_p, yr_p = task.x_retain[probe_positions], task.y_retain[probe_positions]
    calls = [0]

    def hook(model, opt):
        calls[0] += 1
        if calls[0] % every == 0:
            g_f = loss_grad(
                model, task.x_forget, task.y_forget, lambda z, y: -F.cross_entropy(z, y)
            )
            g_r = loss_grad(model, xr_p, yr_p)
            store.append(cosine(g_f, g_r))

    return hook


lib_tracker = ConflictTracker(task, every=3, probe_size=PROBE)
mine = []
hook = my_cosine_hook(
    task, torch.as_tensor(lib_tracker.probe_positions, device=device), 3, mine
)
both = lambda model, opt: (hook(model, opt), lib_tracker(model, opt))
with_hooks = ga(m0, task, steps=30, stop_at=None, seed=0, post_step=both)
without = ga(m0, task, steps=30, stop_at=None, seed=0)
assert all(
    torch.equal(p, q) for p, q in zip(with_hooks.parameters(), without.parameters())
), "the hooks change nothing"
assert len(mine) == len(lib_tracker) == 10 and np.array_equal(
    lib_tracker.steps, np.arange(3, 31, 3)
)
assert np.allclose(torch.stack(mine).cpu().numpy(), lib_tracker.cos, atol=1e-5)
assert np.ptp(lib_tracker.cos) > 100 * 1e-5, (
    "the cosine moves along the run by far more than the tolerance"
)
print("from-scratch hook = ConflictTracker:", np.round(lib_tracker.cos, 3))
print(
    f"one record costs a forward and backward pass over |D_f| + {PROBE} = "
    f"{len(task.y_forget) + PROBE} samples (a GA step: 32)"
)

# %% [markdown]
# Now the experiment: GA and NegGrad+, both scenarios, every seed, through `compare_methods` (chapter 02), each
# run carrying a tracker that records per layer, in class-wise forgetting every 5 steps and per sample every 10,
# in the longer and slower random-forgetting runs every 10 steps and per sample every 50. A `setup(task,
# seed)` attaches the tracker and records $\theta_0$ as step 0; the same pattern is what chapters 05–10 use to
# watch their methods.

# %%
# (every, sample_every): class-wise runs are short and change fast; random runs are long
# and change slowly.
SCHEDULE = {"class": (5, 2), "random": (10, 5)}
TRACKED = ("ga", "neggrad_plus")
trackers = {}


def with_tracker(method):
    def setup(task, seed):
        every, sample_every = SCHEDULE[task.scenario]
        tracker = ConflictTracker(
            task,
            every=every,
            probe_size=PROBE,
            per_layer=True,
            per_sample=True,
            sample_every=sample_every,
        )
        tracker.record(M0[seed], step=0)
        trackers[task.scenario, method, seed] = tracker
        return {"post_step": tracker}

    return setup


t_start = time.perf_counter()
runs = {
    sc: compare_methods(
        {m: (m, with_tracker(m)) for m in TRACKED},
        sc,
        data=data,
        cfg=cfg,
        seeds=SEEDS,
        forget_class=FORGET_CLASS,
        progress=False,
    )
    for sc in ("class", "random")
}
print(
    f"GA and NegGrad+ with trackers, both scenarios, seeds {SEEDS}: "
    f"{time.perf_counter() - t_start:.1f} s"
)
for sc, comp in runs.items():
    print(f"== {sc} (mean ± 95 % CI over seeds; first row: retrain oracle) ==")
    print(comp.table())
    print(
        "steps: "
        + ", ".join(
            f"{m} {comp.per_seed(m, 'steps').astype(int).tolist()}" for m in TRACKED
        )
    )

# %%
fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharey=True)
for i, sc in enumerate(("class", "random")):
    for j, method in enumerate(TRACKED):
        ax = axes[i, j]
        for s in SEEDS:
            tr = trackers[sc, method, s]
            ax.plot(tr.steps, tr.cos, ".-", label=f"seed {s}")
        ax.axhline(0, color="k", lw=1)
        ax.set_title(f"{method}, {sc} forgetting")
        ax.set_xlabel("step")
        ax.set_ylabel(r"cos($g_f$, $g_r$) (probe)")
        ax.legend()
fig.suptitle("Forget/retain gradient cosine along the runs (step 0: θ0)")
fig.tight_layout()
plt.show()

# %% [markdown]
# What the curves say, each with its assert.

# %%
comp_c, comp_r = runs["class"], runs["random"]
first_negative = lambda tr: (
    tr.steps[np.argmax(tr.cos < 0)] if (tr.cos < 0).any() else None
)
for sc in ("class", "random"):
    for method in TRACKED:
        for s in SEEDS:
            tr = trackers[sc, method, s]
            conflicted = (tr.cos < 0).any()
            acc = tr.forget_acc[np.argmax(tr.cos < 0)] if conflicted else float("nan")
            loss = tr.retain_loss
            print(
                f"{sc:6s} {method:12s} seed {s}: cos {tr.cos[0]:+.2f} at θ0 -> "
                f"{tr.cos[-1]:+.2f} at step {tr.steps[-1]}\n{'':8s}"
                f"(min {tr.cos.min():+.2f}, first < 0 at step {first_negative(tr)})\n"
                f"{'':8s}probe retain loss "
                f"{loss[0]:.4f} -> min {loss.min():.4f} at step "
                f"{tr.steps[loss.argmin()]} -> {loss[-1]:.4f}\n{'':8s}"
                f"|g_f| x{tr.forget_norm[-1] / tr.forget_norm[0]:.0f}, "
                f"|g_r| x{tr.retain_norm[-1] / tr.retain_norm[0]:.0f}; "
                f"forget acc at the first cos < 0: {acc:.1f} %"
            )
ra_ngp = comp_c.per_seed("neggrad_plus", "RA")
print("NegGrad+ retain accuracy, class-wise:", ra_ngp.round(2))

# %% tags=["hide-input"]
for s in SEEDS:
    ga_c, ngp_c = trackers["class", "ga", s], trackers["class", "neggrad_plus", s]
    # 1. Class-wise GA: aligned at θ0, strongly opposed at the stopping point; the sign
    #    changes partway through the run.
    assert ga_c.cos[0] > 0 and ga_c.cos[-1] < -0.5
    assert ga_c.steps[0] < first_negative(ga_c) < ga_c.steps[-1]
    # 2. First order along the run: the retain loss falls while cos > 0 and is lowest
    #    where the cosine changes sign, within the resolution of one record.
    last_aligned = ga_c.steps[np.argmax(ga_c.cos < 0) - 1]
    assert abs(ga_c.steps[ga_c.retain_loss.argmin()] - last_aligned) <= ga_c.every
    assert ga_c.retain_loss.min() < ga_c.retain_loss[0] < ga_c.retain_loss[-1] / 5
    # 3. The gradients grow: |g_f| by about two orders of magnitude, |g_r| by more than
    #    one, so the probe becomes a good instrument.
    assert ga_c.forget_norm[-1] > 50 * ga_c.forget_norm[0]
    assert ga_c.retain_norm[-1] > 10 * ga_c.retain_norm[0]
    # ... and the sign changes while the forget set is still well classified.
    assert ga_c.forget_acc[np.argmax(ga_c.cos < 0)] >= 95
    # 4. NegGrad+: the conflict appears earlier than in GA and is as strong.
    assert first_negative(ngp_c) < first_negative(ga_c) and ngp_c.cos.min() < -0.5
    # 5. Random forgetting, GA: the cosine drifts into conflict while the retain loss
    #    hardly changes.
    ga_r = trackers["random", "ga", s]
    assert ga_r.cos[-1] < min(ga_r.cos[0] - 0.3, 0)
    assert abs(ga_r.retain_loss[-1] / ga_r.retain_loss[0] - 1) < 0.25
# NegGrad+ keeps its retain accuracy (mean of at least 99 %), GA loses some on
# every seed.
assert ra_ngp.mean() >= 99 and (comp_c.per_seed("ga", "RA") < ra_ngp).all()
n_batches = -(-len(TASKS["random", 0].forget_idx) // 32)
ga_budget = inspect.signature(ga).parameters["epochs"].default * n_batches
assert (comp_r.per_seed("ga", "steps") == ga_budget).all(), (
    "random: GA never reaches its target, runs its budget"
)

# %% [markdown]
# - **Conflict is created by the run.** In class-wise forgetting GA starts with aligned gradients (a positive
#   cosine on the probe) and ends, where the stopping rule halts it, with a cosine below $-0.5$: the forget and
#   retain gradients point almost in opposite directions. The sign changes partway through the run, while the
#   forget set is still classified correctly (95 % or more of it): the conflict sets in before any forgetting is
#   visible (the cliff of chapter 02 comes later).
# - **The first-order model holds along the run.** While the cosine is positive the retain loss *falls* (by a
#   few percent, from an already tiny value), and it is lowest exactly where the cosine changes sign, within one
#   record; after that it climbs, to many times its starting value. This is {eq}`eq-04-ga-step` integrated
#   along the path.
# - **The gradients grow.** $\lVert g_f\rVert$ grows by about two orders of magnitude (GA's $1 - p_y$ push of chapter
#   02 no longer fades), and $\lVert g_r\rVert$ by more than one: by the time the conflict matters, the probe
#   measures it reliably.
# - **NegGrad+ meets the conflict earlier and just as strongly**, because its larger learning rate moves the
#   weights faster, and yet it keeps a mean retain accuracy of 99 % or more. A conflict between $g_f$
#   and $g_r$ is not damage by itself: NegGrad+ steps along $g_f + \frac{\beta}{1-\beta} g_r$
#   ({eq}`eq-02-ngp-direction`), and its large retain weight repairs what the forget term breaks. Conflict says
#   that *some* price must be paid; the methods of Part II differ in how they pay it.
# - **Random forgetting**: GA's cosine drifts steadily from its $\theta_0$ value to clear conflict, while the
#   retain loss barely moves. GA's small learning rate never reaches its stopping target here (chapter 02), and
#   the conflict it builds up stays harmless.
#
# ## Per layer and per sample
#
# ### Which layers conflict?
#
# The per-layer cosine restricts both gradients to one parameter tensor. It is not a decomposition of the global
# cosine (the global inner product is the sum of the per-tensor inner products, but the norms do not add), yet
# its sign says, for each tensor, whether moving that tensor alone along $g_f$ would lower or raise $L_r$. The
# library's `blockwise_cosines` computes all of them with one `index_add` per quantity, on the device; the
# per-tensor loop of `unlearnlib.grads.layer_cosines` (chapter 02's style, one `.item()` per tensor) must agree.

# %%
g_f, g_r = forget_retain_grads(
    m0, task.x_forget, task.y_forget, task.x_retain[:PROBE], task.y_retain[:PROBE]
)
looped = layer_cosines(g_f, g_r, trainable(m0))
vectorised = blockwise_cosines(g_f, g_r, LAYER_IDX, len(LAYERS))
assert list(looped) == LAYERS and np.allclose(
    list(looped.values()), vectorised.cpu().numpy(), atol=1e-6
)
print("per-tensor cosines at θ0 (class-wise, seed 0, first 256 retain samples):")
for n, v in looped.items():
    print(f"  {n:18s} {v:+.2f}")

# %%
fig, axes = plt.subplots(2, 2, figsize=(13, 8))
for i, sc in enumerate(("class", "random")):
    for j, method in enumerate(TRACKED):
        tr, ax = trackers[sc, method, SEEDS[0]], axes[i, j]
        im = ax.imshow(
            tr.layer_cos.T,
            aspect="auto",
            cmap="RdBu",
            vmin=-1,
            vmax=1,
            interpolation="nearest",
            extent=(
                tr.steps[0] - tr.every / 2,
                tr.steps[-1] + tr.every / 2,
                len(LAYERS) - 0.5,
                -0.5,
            ),
        )
        ax.set_yticks(range(len(LAYERS)))
        ax.set_yticklabels(tr.layer_names, fontsize=8)
        ax.set_xlabel("step")
        ax.set_title(f"{method}, {sc} forgetting (seed {SEEDS[0]})")
fig.colorbar(im, ax=axes, label=r"cos($g_f$, $g_r$) restricted to the tensor")
plt.show()

# %%
FEATURES = [j for j, n in enumerate(LAYERS) if n.startswith("features.")]
HEAD = [j for j, n in enumerate(LAYERS) if n.startswith("head.")]
for s in SEEDS:
    lc, lc_r = (
        trackers["class", "ga", s].layer_cos,
        trackers["random", "ga", s].layer_cos,
    )
    rows = {"class, θ0": lc[0], "class, end": lc[-1], "random, θ0": lc_r[0],
            "random, end": lc_r[-1]}
    print(f"seed {s}, GA, per-tensor cosines (tensors in the order printed above):")
    for label, values in rows.items():
        print(f"  {label:12s}" + " ".join(f"{v:+.2f}" for v in values))

# %% tags=["hide-input"]
for s in SEEDS:
    lc, lc_r = (
        trackers["class", "ga", s].layer_cos,
        trackers["random", "ga", s].layer_cos,
    )
    noise_ruled = derivation[s]["rho_layers"] < 1  # the tensors not ruled by decay
    # 7. Class-wise, at θ0: every tensor with rho_l < 1 is aligned.
    assert (lc[0, noise_ruled] > 0).all()
    # 8. At the end of class-wise GA, every tensor of the feature extractor conflicts,
    #    and the head least of all.
    assert lc[-1, FEATURES].max() < -0.4
    assert lc[-1, HEAD].min() > max(lc[-1, FEATURES].max(), -0.5)
    # 9. Random forgetting at θ0: even with the probe's noise, the tensor with the
    #    largest rho_l conflicts.
    assert lc_r[0, LAYERS.index("features.7.weight")] < 0
    # 10. ... and along random-forgetting GA the conflict spreads to most tensors.
    assert (lc_r[-1] < 0).mean() > 0.5

# %% [markdown]
# In class-wise forgetting every tensor with $\rho_l < 1$ starts aligned (in the three tensors ruled by weight
# decay the residual $m$ competes with $g_f$), and the conflict then spreads through the whole feature
# extractor, convolutions and GroupNorm parameters alike, while the head stays the least conflicted tensor: at
# the end its cosine is near zero or mildly negative. This matches chapter 02's diagnosis from the other side:
# most of GA's step lies in the shared layers, and that is where the forget and retain objectives disagree. In
# random forgetting the tensors ruled by weight decay conflict from the start (§4.3; even through the probe's noise,
# the last GroupNorm's weight, whose $\rho_l$ is largest, shows it on every seed), and under GA the conflict
# spreads from there to the rest of the network.
#
# ### Which samples conflict?
#
# The mean retain gradient is an average over samples, and an average can hide disagreement. The per-sample
# cosines $\cos(g_f, g_r^{(i)})$ use the per-sample gradients of §4.1. Our version, from `my_per_sample_grads`,
# must agree with the library's `sample_cosines`, which the tracker uses.

# %%
G_probe = flatten_batched(
    my_per_sample_grads(m0, task.x_retain[:64], task.y_retain[:64])
)
mine = (G_probe @ g_f) / (G_probe.norm(dim=1) * g_f.norm())
lib = sample_cosines(m0, g_f, task.x_retain[:64], task.y_retain[:64])
assert torch.allclose(mine, lib, atol=1e-5) and mine.max() - mine.min() > 0.5
assert conflict_rate(lib) == (lib < 0).float().mean().item()
print(
    f"64 retain samples: per-sample cosines from {mine.min():+.2f} to "
    f"{mine.max():+.2f}, ours = library; conflict rate {conflict_rate(lib):.2f}"
)

# %%
per_sample_0 = {}
for s in SEEDS:
    t = TASKS["class", s]
    G_r = derivation[s]["G"][t.retain_idx]
    g_f = loss_grad(M0[s], t.x_forget, t.y_forget, neg_ce)
    with torch.no_grad():
        p3 = torch.softmax(M0[s](t.x_retain), 1)[:, FORGET_CLASS]
    per_sample_0[s] = {
        "cos": ((G_r @ g_f) / (G_r.norm(dim=1) * g_f.norm())).cpu().numpy(),
        "p3": p3.cpu().numpy(),
        "y": t.y_retain.cpu().numpy(),
    }

fig, axes = plt.subplots(1, 3, figsize=(16, 4))
for ax, (sc, method) in zip(axes[:2], (("class", "ga"), ("random", "ga"))):
    start = np.concatenate([trackers[sc, method, s].sample_cos[0] for s in SEEDS])
    end = np.concatenate([trackers[sc, method, s].sample_cos[-1] for s in SEEDS])
    histograms(
        ax,
        {"θ0": start, "last record": end},
        bins=30,
        xlabel=r"cos($g_f$, $g_r^{(i)}$), probe samples",
        title=f"{method}, {sc} forgetting ({len(SEEDS)} seeds)",
    )
    ax.axvline(0, color="k", lw=1)
for sc, ls in (("class", "-"), ("random", ":")):
    for k, method in enumerate(TRACKED):
        for s in SEEDS:
            tr = trackers[sc, method, s]
            axes[2].plot(
                tr.sample_steps,
                tr.conflict_rate,
                ls,
                color=f"C{k}",
                label=f"{method}, {sc}" if s == SEEDS[0] else None,
            )
axes[2].set_xlabel("step")
axes[2].set_ylabel("share of probe samples in conflict")
axes[2].set_title("Per-sample conflict rate (one line per seed)")
axes[2].legend()
fig.tight_layout()
plt.show()

# %%
for s in SEEDS:
    ga_c, ngp_c = trackers["class", "ga", s], trackers["class", "neggrad_plus", s]
    print(
        f"seed {s}: conflict rate at θ0 over all of D_r "
        f"{np.mean(per_sample_0[s]['cos'] < 0):.2f} "
        f"(probe {ga_c.conflict_rate[0]:.2f});\n{'':8s}"
        f"class-wise GA -> {ga_c.conflict_rate[-1]:.2f}, "
        f"NegGrad+ max {ngp_c.conflict_rate.max():.2f}"
    )
    for method in TRACKED:
        rate = trackers["random", method, s].conflict_rate
        print(
            f"{'':8s}random {method}: from {rate[0]:.2f} to {rate[-1]:.2f} "
            f"(range {rate.min():.2f} to {rate.max():.2f})"
        )

# %% tags=["hide-input"]
for s in SEEDS:
    ga_c, ngp_c = trackers["class", "ga", s], trackers["class", "neggrad_plus", s]
    # 11. At θ0 the mean gradients are aligned, yet between a fifth and a half of the
    #     retain samples conflict: a large minority.
    assert (
        0.2 < np.mean(per_sample_0[s]["cos"] < 0) < 0.5
        and cos0["class", s]["full"] > 0.8
    )
    # 12. Class-wise, the conflict spreads to most samples by the end of the run, for
    #     both methods.
    assert (
        ga_c.conflict_rate[-1] > 0.7
        and ga_c.conflict_rate[-1] > ga_c.conflict_rate[0] + 0.3
    )
    assert ngp_c.conflict_rate.max() > 0.8
    # 13. Random forgetting: the rate stays in a band around one half at every record,
    #     0.5 ± 0.25: the probe's binomial error (0.03) plus three times the spread over
    #     seeds and records (0.07).
    for method in TRACKED:
        rate = trackers["random", method, s].conflict_rate
        assert 0.25 < rate.min() and rate.max() < 0.75

# %% [markdown]
# Even at $\theta_0$, where the mean gradients are aligned with a cosine above 0.8, between a fifth and a half of
# the individual retain samples have a gradient that conflicts with $g_f$: the alignment of the mean is a
# majority vote, not a consensus. In class-wise forgetting the conflicting share then grows along both runs to
# most of the probe. In random forgetting it stays around one half throughout: the forget set is a sample of the
# same data, and its gradient is about as often with an individual retain sample as against it. This is the
# observation behind OrthoGrad (chapter 07): protecting the *mean* retain gradient, as the surgery of chapters
# 05–06 does, constrains one direction, while each retain sample has its own.
#
# **Which samples?** A natural guess is "the digits that look like a 3". We measure looking like a 3 by the
# probability $p_3(x_i)$ that $\theta_0$ gives class 3 for a retain image, and correlate it with the per-sample
# cosine, at $\theta_0$ (over all of $D_r$) and along the runs (over the probe).

# %%
rank_corr = lambda a, b: stats.spearmanr(a, b)[0]
print("Spearman correlation of cos(g_f, g_r^(i)) with p_3(x_i), class-wise:")
corr_path = {}
for s in SEEDS:
    ps = per_sample_0[s]
    corr_0 = rank_corr(ps["cos"], ps["p3"])
    print(f"  seed {s}: at θ0 over all of D_r {corr_0:+.2f}; on the probe:")
    for method in TRACKED:
        tr = trackers["class", method, s]
        p3_probe = ps["p3"][tr.probe_positions]
        corr_path[method, s] = path = np.array(
            [rank_corr(c, p3_probe) for c in tr.sample_cos]
        )
        mid = len(path) // 2
        print(
            f"{'':12s}{method:12s} {path[0]:+.2f} at step 0, {path[mid]:+.2f} at step "
            f"{tr.sample_steps[mid]}, {path[-1]:+.2f} at step {tr.sample_steps[-1]}"
        )

names = [c for c in range(data.num_classes) if c != FORGET_CLASS]
per_class = lambda key, c: np.mean(
    [per_sample_0[s][key][per_sample_0[s]["y"] == c].mean() for s in SEEDS]
)
table = {
    "mean p_3 at θ0": [per_class("p3", c) for c in names],
    "cos at θ0 (D_r)": [per_class("cos", c) for c in names],
}
for method in TRACKED:
    table[f"{method}: cos at end"] = [
        np.mean(
            [
                conflict_by_class(tr.sample_cos[-1], tr.probe_labels, data.num_classes)[
                    "mean_cos"
                ][c]
                for tr in (trackers["class", method, s] for s in SEEDS)
            ]
        )
        for c in names
    ]
print("\nper class of the retain sample, class-wise, mean over seeds")
print("(end: the last per-sample record)")
print(
    f"{'class':>5s}{'p_3 at θ0':>12s}{'cos at θ0':>12s}{'GA, end':>12s}"
    f"{'NegGrad+, end':>16s}"
)
for i, c in enumerate(names):
    print(
        f"{c:5d}{table['mean p_3 at θ0'][i]:12.4f}"
        + "".join(
            f"{table[k][i]:+{w}.2f}" for k, w in zip(list(table)[1:], (12, 12, 16))
        )
    )
class_corr = stats.spearmanr(table["mean p_3 at θ0"], table["cos at θ0 (D_r)"])
print(
    f"over the nine classes at θ0: Spearman {class_corr[0]:+.2f} "
    f"(p = {class_corr[1]:.3f})"
)

# %% tags=["hide-input"]
for s in SEEDS:
    # 14. At θ0, the 3-like retain samples are the ones GA helps most: a rank
    #     correlation far above its standard error under independence, 1 / sqrt(n - 1)
    #     (about 0.03 over D_r).
    n_r = len(per_sample_0[s]["cos"])
    assert (
        rank_corr(per_sample_0[s]["cos"], per_sample_0[s]["p3"]) > 3 / (n_r - 1) ** 0.5
    )
    for method in TRACKED:
        # 15. ... and by the end of every run they are the ones it hurts most (the
        #     probe's standard error is about 0.06).
        assert (
            corr_path[method, s][-1] < 0
            and corr_path[method, s][-1] < corr_path[method, s][0] - 0.3
        )
# 16. By class, at θ0: the more 3-like a class, the more aligned, significantly over
#     nine classes.
assert class_corr[0] > 0 and class_corr[1] < 0.05

# %% [markdown]
# Looking like a 3 matters, but not in the way the guess suggests, and the answer changes along the run.
#
# - **At $\theta_0$ the 3-like samples are helped most.** The rank correlation between $p_3(x_i)$ and the
#   per-sample cosine is positive on every seed, many standard errors above zero: the retain images that
#   $\theta_0$ finds most 3-like are the ones a GA step helps most. This is the mechanism of §4.3 seen sample by
#   sample: GA lowers the logit of class 3 for every input (through row 3 of the head, its bias and the shared
#   features), and a retain image with some probability on class 3 gains most from that. By class, the same
#   ordering holds: over the nine retain classes, the mean $p_3$ and the mean cosine at $\theta_0$ are
#   significantly rank-correlated.
# - **At the end they are hurt most.** Along both runs the correlation falls and ends negative on every run:
#   once GA dismantles the features that make a 3, the images that share those features pay. The table shows
#   which classes pay at the end. With about 25 probe samples per class and three seeds, its per-class values
#   carry too much sampling noise to rank individual digits; the per-sample correlation above is the reliable
#   statement.
#
# ## How the methods of Part II manage the conflict
#
# Every method of the next chapters chooses its direction $d$ by answering the same question, "how close to
# $g_f$ can $d$ be while the retain terms of {eq}`eq-04-first-order` stay under control?", with a different
# constraint. The table is a map; each row is derived,
# implemented and measured in its chapter. "Backward passes" counts the passes of one step as the library
# implements it (a per-sample `vmap` pass counts as one, although it costs several times more, §4.1).
#
# | chapter | method | direction $d$ (descent convention) | what it constrains | backward passes per step | retain information |
# |---|---|---|---|---|---|
# | 02 | GA | $g_f$ | nothing | 1 | none |
# | 02 | NegGrad+ | $g_f + \mu g_r$, $\mu = \beta/(1-\beta)$ fixed | nothing; a fixed price per unit of $g_r$ | 1 (of the combined loss) | mean of a batch |
# | 05 | PCGrad {cite}`yu2020pcgrad` (arXiv 2001.06782) | each of $g_f$, $g_r$ projected off the other when $\langle g_f, g_r\rangle < 0$, then summed | both projected parts are conflict-free with the other original | 2 | mean of a batch |
# | 05 | unilateral surgery | $g_f + \lambda^\star g_r$ | $\min \tfrac12\lVert d - g_f\rVert^2$ s.t. $\langle g_r, d\rangle \ge -\epsilon$: one inequality, closed-form $\lambda^\star$ | 2 | mean of a batch |
# | 06 | implicit surgery {cite}`zhou2025implicit` (arXiv 2510.22124) | $g_f + \lambda_t g_r$ | the same inequality, $\lambda$ by dual ascent from the *measured* change of $\ell_r$ | 1 (plus one forward) | mean, through a loss value |
# | 07 | OrthoGrad {cite}`shamsian2025orthograd` (arXiv 2503.02312) | $\alpha\bar g_r + (1-\alpha)\,P^\perp g_f$ | $\langle g_r^{(i)}, P^\perp g_f\rangle = 0$ for every retain sample $i$ of the batch: $B$ equalities, always applied | 1 + 1 per-sample | per sample |
# | 08 | LTU {cite}`huang2024ltu` (arXiv 2407.10494) | meta-gradients at look-ahead weights, harmonised (PCGrad-style) | a soft reward for $\langle g_f, g_r\rangle > 0$, plus projection of conflicting meta-gradients | 2 or more (look-ahead) | mean of a small retain subset |
# | 09 | LUR {cite}`patel2025lur` (arXiv 2503.06339) | $\nabla\big[L_r + L_f(\theta - \alpha\nabla L_r)\big]$ | a soft penalty: the implicit regulariser $-\alpha\langle\nabla L_f, \nabla L_r\rangle$ | 2 + a Hessian-vector product | mean of a batch |
# | 10 | masked feasible updates {cite}`dine2025masked` (arXiv 2511.02435) | $m \odot u$ for a base update $u$ | coordinate-wise: keep $u_j$ only where a test on per-sample gradients says $u_j g_{r,j} \ge 0$ with confidence $1-\delta$ | the base's + 1 per-sample | per sample and per coordinate |
#
# Two axes organise the table. **What is protected**: nothing (GA), the mean retain gradient (NegGrad+, the
# surgeries, LUR), or every sample (OrthoGrad, masking); §4.4 showed that the mean can be aligned while a fifth or
# more of the samples conflict, which is the case for the per-sample methods. **How hard**: a fixed price
# (NegGrad+), a hard constraint at every step (surgery, OrthoGrad, masking), or a soft preference for aligned
# regions of weight space (LUR, LTU). The first-order model of §4.2 is the common ground: every constraint in the
# table is a statement about $-\eta\langle g_r, d\rangle$ or $-\eta\langle g_r^{(i)}, d\rangle$, and is only as good as that
# model at the step size used. And §4.3 adds a caution for all of them: at $\theta_0$ there is nothing to protect
# against, so the constraints bind only once the run has created the conflict. The statements about each paper's
# method are the papers' own, from their abstracts; the formulations, the constraint view and every number are ours,
# derived and checked in the chapters that follow.
#
# The `ConflictTracker` is how those chapters measure their methods against this chapter's baselines, with
# `compare_methods(..., {"pcgrad": ("pcgrad", lambda task, seed: {"post_step": ConflictTracker(task)})})` or
# the setup function of §4.3.
#
# ## Summary
#
# - Per-sample gradients are `vmap` of `grad` of a one-sample loss with the parameters passed explicitly
#   (`functional_call`); their mean is the batch gradient as long as no layer mixes samples, which is why the book
#   uses GroupNorm and the library refuses train-mode BatchNorm.
# - A step $-\eta d$ changes a loss by $-\eta\langle\nabla L, d\rangle$ with an $O(\eta^2)$ error
#   ({eq}`eq-04-first-order`). We measured slope 2 over three decades of $\eta$ and the exact Taylor remainder below
#   the first ReLU kink; single kinks are first-order effects, but the many kinks crossed by a step over a data set
#   add up to a quadratic error again.
# - Conflict is $\langle g_f, g_r\rangle < 0$ with $g_f = \nabla(-\mathrm{CE}_f)$ ({eq}`eq-04-conflict`): then a GA step
#   raises the retain loss to first order. We predicted the change of the retain loss of one library GA step to
#   better than 1 % in class-wise forgetting.
# - **At $\theta_0$ the gradients do not conflict.** The balance identity {eq}`eq-04-balance` makes the retain
#   gradient the GA direction plus a multiple of the residual training gradient; in class-wise forgetting the
#   residual is small and the bound {eq}`eq-04-bound` guarantees a strong alignment (measured: above 0.8). In
#   random forgetting the sign is a competition between the training gradient and the per-sample noise,
#   {eq}`eq-04-random-expectation`; on digits the noise wins ($\rho < 1$), except in the tensors ruled by
#   weight decay, which conflict from the start.
# - **The runs create the conflict.** Class-wise GA turns a positive cosine into one below $-0.5$; the retain
#   loss falls until the sign changes and rises after it. NegGrad+ meets the same conflict and survives it with its
#   retain term. The conflict lives in the feature extractor, not the head.
# - **Per sample**, a fifth to a half of the retain samples conflict even at $\theta_0$, and most by the end of
#   class-wise GA. The samples GA helps at first, those that look like a 3, are the ones it hurts most at the end.
# - A probe of 256 retain samples is a reliable instrument along the runs but not at a well-fit model, where the
#   retain gradient is smaller than its own sampling error.


# %% [markdown]
# ## Exercises
#
# The exercises practise the chapter's instruments: the first-order model of a loss change (§4.2), the conflict
# at $\theta_0$ and its derivation (§4.3), and the trackers along the runs (§4.3–4.4). The two exercises marked
# "graded" compute the diagnostics of §4.3 from a matrix of per-sample gradients and come with tests; every other
# exercise has a worked solution below it. The solutions of experiments run at the end of this chapter and use
# its variables (`M0`, `TASKS`, `derivation`, `trackers`...).

# %% tags=["exercise-setup"]
import itertools
import math

import torch

from unlearnlib.config import get_profile
from unlearnlib.data import load_dataset
from unlearnlib.diagnostics import layer_index
from unlearnlib.grads import flatten_batched, per_sample_grads
from unlearnlib.train import TrainConfig, original_model

# A small per-sample gradient matrix (one row per sample, as in §4.3) whose 9 forget
# rows pull against the 31 others, like a class at θ0, plus noise; and the real
# per-sample gradients of the whole training set of digits at θ0 (seed 0, ci profile),
# on the CPU.
ex_gen = torch.Generator().manual_seed(4)
ex_forget = torch.zeros(40, dtype=torch.bool)  # host: exercise input
ex_forget[torch.randperm(40, generator=ex_gen)[:9]] = True  # host: exercise input
ex_G = torch.randn(40, 7, generator=ex_gen)  # host: exercise input
ex_G += torch.where(ex_forget, -1.5, 0.4)[:, None]
# the block (tensor) of each coordinate
ex_index = torch.tensor([2, 0, 0, 1, 2, 0, 1])  # host: exercise input
ex_data = load_dataset("digits")
ex_model = original_model(
    ex_data,
    TrainConfig.from_profile(get_profile("ci")),
    seed=0,
    device="cpu",
    progress=False,
)
ex_G_real = flatten_batched(
    per_sample_grads(ex_model, ex_data.x_train, ex_data.y_train, chunk_size=512)
)  # [N, P]
ex_y = ex_data.y_train
ex_blocks, ex_block_index = layer_index(ex_model)

# %% [markdown]
# ```{exercise} A second-order prediction
# :label: ex-04-second-order
#
# *experiment · about 1 CPU minute*
#
# Add the term $\tfrac{\eta^2}{2} d^\top\nabla^2 L_r\, d$ (computed with `curvature`) to the linear prediction
# of §4.2, for the unit GA direction $g_f/\lVert g_f\rVert$ of class-wise forgetting and the retain loss over all of
# $D_r$, in float64, on the model of every seed. How does the error of the second-order prediction scale with
# $\eta$ below and above the first ReLU crossing $\eta_1$ (`first_crossing`)? How much of the error of the linear
# prediction does the curvature term remove above $\eta_1$? What does your answer say about choosing GA's
# learning rate from the curvature at $\theta_0$?
# ```

# %% [markdown]
# ```{solution-start} ex-04-second-order
# :class: dropdown
# ```
# Below $\eta_1$ the loss is smooth along the segment and {eq}`eq-04-taylor` holds with a third-order remainder,
# which at such small steps is below the float64 rounding of the loss. Above $\eta_1$ the kinks take over: their
# aggregate effect is a quadratic term (§4.2) that the Hessian at $\theta_0$ does not contain, so the error of the
# second-order prediction grows with slope about 2 again, like the first-order one, only smaller.
#
# Measured over seeds 0–2 (code below): $\eta_1$ lies between $1.4\cdot10^{-6}$ and $7.8\cdot10^{-6}$. At
# $\eta_1/2$ the second-order error is $10^{-17}$ to $1.4\cdot10^{-16}$, at the level of the float64 rounding of
# the losses ($5$–$7\cdot10^{-17}$), while the first-order error is $2.5\cdot10^{-13}$ to $1.1\cdot10^{-11}$: the
# curvature term removes all of it. For $10\,\eta_1 < \eta \le 10^{-2}$ the second-order error has a fitted slope
# of 1.66 to 2.12 and is 3 % to 28 % of the first-order error: the curvature removes most of the error but not its
# order. So a learning rate chosen from the curvature at $\theta_0$ (say $\eta \approx 2/d^\top H d$) rests on a
# model that is exact only below $\eta_1$, far below any useful step; beyond it the kinks add curvature of their
# own, which must be measured along the step (as §4.2 does), not at its start.

# %% tags=["skip-execution"]
second_order = {}
for s in SEEDS:
    m64_s = copy.deepcopy(M0[s]).double().eval()
    t = TASKS["class", s]
    x_r, y_r = t.x_retain.double(), t.y_retain
    d = unit(loss_grad(m64_s, t.x_forget.double(), t.y_forget, neg_ce))
    measured, predicted = loss_change(m64_s, x_r, y_r, d, ETAS)
    dHd = curvature(m64_s, x_r, y_r, d)
    params_s = {n: p.detach() for n, p in m64_s.named_parameters()}
    eta_1 = first_crossing(m64_s, params_s, x_r, d)
    err1 = (measured - predicted).abs().cpu().numpy()
    err2 = (measured - predicted - 0.5 * ETAS**2 * dHd).abs().cpu().numpy()
    above = (eta_np > 10 * eta_1) & (eta_np <= 1e-2)
    # below the first kink: at eta_1 / 2, against the float64 rounding of the losses
    m_h, p_h = loss_change(m64_s, x_r, y_r, d, [eta_1 / 2])
    err2_half = abs((m_h - p_h).item() - 0.5 * (eta_1 / 2) ** 2 * dHd)
    rounding = U64 * len(y_r) ** 0.5 * F.cross_entropy(m64_s(x_r), y_r).item()
    second_order[s] = {
        "eta_1": eta_1,
        "slope_2": np.polyfit(log_eta[above], np.log(err2[above]), 1)[0],
        "ratio": err2[above] / err1[above],
    }
    print(
        f"seed {s}: eta_1 = {eta_1:.1e}; at eta_1 / 2 the second-order error is "
        f"{err2_half:.1e} (first-order {abs((m_h - p_h).item()):.1e}, rounding "
        f"{rounding:.0e});\n  above 10 eta_1 (eta <= 1e-2) it has slope "
        f"{second_order[s]['slope_2']:.2f} and is {second_order[s]['ratio'].min():.2f} "
        f"to {second_order[s]['ratio'].max():.2f} of the first-order error"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The class-wise bound from per-sample gradients
# :label: ex-04-class-alignment
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `class_alignment(G, forget)`. Its input is what §4.3 builds at $\theta_0$: the matrix `G` of the
# per-sample cross-entropy gradients of all $N$ training samples (one row per sample) and a boolean mask of the
# forget set. From these alone, compute the cosine $\cos(g_f, h_r)$ of the balance identity {eq}`eq-04-balance`,
# the ratio $r$ and the lower bound of {eq}`eq-04-bound`, with the bound reported as NaN where it does not apply.
# Check on the real gradients `ex_G_real` of the setup cell, with digit 3 as the forget class, that the cosine
# lies above the bound.
# ```

# %% tags=["remove-cell", "graded"]
def class_alignment(G, forget):
    """G: [N, P] float tensor, row i the gradient of the cross-entropy of training
    sample i. forget: bool tensor [N], True for the samples of D_f.
    Returns (cos, r, bound), three Python floats:
      cos = cos(g_f, h_r), g_f the gradient of L_f = -CE_f (the forget rows' mean,
            negated) and h_r the mean of the retain rows;
      r = N ||m|| / (n_f ||g_f||), m the mean of all N rows;
      bound = sqrt(1 - r^2) if r < 1, else float("nan").
    """
    # BEGIN SOLUTION
    G = G.double()  # three means and three norms: float64 keeps them exact enough
    g_f = -G[forget].mean(0)
    h_r = G[~forget].mean(0)
    m = G.mean(0)
    cos = (g_f @ h_r / (g_f.norm() * h_r.norm())).item()
    r = (len(G) * m.norm() / (int(forget.sum()) * g_f.norm())).item()
    bound = math.sqrt(1 - r * r) if r < 1 else float("nan")
    return cos, r, bound
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Two forget rows pulling along -e1, two retain rows: g_f = (1, 0), h_r = (1.1, 0),
# m = (0.05, 0), so r = 4 * 0.05 / (2 * 1) = 0.1 and the cosine is 1.
ex_cos, ex_r, ex_bound = class_alignment(
    torch.tensor([[-1.0, 0.0], [-1.0, 0.0], [1.0, 0.5], [1.2, -0.5]]),
    torch.tensor([True, True, False, False]),
)
assert abs(ex_r - 0.1) < 1e-6 and abs(ex_cos - 1.0) < 1e-6
assert abs(ex_bound - math.sqrt(0.99)) < 1e-6

# %% tags=["remove-cell", "graded-test", "hidden"]
# Random float32 rows against a float64 reference; float32 means and norms of 40 rows
# of 7 entries are exact to about 1e-6 relative, so 1e-4 is a wide margin.
ex_G64 = ex_G.double()
ex_gf = -ex_G64[ex_forget].mean(0)
ex_hr = ex_G64[~ex_forget].mean(0)
ex_ref_cos = (ex_gf @ ex_hr / (ex_gf.norm() * ex_hr.norm())).item()
ex_ref_r = (40 * ex_G64.mean(0).norm() / (9 * ex_gf.norm())).item()
ex_cos, ex_r, ex_bound = class_alignment(ex_G, ex_forget)
assert abs(ex_cos - ex_ref_cos) < 1e-4 and abs(ex_r - ex_ref_r) < 1e-4 * ex_ref_r
assert ex_ref_r < 1 and abs(ex_bound - math.sqrt(1 - ex_ref_r**2)) < 1e-4
ex_cos, ex_r, ex_bound = class_alignment(ex_G, ~ex_forget)  # the roles swapped
ex_ref_r = (40 * ex_G64.mean(0).norm() / (31 * ex_hr.norm())).item()
assert abs(ex_cos - ex_ref_cos) < 1e-4 and abs(ex_r - ex_ref_r) < 1e-4 * ex_ref_r
assert ex_ref_r < 1 and abs(ex_bound - math.sqrt(1 - ex_ref_r**2)) < 1e-4

# %% tags=["remove-cell", "graded-test", "hidden"]
# The real gradients at θ0, forgetting digit 3: the theorem holds (up to the float32
# rounding of the gradients, 1e-4 in a cosine) and the bound is informative. And a
# forget set whose pull is small next to N m: then there is no bound.
ex_cos, ex_r, ex_bound = class_alignment(ex_G_real, ex_y == 3)
assert 0 < ex_r < 1 and abs(ex_bound**2 + ex_r**2 - 1) < 1e-6
assert ex_bound <= ex_cos + 1e-4 and ex_cos > 0.5
ex_cos, ex_r, ex_bound = class_alignment(
    torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.1, 0.0]]),
    torch.tensor([False, False, False, True]),
)
assert abs(ex_r - 31.0) < 1e-4 and math.isnan(ex_bound) and abs(ex_cos + 1) < 1e-6

# %% [markdown]
# ```{exercise} The bound for every class
# :label: ex-04-other-classes
#
# *experiment · about 2 CPU minutes*
#
# Compute $r$, the bound {eq}`eq-04-bound` and $\cos(g_f, h_r)$ for forgetting each of the ten digits in turn at
# $\theta_0$, for every seed, from the per-sample gradients `derivation[s]["G"]` (as in
# {ref}`ex-04-class-alignment`). Which class is least aligned? Run the library's GA with its defaults on each
# class-wise task: does the least aligned class also lose the most retain accuracy?
# ```

# %% [markdown]
# ```{solution-start} ex-04-other-classes
# :class: dropdown
# ```
# Measured over seeds 0–2 (code below). Every class is aligned at $\theta_0$: the cosine ranges from 0.42–0.54
# to 0.91–0.95 over the ten classes, and the least aligned class is digit 0 on every seed. The bound does not
# apply to every class: $r$ ranges from 0.36–0.42 to 1.20–1.89, and where $r \ge 1$ the cosine is positive
# without any guarantee. The least aligned class does **not** lose the most retain accuracy under GA: digit 3
# (seeds 0 and 2) or digit 2 (seed 1) does, losing 6.7 to 22.6 points, and the rank correlation between the
# cosine at $\theta_0$ and the loss is positive on every seed (+0.18 to +0.69), the opposite of the naive
# expectation. The cosine at $\theta_0$ describes the first steps only; the damage comes later, after the run has
# created the conflict (§4.3), and how much depends on how long GA runs and how much of the features it
# dismantles.

# %% tags=["skip-execution"]
from unlearnlib.metrics import accuracy

by_class = {}
for s in SEEDS:
    G_s = derivation[s]["G"]
    m_s = G_s.mean(0)
    for c in range(data.num_classes):
        f_c = data.y_train == c
        g_f_c, h_r_c = -G_s[f_c].mean(0), G_s[~f_c].mean(0)
        cos_c = cosine(g_f_c, h_r_c).item()
        r_c = (N_TRAIN * m_s.norm() / (f_c.sum() * g_f_c.norm())).item()
        bound_c = np.sqrt(1 - r_c**2) if r_c < 1 else np.nan
        t_c = make_task(data, "class", forget_class=c, seed=s)
        ra_0 = accuracy(M0[s], t_c.x_retain, t_c.y_retain)
        ra_ga = accuracy(ga(M0[s], t_c, seed=s), t_c.x_retain, t_c.y_retain)
        by_class[s, c] = (cos_c, r_c, bound_c, ra_0 - ra_ga)
for s in SEEDS:
    rows = np.array([by_class[s, c] for c in range(data.num_classes)])
    worst = int(np.argmin(rows[:, 0]))
    rho = stats.spearmanr(rows[:, 0], rows[:, 3])[0]
    print(
        f"seed {s}: cos from {rows[:, 0].min():+.2f} (digit {worst}) to "
        f"{rows[:, 0].max():+.2f}, r from {rows[:, 1].min():.2f} to "
        f"{rows[:, 1].max():.2f}; GA's retain-accuracy loss from "
        f"{rows[:, 3].min():.1f} to {rows[:, 3].max():.1f} points (digit "
        f"{int(np.argmax(rows[:, 3]))} loses most); Spearman(cos, loss) {rho:+.2f}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The random-forgetting expectation, tensor by tensor
# :label: ex-04-expected-alignment
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `expected_alignment(G, index, n_blocks)`: for each parameter tensor $l$, the expectation, over forget
# sets drawn uniformly at random, of that tensor's share of the inner product $\langle g_f, h_r\rangle$ (the sum
# over its coordinates of $g_{f,j}\, h_{r,j}$), from the per-sample gradients `G` of all $N$ training samples.
# {eq}`eq-04-random-expectation` holds tensor by tensor (§4.3); note that it does not depend on the size of the
# forget set. `index` gives the tensor of every coordinate, as `layer_index` returns it, and a tensor may own no
# coordinate at all. The tests check your function against an exhaustive enumeration of all forget sets of a
# small matrix.
# ```

# %% tags=["remove-cell", "graded"]
def expected_alignment(G, index, n_blocks):
    """G: [N, P] float tensor of per-sample gradients, one row per training sample.
    index: integer tensor [P], the block (parameter tensor) of each coordinate, with
    values in 0 .. n_blocks - 1 (some blocks may have no coordinate).
    Returns a float tensor [n_blocks]: for each block, the expectation over uniformly
    random forget sets (of any fixed size 1 <= n_f < N) of sum_j g_f[j] * h_r[j] over
    the block's coordinates j, where g_f = -(mean of the forget rows) and h_r = mean of
    the retain rows.
    """
    # BEGIN SOLUTION
    N = G.shape[0]
    m = G.mean(0)
    var = (G - m).pow(2).mean(0)  # sigma^2 coordinate by coordinate
    per_coord = var / (N - 1) - m * m  # (eq-04-random-expectation), per coordinate
    out = torch.zeros(n_blocks, dtype=G.dtype, device=G.device)
    return out.index_add(0, index.to(G.device), per_coord)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# All 15 forget sets of size 2 among N = 6 samples, enumerated: the exact expectation.
ex_G6 = torch.randn(
    6, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64
)
ex_idx6 = torch.tensor([0, 0, 1, 1, 1])
ex_exact = torch.zeros(2, dtype=torch.float64)
ex_sets = list(itertools.combinations(range(6), 2))
for ex_f in ex_sets:
    ex_mask = torch.zeros(6, dtype=torch.bool)
    ex_mask[list(ex_f)] = True
    ex_prod = -ex_G6[ex_mask].mean(0) * ex_G6[~ex_mask].mean(0)
    ex_exact += torch.zeros(2, dtype=torch.float64).index_add(0, ex_idx6, ex_prod)
ex_exact /= len(ex_sets)
ex_out = expected_alignment(ex_G6, ex_idx6, 2)
assert ex_out.shape == (2,) and torch.allclose(ex_out.double(), ex_exact, atol=1e-12)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Other forget-set sizes give the same expectation; the blocks need not be contiguous.
ex_G6 = torch.randn(
    6, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64
)
ex_idx6 = torch.tensor([1, 0, 2, 0, 1])
for ex_nf in (1, 4):
    ex_exact = torch.zeros(3, dtype=torch.float64)
    ex_sets = list(itertools.combinations(range(6), ex_nf))
    for ex_f in ex_sets:
        ex_mask = torch.zeros(6, dtype=torch.bool)
        ex_mask[list(ex_f)] = True
        ex_prod = -ex_G6[ex_mask].mean(0) * ex_G6[~ex_mask].mean(0)
        ex_exact += torch.zeros(3, dtype=torch.float64).index_add(0, ex_idx6, ex_prod)
    ex_exact /= len(ex_sets)
    ex_out = expected_alignment(ex_G6, ex_idx6, 3)
    assert torch.allclose(ex_out.double(), ex_exact, atol=1e-12)

# %% tags=["remove-cell", "graded-test", "hidden"]
# float32 inputs against a float64 evaluation of (eq-04-random-expectation): random rows
# with a block that owns no coordinate (its expectation is 0), and the real per-sample
# gradients at θ0 per parameter tensor. A float32 sum of N terms is exact to about
# N float32 epsilons of the sum of their sizes: the tolerance, with a factor 4.
ex_cases = ((ex_G, ex_index, 4), (ex_G_real, ex_block_index, len(ex_blocks)))
for ex_M, ex_i, ex_n in ex_cases:
    ex_M64 = ex_M.double()
    ex_m = ex_M64.mean(0)
    ex_var = (ex_M64 - ex_m).pow(2).mean(0)
    ex_terms = ex_var / (len(ex_M) - 1) - ex_m * ex_m
    ex_ref = torch.zeros(ex_n, dtype=torch.float64).index_add(0, ex_i, ex_terms)
    ex_size = torch.zeros(ex_n, dtype=torch.float64).index_add(
        0, ex_i, ex_var / (len(ex_M) - 1) + ex_m * ex_m
    )
    ex_out = expected_alignment(ex_M, ex_i, ex_n).double()
    assert ex_out.shape == (ex_n,)
    ex_tol = 4 * len(ex_M) * torch.finfo(torch.float32).eps
    assert ((ex_out - ex_ref).abs() <= ex_tol * ex_size).all()

# %% [markdown]
# ```{exercise} An independent sample instead of the retain set
# :label: ex-04-independent-data
#
# *experiment · about 1 CPU minute*
#
# Replace the retain set of random forgetting by a sample that is independent of the training set, the test
# set, with gradient $h_{test} = \nabla L_{test}(\theta_0)$. Derive $\mathbb E\,\langle g_f, h_{test}\rangle$ over
# uniformly random forget sets, in the notation of {eq}`eq-04-random-expectation`, and predict its sign under the
# idealisation that $m$ and $h_{test}$ are two independent estimates of the same population gradient. Then
# compute it at $\theta_0$ for every seed, and compare it with {eq}`eq-04-random-expectation` for the retain set.
# ```

# %% [markdown]
# ```{solution-start} ex-04-independent-data
# :class: dropdown
# ```
# $h_{test}$ does not depend on the forget set and $\mathbb E\, h_f = m$, so by linearity
#
# $$
# \mathbb E\,\langle g_f, h_{test}\rangle = -\langle \mathbb E\, h_f, h_{test}\rangle = -\langle m, h_{test}\rangle ,
# $$
#
# exactly, for any forget-set size: the $+\sigma^2/(N-1)$ of {eq}`eq-04-random-expectation` came from the
# negative correlation between $h_f$ and $h_r$, and an independent sample has none. If $m$ and $h_{test}$ were
# independent estimates of one population gradient $\mu$, the expectation over the data would be
# $-\lVert\mu\rVert^2 \le 0$: conflict. At $\theta_0$ the idealisation fails, because $\theta_0$ was fitted to $D$:
# $m$ is the small residual of training while $h_{test}$ carries the generalisation gap.
#
# Measured at $\theta_0$ (code below): $-\langle m, h_{test}\rangle$ is $-1.1\cdot10^{-3}$ on seed 0, where
# $\cos(m, h_{test}) = +0.25$, but $+1.4\cdot10^{-4}$ and $+2.0\cdot10^{-4}$ on seeds 1 and 2, where $m$ and
# $h_{test}$ are nearly orthogonal (cosine $-0.05$). So the idealised sign, conflict, shows on one seed of three;
# without the $+\sigma^2/(N-1)$ term nothing pins the sign down. For the retain set,
# {eq}`eq-04-random-expectation` gives $+0.9$ to $+2.6\cdot10^{-4}$, positive on every seed.

# %%
for s in SEEDS:
    m_s = derivation[s]["m"]
    h_test = loss_grad(M0[s], data.x_test, data.y_test)
    print(
        f"seed {s}: E<g_f, h_test> = -<m, h_test> = {-(m_s @ h_test).item():+.2e} "
        f"(cos(m, h_test) = {cosine(m_s, h_test).item():+.2f}); for the retain set, "
        f"(eq-04-random-expectation) gives {derivation[s]['formula']:+.2e}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} No weight decay
# :label: ex-04-no-weight-decay
#
# *experiment · about 2 CPU minutes*
#
# Train the original model of every seed with `weight_decay=0` (`dataclasses.replace(cfg, weight_decay=0.0)`
# passed to `original_model`) and recompute $\rho_l$ per parameter tensor, as in §4.3. Which tensors have
# $\rho_l > 1$ now? Predict first, from the derivation of the residual $m$.
# ```

# %% [markdown]
# ```{solution-start} ex-04-no-weight-decay
# :class: dropdown
# ```
# The tempting prediction: without weight decay the stationarity condition of training is $m = 0$ rather than
# $m = -\lambda\theta_0$, so the push that gave the last GroupNorm and the head $\rho_l > 1$ should be gone. The
# measurement (code below, seeds 0–2) says otherwise: the same three tensors, `features.7.weight`,
# `features.7.bias` and `head.weight`, have $\rho_l > 1$ on every seed (the largest $\rho_l$, 16 to 32, in
# `features.7.weight`), while the overall $\rho$ stays below 1 (0.42 to 0.51). In those tensors $m$ still points
# along $-\theta_0$ (cosine $-0.80$ to $-0.97$, as with weight decay, $-0.84$ to $-0.98$). The push does not come
# from weight decay at all: on training data that the model classifies correctly, cross-entropy keeps falling when
# the scale of the logits grows, so the data push the tensors that set that scale outwards and training has no
# stationary point in those directions. Weight decay balances the push; without it, the push remains, and so does
# the conflict of these tensors in random forgetting.

# %% tags=["skip-execution"]
import dataclasses

cfg_no_decay = dataclasses.replace(cfg, weight_decay=0.0)
for s in SEEDS:
    model_s = original_model(data, cfg_no_decay, seed=s, device=device, progress=False)
    G_s = flatten_batched(
        per_sample_grads(model_s, data.x_train, data.y_train, chunk_size=512)
    )
    m_s = G_s.mean(0)
    var_s = per_tensor(((G_s - m_s) ** 2).mean(0))
    rho_s = (N_TRAIN - 1) * per_tensor(m_s * m_s) / var_s
    rho_all = (N_TRAIN - 1) * m_s.pow(2).sum() / (G_s - m_s).pow(2).sum(1).mean()
    theta_s = flatten([p.detach() for p in model_s.parameters()])
    cos_s = blockwise_cosines(m_s, theta_s, LAYER_IDX, len(LAYERS))
    over = np.flatnonzero(rho_s.cpu() > 1)
    print(
        f"seed {s}: rho = {rho_all.item():.2f}; rho_l > 1 in "
        f"{[LAYERS[j] for j in over]}\n  with rho_l "
        f"{rho_s[over].cpu().numpy().round(1)} and cos(m, θ0) "
        f"{cos_s[over].cpu().numpy().round(2)}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Where NegGrad+ pays
# :label: ex-04-neggrad-pays
#
# *experiment · about 1 CPU minute*
#
# NegGrad+ steps along $d = g_f + \mu g_r$ with $\mu = \beta/(1-\beta)$ (up to its factor $1-\beta$), and
# $\langle d, g_r\rangle = \lVert g_f\rVert\lVert g_r\rVert\cos(g_f, g_r) + \mu\lVert g_r\rVert^2$. Compute this along
# the class-wise NegGrad+ runs of §4.3 from the trackers' `forget_norm`, `retain_norm` and `cos` (the probe's
# $g_r$ standing in for the batch's). Is the direction NegGrad+ takes ever in conflict with the retain gradient,
# although $g_f$ is for most of the run?
# ```

# %% [markdown]
# ```{solution-start} ex-04-neggrad-pays
# :class: dropdown
# ```
# Yes. Measured on the class-wise NegGrad+ runs of seeds 0–2 (code below): $\cos(g_f, g_r) < 0$ on 61 % to 83 %
# of the records, and the direction NegGrad+ takes, $\langle d, g_r\rangle < 0$, on 22 % to 26 % of them: on those
# records the conflict term $\lVert g_f\rVert\lVert g_r\rVert\cos$ outweighs the retain term
# $\mu\lVert g_r\rVert^2$, by up to 0.86 to 1.62 times the retain term. NegGrad+'s fixed price $\mu$ protects the
# retain set most of the time, not always; where $\lVert g_f\rVert$ is large next to $\mu\lVert g_r\rVert$, the
# step raises the retain loss to first order. (The probe's $g_r$ stands in for the batch's, so this is a statement
# about the retain set as a whole.)

# %%
from unlearnlib.methods import get_method

beta_ngp = inspect.signature(get_method("neggrad_plus")).parameters["beta"].default
mu_ngp = beta_ngp / (1 - beta_ngp)
for s in SEEDS:
    tr = trackers["class", "neggrad_plus", s]
    retain_term = mu_ngp * tr.retain_norm**2
    inner = tr.forget_norm * tr.retain_norm * tr.cos + retain_term
    print(
        f"seed {s}: cos(g_f, g_r) < 0 on {np.mean(tr.cos < 0):.0%} of the "
        f"{len(tr)} records, <d, g_r> < 0 on {np.mean(inner < 0):.0%}; "
        f"min <d, g_r> / (mu |g_r|^2) = {(inner / retain_term).min():+.2f}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects

# %% [markdown]
# ```{exercise} Smooth activations
# :label: ex-04-smooth-activations
#
# *project · about 5 CPU minutes*
#
# Replace the ReLUs of the model by `nn.Softplus(beta=20)`, train it with `unlearnlib.train.train_model` for every
# seed, and repeat the slope fit of §4.2. Does the error curve change at small $\eta$? Count "crossings" as before:
# what plays their role now?
# ```

# %% [markdown]
# ```{solution-start} ex-04-smooth-activations
# :class: dropdown
# ```
# A sketch. Softplus with $\beta = 20$ is smooth, so {eq}`eq-04-taylor` holds for every step and there is no
# first kink: the error of the linear prediction has slope 2 from the smallest $\eta$ on, and its ratio to
# $\tfrac12\eta^2 d^\top H d$ tends to 1 without a threshold. The kinks are replaced by the pre-activations within
# about $1/\beta$ of zero, where the second derivative $\beta\,\sigma'(\beta a)$ of Softplus is large: a step
# that moves many of them through that band adds curvature, as the crossings did. Count the pre-activations
# whose value passes through $[-1/\beta, 1/\beta]$ along the step and compare their growth with $\eta$ with the
# crossings of §4.2; the model must be retrained, and the hooks of `relu_inputs` must look for `nn.Softplus`.

# %% tags=["skip-execution"]
def softplus_copy(model, beta=20.0):
    """A copy of `model` with every ReLU replaced by Softplus(beta), untrained."""
    smooth = copy.deepcopy(model)
    for name, module in list(smooth.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Softplus(beta=beta))
    return smooth

# for each seed: model_s = softplus_copy(make_model(cfg.model, data.input_shape, 10,
# seed=s)); train_model(model_s, data.x_train, data.y_train, cfg, seed=s); then the
# loss_change / curvature / slope-fit cells of §4.2 with the Softplus inputs counted.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The size of the probe
# :label: ex-04-probe-size
#
# *project · about 5 CPU minutes*
#
# Rerun the GA trackers of §4.3 with probes of 32, 128 and 1024 retain samples, for every seed and several probe
# draws. From which step on do the curves of the cosine agree within their spread? Predict that step from the
# sampling formula of §4.3 ("How noisy is the probe?") and the retain-gradient norm recorded along the run.
# ```

# %% [markdown]
# ```{solution-start} ex-04-probe-size
# :class: dropdown
# ```
# A sketch. A probe of size $|S|$ estimates $h_r$ with squared error
# $\frac{\sigma_r^2}{|S|}\frac{n_r - |S|}{n_r - 1}$; its cosine with $g_f$ is reliable once this is well below
# $\lVert h_r\rVert^2$. Along class-wise GA $\lVert g_r\rVert$ grows by more than an order of magnitude (§4.3),
# while $\sigma_r^2$ grows more slowly, so the noise-to-signal ratio falls along the run and the curves of all
# probe sizes merge; the smaller the probe, the later. Record $\sigma_r^2$ from the per-sample gradients of the
# retain set at a few steps (`ConflictTracker` with `per_sample=True` gives the probe's), solve
# noise-to-signal $= 0.1$ for the step, and compare with the step where the curves of several draws agree.

# %% tags=["skip-execution"]
for size in (32, 128, 1024):
    for probe_seed in range(5):
        tracker = ConflictTracker(task, every=5, probe_size=size, probe_seed=probe_seed)
        tracker.record(m0, step=0)
        ga(m0, task, seed=0, post_step=tracker)
        # plot tracker.steps against tracker.cos, one colour per size

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. The mean of the per-sample gradients from `vmap(grad(...))` equals the batch gradient (a) always;
#    (b) when no layer mixes samples, e.g. with GroupNorm or evaluation-mode BatchNorm; (c) only in float64.
# 2. Below the first ReLU crossing, by what factor does the error of the linear prediction
#    {eq}`eq-04-first-order` fall when the step $\eta$ is halved?
# 3. In class-wise forgetting at $\theta_0$ you measure $r = 0.6$. What lower bound does {eq}`eq-04-bound` give for
#    $\cos(g_f, h_r)$?
# 4. In random forgetting a parameter tensor has $\rho_l = 2$. On average over random forget sets, its share of
#    $\langle g_f, h_r\rangle$ is (a) positive; (b) zero; (c) negative.
# 5. Along class-wise GA, which statement matches the measurements of §4.3? (a) The gradients conflict at
#    $\theta_0$ and the conflict fades; (b) the cosine starts positive, changes sign partway, and the retain loss is
#    lowest about where it does; (c) the conflict is strongest in the head.
# 6. The mean retain gradient is aligned with $g_f$ (cosine above 0.8). Can a large share of the individual retain
#    samples conflict with $g_f$? (a) No, the mean is aligned; (b) yes.

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b): the identity {eq}`eq-04-mean-of-per-sample` needs every sample's loss to depend on that
# sample only; train-mode BatchNorm breaks it. 2. By 4: the error is $O(\eta^2)$ (slope 2), the Taylor remainder
# $\tfrac12\eta^2 d^\top H d$. 3. $\sqrt{1 - 0.36} = 0.8$. 4. (c): by {eq}`eq-04-random-expectation`, applied to the
# tensor, the expectation is $\lVert m_l\rVert^2(1/\rho_l - 1) < 0$ when $\rho_l > 1$, as in the last GroupNorm
# and the head (§4.3). 5. (b): aligned at $\theta_0$, the sign changes partway through the run, the retain loss is lowest
# within one record of the sign change; the head is the least conflicted tensor. 6. (b): the mean is a majority vote;
# at $\theta_0$ a fifth to a half of the retain samples conflict (§4.4).
