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
# # LUR: learning to unlearn while retaining
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/09_lur.ipynb)
#
# The surgery chapters removed the conflict between the forget gradient $g_f$ and the retain gradient $g_r$ at
# every step, by projecting. Patel and Qiu {cite}`patel2025lur` (arXiv 2503.06339) take another route: they pose
# unlearning as a *look-ahead* (meta-learning) objective and observe that such an objective contains, hidden in
# its Taylor expansion, a term that rewards the two gradients for agreeing. The method never projects anything;
# it steers the trajectory towards regions where forgetting and retaining pull the same way.
#
# **The paper's full text was not available to us.** What the abstract states (a meta-learning formulation, an
# implicit gradient regulariser that avoids conflicts) is the paper's; the concrete look-ahead form below, its
# expansion and everything we derive from it are **our reconstruction** of the method of arXiv 2503.06339,
# chosen to agree with a third-party port. That port also runs a pruning stage before the look-ahead updates (it
# trims the weights most important to the forget set, in the manner of Scissorhands {cite}`wu2024scissorhands`);
# this chapter leaves that stage out and studies the look-ahead objective alone. Read this chapter as "the
# look-ahead objective that LUR's abstract describes", not as a verified copy of the paper's algorithm.
#
# **What you will learn**
#
# - the look-ahead objective, and why the unlearning loss inside it must be the *minimised* one (the sign trap);
# - its Taylor expansion, which exposes an inner-product regulariser, checked to be accurate to $O(\alpha^2)$;
# - the exact meta-gradient with its Hessian-vector product, written with `torch.func` and checked against the
#   library and against finite differences; what the first-order shortcut throws away;
# - why the look-ahead forward must not touch normalisation statistics;
# - how LUR compares with GA, NegGrad+ and the retrain oracle on digits, and how the cosine between the forget
#   and retain gradients evolves along LUR and NegGrad+ runs.

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
import scipy.stats
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vjp

import unlearnlib.config
from unlearnlib import records
from unlearnlib.bench import median_time
from unlearnlib.diagnostics import ConflictTracker
from unlearnlib.experiment import compare_methods, format_table
from unlearnlib.data import load_dataset, make_task
from unlearnlib.grads import flatten, loss_grad, trainable, unflatten
from unlearnlib.methods import get_method
from unlearnlib.methods.lookahead import (
    functional_loss,
    lookahead_grads,
    lur_meta_gradient,
    lur_objective,
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
# ## The look-ahead objective
#
# Notation as in Part II: $L_r(\theta)$ is the retain cross-entropy, $\mathrm{CE}_f$ the forget cross-entropy, and
# the unlearning loss we **minimise** is $L_u = -\mathrm{CE}_f$ (gradient ascent written as descent), so
# $g_u = \nabla L_u = g_f$ and $g_r = \nabla L_r$. One inner step of retain training from $\theta$ reaches the *fast
# weights* $\theta' = \theta - \alpha g_r(\theta)$. Our reconstruction of LUR minimises
#
# $$
# \mathcal J(\theta) = w_r\, L_r(\theta) + w_f\, L_u\big(\theta - \alpha \nabla L_r(\theta)\big),
# $$ (eq-09-objective)
#
# "be good at retaining now, and be good at forgetting *after* one more step of retaining". The inner rate
# $\alpha$ is a hyperparameter of the objective, separate from the outer learning rate of the optimiser.
#
# **Taylor expansion (our derivation).** Expand $L_u$ around $\theta$ along the inner step $-\alpha g_r$:
#
# $$
# L_u(\theta - \alpha g_r) = L_u(\theta) - \alpha \langle \nabla L_u(\theta), g_r(\theta)\rangle
#   + \tfrac{\alpha^2}{2}\, g_r^\top H_u\, g_r + O(\alpha^3),
# $$ (eq-09-taylor-inner)
#
# so, inserting into {eq}`eq-09-objective`,
#
# $$
# \mathcal J(\theta) = w_r L_r(\theta) + w_f L_u(\theta) - \alpha\, w_f \langle \nabla L_u, \nabla L_r\rangle + O(\alpha^2).
# $$ (eq-09-taylor)
#
# The first two terms are NegGrad+ with fixed weights (chapter 02). The third is the **implicit gradient
# regulariser**: minimising $\mathcal J$ *rewards* $\langle \nabla L_u, \nabla L_r\rangle > 0$, i.e. an unlearning
# direction that also lowers the retain loss. No projection is needed; the objective itself prefers parameters
# where the conflict ($\langle g_f, g_r\rangle < 0$) is small.
#
# **The sign trap.** Suppose one writes the forget term as the loss one wants to *increase*, $+\mathrm{CE}_f$ at the
# look-ahead point, and flips the sign elsewhere: $\mathcal J^{\pm} = w_r L_r(\theta) - w_f\,\mathrm{CE}_f(\theta')$
# is our {eq}`eq-09-objective`, but $\mathcal J^{\text{wrong}} = w_r L_r(\theta) + w_f\,\mathrm{CE}_f(\theta')$
# expands to $\dots - \alpha w_f \langle \nabla \mathrm{CE}_f, g_r\rangle = \dots + \alpha w_f \langle g_f, g_r\rangle$:
# its regulariser rewards **conflict**. The two look alike in code (one minus sign), and we show below that they push
# the alignment in opposite directions.
#
# **The exact meta-gradient.** The chain rule through $\theta'(\theta) = \theta - \alpha \nabla L_r(\theta)$, whose
# Jacobian is $I - \alpha H_r$ (symmetric), gives
#
# $$
# \nabla \mathcal J(\theta) = w_r\, g_r(\theta) + w_f\, (I - \alpha H_r(\theta))\, \nabla L_u(\theta').
# $$ (eq-09-metagrad)
#
# The **first-order** approximation (first-order MAML) treats $\nabla L_r(\theta)$ as a constant and keeps
# $w_r g_r + w_f \nabla L_u(\theta')$. The difference is exactly
#
# $$
# \nabla \mathcal J - \nabla^{\text{FO}} \mathcal J = -\alpha\, w_f\, H_r(\theta)\, \nabla L_u(\theta') .
# $$ (eq-09-fo-diff)
#
# **Which half of the alignment force survives (our derivation).** The gradient of the regulariser
# $-\alpha w_f\langle \nabla L_u, \nabla L_r\rangle$ is $-\alpha w_f (H_u g_r + H_r g_u)$. Expanding
# $\nabla L_u(\theta') = g_u - \alpha H_u g_r + O(\alpha^2)$, the first-order gradient contains $-\alpha w_f H_u g_r$
# only; the dropped term {eq}`eq-09-fo-diff` is, to leading order, the other half $-\alpha w_f H_r g_u$.
#
# ## Checks in float64 on the trained network
#
# We take the trained CNN of seed 0, copy it to float64 (so that finite differences and the $O(\alpha^2)$ slope
# are not drowned by rounding), and fix one forget batch and one retain batch of 32 samples each.

# %%
data = load_dataset(profile.dataset).to(device)
task = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
m0 = original_model(data, cfg, seed=0, device=device)
m64 = copy.deepcopy(m0).double().eval()
gen = torch.Generator().manual_seed(0)  # a CPU generator: draw, then move to the device
fi = torch.randperm(len(task.y_forget), generator=gen)[:32].to(device)
ri = torch.randperm(len(task.y_retain), generator=gen)[:32].to(device)
xf, yf = task.x_forget[fi].double(), task.y_forget[fi]
xr, yr = task.x_retain[ri].double(), task.y_retain[ri]
params = {k: v.detach() for k, v in trainable(m64).items()}
print(
    f"{sum(p.numel() for p in params.values())} parameters; "
    f"buffers: {[n for n, _ in m64.named_buffers()]}"
)


# %% [markdown]
# ### From scratch
#
# Two functions of the parameter dict: the objective {eq}`eq-09-objective` with a `sign` for the forget term
# (`-1`: our $L_u = -\mathrm{CE}_f$; `+1`: the sign trap), and its meta-gradient {eq}`eq-09-metagrad` as a `vjp`
# through the inner step, which is exactly $(I - \alpha H_r)$ applied to $\nabla L_u(\theta')$.


# %%
def ce_of(model, x, y, sign=1.0):
    """p -> sign * CE(model with parameters p on (x, y)); the model has no buffers to
    update (GroupNorm)."""
    return lambda p: sign * F.cross_entropy(functional_call(model, p, (x,)), y)


def my_objective(model, p, alpha, sign=-1.0, w_r=1.0, w_f=1.0):
    L_r, L_u = ce_of(model, xr, yr), ce_of(model, xf, yf, sign)
    g = grad(L_r)(p)
    return w_r * L_r(p) + w_f * L_u({k: p[k] - alpha * g[k] for k in p})


def my_meta_gradient(model, p, alpha, sign=-1.0, w_r=1.0, w_f=1.0, second_order=True):
    L_r, L_u = ce_of(model, xr, yr), ce_of(model, xf, yf, sign)
    # θ -> θ'
    inner = lambda q: {k: q[k] - alpha * v for k, v in grad(L_r)(q).items()}
    fast, pullback = vjp(inner, p)
    g_fast = grad(L_u)(fast)  # ∇L_u(θ')
    meta = pullback(g_fast)[0] if second_order else g_fast  # (I - αH_r) ∇L_u(θ')
    g_r = grad(L_r)(p)
    return flatten({k: w_r * g_r[k] + w_f * meta[k] for k in p})


ALPHA = inspect.signature(get_method("lur")).parameters["alpha"].default
ours = my_meta_gradient(m64, params, ALPHA)
lib = lur_meta_gradient(m64, xf, yf, xr, yr, ALPHA)
lib_J, our_J = (
    lur_objective(m64, xf, yf, xr, yr, ALPHA),
    my_objective(m64, params, ALPHA),
)
print(
    f"alpha = {ALPHA}: |ours - library| = {(ours - lib).abs().max():.1e} "
    f"(|grad| = {lib.norm():.3e}),\n"
    f"J ours {our_J.item():.10f}, library {lib_J.item():.10f}"
)
assert torch.allclose(ours, lib, rtol=1e-10, atol=1e-12) and torch.allclose(
    our_J, lib_J, rtol=1e-12
)
lib_fo = lur_meta_gradient(m64, xf, yf, xr, yr, ALPHA, second_order=False)
assert torch.allclose(
    my_meta_gradient(m64, params, ALPHA, second_order=False),
    lib_fo,
    rtol=1e-10,
    atol=1e-12,
)

# %% [markdown]
# **Finite differences.** Along random unit directions $v$, the central difference
# $(\mathcal J(\theta + hv) - \mathcal J(\theta - hv))/2h$ with $h = 10^{-6}$ must equal $\langle \nabla\mathcal J, v\rangle$.
# We use the library's `lur_objective` for $\mathcal J$ and its `lur_meta_gradient` for the gradient, so the two
# library functions check each other.


# %%
def objective_at(flat_theta):
    m = copy.deepcopy(m64)
    with torch.no_grad():
        for (n, p), v in zip(
            trainable(m).items(), unflatten(flat_theta, params).values()
        ):
            p.copy_(v)
    return lur_objective(m, xf, yf, xr, yr, ALPHA).item()


theta_flat, H = flatten(params), 1e-6
fd_err = []
for k in range(5):
    gen_k = torch.Generator().manual_seed(10 + k)
    v = torch.randn(theta_flat.shape, generator=gen_k, dtype=torch.float64).to(device)
    v /= v.norm()
    fd = (objective_at(theta_flat + H * v) - objective_at(theta_flat - H * v)) / (2 * H)
    fd_err.append(abs(fd - (lib @ v).item()) / lib.norm().item())
print(
    "finite differences vs <meta-gradient, v>, relative to |meta-gradient|: "
    + ", ".join(f"{e:.1e}" for e in fd_err)
)
assert max(fd_err) < 1e-6

# %% [markdown]
# **What the first-order version drops.** We compute $H_r\,\nabla L_u(\theta')$ independently, as a
# forward-over-reverse Hessian-vector product (`jvp` of `grad`), and check {eq}`eq-09-fo-diff`.

# %%
L_r64, L_u64 = ce_of(m64, xr, yr), ce_of(m64, xf, yf, -1.0)
g_r = grad(L_r64)(params)
fast = {k: params[k] - ALPHA * g_r[k] for k in params}
u_fast = grad(L_u64)(fast)
_, hvp = jvp(grad(L_r64), (params,), (u_fast,))  # H_r(θ) ∇L_u(θ')
diff = lib - lib_fo
predicted = -ALPHA * flatten(hvp)
print(
    f"|exact - first order| = {diff.norm():.3e}, "
    f"|-α H_r ∇L_u(θ')| = {predicted.norm():.3e},\n"
    f"max deviation {(diff - predicted).abs().max():.1e}; "
    f"share of the meta-gradient dropped {diff.norm() / lib.norm():.3f}"
)
assert torch.allclose(diff, predicted, rtol=1e-8, atol=1e-12)

# %% [markdown]
# **Half of the alignment force, numerically.** At $\theta$ itself, compute the two halves of the regulariser's
# gradient, $H_u g_r$ and $H_r g_u$, as Hessian-vector products. The look-ahead adds to the plain gradient
# $g_r + g_u$ (here $w_r = w_f = 1$) the term $\nabla\mathcal J - (g_r + g_u)$; by the expansion above it should be
# $-\alpha(H_u g_r + H_r g_u)$ for the exact meta-gradient and $-\alpha H_u g_r$ for the first-order one, up to
# $O(\alpha^2)$. We check both through the order of the error: it must fall by 4 when $\alpha$ is halved, local
# order $\log_2(\text{ratio}) = 2$, where a wrong or missing term would leave a first-order error (ratio 2, order
# 1). We accept a local order within $1/4$ of 2, a quarter of the spacing between orders. The steps are small
# ($\alpha = 2\cdot10^{-5}$ and $10^{-5}$), so that the inner step is unlikely to switch a ReLU (a switch would
# add a first-order error) and the next Taylor term is negligible; the float64 rounding of the difference, at
# most about $u\sqrt P$ times the gradient's size, stays a hundred times below the errors compared (checked).
# "Half" is a statement about *terms*, not magnitudes: the two Hessian-vector products need not be of equal size,
# and the last line below prints the share of the regulariser's gradient that the first-order version keeps on
# this batch.

# %%
g_u0 = grad(L_u64)(params)
_, Hu_gr = jvp(grad(L_u64), (params,), (g_r,))  # H_u g_r
_, Hr_gu = jvp(grad(L_r64), (params,), (g_u0,))  # H_r g_u
Hu_gr, Hr_gu, plain = flatten(Hu_gr), flatten(Hr_gu), flatten(g_r) + flatten(g_u0)
A1, A2 = 2e-5, 1e-5
half_err = {}
for a in (A1, A2):
    added_exact = lur_meta_gradient(m64, xf, yf, xr, yr, a) - plain
    added_fo = lur_meta_gradient(m64, xf, yf, xr, yr, a, second_order=False) - plain
    half_err[a] = (
        (added_exact + a * (Hu_gr + Hr_gu)).norm().item(),
        (added_fo + a * Hu_gr).norm().item(),
        (a * (Hu_gr + Hr_gu)).norm().item(),
    )
    print(
        f"alpha {a:.0e}: |exact extra + a(H_u g_r + H_r g_u)| = {half_err[a][0]:.2e}, "
        f"|first-order extra + a H_u g_r| = {half_err[a][1]:.2e},\n"
        f"             against |a(H_u g_r + H_r g_u)| = {half_err[a][2]:.2e}"
    )
local_order = [math.log2(half_err[A1][k] / half_err[A2][k]) for k in (0, 1)]
floor = torch.finfo(torch.float64).eps * plain.numel() ** 0.5 * plain.norm().item()
full = Hu_gr + Hr_gu
kept = (Hu_gr @ full / full.dot(full)).item()
print(
    f"local order of the error: exact {local_order[0]:.3f}, "
    f"first order {local_order[1]:.3f}; "
    f"rounding floor {floor:.0e}"
)
print(
    f"|H_u g_r| = {Hu_gr.norm():.3e}, |H_r g_u| = {Hr_gu.norm():.3e}; the first-order "
    f"version keeps the share {kept:.2f}\n"
    "of the regulariser's gradient (projected on it)"
)

# %% tags=["hide-input"]
assert min(min(e[:2]) for e in half_err.values()) > 100 * floor, "errors above rounding"
assert all(abs(k - 2) < 0.25 for k in local_order), "the remainders are O(alpha^2)"

# %% [markdown]
# ### The expansion is accurate to $O(\alpha^2)$
#
# We compare $\mathcal J(\alpha)$ with the first-order expansion {eq}`eq-09-taylor` for $\alpha$ from about $3\cdot10^{-6}$
# to $10^{-1}$. The remainder should fall like $\alpha^2$ (slope 2 on a log-log plot), i.e. remainder$/\alpha^2$ should
# be constant. That needs smoothness, and our networks are only piecewise smooth (ReLU): once the inner step
# $\alpha g_r$ is long enough to push some pre-activations across zero, the curvature seen along the step changes
# and the ratio wobbles. We therefore fit the slope on the smallest steps ($\alpha \le 10^{-4}$), and over the whole
# range we only claim that remainder$/\alpha^2$ stays within a factor $\sqrt{\alpha_{\max}/\alpha_{\min}} \approx 180$:
# half-way, on a log scale, between a second-order remainder (a constant ratio) and a first-order one (a ratio
# that changes by $\alpha_{\max}/\alpha_{\min} \approx 3\cdot10^4$ over the range). As in the previous check, the
# fitted slope on the small steps must be within $1/4$ of 2.

# %%
g_u0 = grad(L_u64)(params)
inner_prod = sum((g_u0[k] * g_r[k]).sum() for k in params).item()
base = (L_r64(params) + L_u64(params)).item()
alphas = np.logspace(-5.5, -1, 19)
remainder = np.array(
    [abs(my_objective(m64, params, a).item() - (base - a * inner_prod)) for a in alphas]
)
small = alphas <= 1.01e-4
slope = np.polyfit(np.log(alphas[small]), np.log(remainder[small]), 1)[0]
slope_all = np.polyfit(np.log(alphas), np.log(remainder), 1)[0]
ratio = remainder / alphas**2
print(
    f"<grad L_u, grad L_r> = {inner_prod:.3e}; slope of log remainder vs log alpha: "
    f"{slope:.3f} (alpha <= 1e-4), {slope_all:.3f} (whole range);\n"
    f"remainder/alpha^2 from {ratio.min():.2e} to {ratio.max():.2e}"
)
assert abs(slope - 2) < 0.25, "second order on the small steps"
assert ratio.max() / ratio.min() < (alphas.max() / alphas.min()) ** 0.5, (
    "and on the range"
)

fig, ax = plt.subplots(figsize=(5, 4))
ax.loglog(alphas, remainder, "o-", label="|J - (L_r + L_u - α<∇L_u, ∇L_r>)|")
ax.loglog(alphas, ratio[0] * alphas**2, "k--", lw=1, label="slope 2")
ax.set_xlabel("inner step α")
ax.set_ylabel("expansion error")
ax.set_title("Taylor remainder of the look-ahead objective")
ax.legend()
plt.show()

# %% [markdown]
# ### The sign trap, numerically
#
# Isolate the regulariser's pull: the part of the meta-gradient that the look-ahead adds,
# $r = \nabla\mathcal J_\alpha - \nabla\mathcal J_0$, with $\mathcal J_0$ the plain NegGrad+-type objective. A
# short step $\theta - s\, r/\|r\|$ should *raise* $\langle g_f, g_r\rangle$ for the correct sign and *lower* it
# for the sign trap. We use a larger $\alpha$ to make the regulariser dominate its own $O(\alpha^2)$ terms cleanly
# visible, and a tiny step $s$.


# %%
def alignment(p):
    gu, gr = grad(L_u64)(p), grad(L_r64)(p)
    return sum((gu[k] * gr[k]).sum() for k in p).item()  # <g_f, g_r>, g_f = ∇(-CE_f)


a0, S = alignment(params), 1e-3
moved = {}
for name, sign in (("L_u = -CE_f (ours)", -1.0), ("+CE_f (sign trap)", +1.0)):
    r = my_meta_gradient(m64, params, ALPHA, sign) - my_meta_gradient(
        m64, params, 0.0, sign
    )
    step = unflatten(-S * r / r.norm(), params)
    moved[name] = alignment({k: params[k] + step[k] for k in params}) - a0
    print(f"{name:20s}: <g_f, g_r> changes by {moved[name]:+.3e} (from {a0:.3e})")
assert moved["L_u = -CE_f (ours)"] > 0 > moved["+CE_f (sign trap)"]

# %% [markdown]
# ### Normalisation statistics
#
# The look-ahead forward at $\theta'$ is an *extra* forward pass. With BatchNorm in training mode it would update
# the running mean and variance a second time per step, from a forward pass at parameters the model never takes.
# Our models use GroupNorm, which keeps no running statistics (the model above has no buffers at all), so the
# problem cannot arise here. For other models the library guards twice: `functional_loss` refuses a model with
# train-mode BatchNorm (whose batch statistics would also make the loss depend on the batch composition), and it
# passes *copies* of the buffers to `functional_call`, so no look-ahead forward can write to them. We check both on a
# toy BatchNorm network, and show what a naive `functional_call` with the model's own buffers does.

# %%
from unlearnlib.errors import UnlearnError

bn = torch.nn.Sequential(
    torch.nn.Linear(4, 8),
    torch.nn.BatchNorm1d(8),
    torch.nn.ReLU(),
    torch.nn.Linear(8, 3),
).to(device)
xb, yb = torch.randn(16, 4, device=device), torch.randint(0, 3, (16,), device=device)
stats = {k: v.clone() for k, v in bn.named_buffers()}
p_bn = {k: v.detach() for k, v in trainable(bn).items()}
functional_call(
    bn.train(), (p_bn, dict(bn.named_buffers())), (xb,)
)  # naive: the model's own buffers
assert not torch.equal(bn[1].running_mean, stats["1.running_mean"]), (
    "a naive train-mode forward moves them"
)
try:
    functional_loss(bn.train(), xb, yb)
    raise AssertionError("train-mode BatchNorm should be refused")
except UnlearnError as err:
    print("library refuses train-mode BatchNorm:", str(err)[:70], "...")
stats = {k: v.clone() for k, v in bn.named_buffers()}
bn.eval()
_ = lookahead_grads(
    p_bn, functional_loss(bn, xb, yb), {"u": functional_loss(bn, xb, yb, -1.0)}, 0.1
)
assert all(torch.equal(v, stats[k]) for k, v in bn.named_buffers())
print("the library's look-ahead left the BatchNorm statistics untouched")

# %% [markdown]
# ### Cost of one step
#
# The second-order step differentiates through a gradient: roughly a forward and backward on the retain batch with
# the graph kept, a forward and backward at $\theta'$, and a backward through the first backward. We time one
# meta-gradient (float32, batches of 32) against one GA gradient. Timings on a shared machine are noisy, so we only
# print them.

# %%
xf32, xr32 = xf.float(), xr.float()
m32 = m0.train()
t_ga = median_time(
    lambda: loss_grad(m32, xf32, yf, lambda z, y: -F.cross_entropy(z, y))
)
t_fo = median_time(
    lambda: lur_meta_gradient(m32, xf32, yf, xr32, yr, ALPHA, second_order=False)
)
t_so = median_time(
    lambda: lur_meta_gradient(m32, xf32, yf, xr32, yr, ALPHA, second_order=True)
)
m0.eval()
print(
    f"per step: GA {1e3 * t_ga:.1f} ms, "
    f"LUR first order {1e3 * t_fo:.1f} ms ({t_fo / t_ga:.1f}x), "
    f"second order {1e3 * t_so:.1f} ms ({t_so / t_ga:.1f}x)"
)

# %% [markdown]
# ## The experiment
#
# We compare the library's `lur` (defaults below: outer learning rate $10^{-3}$, $\alpha = 0.1$, second order,
# $w_r = w_f = 1$, one forget and one retain batch per step, the oracle-free stopping rule of chapter 02) with GA,
# NegGrad+ and the retrain oracle, in class-wise forgetting of digit 3 and random forgetting of 10 %, over the
# profile's seeds. The defaults were chosen on held-out seeds by the oracle-free rule; there, a larger inner step
# $\alpha = 1$ made LUR diverge on digits, so $\alpha$ is kept small, where the expansion of §9.1 is a good
# description of what the objective does.
#
# Along every LUR and NegGrad+ run, a `post_step` hook records the cosine between the full forget gradient
# $g_f = \nabla(-\mathrm{CE}_f)$ (all of $D_f$) and the retain gradient on a fixed subset of 256 retain samples,
# every other step. LUR's claim, through {eq}`eq-09-taylor`, is that it moves towards agreement (larger cosines)
# compared with NegGrad+. NegGrad+ weights its two terms differently ($\beta = 0.97$) and iterates over the retain
# set, so we add the clean ablation of the regulariser: `lur` with $\alpha = 0$ (row `lur_alpha0`), the same two
# terms with the same weights, batches, learning rate and stopping rule, but no look-ahead.

# %%
for name in ("ga", "neggrad_plus", "lur"):
    p = inspect.signature(get_method(name)).parameters
    print(
        f"{name:13s}",
        ", ".join(
            f"{k}={p[k].default}"
            for k in ("epochs", "lr", "alpha", "beta", "second_order", "stop_at")
            if k in p
        ),
    )
METHODS = {
    "ga": ("ga", {}),
    "neggrad_plus": ("neggrad_plus", {}),
    "lur": ("lur", {}),
    "lur_alpha0": ("lur", {"alpha": 0.0}),
}
TRACKED = ("neggrad_plus", "lur_alpha0", "lur")


def variant(name, extra):
    """A compare_methods variant; tracked ones get a ConflictTracker (chapter 04) per
    scenario and seed."""
    if name not in TRACKED:
        return (METHODS[name][0], extra)

    def setup(task, seed):
        trackers[name, task.scenario, seed] = ConflictTracker(
            task, every=2, probe_size=256, probe_seed=1
        )
        return {**extra, "post_step": trackers[name, task.scenario, seed]}

    return (METHODS[name][0], setup)


trackers = {}
t_start = time.perf_counter()
results = {
    sc: compare_methods(
        {name: variant(name, extra) for name, (_, extra) in METHODS.items()},
        sc,
        data=data,
        cfg=cfg,
        seeds=SEEDS,
        forget_class=FORGET_CLASS,
    )
    for sc in ("class", "random")
}
cos = {
    sc: {m: {s: trackers[m, sc, s].cos for s in SEEDS} for m in TRACKED}
    for sc in results
}
print(
    f"both scenarios, seeds {SEEDS}: {time.perf_counter() - t_start:.1f} s "
    "(times in the table include the cosine hook)"
)
for sc, c in results.items():
    print(f"== {sc} (mean ± 95 % CI over seeds {SEEDS}; first row: retrain oracle) ==")
    print(format_table(c.summary, c.reference, keys=("UA", "RA", "TA", "MIA")))
    print(format_table(c.summary, c.reference, keys=("gap", "time_s")))
    print("steps: " + ", ".join(f"{m} {c.per_seed(m, 'steps').astype(int).tolist()}"
                                for m in METHODS))

# %%
for sc, c in results.items():
    c.plot(title=f"{sc}: {profile.dataset}, {len(SEEDS)} seeds (dashed: retrain)")
    plt.show()

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, sc in zip(axes, results):
    for name in TRACKED:
        vals = np.concatenate([cos[sc][name][s] for s in SEEDS])
        ax.hist(vals, bins=30, alpha=0.5, density=True, label=f"{name} (n={len(vals)})")
    ax.axvline(0, color="k", lw=1)
    ax.set_xlabel(r"cos($g_f$, $g_r$) along the run")
    ax.set_ylabel("density")
    ax.set_title(f"{sc}: forget/retain gradient cosine")
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# What the numbers say, each with its assert.

# %%
med_cos = {
    sc: {m: np.array([np.median(cos[sc][m][s]) for s in SEEDS]) for m in TRACKED}
    for sc in results
}
for sc, c in results.items():
    print(f"{sc}: gap per seed")
    for m in METHODS:
        print(f"  {m:13s} {c.per_seed(m, 'gap').round(2)}")
    print(f"{sc}: median cosine per seed")
    for m in TRACKED:
        print(f"  {m:13s} {med_cos[sc][m].round(3)}")

cls = results["class"]
sum_c = cls.summary
per_seed = lambda c, m, k: c.per_seed(m, k)
# 1. Class-wise: LUR beats GA on Avg. Gap, on average and on every seed.
assert sum_c["lur"]["gap"]["mean"] < sum_c["ga"]["gap"]["mean"]
assert (per_seed(cls, "lur", "gap") < per_seed(cls, "ga", "gap")).all()
# 2. ... and forgets the class while keeping most of the retain accuracy.
assert sum_c["lur"]["UA"]["mean"] > 90 and sum_c["lur"]["RA"]["mean"] > 90
# 3. The look-ahead is what does it: the same objective with alpha = 0 ends farther from
#    the oracle on every seed, and loses more retain accuracy: the per-seed difference
#    is positive by more than its standard error.
assert (per_seed(cls, "lur", "gap") < per_seed(cls, "lur_alpha0", "gap")).all()
d_ra = per_seed(cls, "lur", "RA") - per_seed(cls, "lur_alpha0", "RA")
print(f"class: RA of lur minus lur_alpha0 per seed {d_ra.round(1)}")
assert d_ra.mean() > d_ra.std(ddof=1) / len(d_ra) ** 0.5
# 4. NegGrad+ (with its tuned defaults) is not farther from the oracle than LUR beyond
#    the seed noise.
assert (
    sum_c["neggrad_plus"]["gap"]["mean"] - sum_c["lur"]["gap"]["mean"]
    < sum_c["neggrad_plus"]["gap"]["ci95"] + sum_c["lur"]["gap"]["ci95"]
)

sum_r = results["random"].summary
gap_r = {m: sum_r[m]["gap"]["mean"] for m in METHODS}
ci_r = {m: sum_r[m]["gap"]["ci95"] for m in METHODS}
print("random: mean gap ± 95 % CI")
for m in METHODS:
    print(f"  {m:13s} {gap_r[m]:.2f} ± {ci_r[m]:.2f}")
# 5. Random 10 %: every method is within the seed noise of GA (and so of each other).
assert all(abs(gap_r[m] - gap_r["ga"]) < ci_r[m] + ci_r["ga"] for m in METHODS)

# 6. The cosine distributions: LUR is NOT shifted towards agreement, neither against
#    NegGrad+ nor against alpha = 0: the per-seed shift of the median cosine is not
#    significantly positive (its mean is below the half-width of its 95 % CI,
#    Student t).
t95 = scipy.stats.t.ppf(0.975, len(SEEDS) - 1)
for sc in results:
    for o in ("neggrad_plus", "lur_alpha0"):
        d = med_cos[sc]["lur"] - med_cos[sc][o]  # paired by seed
        half = t95 * d.std(ddof=1) / len(d) ** 0.5
        print(
            f"{sc}: shift of LUR's median cosine vs {o}: {d.mean():+.3f} ± {half:.3f}"
        )
        assert d.mean() < half, (sc, o)
        if sc == "random" and o == "neggrad_plus":
            assert d.mean() + half < 0, "random: LUR is significantly more conflicted"

# %% [markdown]
# - **LUR beats GA on Avg. Gap** in class-wise forgetting, on every seed, as the paper claims of its method against
#   GA: it forgets digit 3 and keeps most of the retain and test accuracy.
# - **The look-ahead matters.** The same objective with $\alpha = 0$ (plain $L_r + L_u$ with equal weights, no
#   regulariser) loses more retain accuracy on the same budget and stopping rule (on average, by more than the
#   standard error of the per-seed difference) and ends farther from the oracle on every seed; with
#   $\alpha = 0.1$ the retain accuracy survives.
# - **NegGrad+ with its tuned $\beta$ is as good** as LUR on this small problem: not farther from the oracle
#   beyond the seed noise of three seeds. Ten seeds compared seed by seed (chapter 11) go further: NegGrad+ ends
#   closer to the oracle than LUR, by 1.3 ± 0.7 points of Avg. Gap, on nine seeds out of ten. In random
#   forgetting all methods are within the seed noise of each other.
# - **Our data disagree with the mechanism as we stated it.** The forget/retain cosine measured along the runs is
#   *not* moved towards agreement: paired by seed, LUR's median cosine is not significantly higher than
#   NegGrad+'s or than the $\alpha = 0$ run's, and in random forgetting it is significantly *lower* than
#   NegGrad+'s (the shifts and their 95 % intervals are printed above). Whatever the look-ahead buys here, it does not show up as a higher cosine between
#   the full forget gradient and a retain gradient. Possible reasons, which we have not tested: the regulariser
#   acts on mini-batch gradients and through curvature ($H_r g_u$, $H_u g_r$), which can protect the retain loss
#   without making the two gradients point the same way; and the cosine along a run mixes trajectories of
#   different lengths. The claim "LUR moves the distribution towards agreement" is therefore not supported by our
#   measurement.

# %% [markdown]
# ### At the tuned values, over ten seeds
#
# LUR's defaults were chosen by this chapter's rule. Chapter 12 re-tunes every method with one protocol (the same
# candidates around each default, the same budget, an oracle-free rule; for LUR it chose $\alpha = 0.1$ and a
# learning rate of $5\cdot10^{-4}$ class-wise) and runs each on ten seeds with the noise floor and Holm-corrected
# paired tests:

# %%
print(records.format_tuned(["ga", "neggrad_plus", "lur"]))
tuned = {
    s: records.verdicts(records.load_bench(f"bench_{s}"), ["lur"])["lur"]
    for s in ("class3", "random10")
}
assert tuned["class3"] == {"ga": -1, "neggrad_plus": 0}
assert tuned["random10"] == {"ga": 0, "neggrad_plus": 0}

# %% [markdown]
# At the tuned values LUR stays decidedly closer to the oracle than gradient ascent in class-wise forgetting. Against
# NegGrad+ the verdict softens: with the defaults, chapter 11's ten paired seeds found NegGrad+ closer; tuned, the
# difference (LUR about twenty noise floors from the oracle, NegGrad+ three, with a wide spread over seeds for LUR)
# does not survive the correction. Random forgetting decides nothing.

# %% [markdown]
# ## Summary
#
# - The look-ahead objective {eq}`eq-09-objective` equals NegGrad+ with fixed weights plus an inner-product
#   regulariser $-\alpha w_f\langle\nabla L_u, \nabla L_r\rangle$, up to $O(\alpha^2)$ ({eq}`eq-09-taylor`); we measured the
#   remainder's slope at 2 on the trained CNN in float64. With the forget term written as $+\mathrm{CE}_f$ the same
#   regulariser rewards conflict; one minus sign decides which.
# - The exact meta-gradient {eq}`eq-09-metagrad` is one `vjp` through the inner step; our from-scratch version, the
#   library's `lur_meta_gradient` and finite differences of `lur_objective` agree. The first-order shortcut drops
#   exactly $-\alpha w_f H_r\nabla L_u(\theta')$ ({eq}`eq-09-fo-diff`), half of the alignment force.
# - The look-ahead forward must not update normalisation statistics; the library passes buffer copies.
# - On digits, LUR beats GA on Avg. Gap in class-wise forgetting on every seed, and far outperforms the same
#   objective without look-ahead ($\alpha = 0$); the tuned NegGrad+ baseline is at least as close to the oracle
#   (closer, on ten paired seeds in chapter 11; undecided at the values chapter 12's protocol chooses). In random
#   forgetting all methods are within noise of each other.
# - The forget/retain gradient cosine along the runs is not shifted towards agreement by LUR in our measurement:
#   the implicit-regulariser story explains the objective, but we could not see it in this statistic.
# - One second-order step costs several GA steps (printed in §9.2; at this tiny size the overhead of `torch.func`
#   dominates, so the ratio is larger than the FLOP count suggests), and a too-large inner step ($\alpha = 1$)
#   diverged on digits when the defaults were chosen.


# %% [markdown]
# ## Exercises
#
# The exercises practise the expansion of the look-ahead objective, its meta-gradient and the mirror form with the
# roles of the two losses swapped, and re-run §9.3 with other settings; the exercises marked "graded" come with
# tests.

# %% tags=["exercise-setup"]
# What the graded exercises need: a small smooth network (tanh, so that Taylor
# remainders have clean orders; no buffers) and forget and retain batches, in float64
# and from one fixed seed, so that a correct solution matches the references to about
# 1e-10 whatever order it sums in.
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vjp

from unlearnlib.grads import flatten, trainable, unflatten
from unlearnlib.methods.lookahead import functional_loss, lookahead_grads, lur_objective

ex_gen = torch.Generator().manual_seed(9)
ex_model = torch.nn.Sequential(
    torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
).double()
with torch.no_grad():
    for ex_w in ex_model.parameters():
        ex_w.copy_(0.8 * torch.randn(ex_w.shape, generator=ex_gen, dtype=torch.float64))
ex_p = {k: v.detach() for k, v in trainable(ex_model).items()}
# batch sizes that differ from each other and from the 3 classes
ex_xf = torch.randn(5, 4, generator=ex_gen, dtype=torch.float64)
ex_yf = torch.randint(0, 3, (5,), generator=ex_gen)
ex_xr = torch.randn(7, 4, generator=ex_gen, dtype=torch.float64)
ex_yr = torch.randint(0, 3, (7,), generator=ex_gen)

# %% [markdown]
# ```{exercise} The second-order Taylor model of the objective
# :label: ex-09-taylor-model
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `taylor_objective(model, p, xf, yf, xr, yr, alpha, w_r=1.0, w_f=1.0)`, the look-ahead objective
# {eq}`eq-09-objective` expanded to second order in $\alpha$ with {eq}`eq-09-taylor-inner`:
#
# $$
# w_r L_r(\theta) + w_f\Big(L_u(\theta) - \alpha\,\langle \nabla L_u, g_r\rangle
#   + \tfrac{\alpha^2}{2}\, g_r^\top H_u\, g_r\Big),
# $$
#
# with $L_u = -\mathrm{CE}_f$ and every quantity at $\theta$ (`p`), returned as a 0-dimensional tensor. Use one
# Hessian-vector product; never form $H_u$. The tests compare with the exact objective (`lur_objective`), whose
# distance to your model must fall like $\alpha^3$, and with a reference value.
# ```

# %% tags=["remove-cell", "graded"]
def taylor_objective(model, p, xf, yf, xr, yr, alpha, w_r=1.0, w_f=1.0):
    """The second-order Taylor model in alpha of LUR's look-ahead objective (§9.1).

    model: a module without buffers, evaluated at a parameter dict q as
    torch.func.functional_call(model, q, (x,)); p: dict name -> tensor, the point theta;
    (xf, yf) the forget batch, (xr, yr) the retain batch; L_r = mean CE on the retain
    batch, L_u = -(mean CE on the forget batch), g_r = grad L_r(theta), H_u the Hessian
    of L_u at theta. Returns a 0-dimensional tensor,
        w_r L_r + w_f (L_u - alpha <grad L_u, g_r> + alpha^2 / 2 g_r^T H_u g_r).
    """
    # BEGIN SOLUTION
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_r = grad(L_r)(p)
    g_u, Hu_gr = jvp(grad(L_u), (p,), (g_r,))  # grad L_u and H_u g_r in one pass
    inner = sum((g_u[k] * g_r[k]).sum() for k in p)
    curv = sum((g_r[k] * Hu_gr[k]).sum() for k in p)
    return w_r * L_r(p) + w_f * (L_u(p) - alpha * inner + alpha**2 / 2 * curv)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# At alpha = 0 the model is w_r L_r + w_f L_u; for small alpha its distance to the
# exact objective falls like alpha^3 (a missing or wrong term leaves alpha^2 or alpha):
# halving alpha from 0.01 to 0.005 must divide it by 2^3, within a quarter of an order
# (the next term changes the local order by O(alpha)). The distances (~1e-8) are eight
# orders above the float64 rounding of J (~1e-16).
ex_T0 = taylor_objective(ex_model, ex_p, ex_xf, ex_yf, ex_xr, ex_yr, 0.0)
assert ex_T0.dim() == 0
ex_J0 = lur_objective(ex_model, ex_xf, ex_yf, ex_xr, ex_yr, 0.0)
assert abs(ex_T0.item() - ex_J0.item()) < 1e-12
ex_err = [
    abs(lur_objective(ex_model, ex_xf, ex_yf, ex_xr, ex_yr, a).item()
        - taylor_objective(ex_model, ex_p, ex_xf, ex_yf, ex_xr, ex_yr, a).item())
    for a in (0.01, 0.005)
]
assert abs(torch.tensor(ex_err[0] / ex_err[1]).log2().item() - 3) < 0.25

# %% tags=["remove-cell", "graded-test", "hidden"]
# Against a reference built from the same quantities, with weights w_r = 0.5, w_f = 2
# and alpha = 0.05 (float64 sums of a few hundred terms: 1e-10 relative is generous).
ex_Lr = lambda q: F.cross_entropy(functional_call(ex_model, q, (ex_xr,)), ex_yr)
ex_Lu = lambda q: -F.cross_entropy(functional_call(ex_model, q, (ex_xf,)), ex_yf)
ex_gr = flatten(grad(ex_Lr)(ex_p))
ex_gu = flatten(grad(ex_Lu)(ex_p))
ex_hu = flatten(jvp(grad(ex_Lu), (ex_p,), (unflatten(ex_gr, ex_p),))[1])
ex_ref = 0.5 * ex_Lr(ex_p) + 2.0 * (
    ex_Lu(ex_p) - 0.05 * (ex_gu @ ex_gr) + 0.05**2 / 2 * (ex_gr @ ex_hu)
)
ex_T = taylor_objective(ex_model, ex_p, ex_xf, ex_yf, ex_xr, ex_yr, 0.05, 0.5, 2.0)
assert abs(ex_T.item() - ex_ref.item()) < 1e-10 * abs(ex_ref.item())

# %% tags=["remove-cell", "graded-test", "hidden"]
# The alpha^3 law with weights w_r = 0.7, w_f = 2.5 and the first two forget samples as
# the forget batch.
ex_xf2, ex_yf2 = ex_xf[:2], ex_yf[:2]
ex_err = [
    abs(lur_objective(ex_model, ex_xf2, ex_yf2, ex_xr, ex_yr, a, 0.7, 2.5).item()
        - taylor_objective(ex_model, ex_p, ex_xf2, ex_yf2, ex_xr, ex_yr, a, 0.7, 2.5)
        .item())
    for a in (0.01, 0.005)
]
assert abs(torch.tensor(ex_err[0] / ex_err[1]).log2().item() - 3) < 0.25

# %% [markdown]
# ```{exercise} The meta-gradient of the mirror form
# :label: ex-09-mirror-metagrad
#
# *code · graded, 3 points · about 1 CPU minute*
#
# The *mirror* form of the look-ahead objective swaps the roles of the two losses: the inner step is an unlearning
# step and the retain loss is evaluated after it,
#
# $$
# \mathcal J_B(\theta) = L_u(\theta) + L_r\big(\theta - \alpha \nabla L_u(\theta)\big), \qquad L_u = -\mathrm{CE}_f .
# $$
#
# Write `mirror_meta_gradient(model, p, xf, yf, xr, yr, alpha, second_order=True)`, its exact gradient as a flat
# tensor in the order of `p` (that of `unlearnlib.grads.flatten`), and with `second_order=False` its first-order
# approximation, which treats $\nabla L_u(\theta)$ as a constant. The tests check it against finite differences of
# $\mathcal J_B$ and against the library's `lookahead_grads`.
# ```

# %% tags=["remove-cell", "graded"]
def mirror_meta_gradient(model, p, xf, yf, xr, yr, alpha, second_order=True):
    """Gradient of the mirror look-ahead objective J_B (section 9.1, roles swapped).

    J_B(theta) = L_u(theta) + L_r(theta - alpha * grad L_u(theta)), with
    L_u = -(mean CE on the forget batch (xf, yf)) and L_r = mean CE on the retain batch
    (xr, yr). model: a module without buffers, evaluated at a parameter dict q as
    torch.func.functional_call(model, q, (x,)); p: dict name -> tensor, the point theta.
    Returns the flat tensor (parameters in the order of p, as unlearnlib.grads.flatten
    lays them out) of grad J_B(theta) when second_order is True, and of the first-order
    approximation grad L_u(theta) + grad L_r(theta') otherwise, theta' being the point
    after the inner step.
    """
    # BEGIN SOLUTION
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)

    def inner(q):  # theta -> theta'
        g = grad(L_u)(q)
        if not second_order:
            g = {k: v.detach() for k, v in g.items()}
        return {k: q[k] - alpha * g[k] for k in q}

    fast, pullback = vjp(inner, p)
    g_fast = grad(L_r)({k: v.detach() for k, v in fast.items()})
    outer = pullback(g_fast)[0]  # (I - alpha H_u) grad L_r(theta'), or grad L_r(theta')
    g_u = grad(L_u)(p)
    return flatten({k: g_u[k] + outer[k] for k in p})
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Central differences of J_B along three random unit directions v, step h = 1e-5: their
# error is O(h^2) ~ 1e-10 (truncation) plus ~u/h ~ 1e-11 (rounding) of the gradient's
# size, so 1e-7 of |grad J_B| separates them from any wrong term.
ex_Lu = lambda q: -F.cross_entropy(functional_call(ex_model, q, (ex_xf,)), ex_yf)
ex_Lr = lambda q: F.cross_entropy(functional_call(ex_model, q, (ex_xr,)), ex_yr)
ex_JB = lambda q: ex_Lu(q) + ex_Lr(
    {k: q[k] - 0.3 * g for k, g in grad(ex_Lu)(q).items()}
)
ex_G = mirror_meta_gradient(ex_model, ex_p, ex_xf, ex_yf, ex_xr, ex_yr, 0.3)
assert ex_G.shape == flatten(ex_p).shape
ex_g9 = torch.Generator().manual_seed(90)
for _ in range(3):
    ex_v = torch.randn(flatten(ex_p).shape, generator=ex_g9, dtype=torch.float64)
    ex_v = unflatten(ex_v / ex_v.norm(), ex_p)
    ex_fd = (ex_JB({k: ex_p[k] + 1e-5 * ex_v[k] for k in ex_p})
             - ex_JB({k: ex_p[k] - 1e-5 * ex_v[k] for k in ex_p})) / 2e-5
    assert abs(ex_fd.item() - (ex_G @ flatten(ex_v)).item()) < 1e-7 * ex_G.norm().item()

# %% tags=["remove-cell", "graded-test", "hidden"]
# Exact gradient against the library's look-ahead with the roles swapped (inner loss
# L_u, outer loss L_r), alpha = 0.3; float64, so 1e-10 relative is generous.
ex_Lr = functional_loss(ex_model, ex_xr, ex_yr)
ex_Lu = functional_loss(ex_model, ex_xf, ex_yf, -1.0)
ex_ref = flatten(grad(ex_Lu)(ex_p)) + flatten(
    lookahead_grads(ex_p, ex_Lu, {"r": ex_Lr}, 0.3, second_order=True)[1]["r"]
)
ex_G = mirror_meta_gradient(ex_model, ex_p, ex_xf, ex_yf, ex_xr, ex_yr, 0.3)
assert (ex_G - ex_ref).norm() < 1e-10 * ex_ref.norm()

# %% tags=["remove-cell", "graded-test", "hidden"]
# First-order approximation against the library, alpha = 0.3.
ex_Lr = functional_loss(ex_model, ex_xr, ex_yr)
ex_Lu = functional_loss(ex_model, ex_xf, ex_yf, -1.0)
ex_ref = flatten(grad(ex_Lu)(ex_p)) + flatten(
    lookahead_grads(ex_p, ex_Lu, {"r": ex_Lr}, 0.3, second_order=False)[1]["r"]
)
ex_G = mirror_meta_gradient(
    ex_model, ex_p, ex_xf, ex_yf, ex_xr, ex_yr, 0.3, second_order=False
)
assert (ex_G - ex_ref).norm() < 1e-10 * ex_ref.norm()

# %% [markdown]
# ```{exercise} The second-order coefficient
# :label: ex-09-alpha2-coefficient
#
# *derivation · about 1 CPU minute*
#
# Show that the $\alpha^2$ coefficient of the expansion {eq}`eq-09-taylor` is $\tfrac{w_f}{2}\, g_r^\top H_u\, g_r$.
# Verify it numerically on the trained network of §9.2: the remainder measured there, divided by $\alpha^2$, should
# tend to its absolute value as $\alpha \to 0$. *Hint:* §9.2 already computed $H_u g_r$ with `jvp(grad(L_u64), ...)`.
# ```

# %% [markdown]
# ```{solution-start} ex-09-alpha2-coefficient
# :class: dropdown
# ```
# Only the forget term depends on $\alpha$. Along the inner step $\theta' = \theta - \alpha g_r$, Taylor's theorem for
# $L_u$ gives $L_u(\theta') = L_u(\theta) - \alpha \langle \nabla L_u, g_r\rangle + \tfrac{\alpha^2}{2} g_r^\top H_u g_r
# + O(\alpha^3)$, the second-order term being the quadratic form of the Hessian in the step $-\alpha g_r$. Multiplying
# by $w_f$, the $\alpha^2$ coefficient of $\mathcal J$ is $\tfrac{w_f}{2} g_r^\top H_u g_r$; it involves the curvature of
# the *unlearning* loss only, because $L_r$ is evaluated at $\theta$. With $w_f = 1$ the remainder of §9.2 is
# $|\tfrac12 g_r^\top H_u g_r|\,\alpha^2 + O(\alpha^3)$, so remainder$/\alpha^2$ approaches that value with a relative
# error of order $\alpha$ (plus the rounding of $\mathcal J$, divided by $\alpha^2$); on the small steps the two agree
# to about $10^{-3}$ or better:

# %%
coef = 0.5 * (flatten(g_r) @ Hu_gr).item()  # w_f = 1
rel = ratio[small] / abs(coef) - 1
print(f"g_r^T H_u g_r / 2 = {coef:.4e}; remainder / alpha^2 relative to it:")
print("  " + ", ".join(f"alpha {a:.0e}: {r:+.1e}" for a, r in zip(alphas[small], rel)))
# remainder / alpha^2 = |coef| (1 + O(alpha)) + rounding / alpha^2. The O(alpha) part is
# at most the ratio's spread over the whole range (alpha up to 1e-1) scaled by alpha /
# 1e-1; the float64 rounding of J is at most about 10 u times the largest logit.
u64 = torch.finfo(torch.float64).eps
z_max = max(functional_call(m64, params, (x,)).abs().max().item() for x in (xf, xr))
higher_order = (ratio.max() / ratio.min() - 1) * alphas[small] / alphas.max()
rounding = 10 * u64 * z_max / (abs(coef) * alphas[small] ** 2)
print("  bound: " + ", ".join(f"{x:.1e}" for x in higher_order + rounding))
assert (np.abs(rel) < higher_order + rounding).all()

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The mirror form has the same regulariser
# :label: ex-09-mirror-regulariser
#
# *derivation · no computing*
#
# Expand the mirror form $\mathcal J_B(\theta) = L_u(\theta) + L_r(\theta - \alpha\nabla L_u(\theta))$ of
# {ref}`ex-09-mirror-metagrad` to first order in $\alpha$ and show that it has the same implicit regulariser as
# {eq}`eq-09-taylor`. Which half of the regulariser's gradient does *its* first-order meta-gradient keep?
# ```

# %% [markdown]
# ```{solution-start} ex-09-mirror-regulariser
# :class: dropdown
# ```
# Along the inner step $-\alpha g_u$ (with $g_u = \nabla L_u$),
# $L_r(\theta - \alpha g_u) = L_r(\theta) - \alpha\langle \nabla L_r, g_u\rangle + O(\alpha^2)$, so
#
# $$
# \mathcal J_B = L_u + L_r - \alpha \langle \nabla L_u, \nabla L_r\rangle + O(\alpha^2),
# $$
#
# the same regulariser as {eq}`eq-09-taylor` with $w_r = w_f = 1$, since the inner product is symmetric: to first
# order it does not matter which loss takes the look-ahead step. The gradient of the regulariser is again
# $-\alpha(H_u g_r + H_r g_u)$. The first-order mirror meta-gradient is $g_u + \nabla L_r(\theta - \alpha g_u)
# = g_u + g_r - \alpha H_r g_u + O(\alpha^2)$: it keeps $-\alpha H_r g_u$, exactly the half that LUR's first-order
# meta-gradient drops ({eq}`eq-09-fo-diff`), and drops $-\alpha H_u g_r$, the half LUR keeps.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Alternating the roles
# :label: ex-09-alternating-roles
#
# *derivation · about 1 CPU minute*
#
# Alternate the roles of inner and outer loss at every step, using first-order meta-gradients: LUR's
# $g_r + \nabla L_u(\theta - \alpha g_r)$ on one step, the mirror form's $g_u + \nabla L_r(\theta - \alpha g_u)$ on
# the next. Show that the average of the two adds $-\tfrac{\alpha}{2}(H_u g_r + H_r g_u)$ to the plain gradient
# $g_r + g_u$, to leading order: both halves of the regulariser's gradient, i.e. the exact meta-gradient's
# look-ahead term at inner rate $\alpha/2$. Check it numerically at the $\theta$ of §9.2 in the way §9.2 checks the
# halves: the error must fall with local order 2 when $\alpha$ is halved. *Hint:* `lookahead_grads` with the roles of
# the losses swapped gives the mirror form's first-order term.
# ```

# %% [markdown]
# ```{solution-start} ex-09-alternating-roles
# :class: dropdown
# ```
# From the expansions of §9.1 and {ref}`ex-09-mirror-regulariser`,
# $\nabla L_u(\theta - \alpha g_r) = g_u - \alpha H_u g_r + O(\alpha^2)$ and
# $\nabla L_r(\theta - \alpha g_u) = g_r - \alpha H_r g_u + O(\alpha^2)$, so the two first-order updates are
# $g_r + g_u - \alpha H_u g_r$ and $g_r + g_u - \alpha H_r g_u$ up to $O(\alpha^2)$, and their average is
# $g_r + g_u - \tfrac{\alpha}{2}(H_u g_r + H_r g_u) + O(\alpha^2)$. Each first-order form keeps one half; alternating
# them recovers both, at half the strength (or at full strength with the inner rate doubled), without any
# Hessian-vector product. Numerically, with the quantities of §9.2:

# %%
alt_err = {}
for a in (A1, A2):
    lur_fo = lur_meta_gradient(m64, xf, yf, xr, yr, a, second_order=False)
    mirror_fo = flatten(g_u0) + flatten(
        lookahead_grads(params, L_u64, {"r": L_r64}, a, second_order=False)[1]["r"]
    )
    added = (lur_fo + mirror_fo) / 2 - plain
    alt_err[a] = (added + a / 2 * (Hu_gr + Hr_gu)).norm().item()
alt_order = math.log2(alt_err[A1] / alt_err[A2])
print(
    f"|average extra + a/2 (H_u g_r + H_r g_u)|: {alt_err[A1]:.2e} at alpha {A1:.0e}, "
    f"{alt_err[A2]:.2e} at {A2:.0e}; local order {alt_order:.3f}"
)
assert min(alt_err.values()) > 100 * floor and abs(alt_order - 2) < 0.25

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} First-order LUR
# :label: ex-09-first-order-run
#
# *experiment · about 2 CPU minutes*
#
# Rerun the class-wise comparison of §9.3 with `lur` at `second_order=False` beside the default (second-order)
# `lur`, over the profile's seeds, with the same `ConflictTracker` on both. Do the gap, the retain accuracy or the
# median forget/retain cosine change measurably? Compare the time per step with the cost printed in §9.2.
# ```

# %% [markdown]
# ```{solution-start} ex-09-first-order-run
# :class: dropdown
# ```
# Over seeds 0-2 in the ci profile, dropping the Hessian term made LUR clearly worse: the retain accuracy fell by
# 1.0-11.5 points and the gap to the oracle grew by 1.7-5.9 points on every seed, with a similar number of steps
# (0 to 5 fewer). The median forget/retain cosine along the runs did not move (first minus second order: −0.03 to
# +0.01), so, as in §9.3, whatever the dropped half $-\alpha H_r g_u$ does, it does not show in that statistic. The
# first-order step is not much cheaper here: a second-order step cost 1.2-2.5 times a first-order one over whole runs
# (stopping checks and the cosine hook included), in line with the ratio of the bare meta-gradients in §9.2.
# At the default $\alpha$ the dropped term is a small share of each meta-gradient (§9.2), yet it is applied at every
# step of a trajectory that ends where both losses pull hard. A plausible reading, which we have not tested: the
# dropped term {eq}`eq-09-fo-diff`, $-\alpha w_f H_r \nabla L_u(\theta')$, is the one that involves the *retain*
# curvature, so it is the part of the look-ahead that can keep the unlearning step out of directions in which the
# retain loss rises fastest.

# %% tags=["skip-execution"]
fo_trackers = {}


def fo_variant(**extra):
    def setup(task, seed):
        tracker = ConflictTracker(task, every=2, probe_size=256, probe_seed=1)
        fo_trackers[extra.get("second_order", True), seed] = tracker
        return {**extra, "post_step": tracker}

    return ("lur", setup)


cmp_fo = compare_methods(
    {"lur": fo_variant(), "lur fo": fo_variant(second_order=False)},
    "class",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_class=FORGET_CLASS,
    progress=False,
    floor=False,
)
for key in ("UA", "RA", "gap", "steps"):
    diff = cmp_fo.per_seed("lur fo", key) - cmp_fo.per_seed("lur", key)
    print(f"{key}: first order − second order per seed {diff.round(2)}")
med = {
    so: np.array([np.median(fo_trackers[so, s].cos) for s in SEEDS])
    for so in (True, False)
}
print("median cosine per seed: second order", med[True].round(3))
print("                        first order ", med[False].round(3))
per_step = lambda m: cmp_fo.per_seed(m, "time_s") / cmp_fo.per_seed(m, "steps")
print(
    "time per step, second / first order:",
    (per_step("lur") / per_step("lur fo")).round(2),
)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} A large inner step
# :label: ex-09-large-alpha
#
# *experiment · about 1 CPU minute*
#
# Run `lur` with `alpha=1.0` (ten times the default) and with the default on each of the profile's seeds in
# class-wise forgetting, with `log=[]`, and look at the forget accuracy per pass and at the final forget, retain
# and test accuracies. What breaks, and does the Taylor picture of §9.1 still apply at that $\alpha$? *Hint:*
# compare the length of the inner step, $\alpha\|g_r\|$, with $\|\theta\|$, along the run (a `ConflictTracker`
# records $\|g_r\|$ on a retain probe).
# ```

# %% [markdown]
# ```{solution-start} ex-09-large-alpha
# :class: dropdown
# ```
# With $\alpha = 1$, over seeds 0-2 in the ci profile, every run collapsed: the forget accuracy stayed at 100 % for
# 7-11 passes and then fell to 0 within one pass (on seed 0 it dropped to 24 %, returned to 100 % and then fell to 0),
# and the final model had a retain and test accuracy of 11.1-11.2 %, chance level for the nine remaining classes: it
# predicts one class everywhere. With the default $\alpha = 0.1$ the same runs ended at UA 95.6-100 % and RA
# 96.4-99.4 %. The hint explains why: along the default runs the inner step is tiny, $\alpha\|g_r\|/\|\theta\|$
# has a median of $2$-$6\cdot10^{-4}$ (at most about 1 %), while along the $\alpha = 1$ runs it has a median of 1.2-1.4 and
# reaches 2.2-4.0: the look-ahead point is as far from $\theta$ as $\theta$ is from the origin. The expansion
# {eq}`eq-09-taylor` assumes a step short enough for the $O(\alpha^2)$ terms to be negligible; here the "look-ahead"
# evaluates the forget loss at an unrelated point, and descending on it is no longer a regularised NegGrad+. The
# growth is self-reinforcing: once the unlearning term starts to damage the model, $g_r$ grows, the inner step grows
# with it, and the meta-gradient stops describing anything near $\theta$.

# %% tags=["skip-execution"]
from unlearnlib.metrics import accuracy

for seed in SEEDS:
    t = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m = original_model(data, cfg, seed=seed, device=device)
    theta_norm = flatten(trainable(m)).norm().item()
    for alpha in (ALPHA, 1.0):
        log, tracker = [], ConflictTracker(t, every=5, probe_size=256, probe_seed=1)
        out = get_method("lur")(m, t, alpha=alpha, log=log, post_step=tracker)
        step_len = alpha * tracker.retain_norm / theta_norm
        print(
            f"seed {seed}, alpha {alpha}: forget acc per pass "
            f"{[round(r['forget_acc']) for r in log]};\n"
            f"  final UA {100 - accuracy(out, t.x_forget, t.y_forget):.1f}, "
            f"RA {accuracy(out, t.x_retain, t.y_retain):.1f}, "
            f"TA {accuracy(out, t.x_test, t.y_test):.1f}; alpha |g_r| / |theta| "
            f"median {np.median(step_len):.1e}, max {step_len.max():.1e}"
        )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. In the look-ahead objective {eq}`eq-09-objective`, which loss is evaluated at the look-ahead point?
#    (a) $L_r$ at $\theta - \alpha\nabla L_u$; (b) $L_u$ at $\theta - \alpha\nabla L_r$; (c) both.
# 2. The sign trap: with $+\mathrm{CE}_f$ at the look-ahead point, the implicit regulariser rewards
#    (a) agreement of the forget and retain gradients; (b) conflict; (c) nothing, the term vanishes.
# 3. With $w_r = w_f = 1$, $\alpha = 0.1$ and $\langle \nabla L_u, \nabla L_r\rangle = 2$, what is
#    $\mathcal J - (L_r + L_u)$ to first order in $\alpha$?
# 4. Which half of the regulariser's gradient does LUR's first-order meta-gradient keep?
#    (a) $-\alpha w_f H_u g_r$; (b) $-\alpha w_f H_r g_u$; (c) neither.
# 5. Why must the look-ahead forward not run a train-mode BatchNorm with the model's own buffers?
#    (a) it is slower; (b) it would update the running statistics a second time per step, from parameters the model
#    never takes; (c) BatchNorm has no trainable parameters.
# 6. In §9.3, did LUR shift the forget/retain gradient cosine towards agreement? (a) yes, significantly, against
#    both NegGrad+ and $\alpha = 0$; (b) no: not significantly higher than either, and in random forgetting
#    significantly lower than NegGrad+'s; (c) it was not measured.

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b). 2. (b): its first-order term is $+\alpha w_f\langle g_f, g_r\rangle$, minimised by conflict.
# 3. $-\alpha\langle \nabla L_u, \nabla L_r\rangle = -0.2$ ({eq}`eq-09-taylor`). 4. (a); the dropped term
# {eq}`eq-09-fo-diff` is, to leading order, the other half. 5. (b); the library refuses train-mode BatchNorm and
# passes buffer copies (§9.2). 6. (b).
