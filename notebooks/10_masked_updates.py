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
# # Masked feasible updates
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/10_masked_updates.ipynb)
#
# Dine, Furon and Faure {cite}`dine2025masked` (arXiv 2511.02435, AISec '25) state in their abstract that machine
# unlearning can be written as one constrained optimisation problem that unifies the first-order methods, that
# *feasible updates* (directions that help unlearning without hurting the initial model's utility) can be built by
# **masking** parameters, and that accounting for the noise of mini-batch gradients gives a statistical guarantee
# of *local* feasibility. The method is an add-on: any first-order method can be masked.
#
# **The paper's full text was not available to us.** The statements above are the abstract's; the constrained
# problem's details, the coordinatewise condition and the one-sided test below are **our reconstruction** of
# what arXiv 2511.02435 describes, not a copy of the paper's algorithm.
#
# **What you will learn**
#
# - unlearning as a constrained problem, its KKT conditions, and GA, NegGrad+ and random labels as fixed-multiplier
#   special cases;
# - what makes a direction locally feasible, why a 0/1 mask is a diagonal projector, and a sufficient
#   coordinatewise condition for feasibility;
# - a one-sided statistical test on per-sample retain gradients, from scratch and checked equal to the library;
# - exactly what the test guarantees, and two ways to void it: testing on the batch that built the step, and
#   testing the gradient instead of the step that momentum and weight decay produce;
# - why the mask must apply to the *final* update under momentum and weight decay;
# - what the mask does to GA, NegGrad+ and random labels on digits, at equal steps and at matched forgetting.

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
from scipy.stats import t as student_t
from torch.func import functional_call, grad, vmap

import unlearnlib.config
from unlearnlib.experiment import compare_methods, format_table
from unlearnlib.data import load_dataset, make_task
from unlearnlib.grads import flatten, loss_grad, trainable
from unlearnlib.methods import MASKED_LR, get_method
from unlearnlib.methods.feasible import (
    FeasibilityMasker,
    false_keep_rate,
    feasibility_mask,
)
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

# %% [markdown]
# ## Unlearning as a constrained problem
#
# Let $L_u$ be an unlearning loss we minimise (for GA, $L_u = -\mathrm{CE}_f$) and $L_r$ the retain loss. "Forget as
# much as possible without losing more than $\epsilon$ of retain loss" reads
#
# $$
# \min_\theta\; L_u(\theta) \quad \text{s.t.} \quad L_r(\theta) \le L_r(\theta_0) + \epsilon .
# $$ (eq-10-problem)
#
# Its Lagrangian is $\mathcal L(\theta, \mu) = L_u(\theta) + \mu\,(L_r(\theta) - L_r(\theta_0) - \epsilon)$, and a local
# solution satisfies the KKT conditions
#
# $$
# \nabla L_u(\theta) + \mu \nabla L_r(\theta) = 0, \qquad \mu \ge 0, \qquad
# \mu\,\big(L_r(\theta) - L_r(\theta_0) - \epsilon\big) = 0, \qquad L_r(\theta) \le L_r(\theta_0) + \epsilon .
# $$ (eq-10-kkt)
#
# **The baselines are fixed multipliers (our derivation).** A gradient step on $\mathcal L$ for a *fixed* $\mu$ moves
# along $d = \nabla L_u + \mu \nabla L_r$:
#
# - **GA**: $\mu = 0$, $L_u = -\mathrm{CE}_f$: the constraint is ignored ($\epsilon = \infty$).
# - **NegGrad+**: its loss $\beta L_r - (1-\beta)\mathrm{CE}_f = (1-\beta)\big(L_u + \tfrac{\beta}{1-\beta} L_r\big)$ is the
#   Lagrangian with the fixed $\mu = \beta/(1-\beta)$ (for the default $\beta = 0.97$, $\mu \approx 32$), scaled by
#   $1-\beta$.
# - **Random labels**: $L_u = \mathrm{CE}(D_f, \tilde y)$ with random wrong labels, and $\mu = 1$.
#
# None of them adapts $\mu$ to whether the constraint is active, which is what {eq}`eq-10-kkt` would require.
#
# ## Feasible directions and masks
#
# With the descent step $\theta \leftarrow \theta - \eta\, d$, to first order $L_u$ changes by $-\eta\langle\nabla L_u, d\rangle$
# and $L_r$ by $-\eta\langle g_r, d\rangle$. A direction is **locally feasible** when
#
# $$
# \langle \nabla L_u, d\rangle > 0 \qquad\text{and}\qquad \langle g_r, d\rangle \ge 0 ,
# $$ (eq-10-feasible)
#
# it lowers the unlearning loss and does not raise the retain loss. The masked method takes the base method's
# direction $u$ and keeps some coordinates: $d = m \odot u = P_m u$ with $m \in \{0,1\}^P$ and
# $P_m = \mathrm{diag}(m)$, a diagonal orthogonal projector ($P_m^2 = P_m = P_m^\top$) onto the coordinates kept.
# A **sufficient** coordinatewise condition for the second half of {eq}`eq-10-feasible` is
#
# $$
# m_i = 1 \;\Rightarrow\; u_i\, g_{r,i} \ge 0
# \qquad\Longrightarrow\qquad \langle g_r, P_m u\rangle = \sum_i m_i u_i g_{r,i} \ge 0 ,
# $$ (eq-10-coordinatewise)
#
# and when $u = \nabla L_u$ (GA) the first half holds too, since $\langle \nabla L_u, P_m u\rangle = \|P_m u\|^2 > 0$
# as soon as one kept coordinate is non-zero. The condition is stronger than needed: it forbids every coordinate
# from trading retain loss, while the Euclidean projections of chapters 04–07 only constrain the sum.
#
# **"Probably aligned": a one-sided test (our reconstruction).** $g_r$ is estimated from a batch of $B$ retain
# samples, so the sign of $g_{r,i}$ is uncertain. With per-sample gradients $g_{r,i}^{(j)}$, their mean
# $\bar g_{r,i}$ and sample standard deviation $s_{r,i}$, keep coordinate $i$ only if
#
# $$
# z_i = \mathrm{sign}(u_i)\, \frac{\bar g_{r,i}}{s_{r,i}/\sqrt B} \;\ge\; t_{B-1}^{-1}(1-\delta),
# \qquad m_i = \mathbf 1\big[z_i \ge t_{B-1}^{-1}(1-\delta)\big],
# $$ (eq-10-test)
#
# a one-sided Student $t$ test of the null hypothesis "$u_i\, \mu_{r,i} \le 0$", where $\mu_r$ is the true retain
# gradient (the mean over $D_r$ at the current parameters) and $t_{B-1}$ the $t$ distribution with $B-1$ degrees
# of freedom. At $\delta = 0.5$ the threshold is $0$ and the test is plain sign agreement
# {eq}`eq-10-coordinatewise`; smaller $\delta$ keeps fewer, surer coordinates.
#
# **The guarantee, exactly.** If the $B$ test samples are drawn from $D_r$ *independently of the step* $u$, then for
# every coordinate with $u_i\, \mu_{r,i} \le 0$ (a step that is not strictly feasible there)
#
# $$
# \Pr\big(m_i = 1 \mid u\big) \le \delta ,
# $$ (eq-10-level)
#
# with equality on the boundary $\mu_{r,i} = 0$. The bound is exact when the per-sample gradients are Gaussian and
# holds up to the normal approximation of the studentised mean otherwise (per-sample gradients of a network are
# skewed, so at $B = 32$ the true level can differ from $\delta$ by a few points). It is a bound per coordinate and
# per step: there is no correction for multiple testing, so many of a step's infeasible coordinates are expected
# to slip through, a fraction $\delta$ of those on the boundary. Two things void it. A test batch that also built
# $u$: NegGrad+'s $u$ contains $\beta\,\bar g_r$ of its retain batch, so on that batch $\mathrm{sign}(u_i)$ follows
# the sign of the noise being tested, and a boundary coordinate is kept with probability close to $2\delta$. And a
# test of the wrong vector: SGD with momentum $\mu$ and weight decay $\lambda$ does not move along the gradient but
# along the velocity $v = \mu v_{\text{prev}} + g + \lambda\theta$, whose sign can differ. The library's
# `masked:<base>` therefore draws its own retain batch for the test, tests the velocity $v$, applies $m \odot v$,
# and clears the velocity of every masked coordinate ($v \leftarrow m\odot v$), so a coordinate that is masked
# for a while does not release stale velocity when it is kept again.
#
# ## From scratch
#
# The test {eq}`eq-10-test` uses the $B$ per-sample gradients only through two numbers per coordinate: their mean
# $\bar g_{r,i}$ and their mean square $q_i = \frac1B\sum_j (g^{(j)}_{r,i})^2$, since
# $s_{r,i}^2 = \frac{B}{B-1}\big(q_i - \bar g_{r,i}^2\big)$. We write it in this *moment form*. The moments
# can be had without forming the per-sample gradients, as chapter 07 showed for OrthoGrad's Gram matrix: a Linear
# layer's per-sample gradient is an outer product $b_j a_j^\top$ of its input $a_j$ and output gradient $b_j$, so
# $\sum_j (b_j a_j^\top)^{\circ 2} = (b\circ b)^\top (a \circ a)$, squares taken entrywise, one matrix product
# for the whole batch. A convolution sums such outer products over positions and its squares do not factor, so
# there one layer's per-sample block is formed at a time, as BackPACK does {cite}`dangel2020backpack`. The
# library's `feasibility_mask` does exactly this (`route="moments"`, its default).
#
# From scratch we compute the per-sample gradients with `torch.func` (`vmap` of `grad` of a one-sample loss), reduce
# them to the two moments and apply {eq}`eq-10-test`. The base direction here is GA's,
# $u = \nabla(-\mathrm{CE}_f)$ on a forget batch, at the trained model of seed 0; it uses no retain sample, so
# the retain batch of the test is independent of it.

# %%
data = load_dataset(profile.dataset).to(device)
task = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
m0 = original_model(data, cfg, seed=0, device=device)
gen = torch.Generator().manual_seed(0)  # a CPU generator: draw, then move to the device
fi = torch.randperm(len(task.y_forget), generator=gen)[:32].to(device)
ri = torch.randperm(len(task.y_retain), generator=gen)[:32].to(device)
xf, yf, xr, yr = (
    task.x_forget[fi],
    task.y_forget[fi],
    task.x_retain[ri],
    task.y_retain[ri],
)


def my_per_sample_grads(model, x, y):
    p = {k: v.detach() for k, v in trainable(model).items()}
    one = lambda p, xi, yi: F.cross_entropy(
        functional_call(model, p, (xi[None],)), yi[None]
    )
    return vmap(grad(one), in_dims=(None, 0, 0))(p, x, y)


def my_mask(model, u, x, y, delta):
    G = my_per_sample_grads(model, x, y)
    B = len(y)
    thr = student_t.ppf(1 - delta, B - 1)  # one-sided, B - 1 degrees of freedom
    masks, zs = {}, {}
    for n, Gn in G.items():
        mean, second = Gn.mean(0), (Gn * Gn).mean(0)  # the moment form
        var = (second - mean * mean).clamp_min(0) * B / (B - 1)
        zs[n] = torch.sign(u[n]) * mean / (var.sqrt() / B**0.5).clamp_min(1e-30)
        masks[n] = (zs[n] >= thr).float()
    return masks, zs


model = copy.deepcopy(m0).train()
names = list(trainable(model))
u_flat = loss_grad(model, xf, yf, lambda z, y: -F.cross_entropy(z, y))
sizes = [p.numel() for p in trainable(model).values()]
u = {
    n: t.view_as(p) for (n, p), t in zip(trainable(model).items(), u_flat.split(sizes))
}
g_r = loss_grad(model, xr, yr)
# The second moment without per-sample gradients, for the Linear head: (b*b)^T (a*a) / B
# from the head's inputs a and output gradients b (of the sum of the per-sample losses).
seen = {}
hook = model.head.register_forward_hook(
    lambda m, i, o: seen.update(a=i[0].detach(), z=o)
)
try:
    loss_sum = F.cross_entropy(model(xr), yr, reduction="sum")
finally:
    hook.remove()
(b_head,) = torch.autograd.grad(loss_sum, seen["z"])
q_head = (b_head * b_head).T @ (seen["a"] * seen["a"]) / len(yr)
q_vmap = (my_per_sample_grads(model, xr, yr)["head.weight"] ** 2).mean(0)
err_q = ((q_head - q_vmap).norm() / q_vmap.norm()).item()
# The rounding model of the book's tests (tests/errormodel.py): two float32
# computations of a gradient differ by at most c u sqrt(K) 2L relative, here c = 10,
# L = 4 weight layers, K = 512 (the longest reduction: 32 samples x 16 positions);
# a square doubles it.
q_tol = 2 * 10 * torch.finfo(torch.float32).eps * 512**0.5 * 2 * 4
print(
    f"head: (b*b)^T (a*a) / B against the vmap mean square: {err_q:.1e} "
    f"(bound {q_tol:.1e})"
)
assert err_q < q_tol
# A z-score computed in float32 by another summation order, or from per-sample
# gradients computed by other kernels, differs by about u sqrt(B) times the size of the
# terms over their mean (a few 1e-6 here); masks may therefore differ only where z lies
# within Z_TOL of the threshold.
Z_TOL = 1e-4
thr, disagree = {}, {}
for delta in (0.05, 0.1, 0.25, 0.5):
    ours, z = my_mask(model, u, xr, yr, delta)
    lib = feasibility_mask(model, xr, yr, delta, update=u)
    m_flat, z_flat = flatten(lib), flatten(z)
    t_delta = student_t.ppf(1 - delta, len(yr) - 1)
    differ = flatten(ours) != m_flat
    disagree[delta] = int(differ.sum())
    assert ((z_flat[differ] - t_delta).abs() < Z_TOL * max(1, t_delta)).all()
    assert (z_flat[m_flat == 1] >= t_delta - Z_TOL).all()
    assert (z_flat[m_flat == 0] < t_delta + Z_TOL).all()
    feasible = g_r @ (m_flat * u_flat)
    assert feasible >= 0 and (u_flat @ (m_flat * u_flat)) > 0  # eq-10-feasible
    thr[delta] = m_flat.mean().item()
    print(
        f"delta {delta:4}: threshold {t_delta:.3f}, kept {100 * thr[delta]:.1f} % of "
        f"coordinates; <g_r, m*u> = {feasible.item():+.2e}, "
        f"<g_r, u> = {(g_r @ u_flat).item():+.2e}"
    )
sign_agree = (u_flat * g_r >= 0).float()
differ = flatten(feasibility_mask(model, xr, yr, 0.5, update=u)) != sign_agree
z_half = flatten(my_mask(model, u, xr, yr, 0.5)[1])
assert (
    z_half[differ].abs() < Z_TOL
).all()  # only where the mean is zero up to rounding
assert all(thr[a] <= thr[b] for a, b in ((0.05, 0.1), (0.1, 0.25), (0.25, 0.5)))
print(
    "from-scratch mask == feasibility_mask at every delta, except on the threshold: "
    f"{disagree};\ndelta = 0.5 is sign agreement, except {int(differ.sum())} at z = 0"
)

# %% [markdown]
# Every kept coordinate passes the test (up to the rounding of $z$ at the threshold), the masked GA direction is locally feasible on this batch
# ($\langle g_r, m\odot u\rangle \ge 0$) even where the unmasked one conflicts, and the kept fraction grows with $\delta$.
#
# ## Masking the final update
#
# Masking the gradient is not enough. SGD adds weight decay $\lambda\theta$ to the gradient and accumulates
# momentum *inside* `opt.step()`, so a coordinate with zero gradient still moves (chapter 03 met the same bug in
# SalUn's code), and a kept coordinate moves along its velocity, not along the gradient that was tested. The
# library's `FeasibilityMasker` therefore owns the velocity: from the gradient $g$ the base method filled it forms
# $v = \mu v_{\text{prev}} + g + \lambda\theta$ exactly as `torch.optim.SGD` does, tests $v$ on its own retain batch,
# hands $m \odot v$ to a plain SGD step (no momentum, no weight decay of its own) and keeps $m\odot v$ as the next
# $v_{\text{prev}}$. `masked(base)` sets this up. We check both: a naive masked gradient moves masked coordinates;
# the library path leaves them bit-identical over a run with momentum 0.9 and weight decay $5\cdot10^{-4}$, and
# moves every kept coordinate in the direction that was tested.

# %%
naive = copy.deepcopy(m0).train()
opt = torch.optim.SGD(naive.parameters(), lr=1e-2, momentum=0.9, weight_decay=5e-4)
mask0 = feasibility_mask(naive, xr, yr, 0.1, update=u)
before = {n: p.detach().clone() for n, p in naive.named_parameters()}
for n, p in naive.named_parameters():
    p.grad = u[n] * mask0[n]
opt.step()
drift = sum(
    ((p != before[n]) & (mask0[n] == 0)).sum().item()
    for n, p in naive.named_parameters()
)
print(f"naive masked gradient: {drift} masked coordinates moved anyway (weight decay)")
assert drift > 0

checks = {"steps": 0, "masked": 0, "moved_kept": 0, "against": 0, "flipped": 0}
inner = FeasibilityMasker(
    0.1, retain=(task.x_retain, task.y_retain), momentum=0.9, weight_decay=5e-4
)
state = {}


def recording_mask(model, xr_b, yr_b):  # after the base step filled .grad
    params = trainable(model)
    state["g"] = {n: p.grad.detach().clone() for n, p in params.items()}
    state["masks"] = inner(model, xr_b, yr_b)  # sets .grad to the tested velocity v
    state["v"] = {n: p.grad.detach().clone() for n, p in params.items()}
    state["before"] = {n: p.detach().clone() for n, p in params.items()}
    return state["masks"]


def verify(model, opt):  # post_step: after the masked optimiser step
    for n, p in trainable(model).items():
        keep, v = state["masks"][n].bool(), state["v"][n]
        moved = p.detach() - state["before"][n]
        assert torch.equal(moved[~keep], torch.zeros_like(moved[~keep])), n
        checks["masked"] += (~keep).sum().item()
        checks["moved_kept"] += (moved[keep] != 0).sum().item()
        # the step is -lr * v: a kept coordinate moves against the sign of v
        checks["against"] += (moved[keep] * v[keep] > 0).sum().item()
        # kept coordinates whose gradient points the other way than their velocity
        checks["flipped"] += (state["g"][n][keep] * v[keep] < 0).sum().item()
    checks["steps"] += 1


get_method("ga")(
    m0, task, mask_fn=recording_mask, post_step=verify, steps=15, stop_at=None,
    lr=2e-3, momentum=0.0, weight_decay=0.0,  # the masker applies 0.9 and 5e-4
)
print(
    f"library path: {checks['steps']} steps, {checks['masked']} masked coordinate-steps"
    f" all bit-identical;\n{checks['moved_kept']} kept coordinate-steps moved, "
    f"{checks['against']} of them against the tested sign; on "
    f"{checks['flipped']} the gradient\nhad the opposite sign to the velocity "
    "(a test of the gradient would have judged the wrong step)"
)
assert checks["steps"] == 15 and checks["masked"] > 0 and checks["moved_kept"] > 0
assert checks["against"] == 0

# %% [markdown]
# ## Measuring the level
#
# {eq}`eq-10-level` can be checked where the answer is known. On a synthetic problem every coordinate has
# per-sample retain gradients $\mathcal N(0, 1)$, so the true retain gradient is exactly $0$, the boundary where
# keeping is always a false keep and {eq}`eq-10-level` is an equality. The step is NegGrad+'s,
# $u = \beta \bar g_A - (1-\beta) g_f$ on a retain batch $A$ ($\beta = 0.97$), and the test runs either on an
# independent batch or on $A$ itself. Over $n$ independent tests the number of false keeps is binomial, so the
# measured rate may exceed $\delta$ by a few standard errors $\sqrt{\delta(1-\delta)/n}$ and no more; three give
# a false alarm about once in a thousand runs.

# %%
for delta in (0.1, 0.25):
    for same in (False, True):
        fk, n = false_keep_rate(delta, trials=400, coords=100, same_batch=same, seed=0)
        se = (delta * (1 - delta) / n) ** 0.5
        rate = fk / n
        where = "the step batch" if same else "an independent batch"
        print(
            f"delta {delta}: test on {where}: false-keep rate {rate:.4f} "
            f"over n = {n} (limit {delta + 3 * se:.4f})"
        )
        if same:
            assert rate > delta + 3 * se  # the level is lost, close to 2 delta
        else:
            assert rate <= delta + 3 * se

# %% [markdown]
# On the trained model the true retain gradient is the mean over all of $D_r$, and per-sample gradients are far
# from Gaussian, so the level is only approximate there. We repeat NegGrad+'s step on 40 random retain batches and
# count, among the coordinates where $u_i \mu_{r,i} \le 0$, the fraction kept by a test on the step's own batch and
# by a test on an independent batch. The coordinates of one network are not independent tests, so the error bar
# is the spread over the 40 independent trials.

# %%
probe = copy.deepcopy(m0).train()
mu_r = loss_grad(probe, task.x_retain, task.y_retain)  # the true retain gradient
g_f = loss_grad(probe, task.x_forget, task.y_forget)
beta, trials, rates = 0.97, 40, {False: [], True: []}
pick = torch.Generator().manual_seed(1)
for _ in range(trials):
    a, c = (
        torch.randperm(len(task.y_retain), generator=pick)[:32].to(device)
        for _ in range(2)
    )
    g_a = loss_grad(probe, task.x_retain[a], task.y_retain[a])
    step_flat = beta * g_a - (1 - beta) * g_f  # NegGrad+'s descent direction
    infeasible = step_flat * mu_r <= 0
    step = {
        n: t.view_as(p)
        for (n, p), t in zip(trainable(probe).items(), step_flat.split(sizes))
    }
    for same, idx in ((True, a), (False, c)):
        keep = flatten(
            feasibility_mask(
                probe, task.x_retain[idx], task.y_retain[idx], 0.1, update=step
            )
        ).bool()
        rates[same].append(((keep & infeasible).sum() / infeasible.sum()).item())
real = {s: (np.mean(r), np.std(r, ddof=1) / trials**0.5) for s, r in rates.items()}
for same, (mean, se) in real.items():
    print(
        f"trained model, delta 0.1, test on "
        f"{'the step batch' if same else 'an independent batch'}: "
        f"false-keep rate {mean:.3f} +- {se:.3f} (standard error over {trials} trials)"
    )
(m_same, se_same), (m_ind, se_ind) = real[True], real[False]
assert m_same - m_ind > 3 * (se_same**2 + se_ind**2) ** 0.5

# %% [markdown]
# ## The kept fraction along a run, and the effective step
#
# The registered `masked:<base>` methods are `masked(base)` with the test at $\delta = 0.1$ and a `kept=` list that
# receives the kept fraction of every step. Masking removes part of every step, so at the base's learning rate
# the masked method moves less. The library's `masked:<base>` entries therefore use their own learning rates
# (`MASKED_LR`, chosen on held-out seeds by the same oracle-free rule as every default):

# %%
for b, lr in MASKED_LR.items():
    base_lr = inspect.signature(get_method(b)).parameters["lr"].default
    print(f"masked:{b:13s} lr {lr:g}   (base {b}: lr {base_lr:g})")
kept = []
log = []
m_run = get_method("masked:ga")(m0, task, seed=0, kept=kept, log=log)
print(
    f"masked:ga on seed 0: {len(kept)} steps, kept fraction mean {np.mean(kept):.3f} "
    f"(min {np.min(kept):.3f}, max {np.max(kept):.3f});\n"
    f"forget acc at the end {log[-1]['forget_acc']:.1f} %"
)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, len(kept) + 1), kept, ".-")
ax.set_xlabel("step")
ax.set_ylabel("kept fraction of coordinates")
ax.set_title("masked:ga, δ = 0.1, seed 0")
plt.show()
assert 0 < np.mean(kept) < 1

# %% [markdown]
# ## The experiment
#
# Class-wise forgetting of digit 3 over the profile's seeds. For each base $b \in$ {GA, NegGrad+, random labels}
# we run
#
# - `b` with its defaults (stopping rule: the oracle-free target of chapter 02);
# - `masked:b` with its defaults (its own learning rate, same stopping rule): the comparison **at matched
#   forgetting**, both aiming at the same target;
# - `masked:b` at **equal steps and equal learning rate**: the base's learning rate, exactly as many steps as the
#   base took on that seed, no stopping rule.
#
# The claim to test: "the mask improves its base method's retain accuracy at equal steps".

# %%
BASES = ("ga", "neggrad_plus", "random_label")


logs, kept_by_run = {}, {}


def base_run(b):
    """The base method with its defaults; its log is kept, to run the equal-steps
    variant after it."""
    return (b, lambda task, seed: {"log": logs.setdefault((b, seed), [])})


def masked_run(b, equal_steps):
    """masked:b with its own defaults, or at the base's learning rate for exactly the
    base's number of steps."""

    def setup(task, seed):
        kw = {"kept": kept_by_run.setdefault((b, equal_steps, seed), [])}
        if equal_steps:
            kw.update(
                lr=inspect.signature(get_method(b)).parameters["lr"].default,
                steps=logs[b, seed][-1]["step"],
                stop_at=None,
            )
        return kw

    return (f"masked:{b}", setup)


VARIANTS = {}
for b in BASES:
    VARIANTS.update(
        {
            b: base_run(b),
            f"masked:{b}": masked_run(b, False),
            f"masked:{b}@equal": masked_run(b, True),
        }
    )
t_start = time.perf_counter()
result = compare_methods(
    VARIANTS, "class", data=data, cfg=cfg, seeds=SEEDS, forget_class=FORGET_CLASS
)
summary, reference = result.summary, result.reference
print(f"seeds {SEEDS}: {time.perf_counter() - t_start:.1f} s")
print(format_table(summary, reference, keys=("UA", "RA", "TA", "MIA")))
print(format_table(summary, reference, keys=("gap", "time_s")))
per_seed = result.per_seed
kept_mean = {
    (b, eq): np.mean([np.mean(kept_by_run[b, eq, s]) for s in SEEDS])
    for b in BASES
    for eq in (False, True)
}
for m in summary:
    b = m.split(":")[-1].split("@")[0]
    kept = (
        f", kept {kept_mean[b, m.endswith('@equal')]:.3f}"
        if m.startswith("masked")
        else ""
    )
    print(f"{m:26s} steps {per_seed(m, 'steps').astype(int)}{kept}")

# %%
result.plot(
    title=f"Class-wise forgetting of digit {FORGET_CLASS} "
    f"({len(SEEDS)} seeds; dashed: retrain)"
)
plt.show()

# %% [markdown]
# What holds over the seeds, each with its assert.

# %%
for key in ("RA", "UA", "gap"):
    print(f"{key} per seed:")
    for b in BASES:
        print(
            f"  {b:13s} base {per_seed(b, key).round(1)}  "
            f"masked@equal {per_seed(f'masked:{b}@equal', key).round(1)}  "
            f"masked {per_seed(f'masked:{b}', key).round(1)}"
        )

for b in BASES:
    base, mk, eq = (
        per_seed(b, "RA"),
        per_seed(f"masked:{b}", "RA"),
        per_seed(f"masked:{b}@equal", "RA"),
    )
    # Equal steps and equal lr: the mask keeps the retain accuracy at least as well as
    # the base, up to 0.5 points (6 of the 1,210 retain samples) ...
    assert (eq >= base - 0.5).all()
    # ... but the masked method barely forgets: mean UA (100 - forget accuracy) below
    # 10 %.
    assert per_seed(f"masked:{b}@equal", "UA").mean() < 10
    # Matched forgetting: with its own lr and the same stopping rule, the masked method
    # reaches the target on every seed and keeps at least the base's retain accuracy on
    # every seed.
    assert (per_seed(f"masked:{b}", "UA") >= 90).all()
    assert (mk >= base).all()
# For the two bases that damage D_r (GA, random labels) the retain gain is strict on
# every seed, and so is the drop of the Avg. Gap.
for b in ("ga", "random_label"):
    assert (per_seed(f"masked:{b}", "RA") > per_seed(b, "RA")).all()
    assert (per_seed(f"masked:{b}", "gap") < per_seed(b, "gap")).all()
# NegGrad+ already ends within about a point of the oracle: there the masked method's
# Avg. Gap is not larger beyond the seed-to-seed noise (two standard errors of the
# paired difference over seeds).
d_gap = per_seed("masked:neggrad_plus", "gap") - per_seed("neggrad_plus", "gap")
assert d_gap.mean() <= 2 * d_gap.std(ddof=1) / len(d_gap) ** 0.5
cost = {
    b: per_seed(f"masked:{b}", "time_s").mean() / per_seed(b, "time_s").mean()
    for b in BASES
}
print(
    "wall-clock cost of the masked method relative to its base: "
    + ", ".join(f"{b} {c:.1f}x" for b, c in cost.items())
)

# %% [markdown]
# - **At equal steps and equal learning rate** the claim "the mask improves retain accuracy" holds, but trivially:
#   the masked runs keep their retain accuracy because they hardly move, and their forget accuracy stays near
#   100 % (UA near 0) for every base. Only a small fraction of coordinates passes the test at each step (the kept
#   fractions are printed above), so the effective step is a fraction of the base's.
# - **At matched forgetting** (the masked method at its larger learning rate, both stopped by the same
#   oracle-free target) the masked methods reach the target and keep more retain accuracy than GA and random labels
#   on every seed, and at least as much as NegGrad+ (which already loses little). Their Avg. Gap is smaller than
#   that of GA and random labels on every seed; against NegGrad+, which already ends within about a point of the
#   oracle, the difference is within the seed-to-seed noise. This is the comparison that supports the paper's
#   claim on our data. The price is the per-sample retain gradients of an extra retain batch at every step (the
#   wall-clock ratio is printed) and, sometimes, more steps.
#
# %% [markdown]
# ## Summary
#
# - Unlearning as the constrained problem {eq}`eq-10-problem`: GA, NegGrad+ and random labels are gradient steps
#   on its Lagrangian with a *fixed* multiplier ($0$, $\beta/(1-\beta)$, $1$), none of which responds to the constraint.
# - A 0/1 mask is the diagonal projector $P_m$; keeping only coordinates with $u_i g_{r,i} \ge 0$ makes the masked
#   step locally feasible {eq}`eq-10-coordinatewise`, and the one-sided test {eq}`eq-10-test` keeps only those whose
#   agreement is statistically clear. Our from-scratch test equals `feasibility_mask`; at $\delta = 0.5$ it is plain
#   sign agreement.
# - What the test guarantees {eq}`eq-10-level`: per coordinate and per step, a coordinate whose true retain gradient
#   does not strictly agree with the step is kept with probability at most $\delta$, exactly for Gaussian
#   per-sample gradients and approximately otherwise, *provided the test batch is independent of the step*.
#   Reusing the step's own batch roughly doubles the false-keep rate, as measured above.
# - The step tested must be the step taken: the library tests SGD's velocity (momentum and weight decay
#   included), applies $m \odot v$, clears the velocity of masked coordinates, and keeps masked coordinates
#   bit-identical.
# - Masking shrinks the step. At equal steps and equal learning rate every masked method keeps its retain accuracy
#   but hardly forgets, so "better retain accuracy at equal steps" is true only in a trivial sense. At matched
#   forgetting (a larger learning rate for the masked method, both stopped at the same target) the masked methods
#   keep at least the retain accuracy of their bases on every seed (strictly more for GA and random labels), with
#   a smaller Avg. Gap than GA and random labels on every seed and one on par with NegGrad+, at the cost of
#   per-sample retain gradients at every step.
#
# ## Exercises
#
# 1. Show that $P_m = \mathrm{diag}(m)$ is the orthogonal projector onto $\mathrm{span}\{e_i : m_i = 1\}$, and that
#    among all directions $d$ supported on those coordinates, $P_m u$ is the closest to $u$.
# 2. Replace the per-coordinate test by one aggregate test on the scalars $s_j = \langle g_r^{(j)}, m\odot u\rangle$
#    over the retain samples $j$. How many more coordinates can you keep at the same $\delta$?
#    *Hint:* start from the sign-agreement mask and drop coordinates greedily while the test fails.
# 3. Sweep $\delta \in \{0.01, 0.05, 0.1, 0.25, 0.5\}$ for `masked:ga` on one seed and plot the kept fraction and the
#    final retain accuracy against $\delta$.
# 4. Repeat the experiment of §10.6 in random forgetting of 10 % (`make_task(data, "random", forget_fraction=0.1,
#    seed=seed)`). Does the picture at matched forgetting change?
# 5. Give NegGrad+ an adaptive multiplier: increase $\mu$ when $L_r$ exceeds $L_r(\theta_0) + \epsilon$ and decrease it
#    otherwise (dual ascent on {eq}`eq-10-kkt`). Compare with `masked:neggrad_plus`. *Hint:* the implicit
#    gradient surgery of Part II (`implicit_surgery`) adapts its multiplier in this way.
