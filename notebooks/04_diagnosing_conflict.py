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
# # 4. Diagnosing gradient conflict
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/main/notebooks/04_diagnosing_conflict.ipynb)
#
# Part I ended with a diagnosis in words: gradient ascent on the forget set damages the retain set, because the
# step that removes $D_f$ moves weights that $D_r$ needs as well. Part II turns this into geometry. The forget
# objective and the retain objective each have a gradient, $g_f$ and $g_r$; when the two point in "opposite"
# directions, any step that makes progress on one loses ground on the other. This chapter builds the tools to
# *measure* that conflict, at the level of the whole model, of each layer and of each sample, and then measures
# it along the runs of the two baselines of chapter 02. The later chapters of Part II are different answers to
# the question this chapter poses: how do we step along $g_f$ without paying on $D_r$?
#
# **What you will learn**
#
# - how to compute the gradient of *every sample* of a batch at once with `torch.func` (`vmap` of `grad`), why
#   this gives exactly the per-sample gradients, why their mean is the batch gradient, why train-mode BatchNorm
#   breaks this, and what it costs in time and memory;
# - the first-order model of a loss change, $\Delta L \approx -\eta \langle \nabla L, d \rangle$, checked
#   numerically down to its $O(\eta^2)$ error, and the definition of *conflict* it leads to;
# - a result that surprised us: at the trained model $\theta_0$ the forget and retain gradients do **not**
#   conflict, they are aligned, and we derive why;
# - how the conflict appears and grows along gradient ascent and NegGrad+, in class-wise and random forgetting,
#   overall, per layer and per sample;
# - a map of how the methods of chapters 05–10 manage the conflict.

# %%
import sys
if "google.colab" in sys.modules:  # only in Colab: install the book's library
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "unlearnlib @ git+https://github.com/unlearn-book/unlearn-book"], check=True)

# %%
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

import unlearnlib.config
from unlearnlib import UnlearnError
from unlearnlib.data import load_dataset, make_task
from unlearnlib.grads import (conflict_rate, cosine, flatten, flatten_batched, layer_cosines, loss_grad,
                              per_sample_grads, per_sample_grads_loop, trainable)
from unlearnlib.methods import ga, neggrad_plus
from unlearnlib.metrics import accuracy
from unlearnlib.models import count_parameters, make_model
from unlearnlib.plots import curves, histograms
from unlearnlib.train import TrainConfig, original_model

profile = unlearnlib.config.get_profile()
device = unlearnlib.config.get_device()
cfg = TrainConfig.from_profile(profile)
SEEDS = list(range(profile.seeds))
FORGET_CLASS = 3
print(f"profile {profile.name}: dataset {profile.dataset}, model {profile.model}, seeds {SEEDS}, device {device}")

data = load_dataset(profile.dataset).to(device)
m0 = original_model(data, cfg, seed=SEEDS[0], device=device)
task = make_task(data, "class", forget_class=FORGET_CLASS, seed=SEEDS[0])
P = count_parameters(m0)
print(task.describe())
print(f"the model has P = {P} trainable parameters")

# %% [markdown]
# ## 4.1 Per-sample gradients
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
    """{name: [B, *param.shape]}: the gradient of the loss of every sample, by vmap(grad(one-sample loss))."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss_of_one(p, xi, yi):                       # f(θ, x, y) of (eq-04-one-sample)
        logits = functional_call(model, (p, frozen, buffers), (xi.unsqueeze(0),))   # a batch of one
        return loss_fn(logits, yi.unsqueeze(0))

    return vmap(grad(loss_of_one), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, x, y)


def my_per_sample_grads_loop(model, x, y, loss_fn=F.cross_entropy):
    """The slow reference: one backward pass per sample."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = [torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), params) for i in range(len(y))]
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
ours = flatten_batched(my_per_sample_grads(m0, xb, yb))                  # [B, P]
ours_loop = flatten_batched(my_per_sample_grads_loop(m0, xb, yb))
lib = flatten_batched(per_sample_grads(m0, xb, yb))
lib_loop = flatten_batched(per_sample_grads_loop(m0, xb, yb))
batch_grad = loss_grad(m0, xb, yb)
tol = dict(rtol=1e-4, atol=1e-6)
assert ours.shape == (len(yb), P)
assert torch.allclose(ours, lib, **tol) and torch.allclose(ours, ours_loop, **tol)
assert torch.allclose(lib, lib_loop, **tol)
assert torch.allclose(ours.mean(0), batch_grad, **tol)                   # (eq-04-mean-of-per-sample)
spread = (ours - ours.mean(0)).abs().max().item()
assert spread > 1e3 * tol["atol"]
print(f"B = {len(yb)}, P = {P}: vmap = loop = library (largest difference {(ours - ours_loop).abs().max():.1e}); "
      f"mean of per-sample = batch gradient (largest difference {(ours.mean(0) - batch_grad).abs().max():.1e}); "
      f"per-sample gradients differ from their mean by up to {spread:.1e}")

# %% [markdown]
# ### What it costs
#
# **Time.** We time both versions with `time.perf_counter` over several repeats, after a warm-up, and report the
# median. The ratio depends on the machine, the batch size and the model, and on what else the machine is doing,
# so we print it rather than assert it; the benchmarks of the repository measure such costs properly.
#
# **Memory.** The result is a $B \times P$ matrix: $B$ full copies of the gradient. For our small CNN that is
# nothing; for a ResNet-18 with its 11 million parameters, a batch of 32 per-sample gradients in float32 takes more
# than a gigabyte, and the intermediate activations of the vectorised backward pass come on top. The `chunk_size`
# argument of `vmap` processes the batch in chunks of that many samples, trading time for peak memory; the
# result itself is still $B \cdot P$ numbers.

# %%
def median_time(fn, repeats=5):
    fn()                                               # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


t_vmap = median_time(lambda: my_per_sample_grads(m0, xb, yb))
t_loop = median_time(lambda: my_per_sample_grads_loop(m0, xb, yb))
print(f"B = {len(yb)}: vmap {1e3 * t_vmap:.1f} ms, loop {1e3 * t_loop:.1f} ms, loop / vmap = {t_loop / t_vmap:.1f}x "
      f"(median of 5; this machine, now)")
assert torch.allclose(flatten_batched(my_per_sample_grads(m0, xb, yb, chunk_size=16)), ours, **tol)

for name, shape in (("cnn", data.input_shape), ("cnn-wide", data.input_shape), ("resnet18", (3, 32, 32))):
    p_m = count_parameters(make_model(name, shape, 10))
    print(f"{name:9s} P = {p_m:>10,d}: B = 32 per-sample gradients in float32 take {32 * p_m * 4 / 2**20:8.1f} MiB")

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
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), norm(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10)).to(device)


def mean_gap(model):
    """Largest |batch gradient - mean of one-sample gradients|, relative to the batch gradient's largest entry."""
    g_batch = loss_grad(model, xb[:16], yb[:16])
    g_mean = flatten_batched(my_per_sample_grads_loop(model, xb[:16], yb[:16])).mean(0)
    return ((g_batch - g_mean).abs().max() / g_batch.abs().max()).item()


gaps = {}
for label, norm in (("BatchNorm", nn.BatchNorm2d), ("GroupNorm", lambda c: nn.GroupNorm(2, c))):
    for mode in ("train", "eval"):
        net = tiny_net(norm)
        net.train(mode == "train")
        gaps[label, mode] = mean_gap(net)
        print(f"{label} in {mode:5s} mode: relative gap between batch gradient and mean of per-sample gradients "
              f"{gaps[label, mode]:.1e}")
assert gaps["BatchNorm", "train"] > 0.05
assert max(gaps["BatchNorm", "eval"], gaps["GroupNorm", "train"], gaps["GroupNorm", "eval"]) < 1e-4
try:
    per_sample_grads(tiny_net(nn.BatchNorm2d).train(), xb[:4], yb[:4])
    raise AssertionError("train-mode BatchNorm should have been refused")
except UnlearnError as err:
    print("unlearnlib:", err)
