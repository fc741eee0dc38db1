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
# # LTU: learning to unlearn
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/08_ltu.ipynb)
#
# Every method so far assumed that the whole retain set $D_r$ is at hand while unlearning. In practice it often
# is not: the training data may be stored elsewhere, be too large to touch again, or have been deleted in part.
# Huang, Foo and Liu {cite}`huang2024ltu` (arXiv 2407.10494, ECCV 2024) study unlearning when only a **small
# retain subset** $\hat D_r \subset D_r$ is available, and treat it as a problem of *generalisation*: whatever
# the model does to keep its utility should work on the retain samples it cannot see, not only on the few it
# can. Their tool is **meta-learning**, the first of the two look-ahead methods of the book (chapter 09, LUR, is
# the second and analyses the look-ahead objective in detail).
#
# **What is the paper's and what is ours.** The paper's full text was not available to us, only its abstract
# (arXiv 2407.10494) and two machine-written summaries of it. From those come: the setting (a small subset of the
# remaining data), a meta-optimisation in three phases called *meta-tune*, *meta-test* and *meta-update*,
# feedback for forgetting from *differentiable membership-inference models* applied to an audit set drawn from
# the forget set, and **Gradient Harmonization**, which "aligns the remembering and forgetting trajectories by
# mitigating gradient conflicts". Everything concrete below (the losses, the one-step inner update, the attack
# model and its features, which meta-gradients are harmonised and how, every hyperparameter) is **our
# reconstruction**, built from those phrases and from MAML {cite}`finn2017maml` and PCGrad {cite}`yu2020pcgrad`.
# Read this chapter as "a meta-learning unlearner of the kind LTU's abstract describes", not as the paper's
# algorithm.
#
# The library registers two methods built on that reconstruction. **`ltu`** uses the paper's forgetting signal,
# a differentiable membership-inference model. **`ltu_ascent`** is our variant: the same meta-optimisation with
# plain gradient ascent ($-\mathrm{CE}$ on the forget batch) as the forgetting signal, which is not the paper's.
# The walk-through and the main experiment use `ltu_ascent`, because on digits it is the one that forgets reliably
# at every subset size (§8.5); `ltu` runs beside it in every comparison.
#
# **What you will learn**
#
# - the meta-learning formulation of unlearning with a small retain subset: an inner step on a *support* batch,
#   losses at the resulting fast weights on a *disjoint query* batch and on the forget set, and the outer update;
# - the meta-gradient, exact (with a Hessian-vector product) and first order, and what its expansion rewards;
# - why support and query must be disjoint, measured: otherwise the meta-test measures memorisation;
# - a differentiable membership-inference attack as the forgetting signal, why its loss is self-limiting, and how
#   informative such an attack is on our data (barely);
# - Gradient Harmonization: a proof that the harmonised pair never conflicts, and a numerical check;
# - LTU from scratch with `torch.func`, checked step for step against `unlearnlib`;
# - how LTU and NegGrad+, given *the same* retain subset, keep utility as the subset shrinks from all of $D_r$ to
#   1 %, and what one LTU step costs.

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
from sklearn.metrics import roc_auc_score
from torch.func import functional_call, grad, jvp, vjp

import unlearnlib.config
from unlearnlib import records
from unlearnlib.bench import median_time
from unlearnlib.data import cycle_batches, load_dataset, make_task
from unlearnlib.experiment import compare_methods, format_table
from unlearnlib.grads import cosine, flatten, harmonize, loss_grad, trainable, unflatten
from unlearnlib.methods import get_method
from unlearnlib.methods.meta_learning import (
    MembershipModel,
    harmonized_update,
    ltu_meta_gradients,
    membership_loss,
    retain_subset,
    train_membership_model,
)
from unlearnlib.train import TrainConfig, original_model, retrained_model

profile = unlearnlib.config.get_profile()
device = unlearnlib.config.get_device()
cfg = TrainConfig.from_profile(profile)
SEEDS = list(range(profile.seeds))
FORGET_CLASS = 3
defaults_of = lambda name: {
    k: v.default
    for k, v in inspect.signature(get_method(name)).parameters.items()
    if v.default is not inspect.Parameter.empty
}
# The registered ltu uses the membership-inference signal; ltu_ascent, our variant with
# gradient ascent as the forgetting signal, is the one this chapter walks through.
LTU_DEFAULTS = defaults_of("ltu")
ASCENT_DEFAULTS = {**LTU_DEFAULTS, **defaults_of("ltu_ascent")}
print(
    f"profile {profile.name}: dataset {profile.dataset}, model {profile.model}, "
    f"seeds {SEEDS}, device {device}"
)
for name, d in (("ltu", LTU_DEFAULTS), ("ltu_ascent", ASCENT_DEFAULTS)):
    print(
        f"{name} defaults:",
        ", ".join(
            f"{k}={d[k]}"
            for k in (
                "retain_fraction",
                "epochs",
                "lr",
                "alpha",
                "w_f",
                "forget_signal",
                "project",
                "second_order",
            )
        ),
    )

# %% [markdown]
# ## The setting: unlearning with a small retain subset
#
# Notation as in Part II. $D_f$ is the forget set, $D_r$ the retain set, $\hat D_r \subset D_r$ the part of it we
# may use, a fraction $\rho$ of $D_r$. We split $\hat D_r$ once into two disjoint halves, a **support** set
# $\hat D_r^{s}$ and a **query** set $\hat D_r^{q}$. $\mathrm{CE}(\theta; B)$ is the mean cross-entropy on a
# batch $B$.
#
# With little retain data, the obvious recipe, NegGrad+ on $\hat D_r$ (chapter 02), has a weakness: its retain
# term $\mathrm{CE}(\theta; \hat D_r)$ can be driven down by *memorising* the few samples of $\hat D_r$ while the
# rest of $D_r$, which no term of the objective sees, degrades. LTU's answer (the paper's idea, our formulas) is
# to ask of every update that it also be good *after one more step of learning on other retain data*, and to
# measure "good" on retain samples that step did not see. One step of LTU at parameters $\theta$, with a support
# batch $S$, a query batch $Q$ and a forget batch $B_f$:
#
# 1. **Meta-tune**: one inner gradient step on the support batch, reaching the *fast weights*
#
# $$
# \theta' = \theta - \alpha\, \nabla L_{sup}(\theta), \qquad L_{sup}(\theta) = \mathrm{CE}(\theta; S).
# $$ (eq-08-inner)
#
# 2. **Meta-test**: evaluate at $\theta'$ a *remembering* loss on the query batch and a *forgetting* loss on the
#    forget batch, $L_{rem}(\theta') = \mathrm{CE}(\theta'; Q)$ and $L_{fgt}(\theta')$ (§8.2).
# 3. **Meta-update**: descend on
#
# $$
# \mathcal J(\theta) = \underbrace{L_{sup}(\theta) + L_{rem}\big(\theta'(\theta)\big)}_{\text{remembering}}
#   + w_f\, \underbrace{L_{fgt}\big(\theta'(\theta)\big)}_{\text{forgetting}},
# $$ (eq-08-objective)
#
#    after **Gradient Harmonization** of the two meta-gradients (§8.3).
#
# This is MAML's structure {cite}`finn2017maml` (arXiv 1703.03400): an inner adaptation step, an outer loss
# at the adapted parameters, and a gradient of the outer loss *through* the inner step. The inner rate $\alpha$
# belongs to the objective; the outer learning rate is the optimiser's (SGD with momentum and weight decay, as
# everywhere in the book).
#
# **The meta-gradient.** The Jacobian of $\theta \mapsto \theta'$ is $I - \alpha H_{sup}(\theta)$, with
# $H_{sup} = \nabla^2 L_{sup}$ symmetric, so the chain rule gives the two meta-gradients
#
# $$
# G_{rem} = \nabla L_{sup}(\theta) + (I - \alpha H_{sup})\, \nabla L_{rem}(\theta'), \qquad
# G_{fgt} = w_f\, (I - \alpha H_{sup})\, \nabla L_{fgt}(\theta'),
# $$ (eq-08-metagrad)
#
# and $\nabla\mathcal J = G_{rem} + G_{fgt}$. Computing $H_{sup} v$ needs a second backward pass through the first
# (a Hessian-vector product, a `vjp` of `grad` in `torch.func`). **First-order MAML** treats $\nabla L_{sup}(\theta)$
# as a constant, i.e. sets the Jacobian to $I$, and keeps $\nabla L_{rem}(\theta')$ and $w_f \nabla L_{fgt}(\theta')$:
# the gradients at the fast weights, applied at $\theta$. It drops exactly
#
# $$
# \nabla\mathcal J - \nabla^{FO}\mathcal J = -\alpha\, H_{sup}(\theta)\,\big(\nabla L_{rem}(\theta') + w_f \nabla L_{fgt}(\theta')\big).
# $$ (eq-08-fo-diff)
#
# The library's default is first order (it costs one backward pass less); §8.4 measures what is dropped.
#
# **What the objective rewards.** Expanding each outer loss along the inner step, as chapter 09 does in detail
# for LUR (its {eq}`eq-09-taylor-inner`), $L(\theta') = L(\theta) - \alpha \langle \nabla L(\theta), \nabla L_{sup}(\theta)\rangle + O(\alpha^2)$, so
#
# $$
# \mathcal J = L_{sup} + L_{rem} + w_f L_{fgt}
#   - \alpha \langle \nabla L_{rem}, \nabla L_{sup}\rangle
#   - \alpha\, w_f \langle \nabla L_{fgt}, \nabla L_{sup}\rangle + O(\alpha^2).
# $$ (eq-08-taylor)
#
# Two inner-product rewards appear (our derivation). The first rewards parameters where the retain gradients of
# two **different** batches agree: a step that helps the support samples also helps the query samples. That is
# what "generalisable" means to first order. The second is LUR's regulariser (chapter 09): it rewards a
# forgetting direction that agrees with the retaining one, i.e. small conflict. By chapter 09's argument, the
# first-order meta-gradient keeps only half of each reward's gradient.
#
# **Why support and query must be disjoint.** Put $Q = S$ in {eq}`eq-08-taylor`: the first reward becomes
# $-\alpha\|\nabla L_{sup}\|^2$, which rewards a *large* gradient on the very batch the inner step fits, i.e.
# parameters from which one step memorises $S$ quickly, and the meta-test loss $L_{rem}(\theta')$ then reports
# that memorisation as "remembering". With a disjoint query batch the same term is an honest estimate of what an
# inner step does to unseen retain data. We measure the difference on the trained model: how much one inner step
# on a support batch of 16 lowers the loss of (a) that batch, (b) a disjoint query batch from $\hat D_r$, and (c)
# all retain samples outside $\hat D_r$, averaged over 20 batch pairs.

# %%
data = load_dataset(profile.dataset).to(device)
task = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
m0 = original_model(data, cfg, seed=0, device=device)
print(task.describe())
print(
    "buffers of the model (a look-ahead forward must not update any): "
    f"{[n for n, _ in m0.named_buffers()]}"
)


def ce_of(model, x, y, sign=1.0):
    """p -> sign * CE(model with parameters p on (x, y)); our models keep no buffers
    (GroupNorm)."""
    return lambda p: sign * F.cross_entropy(functional_call(model, p, (x,)), y)


def inner_step_drops(model, t, seed, rho, alpha, pairs=20, batch=16):
    dev = t.retain_idx.device
    support, query = (i.to(dev) for i in retain_subset(t, rho, seed))  # CPU positions
    outside = torch.ones(len(t.retain_idx), dtype=torch.bool, device=dev)
    outside[torch.cat([support, query])] = False
    xr, yr = t.x_retain, t.y_retain
    p = {k: v.detach() for k, v in trainable(model).items()}
    gen, drops = torch.Generator().manual_seed(seed), []
    for _ in range(pairs):
        si = support[torch.randperm(len(support), generator=gen)[:batch].to(dev)]
        qi = query[torch.randperm(len(query), generator=gen)[:batch].to(dev)]
        g = grad(ce_of(model, xr[si], yr[si]))(p)
        fast = {k: p[k] - alpha * g[k] for k in p}
        drop = lambda x, y: (ce_of(model, x, y)(p) - ce_of(model, x, y)(fast)).item()
        drops.append(
            [drop(xr[si], yr[si]), drop(xr[qi], yr[qi]), drop(xr[outside], yr[outside])]
        )
    return np.mean(drops, 0)


RHO, ALPHA = ASCENT_DEFAULTS["retain_fraction"], ASCENT_DEFAULTS["alpha"]
drops = {}
for seed in SEEDS:
    t = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    drops[seed] = inner_step_drops(
        original_model(data, cfg, seed=seed, device=device), t, seed, RHO, ALPHA
    )
    print(
        f"seed {seed}: loss drop after one inner step (alpha {ALPHA}): support batch "
        f"itself {drops[seed][0]:.2e},\n        "
        f"disjoint query batch {drops[seed][1]:+.2e}, "
        f"D_r outside the subset {drops[seed][2]:+.2e}"
    )
# On every seed the same-batch drop is several times the drop on the unseen rest of D_r,
# and the disjoint query batch (unseen by the inner step too) is the closer estimate of
# that unseen drop.
assert all(
    d[0] > 3 * abs(d[2]) and abs(d[1] - d[2]) < abs(d[0] - d[2]) for d in drops.values()
)

# %% [markdown]
# On every seed, the inner step lowers the loss of the batch it was computed on several times more than the
# loss of the retain data it has not seen (which may even rise), and the drop on a disjoint query batch is the
# closer estimate of the latter (noisy, being a batch of 16). A meta-test on the support batch would have
# rewarded exactly that gap. (The numbers are small because the trained model fits $D_r$ almost perfectly.) The library's
# `retain_subset` therefore splits $\hat D_r$ into disjoint support and query halves once, and LTU draws its
# support batches from the first and its query batches from the second.
#
# ## The forgetting signal: a differentiable membership-inference attack
#
# **The paper's idea.** According to the summaries, LTU's forgetting feedback comes from $K$ *differentiable*
# membership-inference (MI) models applied to an audit set derived from $D_f$, used "as an active guidance
# signal": rather than ascending the forget loss blindly, the model is pushed until an attack can no longer tell
# that the forget samples were trained on.
#
# **Our reconstruction.** $K = 1$ attack $A$, a logistic regression on three output statistics of a sample
# $(x, y)$ with logits $z = f_\theta(x)$ and probabilities $p$: the true-class log-probability $\log p_y$, the
# entropy $-\sum_c p_c \log p_c$, and the margin $z_y - \max_{c\ne y} z_c$. All three are differentiable in $\theta$
# (the margin almost everywhere), so $P(\text{member}) = \sigma(s)$ with $s = w^\top \mathrm{std}(\phi(z, y)) + b$ can
# be differentiated through the network, at the fast weights $\theta'$ (we do not stop its gradient). It is
# fitted **once, at $\theta_0$**, on members = the support set $\hat D_r^s$ and non-members = the first half of
# the test set (class-balanced weights), so it never sees the forget set it will audit, nor the query set, which
# we keep as an evaluation split for it. The forgetting loss on a forget batch is
#
# $$
# L_{fgt}^{mia}(\theta) = \frac{1}{|B_f|}\sum_{(x,y)\in B_f} -\log\big(1 - \sigma(s_\theta(x,y))\big)
#   = \frac{1}{|B_f|}\sum_{(x,y)\in B_f} \operatorname{softplus}\big(s_\theta(x,y)\big),
# $$ (eq-08-mia-loss)
#
# the cross-entropy of the attack against the label "non-member". Its derivative in the attack's logit is
#
# $$
# \frac{\partial}{\partial s}\operatorname{softplus}(s) = \sigma(s) = P(\text{member}),
# $$ (eq-08-mia-grad)
#
# so each forget sample is pushed in proportion to how much the attack still believes it is a member, and not at
# all once the attack calls it a non-member. Unlike $-\mathrm{CE}_f$ of gradient ascent, which is unbounded below and whose
# push never fades (chapter 02), {eq}`eq-08-mia-loss` is bounded below by 0 and self-limiting. The simpler variant,
# `forget_signal="ascent"`, uses $L_{fgt} = -\mathrm{CE}(\theta; B_f)$.
#
# From scratch: the three features and the loss, checked against `MembershipModel` and `membership_loss`.


# %%
def my_features(logits, y):
    rows = torch.arange(len(y), device=y.device)
    logp = logits.log_softmax(1)
    entropy = -(logp.exp() * logp).sum(1)
    is_true = F.one_hot(y, logits.shape[1]).bool()
    margin = (
        logits[rows, y]
        - torch.where(is_true, torch.full_like(logits, -torch.inf), logits)
        .max(1)
        .values
    )
    return torch.stack([logp[rows, y], entropy, margin], 1)


def my_mia_loss(attack, logits, y):
    """-log(1 - P(member)) with the fitted weights of `attack` (w, b and the
    standardisation)."""
    s = ((my_features(logits, y) - attack.mean) / attack.scale) @ attack.linear.weight[
        0
    ] + attack.linear.bias[0]
    return -torch.log1p(-torch.sigmoid(s)).mean()


def fit_attack(model, t, seed, rho):
    support = retain_subset(t, rho, seed)[0].to(t.x_retain.device)
    half, dtype = len(t.y_test) // 2, next(model.parameters()).dtype
    return train_membership_model(
        model,
        t.x_retain[support].to(dtype),
        t.y_retain[support],
        t.x_test[:half].to(dtype),
        t.y_test[:half],
        seed=seed,
    )


attack0 = fit_attack(m0, task, 0, RHO)
with torch.no_grad():
    z, y = m0(task.x_forget[:64]), task.y_forget[:64]
    # the same few float32 operations in another order: a relative error of some u
    # (1e-5 is about 100 u), on features as large as the logits
    assert torch.allclose(
        my_features(z, y),
        MembershipModel.features(z, y),
        rtol=1e-5,
        atol=1e-5 * z.abs().max().item(),
    )
    assert torch.allclose(
        my_mia_loss(attack0, z, y), membership_loss(attack0, z, y), rtol=1e-5
    )
print(
    "features and MIA loss from scratch match the library;\n"
    "attack weights on (log p_y, entropy, margin):",
    attack0.linear.weight.data.squeeze().tolist(),
)

# %% [markdown]
# **Is the attack informative?** An attack that cannot tell members from non-members gives a forgetting signal
# of no particular meaning. We measure its ROC AUC at $\theta_0$ on every seed: on its own training data (support
# vs first half of the test set), on a held-out evaluation split it never saw (the query set vs the second half of
# the test set), and on the audit task itself (the forget set vs the second half of the test set). For
# comparison, the best any single feature can do on *all* of $D_r$ against the test set.


# %%
def p_member(attack, model, x, y):
    with torch.no_grad():
        return torch.sigmoid(attack(model.eval()(x), y))


def auc(attack, model, members, nonmembers):
    s_in, s_out = (
        p_member(attack, model, *members),
        p_member(attack, model, *nonmembers),
    )
    labels = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    return 100 * roc_auc_score(labels, torch.cat([s_in, s_out]).cpu().numpy())


def se_auc(n_in, n_out):
    """Standard deviation (in points) of the AUC of a chance-level attack with n_in
    members and n_out non-members (the Mann-Whitney statistic under the null)."""
    return 100 * math.sqrt((n_in + n_out + 1) / (12 * n_in * n_out))


attack_auc = {}
for seed in SEEDS:
    t = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m = original_model(data, cfg, seed=seed, device=device)
    support, query = (i.to(device) for i in retain_subset(t, RHO, seed))
    half = len(t.y_test) // 2
    test1, test2 = (
        (t.x_test[:half], t.y_test[:half]),
        (t.x_test[half:], t.y_test[half:]),
    )
    A = fit_attack(m, t, seed, RHO)
    with torch.no_grad():
        f_in, f_out = (
            MembershipModel.features(m(t.x_retain), t.y_retain),
            MembershipModel.features(m(t.x_test), t.y_test),
        )
    lab = np.r_[np.ones(len(f_in)), np.zeros(len(f_out))]
    best = max(
        100
        * max(
            roc_auc_score(lab, s * torch.cat([f_in[:, k], f_out[:, k]]).cpu().numpy())
            for s in (1, -1)
        )
        for k in range(3)
    )
    attack_auc[seed] = {
        "train": auc(A, m, (t.x_retain[support], t.y_retain[support]), test1),
        "held-out": auc(A, m, (t.x_retain[query], t.y_retain[query]), test2),
        "audit": auc(A, m, (t.x_forget, t.y_forget), test2),
        "best feature": best,
        "P(member) D_f": p_member(A, m, t.x_forget, t.y_forget).mean().item(),
        "w log p_y": A.linear.weight[0, 0].item(),
        "se train": se_auc(len(support), half),
        "se held-out": se_auc(len(query), len(t.y_test) - half),
    }
    r = attack_auc[seed]
    print(
        f"seed {seed}: attack AUC (%) "
        + ", ".join(
            f"{k} {r[k]:.1f}" for k in ("train", "held-out", "audit", "best feature")
        )
        + f" (chance: 50 ± {r['se held-out']:.1f});\n        mean P(member) on D_f "
        f"{r['P(member) D_f']:.2f}; weight on log p_y {r['w log p_y']:.2f}"
    )
aucs = {k: np.array([attack_auc[s][k] for s in SEEDS]) for k in attack_auc[SEEDS[0]]}
# The attack fits its training data better than chance: on average over the seeds, by
# more than three standard errors of a chance-level AUC ...
assert aucs["train"].mean() - 50 > 3 * aucs["se train"].mean() / len(SEEDS) ** 0.5
# ... but nothing on digits is much better than chance: even the best single feature on
# all of D_r reaches < 65, and the attack's held-out AUC is within three standard errors
# of 50 on every seed.
assert (aucs["best feature"] < 65).all()
assert (np.abs(aucs["held-out"] - 50) < 3 * aucs["se held-out"]).all()
# At theta0 the attack is undecided about the forget set: mean P(member) within 0.2 of
# 1/2.
assert (np.abs(aucs["P(member) D_f"] - 0.5) < 0.2).all()
# The fitted weight on log p_y is positive on every seed: lowering P(member) lowers the
# true-class confidence.
assert (aucs["w log p_y"] > 0).all()

# %% [markdown]
# The honest reading: **on digits there is very little membership signal to begin with.** The trained model
# classifies unseen test digits almost as confidently as its training digits (chapter 01 measured the same with
# the loss-based attack), so even the best single output feature separates all of $D_r$ from the test set only a
# few points above chance, and our attack, fitted on the small support set, does better than chance on its own
# training data (on average over the seeds; partly by overfitting its 30 members) but is indistinguishable from a
# coin flip on data it did not see: within three standard errors of 50 (the printed "chance" interval is one
# standard error). Its $P(\text{member})$ on the forget set
# starts near $\tfrac12$. What the MIA loss then does to the forget set is mostly what its weights say: the fitted
# weight on $\log p_y$ is positive on every seed (printed above; the other two weights vary in sign), so lowering
# $P(\text{member})$ mainly means lowering the model's confidence on $D_f$: a softened, self-limiting version of
# gradient ascent. On CIFAR-scale models with a
# train-test gap of several points, the attack would carry real information; on digits, read
# `forget_signal="mia"` as "ascent with a learned, saturating weighting". On held-out seeds this signal turned out
# not to be reliable when $\hat D_r$, and with it the attack's training set, is tiny, so the rest of this chapter
# walks through the ascent variant `ltu_ascent`, and the registered `ltu`, with the paper's signal, runs beside it
# (§8.5). §8.5 also measures what the attack says after unlearning.
#
# ## Gradient Harmonization
#
# **The paper's idea.** The remembering and the forgetting meta-gradients can conflict,
# $\langle G_{rem}, G_{fgt}\rangle < 0$; Gradient Harmonization "aligns the two trajectories by mitigating the
# conflicts" and the paper's keywords include "gradient projection". **Our reconstruction** is PCGrad
# {cite}`yu2020pcgrad` (arXiv 2001.06782; chapter 05) on the two meta-gradients: when they conflict, project each
# onto the normal plane of the *other original* one, and sum,
#
# $$
# G_{rem}^h = G_{rem} - \frac{c}{\|G_{fgt}\|^2}\, G_{fgt}, \quad
# G_{fgt}^h = G_{fgt} - \frac{c}{\|G_{rem}\|^2}\, G_{rem}, \quad c = \langle G_{rem}, G_{fgt}\rangle < 0,
# $$ (eq-08-gh)
#
# and leave both unchanged when $c \ge 0$. The update is $G_{rem}^h + G_{fgt}^h$. Whether the paper projects both
# gradients or only the forgetting one is not known to us (the summaries suggest, without saying so, the
# forgetting gradient). The library implements both: `project="both"` is {eq}`eq-08-gh`, and `project="forget"` keeps
# $G_{rem}$ and projects only $G_{fgt}$,
#
# $$
# G_{fgt}^{h,1} = G_{fgt} - \frac{\min(0, c)}{\|G_{rem}\|^2}\, G_{rem}, \qquad d = G_{rem} + G_{fgt}^{h,1},
# $$ (eq-08-gh-one)
#
# the one-sided projection of chapter 05 (unilateral surgery with $\varepsilon = 0$). The held-out selection of the
# defaults (§8.5) ended with the two-sided form; in that sweep the two differed by less than the seed noise.
#
# **The harmonised pair never conflicts (our derivation).** Write $a = G_{rem}$, $b = G_{fgt}$, $c = \langle a, b\rangle < 0$ and
# $\cos\varphi = c / (\|a\|\|b\|)$. Expanding {eq}`eq-08-gh`,
#
# $$
# \langle a^h, b^h\rangle = c - c\,\frac{\|a\|^2}{\|a\|^2} - c\,\frac{\|b\|^2}{\|b\|^2} + \frac{c^3}{\|a\|^2\|b\|^2}
#   = -c\,\big(1 - \cos^2\varphi\big) \;\ge\; 0 ,
# $$ (eq-08-gh-inner)
#
# since $-c > 0$ and $\cos^2\varphi \le 1$, with equality only for exactly opposite gradients. By construction
# $a^h \perp b$ and $b^h \perp a$, so the summed update $d = a^h + b^h$ has
# $\langle d, a\rangle = \|a\|^2 - c^2/\|b\|^2 = \|a\|^2 \sin^2\varphi \ge 0$ and likewise $\langle d, b\rangle \ge 0$: to
# first order, a step along $-d$ raises neither loss. The one-sided form {eq}`eq-08-gh-one` gives
# $\langle a, b^{h,1}\rangle = 0$ and $\langle d, a\rangle = \|a\|^2$, so the remembering loss is protected fully, but
# $\langle d, b\rangle = c + \|b\|^2\sin^2\varphi$ can be negative: the forgetting loss is no longer guaranteed
# to fall to first order. We check all of this on the real meta-gradients of the trained model, where they do
# conflict, and on random conflicting pairs.

# %%
u32 = torch.finfo(torch.float32).eps


def my_harmonize(a, b, project="both"):
    """Gradient Harmonization, returning the update direction; no Python branch on a
    tensor (no host sync)."""
    c = a @ b
    conflict = (c < 0).to(a.dtype)
    b_h = b - conflict * c / (a @ a) * a
    if project == "forget":
        return a + b_h
    return a - conflict * c / (b @ b) * b + b_h


support, query = (i.to(device) for i in retain_subset(task, RHO, 0))
ATTACK = None  # the forgetting signal of ltu_ascent, the variant walked through here
gen = torch.Generator().manual_seed(0)
checked = {"ascent": [], "mia": []}
for k in range(
    8
):  # 8 batch triples (support, query, forget) of 32, both forgetting signals
    si = support[torch.randperm(len(support), generator=gen)[:32].to(device)]
    qi = query[torch.randperm(len(query), generator=gen)[:32].to(device)]
    fi = torch.randperm(len(task.y_forget), generator=gen)[:32].to(device)
    batches = (
        task.x_retain[si],
        task.y_retain[si],
        task.x_retain[qi],
        task.y_retain[qi],
        task.x_forget[fi],
        task.y_forget[fi],
    )
    for signal, A in (("ascent", None), ("mia", attack0)):
        a, b = ltu_meta_gradients(m0, *batches, ALPHA, A)
        a_h, b_h = harmonize(a, b)
        c, cos_ab = a @ b, cosine(a, b)
        # a float32 inner product over P terms is rounded by about u sqrt(P) |a| |b|;
        # a few of them enter each quantity below, hence the factor 10
        tol = 10 * u32 * math.sqrt(len(a)) * a.norm() * b.norm()
        if c < 0:  # the closed form (eq-08-gh-inner); both losses descend along d
            assert (a_h @ b_h + c * (1 - cos_ab**2)).abs() < tol
            d = harmonized_update(a, b, "both")
            assert d @ a >= 0 and d @ b >= 0
            one = harmonized_update(a, b, "forget") - a
            assert abs(one @ a) < tol * one.norm() / b.norm()
        assert a_h @ b_h >= 0
        for project in ("both", "forget"):
            ref = harmonized_update(a, b, project)
            assert (ref - my_harmonize(a, b, project)).norm() < 10 * u32 * math.sqrt(
                len(a)
            ) * ref.norm()
        checked[signal].append(cos_ab.item())
        if k == 0 and signal == ASCENT_DEFAULTS["forget_signal"]:
            xs, ys, xq, yq, xf, yf = batches  # kept for the timings of §8.6
            G_rem, G_fgt = a, b
for signal, cs in checked.items():
    print(f"{signal:6s}: cos(G_rem, G_fgt) at theta0 on 8 batch triples:\n        "
          f"{np.round(cs, 3).tolist()}")
print("harmonised pairs: all inner products >= 0; closed form checked on every "
      "conflicting triple")

gen = torch.Generator().manual_seed(0)
pairs = torch.randn(2000, 2, 50, generator=gen, dtype=torch.float64)
# |G_fgt| from 1 % to 10 times |G_rem|
pairs[:, 1] *= 10 ** (3 * torch.rand(2000, 1, generator=gen, dtype=torch.float64) - 2)
pairs = pairs.to(device)
raw = (pairs[:, 0] * pairs[:, 1]).sum(1)
inner = torch.stack([(lambda u, v: u @ v)(*harmonize(p[0], p[1])) for p in pairs])
d_f = torch.stack([harmonized_update(p[0], p[1], "forget") @ p[1] for p in pairs])
print(
    f"random pairs: {int((raw < 0).sum())} of {len(pairs)} conflict; "
    f"min <a_h, b_h> after harmonisation {inner.min():.2e};\n"
    f"one-sided: <d, G_fgt> < 0 for {int((d_f < 0).sum())} pairs"
)
assert inner.min() >= -1e-12 and (raw < 0).sum() > 500
assert (d_f < 0).any() and not (d_f[raw >= 0] < 0).any()

# %% [markdown]
# ## From scratch: LTU in `torch.func`
#
# The meta-gradients {eq}`eq-08-metagrad` in a few lines: a `vjp` through the inner step gives the pull-back
# $v \mapsto (I - \alpha H_{sup})v$, applied to the gradients of the two query losses at $\theta'$; the first-order
# version skips it. We check our function against the library's `ltu_meta_gradients` in float64, on the
# same batches, with the MIA and the ascent signal, and check {eq}`eq-08-fo-diff` with an independent
# forward-over-reverse Hessian-vector product (`jvp` of `grad`).


# %%
def my_meta_gradients(
    model, p, xs, ys, xq, yq, xf, yf, alpha, attack=None, w_f=1.0, second_order=False
):
    L_sup, L_rem = ce_of(model, xs, ys), ce_of(model, xq, yq)
    if attack is None:
        L_fgt = ce_of(model, xf, yf, sign=-1.0)
    else:
        L_fgt = lambda q: my_mia_loss(attack, functional_call(model, q, (xf,)), yf)
    inner = lambda q: {
        k: q[k] - alpha * v for k, v in grad(L_sup)(q).items()
    }  # θ -> θ'
    if second_order:
        fast, pullback = vjp(inner, p)
        rem, fgt = (
            pullback(grad(L_rem)(fast))[0],
            pullback(grad(L_fgt)(fast))[0],
        )  # (I - αH) ∇L(θ')
    else:
        fast = {k: v.detach() for k, v in inner(p).items()}
        rem, fgt = grad(L_rem)(fast), grad(L_fgt)(fast)  # ∇L(θ')
    g_sup = grad(L_sup)(p)
    return flatten({k: g_sup[k] + rem[k] for k in p}), w_f * flatten(fgt)


m64 = copy.deepcopy(m0).double().eval()
p64 = {k: v.detach() for k, v in trainable(m64).items()}
b64 = [v.double() if v.is_floating_point() else v for v in (xs, ys, xq, yq, xf, yf)]
attack64 = fit_attack(m64, task, 0, RHO)
results = {}
for signal, A in (("mia", attack64), ("ascent", None)):
    for so in (False, True):
        ours = my_meta_gradients(m64, p64, *b64, ALPHA, A, 0.7, so)
        lib = ltu_meta_gradients(m64, *b64, ALPHA, A, 0.7, so)
        err = max(
            (o - l).abs().max().item() / l.norm().item() for o, l in zip(ours, lib)
        )
        results[signal, so] = lib
        print(
            f"{signal:6s} {'exact' if so else 'first order':11s}: "
            f"max |ours - library| / |library| = {err:.1e}"
        )
        assert err < 1e-12
for signal in ("mia", "ascent"):
    (R_fo, F_fo), (R_ex, F_ex) = results[signal, False], results[signal, True]
    L_sup = ce_of(m64, b64[0], b64[1])
    g_sup = flatten(grad(L_sup)(p64))
    at_fast = unflatten((R_fo - g_sup) + F_fo, p64)  # ∇L_rem(θ') + w_f ∇L_fgt(θ')
    _, hvp = jvp(grad(L_sup), (p64,), (at_fast,))
    diff = (R_ex + F_ex) - (R_fo + F_fo)
    assert torch.allclose(diff, -ALPHA * flatten(hvp), rtol=1e-8, atol=1e-14)
    assert diff.norm() < 0.1 * (R_ex + F_ex).norm(), "the Hessian term is small"
    print(
        f"{signal:6s}: |exact - first order| / |exact| = "
        f"{diff.norm() / (R_ex + F_ex).norm():.3f}, "
        f"cos(exact, first order) = {cosine(R_ex + F_ex, R_fo + F_fo):.4f};\n"
        "        equals -alpha H_sup(...) as derived"
    )

# %% [markdown]
# At the library's $\alpha$ the Hessian term is less than a tenth of the meta-gradient on the trained network
# (checked; the share is printed above), so the first-order direction points almost the same way; the
# experiment below uses it.
#
# **The whole loop.** Our LTU: copy the model, fit the attack at $\theta_0$, then per step draw a forget, a
# support and a query batch, form the two meta-gradients, harmonise, and let SGD (momentum 0.9, weight decay
# $5\cdot10^{-4}$, chapter 02) take the step. To see *the same batches* as the library, we reuse its batch streams
# (`cycle_batches`, chapter 02) with the same generators: the shared loop draws a forget and a retain batch per step
# from one generator seeded with `seed` (LTU does not use the retain batch, but drawing it keeps the streams
# aligned), and LTU draws its support and query batches from a second one seeded with `seed + 3`. Then our
# parameters after a few steps must equal the library's up to float32 rounding.


# %%
def my_ltu(
    model0,
    t,
    positions,
    steps,
    lr,
    alpha,
    w_f=1.0,
    signal="ascent",
    project="both",
    batch_size=32,
    seed=0,
):
    model = copy.deepcopy(model0).train()
    half = len(positions) // 2
    support, query = positions[:half], positions[half:]
    xs, ys, xq, yq = (
        t.x_retain[support],
        t.y_retain[support],
        t.x_retain[query],
        t.y_retain[query],
    )
    xf, yf = t.x_forget, t.y_forget
    attack = None
    if signal == "mia":
        n = len(t.y_test) // 2
        attack = train_membership_model(
            model0, xs, ys, t.x_test[:n], t.y_test[:n], seed=seed
        )
    g_loop, g_ltu = (
        torch.Generator().manual_seed(seed),
        torch.Generator().manual_seed(seed + 3),
    )
    dev = xf.device  # the streams draw on the CPU, then move the batches
    f_stream = cycle_batches(len(yf), batch_size, g_loop, dev)
    r_stream = cycle_batches(len(positions), batch_size, g_loop, dev)
    s_stream = cycle_batches(len(ys), batch_size, g_ltu, dev)
    q_stream = cycle_batches(len(yq), batch_size, g_ltu, dev)
    params = list(trainable(model).values())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    for _ in range(steps):
        fi, _ = next(f_stream), next(r_stream)
        si, qi = next(s_stream), next(q_stream)
        p = {k: v.detach() for k, v in trainable(model).items()}
        G_r, G_f = my_meta_gradients(
            model, p, xs[si], ys[si], xq[qi], yq[qi], xf[fi], yf[fi], alpha, attack, w_f
        )
        for par, upd in zip(
            params, unflatten(my_harmonize(G_r, G_f, project), p).values()
        ):
            par.grad = upd.clone()
        opt.step()
    return model.eval()


positions = torch.cat(retain_subset(task, RHO, 0)).to(device)
for signal in ("mia", "ascent"):
    ours = my_ltu(
        m0,
        task,
        positions,
        6,
        ASCENT_DEFAULTS["lr"],
        ALPHA,
        signal=signal,
        project=ASCENT_DEFAULTS["project"],
    )
    lib = get_method("ltu_ascent")(
        m0,
        task,
        retain_positions=positions,
        steps=6,
        stop_at=None,
        forget_signal=signal,
    )
    moved = max(
        (a - b).abs().max().item() for a, b in zip(lib.parameters(), m0.parameters())
    )
    dev = max(
        (a - b).abs().max().item() for a, b in zip(ours.parameters(), lib.parameters())
    )
    print(
        f"{signal:6s}: 6 steps, largest parameter change {moved:.2e}, "
        f"largest |ours - library| {dev:.1e}"
    )
    # each step's direction is the same float32 arithmetic in another order, off by
    # about u sqrt(P) ~ 1e-5 of its size; six steps stay well inside 1e-3 of the
    # distance moved, while a sign error or a dropped term would be of that order
    assert dev < 1e-3 * moved

# %% [markdown]
# ## The experiment: LTU and NegGrad+ with the same small retain subset
#
# **The claim to check.** LTU's abstract says the meta-optimisation preserves generalisable knowledge with only a
# small subset of the remaining data. The comparison that tests this is against a simple method *given the same
# subset*: "LTU keeps utility better than NegGrad+ when both see the same small retain subset".
#
# **How the defaults were chosen.** As for every method of the book, on held-out seeds 100-104 (never the seeds
# reported here), class-wise forgetting of class 3, by the oracle-free rule of chapter 02: the highest retain
# accuracy among the settings whose forget accuracy reaches the target (10 %) on every held-out seed. We swept the
# outer learning rate (3e-4, 1e-3, 3e-3), $\alpha$ (0.01, 0.03, 0.1, 0.3), both forgetting signals and both
# projections, first order, at $\rho = 5\,\%$. Applied at 5 % alone, the rule picked the MIA signal with
# $\alpha = 0.01$ and the one-sided projection. Its forget accuracy at 5 % is already at the edge (9.5 % on one
# held-out seed), and with it this chapter's experiment fails to forget at 1 %, 20 % and 100 % on some of the
# *reported* seeds. In fairness to the reader: that observation, not a held-out result, is what made us revisit
# the rule; the revised rule itself uses held-out seeds only. Because this chapter uses the default at every subset size, we applied the rule *jointly*:
# a setting must reach the target on every held-out seed at 1 %, 5 %, 20 % and 100 %, and among those the highest
# retain accuracy at 5 % wins. Retain accuracy (%) on the held-out seeds, mean of 5 (✗: missed the target on at
# least one seed, and was not run further):
#
# | lr | $\alpha$ | signal | projection | 1 % | 5 % | 20 % | 100 % |
# |---|---|---|---|---|---|---|---|
# | 3e-4 | 0.03 | ascent | both | 92.8 | **99.27** | 98.9 | 98.6 |
# | 3e-4 | 0.1 | ascent | forget | 93.7 | 99.26 | 99.4 | 99.3 |
# | 3e-4 | 0.01 | ascent | forget | 92.2 | 99.22 | 99.1 | 99.0 |
# | 3e-4 | any | mia | any | | ✗ (99.4-99.9) | | |
# | 1e-3 | 0.01 | mia | forget | ✗ | 99.37 | | |
# | 1e-3 | 0.1 | mia | both (old default) | ✗ | 98.63 | | |
# | 1e-3 | 0.1 | ascent | both | 93.4 | 98.38 | 96.1 | 98.3 |
# | 3e-3 | 0.1 | ascent | both | 81.2 | 96.45 | 91.3 | 92.9 |
# | 3e-4 | 0 (no meta-step) | ascent | both | | 99.11 | | |
#
# Every MIA setting run at 1 % missed the target there (its attack is fitted on 6 members); the MIA settings
# with lr 3e-3 and $\alpha \ge 0.03$ were not run beyond 5 %, where their retain accuracy (97.3-98.3) was already
# too low to win. The joint rule therefore picks lr $3\cdot10^{-4}$, $\alpha = 0.03$, the **ascent** signal and
# the two-sided projection: these are the defaults of `ltu_ascent`. Two honest caveats: the top
# rows differ by less than the seed noise, and the rule is blind to the meta-step, since $\alpha = 0$ (last row)
# is within a few tenths of a point of the winner. The registered `ltu` keeps the paper's MIA signal, at the
# setting the rule picks for it at the default 5 % (lr $10^{-3}$, $\alpha = 0.01$, one-sided), the best a
# membership signal reached on the held-out seeds, and runs in the experiment at that fraction.
#
# **Protocol.** Class-wise forgetting of digit 3, the profile's seeds, each seed's cached original model and
# retrain oracle. For $\rho \in \{1\,\%, 5\,\%, 20\,\%, 100\,\%\}$ of $D_r$ and each seed we draw
# $\hat D_r$ once with `retain_subset` and hand **the same positions** to both methods:
#
# - `ltu_ascent` (its defaults, printed at the top; the rows labelled `ltu`) with `retain_positions` =
#   $\hat D_r$: support the first half, query the second;
# - `neggrad_plus` (its defaults: $\beta = 0.97$, learning rate $10^{-2}$; re-tuned for the subset at the end of
#   this section) with `retain_positions` = $\hat D_r$, so
#   that every retain batch it draws comes from $\hat D_r$. NegGrad+ runs for 5 epochs *over the retain set*,
#   which on a 1 % subset of 12 samples would be 5 steps, far too few to forget anything. We therefore keep its
#   full-data recipe unchanged (the number of steps of 5 epochs over all of $D_r$, and the stopping rule checked once per
#   such epoch) and change only which retain samples it may draw;
# - GA (which uses no retain data) and the oracle as reference lines;
# - two ablations of `ltu_ascent` at the default $\rho$, with the same subsets: without the meta-step
#   ($\alpha = 0$: the query and forgetting losses are evaluated at $\theta$ itself, everything else unchanged)
#   and without Gradient Harmonization; and, with the same subsets, the registered `ltu` with its defaults, the
#   paper's MIA signal (the row `ltu 5% mia`).
#
# Both methods stop by the oracle-free rule of chapter 02 (forget accuracy at or below chance, 10 %); the metrics
# (UA, RA, TA, MIA, Avg. Gap to the oracle) use all of $D_r$. Along the LTU runs with the default
# $\rho$ we also record the cosine of the two meta-gradients before harmonisation, and keep the final models to
# ask the attack what it thinks of the forget set after unlearning.

# %%
FRACTIONS = [0.01, 0.05, 0.2, 1.0]
NGP = {
    k: v.default
    for k, v in inspect.signature(get_method("neggrad_plus")).parameters.items()
    if v.default is not inspect.Parameter.empty
}
given, cos_hist, final_models = {}, {}, {}
label = lambda method, rho: f"{method} {100 * rho:g}%"


def subset_of(t, seed, rho):
    return torch.cat(retain_subset(t, rho, seed)).to(t.retain_idx.device)


def ltu_setup(rho):
    def setup(t, seed):
        given[label("ltu", rho), seed] = pos = subset_of(t, seed, rho)
        kw = {"retain_positions": pos}
        if rho == RHO:  # record the meta-gradient cosines and keep the final model
            cos_hist[seed] = kw["history"] = []
            kw["post_step"] = lambda m, opt: final_models.__setitem__(("ltu", seed), m)
        return kw

    return setup


def ngp_setup(rho):
    def setup(t, seed):
        given[label("neggrad+", rho), seed] = pos = subset_of(t, seed, rho)
        per_epoch = math.ceil(
            len(t.retain_idx) / NGP["batch_size"]
        )  # passes over ALL of D_r
        return {
            "retain_positions": pos,
            "steps": NGP["epochs"] * per_epoch,
            "check_every": per_epoch,
        }

    return setup


def ga_setup(t, seed):
    return {"post_step": lambda m, opt: final_models.__setitem__(("ga", seed), m)}


def ablation_setup(rho, keep=False, **changes):
    def setup(t, seed):
        kw = {"retain_positions": subset_of(t, seed, rho), **changes}
        if keep:  # keep the final model for the attack's verdict
            kw["post_step"] = lambda m, opt: final_models.__setitem__(
                ("ltu mia", seed), m
            )
        return kw

    return setup


variants = {"ga": ("ga", ga_setup)}
for rho in FRACTIONS:
    variants[label("ltu", rho)] = ("ltu_ascent", ltu_setup(rho))
    variants[label("neggrad+", rho)] = ("neggrad_plus", ngp_setup(rho))
# The registered ltu runs with its defaults (printed at the top): the
# membership-inference signal at the best MIA setting at 5 %.
ABLATIONS = {
    f"{label('ltu', RHO)} alpha=0": ("ltu_ascent", RHO, {"alpha": 0.0}),
    f"{label('ltu', RHO)} no GH": ("ltu_ascent", RHO, {"harmonize_grads": False}),
    f"{label('ltu', RHO)} mia": ("ltu", RHO, {}),
}
for name, (method, rho, changes) in ABLATIONS.items():
    variants[name] = (method, ablation_setup(rho, keep=method == "ltu", **changes))
t_start = time.perf_counter()
cmp = compare_methods(
    variants,
    "class",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_class=FORGET_CLASS,
    device=device,
    progress=False,
)
print(
    f"class-wise, {len(variants)} variants x {len(SEEDS)} seeds: "
    f"{time.perf_counter() - t_start:.1f} s"
)
# The two methods were handed identical subsets, and those are the subsets retain_subset
# draws for LTU by default.
for rho in FRACTIONS:
    for seed in SEEDS:
        same = given[label("ltu", rho), seed]
        assert torch.equal(same, given[label("neggrad+", rho), seed])
        assert len(same) == max(
            4,
            round(
                rho
                * len(make_task(data, "class", forget_class=FORGET_CLASS).retain_idx)
            ),
        )
print(format_table(cmp.summary, cmp.reference, keys=("UA", "RA", "TA", "MIA")))
print(format_table(cmp.summary, cmp.reference, keys=("gap", "time_s")))
print("steps per seed:")
for m in cmp.methods:
    print(f"  {m:18s} {cmp.per_seed(m, 'steps').astype(int).tolist()}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
xs_pct = 100 * np.array(FRACTIONS)
for ax, key, title in zip(
    axes,
    ("RA", "UA", "gap"),
    ("retain accuracy RA (%)", "unlearning accuracy UA (%)", "Avg. Gap to the oracle"),
):
    for method, style in (("ltu", "o-"), ("neggrad+", "s-")):
        means = np.array([cmp.mean(label(method, r), key) for r in FRACTIONS])
        cis = np.array([cmp.ci95(label(method, r), key) for r in FRACTIONS])
        ax.errorbar(
            xs_pct,
            means,
            yerr=cis,
            fmt=style,
            capsize=3,
            label=f"{method} (same subset)",
        )
    for (abl, (_, rho, _)), marker in zip(ABLATIONS.items(), ("x", "+", "^")):
        ax.plot(
            100 * rho,
            cmp.mean(abl, key),
            marker,
            ms=9,
            mew=2,
            label=abl.replace("ltu ", "ltu ablation "),
        )
    ax.axhline(cmp.mean("ga", key), color="C3", ls=":", label="GA (no retain data)")
    if key != "gap":
        ax.axhline(cmp.reference[key], color="k", ls="--", lw=1, label="retrain oracle")
    ax.set_xscale("log")
    ax.set_xticks(xs_pct, [f"{x:g}" for x in xs_pct])
    ax.set_xlabel(r"retain subset $|\hat D_r|$ in % of $D_r$")
    ax.set_title(title)
axes[0].legend(fontsize=8)
fig.suptitle(
    f"Class-wise forgetting of digit {FORGET_CLASS}: mean ± 95 % CI over seeds {SEEDS}"
)
fig.tight_layout()
plt.show()

# %% [markdown]
# What the numbers say, each with its assert.

# %%
ps = cmp.per_seed
forgot = lambda m: ps(m, "UA") >= 90  # reached the stopping target on that seed
for key in ("RA", "UA", "gap"):
    print(f"{key} per seed (ltu | neggrad+):")
    for rho in FRACTIONS:
        L, N = label("ltu", rho), label("neggrad+", rho)
        print(f"  {100 * rho:5g}%  {ps(L, key).round(1)} | {ps(N, key).round(1)}")
for name in ABLATIONS:
    print(f"{name:18s}: RA {ps(name, 'RA').round(1)}, UA {ps(name, 'UA').round(1)}, "
          f"gap {ps(name, 'gap').round(2)}")
L5, N5 = label("ltu", RHO), label("neggrad+", RHO)
L1, N1 = label("ltu", 0.01), label("neggrad+", 0.01)
mean, ci = cmp.mean, cmp.ci95
noise = lambda a, b, key: ci(a, key) + ci(b, key)    # the two 95 % half-widths, added
# 1. Every LTU and NegGrad+ run forgets the class (UA >= 90 on every seed), at every
#    subset size.
assert all(forgot(label(m, r)).all() for m in ("ltu", "neggrad+") for r in FRACTIONS)
# 2. The claim holds at the default 5 %: LTU keeps more retain accuracy and is closer
#    to the oracle on every seed.
assert (ps(L5, "RA") > ps(N5, "RA")).all() and (ps(L5, "gap") < ps(N5, "gap")).all()
# 3. At 1 % the two are within the seed noise of each other (NegGrad+ varies widely).
for key in ("RA", "gap"):
    assert abs(mean(L1, key) - mean(N1, key)) < noise(L1, N1, key), key
# 4. With 20 % or all of D_r LTU has no advantage: NegGrad+'s mean RA is not lower, and
#    its mean gap not higher, beyond the seed noise.
for r in (0.2, 1.0):
    L, N = label("ltu", r), label("neggrad+", r)
    assert mean(N, "RA") > mean(L, "RA") - noise(L, N, "RA")
    assert mean(N, "gap") < mean(L, "gap") + noise(L, N, "gap")
# 5. The meta-step is not what helps: alpha = 0 is within the seed noise of LTU in RA
#    and gap.
A0 = f"{L5} alpha=0"
for key in ("RA", "gap"):
    assert abs(mean(A0, key) - mean(L5, key)) < noise(A0, L5, key), key
# 6. Gradient Harmonization is: without it the retain accuracy is lower on every seed.
NG = f"{L5} no GH"
assert (ps(NG, "RA") < ps(L5, "RA")).all()
# The registered ltu (the MIA signal) against ltu_ascent, seed by seed: printed, not
# asserted (whether the MIA signal reaches the target depends on the seed, below).
MIA = f"{L5} mia"
for key in ("UA", "RA", "gap", "steps"):
    d, se = cmp.paired(MIA, L5, key)
    print(f"ltu (mia) − ltu_ascent at 5 %, {key:5s}: {d:+7.2f} ± {se:.2f} (mean ± se)")

# %% [markdown]
# - **The claim holds at small subsets, most clearly at the default 5 %.** Given the same 5 % subset, LTU keeps
#   more retain accuracy than NegGrad+ on every seed and ends closer to the oracle on every seed. At 1 % (12
#   retain samples) the two are within the seed noise of each other: NegGrad+, run with its full-data recipe on a
#   tiny subset, fits those few samples while its ascent term damages the rest of $D_r$, and how much it damages
#   varies widely from seed to seed (printed above).
# - **It does not hold with plenty of retain data.** With 20 % or all of $D_r$, LTU has no advantage: NegGrad+'s
#   mean retain accuracy is not lower, and its mean gap not higher, beyond the seed noise; its tuned $\beta$ and
#   learning rate were chosen with all of $D_r$.
# - **What makes the difference on our data is not the meta-step.** With $\alpha = 0$, the query and forgetting losses
#   are evaluated at $\theta$ itself. Nothing is "learned to learn", and the result is within the seed noise of
#   LTU, as the held-out sweep had already suggested. What does matter is **Gradient Harmonization**: without
#   it, the same losses, subsets and budget keep less retain accuracy on every seed.
#   The expansion {eq}`eq-08-taylor` says why $\alpha$ cannot do much here: its rewards are $\alpha$ times inner
#   products of mini-batch gradients, with $\alpha = 0.03$, while the projection removes the conflicting component
#   exactly at every step. So on digits, "LTU" works as "retain descent on $\hat D_r$ plus ascent on $D_f$, made
#   conflict-free by PCGrad, with a slow learning rate". That is close to the PCGrad method of chapter 05,
#   with equal weights and a retain subset.
# - **The registered `ltu`, with the paper's MIA signal** (at its own best held-out setting at 5 %), is compared
#   with `ltu_ascent` seed by seed above, with its steps and its forget accuracy per seed. Where it reaches the
#   target it gets there in far fewer steps than the ascent variant: its learning rate is three times larger. But
#   whether it reaches the target at all depends on the seed and even on the machine's arithmetic: on held-out
#   seeds it was at the edge of the target at 5 % and missed it at 1 % with every setting, and on some machines
#   it misses it at 5 % on a reported seed too. That is why the walk-through and the comparison with NegGrad+
#   use `ltu_ascent`.
#
# **What the attack says after unlearning, and how often the meta-gradients conflicted.** We refit each seed's
# attack exactly as LTU did at $\theta_0$ (same data, same seed) and ask it for the mean $P(\text{member})$ of
# the forget set and of the unseen second half of the test set: at $\theta_0$, after `ltu_ascent` (`ltu`), after the
# registered `ltu` with the MIA signal (`ltu mia`), after GA, and at the retrain oracle.

# %%
after = {}
for seed in SEEDS:
    t = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m = original_model(data, cfg, seed=seed, device=device)
    A = fit_attack(m, t, seed, RHO)
    half = len(t.y_test) // 2
    models_s = {
        "theta0": m,
        "ltu": final_models["ltu", seed],
        "ltu mia": final_models["ltu mia", seed],
        "ga": final_models["ga", seed],
        "oracle": retrained_model(t, cfg, seed=seed, device=device),
    }
    after[seed] = {
        k: (
            p_member(A, mk, t.x_forget, t.y_forget).mean().item(),
            p_member(A, mk, t.x_test[half:], t.y_test[half:]).mean().item(),
        )
        for k, mk in models_s.items()
    }
    print(f"seed {seed}: mean P(member) on D_f / on unseen test data:\n        "
          + ", ".join(f"{k} {v[0]:.3f} / {v[1]:.3f}" for k, v in after[seed].items()))
conflict_share = {seed: float(np.mean(np.array(cos_hist[seed]) < 0)) for seed in SEEDS}
print(
    "share of LTU steps whose meta-gradients conflicted (cos < 0), per seed:",
    {s: round(v, 2) for s, v in conflict_share.items()},
    "; median cos:",
    {s: round(float(np.median(cos_hist[s])), 3) for s in SEEDS},
)

P_f = {k: np.array([after[s][k][0] for s in SEEDS]) for k in after[SEEDS[0]]}
P_t = {k: np.array([after[s][k][1] for s in SEEDS]) for k in after[SEEDS[0]]}
# 9. After unlearning, by either signal, and at the oracle, the attack calls D_f a
#    non-member: mean P(member) below 0.05 on every seed, far below what it says of
#    unseen test data at the same model.
assert all(
    (P_f[k] < 0.05).all() and (P_f[k] < P_t[k] - 0.1).all()
    for k in ("ltu", "ltu mia", "ga", "oracle")
)
# 10. GA also lowers the attack's P(member) on unseen test data, more than LTU does
#     (collateral damage).
assert (P_t["ga"] < P_t["ltu"]).all()
# 11. The meta-gradients conflict on most LTU steps, so the harmonisation acts on most
#     steps: pooled over the seeds, the share of conflicting steps exceeds 1/2 by more
#     than three binomial standard errors.
n_steps = sum(len(cos_hist[s]) for s in SEEDS)
pooled = sum(int((np.array(cos_hist[s]) < 0).sum()) for s in SEEDS) / n_steps
print(f"pooled share of conflicting steps {pooled:.2f} over {n_steps} steps")
assert pooled > 0.5 + 3 * (0.25 / n_steps) ** 0.5

# %% [markdown]
# After unlearning, the attack calls the forget set a non-member with near certainty, whichever signal LTU used,
# and so it does after GA and at the oracle. In class-wise forgetting every one of these models misclassifies
# digit 3 (the oracle has never seen it), its $\log p_y$ and margin on $D_f$ become very negative, and a
# logistic regression that weighs them positively saturates at $P(\text{member}) \approx 0$. That is the
# self-limiting behaviour of {eq}`eq-08-mia-grad`: once a sample is called a non-member it no longer contributes a
# gradient. It also means the attack is no longer informative about *how well* the forgetting matches the oracle:
# it cannot tell LTU from GA, although GA has damaged the model (its retain accuracy above, and the attack's lower
# $P(\text{member})$ on unseen test data after GA: the model is less confident everywhere). A frozen attack fitted
# at $\theta_0$ is a one-sided audit. It says the forget set no longer looks like training data, not that the
# model looks like the retrained one. The meta-gradients conflicted on most steps (pooled over the runs; the
# share per seed is printed), so the harmonisation was active most of the time. This is consistent with the ablation: projection, not the
# look-ahead, is the working part.
#
# ## Cost of one step
#
# One LTU step computes: the support gradient and the inner step (one forward and backward on the support
# batch), the query loss and the forgetting loss at $\theta'$ (two more forwards and backwards, plus the tiny
# attack), for the exact version a backward through the first backward (two Hessian-vector products), and the
# harmonisation (three inner products over the $P$ parameters). A GA step is one forward and one backward. We time
# the meta-gradients and the harmonisation separately against a GA gradient, on batches of 32, in float32.
# Timings on a shared machine are noisy, so they are printed, not asserted.

# %%
t_ga = median_time(lambda: loss_grad(m0, xf, yf, lambda z, y: -F.cross_entropy(z, y)))
t_fo = median_time(
    lambda: ltu_meta_gradients(m0, xs, ys, xq, yq, xf, yf, ALPHA, ATTACK)
)
t_so = median_time(
    lambda: ltu_meta_gradients(
        m0, xs, ys, xq, yq, xf, yf, ALPHA, ATTACK, second_order=True
    )
)
t_mia = median_time(
    lambda: ltu_meta_gradients(m0, xs, ys, xq, yq, xf, yf, ALPHA, attack0)
)
t_h = median_time(
    lambda: harmonized_update(G_rem, G_fgt, ASCENT_DEFAULTS["project"]), repeats=50
)
print(
    f"per step: GA gradient {1e3 * t_ga:.1f} ms; LTU meta-gradients:\n"
    f"  first order {1e3 * t_fo:.1f} ms ({t_fo / t_ga:.1f}x GA), "
    f"exact {1e3 * t_so:.1f} ms ({t_so / t_ga:.1f}x),\n"
    f"  first order with the MIA signal {1e3 * t_mia:.1f} ms ({t_mia / t_ga:.1f}x); "
    f"harmonisation {1e3 * t_h:.2f} ms"
)
for m in ("ga", L5, f"{L5} mia", N5):
    print(
        f"{m:14s}: {cmp.mean(m, 'steps'):6.1f} steps, "
        f"{cmp.mean(m, 'time_s'):5.2f} s per run (mean over seeds)"
    )

# %% [markdown]
# On this tiny CNN a first-order LTU step costs a few GA gradients: three forward-backward passes instead of one,
# plus the overhead of `torch.func`. The exact version adds the Hessian-vector products, and the harmonisation is
# negligible. The MIA signal adds only the attack's three features and a logistic regression. Per run, the
# default LTU takes a number of steps similar to GA's (its learning rate is small, so it needs many steps to
# reach the target), and its wall time is a few times GA's (GA also checks its stopping rule after every step). The
# library's benchmark measures the marginal time per step the same way for every method:
# `python -m unlearnlib.bench --step-cost --methods ga,ltu`.

# %% [markdown]
# ### At the tuned values, and with a re-tuned baseline
#
# This section's NegGrad+ kept the defaults chapter 02 chose for the whole retain set, while LTU's were chosen for
# the subsets. Chapter 12's protocol tunes every method the same way (the same eight candidates around each
# default, the same budget, an oracle-free rule, two tuning seeds), once with all of $D_r$ and once with every
# method restricted to a 5 % subset drawn at random per seed, and runs both settings on ten seeds with the noise
# floor and Holm-corrected paired tests. A third run gives `ltu_ascent` and `ltu` this chapter's defaults on the
# same ten seeds and subsets, to be paired with the re-tuned NegGrad+.

# %%
LTU_ROWS = ["ga", "neggrad_plus", "ltu_ascent", "ltu"]
print(records.format_tuned(LTU_ROWS, ("bench_class3", "bench_class3_retain5")))
whole = records.verdicts(records.load_bench("bench_class3"), ["ltu_ascent", "ltu"])
subset = records.load_bench("bench_class3_retain5")
at_subset = records.verdicts(subset, ["ltu_ascent", "ltu"])
own = records.load_bench("bench_class3_retain5_defaults")
paired_own = {
    (m, key): records.paired_across(own, m, subset, "neggrad_plus", key)
    for m in ("ltu_ascent", "ltu")
    for key in ("gap", "RA")
}
print("\nat this chapter's defaults, minus NegGrad+ re-tuned for the subset:")
for (m, key), d in paired_own.items():
    print(
        f"  {m:11s}{key:4s}{d['mean']:+6.2f} ± {d['ci95']:.2f} "
        f"(95 % CI, {d['n']} seeds, p = {d['p']:.1g})"
    )
# Whole D_r: the ascent variant closer than GA and undecided against NegGrad+.
assert whole["ltu_ascent"] == {"ga": -1, "neggrad_plus": 0}
# 5 % subset, every method re-tuned for it: both undecided against NegGrad+.
assert at_subset["ltu_ascent"]["neggrad_plus"] == at_subset["ltu"]["neggrad_plus"] == 0
# At this chapter's defaults, ltu_ascent is closer than the re-tuned NegGrad+ and keeps
# more retain accuracy.
d, d_ra = paired_own["ltu_ascent", "gap"], paired_own["ltu_ascent", "RA"]
assert d["mean"] + d["ci95"] < 0 and d_ra["mean"] - d_ra["ci95"] > 0

# %% [markdown]
# - **With the whole retain set**, at the tuned values, `ltu_ascent` is decidedly closer to the oracle than
#   gradient ascent and undecided against NegGrad+; the registered `ltu`, with the paper's membership signal, did
#   not forget on one seed of ten and is decided against neither.
# - **With 5 %, every method re-tuned for the subset**, `ltu_ascent` ends about as close to the oracle as it does
#   at this chapter's defaults, and the re-tuned NegGrad+ comes closer than with chapter 02's defaults; the
#   difference between them (1.5 against 2.7 points of gap) does not survive the correction over all pairs.
# - **At this chapter's defaults**, paired with the re-tuned NegGrad+ on the same subsets, `ltu_ascent` is closer
#   to the oracle and keeps more retain accuracy, each beyond the 95 % interval of the difference. The advantage
#   this section found for LTU survives a baseline re-tuned for the subset (on both kernel families chapter 12
#   compares), but it is one to two points of gap and
#   under one point of retain accuracy, and the ablations above place it in Gradient Harmonization rather than in
#   the meta-step.

# %% [markdown]
# ## Summary
#
# - LTU (Huang, Foo & Liu, arXiv 2407.10494) unlearns with only a small retain subset $\hat D_r$ by
#   meta-learning: an inner step on a support batch {eq}`eq-08-inner`, a remembering loss on a *disjoint* query batch
#   and a forgetting loss at the fast weights, and an outer update {eq}`eq-08-objective`. The phases, the
#   membership-inference feedback and Gradient Harmonization are the paper's; every formula and setting here is
#   our reconstruction.
# - The meta-gradient {eq}`eq-08-metagrad` is one `vjp` through the inner step. The first-order version drops
#   $-\alpha H_{sup}(\cdot)$ {eq}`eq-08-fo-diff`, less than a tenth of the step at our $\alpha$. To first order the objective
#   rewards agreement of retain gradients across disjoint batches and of the forgetting with the retaining gradient
#   {eq}`eq-08-taylor` (chapter 09 analyses the expansion). With query = support the first reward turns into a reward
#   for memorising; we measured the same-batch meta-test to be several times too optimistic.
# - The differentiable attack (logistic regression on $\log p_y$, entropy, margin; fitted on support vs held-out
#   test data, never on $D_f$) gives the loss $\operatorname{softplus}(s)$ {eq}`eq-08-mia-loss`. Its gradient is weighted by
#   $P(\text{member})$ {eq}`eq-08-mia-grad`, so the loss is self-limiting. On digits the attack is barely informative at
#   $\theta_0$, and after unlearning it calls $D_f$ a non-member for every method and for the oracle alike.
# - Gradient Harmonization (PCGrad on the two meta-gradients) leaves a pair with inner product
#   $-c(1-\cos^2\varphi) \ge 0$ {eq}`eq-08-gh-inner`, and the summed update descends on both losses to first order. The
#   one-sided variant protects only the remembering loss.
# - Our from-scratch `torch.func` LTU matches `unlearnlib`'s meta-gradients to $10^{-16}$ in float64, and its
#   trajectory to float32 rounding.
# - With the same subset, LTU kept more retain accuracy than NegGrad+ at 5 % (every seed); at 1 % the two were
#   within the seed noise of each other, and at 20 % and 100 % LTU had no advantage. Against a NegGrad+ re-tuned
#   for a 5 % subset by chapter 12's protocol, `ltu_ascent` at its defaults is still closer to the oracle over ten
#   seeds, by one to two points of gap; at the protocol's own pick for LTU the difference is undecided. The ablations locate LTU's
#   advantage in Gradient Harmonization, not in the meta-step: $\alpha = 0$ did as well. These rows ran
#   `ltu_ascent`, our variant with gradient ascent as the forgetting signal. The registered `ltu` keeps the paper's
#   MIA signal; on held-out seeds it did not forget reliably with a 1 % subset, and at 5 % whether it reaches the
#   target depends on the seed.


# %% [markdown]
# ## Exercises
#
# The exercises practise the two meta-gradients, Gradient Harmonization and the membership signal of this
# chapter, and re-run §8.5 under other conditions; the exercises marked "graded" come with tests.

# %% tags=["exercise-setup"]
# What the graded exercises need: small float64 inputs drawn from one fixed seed, so
# that a correct solution matches the library to about 1e-10 whatever order it sums in.
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vjp

from unlearnlib.grads import flatten, trainable, unflatten
from unlearnlib.methods.meta_learning import harmonized_update, ltu_meta_gradients

ex_gen = torch.Generator().manual_seed(8)
# Nine pairs (G_rem, G_fgt) of six entries, one pair per row: the first five conflict,
# the last four do not, and |G_fgt| spans two orders of magnitude, so that dividing by
# the wrong norm shows.
ex_A = torch.randn(9, 6, generator=ex_gen, dtype=torch.float64)
ex_B = torch.randn(9, 6, generator=ex_gen, dtype=torch.float64)
ex_B *= 10 ** torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None]
ex_want = torch.arange(9) < 5  # the rows that must conflict
ex_B *= torch.where(((ex_A * ex_B).sum(1) < 0) == ex_want, 1.0, -1.0)[:, None]
# A small smooth network (tanh, no buffers) standing in for the CNN, and support, query
# and forget batches whose sizes differ from each other and from the 3 classes.
ex_model = torch.nn.Sequential(
    torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)
).double()
with torch.no_grad():
    for ex_w in ex_model.parameters():
        ex_w.copy_(0.8 * torch.randn(ex_w.shape, generator=ex_gen, dtype=torch.float64))
ex_p = {k: v.detach() for k, v in trainable(ex_model).items()}


def ex_batch(n):
    return (
        torch.randn(n, 5, generator=ex_gen, dtype=torch.float64),
        torch.randint(0, 3, (n,), generator=ex_gen),
    )


ex_xs, ex_ys = ex_batch(6)
ex_xq, ex_yq = ex_batch(4)
ex_xf, ex_yf = ex_batch(5)

# %% [markdown]
# ```{exercise} Harmonising many pairs at once
# :label: ex-08-harmonize-rows
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `harmonize_rows(A, B, project="both")`, Gradient Harmonization of $N$ pairs at once: row $i$ of `A` is
# $G_{rem}$ and row $i$ of `B` is $G_{fgt}$ of one step, and row $i$ of the result is that pair's update
# direction, $G_{rem}^h + G_{fgt}^h$ of {eq}`eq-08-gh` for `project="both"` and $G_{rem} + G_{fgt}^{h,1}$ of
# {eq}`eq-08-gh-one` for `project="forget"`; a pair that does not conflict is summed unchanged. Work on all rows
# at once, without a Python loop over the rows, and keep the dtype of the inputs. The tests compare with the
# library's `harmonized_update`, row by row, on conflicting and non-conflicting pairs.
# ```

# %% tags=["remove-cell", "graded"]
def harmonize_rows(A, B, project="both"):
    """Gradient Harmonization of N pairs at once (section 8.3).

    A, B: tensors of shape [N, P]; row i holds the pair (G_rem, G_fgt) of one step (no
    row is zero). Returns a tensor of shape [N, P], with the dtype of A, whose row i is
    the update direction of pair i: G_rem^h + G_fgt^h (the two-sided projection) for
    project="both", G_rem + G_fgt^{h,1} (only G_fgt projected) for project="forget".
    A pair with <G_rem, G_fgt> >= 0 gives G_rem + G_fgt.
    """
    # BEGIN SOLUTION
    c = (A * B).sum(1, keepdim=True)
    conflict = (c < 0).to(A.dtype)
    B_h = B - conflict * c / (A * A).sum(1, keepdim=True) * A
    if project == "forget":
        return A + B_h
    return A - conflict * c / (B * B).sum(1, keepdim=True) * B + B_h
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# The two-sided projection against the library, row by row (float64: sums of 6 terms
# are exact to a few units of 1e-16, so 1e-10 leaves room for any order of operations).
ex_D = harmonize_rows(ex_A, ex_B)
ex_ref = torch.stack([harmonized_update(a, b, "both") for a, b in zip(ex_A, ex_B)])
assert ex_D.shape == ex_ref.shape
assert torch.allclose(ex_D, ex_ref, rtol=1e-10, atol=1e-10 * ex_ref.abs().max().item())

# %% tags=["remove-cell", "graded-test", "hidden"]
# The one-sided projection against the library, row by row.
ex_D = harmonize_rows(ex_A, ex_B, project="forget")
ex_ref = torch.stack([harmonized_update(a, b, "forget") for a, b in zip(ex_A, ex_B)])
assert ex_D.shape == ex_ref.shape
assert torch.allclose(ex_D, ex_ref, rtol=1e-10, atol=1e-10 * ex_ref.abs().max().item())

# %% tags=["remove-cell", "graded-test", "hidden"]
# Float32 input, three pairs of 40 entries (fewer rows than columns): the dtype is kept,
# and the result agrees with the library to float32 rounding of sums of 40 terms
# (about u sqrt(P) of the largest entry; 10 times that as the tolerance).
ex_g3 = torch.Generator().manual_seed(80)
ex_A3 = torch.randn(3, 40, generator=ex_g3)
ex_B3 = torch.stack([-ex_A3[0] + 0.5 * torch.randn(40, generator=ex_g3),
                     ex_A3[1] + torch.randn(40, generator=ex_g3),
                     -0.05 * ex_A3[2] + 0.03 * torch.randn(40, generator=ex_g3)])
ex_D = harmonize_rows(ex_A3, ex_B3)
ex_ref = torch.stack([harmonized_update(a, b, "both") for a, b in zip(ex_A3, ex_B3)])
assert ex_D.dtype == torch.float32 and ex_D.shape == (3, 40)
ex_tol = 10 * torch.finfo(torch.float32).eps * 40**0.5 * ex_ref.abs().max().item()
assert (ex_D - ex_ref).abs().max().item() < ex_tol

# %% [markdown]
# ```{exercise} What the first-order meta-gradient drops
# :label: ex-08-dropped-term
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0)`, the difference
# {eq}`eq-08-fo-diff` between LTU's exact and first-order meta-gradients with the ascent signal
# ($L_{fgt} = -\mathrm{CE}$ on the forget batch), as one flat tensor in the order of the parameter dict `p`
# (that of `unlearnlib.grads.flatten`). Compute it directly, with one Hessian-vector product, not as the difference
# of two meta-gradients. The tests compare with `ltu_meta_gradients` and with a finite-difference Hessian.
# ```

# %% tags=["remove-cell", "graded"]
def dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0):
    """The part of LTU's exact meta-gradient that first-order MAML drops (section 8.1),
    with the ascent signal L_fgt = -CE on the forget batch.

    model: a module without buffers, evaluated at a parameter dict q as
    torch.func.functional_call(model, q, (x,)); p: dict name -> tensor, the point theta;
    (xs, ys), (xq, yq), (xf, yf): the support, query and forget batches; every loss is a
    mean cross-entropy. Returns the flat tensor (parameters in the order of p, as
    unlearnlib.grads.flatten lays them out) of
        -alpha * H_sup(theta) @ (grad L_rem(theta') + w_f * grad L_fgt(theta')),
    where theta' = theta - alpha * grad L_sup(theta) and H_sup is the Hessian of L_sup.
    """
    # BEGIN SOLUTION
    def ce(x, y, sign=1.0):
        return lambda q: sign * F.cross_entropy(functional_call(model, q, (x,)), y)

    L_sup = ce(xs, ys)
    g = grad(L_sup)(p)
    fast = {k: p[k] - alpha * g[k] for k in p}
    g_rem, g_fgt = grad(ce(xq, yq))(fast), grad(ce(xf, yf, -1.0))(fast)
    v = {k: g_rem[k] + w_f * g_fgt[k] for k in p}
    _, hv = jvp(grad(L_sup), (p,), (v,))  # H_sup(theta) v, forward over reverse
    return -alpha * flatten(hv)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Against the library: exact minus first-order meta-gradients, alpha = 0.3. Both are
# float64 sums of a few hundred terms, exact to ~1e-15 of the meta-gradient; the
# tolerance, 1e-10 of it, is far below what a wrong term changes (about alpha of it).
ex_args = (ex_model, ex_xs, ex_ys, ex_xq, ex_yq, ex_xf, ex_yf, 0.3)
ex_so = ltu_meta_gradients(*ex_args, second_order=True)
ex_fo = ltu_meta_gradients(*ex_args)
ex_ref = (ex_so[0] + ex_so[1]) - (ex_fo[0] + ex_fo[1])
ex_d = dropped_term(ex_model, ex_p, ex_xs, ex_ys, ex_xq, ex_yq, ex_xf, ex_yf, 0.3)
assert ex_d.shape == ex_ref.shape
assert (ex_d - ex_ref).norm() < 1e-10 * (ex_so[0] + ex_so[1]).norm()

# %% tags=["remove-cell", "graded-test", "hidden"]
# The same with a forgetting weight w_f = 0.4 and alpha = 0.5.
ex_args = (ex_model, ex_xs, ex_ys, ex_xq, ex_yq, ex_xf, ex_yf, 0.5, None, 0.4)
ex_so = ltu_meta_gradients(*ex_args, second_order=True)
ex_fo = ltu_meta_gradients(*ex_args)
ex_ref = (ex_so[0] + ex_so[1]) - (ex_fo[0] + ex_fo[1])
ex_d = dropped_term(ex_model, ex_p, ex_xs, ex_ys, ex_xq, ex_yq, ex_xf, ex_yf, 0.5, 0.4)
assert (ex_d - ex_ref).norm() < 1e-10 * (ex_so[0] + ex_so[1]).norm()

# %% tags=["remove-cell", "graded-test", "hidden"]
# Independently of the library, with other batches (the forget batch is the query
# batch's first two samples), alpha = 0.1, w_f = 2: H_sup v by a central difference of
# grad L_sup with step h = 1e-4 along v / |v|, whose error is O(h^2) ~ 1e-8 relative
# (truncation) plus ~u/h ~ 1e-12 (rounding); the tolerance is 1e-6 of |H_sup v|.
ex_ce = lambda x, y, s=1.0: (
    lambda q: s * F.cross_entropy(functional_call(ex_model, q, (x,)), y)
)
ex_xf2, ex_yf2 = ex_xq[:2], ex_yq[:2]
ex_gs = grad(ex_ce(ex_xs, ex_ys))(ex_p)
ex_fast = {k: ex_p[k] - 0.1 * ex_gs[k] for k in ex_p}
ex_v = flatten(grad(ex_ce(ex_xq, ex_yq))(ex_fast)) + 2.0 * flatten(
    grad(ex_ce(ex_xf2, ex_yf2, -1.0))(ex_fast)
)
ex_dir = unflatten(ex_v / ex_v.norm(), ex_p)
ex_at = lambda s: flatten(
    grad(ex_ce(ex_xs, ex_ys))({k: ex_p[k] + s * ex_dir[k] for k in ex_p})
)
ex_hv = (ex_at(1e-4) - ex_at(-1e-4)) / 2e-4 * ex_v.norm()
ex_ref = -0.1 * ex_hv
ex_d = dropped_term(
    ex_model, ex_p, ex_xs, ex_ys, ex_xq, ex_yq, ex_xf2, ex_yf2, 0.1, 2.0
)
assert (ex_d - ex_ref).norm() < 1e-6 * ex_ref.norm()

# %% [markdown]
# ```{exercise} When the one-sided projection fails to forget
# :label: ex-08-one-sided-condition
#
# *derivation · about 1 CPU minute*
#
# Let $G_{rem}$ and $G_{fgt}$ conflict, $\cos\varphi < 0$. Show from {eq}`eq-08-gh-one` that the one-sided update
# $d$ has $\langle d, G_{fgt}\rangle < 0$, so that a step along $-d$ raises the forgetting loss to first order,
# exactly when $\|G_{rem}\|\,|\cos\varphi| > \|G_{fgt}\|\sin^2\varphi$. Check the criterion on the 2,000 random
# pairs of §8.3: it must single out exactly the pairs for which the chapter found $\langle d, G_{fgt}\rangle < 0$.
# ```

# %% [markdown]
# ```{solution-start} ex-08-one-sided-condition
# :class: dropdown
# ```
# Write $a = G_{rem}$, $b = G_{fgt}$, $c = \langle a, b\rangle = \|a\|\|b\|\cos\varphi < 0$. The one-sided update is
# $d = a + b - \frac{c}{\|a\|^2} a$, so
#
# $$
# \langle d, b\rangle = c + \|b\|^2 - \frac{c^2}{\|a\|^2} = c + \|b\|^2\big(1 - \cos^2\varphi\big)
#   = \|b\|\big(\|a\|\cos\varphi + \|b\|\sin^2\varphi\big).
# $$
#
# Since $\|b\| > 0$, the sign is that of $\|a\|\cos\varphi + \|b\|\sin^2\varphi$, which is negative exactly when
# $\|a\|\,|\cos\varphi| > \|b\|\sin^2\varphi$. The one-sided projection fails to forget, to first order, when the
# remembering gradient is large compared with the forgetting one, or when the two are nearly opposite
# ($\sin^2\varphi$ small). Without a conflict ($c \ge 0$) the update is $a + b$ and $\langle d, b\rangle \ge \|b\|^2 > 0$.
# On the random pairs of §8.3 the criterion predicts the sign of every pair:

# %%
pa, pb = pairs[:, 0], pairs[:, 1]
na, nb = pa.norm(dim=1), pb.norm(dim=1)
cos_pairs = raw / (na * nb)
predicted = (raw < 0) & (na * cos_pairs.abs() > nb * (1 - cos_pairs**2))
found = torch.stack([harmonized_update(p[0], p[1], "forget") @ p[1] for p in pairs]) < 0
print(f"predicted {int(predicted.sum())} pairs, found {int(found.sum())}")
assert torch.equal(predicted, found)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Random forgetting with a small retain subset
# :label: ex-08-random-forgetting
#
# *experiment · about 2 CPU minutes*
#
# Rerun the comparison of §8.5 for random forgetting of 10 % of the training set, at $\rho = 5\,\%$ only: `ltu_ascent`
# and NegGrad+ with the same retain subsets (`subset_of` and `ngp_setup` of §8.5), and GA as a reference, over the
# profile's seeds (`compare_methods(..., "random", forget_fraction=0.1)`). The stopping target is now the
# original model's test accuracy (chapter 02). Does LTU still keep more utility than NegGrad+ with the same
# subset? Compare with chapter 02's finding that random forgetting on digits barely separates the methods.
# ```

# %% [markdown]
# ```{solution-start} ex-08-random-forgetting
# :class: dropdown
# ```
# Over seeds 0-2 in the ci profile, no method reaches the target: a model that fits its training set perfectly
# classifies a random 10 % of it at 100 %, above its test accuracy (the oracle's is 98.7 %), and a few hundred
# steps of ascent with these learning rates do not pull it down, so every run uses its whole budget and ends with
# UA = 0-1.5 % (the oracle: 0.7 %). Retain accuracy stays at 99.9-100 % for both methods. LTU ends a little closer
# to the oracle than NegGrad+ on each seed (gap difference LTU − NegGrad+ from −0.26 to −0.11 points), but those
# differences are a tenth of the spread of the gaps themselves over the seeds (0.1-2.3 points), and GA, which
# uses no retain data, is as close (gap 0.5-2.1). As in chapter 02, random forgetting on digits does not separate
# the methods: there is almost nothing to forget beyond what the oracle also gets right.

# %% tags=["skip-execution"]
cmp_random = compare_methods(
    {
        "ltu": ("ltu_ascent", lambda t, s: {"retain_positions": subset_of(t, s, RHO)}),
        "neggrad+": ("neggrad_plus", ngp_setup(RHO)),
        "ga": "ga",
    },
    "random",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_fraction=0.1,
    device=device,
    progress=False,
    floor=False,
)
keys = ("UA", "RA", "TA", "gap")
print(format_table(cmp_random.summary, cmp_random.reference, keys=keys))
for key in ("UA", "RA", "gap"):
    diff = cmp_random.per_seed("ltu", key) - cmp_random.per_seed("neggrad+", key)
    print(f"{key}: ltu − neggrad+ per seed {diff.round(2)}")

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Exact meta-gradients
# :label: ex-08-exact-metagrad
#
# *experiment · about 1 CPU minute*
#
# Run `ltu_ascent` with `second_order=True` on the 5 % subsets of §8.5, beside the default first-order run, over
# the profile's seeds. Do the gap, the retain accuracy or the number of steps change beyond the seed noise?
# Relate the answer to the share of {eq}`eq-08-fo-diff` measured in §8.4, and compare the time per step with the
# timings of §8.6.
# ```

# %% [markdown]
# ```{solution-start} ex-08-exact-metagrad
# :class: dropdown
# ```
# Over seeds 0-2 in the ci profile, the exact meta-gradient changed the gap by −1.7 to +1.6 points (one seed
# better, one worse, one unchanged), the retain accuracy by −0.3 to +0.4 points and the number of steps by 0 to
# 5: no change in a consistent direction, and within the spread of the gaps over the seeds (0.6-3.3). That is
# what §8.4 predicts: the Hessian term is less than a tenth of the meta-gradient and barely turns it, so the two
# runs differ by a small perturbation per step, which the stopping rule and the momentum turn into seed-like
# noise rather than a systematic effect. Each exact step cost 1.2-2.4 times a first-order step in these runs
# (whole runs, including the stopping checks), in line with §8.6.

# %% tags=["skip-execution"]
sub = lambda **kw: (lambda t, s: {"retain_positions": subset_of(t, s, RHO), **kw})
cmp_so = compare_methods(
    {
        "ltu fo": ("ltu_ascent", sub()),
        "ltu so": ("ltu_ascent", sub(second_order=True)),
    },
    "class",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_class=FORGET_CLASS,
    device=device,
    progress=False,
    floor=False,
)
for key in ("UA", "RA", "gap", "steps"):
    diff = cmp_so.per_seed("ltu so", key) - cmp_so.per_seed("ltu fo", key)
    print(f"{key}: exact − first order per seed {diff.round(2)}")
per_step = lambda m: cmp_so.per_seed(m, "time_s") / cmp_so.per_seed(m, "steps")
print(
    "time per step, exact / first order:",
    (per_step("ltu so") / per_step("ltu fo")).round(2),
)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} A stronger attack
# :label: ex-08-stronger-attack
#
# *experiment · about 1 CPU minute*
#
# Add features to the three of `MembershipModel`, for example $\log(-\log p_y)$, which spreads the tiny losses of
# confidently classified samples, and the sorted probability vector, and measure the best held-out AUC you can
# reach on digits at $\theta_0$: fit a logistic regression on half of $D_r$ against half of the test set and
# evaluate it on the other halves, for each of the profile's seeds. How far is it from chance (§8.2 gives its
# standard error), and what does that say about the membership signal on this dataset? Why can
# $\log(-\log p_y)$ alone not beat $\log p_y$ alone?
# ```

# %% [markdown]
# ```{solution-start} ex-08-stronger-attack
# :class: dropdown
# ```
# A single feature's AUC depends only on how it orders the samples, and $\log(-\log p_y)$ is a strictly decreasing
# function of $\log p_y$ (for $p_y < 1$), so alone it has exactly the AUC of $\log p_y$ (with the sign flipped). It
# can help only in combination, where a linear model weighs it differently from $\log p_y$.
#
# Over seeds 0-2 in the ci profile (1,210 members, 404 non-members in each evaluation half, so a chance-level AUC
# has a standard error of 2.3 points), the held-out AUC was 53.9-55.4 with the three features, 54.5-55.3 with
# $\log(-\log p_y)$ added and 52.2-54.7 with the sorted probabilities added as well; the best single feature on all
# of the data reached 54.4-55.6. Every attack sits one to two and a half standard errors above chance, and the
# extra features buy nothing measurable: the trained CNN is almost as confident on unseen digits as on its training
# digits, so its outputs carry a membership signal of a few AUC points, whatever the attack makes of them.

# %% tags=["skip-execution"]
from sklearn.linear_model import LogisticRegression


def attack_features(model, x, y):
    with torch.no_grad():
        z = model.eval()(x)
        base = MembershipModel.features(z, y)  # log p_y, entropy, margin
        loglog = torch.log(-base[:, :1].clamp_max(-1e-30))  # log(-log p_y)
        sorted_p = z.softmax(1).sort(1, descending=True).values
    return torch.cat([base, loglog, sorted_p], 1).double().cpu().numpy()


for seed in SEEDS:
    t = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m = original_model(data, cfg, seed=seed, device=device)
    f_in = attack_features(m, t.x_retain, t.y_retain)
    f_out = attack_features(m, t.x_test, t.y_test)
    rng = np.random.default_rng(seed)
    p_in, p_out = rng.permutation(len(f_in)), rng.permutation(len(f_out))
    h_in, h_out = len(f_in) // 2, len(f_out) // 2
    row = {}
    for name, cols in (("3 features", [0, 1, 2]), ("+log(-log p_y)", [0, 1, 2, 3]),
                       ("+sorted p", list(range(f_in.shape[1])))):
        X_fit = np.r_[f_in[p_in[:h_in]][:, cols], f_out[p_out[:h_out]][:, cols]]
        X_eval = np.r_[f_in[p_in[h_in:]][:, cols], f_out[p_out[h_out:]][:, cols]]
        y_fit = np.r_[np.ones(h_in), np.zeros(h_out)]
        y_eval = np.r_[np.ones(len(f_in) - h_in), np.zeros(len(f_out) - h_out)]
        mu, sd = X_fit.mean(0), X_fit.std(0) + 1e-12
        clf = LogisticRegression(class_weight="balanced", max_iter=2000)
        clf.fit((X_fit - mu) / sd, y_fit)
        scores = clf.decision_function((X_eval - mu) / sd)
        row[name] = 100 * roc_auc_score(y_eval, scores)
    se = se_auc(len(f_in) - h_in, len(f_out) - h_out)
    print(
        f"seed {seed}: held-out AUC "
        + ", ".join(f"{k} {v:.1f}" for k, v in row.items())
        + f" (chance 50 ± {se:.1f})"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects

# %% [markdown]
# ```{exercise} A memorising meta-test
# :label: ex-08-memorising-meta-test
#
# *project · about 20 CPU minutes*
#
# Run `my_ltu` with the query batch drawn from the *support* set and compare the retain accuracy on
# $D_r \setminus \hat D_r$ with the disjoint version at $\rho = 1\,\%$, over several seeds and values of $\alpha$.
# *Hint:* by {eq}`eq-08-taylor`, the remembering reward becomes $-\alpha\|\nabla L_{sup}\|^2$; a larger $\alpha$
# should make the effect larger. Design the comparison so that it isolates the meta-test: what else changes when
# the query batch comes from the support set?
# ```

# %% [markdown]
# ```{solution-start} ex-08-memorising-meta-test
# :class: dropdown
# ```
# A sketch. No code change is needed: `my_ltu` splits the positions it is given into halves, so handing it the
# support half twice, `torch.cat([s, s])`, makes the query set equal to the support set. Three things need care.
# (1) *Equal forgetting.* `my_ltu` runs a fixed number of steps; the two variants forget at different speeds, and
# comparing retain accuracy at unequal forget accuracy compares nothing. Add the stopping rule (check the forget
# accuracy every pass, as `run_unlearning` does) or compare along the whole trajectory, retain accuracy against
# forget accuracy. (2) *Half the data.* The memorising variant sees only the support half of $\hat D_r$ (6 samples
# at 1 %), the disjoint one both halves; run both at $\alpha = 0$ too, where the meta-step is absent and only this
# confound remains, and attribute to the meta-test only the difference beyond it. (3) *Noise.* At 1 % the retain
# accuracy outside the subset varies by several points between seeds; use the per-seed difference and at least
# five seeds, and ask whether it grows with $\alpha$ as the hint predicts.

# %% tags=["skip-execution"]
from unlearnlib.metrics import accuracy


def memorising_vs_disjoint(seed, alpha, rho=0.01):
    t = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    m = original_model(data, cfg, seed=seed, device=device)
    s, q = (i.to(device) for i in retain_subset(t, rho, seed))
    outside = torch.ones(len(t.retain_idx), dtype=torch.bool, device=device)
    outside[torch.cat([s, q])] = False
    log = []  # the library's run with the stopping rule gives the step budget
    get_method("ltu_ascent")(
        m, t, retain_positions=torch.cat([s, q]), alpha=alpha, log=log
    )
    steps = log[-1]["step"]
    out = {}
    variants = (("disjoint", torch.cat([s, q])), ("memorising", torch.cat([s, s])))
    for name, positions in variants:
        mm = my_ltu(m, t, positions, steps, ASCENT_DEFAULTS["lr"], alpha)
        out[name] = (accuracy(mm, t.x_retain[outside], t.y_retain[outside]),
                     100 - accuracy(mm, t.x_forget, t.y_forget))  # (RA outside, UA)
    return out

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} K attacks
# :label: ex-08-k-attacks
#
# *project · about 30 CPU minutes*
#
# The paper's summaries mention $K$ membership models. Fit $K = 5$ attacks on bootstrap resamples of the support
# set (or on disjoint folds of $\hat D_r$), average their losses {eq}`eq-08-mia-loss`, and run LTU with that
# signal. Check each attack's held-out AUC as in §8.2. Does the MIA signal reach the target reliably at
# $\rho = 1\,\%$, where a single attack did not on held-out seeds?
# ```

# %% [markdown]
# ```{solution-start} ex-08-k-attacks
# :class: dropdown
# ```
# A sketch. Fit the attacks with `train_membership_model` on resampled members (the non-members can stay the first
# half of the test set); the averaged loss is $\frac1K\sum_k \operatorname{softplus}(s_k)$, whose gradient weighs each
# forget sample by the *mean* $P(\text{member})$ of the $K$ attacks. Plug it into `my_meta_gradients` in place of
# `my_mia_loss` and run a loop like `my_ltu` with the stopping rule of chapter 02. Reliability is a statement over
# seeds: use held-out seeds (100-104, as the defaults were chosen) and count how often the target is reached at
# 1 %. Expect little: §8.2 found a single attack's held-out AUC within three standard errors of chance on digits,
# and averaging $K$ attacks fitted on resamples of the same 6 members reduces their variance, not their lack of
# signal; the averaged weight on $\log p_y$ then makes the loss a smoothed ascent, as for one attack.

# %% tags=["skip-execution"]
def k_attacks(model, t, seed, rho, K=5):
    support = retain_subset(t, rho, seed)[0].to(t.x_retain.device)
    half = len(t.y_test) // 2
    gen = torch.Generator().manual_seed(seed)
    attacks = []
    for k in range(K):
        n_sup = len(support)
        draw = torch.randint(n_sup, (n_sup,), generator=gen)  # host: CPU generator
        boot = support[draw.to(support.device)]
        attacks.append(
            train_membership_model(
                model,
                t.x_retain[boot],
                t.y_retain[boot],
                t.x_test[:half],
                t.y_test[:half],
                seed=seed + k,
            )
        )
    return attacks


def mean_mia_loss(attacks, logits, y):
    return torch.stack([membership_loss(a, logits, y) for a in attacks]).mean()

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The one-sided projection along a run
# :label: ex-08-one-sided-run
#
# *project · about 20 CPU minutes*
#
# Record $\|G_{rem}\|$, $\|G_{fgt}\|$ and their cosine along an LTU run with `project="forget"`, and count how often
# the criterion of {ref}`ex-08-one-sided-condition` holds, i.e. how often the one-sided step raises the forgetting
# loss to first order. Then run the registered `ltu` (the MIA signal, one-sided) at $\rho = 20\,\%$ over several
# seeds: does the criterion explain how slowly it forgets?
# ```

# %% [markdown]
# ```{solution-start} ex-08-one-sided-run
# :class: dropdown
# ```
# A sketch. The library's `history` records only the cosine; record the norms yourself, either in a copy of
# `my_ltu` (append `G_r.norm()`, `G_f.norm()` and `cosine(G_r, G_f)` before harmonising) or by recomputing the two
# meta-gradients in a `post_step` hook on fresh batches. The share of steps with
# $\|G_{rem}\|\,|\cos\varphi| > \|G_{fgt}\|\sin^2\varphi$ is the share of steps on which, to first order, the
# update works against forgetting. Compare it with the number of steps the run takes to reach the target, seed by
# seed, and with the same share for `project="both"`, which never works against forgetting (§8.3). A larger retain
# subset gives a less noisy, often larger $G_{rem}$, so the criterion should hold more often at 20 % than at 5 %:
# that is the prediction to test.

# %% tags=["skip-execution"]
def one_sided_share(G_rem_list, G_fgt_list):
    hits = []
    for a, b in zip(G_rem_list, G_fgt_list):
        c = cosine(a, b)
        hits.append(bool(c < 0 and a.norm() * c.abs() > b.norm() * (1 - c**2)))
    return float(np.mean(hits))

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. Why does LTU draw its query batches from a half of $\hat D_r$ disjoint from the support half?
#    (a) to halve the cost of a step; (b) with query = support, the first-order remembering reward becomes
#    $-\alpha\|\nabla L_{sup}\|^2$, which rewards parameters from which one step memorises the support batch;
#    (c) Gradient Harmonization needs two different batches.
# 2. The derivative of the MIA loss $\operatorname{softplus}(s)$ in the attack's logit $s$ is
#    (a) 1; (b) $\sigma(s) = P(\text{member})$; (c) $-\log\sigma(s)$. What does that imply for a forget sample the
#    attack already calls a non-member?
# 3. Two meta-gradients conflict with $\langle G_{rem}, G_{fgt}\rangle = -3$ and $\cos\varphi = -0.6$. What is
#    $\langle G_{rem}^h, G_{fgt}^h\rangle$ after the two-sided harmonisation {eq}`eq-08-gh`?
# 4. Which ablation of §8.5 lost retain accuracy on every seed? (a) $\alpha = 0$; (b) no Gradient Harmonization;
#    (c) the MIA signal instead of ascent.
# 5. First-order MAML drops from the exact meta-gradient (a) $\nabla L_{sup}(\theta)$;
#    (b) $-\alpha H_{sup}(\theta)\big(\nabla L_{rem}(\theta') + w_f\nabla L_{fgt}(\theta')\big)$;
#    (c) $w_f \nabla L_{fgt}(\theta')$.
# 6. On digits at $\theta_0$, the attack's AUC on data it did not see was (a) about 90; (b) about 75;
#    (c) within three standard errors of 50.

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b): put $Q = S$ in {eq}`eq-08-taylor`; the meta-test then reports memorisation as remembering
# (§8.1 measured the same-batch drop to be several times the drop on unseen retain data). 2. (b); such a sample
# contributes (almost) no gradient any more: the loss is self-limiting, unlike $-\mathrm{CE}_f$. 3.
# $-c(1 - \cos^2\varphi) = 3 \times 0.64 = 1.92$ {eq}`eq-08-gh-inner`. 4. (b); with $\alpha = 0$ the result was
# within the seed noise of LTU, so the projection, not the meta-step, is the working part on digits. 5. (b),
# {eq}`eq-08-fo-diff`. 6. (c): there is very little membership signal on digits.
