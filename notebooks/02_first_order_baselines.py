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
# # First-order baselines
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/02_first_order_baselines.ipynb)
#
# Retraining from scratch on the retain set is the gold standard of unlearning, and it is expensive. The cheapest
# alternatives start from the trained model $\theta_0$ and take a few gradient steps on some loss. This chapter
# studies the four that every paper of the field compares against: **fine-tuning on the retain set**,
# **gradient ascent** (GA) on the forget set, **NegGrad+** (ascent on the forget set and descent on the retain set
# in one loss) and **random labels**. They are the baselines that the gradient-surgery, projection and
# meta-learning methods of the later chapters set out to beat.
#
# **What you will learn**
#
# - the objective of each baseline, the update it produces, and what one step costs;
# - how to write all four as one plain PyTorch loop, and that this loop is exactly what `unlearnlib` runs;
# - why gradient ascent collapses when nothing stops it: cross-entropy has no upper bound;
# - how to stop it without looking at the retrained model, which a real deployment does not have;
# - how the four compare on class-wise and random forgetting over several seeds, and where our small-scale
#   results disagree with what the literature reports on CIFAR.

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
import math
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import unlearnlib.config
from unlearnlib import records
from unlearnlib.experiment import compare_methods
from unlearnlib.data import load_dataset, make_task
from unlearnlib.methods import REGISTRY
from unlearnlib.methods._loop import forget_target, other_labels
from unlearnlib.metrics import accuracy, evaluate, per_sample_loss, predict_logits
from unlearnlib.plots import curves
from unlearnlib.train import TrainConfig, original_model, retrained_model

profile = unlearnlib.config.get_profile()
device = unlearnlib.config.get_device()
cfg = TrainConfig.from_profile(profile)
SEEDS = list(range(profile.seeds))
FORGET_CLASS = 3
print(
    f"profile {profile.name}: dataset {profile.dataset}, model {profile.model},"
    f" seeds {SEEDS}, device {device}"
)

# %% [markdown]
# ## The setting and the one update rule behind all four methods
#
# We keep the notation of chapter 01. The training set $D$ is split into a forget set $D_f$ and a retain set
# $D_r = D \setminus D_f$; $D_t$ is the test set; $\theta_0$ is the model trained on $D$ and $\theta_{rt}$ the oracle
# retrained on $D_r$ alone. $\ell(\theta; x, y)$ is the per-sample cross-entropy, $L_r(\theta)$ its mean over
# $D_r$ and $\mathrm{CE}_f(\theta)$ its mean over $D_f$ (in practice: over a mini-batch of each).
#
# Every method in this chapter chooses a **direction** $d$ and hands it to the same optimiser. We write all of
# them in the *descent convention*: the optimiser moves against $d$,
#
# $$
# \theta \leftarrow \theta - \eta\, d ,
# $$ (eq-02-descent-step)
#
# so a method that wants to *increase* a loss must put its negative gradient into $d$. `unlearnlib`, like the
# public code of the sparse-unlearning and SalUn papers {cite}`jia2023sparse,fan2024salun` that most later work
# builds on, runs $d$ through SGD with momentum $\mu = 0.9$ and weight decay $\lambda = 5\cdot 10^{-4}$. Written out, PyTorch's `torch.optim.SGD` does, at step $t$,
#
# $$
# g_t = d_t + \lambda\,\theta_{t-1}, \qquad
# b_t = \begin{cases} g_1 & t = 1\\ \mu\, b_{t-1} + g_t & t > 1\end{cases}, \qquad
# \theta_t = \theta_{t-1} - \eta\, b_t .
# $$ (eq-02-sgd-momentum)
#
# Two consequences matter later. Weight decay is added to $d$ *whatever the sign of the loss*: during gradient
# ascent it still pulls every weight towards zero. And momentum $b_t$ accumulates past directions, so a method
# that keeps pushing the same way (GA does) speeds up geometrically.
#
# Let us load the data, the original model and the oracle of one task: forgetting all training images of
# digit 3. The original model and the oracle are cached on disk after their first training (chapter 01).

# %%
data = load_dataset(profile.dataset).to(device)
task = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
m0 = original_model(data, cfg, seed=0, device=device, progress=False)
oracle = retrained_model(task, cfg, seed=0, device=device, progress=False)
print(task.describe())
for name, model in (("original", m0), ("oracle", oracle)):
    accs = [
        accuracy(model, x, y)
        for x, y in (
            (task.x_forget, task.y_forget),
            (task.x_retain, task.y_retain),
            (task.x_test, task.y_test),
        )
    ]
    print(
        f"{name + ':':9} forget acc {accs[0]:.1f} %, retain acc {accs[1]:.1f} %,"
        f" test acc {accs[2]:.1f} %"
    )

# %% [markdown]
# We check {eq}`eq-02-sgd-momentum` against `torch.optim.SGD` on one small model, so that every later statement about
# the optimiser rests on code we have read rather than on documentation.


# %%
def manual_sgd(params0, directions, lr, momentum=0.9, weight_decay=5e-4):
    """The SGD update of §2.1 by hand: params0 is a list of tensors, directions a
    list (over steps) of lists of tensors."""
    theta = [p.clone() for p in params0]
    buf = None
    for d in directions:
        g = [di + weight_decay * th for di, th in zip(d, theta)]
        buf = g if buf is None else [momentum * b + gi for b, gi in zip(buf, g)]
        theta = [th - lr * b for th, b in zip(theta, buf)]
    return theta


gen = torch.Generator(device=device).manual_seed(0)
w0 = [
    torch.randn(5, 3, generator=gen, device=device),
    torch.randn(3, generator=gen, device=device),
]
dirs = [
    [
        torch.randn(5, 3, generator=gen, device=device),
        torch.randn(3, generator=gen, device=device),
    ]
    for _ in range(4)
]
ws = [w.clone().requires_grad_(True) for w in w0]
opt = torch.optim.SGD(ws, lr=0.1, momentum=0.9, weight_decay=5e-4)
for d in dirs:
    for w, di in zip(ws, d):
        w.grad = di.clone()
    opt.step()
assert all(
    torch.allclose(a, b, atol=1e-6) for a, b in zip(ws, manual_sgd(w0, dirs, lr=0.1))
)
print("torch.optim.SGD (momentum 0.9, weight decay 5e-4) matches the update of §2.1")

# %% [markdown]
# ## Fine-tuning on the retain set
#
# **Objective.** Keep training $\theta_0$ on the data we are allowed to keep:
#
# $$
# \min_\theta\; L_r(\theta), \qquad \theta \text{ initialised at } \theta_0 .
# $$ (eq-02-ft-objective)
#
# **Update.** $d = \nabla_\theta L_r$ on a retain mini-batch, i.e. ordinary training. Nothing in the objective
# mentions $D_f$: whatever the model forgets, it forgets by *interference*, because the weights that encoded $D_f$
# are shared with $D_r$ and drift while serving $D_r$ ("catastrophic forgetting"). For class-wise forgetting there
# is one more, direct effect. At the logits $z$, $\partial \ell/\partial z_c = p_c - \mathbb 1[c = y]$; for the
# forgotten class $c$ no retain sample has $y = c$, so every retain step lowers $z_c$ in proportion to $p_c$, and
# weight decay shrinks the head row of class $c$ with nothing pushing back.
#
# **Cost.** One forward and one backward pass per retain batch, $\lceil |D_r|/B \rceil$ steps per epoch. An epoch
# of fine-tuning costs what an epoch of retraining costs; fine-tuning is cheaper only because it runs fewer epochs.
# It also needs the *whole* retain set, an assumption that later methods (OrthoGrad, LTU) drop.
#
# ## Gradient ascent (GA, NegGrad)
#
# **Objective.** Undo the training on $D_f$ by climbing its loss:
#
# $$
# \min_\theta\; L_f(\theta) = -\mathrm{CE}_f(\theta) .
# $$ (eq-02-ga-objective)
#
# **Update.** $d = \nabla_\theta L_f = -\nabla_\theta \mathrm{CE}_f$ on a forget mini-batch, so {eq}`eq-02-descent-step`
# gives $\theta \leftarrow \theta + \eta \nabla_\theta \mathrm{CE}_f$. In code: negate the loss *before*
# `backward()`; a forgotten minus sign silently turns GA into fine-tuning on $D_f$.
#
# **Why it cannot stop by itself.** For one sample with logits $z$ and probabilities $p = \mathrm{softmax}(z)$,
#
# $$
# \ell = \log \textstyle\sum_c e^{z_c} - z_y , \qquad
# \frac{\partial \ell}{\partial z_y} = p_y - 1 , \qquad
# \frac{\partial \ell}{\partial z_c} = p_c \quad (c \neq y).
# $$ (eq-02-ce-logit-grad)
#
# Cross-entropy is bounded below by $0$ but **unbounded above**: hold the other logits fixed and send
# $z_y \to -\infty$, and $\ell \to \infty$. Training (descent) is self-stabilising, because the push on $z_y$,
# $1 - p_y$, vanishes as $p_y \to 1$. Ascent is the opposite: as $p_y \to 0$ the push $1 - p_y$ tends to $1$ and
# never fades, so GA has no fixed point and, with momentum, accelerates. The second term of {eq}`eq-02-ce-logit-grad`
# says where the probability goes: ascent *raises* every wrong logit in proportion to $p_c$, so the wrong class that
# is already most likely gains most, a rich-get-richer dynamic towards one "sink" class. The network cannot move
# $z_y$ for the forget images alone: the logits are computed by weights shared with every other input, so the
# same step moves the predictions on $D_r$ and $D_t$ too. We measure all of this in §2.7.
#
# **Cost.** One forward and one backward per forget batch, $\lceil |D_f|/B \rceil$ steps per epoch: the cheapest
# method here whenever $|D_f| \ll |D_r|$. GA is the unconstrained end of a family: the methods of Part II keep
# its direction $g_f = -\nabla \mathrm{CE}_f$ and constrain what it may do to $L_r$.
#
# ## NegGrad+
#
# **Objective.** Ascend on the forget set and descend on the retain set in one loss, with a weight
# $\beta \in [0, 1]$, in the form of the SCRUB paper {cite}`kurmanji2023scrub` (Kurmanji et al., arXiv 2302.09880):
#
# $$
# \min_\theta\; \beta\, L_r(\theta) - (1-\beta)\, \mathrm{CE}_f(\theta) .
# $$ (eq-02-ngp-objective)
#
# **Update.** With a retain batch and a forget batch per step,
#
# $$
# d = \beta\, \nabla_\theta L_r - (1-\beta)\, \nabla_\theta \mathrm{CE}_f
#   = (1-\beta)\,\big(g_f + \tfrac{\beta}{1-\beta}\, g_r\big), \qquad g_f = -\nabla \mathrm{CE}_f,\; g_r = \nabla L_r .
# $$ (eq-02-ngp-direction)
#
# So one NegGrad+ step at learning rate $\eta$ is a GA step at rate $\eta(1-\beta)$ plus a fine-tuning step at
# rate $\eta\beta$, taken together. In the language of Part II it is "$g_f + \mu g_r$ with a *fixed* multiplier
# $\mu$"; the gradient-surgery methods of Part II choose $\mu$ adaptively instead. The library iterates over
# retain batches and cycles the forget set alongside (as the `train_negrad` loop of SCRUB's public code does), and
# back-propagates the combined loss once.
#
# **Cost.** Two forward passes (one per batch) and one backward pass through both, about twice a GA step, and an
# epoch is a pass over $D_r$.
#
# ## Random labels
#
# **Objective.** Teach the model that the forget images mean nothing: fit them to random *wrong* labels while
# fitting $D_r$ to the true ones. Relabelling the data to be removed goes back at least to Graves et al.
# {cite}`graves2021amnesiac` (arXiv 2010.10981), and SalUn {cite}`fan2024salun` (arXiv 2310.12508) builds on it.
# The library draws $\tilde y$ uniformly from the $C-1$ classes other than $y$, fresh at every step, and sums the
# two losses. (SalUn's public code draws from all $C$ classes, so that a forget sample keeps its true label with
# probability $1/C$; its paper does not say which. We exclude the true class so that every relabelled sample is
# a wrong one.)
#
# $$
# \min_\theta\; \mathrm{CE}\big(\theta; D_f, \tilde y\big) + L_r(\theta), \qquad \tilde y \sim \mathcal U\{0..C-1\}\setminus\{y\} .
# $$ (eq-02-rl-objective)
#
# **What it converges to (our derivation).** Average the forget term of {eq}`eq-02-rl-objective` over the label draw:
#
# $$
# \mathbb E_{\tilde y}\,\ell(z, \tilde y) = \log \textstyle\sum_c e^{z_c} - \frac{1}{C-1}\sum_{c\neq y} z_c
# \;\ge\; \log (C-1), \qquad
# \nabla_z\, \mathbb E_{\tilde y}\,\ell = p - \frac{\mathbf 1 - e_y}{C-1}.
# $$ (eq-02-rl-expected)
#
# The bound follows from $\log\sum_c e^{z_c} \ge \log \sum_{c\ne y} e^{z_c} \ge \log(C-1) + \frac{1}{C-1}\sum_{c\ne y} z_c$
# (Jensen). Unlike {eq}`eq-02-ga-objective`, the expected objective is bounded below, and its gradient vanishes as $p$
# approaches "uniform over the wrong classes". Random labels therefore have a target to settle at; GA has none.
# Each single step still uses a noisy draw of $\tilde y$, and in the library that noise is not averaged out.
#
# **Cost.** Like NegGrad+, a forget batch and a retain batch per step (two forwards, one backward), but an epoch is
# a pass over the *forget* set.
#
# We check the two facts of {eq}`eq-02-rl-expected` numerically on random logits: the closed form equals the average of
# the loss over all $C-1$ wrong labels, and it never falls below $\log(C-1)$.

# %%
C = data.num_classes
gen = torch.Generator(device=device).manual_seed(1)
z = 3 * torch.randn(2000, C, generator=gen, device=device)
y = torch.randint(0, C, (2000,), generator=gen, device=device)
wrong = torch.stack([(y + s) % C for s in range(1, C)], 1)  # all C-1 wrong labels
brute = torch.stack(
    [F.cross_entropy(z, wrong[:, k], reduction="none") for k in range(C - 1)], 1
).mean(1)
closed = torch.logsumexp(z, 1) - (z.sum(1) - z.gather(1, y[:, None]).squeeze(1)) / (
    C - 1
)
assert torch.allclose(brute, closed, atol=1e-4)
assert closed.min() >= math.log(C - 1) - 1e-5
print(
    f"expected random-label loss: min over 2000 random logit vectors {closed.min():.3f}"
    f" >= log(C-1) = {math.log(C - 1):.3f}"
)

# %% [markdown]
# ## From scratch: one loop, four losses
#
# All four methods are the same loop with a different loss. The loop copies the input model (a method must never
# change the model it is given), builds the optimiser of {eq}`eq-02-sgd-momentum`, draws shuffled mini-batches of the
# forget and the retain set (each set is reshuffled whenever it is used up), and for each step runs forward, loss,
# backward, optimiser step. The `callback` lets us watch the run.


# %%
def batches(n, batch_size, gen):
    """Endless shuffled mini-batches of range(n): a new permutation at every pass."""
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            yield perm[i : i + batch_size]


def my_unlearn(
    model0,
    loss_fn,
    task,
    *,
    steps,
    lr,
    batch_size=32,
    seed=0,
    momentum=0.9,
    weight_decay=5e-4,
    callback=None,
):
    """A plain unlearning loop: loss_fn(model, xf, yf, xr, yr) -> loss to *minimise*."""
    model = copy.deepcopy(model0).train()  # never touch the caller's model
    opt = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    gen = torch.Generator().manual_seed(seed)
    xf, yf, xr, yr = task.x_forget, task.y_forget, task.x_retain, task.y_retain
    forget_batches = batches(len(yf), batch_size, gen)
    retain_batches = batches(len(yr), batch_size, gen)
    for t in range(steps):
        fi = next(forget_batches).to(yf.device)
        ri = next(retain_batches).to(yr.device)
        opt.zero_grad()
        loss = loss_fn(model, xf[fi], yf[fi], xr[ri], yr[ri])
        loss.backward()
        opt.step()
        if callback is not None:
            callback(t + 1, model)
    return model.eval()


def finetune_loss(model, xf, yf, xr, yr):  # §2.2: L_r
    return F.cross_entropy(model(xr), yr)


def ga_loss(model, xf, yf, xr, yr):  # §2.3: -CE_f; the minus sign is the whole method
    return -F.cross_entropy(model(xf), yf)


def neggrad_plus_loss(beta):  # §2.4: beta L_r - (1 - beta) CE_f
    def loss(model, xf, yf, xr, yr):
        return beta * F.cross_entropy(model(xr), yr) - (1 - beta) * F.cross_entropy(
            model(xf), yf
        )

    return loss


def wrong_labels(y, num_classes, gen):
    """Uniform over the C - 1 classes other than y: shift y by 1..C-1, modulo C."""
    shift = torch.randint(1, num_classes, y.shape, generator=gen).to(y.device)
    return (y + shift) % num_classes


def random_label_loss(num_classes, seed):  # §2.5: labels redrawn at every step
    gen = torch.Generator().manual_seed(seed)

    def loss(model, xf, yf, xr, yr):
        return F.cross_entropy(
            model(xf), wrong_labels(yf, num_classes, gen)
        ) + F.cross_entropy(model(xr), yr)

    return loss


# %% [markdown]
# ### The same functions in `unlearnlib`
#
# `unlearnlib.methods.REGISTRY` holds the library's versions (`finetune`, `ga`, `neggrad_plus`, `random_label`),
# all built on `unlearnlib.methods._loop.run_unlearning`. To compare our loop with them exactly we remove the one
# source of randomness that could differ, the order of the samples: with a batch larger than both sets, every step
# sees *all* of $D_f$ and $D_r$ (full-batch gradient descent), and a different order inside a batch could change
# only the floating-point summation order. We take three full-batch steps with a learning rate large enough that
# the parameters move far more than the tolerance (otherwise the check would pass even with a wrong sign), and
# compare every parameter to $10^{-5}$. Both run in the same process on the same kernels, so they can differ only
# by float32 rounding of a different order of operations: about $10^{-5}\sqrt{\text{depth}}$ of the distance
# a parameter moved (below $10^{-6}$ here). A planted error must fail the check, so we also run our loop with the
# weight-decay term dropped, the smallest error we could think of, and check that it misses the library by
# several times the tolerance. We also check that the library left $\theta_0$ untouched.


# %%
def state_copy(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_abs_diff(a, b):
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())
    )


theta0 = state_copy(m0)
BIG, STEPS, ATOL, LR_CHECK = 10_000, 3, 1e-5, 0.1
assert BIG >= len(task.retain_idx) and BIG >= len(task.forget_idx)
beta_default = inspect.signature(REGISTRY["neggrad_plus"]).parameters["beta"].default
checks = {
    "finetune": finetune_loss,
    "ga": ga_loss,
    "neggrad_plus": neggrad_plus_loss(beta_default),
}
for name, loss_fn in checks.items():
    lib = REGISTRY[name](
        m0, task, batch_size=BIG, steps=STEPS, lr=LR_CHECK, stop_at=None
    )
    ours = my_unlearn(m0, loss_fn, task, steps=STEPS, lr=LR_CHECK, batch_size=BIG)
    moved, diff = max_abs_diff(lib, m0), max_abs_diff(lib, ours)
    # the smallest planted error we can think of: the weight-decay term dropped
    no_wd = my_unlearn(
        m0, loss_fn, task, steps=STEPS, lr=LR_CHECK, batch_size=BIG, weight_decay=0
    )
    planted = max_abs_diff(lib, no_wd)
    print(
        f"{name:13s} moved {moved:.2e}; ours vs library {diff:.1e};"
        f" without weight decay {planted:.1e}"
    )
    assert moved > 50 * ATOL and planted > 5 * ATOL  # the check is not vacuous
    assert all(
        torch.allclose(p, q, rtol=0, atol=ATOL)
        for p, q in zip(lib.parameters(), ours.parameters())
    )
assert all(torch.equal(v, m0.state_dict()[k]) for k, v in theta0.items()), (
    "a method mutated its input"
)

# %% [markdown]
# Our loop also draws its mini-batches with the same sequence of generator calls as the library's (forget
# permutation first, then retain), so even an ordinary mini-batch run agrees with it. We check this for GA at its
# default learning rate: it means the GA curves we draw in §2.7 with our loop are the library's GA run.

# %%
lr_ga = inspect.signature(REGISTRY["ga"]).parameters["lr"].default
lib = REGISTRY["ga"](m0, task, batch_size=32, steps=20, lr=lr_ga, stop_at=None, seed=0)
ours = my_unlearn(m0, ga_loss, task, steps=20, lr=lr_ga, batch_size=32, seed=0)
diff, moved = max_abs_diff(lib, ours), max_abs_diff(lib, m0)
assert diff <= ATOL and moved > 10 * ATOL
print(
    f"GA, 20 mini-batch steps at lr {lr_ga:g}: ours vs library {diff:.1e}"
    f"\n(parameters moved up to {moved:.1e})"
)

# %% [markdown]
# Random labels draw labels from a random generator, so two implementations agree only if they consume the
# generator identically. Instead of an exact comparison we check the property that matters: the library's
# `other_labels` never returns the true label and is uniform over the other $C-1$ classes. Our `wrong_labels` uses
# the same shift-modulo-$C$ construction, so with the same generator state it draws the same labels. Finally the
# library's `random_label` must also leave its input alone.

# %%
y_many = task.y_forget.repeat(200).cpu()
lab = other_labels(y_many, C, torch.Generator().manual_seed(0))
assert not (lab == y_many).any(), "a random label equals the true label"
freq = torch.bincount((lab - y_many) % C, minlength=C).float() / len(
    lab
)  # offset from the true label
assert freq[0] == 0 and (freq[1:] - 1 / (C - 1)).abs().max() < 0.01
assert torch.equal(lab, wrong_labels(y_many, C, torch.Generator().manual_seed(0)))
print(
    f"{len(lab)} draws: never the true label; frequency of each offset 1..{C - 1}:\n"
    f"{freq[1:].min():.4f} to {freq[1:].max():.4f} (uniform: {1 / (C - 1):.4f})"
)
REGISTRY["random_label"](
    m0, task, batch_size=BIG, steps=STEPS, lr=LR_CHECK, stop_at=None
)
assert all(torch.equal(v, m0.state_dict()[k]) for k, v in theta0.items()), (
    "random_label mutated its input"
)

# %% [markdown]
# ## Gradient ascent without brakes
#
# Now we run GA as §2.3 predicts it must fail: the library's default learning rate, no stopping rule, 60 passes
# over $D_f$, for every seed. After each pass we record the forget, retain and test accuracy and the forget loss
# $\mathrm{CE}_f$ over the whole forget set. When the retain accuracy first drops below 50 % we keep a copy of the
# model, for a diagnosis further down.

# %%
PASSES = 60
collapse = {}
for seed in SEEDS:
    task_s = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m0_s = original_model(data, cfg, seed=seed, device=device, progress=False)
    per_pass = math.ceil(len(task_s.forget_idx) / 32)
    hist = {
        "step": [0],
        "FA": [accuracy(m0_s, task_s.x_forget, task_s.y_forget)],
        "RA": [accuracy(m0_s, task_s.x_retain, task_s.y_retain)],
        "TA": [accuracy(m0_s, task_s.x_test, task_s.y_test)],
        "CE_f": [per_sample_loss(m0_s, task_s.x_forget, task_s.y_forget).mean()],
        "broken": None,
    }

    def watch(t, model, hist=hist, task_s=task_s, per_pass=per_pass):
        if t % per_pass:
            return
        hist["step"].append(t)
        hist["FA"].append(accuracy(model, task_s.x_forget, task_s.y_forget))
        hist["RA"].append(accuracy(model, task_s.x_retain, task_s.y_retain))
        hist["TA"].append(accuracy(model, task_s.x_test, task_s.y_test))
        hist["CE_f"].append(
            per_sample_loss(model, task_s.x_forget, task_s.y_forget).mean()
        )
        if hist["broken"] is None and hist["RA"][-1] < 50:
            hist["broken"] = copy.deepcopy(model).eval()

    final = my_unlearn(
        m0_s,
        ga_loss,
        task_s,
        steps=PASSES * per_pass,
        lr=lr_ga,
        batch_size=32,
        seed=seed,
        callback=watch,
    )
    pred = predict_logits(final, task_s.x_test).argmax(1)
    hist["sink_share"] = torch.bincount(pred, minlength=C).max().item() / len(pred)
    hist["sink_class"] = torch.bincount(pred, minlength=C).argmax().item()
    # Where does the library's GA, with its default oracle-free stopping rule, stop?
    log = []
    stopped = REGISTRY["ga"](m0_s, task_s, seed=seed, log=log)
    hist["stop_step"], hist["stop_FA"] = log[-1]["step"], log[-1]["forget_acc"]
    hist["stop_RA"] = accuracy(stopped, task_s.x_retain, task_s.y_retain)
    collapse[seed] = dict(hist, task=task_s, final=final)
    half = len(hist["CE_f"]) // 2
    print(
        f"seed {seed}: RA {hist['RA'][0]:.1f} -> {hist['RA'][-1]:.1f} %, CE_f"
        f" {hist['CE_f'][0]:.3f} -> {hist['CE_f'][half]:.1f} (step"
        f" {hist['step'][half]})"
        f" -> {hist['CE_f'][-1]:.1f};\n        after {hist['step'][-1]} steps"
        f" {100 * hist['sink_share']:.0f} % of test images are predicted as class"
        f" {hist['sink_class']}"
    )

# %%
h0 = collapse[SEEDS[0]]
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
curves(
    axes[0],
    {k: (h0["step"], h0[k]) for k in ("FA", "RA", "TA")},
    xlabel="GA step",
    ylabel="accuracy (%)",
    title=f"GA without stopping (seed {SEEDS[0]})",
    hline=forget_target(h0["task"], m0),
    hline_label="oracle-free target",
)
axes[0].axvline(h0["stop_step"], color="C3", ls=":", label="library GA stops")
axes[0].legend()
curves(
    axes[1],
    {f"seed {s}": (collapse[s]["step"], collapse[s]["RA"]) for s in SEEDS},
    xlabel="GA step",
    ylabel="retain accuracy (%)",
    title="Retain accuracy, every seed",
)
curves(
    axes[2],
    {f"seed {s}": (collapse[s]["step"], collapse[s]["CE_f"]) for s in SEEDS},
    xlabel="GA step",
    ylabel=r"CE$_f$ (log scale)",
    title="Forget loss keeps growing",
)
axes[2].set_yscale("log")
fig.tight_layout()
plt.show()

# %% [markdown]
# The run has three phases. For a while almost nothing visible happens: the forget images are classified with
# high confidence, so the push $1 - p_y$ of {eq}`eq-02-ce-logit-grad` is small. But it grows as $p_y$ falls, a
# positive feedback that momentum amplifies. Then, within a few passes, the forget accuracy falls to zero and the retain and test accuracy fall with it, down to roughly the
# share of a single class. After that the forget loss keeps climbing (the right panel is on a log scale) while
# the accuracies stay flat: the model has nothing left to lose in accuracy, but the loss has no ceiling. We assert
# each of these, on every seed.

# %% tags=["hide-input"]
for s in SEEDS:
    h = collapse[s]
    half = len(h["CE_f"]) // 2
    # One sink class for (almost) everything leaves RA near one class's share, 10 %.
    assert h["RA"][0] > 95 and h["RA"][-1] < 20, "RA collapses far below its start"
    assert h["FA"][-1] == 0.0, "every forget image is misclassified"
    assert h["CE_f"][-1] > 2 * h["CE_f"][half] > 2 * h["CE_f"][0], (
        "the forget loss keeps growing"
    )
    assert h["sink_share"] > 0.95, (
        "the collapsed model predicts one class for (almost) everything"
    )
print("collapse asserted on seeds", SEEDS)

# %% [markdown]
# ### Where did the damage go?
#
# The step of {eq}`eq-02-ga-objective` moves *every* parameter, and most of its length lies in the shared feature
# extractor rather than in the 10-way linear head. Two measurements make this concrete. First, the share of the
# squared GA gradient norm at $\theta_0$ that falls on the head. Second, whether the collapsed network still
# *knows* the digits: we freeze its features (the input to the head) and fit a fresh linear classifier on $D_r$
# (a "linear probe"), then measure it on the test set. If the probe is accurate while the network is not, the
# information survived and the collapse is a mismatch between the drifted features and the head; if the probe
# fails too, the features themselves are damaged.


# %%
def head_share(model, task):
    m = copy.deepcopy(model)
    m.zero_grad()
    (-F.cross_entropy(m(task.x_forget), task.y_forget)).backward()
    head = sum(p.grad.pow(2).sum() for p in m.head.parameters())
    total = sum(p.grad.pow(2).sum() for p in m.parameters())
    return (head / total).item()


@torch.no_grad()
def probe_accuracy(model, task):
    feats = lambda x: model.features(x.to(device)).cpu().numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(feats(task.x_retain), task.y_retain.cpu().numpy())
    return 100 * clf.score(feats(task.x_test), task.y_test.cpu().numpy())


n_head = sum(p.numel() for p in m0.head.parameters())
n_all = sum(p.numel() for p in m0.parameters())
diag = {}
for s in SEEDS:
    h = collapse[s]
    m0_s = original_model(data, cfg, seed=s, device=device, progress=False)
    diag[s] = {
        "head_share": head_share(m0_s, h["task"]),
        "probe_0": probe_accuracy(m0_s, h["task"]),
        "probe_broken": probe_accuracy(h["broken"], h["task"]),
        "RA_broken": accuracy(h["broken"], h["task"].x_retain, h["task"].y_retain),
        "probe_final": probe_accuracy(h["final"], h["task"]),
        "RA_final": h["RA"][-1],
    }
print(f"the head has {n_head} of the {n_all} parameters")
print("      |grad|^2 on   probe test accuracy (%) | network retain accuracy (%)")
print("seed  the head (%)   theta0  collapse   end | at collapse   end")
for s, d in diag.items():
    print(
        f"{s:4} {100 * d['head_share']:12.0f} {d['probe_0']:9.1f}"
        f" {d['probe_broken']:9.1f} {d['probe_final']:5.1f}"
        f" | {d['RA_broken']:11.1f} {d['RA_final']:5.1f}"
    )

# %% tags=["hide-input"]
for d in diag.values():
    assert d["head_share"] < 0.5, "most of the GA step lies outside the head"
    assert d["probe_broken"] > 85 and d["RA_broken"] < 50, (
        "at the collapse the features still separate the digits"
    )
    assert d["probe_final"] > d["RA_final"] + 50, "the probe stays far above the net"
# Later the features degrade too: over the seeds, the probe loses more test accuracy
# than the binomial noise of a test set of this size can explain (3 standard errors).
drop = np.array([d["probe_0"] - d["probe_final"] for d in diag.values()])
n_test = len(collapse[SEEDS[0]]["task"].y_test)
p_probe = np.mean([d["probe_0"] for d in diag.values()]) / 100
se_drop = 100 * math.sqrt(2 * p_probe * (1 - p_probe) / n_test / len(SEEDS))
assert drop.mean() > 3 * se_drop, (drop, se_drop)

# %% [markdown]
# So the simple story, "GA wrecks the shared features", needs a correction on this model. The GA step indeed
# lies mostly in the shared layers (the head receives only a small share of it, although it has far fewer
# parameters), and those layers drift: the predictions of *all* inputs are dragged to one sink class, as
# {eq}`eq-02-ce-logit-grad` predicts. But at the moment the retain accuracy collapses, a linear probe on the same
# features still reads the digits almost as well as on $\theta_0$: the information is there, and what broke is
# the agreement between the moved features and the head. As the ascent continues, the features begin to lose
# information too: the probe's accuracy falls, on average over the seeds, a few points below its value at
# $\theta_0$ (more than the binomial noise of the test set explains), though it stays far above
# the network's own. For unlearning both are failures:
# the model we return is useless. They also tell us something about the forgetting itself: a forgotten model
# whose features still encode everything may leak more than its accuracy suggests to an attacker who can read
# them, a risk that output-based attacks such as those of chapter 01 do not measure.
#
# ## Stopping without the oracle
#
# Since GA never stops by itself, every GA-type method needs a stopping rule, and reports should say how it was
# chosen. The tempting rule, "stop when the forget accuracy matches the retrained model's",
# is not available in practice: if we could afford $\theta_{rt}$ we would not be unlearning. The library's rule,
# `forget_target`, uses only what the deployer has:
#
# - **class-wise**: chance level, $100/C$ %. A model that knows nothing about a class can at best guess it. This
#   is an upper bound on the oracle's forget accuracy, not an estimate of it: the oracle has never seen the
#   class, so it almost never predicts it at all;
# - **random**: the original model's own test accuracy. A forgotten sample should look like a sample the model
#   never saw, and the test set is exactly such samples. This needs $\theta_0$ and $D_t$, not $\theta_{rt}$.
#
# The loop checks the forget accuracy (one extra forward pass over $D_f$) after every pass over the set it
# iterates, or every `check_every` steps, and stops as soon as it is at or below the target. GA and random labels
# check after every step (`check_every=1`), because their collapse is abrupt: a check once per pass would step
# over it. In the left panel above, the dotted line is where the library's GA stopped.

# %%
tgt = forget_target(collapse[SEEDS[0]]["task"], m0)
oracle_fa = []
for s in SEEDS:
    task_s = collapse[s]["task"]
    oracle_s = retrained_model(task_s, cfg, seed=s, device=device, progress=False)
    oracle_fa.append(100 - evaluate(oracle_s, task_s)["UA"])
print(
    f"class-wise target: {tgt:.1f} % forget accuracy (chance for C = {C});"
    "\noracle's actual forget accuracy: "
    + ", ".join(f"{a:.1f}" for a in oracle_fa)
    + " %"
)
for s in SEEDS:
    h = collapse[s]
    print(
        f"seed {s}: GA stops after {h['stop_step']} steps, forget acc"
        f" {h['stop_FA']:.1f} %, retain acc {h['stop_RA']:.1f} %\n"
        f"        (without the rule:"
        f" {h['RA'][-1]:.1f} % after {h['step'][-1]} steps)"
    )

# %% tags=["hide-input"]
assert max(oracle_fa) <= tgt
for s in SEEDS:
    h = collapse[s]
    assert h["stop_FA"] <= tgt and h["stop_step"] < h["step"][-1]
    # "most": the stopped model keeps more than half of what the collapse loses
    assert h["stop_RA"] - h["RA"][-1] > (h["RA"][0] - h["RA"][-1]) / 2
# ... but on at least one seed GA has lost more than 5 points of retain accuracy.
assert any(collapse[s]["stop_RA"] < collapse[s]["RA"][0] - 5 for s in SEEDS)

# %% [markdown]
# The rule saves GA from the collapse, but not from all of its damage. The cliff is steep: within a few steps,
# the forget accuracy goes from nearly 100 % to nearly 0, and by the step at which the rule fires the shared layers
# have already moved, so the stopped model has lost retain accuracy on at least some seeds (more than five points
# on at least one; printed above). The rule already checks after every step, as often as it can; what would help
# is a direction that does not damage $D_r$ in the first place, the subject of the next chapters.
#
# ## The experiment: four baselines, two scenarios, every seed
#
# **How the hyperparameters were chosen.** The library's defaults (printed below) were selected on digits with
# the `ci` model, on *held-out* seeds 100 to 104, never on the seeds this chapter reports, by an oracle-free rule:
# among the settings whose forget accuracy reaches the `forget_target` of §2.8 in class-wise forgetting of class 3,
# take the one with the highest retain accuracy (see the docstring of `unlearnlib.methods.baselines`). Choosing
# hyperparameters by their gap to the retrained model on the reported seeds would be cheating twice over: it uses
# the oracle that unlearning is meant to avoid, and it fits the noise of the very seeds it then reports.
#
# We add two reference rows: the original model (no unlearning at all), and fine-tuning with the learning rate
# the CIFAR literature uses, $10^{-2}$ (the setting of the sparse-unlearning and SalUn code), because its comparison with our default is the most surprising
# result of the chapter. For each seed we draw the task, take the cached $\theta_0$ and oracle, run every method,
# time it and evaluate it against *that seed's* oracle (UA, RA, TA, MIA-Efficacy and their Avg. Gap, chapter 01).
# This loop is the library's `unlearnlib.experiment.compare_methods`, which also checks that no method changed the
# $\theta_0$ it was given; every later chapter, and the benchmark command, runs its comparisons through it.

# %%
METHODS = ["finetune", "ga", "neggrad_plus", "random_label"]
for name in METHODS:
    params = inspect.signature(REGISTRY[name]).parameters
    print(
        f"{name:13s}",
        ", ".join(
            f"{k}={params[k].default}"
            for k in ("epochs", "lr", "beta", "batch_size", "stop_at")
            if k in params
        ),
    )
FT_LIT_LR = 0.01
VARIANTS = {
    "original": None,
    **{m: m for m in METHODS},
    "finetune_lr0.01": ("finetune", {"lr": FT_LIT_LR}),
}
SAMPLES_PER_STEP = {
    "finetune": 1,
    "ga": 1,
    "neggrad_plus": 2,
    "random_label": 2,
}  # batches through fwd + bwd
BATCH = inspect.signature(REGISTRY["ga"]).parameters["batch_size"].default


def retrain_fraction(comparison, label, n_retain):
    """Examples pushed through forward + backward, as a fraction of one retraining
    run (epochs x |D_r|)."""
    method = VARIANTS[label] if isinstance(VARIANTS[label], str) else VARIANTS[label][0]
    steps = comparison.per_seed(label, "steps")
    return steps * BATCH * SAMPLES_PER_STEP[method] / (cfg.epochs * n_retain)


t_start = time.perf_counter()
results = {
    sc: compare_methods(
        VARIANTS,
        sc,
        data=data,
        cfg=cfg,
        seeds=SEEDS,
        forget_class=FORGET_CLASS,
        progress=False,
    )
    for sc in ("class", "random")
}
print(f"both scenarios, {len(SEEDS)} seeds: {time.perf_counter() - t_start:.1f} s")
n_retain = {
    sc: len(
        make_task(data, sc, forget_fraction=0.1, forget_class=FORGET_CLASS).retain_idx
    )
    for sc in results
}
costs = {
    sc: {
        label: retrain_fraction(c, label, n_retain[sc])
        for label in VARIANTS
        if label != "original"
    }
    for sc, c in results.items()
}

# %%
for sc, c in results.items():
    title = (
        f"class-wise: forget digit {FORGET_CLASS}"
        if sc == "class"
        else "random: forget 10 % of D"
    )
    print(
        f"== {title}: mean ± 95 % CI over seeds {SEEDS} =="
    )
    print(c.table())
    cost = ", ".join(f"{k} {v.mean():.3f}" for k, v in costs[sc].items())
    intro = "cost in examples processed, as a fraction of one retraining run:"
    print(textwrap.fill(f"{intro} {cost}", 88))
    print()

# %%
for sc, c in results.items():
    c.plot(
        title=(
            f"Class-wise forgetting of digit {FORGET_CLASS}"
            if sc == "class"
            else "Random forgetting of 10 % of the training set"
        )
        + f" ({profile.dataset}, {len(SEEDS)} seeds; dashed: retrain oracle)"
    )
    plt.show()

# %% [markdown]
# The `time_s` column is wall-clock time on whatever machine executes the notebook, and it is noisy when other
# programs share the machine; the cost line counts the examples each method pushed through forward and backward
# passes, which does not depend on the hardware.
#
# Let us state what the numbers say, each with its assert. **Class-wise forgetting** first.

# %%
cls = results["class"]
ref_c, cost_c = cls.reference, costs["class"]
mean, ci = cls.mean, cls.ci95
print(f"{'':16}{'Avg. Gap per seed':>24}{'RA per seed':>24}")
for m in cls.methods:
    gaps, ras = cls.per_seed(m, "gap"), cls.per_seed(m, "RA")
    print(f"{m:16}" + "".join(f"{v:8.1f}" for v in (*gaps, *ras)))
ft_params = inspect.signature(REGISTRY["finetune"]).parameters
print(
    f"fine-tuning at lr {ft_params['lr'].default} (peak lr of the original training:"
    f" {cfg.lr})\ncosts {cost_c['finetune'].mean():.2f} of a retraining run:"
    f" {ft_params['epochs'].default} epochs against {cfg.epochs}"
)

# %% tags=["hide-input"]
# With three seeds we compare intervals, not single numbers (`Comparison.above`,
# `.below`, `.within_noise`): "a above b" means that a's mean lies above b's 95 %
# interval; "within noise" that the two means are closer than the sum of their 95 %
# half-widths.
above, below, within_noise = cls.above, cls.below, cls.within_noise

# 1. Doing nothing is far from the oracle, which forgets the class completely.
assert ref_c["UA"] > 95 and mean("original", "gap") > 40
# 2. NegGrad+ ends within a point or two of the oracle, and GA is far above it.
assert mean("neggrad_plus", "gap") + ci("neggrad_plus", "gap") < 2
assert above("ga", "neggrad_plus")
# 3. Every method with its default settings forgets the class: mean UA of at least 90.
assert all(mean(m, "UA") >= 90 for m in METHODS)
# 4. ... but GA and random labels pay for it in retain accuracy on average: their mean
#    retain accuracy lies below NegGrad+'s interval.
assert all(below(m, "neggrad_plus", "RA") for m in ("ga", "random_label"))
# 5. Fine-tuning at lr 0.1 forgets digit 3 and ends close to the oracle; at the
#    literature's lr 0.01 it hardly forgets.
assert mean("finetune", "UA") - ci("finetune", "UA") > 95
assert mean("finetune", "gap") + ci("finetune", "gap") < 2
assert mean("finetune_lr0.01", "UA") + ci("finetune_lr0.01", "UA") < 10
assert mean("finetune_lr0.01", "gap") - ci("finetune_lr0.01", "gap") > 30
# 6. GA and random labels are the two worst of the four and within noise of each
#    other: GA is among the worst, but not distinguishably the worst.
for worse in ("ga", "random_label"):
    assert above(worse, "finetune") and above(worse, "neggrad_plus")
assert within_noise("ga", "random_label")
assert ft_params["lr"].default > cfg.lr

# %% [markdown]
# - **NegGrad+ beats GA** clearly: it ends within a point or two of the oracle, and GA's mean gap lies far above
#   NegGrad+'s interval. The retain term repairs, step by step, what the ascent term breaks, and its forget term is
#   weak per step ($1-\beta$ is small, see {eq}`eq-02-ngp-direction`), so the forget accuracy falls gradually
#   instead of over a cliff. This agrees with SCRUB's and Deep-Unlearn's experience that
#   a tuned NegGrad+ is a strong baseline ({cite}`kurmanji2023scrub`; {cite}`cadet2024deepunlearn`, arXiv
#   2410.01276).
# - **GA and random labels forget the class but lose retain and test accuracy** on average, for the reason of
#   §2.7–2.8; how much varies widely from seed to seed (the per-seed values above). The literature expects plain
#   GA to be the worst of these baselines. In our runs GA and random labels are the two worst of the four, and
#   with this many seeds they are statistically indistinguishable from each other: GA is among the worst, but
#   which of the two has the larger mean gap is seed-to-seed noise.
# - **Fine-tuning disagrees with the literature.** Papers in the SalUn lineage report that fine-tuning on $D_r$
#   forgets weakly: its UA stays low ({cite}`jia2023sparse`, arXiv 2304.04934; {cite}`fan2024salun`).
#   We reproduce that at their learning rate of $10^{-2}$: digit 3 is hardly forgotten. At the library's default of
#   $0.1$, chosen by the oracle-free rule precisely because $10^{-2}$ does not reach the target, fine-tuning
#   forgets the class almost completely and ends close to the oracle. Likely reasons (not tested separately here): the
#   model and the data set are tiny, so ten epochs at a learning rate above the peak of the original training move
#   the network as far as a good part of a retraining (compare the two learning rates printed above); in class-wise forgetting every retain step pushes the
#   forgotten logit down ({eq}`eq-02-ce-logit-grad`) and nothing pushes it up; and the price is visible in the cost line
#   above: at this learning rate fine-tuning is retraining from a warm start, at a sizeable fraction of the cost of
#   retraining itself (the fraction shrinks with the profile's number of training epochs). On CIFAR-10 with a
#   ResNet-18 trained for 182 epochs, ten epochs at $10^{-2}$ are a much smaller perturbation.
#
# **Random forgetting of 10 %.**

# %%
rnd = results["random"]
ref_r = rnd.reference
gaps = ", ".join(f"{m} {rnd.mean(m, 'gap'):.1f}" for m in rnd.methods)
print(textwrap.fill(f"mean Avg. Gap: {gaps}", 88))
print(f"oracle's UA: {ref_r['UA']:.1f} %, its TA: {ref_r['TA']:.1f} %")
ga_budget = inspect.signature(REGISTRY["ga"]).parameters["epochs"].default
n_f = round(0.1 * len(data.y_train))
print(
    f"GA steps in random forgetting: {rnd.per_seed('ga', 'steps').tolist()}"
    f" (budget {ga_budget} epochs of {math.ceil(n_f / 32)} steps)"
)

# %% tags=["hide-input"]
# 7. Digits is easy: the oracle classifies the forget set (unseen by it) almost
#    perfectly.
assert ref_r["UA"] < 3
# 8. ... so every method, and doing nothing at all, is within a few points of the
#    oracle, and no method is distinguishable from doing nothing.
assert all(rnd.mean(m, "gap") < 5 for m in rnd.methods)
assert all(rnd.within_noise(m, "original") for m in METHODS)
# 9. GA never reaches its target here (forget acc <= the model's test acc) and runs its
#    whole budget.
assert (rnd.per_seed("ga", "steps") == ga_budget * math.ceil(n_f / 32)).all()

# %% [markdown]
# Random forgetting on digits is nearly a non-problem: the retrained model generalises so well that it classifies
# the forgotten samples about as well as the original model does, so the oracle's UA is tiny and the original
# model, untouched, is already close to it. The differences between methods are then of the order of the
# seed-to-seed noise, and no method is clearly better than doing nothing. GA illustrates the stopping rule's other
# side: its target (forget accuracy no higher than the model's own test accuracy) asks it to misclassify a few
# forget samples, which its small learning rate does not achieve within its budget, and that is harmless here
# because the oracle barely misclassifies any. On CIFAR the gap between training and test accuracy is several
# points, and random forgetting becomes a real test of a method (chapter 01 discusses this limitation of
# digits).

# %% [markdown]
# ### At the tuned values, over ten seeds
#
# The learning rates of this section are the chapter's own, each chosen by the stopping rule on held-out seeds.
# Chapter 12 later gives every method of the book one tuning protocol (the same eight candidates around its
# default, the same budget of passes, a rule that never looks at the oracle) and runs each method at its chosen
# values on ten seeds, with the noise floor of chapter 11 and paired tests corrected for multiplicity (Holm). The
# runs ship with the library. Here are the four methods of this chapter in them: `floors` is the mean gap in
# units of the noise floor, `closer` and `farther` are paired differences that survive the correction, `·` one
# that does not.

# %%
PART_I = ["ga", "neggrad_plus", "finetune", "random_label"]
print(records.format_tuned(PART_I))
tuned = {
    s: records.verdicts(records.load_bench(f"bench_{s}"), PART_I)
    for s in ("class3", "random10")
}
# NegGrad+ stays decidedly closer to the oracle than GA and random labels ...
assert tuned["class3"]["ga"]["neggrad_plus"] == 1
assert tuned["class3"]["random_label"]["neggrad_plus"] == 1
# ... fine-tuning at its tuned rate is decided against neither ...
assert tuned["class3"]["finetune"] == {"ga": 0, "neggrad_plus": 0}
# ... and random forgetting decides nothing.
assert not any(v for row in tuned["random10"].values() for v in row.values())

# %% [markdown]
# - **NegGrad+ is the baseline to beat.** At its tuned values (learning rate 0.02, $\beta = 0.99$) it ends about
#   three noise floors from the oracle, decidedly closer than GA and random labels, as in this chapter's table.
#   That verdict holds on the kernels of the machine that ran the benchmark; with models trained on another kernel
#   family NegGrad+ missed its target on one seed of ten and both comparisons became undecided (chapter 12).
# - **Fine-tuning does not keep its result.** The protocol picks a learning rate of 0.05, half of this chapter's:
#   on the two tuning seeds it forgot the class and kept more of the validation slice. Over ten seeds it forgets
#   digit 3 on some seeds and hardly on others, so its gap is large and uncertain, and no verdict is decided.
#   Forgetting by fine-tuning is a threshold in the learning rate, and two tuning seeds do not locate a threshold;
#   chapter 12 names this as a weakness of its protocol.
# - **Random forgetting** decides nothing, at the tuned values as at this chapter's.

# %% [markdown]
# ## Summary
#
# - All four first-order baselines are one loop, {eq}`eq-02-descent-step` with SGD + momentum + weight decay
#   {eq}`eq-02-sgd-momentum`, and differ only in the loss: $L_r$ (fine-tune), $-\mathrm{CE}_f$ (GA),
#   $\beta L_r - (1-\beta)\mathrm{CE}_f$ (NegGrad+), and CE to random wrong labels plus $L_r$ (random labels). We
#   wrote that loop from scratch and checked that it reproduces `unlearnlib`'s methods parameter for parameter.
# - Cross-entropy is unbounded above and its ascent never fades ({eq}`eq-02-ce-logit-grad`), so GA has no fixed point.
#   Run without a brake, it drove every seed's model to predict a single class; the forget loss kept growing
#   after all accuracy was gone. Most of the GA step lies in the shared layers; at the collapse, the features
#   still encoded the digits, and only later did they degrade.
# - The oracle-free stopping rule (chance level for a class, the model's test accuracy for random samples)
#   prevents the collapse but not all damage, because GA's forgetting happens over a cliff.
# - On class-wise forgetting of digit 3, NegGrad+ and fine-tuning at the tuned learning rate of 0.1 ended within
#   a point or two of the retrained model; GA and random labels forgot the class at a cost in retain accuracy;
#   fine-tuning forgot the class at 0.1 but not at the literature's 0.01, and at 0.1 it costs a sizeable
#   fraction of retraining.
# - At the values chapter 12's protocol chooses, over ten seeds, NegGrad+ keeps its result (three noise floors
#   from the oracle) and fine-tuning loses it: its forgetting is a threshold in the learning rate.
# - Random forgetting of 10 % on digits barely separates the methods from doing nothing: a reminder that an
#   unlearning benchmark is only as informative as the gap between the original model and the oracle.

# %% [markdown]
# ## Exercises
#
# The exercises practise the update rules of §2.1–2.5 (two of them graded: write the function, the tests check
# it) and vary the experiments of §2.7–2.9. Every experiment runs in a minute or two on one laptop core.

# %% tags=["exercise-setup"]
# Small fixed inputs for the graded exercises of this chapter.
import torch
import torch.nn.functional as ex_F

ex_gen = torch.Generator().manual_seed(0)
ex_z = 3 * torch.randn(7, 10, generator=ex_gen)  # logits of 7 samples, 10 classes
ex_y = torch.tensor([0, 3, 9, 3, 5, 1, 7])  # their true labels
ex_theta0 = torch.randn(5, generator=ex_gen)  # a flat model of 5 parameters
ex_dirs = torch.randn(6, 5, generator=ex_gen)  # the directions of 6 steps

# %% [markdown]
# ```{exercise} The pull of random labels on the logits
# :label: ex-02-rl-logit-grad
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Derive the gradient in {eq}`eq-02-rl-expected` from {eq}`eq-02-ce-logit-grad`, then write
# `random_label_grad(z, y)`, which returns, for each sample of a batch of logits, the gradient with respect to its
# logits of the forget term of random labels averaged over the label draw, without calling autograd. Which
# probability vector makes it vanish, and why is that a fixed point that gradient ascent does not have?
# ```

# %% tags=["remove-cell", "graded"]
def random_label_grad(z, y):
    """Gradient of the expected random-label loss with respect to the logits.

    z: float tensor [B, C] of logits; y: int64 tensor [B] of true labels. Returns a
    float tensor [B, C] whose row i is the gradient, with respect to z[i], of
    E ell(z[i], y~), the cross-entropy averaged over a label y~ drawn uniformly from
    the C - 1 classes other than y[i] (eq. eq-02-rl-expected); one row per sample,
    not averaged over the batch.
    """
    # BEGIN SOLUTION
    p = torch.softmax(z, dim=1)
    target = torch.full_like(z, 1.0 / (z.shape[1] - 1))
    target[torch.arange(len(y)), y] = 0.0
    return p - target
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Equal logits, C = 5: p = 1/5 everywhere, so the gradient is 1/5 on the true class and
# 1/5 - 1/4 on the four others (fp32 softmax: errors of order 1e-7).
ex_g = random_label_grad(torch.zeros(2, 5), torch.tensor([4, 1]))
ex_want = torch.full((2, 5), 0.2 - 0.25, dtype=torch.float64)
ex_want[0, 4] = ex_want[1, 1] = 0.2
assert ex_g is not None and tuple(ex_g.shape) == (2, 5)
assert torch.allclose(ex_g.double(), ex_want, atol=1e-6)

# %% tags=["remove-cell", "graded-test", "hidden"]
# 7 samples, 10 classes: autograd of the closed form of eq. (eq-02-rl-expected); entries
# are at most 1 in size, and fp32 rounding moves them by about 1e-7.
ex_zz = ex_z.clone().requires_grad_(True)
ex_wrong_sum = ex_zz.sum(1) - ex_zz.gather(1, ex_y[:, None]).squeeze(1)
ex_closed = torch.logsumexp(ex_zz, 1) - ex_wrong_sum / 9
(ex_want,) = torch.autograd.grad(ex_closed.sum(), ex_zz)
ex_g = random_label_grad(ex_z, ex_y)
assert torch.allclose(ex_g.double(), ex_want.double(), atol=1e-5)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Labels that never reach the last class; and where p is uniform over the wrong classes
# (true logit far below the others, which are equal) the gradient vanishes.
ex_z2 = torch.tensor(
    [[0.5, -1.0, 2.0, 0.0, 1.0, -2.0], [1.0] * 6, [3.0, 0.0, -1.0, 0.5, 0.5, 2.0]]
)
ex_y2 = torch.tensor([2, 0, 2])
ex_want = torch.softmax(ex_z2.double(), 1) - (1 - ex_F.one_hot(ex_y2, 6).double()) / 5
assert torch.allclose(random_label_grad(ex_z2, ex_y2).double(), ex_want, atol=1e-6)
ex_y3 = torch.tensor([0, 2, 2, 1])
ex_z3 = torch.zeros(4, 6)
ex_z3[torch.arange(4), ex_y3] = -40.0
assert random_label_grad(ex_z3, ex_y3).abs().max() < 1e-6

# %% [markdown]
# ```{exercise} Momentum and weight decay, step by step
# :label: ex-02-sgd-trajectory
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `sgd_trajectory(theta0, directions, lr, momentum, weight_decay)`, which applies {eq}`eq-02-sgd-momentum` to
# a flat parameter vector and returns the whole trajectory $\theta_0, \theta_1, \dots, \theta_T$ as one tensor.
# Weight decay enters *before* the momentum buffer, as in `torch.optim.SGD`; the variants that add it after the
# buffer (decoupled decay), damp the buffer, or look ahead (Nesterov) give other trajectories.
# ```

# %% tags=["remove-cell", "graded"]
def sgd_trajectory(theta0, directions, lr, momentum, weight_decay):
    """The iterates of eq. (eq-02-sgd-momentum) for a flat parameter vector.

    theta0: float tensor [P], the starting point; directions: float tensor [T, P],
    row t - 1 holding the direction d_t of step t = 1..T. Returns a float tensor
    [T + 1, P] whose row t is theta_t (row 0: a copy of theta0): what
    torch.optim.SGD(lr=lr, momentum=momentum, weight_decay=weight_decay) produces
    when the gradient at step t is d_t. theta0 itself is not modified.
    """
    # BEGIN SOLUTION
    theta, buf, out = theta0.clone(), None, [theta0.clone()]
    for d in directions:
        g = d + weight_decay * theta
        buf = g if buf is None else momentum * buf + g
        theta = theta - lr * buf
        out.append(theta)
    return torch.stack(out)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# One parameter, direction 1 twice, lr 0.1, momentum 0.9, no weight decay:
# theta_1 = 1 - 0.1 = 0.9, b_2 = 0.9 + 1 = 1.9, theta_2 = 0.9 - 0.19 = 0.71.
ex_traj = sgd_trajectory(torch.tensor([1.0]), torch.ones(2, 1), 0.1, 0.9, 0.0)
ex_want = torch.tensor([[1.0], [0.9], [0.71]], dtype=torch.float64)
assert ex_traj is not None and tuple(ex_traj.shape) == (3, 1)
assert torch.allclose(ex_traj.double(), ex_want, atol=1e-6)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Against torch.optim.SGD with momentum and a large weight decay, 6 steps in fp32; a
# different order of the few operations per step changes the result by about 1e-7.
ex_w = ex_theta0.clone().requires_grad_(True)
ex_opt = torch.optim.SGD([ex_w], lr=0.05, momentum=0.9, weight_decay=0.1)
ex_want = [ex_theta0.clone()]
for ex_d in ex_dirs:
    ex_w.grad = ex_d.clone()
    ex_opt.step()
    ex_want.append(ex_w.detach().clone())
ex_traj = sgd_trajectory(ex_theta0, ex_dirs, 0.05, 0.9, 0.1)
assert tuple(ex_traj.shape) == (7, 5)
ex_want = torch.stack(ex_want).double()
assert torch.allclose(ex_traj.double(), ex_want, rtol=1e-5, atol=1e-6)

# %% tags=["remove-cell", "graded-test", "hidden"]
# No momentum: plain SGD with weight decay,
# theta_t = theta_{t-1} - lr (d_t + wd theta_{t-1}); row 0 is theta0, left untouched.
ex_t0 = ex_theta0.clone()
ex_traj = sgd_trajectory(ex_theta0, ex_dirs[:3], 0.1, 0.0, 0.1)
assert tuple(ex_traj.shape) == (4, 5) and torch.equal(ex_theta0, ex_t0)
ex_want = ex_t0.double()
assert torch.allclose(ex_traj[0].double(), ex_want)
for ex_t in range(3):
    ex_want = ex_want - 0.1 * (ex_dirs[ex_t].double() + 0.1 * ex_want)
    assert torch.allclose(ex_traj[ex_t + 1].double(), ex_want, rtol=1e-5, atol=1e-6)

# %% [markdown]
# ```{exercise} Sweep β in NegGrad+
# :label: ex-02-beta-sweep
#
# *experiment · about 1 CPU minute*
#
# Run `neggrad_plus` for $\beta \in \{0.5, 0.8, 0.9, 0.95, 0.97, 0.99\}$ on class-wise forgetting over `SEEDS`
# (`compare_methods` with variants such as `("neggrad_plus", {"beta": 0.9})`), and plot the mean Avg. Gap and the
# retain accuracy against $\beta$. Which $\beta$ would the oracle-free rule of §2.9 pick (the highest retain
# accuracy among the settings whose forget accuracy reaches the target), and which would the gap pick? Why may
# neither choice be made on the seeds you report? *Hint:* by {eq}`eq-02-ngp-direction`, the forget step shrinks
# with $1 - \beta$.
# ```

# %% [markdown]
# ```{solution-start} ex-02-beta-sweep
# :class: dropdown
# ```
# A small $\beta$ makes the forget term strong: the run goes over the cliff of §2.7 and loses retain accuracy; a
# $\beta$ close to 1 makes NegGrad+ nearly fine-tuning at a small learning rate, which does not forget. Over seeds
# 0-2 in the `ci` profile every $\beta$ up to 0.97 drove the mean forget accuracy to 0 %, with mean retain
# accuracies of 15.0, 74.1, 90.9, 99.3 and 99.7 % for $\beta$ = 0.5, 0.8, 0.9, 0.95 and 0.97, and mean gaps
# of 58.9 ± 32.5, 13.7 ± 5.7, 5.4 ± 2.6, 0.7 ± 0.5 and 0.5 ± 0.6 points; at $\beta = 0.99$ the forget accuracy
# stayed at 89.8 % (gap 38.7 ± 25.1). Both rules picked $\beta = 0.97$, the library's default, and 0.95 is within
# the noise of it. That they agree here is luck, not a licence: choosing by the gap uses the oracle, which
# unlearning is meant to avoid, and choosing anything on the reported seeds fits their noise, which is why the
# library's defaults were chosen on held-out seeds.

# %% tags=["skip-execution"]
BETAS = [0.5, 0.8, 0.9, 0.95, 0.97, 0.99]
sweep = compare_methods(
    {f"beta {b}": ("neggrad_plus", {"beta": b}) for b in BETAS},
    "class",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_class=FORGET_CLASS,
    progress=False,
    floor=False,
)
lab = {b: f"beta {b}" for b in BETAS}
for b in BETAS:
    print(
        f"beta {b}: forget acc {100 - sweep.mean(lab[b], 'UA'):5.1f} %,"
        f" RA {sweep.mean(lab[b], 'RA'):5.1f} %,"
        f" Avg. Gap {sweep.mean(lab[b], 'gap'):5.2f} ± {sweep.ci95(lab[b], 'gap'):.2f}"
    )
reach = [b for b in BETAS if 100 - sweep.mean(lab[b], "UA") <= 100 / C]
print(
    "oracle-free rule picks beta",
    max(reach, key=lambda b: sweep.mean(lab[b], "RA")) if reach else None,
    "; the gap picks beta",
    min(BETAS, key=lambda b: sweep.mean(lab[b], "gap")),
)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, key in zip(axes, ("gap", "RA")):
    ax.errorbar(
        BETAS, [sweep.mean(lab[b], key) for b in BETAS],
        yerr=[sweep.ci95(lab[b], key) for b in BETAS], fmt="o-", capsize=3,
    )
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel("Avg. Gap" if key == "gap" else "retain accuracy (%)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Stop on the loss
# :label: ex-02-stop-on-loss
#
# *experiment · about 1 CPU minute*
#
# Make GA stop when the mean forget loss $\mathrm{CE}_f$ exceeds a threshold instead of when the forget accuracy
# reaches the target: in the `callback` of `my_unlearn`, compute $\mathrm{CE}_f$ after every step and raise an
# exception once it is above the threshold. Is there a threshold you can justify without the oracle? Compare the
# step, the forget accuracy and the retain accuracy at which your rule stops with those of the library's rule
# (stored in `collapse` in §2.7), on every seed. *Hint:* the loss of a uniform prediction is $\log C$.
# ```

# %% [markdown]
# ```{solution-start} ex-02-stop-on-loss
# :class: dropdown
# ```
# A model that knows nothing about an image and spreads its probability uniformly has loss $\log C$ on it, so
# "$\mathrm{CE}_f > \log C$" is the loss version of "forget accuracy at chance": it needs neither the oracle nor
# the test set. It is not the same rule, though: a mean loss can pass $\log C$ while some forget images are
# still classified correctly (a few samples with a huge loss lift the mean), and the accuracy can reach chance
# while the mean loss is still below $\log C$. Over seeds 0-2 in the `ci` profile the first happened: the loss
# rule stopped 2 to 4 steps before the accuracy rule (at steps 105-141 against 109-143), with 87.9-98.4 % retain
# accuracy against 77.4-94.1 %, but with 22.6-40.9 % of the forget set still classified correctly, far above the
# chance level of 10 % that the accuracy rule reached (2.9-6.6 %). The mean loss passes $\log C$ while the
# forgetting is still under way, so the loss rule keeps more of $D_r$ by not finishing the job: it is not an
# oracle-free stand-in for the accuracy rule on this model.

# %% tags=["skip-execution"]
class StopRun(Exception):
    """Raised by a callback to end my_unlearn early."""


for s in SEEDS:
    h, task_s = collapse[s], collapse[s]["task"]
    m0_s = original_model(data, cfg, seed=s, device=device, progress=False)
    rec = {}

    def stop_on_loss(t, model, rec=rec, task_s=task_s):
        ce_f = per_sample_loss(model, task_s.x_forget, task_s.y_forget).mean()
        if ce_f > math.log(C):
            rec["step"] = t
            rec["FA"] = accuracy(model, task_s.x_forget, task_s.y_forget)
            rec["RA"] = accuracy(model, task_s.x_retain, task_s.y_retain)
            raise StopRun

    per_pass = math.ceil(len(task_s.forget_idx) / 32)
    try:
        my_unlearn(
            m0_s, ga_loss, task_s, steps=PASSES * per_pass, lr=lr_ga, batch_size=32,
            seed=s, callback=stop_on_loss,
        )
    except StopRun:
        pass
    print(
        f"seed {s}: loss rule stops at step {rec['step']}, forget acc"
        f" {rec['FA']:.1f} %, retain acc {rec['RA']:.1f} %;\n        accuracy rule"
        f" at step {h['stop_step']}, forget acc {h['stop_FA']:.1f} %, retain acc"
        f" {h['stop_RA']:.1f} %"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Random labels: never the true label, or any label?
# :label: ex-02-random-label-draws
#
# *experiment · about 1 CPU minute*
#
# Write a second version of `random_label_loss` that draws the labels from all $C$ classes, so that the true
# label comes up with probability $1/C$ (as SalUn's public code does). Run both versions with `my_unlearn` for
# the library's budget (its default number of passes over $D_f$ and its learning rate, without a stopping
# rule) on class-wise forgetting, over `SEEDS`, and compare the forget accuracy, the retain accuracy and the
# Avg. Gap. Where does the expected loss of the second version reach its minimum?
# ```

# %% [markdown]
# ```{solution-start} ex-02-random-label-draws
# :class: dropdown
# ```
# Redoing {eq}`eq-02-rl-expected` with $\tilde y$ uniform over all $C$ classes gives the gradient $p - \mathbf 1/C$:
# the minimum is the uniform prediction, in which the true class keeps probability $1/C$, while the version that
# excludes the true class pushes $p_y$ to zero. Over seeds 0-2 in the `ci` profile, after the library's budget
# without a stopping rule, the version that never draws the true label ended at 0.0-1.5 % forget accuracy,
# 82.8-92.6 % retain accuracy and an Avg. Gap of 4.4-9.3 points; the version that draws any label at 3.6-9.5 %,
# 86.4-94.0 % and 5.9-8.7 points. Drawing the true label now and then leaves a few forget images recognised, as
# the uniform minimum predicts, and costs slightly less retain accuracy; the gaps overlap, and which version is
# closer to the oracle changes from seed to seed.

# %% tags=["skip-execution"]
def any_label_loss(num_classes, seed):  # labels from all C classes
    gen = torch.Generator().manual_seed(seed)

    def loss(model, xf, yf, xr, yr):
        y_any = torch.randint(0, num_classes, yf.shape, generator=gen).to(yf.device)
        return F.cross_entropy(model(xf), y_any) + F.cross_entropy(model(xr), yr)

    return loss


rl = inspect.signature(REGISTRY["random_label"]).parameters
for s in SEEDS:
    task_s = make_task(data, "class", forget_class=FORGET_CLASS, seed=s)
    m0_s = original_model(data, cfg, seed=s, device=device, progress=False)
    oracle_s = retrained_model(task_s, cfg, seed=s, device=device, progress=False)
    ref_s = evaluate(oracle_s, task_s)
    budget = rl["epochs"].default * math.ceil(len(task_s.forget_idx) / 32)
    for name, loss_fn in (
        ("never the true label", random_label_loss(C, s + 1)),
        ("any label", any_label_loss(C, s + 1)),
    ):
        m = my_unlearn(m0_s, loss_fn, task_s, steps=budget, lr=rl["lr"].default, seed=s)
        ev = evaluate(m, task_s, reference=ref_s)
        print(
            f"seed {s}, {name:20}: forget acc {100 - ev['UA']:5.1f} %,"
            f" RA {ev['RA']:5.1f} %, Avg. Gap {ev['gap']:5.2f}"
        )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} What does weight decay do during GA?
# :label: ex-02-ga-weight-decay
#
# *experiment · about 1 CPU minute*
#
# Repeat the run of §2.7 (GA without brakes, 60 passes over $D_f$) with `weight_decay=0` and with
# `weight_decay=5e-3`, besides the default $5\cdot10^{-4}$, on every seed. Does the retain accuracy collapse
# earlier or later, and does the forget loss still grow without bound? Use {eq}`eq-02-sgd-momentum` to explain why
# the decay term cannot stop the ascent.
# ```

# %% [markdown]
# ```{solution-start} ex-02-ga-weight-decay
# :class: dropdown
# ```
# Weight decay adds $\lambda\theta$ to the direction: a pull towards zero proportional to the weights, whatever the
# loss does. The push of the ascent on the logits tends to a constant ({eq}`eq-02-ce-logit-grad`), and the network can
# keep raising the forget loss with weights of bounded size, so a pull of size $\lambda\|\theta\|$ slows the ascent at
# most a little; it has no term that grows with the forget loss. At GA's learning rate the decay is also tiny:
# over a run of $S$ steps it shrinks a weight by about $\eta\lambda S/(1-\mu)$, which for $\eta = 2\cdot10^{-4}$,
# $\lambda = 5\cdot10^{-3}$ and the 300 steps of the run is 0.3 %. Over seeds 0-2 in the `ci` profile the three
# decays gave practically the same run: on each seed the retain accuracy fell below 50 % after the same pass
# (24 to 30, depending on the seed) and ended at the same value (10.8-11.2 %), and the forget loss grew to
# 127-134 in every case, the largest decay lowering it by at most 0.5.

# %% tags=["skip-execution"]
for s in SEEDS:
    task_s = collapse[s]["task"]
    m0_s = original_model(data, cfg, seed=s, device=device, progress=False)
    per_pass = math.ceil(len(task_s.forget_idx) / 32)
    for wd in (0.0, 5e-4, 5e-3):
        ras = []

        def watch_ra(t, model, ras=ras, task_s=task_s, per_pass=per_pass):
            if t % per_pass == 0:
                ras.append(accuracy(model, task_s.x_retain, task_s.y_retain))

        final = my_unlearn(
            m0_s, ga_loss, task_s, steps=PASSES * per_pass, lr=lr_ga, seed=s,
            weight_decay=wd, callback=watch_ra,
        )
        first = next((k + 1 for k, ra in enumerate(ras) if ra < 50), None)
        ce_end = per_sample_loss(final, task_s.x_forget, task_s.y_forget).mean()
        print(
            f"seed {s}, weight decay {wd:g}: retain acc below 50 % after pass {first},"
            f" final RA {ras[-1]:.1f} %, final CE_f {ce_end:.1f}"
        )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} How often to check the stopping rule
# :label: ex-02-check-often
#
# *experiment · about 1 CPU minute*
#
# The library's GA checks its stopping rule after every step (`check_every=1`), which costs one forward pass over
# $D_f$ per step. Run it with `check_every=None`, which checks once per pass over $D_f$, on every seed, and compare
# the step at which each version stops, its forget and retain accuracy, and the number of checks. How much retain
# accuracy does checking every step save, and why does the answer depend on how steep the cliff of §2.8 is?
# ```

# %% [markdown]
# ```{solution-start} ex-02-check-often
# :class: dropdown
# ```
# A check once per pass can stop only at the end of a pass, so it overshoots the first step at which the rule
# holds by up to a pass; whether that costs retain accuracy depends on how much the accuracies move within a
# pass, which near the cliff is a lot. Over seeds 0-2 in the `ci` profile, checking once per pass stopped 1 to 4
# steps later (at steps 110-145 instead of 109-143), with 22-29 checks instead of 109-143, but at 58.9-82.2 %
# retain accuracy instead of 77.4-94.1 %: those few steps past the target cost 4.7 to 19.4 points. Each check
# is one forward pass over $D_f$, cheaper than the GA step itself, so checking every step is the better deal on
# this model.

# %% tags=["skip-execution"]
for s in SEEDS:
    task_s = collapse[s]["task"]
    m0_s = original_model(data, cfg, seed=s, device=device, progress=False)
    for every in (1, None):
        log = []
        m = REGISTRY["ga"](m0_s, task_s, seed=s, check_every=every, log=log)
        print(
            f"seed {s}, check_every={every}: stops at step {log[-1]['step']} after"
            f" {len(log)} checks, forget acc {log[-1]['forget_acc']:.1f} %,"
            f" retain acc {accuracy(m, task_s.x_retain, task_s.y_retain):.1f} %"
        )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} A fine-tuning learning-rate sweep
# :label: ex-02-finetune-lr
#
# *experiment · about 1 CPU minute*
#
# Run fine-tuning with learning rates $10^{-3}$, $3\cdot10^{-3}$, $10^{-2}$, $3\cdot10^{-2}$, $0.1$ and $0.2$ on
# class-wise forgetting over `SEEDS`, and plot UA and RA against the learning rate. Where does the forgetting of
# digit 3 set in, and what does fine-tuning cost at each learning rate, as a fraction of retraining (§2.9)?
# ```

# %% [markdown]
# ```{solution-start} ex-02-finetune-lr
# :class: dropdown
# ```
# Fine-tuning has no stopping rule, so every learning rate runs its 10 epochs over $D_r$: the cost is the same
# at every learning rate, 10 of the 30 epochs of a retraining run (a third). What changes is what those epochs
# do. Over seeds 0-2 in the `ci` profile, up to $\eta = 10^{-2}$ fine-tuning forgot nothing (UA 0-2.2 %, gap
# 44-50 points); at $3\cdot10^{-2}$ it began to forget on one seed (UA 0.7-25.5 %); at $0.1$ it forgot the class
# completely on every seed (UA 100 %) and ended within half a point of the oracle (gap 0.1-0.4); at $0.2$ it
# forgot the class too, but one seed collapsed (retain accuracy 11.2 %, against 84.8 and 96.7 % on the others).
# The forgetting of digit 3 sets in between $3\cdot10^{-2}$ and $0.1$, above the peak learning rate of the
# original training (0.05): at that size a fine-tuning run is a partial retraining from a warm start.

# %% tags=["skip-execution"]
LRS = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2]
ft_sweep = compare_methods(
    {f"lr {lr:g}": ("finetune", {"lr": lr}) for lr in LRS},
    "class",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_class=FORGET_CLASS,
    progress=False,
    floor=False,
)
for lr in LRS:
    row = {k: ft_sweep.per_seed(f"lr {lr:g}", k) for k in ("UA", "RA", "gap")}
    print(
        f"lr {lr:<6g} UA {np.round(row['UA'], 1)}, RA {np.round(row['RA'], 1)},"
        f" Avg. Gap {np.round(row['gap'], 1)}"
    )
fig, ax = plt.subplots(figsize=(6, 3.5))
for key in ("UA", "RA"):
    ax.errorbar(
        LRS, [ft_sweep.mean(f"lr {lr:g}", key) for lr in LRS],
        yerr=[ft_sweep.ci95(f"lr {lr:g}", key) for lr in LRS], fmt="o-", capsize=3,
        label=key,
    )
ax.set_xscale("log")
ax.set_xlabel("fine-tuning learning rate")
ax.set_ylabel("%")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects

# %% [markdown]
# ```{exercise} Labels fixed for a whole pass
# :label: ex-02-labels-per-pass
#
# *project · about 5 CPU minutes*
#
# The library redraws the random labels at every step. Write a loop in which each forget sample keeps the same
# wrong label for a whole pass over $D_f$ (a table of labels redrawn at the start of each pass, indexed by the
# sample's position), and a variant in which the labels are drawn once for the whole run. Compare the three
# schedules over several seeds, under the library's early stop and under a fixed budget. Which of them has a
# fixed point, in the sense of {eq}`eq-02-rl-expected`, and which ends closest to the oracle?
# ```

# %% [markdown]
# ```{solution-start} ex-02-labels-per-pass
# :class: dropdown
# ```
# A sketch. `my_unlearn` hands the loss only the batch, not the positions of its samples, so the loop must draw
# the forget batches itself, as below. With labels fixed for the whole run the forget term is an ordinary
# cross-entropy towards fixed wrong labels: bounded below by 0 and minimised by fitting them, which the network
# can do by memorising the forget images; redrawn labels average to the target of {eq}`eq-02-rl-expected`
# instead, uniform over the wrong classes. Expect the fixed-label runs to forget fastest and to move the model
# furthest on $D_f$ (measure it: forget loss on the true labels, and the gap).

# %% tags=["skip-execution"]
def fixed_label_unlearn(model0, task, *, passes, lr, redraw_every_pass, seed=0):
    model = copy.deepcopy(model0).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    xf, yf, xr, yr = task.x_forget, task.y_forget, task.x_retain, task.y_retain
    retain_batches = batches(len(yr), 32, gen)
    labels = wrong_labels(yf.cpu(), C, gen).to(yf.device)
    for p in range(passes):
        if redraw_every_pass and p > 0:
            labels = wrong_labels(yf.cpu(), C, gen).to(yf.device)
        order = torch.randperm(len(yf), generator=gen)  # host: CPU generator
        for fi in order.split(32):
            fi, ri = fi.to(yf.device), next(retain_batches).to(yr.device)
            opt.zero_grad()
            loss = F.cross_entropy(model(xf[fi]), labels[fi])
            (loss + F.cross_entropy(model(xr[ri]), yr[ri])).backward()
            opt.step()
    return model.eval()

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. In the descent convention of {eq}`eq-02-descent-step`, what must a GA implementation call `backward()` on?
#    (a) $\mathrm{CE}_f$; (b) $-\mathrm{CE}_f$; (c) $\mathrm{CE}_f - L_r$.
# 2. One NegGrad+ step with $\beta = 0.97$ at learning rate $\eta$ contains a GA step at what learning rate?
# 3. Why does fine-tuning settle while GA never does? (a) fine-tuning uses a smaller learning rate; (b) the push on
#    the true logit, $1 - p_y$, vanishes in descent as $p_y \to 1$ but tends to 1 in ascent as $p_y \to 0$;
#    (c) weight decay stops GA.
# 4. With $C = 10$ classes, what is the smallest value of the expected random-label loss {eq}`eq-02-rl-expected`?
# 5. Under SGD with momentum $\mu = 0.9$ and a constant direction, the step length tends to how many times the
#    length of the first step?
# 6. What forget accuracy does the oracle-free rule of §2.8 aim for in class-wise forgetting with 10 classes, and
#    why is it an upper bound rather than an estimate of the oracle's?

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b): the optimiser moves against the gradient of what `backward()` sees, so ascent on
# $\mathrm{CE}_f$ means descent on $-\mathrm{CE}_f$. 2. $\eta(1-\beta) = 0.03\,\eta$ ({eq}`eq-02-ngp-direction`).
# 3. (b), from {eq}`eq-02-ce-logit-grad`; weight decay adds a pull proportional to the weights and cannot bound an
# unbounded loss. 4. $\log 9 \approx 2.20$, reached when $p$ is uniform over the nine wrong classes. 5. $1/(1-\mu)
# = 10$: the buffer is $\sum_{k<t}\mu^k d \to d/(1-\mu)$. 6. 10 %, chance level: a model that knows nothing about
# the class can at best guess it, while the oracle, which never saw it, almost never predicts it at all.
