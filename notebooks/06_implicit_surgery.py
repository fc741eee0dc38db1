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
# # Implicit gradient surgery
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/06_implicit_surgery.ipynb)
#
# Chapter 05 posed one unlearning step as a small constrained problem: move as close as possible to the forget
# direction $g_f$ while the first-order rise of the retain loss stays below a tolerance, and solved it in closed
# form. The answer, $d = g_f + \lambda^* g_r$, needs the inner product $\langle g_r, g_f\rangle$ and the norm
# $\|g_r\|^2$, so it needs both gradients as separate vectors: two backward passes and two flat copies of all $P$
# parameters per step. Zhou et al. {cite}`zhou2025implicit` (arXiv 2510.22124, NeurIPS 2025) reach the same
# multiplier with **one** backward pass. Instead of computing $\lambda^*$, they *adjust* $\lambda$ from step to
# step by watching what the last step actually did to the retain loss.
#
# **What is whose.** The paper's full text was not available to us. The abstract states the constrained
# formulation, its equivalence with unilateral gradient surgery, an implicit version that needs one
# back-propagation, and a convergence analysis. The dual update {eq}`eq-06-implicit` is the paper's Eq. (8) as
# quoted in the README of the authors' official code (`anseryuer/EUPMU-Efficient-Utility-Preserving-Machine-Unlearning`
# on GitHub). We also read that code. The derivation that makes the update projected dual ascent, its
# finite-difference bias, the two stability conditions (without and with momentum), and the translation of the
# code's `error` into the paper's $\epsilon$ are **our derivations**, checked numerically below. The theorem of
# the paper and its experimental numbers were not available to us.
#
# **What you will learn**
#
# - the Lagrangian dual of the unilateral problem and why ascending it adjusts $\lambda$ towards $\lambda^*$;
# - how a measured retain-loss change replaces the inner product $\langle g_r, d\rangle$, and the $O(\eta)$ bias
#   this costs;
# - the sign and the scale of the tolerance $\epsilon$: the paper's tolerance against the official code's `error`;
# - when the dual step converges ($0 < \beta\|g_r\|^2 < 2$, and $2(1+\mu)$ with momentum), seen converging and
#   cycling on a toy and on the real network, and where a real run leaves the stable range;
# - the implicit step from scratch, checked against `unlearnlib`'s `implicit_surgery`;
# - how implicit and explicit surgery compare in quality and in cost, and where our data disagree with the
#   paper's claim.

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

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch.func import functional_call

import unlearnlib.config
from unlearnlib import records
from unlearnlib.bench import step_times
from unlearnlib.data import cycle_batches, load_dataset, make_task
from unlearnlib.diagnostics import count_passes, loss_change, neg_ce
from unlearnlib.experiment import compare_methods
from unlearnlib.grads import (
    flatten,
    loss_grad,
    trainable,
    unflatten,
    unilateral_surgery,
)
from unlearnlib.methods import REGISTRY
from unlearnlib.methods._loop import forget_target, run_unlearning
from unlearnlib.methods.implicit import dual_step, eps_from_code_error, implicit_surgery
from unlearnlib.metrics import accuracy, per_sample_loss
from unlearnlib.train import TrainConfig, original_model

profile = unlearnlib.config.get_profile()
device = unlearnlib.config.get_device()
cfg = TrainConfig.from_profile(profile)
SEEDS = list(range(profile.seeds))
FORGET_CLASS = 3
DEFAULTS = {
    k: p.default
    for k, p in inspect.signature(implicit_surgery).parameters.items()
    if k in ("epochs", "lr", "eps", "dual_lr", "lam0", "batch_size", "check_every")
}
MOMENTUM = inspect.signature(run_unlearning).parameters["momentum"].default
print(
    f"profile {profile.name}: dataset {profile.dataset}, model {profile.model}, "
    f"seeds {SEEDS}, device {device}"
)
print("implicit_surgery defaults:", DEFAULTS, f"(SGD momentum of the loop: {MOMENTUM})")

# %% [markdown]
# ## The unilateral problem and its dual
#
# Notation as in chapter 05, in the descent convention (the optimiser steps $\theta \leftarrow \theta - \eta d$):
# $g_f = \nabla L_f$ with $L_f = -\mathrm{CE}_f$, so $g_f$ is the gradient-ascent direction, and $g_r = \nabla L_r$
# with $L_r$ the retain cross-entropy. A step along $d$ changes the retain loss by $-\eta\langle g_r, d\rangle$ to
# first order. Chapter 05 derived the per-step problem and its solution ({eq}`eq-05-qp` and
# {eq}`eq-05-closed-form` there):
#
# $$
# \min_d\ \tfrac12\|d - g_f\|^2 \quad\text{s.t.}\quad \langle g_r, d\rangle \ge -\epsilon ,
# \qquad
# d^* = g_f + \lambda^* g_r ,\quad \lambda^* = \max\Big(0,\ \frac{-\langle g_r, g_f\rangle - \epsilon}{\|g_r\|^2}\Big).
# $$ (eq-06-primal)
#
# Here $\epsilon \ge 0$ is the tolerated first-order rise of the retain loss per unit step ($\epsilon < 0$ demands a
# fall). We now look at the same problem from the side of its multiplier; chapter 05 stated the resulting dual
# function in passing ({eq}`eq-05-dual`), and here we derive it and put it to work. The Lagrangian, with
# $\lambda \ge 0$ for the inequality, is
#
# $$
# \mathcal L(d, \lambda) = \tfrac12\|d - g_f\|^2 - \lambda\big(\langle g_r, d\rangle + \epsilon\big).
# $$ (eq-06-lagrangian)
#
# For fixed $\lambda$ it is a convex quadratic in $d$, minimised where $d - g_f - \lambda g_r = 0$, i.e. at
# $d(\lambda) = g_f + \lambda g_r$. Substituting gives the **dual function** (write $c = \langle g_r, g_f\rangle$ and
# $G = \|g_r\|^2$):
#
# $$
# q(\lambda) = \min_d \mathcal L(d, \lambda) = \tfrac12\lambda^2 G - \lambda\,(c + \lambda G + \epsilon)
#            = -\tfrac12 \lambda^2 G - \lambda\,(c + \epsilon).
# $$ (eq-06-dual)
#
# $q$ is a concave parabola. Its derivative is
#
# $$
# q'(\lambda) = -(c + \lambda G + \epsilon) = -\big(\langle g_r, d(\lambda)\rangle + \epsilon\big).
# $$ (eq-06-dual-derivative)
#
# The derivative is just the constraint, evaluated at the direction that $\lambda$ produces. The envelope theorem
# says this in general: $\partial\mathcal L/\partial d = 0$ at $d(\lambda)$, so only the explicit dependence on
# $\lambda$ counts. The maximiser of $q$ over $\lambda \ge 0$ is $\max(0, (-c-\epsilon)/G)$, which is the
# $\lambda^*$ of {eq}`eq-06-primal`. The problem is a convex QP with a linear constraint, so strong duality holds:
# $q(\lambda^*)$ equals the primal optimum $\tfrac12\|d^* - g_f\|^2$. **Projected dual ascent** climbs $q$ with a
# step $\beta > 0$ and clips at zero:
#
# $$
# \lambda \leftarrow \max\big(0,\ \lambda + \beta q'(\lambda)\big) = \max\Big(0,\ \lambda - \beta\big(\langle g_r, d(\lambda)\rangle + \epsilon\big)\Big).
# $$ (eq-06-dual-ascent)
#
# The reading is intuitive. If the current direction raises the retain loss by more than the tolerance
# ($\langle g_r, d\rangle < -\epsilon$), $\lambda$ grows, and more retain descent is mixed into the step. If it
# respects the tolerance with room to spare, $\lambda$ shrinks towards pure forgetting. We check
# {eq}`eq-06-dual`–{eq}`eq-06-dual-derivative` numerically on random conflicting vectors, against the
# library's closed form `unlearnlib.grads.unilateral_surgery` of chapter 05.

# %%
gen = torch.Generator().manual_seed(0)
n = 40
gf_toy = torch.randn(n, generator=gen, dtype=torch.float64)
gr_toy = -0.6 * gf_toy + torch.randn(n, generator=gen, dtype=torch.float64)
eps_toy = 0.3


def lagrangian(d, lam, g_f, g_r, eps):
    return 0.5 * (d - g_f).pow(2).sum() - lam * (g_r @ d + eps)


def dual(lam, g_f, g_r, eps):
    return lagrangian(g_f + lam * g_r, lam, g_f, g_r, eps)  # q(λ) = L(d(λ), λ)


d_star, lam_star_toy = unilateral_surgery(gf_toy, gr_toy, eps_toy)
assert lam_star_toy > 0, "the toy must have an active constraint"
c_toy, G_toy = float(gr_toy @ gf_toy), float(gr_toy @ gr_toy)
for lam_v in (0.2, float(lam_star_toy), 2.5):
    lam_t = torch.tensor(lam_v, dtype=torch.float64, requires_grad=True)
    d_t = (gf_toy + lam_t * gr_toy).detach().requires_grad_(True)
    (grad_d,) = torch.autograd.grad(
        lagrangian(d_t, lam_v, gf_toy, gr_toy, eps_toy), d_t
    )
    assert grad_d.abs().max() < 1e-12  # d(λ) minimises L(·, λ)
    q_v = dual(lam_t, gf_toy, gr_toy, eps_toy)
    assert math.isclose(
        q_v.item(), -0.5 * lam_v**2 * G_toy - lam_v * (c_toy + eps_toy), rel_tol=1e-12
    )  # (eq-06-dual)
    (dq,) = torch.autograd.grad(q_v, lam_t)
    assert math.isclose(
        dq.item(),
        -(float(gr_toy @ (gf_toy + lam_v * gr_toy)) + eps_toy),
        rel_tol=1e-10,
        abs_tol=1e-12,
    )
grid = torch.linspace(0, 3 * float(lam_star_toy), 30001, dtype=torch.float64)
q_grid = -0.5 * grid**2 * G_toy - grid * (c_toy + eps_toy)
lam_grid = grid[q_grid.argmax()].item()
assert abs(lam_grid - float(lam_star_toy)) <= grid[1].item()  # argmax of q = λ*
assert math.isclose(
    dual(lam_star_toy, gf_toy, gr_toy, eps_toy).item(),  # strong duality
    0.5 * (d_star - gf_toy).pow(2).sum().item(),
    rel_tol=1e-10,
)
print(
    f"λ* (closed form, chapter 05) = {float(lam_star_toy):.6f}; "
    f"argmax of q on a grid = {lam_grid:.6f};\n"
    f"q(λ*) = primal optimum = {0.5 * (d_star - gf_toy).pow(2).sum().item():.6f}"
)

# %% [markdown]
# ## Replacing the inner product by a measured loss change
#
# The ascent step {eq}`eq-06-dual-ascent` still needs $\langle g_r, d(\lambda)\rangle$. Here is the trick. We
# never need $g_r$ and $d$ as separate vectors, only how fast the retain loss falls along $d$, and the training
# step measures exactly that. Take the step $\theta_{t+1} = \theta_t - \eta d$. Taylor's theorem with the retain
# Hessian $H_r$ gives
#
# $$
# \ell_r(\theta_{t+1}) = \ell_r(\theta_t) - \eta\langle g_r, d\rangle + \tfrac{\eta^2}{2}\, d^\top H_r d + O(\eta^3),
# $$ (eq-06-taylor)
#
# and therefore
#
# $$
# \frac{\ell_r(\theta_t) - \ell_r(\theta_{t+1})}{\eta} = \langle g_r, d\rangle - \tfrac{\eta}{2}\, d^\top H_r d + O(\eta^2).
# $$ (eq-06-fd)
#
# The left side costs one forward pass of the retain batch at the new parameters, since $\ell_r(\theta_t)$ came
# with the step's own forward pass. Substituting it into {eq}`eq-06-dual-ascent` gives the update of Zhou et al.
# With $\lambda_t$ the multiplier used in step $t$:
#
# $$
# \tilde\delta_t = \frac{\ell_r(\theta_t) - \ell_r(\theta_{t+1})}{\eta} + \epsilon, \qquad
# \lambda_{t+1} = \max\big(0,\ \lambda_t - \beta\,\tilde\delta_t\big).
# $$ (eq-06-implicit)
#
# The *update* is the paper's Eq. (8), as quoted in the official README, with $\alpha_t$ for our $\eta$ and $\beta_t$
# for our $\beta$, and the projection $\lambda \ge 0$ that the code applies. The *reading* as projected dual
# ascent with a finite-difference estimate of $q'(\lambda_t)$ is ours. One step of the method is:
#
# 1. one forward pass of the forget and retain batches together, giving $\ell_f$ and $\ell_r(\theta_t)$;
# 2. one backward pass of $L_f + \lambda_t L_r$. Its gradient *is* $d(\lambda_t) = g_f + \lambda_t g_r$, so no
#    flat vectors and no inner products are formed;
# 3. the optimiser step;
# 4. one forward pass of the same retain batch without gradients, giving $\ell_r(\theta_{t+1})$, then
#    {eq}`eq-06-implicit`.
#
# The explicit version of chapter 05 needs two backward passes ($g_f$ and $g_r$ separately), two flat $P$-vectors,
# and two global inner products. The price of the implicit version is the bias in {eq}`eq-06-fd`: a relative
# error of order $\eta\, d^\top H_r d / \langle g_r, d\rangle$. There is also a subtler difference. $\lambda_t$ is
# corrected *after* the step that used it. The method therefore follows $\lambda^*$ as the gradients change: it
# tracks the target rather than solving for it at each step.
#
# We check {eq}`eq-06-fd` on the real network in float64, so that rounding cannot hide the bias. We take the model
# partway through an unlearning run (gradient ascent from $\theta_0$ on seed 0's class-3 task, stopped at the first
# of 60, 80, 100, ... steps at which the forget and retain gradients conflict), the whole forget set, and a retain
# batch of 64. The bias divided by
# $\eta$ must be $-\tfrac12 d^\top H_r d$, with the curvature term computed exactly as a Hessian-vector product
# (double backward). `unlearnlib.diagnostics.loss_change` (chapter 04) evaluates the
# measured change and its first-order prediction.

# %%
data = load_dataset(profile.dataset).to(device)
task0 = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
m0 = original_model(data, cfg, seed=0, device=device)
xf64, yf64 = task0.x_forget.double(), task0.y_forget
xr64, yr64 = task0.x_retain[:64].double(), task0.y_retain[:64]
# a state in the middle of unlearning: the first of 60, 80, ... GA steps at which the
# forget and retain gradients conflict (chapter 04: the run creates the conflict)
for mid_steps in range(60, 201, 20):
    mid = REGISTRY["ga"](m0, task0, steps=mid_steps, stop_at=None)
    m64 = copy.deepcopy(mid).double()
    gf_net = loss_grad(m64, xf64, yf64, neg_ce)
    gr_net = loss_grad(m64, xr64, yr64)
    if gf_net @ gr_net < 0:
        break
_, lam_star_net = unilateral_surgery(gf_net, gr_net, 0.0)
cos_net = (gf_net @ gr_net / (gf_net.norm() * gr_net.norm())).item()
print(
    f"after {mid_steps} GA steps: cos(g_f, g_r) = {cos_net:.3f}, "
    f"‖g_r‖² = {(gr_net @ gr_net).item():.4f}, λ* (ε = 0) = {lam_star_net.item():.4f}"
)
assert gf_net @ gr_net < 0, "the check needs conflicting gradients"

params64 = {k: v.detach() for k, v in trainable(m64).items()}
theta64 = flatten(params64)


def retain_loss_at(flat):
    return F.cross_entropy(
        functional_call(m64, unflatten(flat, params64), (xr64,)), yr64
    )


def half_curvature(d):
    """½ dᵀ H_r d, with the Hessian-vector product by double backward (exact, no finite
    differences)."""
    theta = theta64.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(retain_loss_at(theta), theta, create_graph=True)
    (hvp,) = torch.autograd.grad(g @ d, theta)
    return 0.5 * (d @ hvp).item()


SMALL, LARGE = [3e-6, 1e-6], [1e-4, DEFAULTS["lr"]]
for lam_v in (0.0, lam_star_net.item()):
    d = gf_net + lam_v * gr_net
    half_curv = half_curvature(d)
    etas = torch.tensor(SMALL + LARGE, dtype=torch.float64, device=device)
    measured, predicted = loss_change(m64, xr64, yr64, d, etas)
    fd, inner = -measured / etas, -predicted / etas  # the probe, and ⟨g_r, d⟩
    ratio = (
        (fd - inner) / etas / -half_curv
    ).tolist()  # measured bias / predicted bias
    print(
        f"λ = {lam_v:.3f}: ⟨g_r, d⟩ = {inner[0].item():+.3e}, "
        f"−½ dᵀH_r d = {-half_curv:+.3e};\nmeasured bias / (−η/2 dᵀH_r d) at η = "
        + ", ".join(f"{e:g}: {r:.3f}" for e, r in zip(etas.tolist(), ratio))
    )
    assert all(abs(r - 1) < 0.03 for r in ratio[: len(SMALL)]), (
        "small steps: the bias is −(η/2) dᵀ H_r d"
    )
    assert all(0.5 < r < 3 for r in ratio[len(SMALL) :]), (
        "larger steps: same sign and order of magnitude"
    )
    if lam_v == 0.0:
        rel_at_lr = abs((fd[-1] - inner[-1]) / inner[-1]).item()
print(
    f"at the default lr η = {DEFAULTS['lr']:g}, for d = g_f, the bias is "
    f"{100 * rel_at_lr:.2f} % of ⟨g_r, d⟩"
)
assert rel_at_lr < 0.05

# %% [markdown]
# The bias behaves as {eq}`eq-06-fd` says for small steps: divided by $\eta$ it equals $-\tfrac12 d^\top H_r d$
# to better than 3 %, so it is first order in $\eta$. At the step sizes of real training, around
# $10^{-4}$, the measured bias departs from the quadratic prediction (by a factor between 0.5 and 3), but keeps its
# sign and order of magnitude.
# The reason is that a ReLU network is only piecewise smooth: along a longer step some units switch on or off,
# and the Taylor expansion {eq}`eq-06-taylor` holds only between such switches. Either way, at the library's
# learning rate the bias is a small fraction of the signal (printed above). Its sign matters more than its size
# here. The curvature along these directions is positive, so the probe reports a slightly *smaller* improvement
# than $\langle g_r, d\rangle$. The dual step therefore sees a slightly worse step than the true one and picks a
# slightly *larger* $\lambda$: the bias makes the method more cautious.
#
# **Momentum changes what is measured (our derivation).** The library's loop (chapter 02) runs SGD with momentum
# $\mu$ and weight decay $w$. The step is then $\theta_{t+1} - \theta_t = -\eta b_t$, with the buffer
# $b_t = \mu b_{t-1} + d_t + w\theta_t$. The probe of {eq}`eq-06-implicit` therefore measures
#
# $$
# \frac{\ell_r(\theta_t) - \ell_r(\theta_{t+1})}{\eta} \approx \langle g_r, b_t\rangle
#   = \Big\langle g_r,\ d_t + \mu\, b_{t-1} + w\,\theta_t\Big\rangle ,
# $$ (eq-06-momentum-probe)
#
# the retain change of the step that was *actually taken*, momentum included. The explicit version instead
# constrains $d_t$, and the optimiser then adds the momentum to it. With frozen gradients and $w = 0$, the buffer
# settles at $b = d/(1-\mu)$. The implicit fixed point $\langle g_r, b\rangle = -\epsilon$ is then
# $\langle g_r, d\rangle = -(1-\mu)\epsilon$: the same $\lambda^*$ as the explicit method when $\epsilon = 0$, and a
# tolerance scaled by $1-\mu$ otherwise. Section 6.7 measures
# {eq}`eq-06-momentum-probe` along real runs.
#
# ## The sign and scale of ε: the paper against the official code
#
# In the paper's update {eq}`eq-06-implicit`, $\lambda$ stops moving when the retain loss *rises* by $\eta\epsilon$
# per step, so $\epsilon \ge 0$ is a **tolerance**. The official classification code
# (`weighted_methods/weight_methods.py`, class `EU`) implements the same idea differently:
#
# - the weighted loss is $w \log \ell_r + \log \ell_f$ (log losses, in the manner of the FAMO multi-task method);
#   its gradient is $g_f/\ell_f + (w/\ell_r) g_r$, i.e. the direction $g_f + \lambda g_r$ with $\lambda = w\ell_f/\ell_r$;
# - after the step and the probe forward pass it sets the gradient of $w$ to
#   $\delta = \log\ell_r(\theta_t) - \log\ell_r(\theta_{t+1}) - \texttt{error}$, takes one **Adam** step on $w$
#   (which *descends*: $w$ grows when $\delta < 0$). It does not clip $w$: while $w < 0$ it drops the retain term
#   from the loss (the step is the forget gradient alone), and $w$ itself keeps drifting below 0, so the retain
#   term returns only once the signal has pushed $w$ back up. The projection of {eq}`eq-06-implicit` takes the
#   same steps while the multiplier would be negative, but restarts it from 0.
#
# The structure is the same as {eq}`eq-06-implicit`: the multiplier grows when the signal is negative. The
# equilibrium differs, though: $\delta = 0$ when the log retain loss *falls* by `error` per step, a required
# improvement, i.e. a negative tolerance. We make the comparison
# exact to first order (our derivation). Write $\Delta = \ell_r(\theta_t) - \ell_r(\theta_{t+1})$. Then
# $\log\ell_r(\theta_t) - \log\ell_r(\theta_{t+1}) = \Delta/\ell_r + O(\Delta^2/\ell_r^2)$, so
#
# $$
# \delta_{\text{code}} \approx \frac{\eta}{\ell_r}\Big(\frac{\Delta}{\eta} - \frac{\texttt{error}\cdot\ell_r}{\eta}\Big)
#   = \frac{\eta}{\ell_r}\,\tilde\delta\Big|_{\epsilon \,=\, -\texttt{error}\,\ell_r/\eta} .
# $$ (eq-06-code-eps)
#
# The positive factor $\eta/\ell_r$ only rescales the dual step, and Adam normalises the step anyway. What fixes the
# equilibrium is the equivalent tolerance $\epsilon = -\texttt{error}\cdot\ell_r/\eta$, which is negative for
# every positive `error`, and whose size depends on the current retain loss and learning rate. The official
# README calls the two forms equivalent "at the conceptual level". Numerically they are far apart, as the
# numbers below show. The library implements the paper's form; `eps_from_code_error` performs the translation.

# %%
before = torch.tensor(0.05, dtype=torch.float64)
for error, lr_c in ((0.01, 3e-3), (0.05, 5e-3)):
    eps_c = eps_from_code_error(error, float(before), lr_c)
    for rel in (-1e-3, -1e-4, 2e-4, 3e-3):
        after = before * (1 - rel)
        code = torch.log(before) - torch.log(after) - error
        paper = (before - after) / lr_c + eps_c
        assert (
            abs(code - lr_c / before * paper) <= rel**2
        )  # (eq-06-code-eps), to first order
        assert torch.sign(code) == torch.sign(paper)
print("code's δ = (η/ℓ_r) × paper's δ with ε = −error·ℓ_r/η, up to O(Δ²/ℓ_r²): checked")

loss_r0 = per_sample_loss(m0, task0.x_retain, task0.y_retain).mean()
lr_def = DEFAULTS["lr"]
print(f"our network (seed 0): ℓ_r(θ0) over D_r = {loss_r0:.4f}, default η = {lr_def:g}")
for error, what in (
    (0.01, "CIFAR-10 random 10 %"),
    (0.03, "argument-parser default"),
    (0.05, "CIFAR-10 class-wise"),
):
    print(
        f"  official error = {error:<5} ({what:24s}) -> "
        f"ε = {eps_from_code_error(error, loss_r0, lr_def):+.3f}"
    )
pairs = [
    (
        task0.x_forget[i : i + 32],
        task0.y_forget[i : i + 32],
        task0.x_retain[j : j + 32],
        task0.y_retain[j : j + 32],
    )
    for i, j in zip(range(0, 96, 32), range(0, 960, 320))
]
c0 = np.median(
    [
        abs((loss_grad(m0, xr_, yr_) @ loss_grad(m0, xf_, yf_, neg_ce)).item())
        for xf_, yf_, xr_, yr_ in pairs
    ]
)
print(
    f"  compare: median |⟨g_r, g_f⟩| of {len(pairs)} pairs of batches at θ0 = {c0:.5f}"
)
assert abs(eps_from_code_error(0.01, loss_r0, lr_def)) > 10 * c0
eps_explicit = (
    inspect.signature(REGISTRY["unilateral_surgery"]).parameters["eps"].default
)
print(
    f"defaults chosen by the oracle-free rule: implicit_surgery ε = {DEFAULTS['eps']}, "
    f"unilateral_surgery ε = {eps_explicit}"
)

# %% [markdown]
# The official hyperparameters were tuned for a ResNet-18 on CIFAR-10 with the code's log losses and Adam, so their
# literal translation to our network only illustrates the scale. Each of them demands a per-step retain
# improvement many times the size of the typical conflict term $|\langle g_r, g_f\rangle|$ of a forget and a retain
# batch at $\theta_0$. In the official code, the log losses and Adam also change the dynamics, and its forget
# objective (random labels) is different. None of this is a statement about the official results. It is a
# statement about the two symbols: a positive `error` and a positive $\epsilon$ point in opposite directions.
#
# **Which sign is better** is an empirical question, not a matter of convention. The oracle-free rule of chapter 02
# was run on held-out seeds over $\epsilon$ from $0.03$ down to $-3$ (the sweep is in the docstring of
# `implicit_surgery`). It picked $\epsilon = -1$ for the implicit method, and chapter 05's sweep picked the same for
# the explicit one (printed above): a required improvement, the sign of the official code, and at our scale of the
# same order as its translated values. More negative values ($\epsilon \le -2$) collapsed some held-out seeds.
# Demanding a retain improvement does not stop class-wise forgetting, because descent on the retain set itself
# lowers the logit of the forgotten class (chapter 02). Section 6.6 compares $\epsilon = 0$ with the default on the
# reported seeds, and §6.7 measures what $\epsilon$ does to the realised retain change.
#
# ## When does the dual step converge?
#
# Freeze the gradients: keep $\theta$ fixed, and after every trial step restore it (the step is measured, then
# undone). With an exact measurement, {eq}`eq-06-implicit` is then the ascent {eq}`eq-06-dual-ascent` on the
# parabola {eq}`eq-06-dual`. While $\lambda > 0$:
#
# $$
# \lambda_{k+1} = \lambda_k - \beta\big(c + \lambda_k G + \epsilon\big)
# \quad\Longrightarrow\quad
# \lambda_{k+1} - \lambda^* = (1 - \beta G)\,(\lambda_k - \lambda^*),
# $$ (eq-06-dual-recurrence)
#
# because $c + \lambda^* G + \epsilon = 0$ for an active constraint. The error shrinks by the factor $|1-\beta G|$
# per step, so (our derivation)
#
# $$
# \lambda_k \to \lambda^* \quad\Longleftrightarrow\quad 0 < \beta\,\|g_r\|^2 < 2 .
# $$ (eq-06-stability)
#
# For $\beta G \le 1$ the approach is monotone, for $1 < \beta G < 2$ it oscillates around $\lambda^*$ with
# shrinking amplitude. Above 2 the oscillation grows, and the projection turns it into a cycle. Starting from
# $\lambda = 0$, one step lands at $\beta G\lambda^*$, with error $(\beta G - 1)\lambda^*$. The next step would go to
# $\lambda^* - (\beta G - 1)^2\lambda^* < 0$, which is clipped back to 0. The iteration therefore alternates
# between $0$ and $\beta G\lambda^*$ for ever and never settles at $\lambda^*$. Note that it is $\beta G$ that matters,
# not $\beta$ alone: the same $\beta$ can be stable early in a run and unstable later, when $\|g_r\|^2$ has grown.
#
# **With momentum (our derivation).** In the library's loop the measured quantity is
# $s_k = \langle g_r, b_k\rangle$ with $b_k = \mu b_{k-1} + d(\lambda_k)$ ({eq}`eq-06-momentum-probe`, frozen
# gradients, $w = 0$). So $s_k = \mu s_{k-1} + c + G\lambda_k$ and $\lambda_{k+1} = \lambda_k - \beta(s_k + \epsilon)$.
# Around the fixed point, with $x = \beta G$, the pair (error of $\lambda$, $\beta\times$ error of $s$) evolves by the
# matrix $\begin{pmatrix}1 - x & -\mu\\ x & \mu\end{pmatrix}$, whose characteristic polynomial is
#
# $$
# z^2 - (1 + \mu - x)\,z + \mu = 0, \qquad \text{stable} \iff 0 < \beta\|g_r\|^2 < 2(1 + \mu).
# $$ (eq-06-stability-momentum)
#
# The stable range follows from the Jury conditions $p(1) = x > 0$, $p(-1) = 2(1+\mu) - x > 0$, $|\mu| < 1$; it is
# the stability range of the heavy-ball method. For small $x$ the slow root is $z \approx 1 - x/(1-\mu)$, so $\lambda$
# settles in about $(1-\mu)/(\beta G)$ steps, ten times faster than without momentum for $\mu = 0.9$.
#
# We check all of this three ways. **(a)** A quadratic toy, $\ell_r(\theta) = \langle b, \theta\rangle + \tfrac12 \kappa\|\theta\|^2$,
# with $\beta G \in \{0.5, 1.9, 2.1\}$. **(b)** The real network of §6.2 with frozen gradients (float64; the
# probe is the network's real retain loss at $\theta - \eta d(\lambda)$, so the finite-difference bias is in). **(c)**
# The toy with heavy-ball momentum $\mu = 0.9$, at $\beta G = 2.1$ (now stable) and $3.9$ (above $2(1+\mu) = 3.8$).


# %%
def frozen_dual(
    g_f, g_r, retain_loss, ratio, *, eps=0.0, lr=1e-4, iters=150, momentum=0.0
):
    """Implicit dual steps with θ frozen: each trial step θ − η·b is measured with the
    real loss and undone."""
    beta = ratio / float(g_r @ g_r)
    lam, buf, out = (
        torch.zeros((), dtype=g_f.dtype, device=g_f.device),
        torch.zeros_like(g_f),
        [],
    )
    base = retain_loss(torch.zeros_like(g_f))
    for _ in range(iters):
        buf = momentum * buf + (g_f + lam * g_r)  # d(λ) = g_f + λ g_r: frozen gradients
        lam = dual_step(lam, base, retain_loss(lr * buf), lr, eps, beta)
        out.append(float(lam))
    return np.array(out)


kappa = 0.05
b_toy = gr_toy  # ℓ_r(θ) = ⟨b, θ⟩ + ½ κ‖θ‖² around θ = 0
toy_loss = lambda step: (
    -(b_toy @ step) + 0.5 * kappa * step @ step
)  # evaluated at θ = −step
_, lam_star_t0 = unilateral_surgery(gf_toy, gr_toy, 0.0)
net_loss = lambda step: retain_loss_at(theta64 - step)
RATIOS = (0.5, 1.9, 2.1)
runs = {
    "toy": {r: frozen_dual(gf_toy, gr_toy, toy_loss, r) for r in RATIOS},
    "net": {r: frozen_dual(gf_net, gr_net, net_loss, r) for r in RATIOS},
    "momentum": {
        r: frozen_dual(gf_toy, gr_toy, toy_loss, r, iters=400, momentum=MOMENTUM)
        for r in (2.1, 3.9)
    },
}
targets = {
    "toy": float(lam_star_t0),
    "net": lam_star_net.item(),
    "momentum": float(lam_star_t0),
}
for kind, res in runs.items():
    for r, lam_path in res.items():
        tail = lam_path[-20:]
        print(
            f"{kind:8s} βG = {r}: last λ {tail[-1]:.5f} (λ* = {targets[kind]:.5f}); "
            f"last 20 iterates in [{tail.min():.4f}, {tail.max():.4f}]"
        )

lam_s = targets["toy"]
for r in (0.5, 1.9):
    assert (
        abs(runs["toy"][r][-1] - lam_s) < 1e-3 * lam_s
        and abs(runs["net"][r][-1] - targets["net"]) < 1e-2 * targets["net"]
    )
for kind in ("toy", "net"):
    tail = runs[kind][2.1][-20:]
    assert np.abs(tail - targets[kind]).min() > 0.9 * targets[kind], (
        "above 2 it never settles at λ*"
    )
    assert (tail[::2] < 1e-12).all() or (tail[1::2] < 1e-12).all(), (
        "... it cycles through λ = 0"
    )
    assert abs(tail.max() / targets[kind] - 2.1) < 0.05, "... and through βG·λ*"
assert abs(runs["momentum"][2.1][-1] - lam_s) < 1e-3 * lam_s, (
    "momentum: 2.1 < 2(1 + μ) is stable"
)
assert np.abs(runs["momentum"][3.9][-50:] - lam_s).max() > 0.5 * lam_s, (
    "momentum: 3.9 > 2(1 + μ) is not"
)
for x, stable in ((0.05, True), (2.1, True), (3.79, True), (3.81, False)):
    assert (
        np.abs(np.roots([1, -(1 + MOMENTUM - x), MOMENTUM])).max() < 1
    ) == stable  # (eq-06-stability-momentum)

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
SHOWN = {"toy": 40, "net": 40, "momentum": 150}
styles = {
    0.5: dict(lw=2),
    1.9: dict(lw=1.5),
    2.1: dict(lw=1, marker=".", ms=4),
    3.9: dict(lw=0.8, marker=".", ms=3),
}
for ax, kind, title in zip(
    axes,
    runs,
    (
        "(a) quadratic toy, plain step",
        "(b) the CNN, frozen gradients",
        f"(c) toy with momentum μ = {MOMENTUM}",
    ),
):
    for r in sorted(runs[kind], reverse=True):  # the unstable run first, underneath
        lam_path = runs[kind][r][: SHOWN[kind]]
        ax.plot(
            np.arange(1, len(lam_path) + 1),
            lam_path,
            label=rf"$\beta\|g_r\|^2 = {r}$",
            **styles[r],
        )
    ax.axhline(
        targets[kind], color="k", ls="--", lw=1, label=r"$\lambda^*$ (closed form)"
    )
    ax.set_xlabel("dual step $k$")
    ax.set_ylabel(r"$\lambda_k$")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
plt.show()

# %% [markdown]
# In all three panels the prediction of {eq}`eq-06-stability` and {eq}`eq-06-stability-momentum` holds. At
# $\beta G = 0.5$ the approach is monotone; at 1.9 it oscillates and converges; at 2.1 the iteration cycles between
# $0$ and $2.1\lambda^*$, on the toy and on the network alike. On the network the limit differs from $\lambda^*$ by
# the finite-difference bias of §6.2, less than one per cent at $\eta = 10^{-4}$. Momentum moves the bound to
# $2(1+\mu) = 3.8$: 2.1 becomes stable (with a slow, ringing approach), 3.9 does not.
#
# This is the mechanism behind a pitfall of this method: with a fixed $\beta$, the dual
# iteration is stable only while $\beta\|g_r\|^2$ stays in range. The official code sidesteps the choice of
# $\beta$ with Adam on $w$, which divides the step by a running RMS of $\delta$. The alternative, normalising $\beta$
# by $\|g_r\|^2$, needs $g_r$ itself, i.e. the second backward pass that the implicit method exists to avoid.
# Section 6.7 measures $\beta\|g_r\|^2$ along real runs.
#
# ## From scratch: the implicit step in a plain loop
#
# The loop is chapter 02's (SGD with momentum and weight decay, shuffled forget and retain batches drawn in the
# same order as the library: forget permutation first, then retain), with the four parts of one step listed in
# §6.2. It stops like the library does: as soon as the forget accuracy reaches `forget_target` (chapter 02),
# checked after every step (`check_every=1`, the library's default, as for GA) or after every pass over $D_f$
# (`check_every=None`). The optional `diag` callback receives, *before* each step, the batches and the
# model, so that §6.7 can compute the explicit $\lambda^*$ of exactly the step the method takes.


# %%
def my_implicit_surgery(
    model0,
    task,
    *,
    steps,
    lr,
    eps=0.0,
    beta=1.0,
    lam0=0.0,
    batch_size=32,
    seed=0,
    momentum=0.9,
    weight_decay=5e-4,
    stop=True,
    check_every=1,
    diag=None,
):
    """Implicit gradient surgery written out. Returns the model, λ after every step and
    the probe's finite difference (ℓ_r(θ_t) − ℓ_r(θ_{t+1}))/η of every step."""
    model = copy.deepcopy(model0).train()
    opt = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    gen = torch.Generator().manual_seed(seed)
    xf, yf, xr, yr = task.x_forget, task.y_forget, task.x_retain, task.y_retain
    # Endless shuffled mini-batches, a new permutation at every pass (chapter 02).
    forget_batches, retain_batches = (
        cycle_batches(len(yf), batch_size, gen, yf.device),
        cycle_batches(len(yr), batch_size, gen, yr.device),
    )
    every, target = (
        check_every or math.ceil(len(yf) / batch_size),
        forget_target(task, model0),
    )
    lam, lams, fds = torch.tensor(float(lam0), device=yf.device), [], []
    for t in range(steps):
        fi, ri = next(forget_batches).to(yf.device), next(retain_batches).to(yr.device)
        if diag is not None:
            diag(model, opt, xf[fi], yf[fi], xr[ri], yr[ri], lam)
        opt.zero_grad()
        logits = model(torch.cat([xf[fi], xr[ri]]))  # 1. one forward pass
        loss_before = F.cross_entropy(logits[len(fi) :], yr[ri])
        (
            -F.cross_entropy(logits[: len(fi)], yf[fi]) + lam * loss_before
        ).backward()  # 2. one backward: d(λ)
        opt.step()  # 3. the step
        with torch.no_grad():  # 4. the probe at θ_{t+1}
            loss_after = F.cross_entropy(model(xr[ri]), yr[ri])
        fd = (loss_before.detach() - loss_after) / lr
        lam = torch.clamp(lam - beta * (fd + eps), min=0.0)  # (eq-06-implicit)
        lams.append(lam.item())
        fds.append(fd.item())
        if stop and (t + 1) % every == 0 and accuracy(model, xf, yf) <= target:
            break
    return model.eval(), lams, fds


# %% [markdown]
# ### The same function in `unlearnlib`
#
# `unlearnlib.methods.implicit.implicit_surgery` runs this step through the shared loop `run_unlearning`. The
# step fills the gradients, and a post-step hook does the probe and `dual_step`. For the comparison we first remove
# the sampling order: with a batch larger than both sets every step is a full-batch step. The learning rate is
# large enough that the parameters move far more than the tolerance. $\lambda$ starts at 1 and a large $\beta$
# makes it move through the projection at 0 and back up, so the check covers every branch of
# {eq}`eq-06-implicit`.


# %%
def max_abs_diff(a, b):
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())
    )


theta0 = {k: v.detach().clone() for k, v in m0.state_dict().items()}
BIG, ATOL = 10_000, 1e-5
assert BIG >= len(task0.retain_idx)
check = dict(steps=4, lr=0.05, eps=0.01, lam0=1.0, batch_size=BIG)
hist_lib = []
lib = implicit_surgery(
    m0, task0, **check, dual_lr=100.0, stop_at=None, history=hist_lib
)
ours, hist_ours, _ = my_implicit_surgery(m0, task0, **check, beta=100.0, stop=False)
print(
    "λ, library:",
    np.round(hist_lib, 4).tolist(),
    " ours:",
    np.round(hist_ours, 4).tolist(),
)
print(
    f"largest parameter change {max_abs_diff(lib, m0):.2e}, "
    f"largest difference ours vs library {max_abs_diff(lib, ours):.1e}"
)
assert min(hist_lib) == 0.0 and max(hist_lib) > 1.0  # projected, then grew: not vacuous
np.testing.assert_allclose(hist_ours, hist_lib, rtol=1e-5, atol=1e-6)
assert max_abs_diff(lib, m0) > 50 * ATOL and max_abs_diff(lib, ours) < ATOL
assert all(torch.equal(v, m0.state_dict()[k]) for k, v in theta0.items()), (
    "the library mutated its input"
)

# %% [markdown]
# With the same generator calls our loop also reproduces the library on ordinary mini-batches. We check 40
# steps with the library's defaults, so the runs of §6.7, made with our loop and its diagnostic callback, are the
# library's runs.

# %%
hist_lib = []
lib = implicit_surgery(m0, task0, steps=40, stop_at=None, history=hist_lib, seed=0)
ours, hist_ours, _ = my_implicit_surgery(
    m0,
    task0,
    steps=40,
    lr=DEFAULTS["lr"],
    eps=DEFAULTS["eps"],
    beta=DEFAULTS["dual_lr"],
    batch_size=DEFAULTS["batch_size"],
    stop=False,
)
print(
    f"40 mini-batch steps: λ differs by at most "
    f"{np.abs(np.subtract(hist_lib, hist_ours)).max():.1e} "
    f"(λ reached {max(hist_lib):.3f});"
    f"\nparameters by {max_abs_diff(lib, ours):.1e} (moved {max_abs_diff(lib, m0):.1e})"
)
assert max(hist_lib) > 0 and np.allclose(hist_lib, hist_ours, rtol=1e-5, atol=1e-6)
assert max_abs_diff(lib, ours) < ATOL < max_abs_diff(lib, m0) / 10

# %% [markdown]
# ## Quality: implicit against explicit surgery and gradient ascent
#
# The paper's claim, as far as the abstract states it: the implicit version approximates the solution of the
# constrained problem at the cost of one back-propagation. Together with the explicit version it is meant to
# preserve utility better than plain unlearning. We run GA (chapter 02), explicit unilateral surgery
# (`unilateral_surgery`, chapter 05) and implicit surgery on the two standard tasks, class-wise forgetting of digit
# 3 and random forgetting of 10 %, over the profile's seeds. Every method uses its library defaults (printed), and
# each run is evaluated against its seed's retrain oracle. We keep the original model as a reference row.
#
# **How the defaults were chosen.** Like every default of the library: on held-out seeds 100–104, by the
# oracle-free rule of chapter 02 (highest retain accuracy among the settings whose forget accuracy reaches the
# target in class-wise forgetting of class 3). For `implicit_surgery` a first grid over $\eta$ and $\beta$ (at
# $\epsilon = 0$) and a second over $\epsilon$, $\beta$ and how often the stopping rule is checked moved the defaults
# from $\beta = 0.5$, $\epsilon = 0$ to $\beta = 10$, $\epsilon = -1$, checked after every step. The sweep is
# listed in the docstring of `implicit_surgery`. Larger values were worse. $\beta = 20$ kept less retain accuracy;
# at $\epsilon = 0$, $\beta \ge 50$ collapsed at least one held-out seed to predicting (almost) a single class, and
# so did $\epsilon \le -2$ at $\beta = 10$. The default therefore sits close to the unstable side; §6.7 shows why.
# Chapter 05 chose the explicit method's defaults by the same rule ($\epsilon = -1$, checked after every step, like
# GA), and all three methods share the learning rate $2\cdot10^{-4}$.
#
# Because the defaults demand a retain improvement ($\epsilon < 0$), we also run both surgery methods with the
# paper's reading, $\epsilon = 0$, on the class-wise task. The paper's comparison is of the two methods at the
# same $\epsilon$, so the claim "implicit matches explicit" is tested twice: at $\epsilon = 0$ and at the defaults.

# %%
METHODS = ["ga", "unilateral_surgery", "implicit_surgery"]
for name in METHODS:
    params = inspect.signature(REGISTRY[name]).parameters
    print(
        f"{name:19s}",
        ", ".join(
            f"{k}={params[k].default}"
            for k in ("epochs", "lr", "eps", "dual_lr", "check_every")
            if k in params
        ),
    )
EPS0 = {
    "unilateral_surgery (ε=0)": ("unilateral_surgery", {"eps": 0.0}),
    "implicit_surgery (ε=0)": ("implicit_surgery", {"eps": 0.0}),
}
VARIANTS = {
    "class": {
        "original": None,
        **{m: m for m in METHODS},
        **EPS0,
        "implicit_surgery_rl": "implicit_surgery_rl",  # the paper's setting, below
    },
    "random": {"original": None, **{m: m for m in METHODS}},
}
t_start = time.perf_counter()
results = {
    sc: compare_methods(
        v,
        sc,
        data=data,
        cfg=cfg,
        seeds=SEEDS,
        forget_class=FORGET_CLASS,
        progress=False,
    )
    for sc, v in VARIANTS.items()
}
print(f"both scenarios, seeds {SEEDS}: {time.perf_counter() - t_start:.1f} s")
for sc, c in results.items():
    print(
        f"== {sc} (mean ± 95 % CI over seeds {SEEDS}; first row: the retrain oracle) =="
    )
    print(c.table())
    print("steps per seed:")
    for m in c.methods[1:]:
        print(f"  {m:25s} {c.per_seed(m, 'steps').astype(int).tolist()}")

# %%
for sc, c in results.items():
    fig = c.plot(
        title=(
            f"Class-wise forgetting of digit {FORGET_CLASS}"
            if sc == "class"
            else "Random forgetting of 10 %"
        )
        + f" ({profile.dataset}, {len(SEEDS)} seeds; dashed: retrain oracle)"
    )
    plt.show()

# %% [markdown]
# What the numbers say, each with its assert. **Class-wise forgetting.**

# %%
cls = results["class"]
for m in cls.methods[1:]:
    print(
        f"{m:25s} gap per seed {cls.per_seed(m, 'gap').round(2).tolist()}, "
        f"mean {cls.mean(m, 'gap'):.2f} ± {cls.ci95(m, 'gap'):.2f}\n{'':26s}"
        f"RA {cls.per_seed(m, 'RA').round(1).tolist()}"
    )
imp, exp_ = "implicit_surgery", "unilateral_surgery"
imp0, exp0 = "implicit_surgery (ε=0)", "unilateral_surgery (ε=0)"


# Mean and standard error of the per-seed differences a - b (paired by seed).
paired = cls.paired


for a, b in ((imp, exp_), (imp0, exp0), (exp_, exp0)):
    (dg, sg), (dr, sr) = paired(a, b), paired(a, b, "RA")
    print(f"{a} − {b}: gap {dg:+.2f} ± {sg:.2f}, RA {dr:+.2f} ± {sr:.2f} (mean ± s.e.)")

# %% tags=["hide-input"]
ci_sum = lambda a, b: cls.ci95(a, "gap") + cls.ci95(b, "gap")
# A claim that a mean is lower is checked on the paired differences over seeds: lower by
# more than two standard errors. A claim that two settings match is checked as a
# difference of means within the sum of their 95 % intervals.
lower = lambda a, b, key="gap": paired(a, b, key)[0] + 2 * paired(a, b, key)[1] < 0
# 1. Both surgery methods (defaults) are closer to the oracle than GA on average. GA's
#    gap varies too much from seed to seed (it collapses on some) for a paired
#    statement.
for m in (imp, exp_):
    assert cls.mean(m, "gap") < cls.mean("ga", "gap")
# 2. At the defaults, implicit matches explicit: the difference of the means lies within
#    the seed CIs.
assert abs(cls.mean(imp, "gap") - cls.mean(exp_, "gap")) < ci_sum(imp, exp_)
# 3. The negative tolerance helps the explicit method, in gap and in retain accuracy.
assert lower(exp_, exp0) and lower(exp0, exp_, "RA")
# 4. Every method forgets the class: the stopping rule halts a run at chance-level
#    forget accuracy (10 %), so the mean UA is at least 90 % whenever the rule stops the
#    runs.
assert all(cls.mean(m, "UA") >= 90 for m in cls.methods[1:])

# %% [markdown]
# - **Both surgery methods beat GA** on average. They forget digit 3 and keep more of the retain and test
#   accuracy than GA, which loses several points of both. This is the paper's qualitative claim, and our data
#   support it.
# - **At the defaults, implicit matches explicit**, in the sense that the difference of the mean gaps lies within
#   the seed-to-seed noise.
# - **The tolerance matters to the explicit method.** Demanding improvement ($\epsilon = -1$) makes the explicit
#   method better than at $\epsilon = 0$, in gap and in retain accuracy, by more than two standard errors of the
#   per-seed differences.
# - **At $\epsilon = 0$, the paper's tolerance, we draw no conclusion from three seeds.** The implicit method's rows
#   at $\epsilon = 0$ vary strongly from seed to seed, and from one machine's arithmetic to another's: late in a run
#   its dual step can leave the stable range of §6.4 (§6.7 measures when), and a run that does so for long may lose
#   much of its retain accuracy before the stopping rule halts it.
#
# **Random forgetting of 10 %.**

# %%
rnd = results["random"]
print(
    "mean gap: "
    + ", ".join(f"{m} {rnd.mean(m, 'gap'):.2f}" for m in rnd.methods)
    + f"; oracle's UA {rnd.reference['UA']:.1f} %"
)
# 6. On digits, random forgetting hardly separates anything: every method is within the
#    seed noise of doing nothing.
ci_r = lambda m: rnd.ci95(m, "gap")
for m in METHODS:
    diff = abs(rnd.mean(m, "gap") - rnd.mean("original", "gap"))
    assert diff < ci_r(m) + ci_r("original"), m
assert all(rnd.mean(m, "gap") < 5 for m in rnd.methods)

# %% [markdown]
# As in chapter 02, random forgetting on digits does not separate the methods. The oracle classifies the
# forgotten samples nearly as well as the original model, and at this learning rate none of the three methods
# moves far from $\theta_0$ within its budget. The comparison says nothing about implicit against explicit surgery
# in this scenario. On CIFAR-scale data, where train and test accuracy differ by several points, it would.
#
# ### The paper's classification setting
#
# The implicit rows above use the book's forget objective, gradient ascent ($-\mathrm{CE}_f$). The official
# classification code of arXiv 2510.22124 fits $D_f$ to random labels instead (redrawn at every step among the
# other classes, as chapter 02's `random_label` does), keeps the tolerance of the paper's update non-negative, and
# clips the norm of the gradient of $L_f + \lambda L_r$ to 1 after the surgery. The library registers this
# setting as `implicit_surgery_rl`: random labels, $\epsilon = 0$ by default (a negative $\epsilon$ is refused),
# the clip, $\beta = 10$ and the learning rate $10^{-3}$ that the rule of chapter 02 picks for it on the held-out
# seeds (the table is in `unlearnlib.methods.surgery`). It keeps the projection $\lambda \ge 0$ of
# {eq}`eq-06-implicit` rather than the code's drifting $w$, and our dual step rather than the code's log losses
# and Adam. It ran in the class-wise experiment above, so each seed gives one paired difference against the
# book's form, at the defaults and at $\epsilon = 0$.

# %% tags=["hide-input"]
RL = "implicit_surgery_rl"
print(
    RL + ":",
    ", ".join(
        f"{k}={p.default}"
        for k, p in inspect.signature(REGISTRY[RL]).parameters.items()
        if p.default is not inspect.Parameter.empty
    ),
)
for b in (imp, imp0):
    print(f"{RL} − {b} (mean ± s.e. of the per-seed differences):")
    for key in ("gap", "RA", "TA", "steps"):
        d, se = paired(RL, b, key)
        print(f"  {key:5s} {d:+7.2f} ± {se:.2f}")
# 7. The paper's setting ends farther from the oracle than the book's form at its
#    defaults: the paired gap difference exceeds two standard errors. (That it forgets
#    the class is assert 4, which covers every row of the class-wise table.)
assert lower(imp, RL)

# %% [markdown]
# - **The paper's setting forgets the class too**, in fewer steps on average, and keeps a retain accuracy within
#   a fraction of a point of the book's form.
# - **At the book's default tolerance, the book's form ends closer to the oracle**, by a fraction of a point of
#   gap but by more than two standard errors of the per-seed differences.
# - **Against the book's objective at the same $\epsilon = 0$, three seeds separate nothing**: the paired
#   differences in gap and retain accuracy are within two standard errors. On some machines' arithmetic the
#   book's form at $\epsilon = 0$ collapses on one seed (the instability of §6.7), which makes those differences
#   large but no less noisy; the paper's setting, whose step the clip caps, did not collapse in our runs, but
#   three seeds cannot turn that into a claim. As for the explicit method in chapter 05, the forget objective and
#   the clip change the speed more than the result; the tolerance is what the rule of chapter 02 found to
#   matter.
#
# ## Inside a run: $\beta\|g_r\|^2$, $\lambda_t$ against $\lambda^*_t$, and what the probe measures
#
# We rerun implicit surgery with our loop on every seed of the class-wise task, once with the defaults and once
# with $\epsilon = 0$. At each step, before the step, the `diag` callback computes $g_f$ and $g_r$ of *that step's
# batches* (two extra backward passes, for the diagnosis only). From them it records $\|g_r\|^2$, the explicit
# $\lambda^*_t$ of chapter 05 for the same step and the same $\epsilon$, and $\langle g_r, d_t\rangle$ with
# $d_t = g_f + \lambda_t g_r$. After the step it records the realised step $b_t = (\theta_t - \theta_{t+1})/\eta$ and
# its inner product with $g_r$ ({eq}`eq-06-momentum-probe`). Each run must stop at the step where the library's run
# of §6.6 stopped: then it *is* that run.


# %%
def run_with_diagnostics(task, model0, seed, eps):
    """Our loop with the library's defaults (but eps) and budget, recording per step
    (2 extra backward passes)."""
    rec = {k: [] for k in ("lam", "lam_star", "G", "gd", "gb")}
    prev = {}

    def realised(model):  # ⟨g_r, b_t⟩ of the previous step, b_t = (θ_t − θ_{t+1})/η
        return (
            prev["g_r"] @ (prev["theta"] - flatten(list(model.parameters())).detach())
        ).item() / DEFAULTS["lr"]

    def diag(model, opt, xf, yf, xr, yr, lam):
        if prev:
            rec["gb"].append(realised(model))
        g_f, g_r = loss_grad(model, xf, yf, neg_ce), loss_grad(model, xr, yr)
        _, lam_star = unilateral_surgery(g_f, g_r, eps)
        rec["lam"].append(lam.item())
        rec["lam_star"].append(lam_star.item())
        rec["G"].append((g_r @ g_r).item())
        rec["gd"].append((g_r @ (g_f + lam * g_r)).item())
        prev.update(g_r=g_r, theta=flatten(list(model.parameters())).detach().clone())

    budget = int(
        round(
            DEFAULTS["epochs"]
            * math.ceil(len(task.forget_idx) / DEFAULTS["batch_size"])
        )
    )
    model, lams, fds = my_implicit_surgery(
        model0,
        task,
        steps=budget,
        lr=DEFAULTS["lr"],
        eps=eps,
        beta=DEFAULTS["dual_lr"],
        batch_size=DEFAULTS["batch_size"],
        seed=seed,
        check_every=DEFAULTS["check_every"],
        diag=diag,
    )
    rec["gb"].append(realised(model))
    out = {k: np.array(v) for k, v in rec.items()}
    out["fd"] = np.array(fds)
    return out, len(lams)


RUNS = {"default": (DEFAULTS["eps"], imp), "ε=0": (0.0, imp0)}
runs_diag = {name: {} for name in RUNS}
for seed in SEEDS:
    t_s, m0_s = (
        make_task(data, "class", forget_class=FORGET_CLASS, seed=seed),
        original_model(data, cfg, seed=seed, device=device),
    )
    for name, (eps_v, _) in RUNS.items():
        runs_diag[name][seed] = run_with_diagnostics(t_s, m0_s, seed, eps_v)
for name, (_, label) in RUNS.items():
    ours_steps, lib_steps = (
        [runs_diag[name][s][1] for s in SEEDS],
        cls.per_seed(label, "steps").astype(int).tolist(),
    )
    print(f"{name:8s} steps: our loop {ours_steps}, library (§6.6) {lib_steps}")
    assert ours_steps == lib_steps, (
        "our loop stops where the library stopped: the same runs"
    )

# %%
stats = {name: {} for name in RUNS}
for name in RUNS:
    for seed, (r, taken) in runs_diag[name].items():
        bG = DEFAULTS["dual_lr"] * r["G"]
        above2 = np.flatnonzero(bG > 2)
        thirds = np.array_split(np.arange(taken), 3)
        stats[name][seed] = s = dict(
            med=np.median(bG),
            max=bG.max(),
            frac2=(bG > 2).mean(),
            frac38=(bG > 2 * (1 + MOMENTUM)).mean(),
            first2=above2[0] if len(above2) else None,
            steps=taken,
            rel_b=np.median(np.abs(r["fd"] - r["gb"]) / np.abs(r["gb"])),
            rel_d=np.median(np.abs(r["fd"] - r["gd"]) / np.abs(r["gd"])),
            fd_med=np.median(r["fd"]),
            rho=spearmanr(r["lam"], r["lam_star"])[0],
            ratio=r["lam"].mean() / r["lam_star"].mean(),
            grow_lam=r["lam"][thirds[2]].mean() / max(r["lam"][thirds[0]].mean(), 1e-3),
            grow_star=r["lam_star"][thirds[2]].mean()
            / max(r["lam_star"][thirds[0]].mean(), 1e-3),
            extra=np.mean((r["lam_star"] == 0) & (r["lam"] > 0)),
            G_range=(r["G"].min(), r["G"].max()),
        )
        print(
            f"{name:8s} seed {seed}: {taken} steps; ‖g_r‖² from {s['G_range'][0]:.1e} "
            f"to {s['G_range'][1]:.1e}\n{'':11s}β‖g_r‖² median {s['med']:.3f}, "
            f"max {s['max']:.1f}, > 2 on {100 * s['frac2']:.1f} % of steps "
            f"(first: {s['first2']}), > 2(1+μ) on {100 * s['frac38']:.1f} %"
        )
        print(
            f"{'':11s}probe vs ⟨g_r,b_t⟩: rel. error {s['rel_b']:.3f}, "
            f"vs ⟨g_r,d_t⟩ {s['rel_d']:.3f}; median probe {s['fd_med']:+.3f}\n{'':11s}"
            f"λ_t vs λ*_t: Spearman {s['rho']:+.2f}, mean ratio {s['ratio']:.2f}, "
            f"growth ×{s['grow_lam']:.0f} / ×{s['grow_star']:.0f}; "
            f"λ > 0 where λ* = 0 on {100 * s['extra']:.0f} % of steps"
        )

# %%
r0, taken0 = runs_diag["ε=0"][SEEDS[0]]
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
steps_ax = np.arange(1, taken0 + 1)
axes[0].plot(
    steps_ax,
    r0["lam_star"],
    ".",
    ms=3,
    color="C1",
    alpha=0.6,
    label=r"explicit $\lambda^*_t$ (same batches)",
)
k = 10
axes[0].plot(
    steps_ax[k - 1 :],
    np.convolve(r0["lam_star"], np.ones(k) / k, mode="valid"),
    color="C1",
    label=rf"$\lambda^*_t$, mean of {k} steps",
)
axes[0].plot(steps_ax, r0["lam"], color="C0", lw=1.5, label=r"implicit $\lambda_t$")
axes[0].set_yscale("symlog", linthresh=0.1)
axes[0].set_xlabel("step")
axes[0].set_ylabel(r"$\lambda$ (symmetric log scale)")
axes[0].set_title(rf"Multipliers along the run ($\epsilon = 0$, seed {SEEDS[0]})")
axes[0].legend(fontsize=8)
for name, ls in (("default", "-"), ("ε=0", ":")):
    for i, (seed, (r, taken)) in enumerate(runs_diag[name].items()):
        axes[1].semilogy(
            np.arange(1, taken + 1),
            DEFAULTS["dual_lr"] * r["G"],
            ls,
            color=f"C{i}",
            lw=0.8,
            label=f"seed {seed}, {name}",
        )
axes[1].axhline(2, color="k", ls="--", lw=1, label="2 (plain step)")
axes[1].axhline(2 * (1 + MOMENTUM), color="k", ls="-.", lw=1, label=r"$2(1+\mu)$")
axes[1].set_xlabel("step")
axes[1].set_ylabel(r"$\beta\|g_r\|^2$")
axes[1].set_title(rf"Dual step size, $\beta$ = {DEFAULTS['dual_lr']}")
axes[1].legend(fontsize=7, ncol=2)
lin = np.quantile(np.abs(r0["gb"]), 0.2)
axes[2].plot(
    r0["gd"], r0["fd"], ".", ms=4, color="C2", label=r"vs $\langle g_r, d_t\rangle$"
)
axes[2].plot(
    r0["gb"],
    r0["fd"],
    ".",
    ms=4,
    color="C0",
    label=r"vs $\langle g_r, b_t\rangle$ (momentum incl.)",
)
lim = np.abs(np.concatenate([r0["gb"], r0["gd"], r0["fd"]])).max() * 1.2
axes[2].plot([-lim, lim], [-lim, lim], "k--", lw=1)
for set_scale in (axes[2].set_xscale, axes[2].set_yscale):
    set_scale("symlog", linthresh=lin)
axes[2].set_xlabel("inner product (symmetric log scale)")
axes[2].set_ylabel(r"probe $(\ell_r(\theta_t) - \ell_r(\theta_{t+1}))/\eta$")
axes[2].set_title(rf"What the probe measures ($\epsilon = 0$, seed {SEEDS[0]})")
axes[2].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
for seed in SEEDS:
    d0, dd = stats["ε=0"][seed], stats["default"][seed]
    for s in (d0, dd):
        # the probe measures the realised (momentum) step, and not the direction d_t
        assert s["rel_b"] < 0.15 and s["rel_d"] > 3 * s["rel_b"]
        # β‖g_r‖² is far inside the stable range for most of the run (median below a
        # quarter of the bound 2) and leaves it on fewer than one step in four
        assert s["med"] < 0.5 and s["frac2"] < 0.25
    # with ε = 0 it leaves the range only in the second half of the run, when the retain
    # gradient has grown
    assert d0["first2"] is not None and d0["first2"] > d0["steps"] / 2
    # with ε = 0, λ_t follows the explicit λ*_t roughly: both grow over the run, and
    # their ranks correlate, by more than three standard errors of a rank correlation
    # under independence, 1 / sqrt(steps - 1)
    assert d0["grow_lam"] > 10 and d0["grow_star"] > 10
    assert d0["rho"] > 3 / (d0["steps"] - 1) ** 0.5
    # ... but not step by step: on more than one step in twenty it mixes in retain
    # descent where the explicit λ*_t is 0 (the binomial error of the share is below
    # 0.03)
    assert d0["extra"] > 0.05
    # the negative tolerance shows in the realised steps: a retain improvement, larger
    # than with ε = 0
    assert dd["fd_med"] > 0 and dd["fd_med"] > d0["fd_med"]
    # and with ε < 0 the step-by-step agreement with λ*_t is gone
    assert dd["rho"] < d0["rho"] - 0.2

# %% [markdown]
# Five observations, each asserted on every seed:
#
# - **The probe measures the realised step.** The finite difference agrees with $\langle g_r, b_t\rangle$ to within
#   the bias of §6.2 and the rounding of float32 losses. It is far from $\langle g_r, d_t\rangle$, the quantity of
#   the derivation without momentum. The implicit method therefore constrains the retain change of the step that
#   the optimiser actually takes, momentum and weight decay included. The explicit method constrains $d_t$ and lets
#   the optimiser add the accumulated past to it (chapter 05 measured what that does). This is one concrete
#   difference between the two methods; {ref}`ex-06-momentum` isolates its effect on the results of §6.6.
# - **$\beta\|g_r\|^2$ spans orders of magnitude.** $\|g_r\|^2$ of a 32-sample retain batch varies by three or more
#   orders of magnitude within a run. The default $\beta$ keeps $\beta\|g_r\|^2$ far below 2 for most steps, which is
#   why $\lambda$ needs many steps to react (about $(1-\mu)/(\beta G)$, §6.4). It crosses 2, and sometimes
#   $2(1+\mu)$, on a minority of the steps (fewer than one in four). With $\epsilon = 0$ this happens only in the
#   second half of the run, when forgetting
#   starts to damage the retain batches and their gradients grow; there $\lambda$ jumps and falls back to 0 (left
#   panel), the cycle of §6.4 in a real run. A larger $\beta$ reacts faster early on and crosses the bound sooner and
#   more often. This is the trade-off behind the collapse of held-out runs at larger $\beta$, and the reason why
#   single runs at $\epsilon = 0$ can differ so much (§6.6).
# - **With $\epsilon = 0$, $\lambda_t$ tracks $\lambda^*_t$ roughly.** Both are close to 0 at the start. Both grow by
#   more than an order of magnitude from the first to the last third of the run, and their ranks correlate. They are not equal step by step: the explicit $\lambda^*_t$ reacts to
#   each pair of batches, while $\lambda_t$ is a running correction that lags and smooths it. On more than one step in
#   twenty the implicit method adds retain descent where the explicit $\lambda^*_t$ of the same batches is 0.
# - **With the default $\epsilon = -1$ the step-by-step link is gone.** The explicit multiplier is then
#   $\lambda^*_t = (1 - \langle g_r, g_f\rangle)/\|g_r\|^2$, dominated by $1/\|g_r\|^2$ of the batch, which jumps by
#   orders of magnitude from batch to batch. The implicit $\lambda_t$ cannot follow such jumps; it settles at a level
#   at which the realised steps improve the retain loss on average, as a negative tolerance demands (the median
#   probe is positive, and larger than at $\epsilon = 0$).
# - **So the implicit method is not the explicit method computed more cheaply.** Its $\lambda$ carries information
#   across steps, and it constrains the realised step.
#
# ## Cost: backward passes and time per step
#
# We count passes with a forward hook on the model (`unlearnlib.diagnostics.count_passes`): every forward call is
# counted, and if its output requires a gradient, a tensor hook on the output counts each backward pass through
# it. The hook is a plain function over a dict, so it survives the deep copy every method makes of its input.
# The passes per step are the difference between a run of 11 steps and a run of 1, divided by 10. The collapse
# guard of chapter 12 is switched off for these runs: its checks are forward passes of the loop, not of a step.
# Then we time one step of each method as the benchmark does (`unlearnlib.bench.step_times`): the difference
# between a run of 24 and a run of 4 steps, divided by 20, the methods in turn, median of three rounds.

# %%
STEPS = 10


def count_run(name, steps):
    counted = copy.deepcopy(m0)
    counts = count_passes(counted)
    REGISTRY[name](counted, task0, steps=steps, stop_at=None, guard=None)
    return counts


# Per step: the difference between a run of STEPS + 1 steps and one of 1 step, so that
# what a call does once (such as checking that the model accepts the task's inputs) is
# not counted as a cost per step.
passes = {}
for name in METHODS:
    long, short = count_run(name, STEPS + 1), count_run(name, 1)
    passes[name] = {k: (long[k] - short[k]) / STEPS for k in long}
SAMPLES_BWD = {
    "ga": 1,
    "unilateral_surgery": 2,
    "implicit_surgery": 2,
}  # batches whose samples go through backward


times = step_times(
    METHODS, m0, task0, batch_size=32, budgets=(4, 24), rounds=3
)  # as in chapter 05
for name in METHODS:
    print(
        f"{name:19s} per step: {passes[name]['forward']:.0f} forward, "
        f"{passes[name]['backward']:.0f} backward, {SAMPLES_BWD[name]} batch(es) of "
        f"samples through backward;\n{'':20s}{1e3 * np.median(times[name]):.2f} ms "
        f"= {np.median(times[name] / times['ga']):.2f} x GA "
        f"(this machine, {torch.get_num_threads()} thread(s))"
    )
assert passes["implicit_surgery"] == {"forward": 2, "backward": 1}
assert passes["unilateral_surgery"] == {"forward": 2, "backward": 2}
assert passes["ga"] == {"forward": 1, "backward": 1}

# %% [markdown]
# The counts confirm the paper's accounting: the implicit step has **one** backward pass (and one extra forward
# pass without gradients), the explicit step two, GA one. Whether this halves the *time* depends on what a pass
# costs, and the timings above (not asserted: they depend on the machine and its load) show that it need not.
#
# - In the library, the explicit method runs its two backward passes on two separate batches of 32, and the
#   implicit method runs one backward pass over the 64 samples of both. The number of samples going through
#   backward is the same, and the implicit method adds a forward pass over 32. On a CPU, where the cost of a pass
#   grows with the number of samples, the two methods should therefore cost about the same, and both well over
#   a GA step, which processes only the 32 forget samples. The printed ratios (noisy on a shared machine) are of
#   that kind. A budget such as "at most 1.5 GA steps" for the implicit step cannot be met this way on a CPU.
# - The saving is real where a pass has a large fixed cost. On a GPU with small models, kernel-launch latency
#   dominates and a 64-sample pass costs about as much as a 32-sample one. At scale there are further savings: no
#   second pass through a large graph, no two flat $P$-vectors in memory, no global inner products (which, under
#   data parallelism, would need extra reductions). We could not check the GPU case here. The repository's
#   benchmark command measures it: `python -m unlearnlib.bench --step-cost --methods
#   ga,unilateral_surgery,implicit_surgery` writes the ratios to GA for the device it runs on.

# %% [markdown]
# ### At the tuned values, over ten seeds
#
# The defaults above are this chapter's. Chapter 12 re-tunes every method with one protocol (the same candidates
# around each default, the same budget, an oracle-free rule) and runs each at its chosen values on ten seeds, with
# the noise floor and Holm-corrected paired tests. Both surgeries, in both settings, as they came out there:

# %%
IMPLICIT = ["implicit_surgery", "unilateral_surgery", "implicit_surgery_rl"]
print(records.format_tuned(["ga", "neggrad_plus", *IMPLICIT]))
tuned = {
    s: records.verdicts(records.load_bench(f"bench_{s}"), IMPLICIT)
    for s in ("class3", "random10")
}
# Class-wise: both surgeries decidedly closer than GA and decidedly farther than
# NegGrad+; the classification setting decidedly farther than NegGrad+.
for m in ("implicit_surgery", "unilateral_surgery"):
    assert tuned["class3"][m] == {"ga": -1, "neggrad_plus": 1}, m
assert tuned["class3"]["implicit_surgery_rl"]["neggrad_plus"] == 1
assert not any(v for row in tuned["random10"].values() for v in row.values())

# %% [markdown]
# At the tuned values both surgeries, explicit and implicit, beat gradient ascent decidedly and lose to NegGrad+
# decidedly, both about twenty noise floors from the oracle (the protocol chose $\epsilon = -1$ for both, as this
# chapter's rule did); the classification setting is farther still (on one kernel family; with models trained on
# another, NegGrad+ misses its target on one seed and the verdicts against it are undecided, chapter 12). Random
# forgetting decides nothing. The implicit
# method's advantage is its cost, one backward pass per step, not its quality.

# %% [markdown]
# ## Summary
#
# - The unilateral problem {eq}`eq-06-primal` has the concave dual {eq}`eq-06-dual`. Its derivative is the
#   constraint at the current direction, $-(\langle g_r, d(\lambda)\rangle + \epsilon)$, and its maximiser over
#   $\lambda \ge 0$ is chapter 05's $\lambda^*$ (checked, with strong duality).
# - The finite difference {eq}`eq-06-fd` replaces the inner product by a measured retain-loss change. Its bias is
#   $-\tfrac{\eta}{2}d^\top H_r d$ for small steps (checked on the network), of the same sign and order at training step sizes,
#   where ReLU units switch. Substituted into projected dual ascent it gives the paper's update
#   {eq}`eq-06-implicit`: one backward pass of $L_f + \lambda L_r$ and one extra forward pass per step (counted). With
#   momentum, the probe measures the realised step $b_t$, not $d_t$ ({eq}`eq-06-momentum-probe`, measured).
# - The paper's $\epsilon$ is a tolerance. The official code's `error` is, to first order, the tolerance
#   $\epsilon = -\texttt{error}\cdot\ell_r/\eta$ ({eq}`eq-06-code-eps`), i.e. a demanded improvement. On our task the
#   oracle-free rule prefers the code's sign: it chose $\epsilon = -1$ for both surgery methods.
# - With frozen gradients the dual step converges iff $0 < \beta\|g_r\|^2 < 2$ ({eq}`eq-06-stability`). Above the
#   bound, the projection turns the divergence into a cycle between $0$ and $\beta\|g_r\|^2\lambda^*$. With momentum
#   $\mu$ the bound is $2(1+\mu)$ ({eq}`eq-06-stability-momentum`). All of this was seen on a toy and on the network.
# - In real runs $\beta\|g_r\|^2$ varies over orders of magnitude. It stays far inside the bound for most of the run
#   and crosses it on a minority of steps. At $\epsilon = 0$, $\lambda_t$ tracks the explicit $\lambda^*_t$ roughly, as a
#   lagging, smoothed version of it; at $\epsilon = -1$ the explicit $\lambda^*_t$ is dominated by
#   $1/\|g_r\|^2$ of the batch, and the step-by-step link disappears.
# - On class-wise forgetting both surgery methods beat GA on average. At the defaults implicit surgery matches
#   explicit surgery within the seed noise; at $\epsilon = 0$ three seeds allow no conclusion. Random
#   forgetting on digits separates nothing. Cost: the backward passes halve, but the CPU time per step does not,
#   because the same samples go through backward. At the values chapter 12's protocol chooses, over ten seeds, both
#   surgeries beat GA and lose to NegGrad+.

# %% [markdown]
# ## Exercises
#
# The exercises practise the dual view of this chapter: the frozen-gradient iteration and its stability, what the
# recorded probes reveal about $\|g_r\|^2$, and how tolerance, momentum and the probe shape a real run. The two
# exercises marked "graded" come with tests.

# %% tags=["exercise-setup"]
import math

import numpy as np
import torch

# A conflicting pair of frozen gradients, described by the two numbers the dual step
# sees: c = <g_r, g_f> < 0 and G = |g_r|^2; with the tolerance eps the closed-form
# multiplier of chapter 05 is lambda* = (-c - eps) / G = 0.325.
ex_c, ex_G, ex_eps = -1.5, 4.0, 0.2

# %% [markdown]
# ```{exercise} The dual iteration with frozen gradients
# :label: ex-06-dual-iterates
#
# *code · graded, 4 points · about 1 CPU minute*
#
# Write `dual_iterates`, the implicit dual step of {eq}`eq-06-implicit` with frozen gradients and an *exact*
# probe, so that the whole iteration depends only on $c = \langle g_r, g_f\rangle$, $G = \|g_r\|^2$, $\epsilon$,
# $\beta$ and the momentum $\mu$ of the optimiser. With the buffer $b_k = \mu b_{k-1} + d(\lambda_k)$, $b_{-1} = 0$
# (weight decay off, §6.4), the probe of step $k$ is $s_k = \langle g_r, b_k\rangle = \mu s_{k-1} + c + G\lambda_k$
# ({eq}`eq-06-momentum-probe`), and $\lambda_{k+1} = \max(0, \lambda_k - \beta(s_k + \epsilon))$. Return the
# multipliers *after* each step, $\lambda_1, \dots, \lambda_{\text{steps}}$, not the starting value. Then check
# with your function the three regimes of §6.4: monotone or ringing convergence below the bound, the cycle through 0
# above it, and the bound $2(1+\mu)$ with momentum.
# ```

# %% tags=["remove-cell", "graded"]
def dual_iterates(c, G, eps, beta, steps, momentum=0.0, lam0=0.0):
    """The implicit dual iteration with frozen gradients and an exact probe.

    c = <g_r, g_f> and G = |g_r|^2 (floats), eps the tolerance, beta the dual step,
    momentum the optimiser's mu, lam0 the starting multiplier. Step k measures
    s_k = mu s_{k-1} + c + G lambda_k (s_{-1} = 0) and sets
    lambda_{k+1} = max(0, lambda_k - beta (s_k + eps)).
    Returns a float64 tensor of shape [steps]: lambda_1, ..., lambda_steps.
    """
    # BEGIN SOLUTION
    lam, s, out = float(lam0), 0.0, []
    for _ in range(steps):
        s = momentum * s + c + G * lam  # <g_r, b_k>, b_k = mu b_{k-1} + d(lambda_k)
        lam = max(0.0, lam - beta * (s + eps))
        out.append(lam)
    return torch.tensor(out, dtype=torch.float64)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Below the bound (beta G = 0.5): the first step from 0 is beta (-c - eps), and the
# iteration converges to lambda* (the error shrinks by 0.5 per step). Tolerances: a few
# float32 roundings (1e-6 relative), so that a float32 answer passes too.
ex_star = (-ex_c - ex_eps) / ex_G
ex_lam = torch.as_tensor(dual_iterates(ex_c, ex_G, ex_eps, 0.5 / ex_G, 200)).double()
assert tuple(ex_lam.shape) == (200,)
assert abs(ex_lam[0].item() - 0.5 / ex_G * (-ex_c - ex_eps)) < 1e-6 * ex_star
assert abs(ex_lam[-1].item() - ex_star) < 1e-6 * ex_star

# %% tags=["remove-cell", "graded-test", "hidden"]
# Above the bound (beta G = 2.1, no momentum): from 0 the iteration lands on
# 2.1 lambda*, overshoots below 0, is clipped to 0, and repeats for ever.
ex_star = (-ex_c - ex_eps) / ex_G
ex_lam = torch.as_tensor(dual_iterates(ex_c, ex_G, ex_eps, 2.1 / ex_G, 40)).double()
assert tuple(ex_lam.shape) == (40,)
assert (ex_lam[1::2] == 0).all()
assert ((ex_lam[0::2] - 2.1 * ex_star).abs() < 1e-6 * ex_star).all()

# %% tags=["remove-cell", "graded-test", "hidden"]
# Heavy-ball momentum mu = 0.9: beta G = 2.1 is now stable, and the fixed point is
# <g_r, b> = -eps with b = d / (1 - mu), i.e. c + G lambda = -(1 - mu) eps; at 3.9 > 3.8
# the iteration does not settle.
ex_fixed = (-ex_c - 0.1 * ex_eps) / ex_G
ex_lam = torch.as_tensor(
    dual_iterates(ex_c, ex_G, ex_eps, 2.1 / ex_G, 1000, momentum=0.9)
)
assert abs(ex_lam[-1].item() - ex_fixed) < 1e-6 * ex_fixed
ex_lam = torch.as_tensor(
    dual_iterates(ex_c, ex_G, ex_eps, 3.9 / ex_G, 1000, momentum=0.9)
)
assert (ex_lam[-100:] - ex_fixed).abs().max().item() > 0.1 * ex_fixed

# %% tags=["remove-cell", "graded-test", "hidden"]
# An inactive constraint (c + eps > 0, lambda* = 0) from lambda_0 = 2: the first step is
# 2 - beta (c + 2 G + eps), and the projection holds the multiplier at 0 from then on.
ex_beta = 0.5 / ex_G
ex_lam = torch.as_tensor(
    dual_iterates(0.5, ex_G, ex_eps, ex_beta, 50, lam0=2.0)
).double()
assert abs(ex_lam[0].item() - (2.0 - ex_beta * (0.5 + 2.0 * ex_G + ex_eps))) < 1e-6
assert (ex_lam[10:] == 0).all()

# %% [markdown]
# ```{exercise} Reading ‖g_r‖² off the dual records
# :label: ex-06-curvature
#
# *code · graded, 3 points · about 1 CPU minute*
#
# A fixed $\beta$ is stable only while $\beta\|g_r\|^2 < 2$ (or $2(1+\mu)$), and $\|g_r\|^2$ is exactly what the
# implicit method never computes. It can be read off what the method does record. By {eq}`eq-06-dual-derivative`
# the signal $\tilde\delta_t$ of {eq}`eq-06-implicit` estimates $-q'(\lambda_t) = c + \epsilon + \lambda_t\|g_r\|^2$:
# while the gradients change little, $\tilde\delta$ *grows* by $\|g_r\|^2$ per unit of $\lambda$. Write
# `curvature_estimates`, which takes the records of $R$ windows of $T$ steps each (one row per window) and returns,
# per window, the least-squares slope of $\tilde\delta$ against $\lambda$ with an intercept, which estimates
# $\|g_r\|^2$. A window in which $\lambda$ does not move carries no information: return NaN for it.
# ```

# %% tags=["remove-cell", "graded"]
def curvature_estimates(lams, deltas):
    """Least-squares slopes of deltas against lams, one per row.

    lams, deltas: float tensors of shape [R, T] (R windows of T steps; row r holds the
    multipliers lambda_t and the dual signals delta_t of window r). Fits
    delta = a + s lambda by least squares in each row and returns the slopes s, a
    tensor of shape [R]; NaN for a row whose lambdas are all equal.
    """
    # BEGIN SOLUTION
    lams, deltas = lams.double(), deltas.double()
    lc = lams - lams.mean(dim=1, keepdim=True)
    dc = deltas - deltas.mean(dim=1, keepdim=True)
    return (lc * dc).sum(dim=1) / (lc * lc).sum(
        dim=1
    )  # 0 / 0 = NaN for constant lambda
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Exact records delta = c + eps + G lambda: the slopes are the G of each window,
# whatever the intercepts.
ex_l = torch.tensor([[0.0, 0.1, 0.3, 0.2, 0.5], [1.0, 0.0, 2.0, 0.5, 1.5]])
ex_true = torch.tensor([3.0, 0.5])
ex_d = torch.tensor([[-2.0], [1.0]]) + ex_true[:, None] * ex_l
ex_s = torch.as_tensor(curvature_estimates(ex_l, ex_d)).double()
assert tuple(ex_s.shape) == (2,)
assert torch.allclose(ex_s, ex_true.double(), rtol=1e-5, atol=0)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Noisy records, 3 windows of 7 steps, against NumPy's least-squares fit (float64
# inputs; 1e-6 relative admits an answer computed in float32).
ex_gen = torch.Generator().manual_seed(61)
ex_l = torch.rand(3, 7, generator=ex_gen, dtype=torch.float64)
ex_d = (
    torch.tensor([[0.4], [-1.0], [2.0]], dtype=torch.float64)
    + torch.tensor([[5.0], [0.2], [1.0]], dtype=torch.float64) * ex_l
    + 0.3 * torch.randn(3, 7, generator=ex_gen, dtype=torch.float64)
)
ex_ref = torch.tensor(
    [np.polyfit(ex_l[r].cpu().numpy(), ex_d[r].cpu().numpy(), 1)[0] for r in range(3)]
)
ex_s = torch.as_tensor(curvature_estimates(ex_l, ex_d)).double()
assert tuple(ex_s.shape) == (3,)
assert torch.allclose(ex_s, ex_ref, rtol=1e-6, atol=1e-9)

# %% tags=["remove-cell", "graded-test", "hidden"]
# More windows than steps (4 x 3); a window where lambda stayed at 0 (the projection
# held it) gives NaN; shifting lambda by a constant changes no slope.
ex_l = torch.tensor(
    [[0.0, 0.0, 0.0], [0.2, 0.4, 0.9], [1.0, 3.0, 2.0], [0.5, 0.1, 0.3]],
    dtype=torch.float64,
)
ex_d = torch.tensor(
    [[0.3, -0.2, 0.1], [1.0, 1.5, 2.0], [0.0, 4.0, 1.0], [-1.0, 0.5, 0.0]],
    dtype=torch.float64,
)
ex_s = torch.as_tensor(curvature_estimates(ex_l, ex_d)).double()
ex_ref = torch.tensor(
    [np.polyfit(ex_l[r].cpu().numpy(), ex_d[r].cpu().numpy(), 1)[0] for r in (1, 2, 3)]
)
assert tuple(ex_s.shape) == (4,) and torch.isnan(ex_s[0])
assert torch.allclose(ex_s[1:], ex_ref, rtol=1e-6, atol=1e-9)
ex_s2 = torch.as_tensor(curvature_estimates(ex_l[1:] + 10.0, ex_d[1:])).double()
assert torch.allclose(ex_s2, ex_ref, rtol=1e-6, atol=1e-9)

# %% [markdown]
# ```{exercise} Stability bound with weight decay
# :label: ex-06-weight-decay
#
# *derivation · no computing*
#
# Redo the derivation of {eq}`eq-06-stability-momentum` with the weight-decay term $w\theta$ in the buffer,
# $b_k = \mu b_{k-1} + d(\lambda_k) + w\theta$ ($\theta$ still frozen). Does the stability bound change? Does the
# fixed point?
# ```

# %% [markdown]
# ```{solution-start} ex-06-weight-decay
# :class: dropdown
# ```
# Take the inner product of the buffer with $g_r$. With $\gamma = \langle g_r, \theta\rangle$ (a constant, since
# $\theta$ is frozen) the probe is
#
# $$
# s_k = \mu s_{k-1} + c + w\gamma + G\lambda_k, \qquad \lambda_{k+1} = \max\big(0, \lambda_k - \beta(s_k + \epsilon)\big).
# $$
#
# Weight decay only replaces $c$ by $c + w\gamma$. The deviations from the fixed point therefore evolve by the
# same matrix $\begin{pmatrix}1 - x & -\mu\\ x & \mu\end{pmatrix}$, $x = \beta G$, as without it: **the bound is
# unchanged**, $0 < \beta\|g_r\|^2 < 2(1+\mu)$. The **fixed point moves**: $s = -\epsilon$ and
# $s = \mu s + c + w\gamma + G\lambda$ give
#
# $$
# \lambda_\infty = \max\Big(0,\ \frac{-c - w\langle g_r, \theta\rangle - (1-\mu)\epsilon}{\|g_r\|^2}\Big).
# $$
#
# The implicit method constrains the realised step, and weight decay is part of it: when the decay itself
# lowers the retain loss ($\langle g_r, \theta\rangle > 0$ makes $-\eta w\theta$ a descent step) the method mixes in
# less retain gradient, and more when it raises it. The explicit method of chapter 05 never sees this term.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Why the probe needs its own forward pass
# :label: ex-06-fast-variant
#
# *experiment · about 1 CPU minute*
#
# The probe forward pass of step 4 in §6.2 could be saved: the next step computes the retain loss at
# $\theta_{t+1}$ anyway, on the *next* retain batch. Using that loss in place of $\ell_r(\theta_{t+1})$ on the same
# batch adds to the finite difference the term $(\ell_{B_t}(\theta_{t+1}) - \ell_{B_{t+1}}(\theta_{t+1}))/\eta$, a
# difference of two batches' losses at the same parameters. On each seed's original model (class-wise task),
# measure the standard deviation of this term over 20 pairs of consecutive retain batches of 32 at the default
# $\eta$, and compare it with the size of the signal, the median $|\langle g_r, g_f\rangle|$ over the same retain
# batches paired with forget batches. Why is the saving hopeless here, and what would it take to make it work?
# ```

# %% [markdown]
# ```{solution-start} ex-06-fast-variant
# :class: dropdown
# ```
# The code below computes both numbers on seeds 0-2 of the `ci` profile. Over those seeds the batch-to-batch term
# has a standard deviation of 12-25, against a median signal $|\langle g_r, g_f\rangle|$ of 0.002-0.010: the noise
# is three to four orders of magnitude larger than the signal. The reason is the division by
# $\eta = 2\cdot10^{-4}$. The step changes the retain loss by about $\eta\langle g_r, b\rangle$, about a millionth,
# while the losses of two batches of 32 differ by a few thousandths (the per-sample spread of the loss divided by
# $\sqrt{32}$). With a dual step that reacts within tens of steps, no choice of $\beta$ averages that out. The saving
# needs the two losses to differ mainly by the step: much larger batches (the spread falls like $1/\sqrt{B}$, so
# the batch would have to grow by a factor of $10^6$ to $10^8$), a much larger $\eta$, or the same batch, which is
# what the probe pass buys.

# %%
fast_noise, fast_signal = [], []
for seed in SEEDS:
    t_s = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m_s = original_model(data, cfg, seed=seed, device=device)
    gen_s = torch.Generator().manual_seed(seed)
    rp = torch.randperm(len(t_s.y_retain), generator=gen_s)[: 21 * 32].to(device)
    fp = torch.randperm(len(t_s.y_forget), generator=gen_s).to(device)
    xb, yb = (
        t_s.x_retain[rp].view(21, 32, *t_s.x_retain.shape[1:]),
        t_s.y_retain[rp].view(21, 32),
    )
    with torch.no_grad():
        batch_loss = torch.stack(
            [F.cross_entropy(m_s(x_), y_) for x_, y_ in zip(xb, yb)]
        )
    fast_noise.append(
        ((batch_loss[:-1] - batch_loss[1:]) / DEFAULTS["lr"]).std().item()
    )
    g_fs = [
        loss_grad(
            m_s, t_s.x_forget[fp[i : i + 32]], t_s.y_forget[fp[i : i + 32]], neg_ce
        )
        for i in range(0, 96, 32)
    ]
    fast_signal.append(
        np.median(
            [
                abs((loss_grad(m_s, xb[j], yb[j]) @ g_fs[j % 3]).item())
                for j in range(20)
            ]
        )
    )
    print(
        f"seed {seed}: std of the batch-to-batch term {fast_noise[-1]:.1f}, "
        f"median |<g_r, g_f>| {fast_signal[-1]:.2e}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} A tolerance
# :label: ex-06-tolerance
#
# *experiment · about 1 CPU minute*
#
# Run `implicit_surgery` with $\epsilon \in \{0, 0.001, 0.01\}$ on the class-wise task over `SEEDS`. How do the
# number of steps, RA and the gap change? Using {eq}`eq-06-momentum-probe`, predict the probe
# $(\ell_r(\theta_t) - \ell_r(\theta_{t+1}))/\eta$ at the dual equilibrium, and so how much the retain loss may rise
# per step; check it on the runs of `my_implicit_surgery` with $\epsilon = 0.01$, over the steps at which the
# constraint is active ($\lambda_t > 0$).
# ```

# %% [markdown]
# ```{solution-start} ex-06-tolerance
# :class: dropdown
# ```
# **Prediction.** The dual step stops moving when $\tilde\delta = 0$, i.e. when the probe equals $-\epsilon$. With
# momentum the probe measures the realised step $b_t$, so at equilibrium $\langle g_r, b\rangle = -\epsilon$ and the
# retain loss of the batch rises by $\eta\epsilon$ per step: $2\cdot10^{-6}$ for $\epsilon = 0.01$ at
# $\eta = 2\cdot10^{-4}$. That is the ceiling the method enforces on average, while $\lambda > 0$; when the
# constraint is inactive ($\lambda = 0$) the retain loss is free to do better.
#
# **Measured** (code below, seeds 0-2, `ci` profile). The three tolerances are hard to tell apart on these seeds.
# The runs take the same numbers of steps (138-200 by seed, one step fewer once at $\epsilon = 0.01$), and RA is
# 99.7-99.9 % for every $\epsilon$, identical seed by seed. The gap ranges over 2.15-2.58 at $\epsilon = 0$,
# 1.97-2.40 at $0.001$ and 1.92-2.21 at $0.01$: a slight downward drift, within the seed-to-seed spread. Tolerances
# of this size are small against the step-to-step noise of the probe (§6.7), so they hardly move $\lambda$. On
# the steps with $\lambda_t > 0$ (96-155 per run) the median probe at $\epsilon = 0.01$ is between -0.038 and
# -0.025: negative, as predicted, and of the order of $-\epsilon$, but 2.5 to 4 times larger, while the median of
# $|\text{probe}|$ is 0.08-0.22 and the mean is dominated by a few large steps (-0.20 to +1.48). The prediction
# holds in sign and order of magnitude only, within noise ten times its size.

# %% tags=["skip-execution"]
TOLS = (0.0, 0.001, 0.01)
tol_runs = compare_methods(
    {f"ε = {e}": ("implicit_surgery", {"eps": e}) for e in TOLS},
    "class",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_class=FORGET_CLASS,
    progress=False,
)
for m in tol_runs.methods:
    print(
        f"{m:10s} steps {tol_runs.per_seed(m, 'steps').astype(int).tolist()}, "
        f"RA {tol_runs.per_seed(m, 'RA').round(2).tolist()}, "
        f"gap {tol_runs.per_seed(m, 'gap').round(2).tolist()}"
    )
for seed in SEEDS:  # the probe at the dual equilibrium, eps = 0.01
    t_s = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m_s = original_model(data, cfg, seed=seed, device=device)
    budget = int(
        DEFAULTS["epochs"] * math.ceil(len(t_s.forget_idx) / DEFAULTS["batch_size"])
    )
    _, lams_e, fds_e = my_implicit_surgery(
        m_s,
        t_s,
        steps=budget,
        lr=DEFAULTS["lr"],
        eps=0.01,
        beta=DEFAULTS["dual_lr"],
        batch_size=DEFAULTS["batch_size"],
        seed=seed,
    )
    active = np.array([0.0] + lams_e[:-1]) > 0  # lambda_t > 0 during step t
    fd_on = np.array(fds_e)[active]
    print(
        f"seed {seed}: {len(fds_e)} steps, lambda > 0 on {active.sum()}; probe there: "
        f"median {np.median(fd_on):+.4f}, mean {fd_on.mean():+.3f}, "
        f"median |probe| {np.median(np.abs(fd_on)):.4f}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Is it the momentum?
# :label: ex-06-momentum
#
# *experiment · about 1 CPU minute*
#
# §6.7 showed that the implicit probe constrains the realised step $b_t$ while the explicit method constrains
# $d_t$. Run both surgery methods with `momentum=0.0` and a learning rate ten times the default (the same
# steady-state step length, $\eta/(1-\mu)$), on the class-wise task over `SEEDS`, next to both at their defaults.
# Does the comparison of implicit and explicit surgery in §6.6 (the paired difference of their gaps) change?
# ```

# %% [markdown]
# ```{solution-start} ex-06-momentum
# :class: dropdown
# ```
# Without momentum $b_t = d_t + w\theta_t$, so both methods constrain (almost) the same direction, and any
# difference that remains comes from the rest: the finite-difference probe against the exact inner product, and
# $\lambda$ carried across steps against $\lambda^*$ solved per step.
#
# **Measured** (code below, seeds 0-2, `ci` profile). At the defaults, implicit minus explicit gap is
# $-0.62 \pm 0.48$ (mean $\pm$ s.e. of the per-seed differences), as in §6.6. Without momentum the explicit method
# is fine (gaps 0.4-3.0, RA 98.9-99.7 %), but the implicit method collapses on two seeds of three: RA 11 % and a
# gap of 44 on seeds 0 and 1, while seed 2 ends normally (gap 2.0, RA 99.2 %). The question cannot be answered at
# the same $\beta$. Without momentum the stable range of the dual step shrinks from $\beta\|g_r\|^2 < 2(1+\mu) = 3.8$ to
# $2$ ({eq}`eq-06-stability`), and the ten times larger step makes the retain gradient grow sooner, so the late-run
# excursions of §6.7 come earlier and last longer. A fair test needs $\beta$ retuned for $\mu = 0$ (by the rule of
# chapter 02 on the held-out seeds), and then more than three seeds.

# %% tags=["skip-execution"]
NO_MOMENTUM = {"momentum": 0.0, "lr": 10 * DEFAULTS["lr"]}
mom_runs = compare_methods(
    {
        "explicit": "unilateral_surgery",
        "implicit": "implicit_surgery",
        "explicit, μ = 0": ("unilateral_surgery", NO_MOMENTUM),
        "implicit, μ = 0": ("implicit_surgery", NO_MOMENTUM),
    },
    "class", data=data, cfg=cfg, seeds=SEEDS, forget_class=FORGET_CLASS, progress=False,
)
for m in mom_runs.methods:
    print(f"{m:16s} gap {mom_runs.per_seed(m, 'gap').round(2).tolist()}, "
          f"RA {mom_runs.per_seed(m, 'RA').round(2).tolist()}, "
          f"steps {mom_runs.per_seed(m, 'steps').astype(int).tolist()}")
for a, b in (("implicit", "explicit"), ("implicit, μ = 0", "explicit, μ = 0")):
    dg, sg = mom_runs.paired(a, b)
    print(f"{a} − {b}: gap {dg:+.2f} ± {sg:.2f} (mean ± s.e. over seeds)")

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects

# %% [markdown]
# ```{exercise} Adam on λ
# :label: ex-06-adam-dual
#
# *project · about 20 CPU minutes*
#
# Replace the dual step of `my_implicit_surgery` by one Adam step on $\lambda$ with gradient $\tilde\delta_t$ (the
# way the official code of the paper updates its weight $w$), clipped at 0. Plot $\lambda_t$ and $\beta\|g_r\|^2$ as
# in §6.7 for several Adam learning rates, over `SEEDS`. Does the late-run cycle disappear? What plays the role of the
# bound {eq}`eq-06-stability` now? *Hint:* Adam's step is about its learning rate whatever $\|g_r\|^2$ is.
# ```

# %% [markdown]
# ```{solution-start} ex-06-adam-dual
# :class: dropdown
# ```
# *Sketch.* Keep Adam's two moments of $\tilde\delta$ next to $\lambda$ and replace the line that updates $\lambda$
# (code below). Adam divides the step by a running RMS of $\tilde\delta$, so each step moves $\lambda$ by about the
# learning rate $a$, whatever $\|g_r\|^2$ is: the linear analysis of §6.4 no longer applies and nothing diverges. The
# multiplier moves towards $\lambda^*$ at a speed of about $a$ per step and then jitters around it with an amplitude of
# about $a$. What plays the role of the bound is the ratio of $a$ to the scale of $\lambda^*$: $a \ll \lambda^*$ gives a
# slow but smooth tracking (about $\lambda^*/a$ steps to react), $a \gtrsim \lambda^*$ a jitter as large as the target,
# which replaces the cycle of §6.4. Expect the late-run jumps of §6.7 to shrink, and the choice of $a$ to depend
# on the size of $\lambda^*$, which §6.7 showed to grow by orders of magnitude over a run.

# %% tags=["skip-execution"]
# inside my_implicit_surgery, before the loop:
#     adam_m, adam_v, b1, b2 = 0.0, 0.0, 0.9, 0.999
# and in place of the projected dual step, at step t (0-based):
#     g = (fd + eps).item()
#     adam_m, adam_v = b1 * adam_m + (1 - b1) * g, b2 * adam_v + (1 - b2) * g * g
#     m_hat, v_hat = adam_m / (1 - b1 ** (t + 1)), adam_v / (1 - b2 ** (t + 1))
#     lam = torch.clamp(lam - adam_lr * m_hat / (math.sqrt(v_hat) + 1e-8), min=0.0)
# then rerun run_with_diagnostics of §6.7 for adam_lr in (1e-3, 1e-2, 1e-1) and plot
# r["lam"] against r["lam_star"] as in the first panel there.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Normalised β
# :label: ex-06-normalised-beta
#
# *project · about 20 CPU minutes*
#
# Make the dual step size $\beta_t = r / \widehat{G}_t$, with $\widehat{G}_t$ the estimate of $\|g_r\|^2$ of
# {ref}`ex-06-curvature` over a sliding window of the last $T$ records $(\lambda_t, \tilde\delta_t)$, so that
# $\beta_t\|g_r\|^2 \approx r$ stays in the stable range without a second backward pass. Compare
# $\widehat{G}_t$ with the exact $\|g_r\|^2$ that the `diag` callback of §6.7 records. How noisy is the estimate on
# mini-batches, and which window length $T$ and ratio $r$ keep the runs of §6.6 stable?
# ```

# %% [markdown]
# ```{solution-start} ex-06-normalised-beta
# :class: dropdown
# ```
# *Sketch.* Record $(\lambda_t, \tilde\delta_t)$ in `my_implicit_surgery`, and once $T$ records exist set
# $\beta_t = r / \widehat G_t$ with `curvature_estimates` on the last $T$ of them (falling back to the default
# $\beta$ while the window has no spread in $\lambda$, where the estimate is NaN). Expect the estimate to be poor:
# each $\tilde\delta_t$ comes from a different pair of batches, so the intercept $c_t + \epsilon$ changes from step to
# step by far more than $\lambda\|g_r\|^2$ does (§6.7 measured $\|g_r\|^2$ of a batch varying over orders of
# magnitude), and the probe measures $\langle g_r, b_t\rangle$ with the momentum buffer, not $\langle g_r, d_t\rangle$.
# The slope is therefore dominated by noise unless $\lambda$ itself moves a lot within the window. Compare against
# `r["G"]` of `run_with_diagnostics`; no number is claimed here.

# %% tags=["skip-execution"]
# in my_implicit_surgery, after computing fd at step t:
#     rec_lam.append(lam.item()); rec_delta.append((fd + eps).item())
#     if len(rec_lam) >= T:
#         G_hat = curvature_estimates(torch.tensor([rec_lam[-T:]]),
#                                     torch.tensor([rec_delta[-T:]]))[0].item()
#         beta_t = r / G_hat if math.isfinite(G_hat) and G_hat > 0 else beta
#     lam = torch.clamp(lam - beta_t * (fd + eps), min=0.0)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. In the implicit update {eq}`eq-06-implicit`, the multiplier $\lambda$ grows after a step when (a) the retain
#    loss of the batch fell by more than $\eta\epsilon$; (b) the retain loss of the batch rose by more than
#    $\eta\epsilon$; (c) the forget loss rose.
# 2. With frozen gradients and no momentum, $\beta\|g_r\|^2 = 1.5$. By what factor does the error
#    $|\lambda_k - \lambda^*|$ shrink per step? And with $\beta\|g_r\|^2 = 2.5$, starting from $\lambda = 0$ with
#    $\lambda^* = 0.2$, between which two values does the iteration cycle?
# 3. The optimiser uses heavy-ball momentum $\mu = 0.9$. Up to which value of $\beta\|g_r\|^2$ is the frozen-gradient
#    dual iteration stable?
# 4. The official code uses `error` $= 0.01$. The current retain loss is $0.05$ and $\eta = 2\cdot10^{-4}$. Which
#    tolerance $\epsilon$ of the paper's update does it amount to, to first order?
# 5. The curvature of the retain loss along the step is positive. Compared with $\langle g_r, d\rangle$, the probe
#    reports (a) a larger improvement, so $\lambda$ comes out smaller; (b) a smaller improvement, so $\lambda$ comes
#    out larger; (c) the same improvement, the bias being second order.
# 6. Per step, implicit surgery costs (a) one forward and one backward pass; (b) two forward passes and one
#    backward pass; (c) two forward and two backward passes. Why did the CPU time per step not halve against the
#    explicit method?

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b): $\tilde\delta = (\ell_r(\theta_t) - \ell_r(\theta_{t+1}))/\eta + \epsilon < 0$ exactly when
# the loss rose by more than $\eta\epsilon$, and $\lambda$ moves by $-\beta\tilde\delta$. 2. $|1 - 1.5| = 0.5$;
# between $0$ and $\beta G\lambda^* = 0.5$ (the next step would go to $\lambda^*(1 - (\beta G - 1)^2) < 0$ and is
# clipped). 3. $2(1 + \mu) = 3.8$ ({eq}`eq-06-stability-momentum`). 4. $\epsilon = -\texttt{error}\cdot\ell_r/\eta =
# -0.01 \cdot 0.05 / (2\cdot10^{-4}) = -2.5$, a demanded improvement ({eq}`eq-06-code-eps`). 5. (b): the bias
# $-\tfrac{\eta}{2}d^\top H_r d$ is negative, the method sees a worse step and raises $\lambda$ (more cautious).
# 6. (b); in the library the one backward pass runs over the forget and the retain batch together, 64 samples,
# as many as the explicit method's two backward passes of 32, and on a CPU a pass costs in proportion to its samples.
