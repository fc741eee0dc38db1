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
# # Gradient surgery: PCGrad and the one-sided constrained step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/05_gradient_surgery.ipynb)
#
# Chapter 04 measured the conflict: along gradient ascent the forget gradient $g_f$ and the retain gradient $g_r$
# come to point against each other, and a step along $g_f$ then raises the retain loss. This chapter takes the
# most direct way out: **operate on the gradients** before the optimiser sees them. PCGrad, a rule from
# multi-task learning, removes from each gradient the component that opposes the other. Its one-sided variant
# operates on the forget gradient alone. And *unilateral gradient surgery*, the explicit method of Zhou et al.'s
# implicit-surgery paper, is the solution of a small constrained problem: the direction closest to $g_f$ whose
# first-order damage to the retain loss stays below a tolerance $\epsilon$. We derive the closed form, check it
# against a numerical solver, turn it into an unlearning method with two backward passes per step, and measure
# what it buys on digits compared with gradient ascent and NegGrad+.
#
# **What you will learn**
#
# - PCGrad's projection onto the normal plane of the other task's *original* gradient, why with two tasks it
#   leaves no negative inner product, and that in the forget/retain form it is NegGrad+ whenever there is no
#   conflict;
# - unilateral surgery as the problem $\min_d \tfrac12\|d - g_f\|^2$ s.t. $\langle g_r, d\rangle \ge -\epsilon$: its
#   KKT conditions, its closed form, and its special cases (one-sided PCGrad, A-GEM, GA);
# - how to implement both as unlearning methods, from scratch, and that the library's methods do exactly this;
# - what they do on class-wise and random forgetting over several seeds, what the multiplier $\lambda^*$ does along a
#   run, how much the retain loss moves per step, and what two backward passes cost.

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
import time
from unittest import mock

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

import unlearnlib.config
from unlearnlib import records
import unlearnlib.grads
from unlearnlib.bench import step_times
from unlearnlib.data import cycle_batches, load_dataset, make_task
from unlearnlib.diagnostics import loss_change
from unlearnlib.experiment import compare_methods
from unlearnlib.grads import cosine, flatten, loss_grad
from unlearnlib.methods import get_method
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
task = make_task(data, "class", forget_class=FORGET_CLASS, seed=SEEDS[0])
m0 = original_model(data, cfg, seed=SEEDS[0], device=device)
print(task.describe())

# %% [markdown]
# ## The problem
#
# We keep the conventions of chapters 02 and 04. Every objective is minimised and every update is written in the
# descent convention, $\theta \leftarrow \theta - \eta\, d$. The forget objective is $L_f = -\mathrm{CE}_f$ (gradient
# ascent written as descent) and the retain objective is $L_r$, the retain cross-entropy; on a mini-batch of each,
#
# $$
# g_f = \nabla_\theta L_f = -\nabla_\theta \mathrm{CE}_f, \qquad g_r = \nabla_\theta L_r .
# $$ (eq-05-grads)
#
# To first order a step along $d$ changes the two losses by
#
# $$
# \Delta L_f \approx -\eta \langle g_f, d\rangle, \qquad \Delta L_r \approx -\eta \langle g_r, d\rangle ,
# $$ (eq-05-first-order)
#
# so GA ($d = g_f$) raises the retain loss exactly when the two gradients **conflict**, $\langle g_f, g_r\rangle < 0$.
# NegGrad+ (chapter 02) adds a fixed share of $g_r$ to every step, whether there is a conflict or not. The methods
# of this chapter look at the two gradients at every step and change the direction only as much as the conflict
# requires. All of them need $g_f$ and $g_r$ as two *separate* vectors, that is, two backward passes, flattened
# into vectors of the $P$ trainable parameters so that inner products are global (summed over all layers).
#
# ## PCGrad
#
# ### The rule
#
# PCGrad ("projecting conflicting gradients"), by Yu et al. {cite}`yu2020pcgrad` (arXiv 2001.06782), was proposed
# for multi-task learning with task gradients $g_1, \dots, g_T$. For each task $i$ it starts from
# $g_i^{PC} = g_i$ and visits the other tasks $j$ in random order; whenever $g_i^{PC}$ conflicts with the **original**
# gradient $g_j$, it removes the conflicting component:
#
# $$
# g_i^{PC} \leftarrow g_i^{PC} - \frac{\min\big(0, \langle g_i^{PC}, g_j\rangle\big)}{\|g_j\|^2}\, g_j ,
# \qquad d = \sum_{i=1}^{T} g_i^{PC} .
# $$ (eq-05-pcgrad)
#
# (Written with $\min(0, \cdot)$: nothing happens without a conflict.) Two details of the rule matter and are easy to
# get wrong: the projection is against the other task's *original* gradient, not its
# already projected version, and it happens *only* on a negative inner product.
#
# ### Why it is a projection
#
# Fix a nonzero vector $u$ and write any $v$ as $v = a\,u + w$ with $\langle w, u\rangle = 0$. Taking the inner product
# with $u$ gives $a = \langle v, u\rangle / \|u\|^2$. For any $z$ in the normal plane $N_u = \{z : \langle z, u\rangle = 0\}$,
# $\|v - z\|^2 = a^2\|u\|^2 + \|w - z\|^2$ (the cross term vanishes because $w - z \perp u$), which is smallest at
# $z = w$. So the closest point of $N_u$ to $v$ is
#
# $$
# \Pi_{u}(v) = v - \frac{\langle v, u\rangle}{\|u\|^2}\, u , \qquad \langle \Pi_u(v), u\rangle = 0 ,
# $$ (eq-05-normal-plane)
#
# and {eq}`eq-05-pcgrad` applies $\Pi_{g_j}$ exactly when $\langle g_i^{PC}, g_j\rangle < 0$. Two properties follow
# at once. A projection never increases a norm ($\|\Pi_u(v)\|^2 = \|v\|^2 - a^2\|u\|^2$), so each projected
# gradient is no longer than the original (their *sum* can be longer than the unprojected sum, when the two nearly
# cancel). And $\Pi_u$ does not depend on the length of $u$ (replace $u$ by $su$, $s > 0$, and the $s^2$ cancels),
# while it is linear in $v$.
#
# ### Two tasks: no negative inner product is left
#
# Take two gradients with $c = \langle g_1, g_2\rangle < 0$ and angle $\varphi$ between them, so
# $c^2 = \|g_1\|^2\|g_2\|^2 \cos^2\varphi$. PCGrad gives
# $g_1' = g_1 - \tfrac{c}{\|g_2\|^2} g_2$ and $g_2' = g_2 - \tfrac{c}{\|g_1\|^2} g_1$. Then (our derivation, four lines):
#
# $$
# \begin{aligned}
# \langle g_1', g_2\rangle &= 0, \qquad \langle g_2', g_1\rangle = 0, \\
# \langle g_1', g_1\rangle &= \|g_1\|^2 - \frac{c^2}{\|g_2\|^2} = \|g_1\|^2 \sin^2\varphi \;\ge 0, \\
# \langle g_1', g_2'\rangle &= \langle g_1', g_2\rangle - \frac{c}{\|g_1\|^2}\langle g_1', g_1\rangle = -c\,\sin^2\varphi = |c| \sin^2\varphi \;\ge 0, \\
# \langle d, g_1\rangle &= \|g_1\|^2\sin^2\varphi \ge 0, \qquad \langle d, g_2\rangle = \|g_2\|^2\sin^2\varphi \ge 0 \qquad (d = g_1' + g_2').
# \end{aligned}
# $$ (eq-05-pcgrad-two)
#
# The last line is what PCGrad is for: by {eq}`eq-05-first-order` the combined step lowers (or, at worst, leaves
# unchanged) *both* losses to first order, where the plain sum $g_1 + g_2$ could raise one of them. When the
# two gradients point in exactly opposite directions ($\sin\varphi = 0$) the step is zero. Without a conflict,
# $d = g_1 + g_2$. With two tasks the random visiting order plays no role. With three or more it does, and the
# guarantee is lost: projecting $g_i^{PC}$ onto the normal plane of $g_k$ can re-create a conflict with a $g_j$ that
# was already dealt with. We check both statements numerically below. (The PCGrad paper also gives a convergence
# result for two tasks with convex, smooth losses; we do not rely on it here.)
#
# ### From scratch, and the library's `pcgrad`
#
# The rule on flat vectors, readable rather than fast: the `if` below synchronises with the device at every
# projection, which the library avoids with `torch.where`.


# %%
def my_pcgrad_parts(grads, generator=None):
    """The projected gradients g_i^PC of (eq-05-pcgrad), one per task. The other tasks
    are visited in random order if a generator is given, else in list order."""
    parts = []
    for i, g_i in enumerate(grads):
        g = g_i.clone()
        others = [j for j in range(len(grads)) if j != i]
        if generator is not None:
            others = [
                others[k] for k in torch.randperm(len(others), generator=generator)
            ]
        for j in others:
            dot = torch.dot(g, grads[j])  # against the ORIGINAL g_j
            if dot < 0:
                g = g - dot / grads[j].dot(grads[j]) * grads[j]
        parts.append(g)
    return parts


def my_pcgrad(grads, generator=None):
    """PCGrad's update direction: the sum of the projected gradients (eq-05-pcgrad)."""
    return sum(my_pcgrad_parts(grads, generator))


# %% [markdown]
# We check it against `unlearnlib.grads.pcgrad` on 400 random pairs of vectors in $\mathbb R^{50}$, in float64, and
# check every line of {eq}`eq-05-pcgrad-two` on the pairs that conflict (about half of them). The check is not
# vacuous: on the conflicting pairs the surgery changes the summed direction by far more than the tolerance.

# %%
gen = torch.Generator().manual_seed(0)
pairs = [
    (
        torch.randn(50, generator=gen, dtype=torch.float64),
        torch.randn(50, generator=gen, dtype=torch.float64),
    )
    for _ in range(400)
]
TOL = 1e-10
n_conflict, changed = 0, 0.0
for g1, g2 in pairs:
    ours, lib = my_pcgrad([g1, g2]), unlearnlib.grads.pcgrad([g1, g2])
    assert torch.allclose(ours, lib, rtol=0, atol=TOL)
    assert torch.allclose(
        my_pcgrad([g1, g2], generator=gen), ours, rtol=0, atol=TOL
    )  # order is irrelevant
    p1, p2 = my_pcgrad_parts([g1, g2])
    if torch.dot(g1, g2) < 0:
        n_conflict += 1
        changed = max(changed, (ours - (g1 + g2)).norm().item())
        s2 = 1 - cosine(g1, g2) ** 2  # sin^2 of the angle
        assert abs(torch.dot(p1, g2)) < TOL and abs(torch.dot(p2, g1)) < TOL
        assert abs(torch.dot(p1, g1) - g1.dot(g1) * s2) < TOL
        assert abs(torch.dot(p1, p2) + torch.dot(g1, g2) * s2) < TOL
        assert (
            abs(torch.dot(ours, g1) - g1.dot(g1) * s2) < TOL
            and abs(torch.dot(ours, g2) - g2.dot(g2) * s2) < TOL
        )
        assert p1.norm() <= g1.norm() and p2.norm() <= g2.norm()  # projections shorten
    else:
        assert torch.equal(lib, g1 + g2)
    assert min(torch.dot(p1, p2), torch.dot(ours, g1), torch.dot(ours, g2)) >= -TOL
assert n_conflict > 100 and changed > 1e6 * TOL
g1, g2 = (
    torch.tensor([1.0, 0.0], dtype=torch.float64),
    torch.tensor([-1.0, 0.1], dtype=torch.float64),
)
assert (
    my_pcgrad([g1, g2]).norm() > 1.5 * (g1 + g2).norm()
)  # nearly cancelling: the sum gets longer
print(
    f"{len(pairs)} random pairs in R^50, {n_conflict} in conflict: "
    f"ours = unlearnlib.grads.pcgrad,\nand every line of (eq-05-pcgrad-two) holds; "
    f"largest change of the sum by the surgery {changed:.2f}"
)

# %% [markdown]
# With three tasks the library visits the others in list order; ours does the same without a generator, and the
# two agree. But the two-task guarantee does not carry over. In $\mathbb R^3$, where random gradients conflict
# often, we count the triples in which a projected $g_i^{PC}$ still conflicts with some original $g_j$, and those in
# which the summed step still raises one of the three losses to first order.

# %%
still, raised = 0, 0
triples = [
    [torch.randn(3, generator=gen, dtype=torch.float64) for _ in range(3)]
    for _ in range(2000)
]
for gs in triples:
    parts = my_pcgrad_parts(gs)
    assert torch.allclose(sum(parts), unlearnlib.grads.pcgrad(gs), rtol=0, atol=TOL)
    still += any(
        torch.dot(parts[i], gs[j]) < -TOL for i in range(3) for j in range(3) if i != j
    )
    raised += any(torch.dot(sum(parts), g) < -TOL for g in gs)
print(
    f"{len(triples)} random triples in R^3: ours = library;\na projected gradient "
    f"still conflicts with an original one in {still}, the summed step raises one "
    f"of the losses in {raised}"
)
assert still > 0 and raised > 0

# %% [markdown]
# ### The forget/retain form, and NegGrad+
#
# For unlearning there are two tasks, forget and retain. The library's `pcgrad` weights them as NegGrad+ does
# ({eq}`eq-02-ngp-direction`): the task gradients are $(1-\beta)\,g_f$ and $\beta\,g_r$. Because $\Pi_u$ does not
# depend on the length of $u$ and is linear in $v$, the weights can be pulled out of the projections. Writing
# $c = \langle g_f, g_r\rangle$,
#
# $$
# d_{PC} = (1-\beta)\Big(g_f - \frac{\min(0, c)}{\|g_r\|^2}\, g_r\Big) + \beta\Big(g_r - \frac{\min(0, c)}{\|g_f\|^2}\, g_f\Big)
# = \begin{cases}
# (1-\beta)\, g_f + \beta\, g_r & c \ge 0, \\[4pt]
# \Big(1-\beta + \beta\,\dfrac{|c|}{\|g_f\|^2}\Big) g_f + \Big(\beta + (1-\beta)\dfrac{|c|}{\|g_r\|^2}\Big) g_r & c < 0 .
# \end{cases}
# $$ (eq-05-pcgrad-fr)
#
# Without a conflict, PCGrad **is** NegGrad+ with the same $\beta$, step for step. With a conflict it is again a
# combination $a_f g_f + a_r g_r$, but *both* weights grow: the retain part loses the component of $g_r$ that
# opposes forgetting (which adds a multiple of $g_f$), and the forget part loses the component that opposes
# retaining (which adds a multiple of $g_r$). By {eq}`eq-05-pcgrad-two` the result lowers both losses to first
# order. Note what this means for unlearning: where NegGrad+'s retain term would partly *undo* the forgetting, the
# PCGrad step does not.
#
# We check {eq}`eq-05-pcgrad-fr` on real gradients of the trained CNN: twenty pairs of a forget and a retain
# mini-batch (32 each) at $\theta_0$, with the library's default $\beta$. Where a pair does not conflict, the PCGrad
# direction must equal the gradient of the NegGrad+ loss $\beta\,\mathrm{CE}_r - (1-\beta)\,\mathrm{CE}_f$, obtained
# by a single backward pass; where it does, it must equal the right-hand side of {eq}`eq-05-pcgrad-fr`.

# %%
BETA = inspect.signature(get_method("pcgrad")).parameters["beta"].default
neg_ce = lambda z, y: -F.cross_entropy(z, y)
g_batches = torch.Generator().manual_seed(1)
n_c, n_nc, pairs0 = 0, 0, []
for _ in range(20):
    fi = torch.randperm(len(task.y_forget), generator=g_batches)[:32].to(device)
    ri = torch.randperm(len(task.y_retain), generator=g_batches)[:32].to(device)
    xf, yf, xr, yr = (
        task.x_forget[fi],
        task.y_forget[fi],
        task.x_retain[ri],
        task.y_retain[ri],
    )
    pairs0.append((xf, yf, xr, yr))  # kept for section 5.6
    g_f, g_r = (
        loss_grad(m0, xf, yf, neg_ce),
        loss_grad(m0, xr, yr),
    )  # two backward passes
    d_pc = unlearnlib.grads.pcgrad([(1 - BETA) * g_f, BETA * g_r])
    c = torch.dot(g_f, g_r)
    if c >= 0:
        n_nc += 1
        params = [p for p in m0.parameters() if p.requires_grad]
        ngp = torch.autograd.grad(
            BETA * F.cross_entropy(m0(xr), yr)
            - (1 - BETA) * F.cross_entropy(m0(xf), yf),
            params,
        )
        assert torch.allclose(d_pc, flatten(ngp), rtol=1e-4, atol=1e-7)
    else:
        n_c += 1
        a_f = 1 - BETA + BETA * c.abs() / g_f.dot(g_f)
        a_r = BETA + (1 - BETA) * c.abs() / g_r.dot(g_r)
        assert torch.allclose(d_pc, a_f * g_f + a_r * g_r, rtol=1e-4, atol=1e-7)
        assert not torch.allclose(
            d_pc, (1 - BETA) * g_f + BETA * g_r, rtol=1e-2, atol=1e-5
        )
print(
    f"at theta_0, 20 mini-batch pairs: {n_nc} without conflict (PCGrad = NegGrad+ "
    f"gradient),\n{n_c} in conflict (PCGrad = eq-05-pcgrad-fr, differs from NegGrad+)"
)
assert n_c > 0 and n_nc > 0

# %% [markdown]
# Even at the trained model, where chapter 04 found the *full* forget and retain gradients aligned, a sizeable share
# of mini-batch pairs conflicts: the batch gradients are noisy estimates, and a surgery method acts on the batch
# gradients it is given. We come back to this when we look at the multiplier along a run.
#
# ## Operating on the forget gradient only
#
# ### The one-sided projection
#
# In unlearning the two tasks are not symmetric. The forget objective is the one we want to make progress on; the
# retain objective is a constraint: it should not get worse. PCGrad also projects $g_r$ and adds it, so it keeps
# *training* on $D_r$. The **one-sided** variant operates on the forget gradient alone:
#
# $$
# d = g_f - \frac{\min\big(0, \langle g_f, g_r\rangle\big)}{\|g_r\|^2}\, g_r .
# $$ (eq-05-one-sided)
#
# This is exactly the rule of A-GEM {cite}`chaudhry2019agem` (Chaudhry et al., arXiv 1812.00420) in continual
# learning, where $g_r$ is the gradient on a memory of past tasks; GEM {cite}`lopezpaz2017gem` (Lopez-Paz & Ranzato,
# arXiv 1706.08840) imposes one such constraint per past task. By {eq}`eq-05-pcgrad-fr`, two-task PCGrad is the sum of
# the two one-sided projections, of $g_f$ against $g_r$ and of $g_r$ against $g_f$.
#
# ### Unilateral surgery as a constrained problem
#
# Zhou et al. {cite}`zhou2025implicit` (arXiv 2510.22124, NeurIPS 2025) state in their abstract that unlearning can
# be posed as optimising the unlearning objective subject to a *bounded increase of the retain loss*, and that
# solving this problem is equivalent to **unilateral gradient surgery** on the unlearning objective. The per-step
# problem and its closed form below are the ones stated in the docstring of the authors' public code (their
# "Proposition 3.2"); the derivation is ours. Per step, look for the direction $d$
# closest to $g_f$ whose first-order retain-loss increase, $-\eta\langle g_r, d\rangle$ by {eq}`eq-05-first-order`,
# is at most $\eta\,\epsilon$:
#
# $$
# \min_{d \in \mathbb R^P}\; \tfrac12 \|d - g_f\|^2 \quad \text{s.t.} \quad \langle g_r, d\rangle \ge -\epsilon .
# $$ (eq-05-qp)
#
# **KKT conditions.** The objective is strictly convex and the constraint is linear, so the problem has exactly
# one solution, and (the constraint being affine) the KKT conditions are necessary and sufficient for it. With the
# Lagrangian
#
# $$
# \mathcal L(d, \lambda) = \tfrac12\|d - g_f\|^2 - \lambda\big(\langle g_r, d\rangle + \epsilon\big), \qquad \lambda \ge 0,
# $$ (eq-05-lagrangian)
#
# they read
#
# $$
# \underbrace{d - g_f - \lambda g_r = 0}_{\text{stationarity}}, \qquad
# \underbrace{\langle g_r, d\rangle \ge -\epsilon}_{\text{primal feasibility}}, \qquad
# \underbrace{\lambda \ge 0}_{\text{dual feasibility}}, \qquad
# \underbrace{\lambda\big(\langle g_r, d\rangle + \epsilon\big) = 0}_{\text{complementary slackness}} .
# $$ (eq-05-kkt)
#
# **Solving them.** Stationarity says the answer is always $d = g_f + \lambda g_r$: the forget gradient plus some
# non-negative amount of the retain gradient. Complementary slackness leaves two cases.
# *Inactive constraint*, $\lambda = 0$: then $d = g_f$, which is feasible iff $\langle g_r, g_f\rangle \ge -\epsilon$.
# *Active constraint*, $\lambda > 0$: then $\langle g_r, g_f + \lambda g_r\rangle = -\epsilon$, so
# $\lambda = (-\langle g_r, g_f\rangle - \epsilon)/\|g_r\|^2$, which is positive iff $\langle g_r, g_f\rangle < -\epsilon$.
# Exactly one case applies for each $(g_f, g_r)$, and both are captured by
#
# $$
# d^* = g_f + \lambda^* g_r, \qquad
# \lambda^* = \max\Big(0,\ \frac{-\langle g_r, g_f\rangle - \epsilon}{\|g_r\|^2}\Big) .
# $$ (eq-05-closed-form)
#
# Geometrically, $d^*$ is the Euclidean projection of $g_f$ onto the half-space
# $H_\epsilon = \{d : \langle g_r, d\rangle \ge -\epsilon\}$: if $g_f$ is already inside, it stays; otherwise it moves
# along the normal $g_r$ of the boundary until it reaches it. Only the forget gradient is operated on, and only as
# much as the constraint requires: hence *unilateral*.
#
# **Special cases.**
#
# - $\epsilon = 0$: $\lambda^* = \max(0, -\langle g_r, g_f\rangle)/\|g_r\|^2$ and $d^*$ is the one-sided projection
#   {eq}`eq-05-one-sided`, i.e. A-GEM.
# - $\epsilon \to \infty$: the constraint never binds, $\lambda^* = 0$ and $d^* = g_f$: gradient ascent.
# - $\epsilon < 0$: every step must *lower* the retain loss to first order, by at least $\eta|\epsilon|$; then
#   $\lambda^* > 0$ even without a conflict.
# - **NegGrad+** is $g_f + \mu\, g_r$ with a fixed $\mu = \beta/(1-\beta)$ (up to the factor $1-\beta$,
#   {eq}`eq-02-ngp-direction`). Unilateral surgery has the same form with the multiplier chosen anew at every step,
#   the smallest one that satisfies the constraint; without a conflict it adds no retain gradient at all.
#
# **The dual**, for chapter 06. Minimising $\mathcal L$ over $d$ gives $d(\lambda) = g_f + \lambda g_r$ and the dual
# function
#
# $$
# q(\lambda) = -\tfrac12\lambda^2\|g_r\|^2 - \lambda\big(\langle g_r, g_f\rangle + \epsilon\big), \qquad
# q'(\lambda) = -\big(\langle g_r, d(\lambda)\rangle + \epsilon\big),
# $$ (eq-05-dual)
#
# a concave parabola whose maximiser over $\lambda \ge 0$ is $\lambda^*$. Its derivative is the constraint slack, a
# quantity that can be *measured* as a change of the retain loss after a step; implicit surgery (chapter 06) climbs
# $q$ with that measurement and saves a backward pass.
#
# **Units.** $\epsilon$ bounds $-\langle g_r, d\rangle$, the first-order retain-loss increase per unit learning rate,
# so it lives on the scale of squared gradient norms of batch-mean losses. It is not scale-free: it changes meaning
# with the loss reduction (mean or sum), the model, and along the run as $\|g_f\|$ grows (section 5.5).
#
# ### From scratch, against a numerical solver and the library
#
# The closed form is two lines. We check it against SciPy's SLSQP solver on the QP {eq}`eq-05-qp` itself, on random
# conflicting pairs in $\mathbb R^{30}$ for several $\epsilon$ (negative, zero, positive), and against
# `unlearnlib.grads.unilateral_surgery`; on each case we also check the KKT conditions {eq}`eq-05-kkt`. Cases without
# a conflict beyond $\epsilon$ must return $g_f$ unchanged with $\lambda^* = 0$.


# %%
def my_unilateral(g_f, g_r, eps=0.0):
    """The closed form (eq-05-closed-form): (d*, lambda*)."""
    lam = torch.clamp((-torch.dot(g_r, g_f) - eps) / torch.dot(g_r, g_r), min=0.0)
    return g_f + lam * g_r, lam


def qp_solve(g_f, g_r, eps):
    """(eq-05-qp) by a general-purpose solver: SLSQP on 1/2 ||d - g_f||^2
    s.t. <g_r, d> + eps >= 0."""
    f, r = g_f.cpu().numpy(), g_r.cpu().numpy()
    res = minimize(
        lambda x: 0.5 * np.sum((x - f) ** 2),
        x0=np.zeros_like(f),
        jac=lambda x: x - f,
        method="SLSQP",
        constraints=[
            {"type": "ineq", "fun": lambda x: r @ x + eps, "jac": lambda x: r}
        ],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert res.success, res.message
    return torch.from_numpy(res.x)


rng = torch.Generator().manual_seed(2)
worst, moved, active, inactive = 0.0, 0.0, 0, 0
for eps in (-0.5, 0.0, 0.5, 2.0):
    for _ in range(10):
        g_f, g_r = (
            torch.randn(30, generator=rng, dtype=torch.float64),
            torch.randn(30, generator=rng, dtype=torch.float64),
        )
        if torch.dot(g_f, g_r) > 0:
            g_f = -g_f  # a conflicting case
        d, lam = my_unilateral(g_f, g_r, eps)
        d_lib, lam_lib = unlearnlib.grads.unilateral_surgery(g_f, g_r, eps)
        d_qp = qp_solve(g_f, g_r, eps)
        worst = max(worst, (d - d_qp).abs().max().item())
        assert torch.allclose(d, d_qp, rtol=0, atol=1e-6)  # = the numerical QP solution
        assert torch.allclose(d, d_lib, rtol=0, atol=1e-12) and torch.isclose(
            lam, lam_lib, rtol=0, atol=1e-12
        )
        slack = torch.dot(g_r, d) + eps
        assert torch.allclose(d - g_f - lam * g_r, torch.zeros_like(d))  # stationarity
        assert (
            slack >= -1e-10 and lam >= 0 and abs(lam * slack) < 1e-10
        )  # feasibility, slackness
        if lam > 0:
            active += 1
            moved = max(moved, (d - g_f).norm().item())
        else:
            inactive += 1
            assert torch.equal(d, g_f) and torch.dot(g_f, g_r) >= -eps
print(
    f"{active + inactive} cases: closed form = SLSQP (largest difference {worst:.1e}) "
    f"= library;\nconstraint active in {active} (the surgery moved g_f by up to "
    f"{moved:.2f}), inactive in {inactive}"
)
assert active > 20 and inactive > 0 and moved > 1e4 * 1e-6

# special cases: eps = 0 is the one-sided projection (A-GEM); eps = inf is GA
g_f, g_r = pairs[0] if torch.dot(*pairs[0]) < 0 else (-pairs[0][0], pairs[0][1])
assert torch.allclose(
    my_unilateral(g_f, g_r, 0.0)[0],
    g_f - torch.dot(g_f, g_r) / g_r.dot(g_r) * g_r,
    atol=1e-12,
)
assert torch.equal(unlearnlib.grads.unilateral_surgery(g_f, g_r, math.inf)[0], g_f)

# %% [markdown]
# ### A picture in two dimensions
#
# In the plane every object of this section can be drawn. The shaded region is the feasible half-space
# $H_\epsilon$; its boundary is the line $\langle g_r, d\rangle = -\epsilon$, perpendicular to $g_r$. The left panel
# has $\epsilon = 0$ (the boundary passes through the origin: one-sided PCGrad), the middle one $\epsilon > 0$ (the
# boundary moves away from $g_r$, less of the forget gradient is removed). The right panel shows two-task PCGrad:
# both gradients projected on each other's normal plane, and their sum.

# %%
g_f2, g_r2 = (
    torch.tensor([-1.6, 1.0], dtype=torch.float64),
    torch.tensor([1.0, 0.35], dtype=torch.float64),
)
assert torch.dot(g_f2, g_r2) < 0
grid = np.linspace(-2.2, 2.2, 300)
X, Y = np.meshgrid(grid, grid)


def arrow(ax, v, color, label, ls="-"):
    ax.annotate(
        "",
        xy=(float(v[0]), float(v[1])),
        xytext=(0, 0),
        arrowprops=dict(arrowstyle="-|>", color=color, lw=2, ls=ls),
    )
    ax.plot([], [], color=color, lw=2, ls=ls, label=label)


fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
for ax, eps in zip(axes[:2], (0.0, 0.6)):
    d2, lam2 = my_unilateral(g_f2, g_r2, eps)
    ax.contourf(
        X,
        Y,
        g_r2[0].item() * X + g_r2[1].item() * Y + eps,
        levels=[0, 1e9],
        colors=["C2"],
        alpha=0.15,
    )
    ax.contour(
        X,
        Y,
        g_r2[0].item() * X + g_r2[1].item() * Y + eps,
        levels=[0],
        colors=["C2"],
        linewidths=1,
    )
    arrow(ax, g_f2, "C3", r"$g_f$ (GA)")
    arrow(ax, g_r2, "C0", r"$g_r$")
    arrow(ax, d2, "k", rf"$d^* = g_f + \lambda^* g_r$, $\lambda^*$ = {lam2:.2f}")
    ax.plot([g_f2[0], d2[0]], [g_f2[1], d2[1]], "k:", lw=1)
    ax.set_title(
        rf"unilateral surgery, $\epsilon$ = {eps:g}: feasible half-space shaded"
    )
for ax in axes:
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-1.2, 2.2)
    ax.set_aspect("equal")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
p_f, p_r = my_pcgrad_parts([g_f2, g_r2])
arrow(axes[2], g_f2, "C3", r"$g_f$")
arrow(axes[2], g_r2, "C0", r"$g_r$")
arrow(axes[2], p_f, "C3", r"$g_f'$ (on the normal plane of $g_r$)", ls="--")
arrow(axes[2], p_r, "C0", r"$g_r'$ (on the normal plane of $g_f$)", ls="--")
arrow(axes[2], p_f + p_r, "k", r"PCGrad: $g_f' + g_r'$")
axes[2].set_title("two-task PCGrad")
for ax in axes:
    ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# In the left panel $d^*$ is orthogonal to $g_r$, which is what "no first-order damage" means; the dotted segment,
# $\lambda^* g_r$, is perpendicular to the boundary, as a Euclidean projection must be. With $\epsilon > 0$ the step
# keeps a small component against $g_r$, the tolerated damage. PCGrad's sum has a positive inner product with both
# original gradients, as {eq}`eq-05-pcgrad-two` says.
#
# ## The explicit method: two backward passes per step
#
# As an unlearning method, each step of explicit surgery
#
# 1. draws a forget batch and a retain batch;
# 2. computes $g_f = \nabla(-\mathrm{CE}_f)$ by one backward pass and $g_r = \nabla \mathrm{CE}_r$ by a second, each
#    flattened to a vector of the $P$ trainable parameters;
# 3. combines them: PCGrad {eq}`eq-05-pcgrad-fr` or unilateral surgery {eq}`eq-05-closed-form`;
# 4. writes the result into the parameters' `.grad` and takes the optimiser step, SGD with momentum and weight
#    decay as for every method of the book (chapter 02).
#
# Step 4 has a consequence that is easy to miss. The constraint of {eq}`eq-05-qp` holds for the direction $d$ that
# the method hands to the optimiser, but SGD with momentum moves the weights along a running sum of past
# directions plus weight decay ({eq}`eq-02-sgd-momentum`). The *actual* step is therefore not guaranteed to satisfy
# the constraint, even to first order. Section 5.5 shows what the retain loss does along real runs, and
# {ref}`ex-05-momentum` isolates the effect of momentum.
#
# Like GA, unilateral surgery iterates over forget batches (the retain set is cycled alongside) and stops by the
# oracle-free rule of chapter 02, checked after every step. PCGrad, like NegGrad+, iterates over retain batches
# with the forget set cycled. Here is the whole method from scratch. It uses the library's `cycle_batches` for the
# batch streams and consumes the random generator in the same order as the library's loop, so the two see the
# same batches.


# %%
def my_surgery_unlearn(
    model0,
    task,
    combine,
    *,
    steps,
    lr,
    batch_size=32,
    seed=0,
    momentum=0.9,
    weight_decay=5e-4,
):
    """Explicit gradient surgery: combine(g_f, g_r) -> d, for `steps` steps. Returns the
    model and the list of the combine's second outputs (e.g. lambda*), if any."""
    model = copy.deepcopy(model0).train()  # never touch the caller's model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    xf, yf, xr, yr = task.x_forget, task.y_forget, task.x_retain, task.y_retain
    forget_stream = cycle_batches(len(yf), batch_size, gen, xf.device)
    retain_stream = cycle_batches(len(yr), batch_size, gen, xr.device)
    extras = []
    for _ in range(steps):
        fi, ri = next(forget_stream), next(retain_stream)
        g_f = flatten(
            torch.autograd.grad(-F.cross_entropy(model(xf[fi]), yf[fi]), params)
        )  # backward 1
        g_r = flatten(
            torch.autograd.grad(F.cross_entropy(model(xr[ri]), yr[ri]), params)
        )  # backward 2
        out = combine(g_f, g_r)
        d, extra = out if isinstance(out, tuple) else (out, None)
        if extra is not None:
            extras.append(extra)
        offset = 0
        for p in params:  # write d into .grad
            p.grad = d[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        opt.step()
    return model.eval(), extras


def host(values):
    """Per-step records (0-d tensors on any device, or floats) as one NumPy array."""
    return np.array([float(v) for v in values])


def max_abs_diff(a, b):
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())
    )


# %% [markdown]
# We run ours and the library's methods for 25 mini-batch steps from $\theta_0$, without the stopping rule, and
# compare every parameter. For unilateral surgery (with the default $\epsilon$ and with $\epsilon = 0$) we also
# compare the multiplier of every step, which the library returns through its `history` argument, and we check that
# the constraint was active on some steps ($\lambda^* > 0$), so that the surgery itself was exercised. Two more
# runs test the special cases at the level of whole methods: `unilateral_surgery` with $\epsilon = \infty$ must be
# the library's GA, and PCGrad must follow NegGrad+ exactly up to the first step with a conflict.

# %%
STEPS, ATOL = 25, 1e-6
defaults = {
    name: {
        k: v.default
        for k, v in inspect.signature(get_method(name)).parameters.items()
        if k in ("epochs", "lr", "eps", "beta", "check_every", "stop_at")
    }
    for name in ("ga", "neggrad_plus", "pcgrad", "unilateral_surgery")
}
for name, kw in defaults.items():
    print(f"{name:19s}", ", ".join(f"{k}={v}" for k, v in kw.items()))
EPS = defaults["unilateral_surgery"]["eps"]
LR_US, LR_PC = defaults["unilateral_surgery"]["lr"], defaults["pcgrad"]["lr"]

lib_runs = {}
for eps in dict.fromkeys((EPS, 0.0)):  # the default, and the one-sided projection
    lams_lib = []
    lib_us = get_method("unilateral_surgery")(
        m0, task, steps=STEPS, stop_at=None, eps=eps, history=lams_lib
    )
    ours_us, lams_ours = my_surgery_unlearn(
        m0, task, lambda gf, gr: my_unilateral(gf, gr, eps), steps=STEPS, lr=LR_US
    )
    lams_lib, lams_ours = host(lams_lib), host(lams_ours)
    lib_runs[eps] = lib_us
    assert max_abs_diff(lib_us, ours_us) < ATOL and max_abs_diff(lib_us, m0) > 10 * ATOL
    assert (
        np.allclose(lams_lib, lams_ours, rtol=1e-4, atol=1e-7)
        and (lams_ours > 0).sum() >= 3
    )
    print(
        f"unilateral surgery, eps = {eps:g}, {STEPS} steps: ours vs library "
        f"{max_abs_diff(lib_us, ours_us):.1e} (parameters moved up to "
        f"{max_abs_diff(lib_us, m0):.1e});\nlambda* > 0 on {(lams_ours > 0).sum()} "
        f"steps, equal to the library's"
    )
lib_us = lib_runs[EPS]

lib_pc = get_method("pcgrad")(m0, task, steps=STEPS, stop_at=None)
ours_pc, _ = my_surgery_unlearn(
    m0,
    task,
    lambda gf, gr: my_pcgrad([(1 - BETA) * gf, BETA * gr]),
    steps=STEPS,
    lr=LR_PC,
)
assert max_abs_diff(lib_pc, ours_pc) < ATOL and max_abs_diff(lib_pc, m0) > 10 * ATOL
print(
    f"PCGrad, {STEPS} steps: ours vs library {max_abs_diff(lib_pc, ours_pc):.1e} "
    f"(parameters moved up to {max_abs_diff(lib_pc, m0):.1e})"
)

# epsilon = infinity is gradient ascent, with the same batches and stopping rule
lib_ga = get_method("ga")(m0, task, steps=STEPS, stop_at=None, lr=LR_US)
lib_inf = get_method("unilateral_surgery")(
    m0, task, steps=STEPS, stop_at=None, eps=math.inf
)
assert max_abs_diff(lib_ga, lib_inf) < ATOL and max_abs_diff(lib_ga, lib_us) > 10 * ATOL
print(
    f"unilateral surgery with eps = inf vs GA: {max_abs_diff(lib_ga, lib_inf):.1e}; "
    f"with the default eps = {EPS:g} vs GA: {max_abs_diff(lib_ga, lib_us):.1e}"
)

# PCGrad = NegGrad+ (same beta) up to the first step whose two batches conflict, and not
# after it. The check needs a batch stream whose first pair does not conflict: we take
# the first stream seed with that property.
for stream_seed in range(10):
    _, conflict_flags = my_surgery_unlearn(
        m0,
        task,
        lambda gf, gr: (
            my_pcgrad([(1 - BETA) * gf, BETA * gr]),
            bool(torch.dot(gf, gr) < 0),
        ),
        steps=STEPS,
        lr=LR_PC,
        seed=stream_seed,
    )
    if True in conflict_flags and conflict_flags.index(True) >= 1:
        break
first = conflict_flags.index(True)
assert first >= 1
kw = dict(stop_at=None, seed=stream_seed, lr=LR_PC, beta=BETA)
same = max_abs_diff(
    get_method("pcgrad")(m0, task, steps=first, **kw),
    get_method("neggrad_plus")(m0, task, steps=first, **kw),
)
after = max_abs_diff(
    get_method("pcgrad")(m0, task, steps=first + 1, **kw),
    get_method("neggrad_plus")(m0, task, steps=first + 1, **kw),
)
print(
    f"batch stream {stream_seed}: the first conflicting pair comes at step {first + 1};"
    f"\nPCGrad vs NegGrad+ after {first} steps {same:.1e}, after {first + 1} steps "
    f"{after:.1e}"
)
# Before the conflict the two differ by rounding only (their steps sum the same terms in
# a different order); at the conflicting step PCGrad adds a projection, far above the
# float32 rounding of parameters of size 0.1 (about 1e-8).
assert same < ATOL and after > 100 * max(same, 1e-8)

# %% [markdown]
# All comparisons pass with a tolerance of $10^{-6}$ in float32 while the parameters moved by two to four orders of
# magnitude more. The last two checks are the special cases at work: with $\epsilon = \infty$ the method is GA to
# the last bit, and PCGrad leaves NegGrad+'s trajectory exactly at the first step whose batches conflict.
#
# ## The experiment
#
# ### Setup and hyperparameters
#
# The defaults printed above were chosen on the held-out seeds 100-104 by the oracle-free rule of chapter 02:
# the highest mean retain accuracy among the settings that reach the forget target in class-wise forgetting of
# digit 3 on every held-out seed. The sweeps take several CPU-minutes and are not re-run here; their tables are in
# the docstring of `unlearnlib.methods.surgery`. In short:
#
# - **PCGrad**: $\beta = 0.99$ at learning rate $0.01$ (retain accuracy 99.8 % on the held-out seeds; at NegGrad+'s
#   $\beta = 0.97$, 99.2 %). On the same grid NegGrad+ *misses* the forget target at $\beta = 0.99$ with this
#   learning rate; PCGrad reaches it because a conflict raises the weight of $g_f$ ({eq}`eq-05-pcgrad-fr`). The
#   same rule applied to NegGrad+ on this grid picks learning rate $0.02$ with $\beta = 0.99$, not the library's
#   default of chapter 02.
# - **Unilateral surgery**: learning rate $2\cdot 10^{-4}$ (GA's), the stopping rule checked after every step (as
#   for GA; this beat one check per pass at every setting), and, the surprise, $\epsilon = -1$: a *negative*
#   tolerance, which demands a first-order retain-loss *decrease* at every step. Retain accuracy on the held-out
#   seeds rises steadily from $\epsilon = 1$ (96.7 %) through $\epsilon = 0$ (98.3 %) to $\epsilon = -1$ (99.8 %),
#   and falls again below it ($\epsilon = -3$: 95.8 %). We come back to why in section 5.6.
#
# To compare fairly we add two rows: NegGrad+ with the setting the same rule picks for it on PCGrad's grid
# (`neggrad_plus b.99`), and PCGrad with NegGrad+'s library defaults (`pcgrad b.97`), the clean ablation of
# the projection. For unilateral surgery we add $\epsilon = 0$ (one-sided PCGrad, A-GEM) and $\epsilon = 1$ (more
# tolerant, closer to GA). All rows run over the profile's seeds, in class-wise forgetting of digit 3 and random
# forgetting of 10 %. Along the runs, small hooks record:
#
# - the multiplier $\lambda^*$ of every unilateral-surgery step and $\langle g_f, g_r\rangle$ of every PCGrad step,
#   through the methods' `history` arguments;
# - in class-wise forgetting, the retain loss after every step on a fixed probe of 256 retain samples. The conflict
#   tracker of chapter 04 (`unlearnlib.diagnostics.ConflictTracker`) records this too, together with full-set
#   gradients; here we need only the loss, so one forward pass per step suffices (a tracker record costs about as
#   much as a few unlearning steps).


# %%
class RetainLossProbe:
    """post_step hook: the retain cross-entropy on a fixed probe after every step, kept
    on the device."""

    def __init__(self, task, model0, size=256, seed=0):
        pos = torch.randperm(
            len(task.y_retain), generator=torch.Generator().manual_seed(seed)
        )[:size]
        pos = pos.to(task.y_retain.device)
        self.x, self.y = task.x_retain[pos], task.y_retain[pos]
        self.values = [self.loss(model0)]  # the value at theta_0 comes first

    def loss(self, model):
        with torch.no_grad():
            return F.cross_entropy(model(self.x), self.y)

    def __call__(self, model, opt):
        self.values.append(self.loss(model))

    @property
    def curve(self):
        return torch.stack(self.values).cpu().numpy()


NGP_SAME_GRID = {
    "lr": 0.02,
    "beta": 0.99,
}  # the rule's pick for NegGrad+ on PCGrad's grid (held-out seeds)
NGP_DEFAULT = {
    k: inspect.signature(get_method("neggrad_plus")).parameters[k].default
    for k in ("lr", "beta")
}
EPS_ROWS = (0.0, 1.0)
PROBED = ("ga", "neggrad_plus", "pcgrad", "unilateral_surgery", "unilateral eps=0")
probes, lambdas, dots = {}, {}, {}


def recorded(label, scenario, method, extra=None):
    """A compare_methods variant whose runs record lambda* (unilateral surgery),
    <g_f, g_r> (PCGrad) and, for the labels in PROBED and in class-wise forgetting, the
    probe retain loss."""

    def kwargs(t, seed):
        kw = dict(extra or {})
        if scenario == "class" and label in PROBED:
            kw["post_step"] = probes.setdefault(
                (label, seed),
                RetainLossProbe(t, original_model(data, cfg, seed=seed, device=device)),
            )
        if method == "unilateral_surgery":
            kw["history"] = lambdas.setdefault((scenario, label, seed), [])
        if method == "pcgrad":
            kw["history"] = dots.setdefault((scenario, label, seed), [])
        return kw

    return method, kwargs


def variants(scenario):
    v = {
        "original": None,
        "ga": recorded("ga", scenario, "ga"),
        "neggrad_plus": recorded("neggrad_plus", scenario, "neggrad_plus"),
    }
    if scenario == "class":
        v["neggrad_plus b.99"] = ("neggrad_plus", NGP_SAME_GRID)
    v["pcgrad"] = recorded("pcgrad", scenario, "pcgrad")
    if scenario == "class":
        v["pcgrad b.97"] = recorded("pcgrad b.97", scenario, "pcgrad", NGP_DEFAULT)
    v["unilateral_surgery"] = recorded(
        "unilateral_surgery", scenario, "unilateral_surgery"
    )
    if scenario == "class":
        v.update(
            {
                f"unilateral eps={e:g}": recorded(
                    f"unilateral eps={e:g}", scenario, "unilateral_surgery", {"eps": e}
                )
                for e in EPS_ROWS
            }
        )
        v["unilateral_surgery_rl"] = "unilateral_surgery_rl"  # paper's setting, below
    return v


t_start = time.perf_counter()
cmp = {
    sc: compare_methods(
        variants(sc),
        sc,
        seeds=SEEDS,
        forget_class=FORGET_CLASS,
        forget_fraction=0.1,
        progress=False,
    )
    for sc in ("class", "random")
}
print(f"both scenarios, seeds {SEEDS}: {time.perf_counter() - t_start:.1f} s, hooks")
for sc, c in cmp.items():
    title = (
        f"class-wise: forget digit {FORGET_CLASS}"
        if sc == "class"
        else "random: forget 10 % of D"
    )
    print(f"== {title} (mean ± 95 % CI over seeds {SEEDS}; first row: retrain oracle)")
    print(c.table())
    print("steps per seed:")
    for m in c.methods[1:]:
        print(f"  {m:20s} {c.per_seed(m, 'steps').astype(int).tolist()}")
    print()

# %%
for sc, c in cmp.items():
    fig = c.plot(
        title=(
            f"Class-wise forgetting of digit {FORGET_CLASS}"
            if sc == "class"
            else "Random forgetting of 10 % of the training set"
        )
        + f" ({profile.dataset}, {len(SEEDS)} seeds; dashed: retrain oracle)"
    )
    plt.show()

# %% [markdown]
# ### What the numbers say
#
# Each statement with its assert, class-wise forgetting first. The `time_s` column is wall-clock time on whatever
# machine runs the notebook and includes the hooks; section 5.7 measures the cost properly.

# %% tags=["hide-input"]
cc, cr = cmp["class"], cmp["random"]
gap = {m: cc.per_seed(m, "gap") for m in cc.methods}
ci = lambda c, m: c.ci95(m, "gap")
print("class-wise, Avg. Gap per seed:")
for m, v in gap.items():
    print(f"  {m:20s} {np.round(v, 2).tolist()}")

# 1. Doing nothing is far from the oracle, which forgets the class completely.
assert cc.reference["UA"] > 95 and cc.mean("original", "gap") > 40
# 2. The papers' claim against GA holds here: PCGrad is closer to the oracle than GA on
#    every seed (by a factor of five or more), and unilateral surgery on average. GA's
#    gap varies most from seed to seed, so the per-seed comparison is made only where
#    the margin dwarfs that spread.
assert (gap["pcgrad"] < gap["ga"] / 5).all()
for m in ("pcgrad", "unilateral_surgery"):
    assert cc.mean(m, "gap") < cc.mean("ga", "gap"), m
# 3. The negative tolerance beats eps = 0 on every seed (paired: same seed, same
#    batches).
assert (gap["unilateral_surgery"] < gap["unilateral eps=0"]).all()
# 4. NegGrad+ beats unilateral surgery on every seed, with its library default and with
#    the setting the rule picks.
for m in ("neggrad_plus", "neggrad_plus b.99"):
    assert (gap[m] < gap["unilateral_surgery"]).all(), m
# 5. PCGrad with its tuned beta is within the noise of NegGrad+, with NegGrad+'s library
#    default and with the setting the same rule picks on the same grid.
for m in ("neggrad_plus", "neggrad_plus b.99"):
    diff = abs(cc.mean("pcgrad", "gap") - cc.mean(m, "gap"))
    assert diff < ci(cc, "pcgrad") + ci(cc, m), m
# 6. At NegGrad+'s own hyperparameters, PCGrad forgets in no more steps on every seed
#    (conflicts raise its forget weight, eq-05-pcgrad-fr), and its gap is within the
#    noise of NegGrad+'s.
steps_pc97 = cc.per_seed("pcgrad b.97", "steps")
assert (steps_pc97 <= cc.per_seed("neggrad_plus", "steps")).all()
diff = abs(cc.mean("pcgrad b.97", "gap") - cc.mean("neggrad_plus", "gap"))
assert diff < ci(cc, "pcgrad b.97") + ci(cc, "neggrad_plus")
# 7. Every surgery row forgets the class: the stopping rule halts a run at chance-level
#    forget accuracy (10 %), so a mean UA of at least 90 holds whenever the rule stops
#    the runs. And every row keeps a mean RA of at least 90.
for m in ("pcgrad", "unilateral_surgery", "unilateral eps=0", "unilateral eps=1"):
    assert cc.mean(m, "UA") >= 90 and cc.mean(m, "RA") >= 90, m

# %% [markdown]
# Random forgetting of 10 %.

# %% tags=["hide-input"]
print("random, mean Avg. Gap:")
for m in cr.methods:
    print(f"  {m:20s} {cr.mean(m, 'gap'):.2f} ± {ci(cr, m):.2f}")
# 8. As in chapter 02, every method is within a few points of the oracle, and of doing
#    nothing.
assert all(cr.mean(m, "gap") < 3 for m in cr.methods)
# 9. No surgery method separates from GA beyond the noise of three seeds.
for m in ("pcgrad", "unilateral_surgery"):
    assert abs(cr.mean(m, "gap") - cr.mean("ga", "gap")) < ci(cr, m) + ci(cr, "ga"), m
# 10. GA and unilateral surgery never reach their target (the model's test accuracy) and
#     run their whole budget.
n_f_steps = math.ceil(round(0.1 * len(data.y_train)) / 32)
for m in ("ga", "unilateral_surgery"):
    budget = inspect.signature(get_method(m)).parameters["epochs"].default * n_f_steps
    assert (cr.per_seed(m, "steps") == budget).all(), m

# %% [markdown]
# - **Against GA, the papers' claim holds on our data.** PCGrad is closer to the retrained model than GA in
#   class-wise forgetting on every seed, by a wide margin, and unilateral surgery is closer on average. GA's gap
#   varies strongly from seed to seed (it collapses on some), so three seeds support no finer ranking against it.
#   Among the tolerances, the default $\epsilon = -1$ beats $\epsilon = 0$ (one-sided PCGrad) on every seed, as the
#   held-out sweep did.
# - **Against NegGrad+, it does not.** NegGrad+ beats unilateral surgery on every seed. PCGrad with its tuned
#   $\beta$ is within the seed noise of NegGrad+, with NegGrad+'s library default and with the setting the same rule
#   picks for it on the same grid. At equal hyperparameters, PCGrad forgets in no more steps than NegGrad+: a
#   conflict raises the weight of $g_f$; its gap is within the noise of NegGrad+'s. On digits, the projection adds
#   nothing that a well-chosen fixed weight does not already give.
# - **Random forgetting** does not separate any method from GA or from doing nothing (chapter 02 explains why).
#
# ### The paper's classification setting
#
# The rows above run unilateral surgery in the book's form: the forget objective is gradient ascent, $-\mathrm{CE}_f$,
# and the tolerance is the one the held-out rule picked, $\epsilon = -1$. The official classification code of
# arXiv 2510.22124 makes three other choices. It fits $D_f$ to random labels (the objective of chapter 02's
# `random_label`, with labels redrawn at every step among the other classes), it keeps a tolerance
# $\epsilon \ge 0$, and after the surgery it clips the norm of the update direction to 1. The library registers
# this setting as `unilateral_surgery_rl` ($\epsilon = 0$ by default, and a negative $\epsilon$ is refused), with
# the learning rate that the same rule picks for it on the held-out seeds ($10^{-3}$ among $3\cdot10^{-4}$,
# $10^{-3}$ and $3\cdot10^{-3}$; the table is in `unlearnlib.methods.surgery`). It ran in the class-wise
# experiment above, from the same original models against the same oracles, so each seed gives one paired
# difference. We compare it with the book's form and with the book's objective at the paper's tolerance
# (`unilateral eps=0`).

# %% tags=["hide-input"]
RL = "unilateral_surgery_rl"
print(
    RL + ":",
    ", ".join(
        f"{k}={p.default}"
        for k, p in inspect.signature(get_method(RL)).parameters.items()
        if p.default is not inspect.Parameter.empty
    ),
)
for b in ("unilateral_surgery", "unilateral eps=0"):
    print(f"{RL} − {b} (mean ± s.e. of the per-seed differences):")
    for key in ("gap", "RA", "TA", "steps"):
        d, se = cc.paired(RL, b, key)
        print(f"  {key:5s} {d:+7.2f} ± {se:.2f}")
# Claims on the paired differences over seeds: by more than two standard errors.
diff = lambda b, key: cc.paired(RL, b, key)[0]
margin = lambda b, key: 2 * cc.paired(RL, b, key)[1]
# 11. The paper's setting forgets the class (the stopping rule halts it at chance).
assert cc.mean(RL, "UA") >= 90
# 12. On digits it keeps less than the book's form: a larger gap, a lower retain
#     accuracy.
assert diff("unilateral_surgery", "gap") > margin("unilateral_surgery", "gap")
assert diff("unilateral_surgery", "RA") < -margin("unilateral_surgery", "RA")
# 13. Against the book's objective at the same tolerance (eps = 0) it forgets in fewer
#     steps.
assert diff("unilateral eps=0", "steps") < -margin("unilateral eps=0", "steps")

# %% [markdown]
# - **The paper's setting forgets faster.** Fitting random labels with a capped step and a larger learning rate
#   reaches the forget target in fewer steps than gradient ascent at the same tolerance, by more than two
#   standard errors of the per-seed differences.
# - **It keeps less than the book's form.** Against `unilateral_surgery` ($\epsilon = -1$) its gap is larger and
#   its retain accuracy lower, both by more than two standard errors. Against the book's objective at the same
#   $\epsilon = 0$, the differences in gap and retain accuracy are printed above and are not asserted: they are
#   several times smaller, and whether three seeds separate them depends on the machine's arithmetic. Most of
#   what the book's form gains over the paper's setting on digits is therefore the negative tolerance of
#   section 5.6, not the forget objective.
#
# The official settings were chosen for a ResNet-18 on CIFAR-10, so none of this is a statement about the
# paper's results. It is a statement about the two forms on our data.
#
# ### The multiplier and the conflicts along a run
#
# The histories tell how often the surgery actually operated. For PCGrad, a step was operated on when
# $\langle g_f, g_r\rangle < 0$ for its two batches. For unilateral surgery, when $\lambda^* > 0$. We split every
# run into thirds.


# %%
def thirds(values, test):
    return [float(np.mean(test(part))) for part in np.array_split(values, 3)]


lam = {k: host(v) for k, v in lambdas.items()}
dot = {k: host(v) for k, v in dots.items()}
print("share of steps operated on, by third of the run; median lambda* (default eps)")
for s in SEEDS:
    shares = {
        "PCGrad": thirds(dot["class", "pcgrad", s], lambda x: x < 0),
        "eps=0": thirds(lam["class", "unilateral eps=0", s], lambda x: x > 0),
        "eps=1": thirds(lam["class", "unilateral eps=1", s], lambda x: x > 0),
    }
    print(
        f"seed {s}: "
        + ", ".join(f"{k} {np.round(v, 2).tolist()}" for k, v in shares.items())
        + f"\n{'':8s}median lambda* at eps={EPS:g}: class "
        f"{np.median(lam['class', 'unilateral_surgery', s]):.0f}, "
        f"random {np.median(lam['random', 'unilateral_surgery', s]):.0f}; active on "
        f"{np.mean(lam['class', 'unilateral_surgery', s] > 0):.0%} and "
        f"{np.mean(lam['random', 'unilateral_surgery', s] > 0):.0%} of the steps"
    )

fig, axes = plt.subplots(1, 3, figsize=(16, 4))
for s in SEEDS:
    axes[0].plot(lam["class", "unilateral eps=0", s], lw=1, label=f"eps = 0, seed {s}")
    axes[1].plot(
        lam["class", "unilateral_surgery", s], lw=1, label=f"eps = {EPS:g}, seed {s}"
    )
    axes[2].plot(
        np.cumsum(dot["class", "pcgrad", s] < 0)
        / np.arange(1, len(dot["class", "pcgrad", s]) + 1),
        lw=1,
        label=f"seed {s}",
    )
axes[0].set_yscale("symlog", linthresh=0.1)
axes[1].set_yscale("log")
for ax, title in zip(
    axes,
    (
        r"$\lambda^*$ along unilateral surgery, $\epsilon = 0$ (A-GEM)",
        rf"$\lambda^*$ along unilateral surgery, $\epsilon = {EPS:g}$ (default)",
        "PCGrad: running share of conflicting steps",
    ),
):
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
axes[0].set_ylabel(r"$\lambda^*$")
fig.tight_layout()
plt.show()

for s in SEEDS:
    pc, a0 = (
        thirds(dot["class", "pcgrad", s], lambda x: x < 0),
        thirds(lam["class", "unilateral eps=0", s], lambda x: x > 0),
    )
    # 11. Batch conflicts are common from the start, and by the last third of every run
    #     nearly every step conflicts.
    assert pc[0] > 0.3 and pc[2] > 0.9 and pc[0] < pc[2]
    assert 0 < a0[0] < a0[2] and a0[2] > 0.9
    # 12. With eps < 0 the constraint is active unless <g_r, g_f> > |eps|, which a batch
    #     pair rarely reaches: active on nine steps in ten or more, and lambda* is
    #     large: the retain term dominates.
    for sc in ("class", "random"):
        lam_us = lam[sc, "unilateral_surgery", s]
        assert np.mean(lam_us > 0) > 0.9 and np.median(lam_us) > 10
    # 13. eps = 1 tolerates the early conflicts: lambda* = 0 throughout the first third.
    assert thirds(lam["class", "unilateral eps=1", s], lambda x: x > 0)[0] == 0

# %% [markdown]
# With $\epsilon = 0$ the surgery is rare at the start and constant at the end. That is chapter 04's picture
# again, seen through mini-batches: the conflict grows along the run. PCGrad operates on a large share of its steps (a
# third or more) from the start. Its retain batches and forget batches are drawn independently, and their noisy gradients disagree often
# even at $\theta_0$ (section 5.2). With $\epsilon = 1$ nothing happens in the first third: the tolerance absorbs
# the small early conflicts. With the default $\epsilon = -1$ the constraint binds on nearly every step, with a median
# multiplier in the tens to hundreds; section 5.6 explains why.
#
# ### The retain loss, step by step
#
# The constraint {eq}`eq-05-qp` bounds the first-order change of the retain loss *of the step's own batch*. Does the
# retain loss, measured on the fixed probe, behave accordingly?

# %%
curve = {k: v.curve for k, v in probes.items()}
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for m in PROBED:
    axes[0].plot(curve[m, SEEDS[0]], lw=1.2, label=m)
axes[0].set_yscale("log")
axes[0].set_xlabel("step")
axes[0].set_ylabel("retain CE on the probe (log scale)")
axes[0].set_title(f"Retain loss along each run (class-wise, seed {SEEDS[0]})")
axes[0].legend(fontsize=8)
for m in PROBED:
    jumps = np.concatenate([np.diff(curve[m, s]) for s in SEEDS])
    axes[1].hist(
        jumps,
        bins=np.linspace(-0.02, 0.05, 71),
        histtype="step",
        lw=1.2,
        label=m,
        log=True,
    )
axes[1].set_xlabel("change of the probe retain loss in one step")
axes[1].set_ylabel("number of steps (all seeds, log scale)")
axes[1].set_title("Per-step retain-loss changes")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

for m in PROBED:
    end = [round(float(curve[m, s][-1]), 3) for s in SEEDS]
    up = [round(float(np.mean(np.diff(curve[m, s]) > 0)), 2) for s in SEEDS]
    big = [round(float(np.diff(curve[m, s]).max()), 4) for s in SEEDS]
    print(
        f"{m:19s} probe loss at theta_0 "
        f"{np.mean([curve[m, s][0] for s in SEEDS]):.4f}, "
        f"at the stop {end}\n{'':20s}share of steps raising it "
        f"{up}; largest rise {big}"
    )

for s in SEEDS:
    end = {m: curve[m, s][-1] for m in PROBED}
    jump = {m: np.diff(curve[m, s]).max() for m in PROBED}
    # 14. When they stop, both unilateral variants have raised the retain loss less than
    #     GA; eps = -1 less than eps = 0.
    assert end["unilateral_surgery"] < end["unilateral eps=0"] < end["ga"]
    # 15. GA's largest single-step rise exceeds that of every surgery method.
    assert all(
        jump["ga"] > jump[m]
        for m in ("pcgrad", "unilateral_surgery", "unilateral eps=0")
    )
    # 16. Yet the probe loss rises on a large share of the steps of every method, at
    #     least a quarter (with 100 or more steps per run the binomial error of a share
    #     is below 0.05), including eps = -1, whose constraint demands a first-order
    #     decrease of the batch's retain loss at every step.
    assert all(np.mean(np.diff(curve[m, s]) > 0) > 0.25 for m in PROBED)

# %% [markdown]
# The surgery does protect the retain set. GA's retain loss climbs by two orders of magnitude before it stops.
# Its worst steps, at the collapse, are much larger than any surgery step. Unilateral surgery ends lower, and the
# default $\epsilon = -1$ lower than $\epsilon = 0$. But the protection is statistical, not step by step. On a large
# share of the steps of *every* method (a quarter or more) the probe loss goes up, even when the
# method's constraint promises a decrease.
# Three reasons, each visible in the derivation:
#
# 1. **The constraint is about one batch.** $g_r$ is the gradient of 32 retain samples. A direction orthogonal to
#    it, or even one that lowers that batch's loss, can raise the loss of other retain samples: the probe is not
#    the batch.
# 2. **It is first order.** Near a minimum of the retain loss, the second-order term of the change is positive for
#    every direction (section 5.6).
# 3. **The optimiser changes the step.** Momentum adds past directions and weight decay pulls on every weight
#    ({eq}`eq-02-sgd-momentum`). The constraint holds for the direction handed to SGD, not for the step SGD takes.
#    {ref}`ex-05-momentum` measures this.
#
# ## Why the tolerance came out negative
#
# The held-out sweep preferred $\epsilon = -1$ to the textbook $\epsilon = 0$. Two facts about a *trained* model explain
# it, and we can check both at $\theta_0$ on one of the conflicting mini-batch pairs of section 5.2, in float64, with
# `unlearnlib.diagnostics.loss_change`. That function evaluates the batch's retain loss exactly after a step
# $\theta - \eta d$ and compares it with the first-order prediction $-\eta\langle g_r, d\rangle$.
#
# **Curvature.** $\theta_0$ is close to a minimum of the retain loss, where the Hessian $H_r$ is positive
# semi-definite. By Taylor's theorem,
#
# $$
# L_r(\theta - \eta d) - L_r(\theta) = -\eta \langle g_r, d\rangle + \tfrac12 \eta^2\, d^\top H_r\, d + O(\eta^3) ,
# $$ (eq-05-second-order)
#
# so a direction with $\langle g_r, d\rangle = 0$, which is what $\epsilon = 0$ produces whenever it is active, still
# raises the retain loss at second order. A negative $\epsilon$ buys a first-order decrease of $\eta|\epsilon|$ that
# pays for the curvature term while $\eta$ is small.
#
# **Scale.** At a trained model the retain gradient is tiny: the retain batch is fit almost perfectly. With
# $\epsilon < 0$ the multiplier is $\lambda^* \approx (|\epsilon| - \langle g_r, g_f\rangle)/\|g_r\|^2$, so the
# retain part $\lambda^* g_r$ has length about $|\epsilon|/\|g_r\|$, large when $\|g_r\|$ is small. The step with
# $\epsilon = -1$ is then mostly a retain fine-tuning step, normalised in an unusual way, plus a little of $g_f$: a
# NegGrad+ whose weight adapts to $1/\|g_r\|^2$. This is not the "minimal surgery" the problem was posed for, and
# it shows how strongly the meaning of $\epsilon$ depends on the scale of the gradients.

# %%
neg_ce64 = lambda z, y: -F.cross_entropy(z, y)
m64 = copy.deepcopy(m0).double()
ratios = []
for xf, yf, xr, yr in pairs0:
    g_f64, g_r64 = (
        loss_grad(m64, xf.double(), yf, neg_ce64),
        loss_grad(m64, xr.double(), yr),
    )
    _, lam_ = unlearnlib.grads.unilateral_surgery(g_f64, g_r64, EPS)
    ratios.append(((lam_ * g_r64).norm() / g_f64.norm()).item())
print(
    f"eps = {EPS:g} at theta_0, 20 mini-batch pairs: ||lambda* g_r|| / ||g_f|| has "
    f"median {np.median(ratios):.0f} (range {min(ratios):.0f} to {max(ratios):.0f})"
)
assert min(ratios) > 1 and np.median(ratios) > 10  # the retain term dominates the step

xf, yf, xr, yr = next(
    p
    for p in pairs0
    if torch.dot(loss_grad(m0, p[0], p[1], neg_ce), loss_grad(m0, p[2], p[3])) < 0
)
xf, xr = xf.double(), xr.double()
g_f64, g_r64 = loss_grad(m64, xf, yf, neg_ce64), loss_grad(m64, xr, yr)
etas = torch.logspace(-4, -2, 5, dtype=torch.float64, device=device)
rows_lc = {}
for label, d in (
    ("GA (d = g_f)", g_f64),
    ("eps = 0", my_unilateral(g_f64, g_r64, 0.0)[0]),
    (f"eps = {EPS:g}", my_unilateral(g_f64, g_r64, EPS)[0]),
):
    measured, predicted = loss_change(m64, xr, yr, d, etas)
    rows_lc[label] = (measured.cpu().numpy(), predicted.cpu().numpy(), d.norm().item())
print(
    f"a conflicting pair at theta_0: <g_f, g_r> = {torch.dot(g_f64, g_r64):.2e}, "
    f"||g_f|| = {g_f64.norm():.3f}, ||g_r|| = {g_r64.norm():.3f}"
)
print(
    "change of this retain batch's loss after theta - eta d, for eta = "
    + ", ".join(f"{e:.0e}" for e in etas)
)
for label, (meas, pred, norm) in rows_lc.items():
    print(
        f"  {label:12s} ||d|| = {norm:7.3f}  measured "
        + " ".join(f"{v:+.2e}" for v in meas)
        + "\n  "
        + " " * 30
        + "predicted "
        + " ".join(f"{v:+.2e}" for v in pred)
    )

meas0, pred0, _ = rows_lc["eps = 0"]
measE, predE, _ = rows_lc[f"eps = {EPS:g}"]
measG, predG, _ = rows_lc["GA (d = g_f)"]
# GA raises this batch's retain loss at first order; eps = 0 removes the first-order
# term exactly ...
assert (predG > 0).all() and np.allclose(measG[:2], predG[:2], rtol=0.05)
assert np.abs(pred0).max() < 1e-12 * np.abs(predG).max()
# ... but the loss still rises, at second order: ten times the step, a hundred times the
# rise
assert (meas0 > 0).all() and 80 < meas0[2] / meas0[0] < 120
# eps < 0 gives the promised first-order decrease, -eta |eps|, for small steps
assert np.allclose(predE, -etas.cpu().numpy() * abs(EPS)) and np.allclose(
    measE[0], predE[0], rtol=0.1
)
assert measE[-1] > 0  # ... and overshoots at the largest step

# %% [markdown]
# On this batch pair GA's direction raises the retain loss at first order, as a conflict means. The one-sided
# projection removes the first-order term exactly (the prediction is zero to rounding), yet the measured change
# is positive and grows with the square of the step: ten times the step, a hundred times the rise. With
# $\epsilon = -1$ the direction is many times longer than $g_f$. For small steps it lowers the batch's retain loss
# by $\eta|\epsilon|$, as promised. For the largest step shown it overshoots and the loss rises. That step is
# within reach: for a constant direction, momentum 0.9 multiplies the step by up to $1/(1 - 0.9) = 10$.
#
# ## What it costs
#
# **Backward passes.** GA back-propagates once per step. NegGrad+ runs two forward passes and back-propagates
# *once*, through the sum of both losses. PCGrad and unilateral surgery need $g_f$ and $g_r$ as separate vectors:
# two forward and two backward passes, then $O(P)$ work to flatten, take two or three inner products, combine,
# and write the result back. Memory: two extra flat copies of the gradient. We count the backward passes by
# wrapping the two entry points of autograd, `torch.autograd.backward` (behind `loss.backward()`) and
# `torch.autograd.grad`, while each method takes ten steps.


# %%
def backward_passes_per_step(name, steps=10):
    with (
        mock.patch.object(
            torch.autograd, "backward", wraps=torch.autograd.backward
        ) as b,
        mock.patch.object(torch.autograd, "grad", wraps=torch.autograd.grad) as g,
    ):
        get_method(name)(m0, task, steps=steps, stop_at=None)
    return (b.call_count + g.call_count) / steps


COST = ("ga", "neggrad_plus", "pcgrad", "unilateral_surgery")
passes = {m: backward_passes_per_step(m) for m in COST}
print("backward passes per step: " + ", ".join(f"{m} {v:g}" for m, v in passes.items()))
assert passes == {"ga": 1, "neggrad_plus": 1, "pcgrad": 2, "unilateral_surgery": 2}

# %% [markdown]
# **Time.** Time per step, relative to a GA step on the same batches and model, measured as the repository's
# step-cost benchmark (`python -m unlearnlib.bench --step-cost`) measures it, with `unlearnlib.bench.step_times`:
# the *marginal* time between runs of 4 and 24 steps, so that copying the model and building the optimiser cancel,
# the methods timed in turn, three rounds, and each ratio taken against GA's time in the same round. This
# machine's timing depends on what else it is doing, so we print it and assert nothing.

# %%
times = step_times(COST, m0, task, batch_size=32, budgets=(4, 24), rounds=3)
print("time per step:")
for m, t in times.items():
    ratio = np.median(t / times["ga"])
    print(f"  {m:20s} {1e3 * np.median(t):.1f} ms ({ratio:.2f}x GA)")

# %% [markdown]
# From the count one expects a surgery step to cost about two GA steps, about as much as a NegGrad+ step. The
# flattening and the inner products are $O(P)$, small next to a backward pass. The repository tracks a target of
# at most 2.5 GA steps for both methods with its step-cost benchmark; the figures it measured on a CPU (about
# 2 GA steps for both, within the target) are in `benchmarks/`. Per *run* the step counts of section 5.5 matter too. Unilateral surgery stops after about
# as many steps as GA, so a run costs about twice as much. PCGrad, like NegGrad+, iterates over retain batches and
# takes more steps than GA:

# %%
steps_c = {m: cc.per_seed(m, "steps") for m in ("ga", "pcgrad", "unilateral_surgery")}
print("class-wise steps per seed:")
for m, v in steps_c.items():
    print(f"  {m:20s} {v.astype(int).tolist()}")
assert (np.abs(steps_c["unilateral_surgery"] / steps_c["ga"] - 1) < 0.25).all()
assert (steps_c["pcgrad"] > steps_c["ga"]).all()

# %% [markdown]
# Chapter 06 removes one of the two backward passes.

# %% [markdown]
# ### At the tuned values, over ten seeds
#
# The hyperparameters above were chosen by this chapter's rule on held-out seeds. Chapter 12 re-tunes every method
# with one protocol (the same candidates around each default, the same budget, an oracle-free rule) and runs each
# at its chosen values on ten seeds, with the noise floor and Holm-corrected paired tests; the runs ship with the
# library. The chapter's three methods in them:

# %%
SURGERY = ["pcgrad", "unilateral_surgery", "unilateral_surgery_rl"]
print(records.format_tuned(["ga", "neggrad_plus", *SURGERY]))
tuned = {
    s: records.verdicts(records.load_bench(f"bench_{s}"), SURGERY)
    for s in ("class3", "random10")
}
# Class-wise: PCGrad and unilateral surgery decidedly closer than GA; PCGrad undecided
# against NegGrad+; both unilateral variants decidedly farther than NegGrad+.
assert tuned["class3"]["pcgrad"] == {"ga": -1, "neggrad_plus": 0}
assert tuned["class3"]["unilateral_surgery"] == {"ga": -1, "neggrad_plus": 1}
assert tuned["class3"]["unilateral_surgery_rl"]["neggrad_plus"] == 1
assert not any(v for row in tuned["random10"].values() for v in row.values())

# %% [markdown]
# The chapter's findings survive equal tuning and ten seeds: PCGrad and unilateral surgery are decidedly closer to
# the oracle than gradient ascent, unilateral surgery (and its classification setting) decidedly farther than
# NegGrad+, and PCGrad undecided against NegGrad+, about five noise floors from the oracle where NegGrad+ is at
# three. Random forgetting decides nothing. Chapter 12 repeats the benchmark with models trained on another kernel
# family: there the verdicts against NegGrad+ become undecided, because NegGrad+ misses its target on one seed.

# %% [markdown]
# ## Summary
#
# - **PCGrad** projects each task gradient onto the normal plane of every *original* gradient it conflicts with
#   ({eq}`eq-05-pcgrad`). With two tasks no negative inner product is left, and the summed step lowers both losses
#   to first order ({eq}`eq-05-pcgrad-two`). With three tasks the guarantee fails, as our random triples showed.
#   In the forget/retain form it *is* NegGrad+ whenever the batches do not conflict, and otherwise it raises both
#   weights ({eq}`eq-05-pcgrad-fr`). We checked all of this on flat vectors, on real gradients, and step by step
#   against NegGrad+.
# - **Unilateral surgery** is the Euclidean projection of $g_f$ onto the half-space
#   $\langle g_r, d\rangle \ge -\epsilon$. From the KKT conditions, $d^* = g_f + \lambda^* g_r$ with
#   $\lambda^* = \max(0, (-\langle g_r, g_f\rangle - \epsilon)/\|g_r\|^2)$ ({eq}`eq-05-closed-form`). $\epsilon = 0$ is
#   one-sided PCGrad (A-GEM), and $\epsilon = \infty$ is GA, which we checked bit for bit. The closed form matched
#   SLSQP and the library.
# - As methods, both take two backward passes per step, about twice a GA step. Our from-scratch loop reproduces
#   the library's methods exactly.
# - **On digits**, in class-wise forgetting, PCGrad beat GA on every seed and unilateral surgery on average, as
#   the papers claim. NegGrad+ beat unilateral surgery on every seed, and PCGrad was within the seed noise of
#   NegGrad+. Random forgetting separated nothing. These verdicts hold at the values chapter 12's protocol
#   chooses, over ten seeds, on the kernels of the machine that ran them.
# - The held-out rule chose a negative tolerance, $\epsilon = -1$. At a trained model, zero first-order damage
#   still means second-order damage ({eq}`eq-05-second-order`), and a small $\|g_r\|$ makes $\lambda^*$ large.
#   The method then behaves like NegGrad+ with an adaptive weight. The retain loss on a probe rose on a quarter or more
#   of the steps of every method: a per-batch, first-order constraint, applied before momentum, protects the retain
#   set on average, not step by step.


# %% [markdown]
# ## Exercises
#
# The exercises practise the two surgeries: PCGrad's projections, the closed form of the constrained step and
# what the optimiser and the data do to it. The two exercises marked "graded" ask for a batched PCGrad and a
# scale-free variant of unilateral surgery and come with tests; every other exercise has a worked solution below
# it. The solutions of experiments run at the end of this chapter and use its variables (`my_surgery_unlearn`,
# `my_unilateral`, `cmp`...).

# %% tags=["exercise-setup"]
import math

import torch

import unlearnlib.grads

# Random task gradients in float64, one per row: about half of the random pairs
# conflict. Forget and retain gradients of K = 60 pairs of dimension P = 20 (K != P,
# so that an axis mix-up shows).
ex_gen = torch.Generator().manual_seed(5)
ex_pairs = torch.randn(200, 2, 5, generator=ex_gen, dtype=torch.float64)
ex_triples = torch.randn(300, 3, 3, generator=ex_gen, dtype=torch.float64)
ex_gf = torch.randn(60, 20, generator=ex_gen, dtype=torch.float64)
ex_gr = torch.randn(60, 20, generator=ex_gen, dtype=torch.float64)

# %% [markdown]
# ```{exercise} PCGrad on a matrix of task gradients
# :label: ex-05-pcgrad-parts
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `pcgrad_parts(G)`: the projected gradients $g_i^{PC}$ of {eq}`eq-05-pcgrad` for $T$ task gradients given as
# the rows of a matrix, the other tasks visited in increasing order, and without the final sum. Mind the two
# details of the rule stated in section 5.2. Check on a pair that conflicts that each row is orthogonal to the other
# original gradient, and on random triples that the sum of your rows is `unlearnlib.grads.pcgrad`.
# ```

# %% tags=["remove-cell", "graded"]
def pcgrad_parts(G):
    """G: [T, P] float tensor, one task gradient per row (T >= 2); G is not modified.
    Returns a [T, P] tensor whose row i is g_i^PC of (eq-05-pcgrad): start from g_i
    and visit the other tasks j in increasing order; whenever the current vector has a
    negative inner product with the ORIGINAL g_j, remove its component along g_j.
    """
    # BEGIN SOLUTION
    out = G.clone()
    for i in range(len(G)):
        for j in range(len(G)):
            if j == i:
                continue
            dot = out[i] @ G[j]  # against the original g_j
            if dot < 0:
                out[i] = out[i] - dot / (G[j] @ G[j]) * G[j]
    return out
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# A conflicting pair, <g_1, g_2> = -1: g_1' = g_1 + g_2 / 2, g_2' = g_2 + g_1. A pair
# without conflict is returned unchanged, and the input is not modified.
ex_in = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
ex_out = pcgrad_parts(ex_in)
ex_expected = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
assert torch.allclose(ex_out, ex_expected)
assert torch.equal(ex_in, torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64))
ex_in = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
assert torch.equal(pcgrad_parts(ex_in), ex_in)

# %% tags=["remove-cell", "graded-test", "hidden"]
# 200 random pairs in R^5 (float64, so 1e-12 is rounding): each part is orthogonal to
# the other original gradient when they conflict and unchanged when they do not, and the
# sum is the library's PCGrad.
for ex_G2 in ex_pairs:
    ex_out = pcgrad_parts(ex_G2.clone())
    assert ex_out.shape == (2, 5)
    ex_ref = unlearnlib.grads.pcgrad(list(ex_G2))
    assert torch.allclose(ex_out.sum(0), ex_ref, atol=1e-12)
    if ex_G2[0] @ ex_G2[1] < 0:
        assert abs(ex_out[0] @ ex_G2[1]) < 1e-12 and abs(ex_out[1] @ ex_G2[0]) < 1e-12
    else:
        assert torch.equal(ex_out, ex_G2)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Three tasks, where the order of the visits matters: 300 random triples in R^3 against
# the library (increasing order), and a float32 case with four tasks in R^1000 (float32
# inner products of 1000 terms: 1e-4 relative is a wide margin).
for ex_G3 in ex_triples:
    ex_out = pcgrad_parts(ex_G3.clone())
    ex_ref = unlearnlib.grads.pcgrad(list(ex_G3))
    assert torch.allclose(ex_out.sum(0), ex_ref, atol=1e-12)
ex_G4 = torch.randn(4, 1000, generator=torch.Generator().manual_seed(9))
ex_G4[1] -= ex_G4[0]  # make some pairs conflict
ex_ref = unlearnlib.grads.pcgrad(list(ex_G4.double())).float()
ex_out = pcgrad_parts(ex_G4.clone())
assert torch.allclose(ex_out.sum(0), ex_ref, rtol=1e-4, atol=1e-4 * ex_ref.abs().max())

# %% [markdown]
# ```{exercise} PCGrad with ten tasks
# :label: ex-05-more-tasks
#
# *experiment · about 1 CPU minute*
#
# Treat each of the nine retain classes as a task and the forget set as a tenth. At $\theta_0$ of every seed,
# draw 20 times a forget batch and a retain batch of 32 samples per class, compute the ten gradients and the
# PCGrad step with `my_pcgrad` and a random visiting order. How often does the summed step still raise the loss
# of some task to first order ({eq}`eq-05-pcgrad-two` no longer applies)? Does the visiting order matter: how far
# apart are the steps of two random orders?
# ```

# %% [markdown]
# ```{solution-start} ex-05-more-tasks
# :class: dropdown
# ```
# With ten tasks the two-task guarantee {eq}`eq-05-pcgrad-two` is gone, and the measurements show it (code
# below, seeds 0–2, 20 draws each, at $\theta_0$). About half of the 90 ordered task pairs conflict (51 % to 57 %
# per seed), and the summed PCGrad step still raises the first-order loss of at least one task in 7 to 13 of the
# 20 draws. The visiting order matters: two random orders give steps that differ by 4 % to 24 % of the step's
# norm. With many tasks, PCGrad is a heuristic that reduces conflicts, not a rule that removes them.

# %%
models_s = {s: original_model(data, cfg, seed=s, device=device) for s in SEEDS}
tasks_s = {
    s: make_task(data, "class", forget_class=FORGET_CLASS, seed=s) for s in SEEDS
}
for s in SEEDS:
    m_s, t_s = models_s[s], tasks_s[s]
    gen_s = torch.Generator().manual_seed(s)
    pick = lambda n: torch.randperm(n, generator=gen_s)[:32].to(device)
    by_class = [
        (t_s.y_retain == c).nonzero().flatten()
        for c in range(data.num_classes)
        if c != FORGET_CLASS
    ]
    raised, apart, conflicting = 0, [], []
    for _ in range(20):
        fi = pick(len(t_s.y_forget))
        grads = [loss_grad(m_s, t_s.x_forget[fi], t_s.y_forget[fi], neg_ce)]
        for rows in by_class:
            ri = rows[pick(len(rows))]
            grads.append(loss_grad(m_s, t_s.x_retain[ri], t_s.y_retain[ri]))
        G_t = torch.stack(grads)
        inner = G_t @ G_t.T
        conflicting.append((inner < 0).float().sum().item() / (10 * 9))
        d_1, d_2 = my_pcgrad(grads, generator=gen_s), my_pcgrad(grads, generator=gen_s)
        raised += bool((G_t @ d_1 < 0).any())
        apart.append(((d_1 - d_2).norm() / d_1.norm()).item())
    print(
        f"seed {s}: task pairs in conflict {np.mean(conflicting):.0%}; the step raises "
        f"some task's loss in {raised} of 20 draws; two orders differ by "
        f"{min(apart):.2f} to {max(apart):.2f} of the step's norm"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} A scale-free tolerance
# :label: ex-05-scale-free
#
# *code · graded, 3 points · about 1 CPU minute*
#
# $\epsilon$ is not scale-free (section 5.3, "Units"). Replace it by
# $\epsilon = \kappa\,\lVert g_f\rVert\,\lVert g_r\rVert$, so that the constraint of {eq}`eq-05-qp` bounds a cosine:
# $\langle g_r, d\rangle \ge -\kappa\lVert g_f\rVert\lVert g_r\rVert$. Re-derive $\lambda^*$ from the KKT conditions
# {eq}`eq-05-kkt` and write `scale_free_surgery(g_f, g_r, kappa)` for a batch of $K$ pairs given as the rows of two
# matrices. Show that the result is equivariant: scaling $g_f$ by $s > 0$ and $g_r$ by $t > 0$ scales $d^*$ by $s$.
# What should a retain gradient equal to zero give?
# ```

# %% tags=["remove-cell", "graded"]
def scale_free_surgery(g_f, g_r, kappa):
    """g_f, g_r: [K, P] float tensors, K pairs of forget and retain gradients (descent
    convention), one pair per row; kappa: a float.
    Row k of d solves min 1/2 ||d - g_f||^2 s.t. <g_r, d> >= -kappa ||g_f|| ||g_r||
    (vectors and norms of row k). Returns (d [K, P], lam [K]) with
    d = g_f + lam[:, None] * g_r and lam >= 0; a zero row of g_r gives lam = 0.
    """
    # BEGIN SOLUTION
    dot = (g_f * g_r).sum(1)
    nr2 = (g_r * g_r).sum(1)
    eps = kappa * g_f.norm(dim=1) * g_r.norm(dim=1)
    safe = torch.where(nr2 > 0, nr2, torch.ones_like(nr2))  # g_r = 0: nothing to add
    lam = torch.where(nr2 > 0, (-dot - eps) / safe, torch.zeros_like(nr2)).clamp_min(0)
    return g_f + lam[:, None] * g_r, lam
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Row 1: cos = -1 < -kappa, active: lambda = (2 - 0.5 * 2 * 1) / 1 = 1, d = (-1, 0).
# Row 2: no conflict, inactive: d = g_f.
ex_d, ex_lam = scale_free_surgery(
    torch.tensor([[-2.0, 0.0], [1.0, 1.0]], dtype=torch.float64),
    torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64),
    0.5,
)
assert ex_d.shape == (2, 2) and ex_lam.shape == (2,)
assert torch.allclose(ex_lam, torch.tensor([1.0, 0.0], dtype=torch.float64))
ex_expected = torch.tensor([[-1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
assert torch.allclose(ex_d, ex_expected)

# %% tags=["remove-cell", "graded-test", "hidden"]
# 60 random pairs, float64: row by row the library's unilateral surgery with
# eps = kappa ||g_f|| ||g_r||, and the KKT conditions (to float64 rounding).
for ex_kappa in (-0.3, 0.0, 0.4):
    ex_d, ex_lam = scale_free_surgery(ex_gf, ex_gr, ex_kappa)
    assert ex_d.shape == (60, 20) and ex_lam.shape == (60,)
    for ex_k in range(60):
        ex_eps = ex_kappa * ex_gf[ex_k].norm() * ex_gr[ex_k].norm()
        ex_dk, ex_lk = unlearnlib.grads.unilateral_surgery(
            ex_gf[ex_k], ex_gr[ex_k], ex_eps
        )
        assert torch.allclose(ex_d[ex_k], ex_dk, atol=1e-10)
        assert abs(ex_lam[ex_k] - ex_lk) < 1e-10
        ex_slack = ex_gr[ex_k] @ ex_d[ex_k] + ex_eps
        assert ex_slack > -1e-10 and abs(ex_lam[ex_k] * ex_slack) < 1e-10

# %% tags=["remove-cell", "graded-test", "hidden"]
# Equivariance in float32 over nine orders of magnitude of scale (rounding: 1e-7
# relative per operation, a few operations), lambda >= 0, and a zero retain gradient.
ex_f32, ex_r32 = ex_gf.float(), ex_gr.float()
ex_d, ex_lam = scale_free_surgery(ex_f32, ex_r32, 0.2)
ex_ds, ex_lams = scale_free_surgery(1e3 * ex_f32, 1e-6 * ex_r32, 0.2)
assert torch.allclose(ex_ds, 1e3 * ex_d, rtol=1e-5, atol=1e-5 * 1e3 * ex_d.abs().max())
assert torch.allclose(ex_lams, 1e9 * ex_lam, rtol=1e-5, atol=1e-5 * 1e9 * ex_lam.max())
assert (ex_lam >= 0).all() and (ex_lam > 0).any() and (ex_lam == 0).any()
ex_r32[3] = 0.0
ex_d, ex_lam = scale_free_surgery(ex_f32, ex_r32, -0.5)
assert torch.isfinite(ex_d).all() and ex_lam[3] == 0 and torch.equal(ex_d[3], ex_f32[3])

# %% [markdown]
# ```{exercise} Momentum breaks the constraint
# :label: ex-05-momentum
#
# *experiment · about 1 CPU minute*
#
# The constraint of {eq}`eq-05-qp` holds for the direction $d$ handed to the optimiser, not for the step it takes
# (section 5.4). Run `my_surgery_unlearn` with $\epsilon = 0$ and `weight_decay=0`, so that momentum is the only thing
# between $d$ and the step, for as many steps as the class-wise `unilateral eps=0` run of every seed took in
# section 5.5. At every step record $\langle g_r, d\rangle$ and $\langle g_r, \theta_{t-1} - \theta_t\rangle$ for the
# step taken (for SGD without weight decay, $\theta_{t-1} - \theta_t = \eta\, b_t$ with the momentum buffer
# $b_t = \mu\, b_{t-1} + d_t$, which the `combine` function can keep itself). On what share of the steps is the
# constraint violated with momentum 0.9, and with momentum 0 (at ten times the learning rate)? Compare the retain
# and forget accuracies at the end.
# ```

# %% [markdown]
# ```{solution-start} ex-05-momentum
# :class: dropdown
# ```
# Without momentum the step is $\eta\, d$ and the constraint holds at every step by construction,
# $\langle g_r, d\rangle \ge 0$ up to rounding. With momentum the buffer carries the directions of earlier steps,
# which were chosen against earlier retain batches, and nothing constrains them against the current one.
#
# Measured over seeds 0–2 (code below; 118 to 167 steps per seed): the direction $d$ violates the constraint on
# no step (a cosine with $g_r$ below $-10^{-4}$, far beyond rounding), in both settings. The step actually taken
# violates it on 62 % to 70 % of the steps with momentum 0.9, and on none with momentum 0. Yet the retain set fares
# *better* with momentum: retain accuracy 94.9 % to 98.9 % (forget accuracy 8 % to 10 %) against 60 % to 64 % with
# momentum 0 at ten times the learning rate (forget accuracy 0 %, the runs having no stopping rule). Meeting the
# constraint on every step is therefore no protection by itself: it holds to first order, for each step's own
# batch, and says nothing about the second-order damage ({eq}`eq-05-second-order`) of steps ten times longer.

# %% tags=["skip-execution"]
from unlearnlib.metrics import accuracy


def recording_surgery(momentum, store):
    """combine(g_f, g_r) for eps = 0 that keeps the momentum buffer
    b_t = mu b_{t-1} + d_t and stores cos(g_r, d) and cos(g_r, b_t) of every step."""
    buf = []

    def combine(g_f, g_r):
        d = my_unilateral(g_f, g_r, 0.0)[0]
        buf[:] = [d if not buf else momentum * buf[0] + d]
        store.append((cosine(g_r, d), cosine(g_r, buf[0])))
        return d

    return combine


steps_eps0 = cc.per_seed("unilateral eps=0", "steps").astype(int)
for s, n_steps in zip(SEEDS, steps_eps0):
    for momentum, lr in ((0.9, LR_US), (0.0, 10 * LR_US)):
        rec = []
        model_s, _ = my_surgery_unlearn(
            models_s[s],
            tasks_s[s],
            recording_surgery(momentum, rec),
            steps=int(n_steps),
            lr=lr,
            seed=s,
            momentum=momentum,
            weight_decay=0.0,
        )
        on_d, on_step = host(r[0] for r in rec), host(r[1] for r in rec)
        # violated: a cosine below -1e-4, far beyond the float32 rounding of a cosine
        # of P terms (about 1e-7 * sqrt(P), 1e-5)
        t_s = tasks_s[s]
        print(
            f"seed {s}, momentum {momentum}: {n_steps} steps; <g_r, d> < 0 on "
            f"{np.mean(on_d < -1e-4):.0%}, <g_r, step> < 0 on "
            f"{np.mean(on_step < -1e-4):.0%};"
            f" RA {accuracy(model_s, t_s.x_retain, t_s.y_retain):.1f} %, "
            f"FA {accuracy(model_s, t_s.x_forget, t_s.y_forget):.1f} %"
        )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Where does $\lambda^*$ blow up?
# :label: ex-05-lambda-blowup
#
# *experiment · about 1 CPU minute*
#
# Along runs with the default $\epsilon = -1$, for as many steps as the class-wise `unilateral_surgery` run of every
# seed took in section 5.5, record $\lambda^*$, $\lVert g_r\rVert^2$ and $\langle g_f, g_r\rangle$ of every step with
# a `combine` for `my_surgery_unlearn` that returns them as its second output. Is
# $\lambda^*\lVert g_r\rVert^2 \approx 1$? Why? What would a cap on $\lambda^*$ do?
# ```

# %% [markdown]
# ```{solution-start} ex-05-lambda-blowup
# :class: dropdown
# ```
# When the constraint is active, {eq}`eq-05-closed-form` gives
# $\lambda^*\lVert g_r\rVert^2 = -\langle g_r, g_f\rangle - \epsilon = 1 - \langle g_f, g_r\rangle$: close to 1
# exactly when the batch inner product is small next to $|\epsilon| = 1$, so $\lambda^* \approx 1/\lVert g_r\rVert^2$
# blows up where the retain batch is already fitted.
#
# Measured over seeds 0–2 (code below; 109 to 145 steps): the constraint is active on every step, $\lambda^*$ ranges
# from 1 to between 1,342 and 10,358, and $\lambda^*\lVert g_r\rVert^2$ has a median of 1.01 to 1.02 and lies within
# 10 % of 1 on 72 % to 80 % of the steps. On those steps $\lambda^*$ is large (median 90 to 154), on the others,
# where $|\langle g_f, g_r\rangle|$ reaches 13 to 33, it is smaller (median 17 to 42) and
# $\lambda^*\lVert g_r\rVert^2$ reaches 14 to 34.
# A cap $\lambda^* \le \lambda_{max}$ bounds the retain part of the step: on the steps where it binds, the step is
# $g_f + \lambda_{max} g_r$, NegGrad+ with weight $\lambda_{max}$, and the constraint is no longer met; the
# first-order decrease of $|\epsilon|$ is then given up exactly where $\lVert g_r\rVert$ is small, where it costs
# most.

# %%
def recording_unilateral(g_f, g_r):
    d, lam = my_unilateral(g_f, g_r, EPS)
    return d, torch.stack([lam, g_r.dot(g_r), g_f.dot(g_r)])


steps_us = cc.per_seed("unilateral_surgery", "steps").astype(int)
for s, n_steps in zip(SEEDS, steps_us):
    _, rec = my_surgery_unlearn(
        models_s[s],
        tasks_s[s],
        recording_unilateral,
        steps=int(n_steps),
        lr=LR_US,
        seed=s,
    )
    lam_s, nr2_s, dot_s = torch.stack(rec).cpu().numpy().T
    active = lam_s > 0
    prod = lam_s[active] * nr2_s[active]
    near_1 = np.abs(prod - 1) < 0.1
    print(
        f"seed {s}: {n_steps} steps, active on {active.mean():.0%}; lambda* from "
        f"{lam_s[active].min():.0f} to {lam_s.max():.0f}; lambda* |g_r|^2 from "
        f"{prod.min():.2f} to {prod.max():.1f}, median {np.median(prod):.2f},\n"
        f"  within 10 % of 1 on {near_1.mean():.0%} of the active steps; there "
        f"lambda* has median {np.median(lam_s[active][near_1]):.0f}, elsewhere "
        f"{np.median(lam_s[active][~near_1]):.0f}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects

# %% [markdown]
# ```{exercise} Choosing $\kappa$ on held-out seeds
# :label: ex-05-kappa-sweep
#
# *project · about 30 CPU minutes*
#
# Turn the scale-free surgery of {ref}`ex-05-scale-free` into a `combine` for `my_surgery_unlearn`, add the
# oracle-free stopping rule of chapter 02, and sweep $\kappa$ over a grid from $-0.5$ to $0.5$ on the held-out seeds
# 100–104 with the rule of section 5.5 (the highest mean retain accuracy among the settings that reach the forget
# target on every held-out seed). Is the chosen $\kappa$ negative too? Compare the chosen setting with the rows of
# section 5.5 on the profile's seeds.
# ```

# %% [markdown]
# ```{solution-start} ex-05-kappa-sweep
# :class: dropdown
# ```
# A sketch. $\epsilon = \kappa\lVert g_f\rVert\lVert g_r\rVert$ makes the constraint a bound on the cosine,
# $\cos(g_r, d^*)\,\lVert d^*\rVert/\lVert g_f\rVert \ge -\kappa$, so unlike $\epsilon$ it does not change meaning as
# $\lVert g_f\rVert$ grows along the run. The argument of section 5.6 still applies: at a trained model zero
# first-order damage is second-order damage, so a negative $\kappa$ may again win, but it no longer produces the huge
# multipliers of $\epsilon = -1$ when $\lVert g_r\rVert$ is small
# ($\lambda^* \propto \lVert g_f\rVert/\lVert g_r\rVert$ instead of $1/\lVert g_r\rVert^2$). The easiest way to get
# the stopping rule is to register the combine as a library method (`unlearnlib.methods.surgery` shows how) and let
# `compare_methods` run it.

# %% tags=["skip-execution"]
def kappa_combine(kappa):
    def combine(g_f, g_r):
        d, lam = scale_free_surgery(g_f[None], g_r[None], kappa)  # graded exercise
        return d[0], lam[0]

    return combine


# for kappa in (-0.5, -0.25, 0.0, 0.25, 0.5): run on seeds 100-104 with the stopping
# rule, keep the settings that reach the forget target on every seed, pick the best RA.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} GEM with one constraint per class
# :label: ex-05-gem
#
# *project · about 10 CPU minutes*
#
# Replace the single constraint by one per retain class, $\langle g_r^{(k)}, d\rangle \ge -\epsilon$ for the nine
# retain classes $k$, and solve the QP with SLSQP (`qp_solve` generalises directly), or through its dual, a small
# non-negative least-squares problem. Compare the direction with unilateral surgery's on the batch pairs of section
# 5.2, and its cost per step with that of section 5.7.
# ```

# %% [markdown]
# ```{solution-start} ex-05-gem
# :class: dropdown
# ```
# A sketch. With $R$ the $9\times P$ matrix of the class gradients, the Lagrangian
# $\tfrac12\lVert d - g_f\rVert^2 - \nu^\top(Rd + \epsilon\mathbf 1)$ gives $d = g_f + R^\top\nu$, $\nu \ge 0$, and
# the dual $\max_{\nu\ge0} -\tfrac12\nu^\top RR^\top\nu - \nu^\top(Rg_f + \epsilon\mathbf 1)$: a $9\times9$ problem
# whatever $P$ is. With the Cholesky factor $RR^\top = LL^\top$ it is the non-negative least-squares problem
# $\min_{\nu\ge0}\lVert L^\top\nu + L^{-1}(Rg_f + \epsilon\mathbf 1)\rVert^2$ (`scipy.optimize.nnls`). With one
# class it reduces to {eq}`eq-05-closed-form`. Per step it costs nine retain backward passes instead of one, or
# per-sample gradients grouped by class (chapter 04).

# %% tags=["skip-execution"]
from scipy.optimize import nnls


def gem_direction(g_f, R, eps):
    """min 1/2 ||d - g_f||^2 s.t. R d >= -eps, through the NNLS form of the dual."""
    K = (R @ R.T).double()
    eye = torch.eye(len(K), dtype=K.dtype, device=K.device)
    L = torch.linalg.cholesky(K + 1e-12 * K.trace() * eye)
    c = (R @ g_f).double() + eps
    nu, _ = nnls(L.T.cpu().numpy(), -torch.linalg.solve(L, c).cpu().numpy())
    return g_f + R.T @ torch.as_tensor(nu, dtype=g_f.dtype, device=g_f.device)


# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Surgery on the full forget gradient
# :label: ex-05-full-forget
#
# *project · about 15 CPU minutes*
#
# The conflicts of section 5.5 are between mini-batch gradients. Use the whole forget set for $g_f$ at every step (it
# has only 137 samples) and a retain batch for $g_r$, with the stopping rule. How do the share of
# operated steps and the gap change, over the profile's seeds?
# ```

# %% [markdown]
# ```{solution-start} ex-05-full-forget
# :class: dropdown
# ```
# A sketch. Chapter 04 found the full forget gradient aligned with the full retain gradient at $\theta_0$, while
# section 5.2 found a sizeable share of mini-batch pairs in conflict: part of the early surgery is batch noise. With
# the full $g_f$ only the retain batch's noise is left, so with $\epsilon = 0$ the share of operated steps in the
# first third of the run should fall; at the end of a run, where chapter 04 found nearly every retain sample in
# conflict, it stays near 1. Whether the gap changes must be measured against the seed noise of section 5.5. In
# `my_surgery_unlearn`, compute `g_f` from `xf, yf` instead of `xf[fi], yf[fi]`; for the gap, register it as a
# method and run it through `compare_methods`.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. Two task gradients conflict, $c = \langle g_1, g_2\rangle < 0$, at angle $\varphi$. After two-task PCGrad, what
#    is $\langle d, g_1\rangle$? (a) 0; (b) $\lVert g_1\rVert^2\sin^2\varphi$; (c) $-c$.
# 2. Unilateral surgery with $g_f = (-2, 0)$, $g_r = (1, 0)$ and $\epsilon = 0$: what are $\lambda^*$ and $d^*$?
# 3. Which method is unilateral surgery with $\epsilon \to \infty$? (a) A-GEM; (b) gradient ascent; (c) NegGrad+.
# 4. With three or more tasks, does PCGrad's summed step still lower every task's loss to first order?
#    (a) Yes, always; (b) not always, and the visiting order matters.
# 5. Why did the held-out rule prefer $\epsilon = -1$ to $\epsilon = 0$? (a) Zero first-order damage still raises the
#    retain loss at second order near a minimum, and with a small $\lVert g_r\rVert$ the multiplier makes the step
#    mostly retain fine-tuning; (b) a negative $\epsilon$ switches the constraint off; (c) it halves the number of
#    backward passes.
# 6. How many backward passes does one step of PCGrad or unilateral surgery take, as the library implements them?

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b), by {eq}`eq-05-pcgrad-two`: $\langle d, g_1\rangle = \lVert g_1\rVert^2\sin^2\varphi \ge 0$.
# 2. $\lambda^* = \max(0, (2 - 0)/1) = 2$ and $d^* = (0, 0)$: the gradients point in opposite directions, so nothing
# of $g_f$ is feasible at zero damage. 3. (b): the constraint never binds, $\lambda^* = 0$. 4. (b): the random triples
# of section 5.2 showed projected gradients that still conflict and summed steps that raise a loss. 5. (a), section
# 5.6: {eq}`eq-05-second-order` and $\lambda^* \approx (|\epsilon| - \langle g_r, g_f\rangle)/\lVert g_r\rVert^2$. 6.
# Two: $g_f$ and $g_r$ are needed as separate vectors (section 5.7).
