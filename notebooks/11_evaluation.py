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
# # Evaluation that can tell methods apart
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/11_evaluation.ipynb)
#
# Parts I and II ended most comparisons with the same sentence: *within the seed noise*. Three seeds, intervals
# compared by overlap, and a random forget set that the retrained model still classifies almost perfectly cannot
# separate methods whose Avg. Gaps differ by a point. Before Part III can give a verdict, the measurement itself must
# be able to give one. This chapter builds the instruments, runs them, and then turns them on the claims of the
# earlier chapters.
#
# **What you will learn**
#
# - the **noise floor**: how far two retrainings of the same task land from each other, and why no method can be
#   said to match the oracle more closely than that;
# - **paired statistics**: why comparing methods seed by seed is far more sensitive than comparing their
#   intervals, the paired $t$-test, and Holm's correction for the many comparisons a table makes;
# - **forget sets that are hard for a reason**: corrective unlearning of flipped labels and the most memorised
#   examples, and how far the original model and the oracle are apart on them;
# - two **per-example audits** affordable on a laptop: a likelihood-ratio attack over shadow models (U-LiRA) and
#   the forgetting score of the NeurIPS 2023 unlearning competition;
# - the **relearning attack**: how fast a few steps on part of the forget set bring it back;
# - which conclusions of Parts I and II survive ten seeds, the floor and the correction, and which do not.
#
# The ten-seed tables come from benchmark runs committed with the library (`bash benchmarks/run_evaluation.sh`
# writes them; `unlearnlib.records` loads them); the chapter re-runs a sample live and checks that it agrees. Live
# cells use the profile's seeds, so that the chapter executes in a few minutes on a laptop.

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
import math

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

import unlearnlib.config
from unlearnlib import audits, records
from unlearnlib.data import MEMORIZATION_SHADOW_SEED, load_dataset, make_task
from unlearnlib.experiment import (
    compare_methods,
    format_paired,
    format_table,
    holm,
    paired_difference,
)
from unlearnlib.methods import get_method
from unlearnlib.metrics import GAP_METRICS, evaluate
from unlearnlib.relearn import relearn_curve, steps_to_recover
from unlearnlib.shadows import memorization_scores
from unlearnlib.train import TrainConfig, original_model, retrained_model

profile = unlearnlib.config.get_profile()
device = unlearnlib.config.get_device()
cfg = TrainConfig.from_profile(profile)
data = load_dataset(profile.dataset).to(device)
SEEDS = list(range(profile.seeds))
FORGET_CLASS = 3
print(
    f"profile {profile.name}: dataset {profile.dataset}, model {profile.model}, seeds "
    f"{SEEDS}, device {device}"
)
print("committed results:", ", ".join(records.available()))

# %% [markdown]
# ## The noise floor
#
# Retraining is itself random. The retrained model $\theta_{rt}$ depends on the retain set and on the randomness
# $\omega$ of training (the initialisation and the order of the batches): $\theta_{rt} = T(D_r, \omega)$. An *exact*
# unlearning method returns a model with the distribution of $T(D_r, \omega')$ for an independent $\omega'$; the
# best it can do is to be another retraining. For any metric $m$, the distance of a perfect method to the oracle
# of the seed is therefore distributed as
#
# $$
# \Delta_m = \big|\, m\big(T(D_r, \omega')\big) - m\big(T(D_r, \omega)\big) \big| ,
# $$ (eq-11-floor)
#
# and for the Avg. Gap, the mean of $\Delta_m$ over UA, RA, TA and MIA. This is the **noise floor**. We measure it
# directly: every seed trains a second oracle with another training seed (the library's `retrained_model(...,
# replica=1)`) and records its distance to the first. If a metric of one retraining had a normal distribution with
# standard deviation $\sigma$, the floor would average $\mathbb E|X - X'| = 2\sigma/\sqrt\pi \approx 1.13\,\sigma$;
# measuring it avoids the assumption. A method whose distance to the oracle lies within the floor cannot be told
# from retraining with another seed; one that lies farther is measurably different. Below the floor there is nothing
# to win.
#
# `compare_methods` records the floor by default, and every table of the book prints it as its second row. Here is
# class-wise forgetting of digit 3 with two methods of Part I, at the profile's seeds:

# %%
live = compare_methods(
    ["ga", "neggrad_plus"],
    "class",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_class=FORGET_CLASS,
    device=device,
)
print(live.table())

# %% [markdown]
# The floor row is the mean over seeds of {eq}`eq-11-floor` (± its 95 % interval). From scratch, for seed 0: the
# second oracle, evaluated against the first, is what the library recorded.

# %%
task0 = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
first = evaluate(
    retrained_model(task0, cfg, seed=0, device=device, progress=False), task0
)
second = evaluate(
    retrained_model(task0, cfg, seed=0, device=device, progress=False, replica=1),
    task0,
    reference=first,
)
mine = {k: abs(second[k] - first[k]) for k in GAP_METRICS}
mine["gap"] = float(np.mean([mine[k] for k in GAP_METRICS]))
print({k: round(v, 3) for k, v in mine.items()})
print({k: round(live.floor_rows[0][k], 3) for k in mine})
for k, v in mine.items():
    assert v == live.floor_rows[0][k], k  # the same models, the same arithmetic

# %% [markdown]
# The ten-seed run of the benchmark gives the floor of each scenario with some precision. Random forgetting of
# 10 % is where Parts I and II found that nothing separates; the floor shows why.

# %%
bench = {
    name: records.load_bench(f"eval_{name}")
    for name in ("class3", "random10", "mislabeled10", "memorized10")
}
for name, report in bench.items():
    f, ref = report["floor"], report["reference"]
    print(
        f"{name:13s} seeds {report['config']['seeds']}: floor gap "
        f"{f['gap']['mean']:.2f} ± {f['gap']['ci95']:.2f}"
        f" | floor UA {f['UA']['mean']:.2f}, TA {f['TA']['mean']:.2f}, MIA "
        f"{f['MIA']['mean']:.2f}"
        f" | oracle UA {ref['UA']:.1f}"
    )
print()
print(
    format_table(
        bench["random10"]["summary"],
        bench["random10"]["reference"],
        floor=bench["random10"]["floor"],
        keys=("UA", "RA", "TA", "MIA", "gap"),
    )
)
# The floors the summary quotes, to one decimal.
floors = {
    name: round(report["floor"]["gap"]["mean"], 1) for name, report in bench.items()
}
assert floors == {
    "class3": 0.1,
    "random10": 0.8,
    "mislabeled10": 0.2,
    "memorized10": 2.0,
}, floors

# %% [markdown]
# In random forgetting the oracle misclassifies less than one forget sample in a hundred, so UA is nearly 0 for
# every model, forgotten or not, and the MIA of a second oracle differs from the first by about two points. A
# method's gap there is mostly the oracle's own noise. The check that every method is farther from the oracle than the floor
# is a paired test per method (below), `Comparison.beyond_floor`:


# %%
def beyond_floor(report, method, key="gap", level=0.05):
    """One-sided paired t-test: is the method's per-seed distance to the oracle
    larger than the floor's?"""
    floor = np.array([r[key] for r in report["floor_per_seed"]])
    d = records.per_seed(report, method, key) - floor
    return stats.ttest_1samp(d, 0.0, alternative="greater").pvalue < level


for name in ("class3", "random10"):
    report = bench[name]
    methods = [m for m in report["config"]["methods"]]
    within = [m for m in methods if not beyond_floor(report, m)]
    print(
        f"{name}: within the floor (not measurably farther than a second oracle): "
        f"{within or 'none'}"
    )
    if name == "class3":
        assert within == ["finetune", "masked:neggrad_plus"], within

# %% [markdown]
# ## Paired comparisons, and many of them
#
# Every seed of the benchmark draws its own forget set, trains its own original model and its own oracle, and runs
# every method from that original against that oracle. Two methods' results on the same seed share all of that, so
# they are correlated: a seed whose oracle happens to be far from its original makes every method's gap large. For
# the mean of $n$ seeds,
#
# $$
# \operatorname{Var}(\bar a - \bar b) = \frac{\sigma_a^2 + \sigma_b^2 - 2\rho\,\sigma_a\sigma_b}{n} ,
# $$ (eq-11-paired-variance)
#
# and the comparison of two unpaired intervals ignores the $-2\rho\sigma_a\sigma_b$ term. With a positive $\rho$ it
# overstates the noise; pairing removes it. The paired test works on the per-seed differences
# $d_s = a_s - b_s$: under the null hypothesis of no difference, $t = \bar d / (s_d/\sqrt n)$ follows Student's $t$
# with $n - 1$ degrees of freedom if the $d_s$ are roughly normal. Here is how much the pairing buys on the
# committed class-wise run, for two pairs of methods:

# %%
report = bench["class3"]
for a, b in (("pcgrad", "ga"), ("lur", "neggrad_plus")):
    xa, xb = records.per_seed(report, a), records.per_seed(report, b)
    n = len(xa)
    rho = np.corrcoef(xa, xb)[0, 1]
    unpaired = math.sqrt((xa.var(ddof=1) + xb.var(ddof=1)) / n)
    paired_se = (xa - xb).std(ddof=1) / math.sqrt(n)
    print(
        f"{a} − {b}: mean {np.mean(xa - xb):+.2f}, correlation across seeds "
        f"{rho:+.2f}, "
        f"s.e. unpaired {unpaired:.2f}, paired {paired_se:.2f}"
    )
    e = paired_difference(xa - xb)
    assert (
        e["p"] == stats.ttest_rel(xa, xb).pvalue
    )  # the library's test is the paired t-test

# %% [markdown]
# A table compares many methods with several baselines, on several metrics. At level 0.05, twenty true null
# hypotheses give one "significant" difference on average. **Holm's procedure** {cite}`holm1979` controls the
# family-wise error rate (the probability of at least one false rejection) without assumptions on how the tests
# depend on each other. Sort the $m$ p-values, $p_{(1)} \le \dots \le p_{(m)}$, and reject $H_{(1)}, H_{(2)}, \dots$
# as long as
#
# $$
# p_{(i)} \le \frac{\alpha}{m - i + 1} ,
# $$ (eq-11-holm)
#
# stopping at the first $i$ that fails. Why this works: let $m_0$ hypotheses be true. If any of them is rejected,
# consider the first one rejected; at most $m - m_0$ false hypotheses can come before it, so its rank is
# $i \le m - m_0 + 1$ and its p-value is at most $\alpha/(m - i + 1) \le \alpha/m_0$. Hence some true hypothesis
# has $p \le \alpha/m_0$, which by the union bound over the $m_0$ true ones has probability at most
# $m_0 \cdot \alpha/m_0 = \alpha$. The equivalent *adjusted* p-values, $\tilde p_{(i)} = \max_{j \le i}
# \min(1, (m - j + 1)\,p_{(j)})$, are compared with $\alpha$ directly. From scratch, against the library:


# %%
def holm_adjust(p):
    order = np.argsort(p)
    adjusted, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


family = report["paired_family"]
raw = [
    report["paired"][m][b]["gap"]["p"]
    for m in family["methods"]
    for b in family["baselines"]
    if b in report["paired"][m]
]
lib = [
    report["paired"][m][b]["gap"]["p_holm"]
    for m in family["methods"]
    for b in family["baselines"]
    if b in report["paired"][m]
]
assert np.allclose(holm_adjust(np.array(raw)), lib, rtol=1e-12, atol=0)
assert np.allclose(holm(raw), lib, rtol=1e-12, atol=0)
print(
    f"family: {family['pairs_per_metric']} (method, baseline) pairs per metric; "
    f"{family['test']}; "
    f"{family['correction']}"
)

# %% [markdown]
# The paired differences of the Avg. Gap in class-wise forgetting, against GA and NegGrad+ (a negative number: the
# method is closer to the oracle than the baseline; a star: the Holm-adjusted p-value is below 0.05):

# %%
print(format_paired(report["paired"], report["paired_family"]))

# %% [markdown]
# A forest plot shows the same numbers with their intervals (unadjusted 95 % intervals; the stars above are the
# adjusted tests).


# %%
def forest(report, baseline, key="gap", ax=None):
    ax = ax or plt.gca()
    rows = [(m, e[baseline][key]) for m, e in report["paired"].items() if baseline in e]
    for y, (m, e) in enumerate(rows):
        sig = e["p_holm"] is not None and e["p_holm"] < 0.05
        ax.errorbar(
            e["mean"],
            y,
            xerr=e["ci95"],
            fmt="o",
            color="C3" if sig else "C0",
            capsize=3,
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [m for m, _ in rows])
    ax.set_xlabel(f"{key}: method − {baseline} (per seed, mean ± 95 % CI)")
    ax.invert_yaxis()


fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharey=False)
for ax, b in zip(axes, ("ga", "neggrad_plus")):
    forest(bench["class3"], b, ax=ax)
    ax.set_title(f"class 3, {bench['class3']['config']['seeds']} seeds: against {b}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Does the committed run reproduce?
#
# The live comparison at the top of the chapter ran the same methods on the same seeds as the committed class-wise
# run. Whether it should agree row by row depends on where it started. If it started from the committed run's
# trained models (the original model and the oracle of each seed, recognised here by their metrics, the continuous
# MIA AUC included), it repeats the same unlearning run, and it should land no farther from the committed result
# than one retraining lands from another: the largest per-seed floor of the committed run is the tolerance. On
# other kernels (another CPU's oneDNN, oneDNN switched off, a GPU) the trained models themselves differ in their
# last bits, training amplifies that, and each seed becomes a new draw; chapter 12 measures how far such a draw
# moves a row, and what it does to the verdicts.

# %%
originals = compare_methods(
    {"original": None}, "class", data=data, cfg=cfg, seeds=SEEDS,
    forget_class=FORGET_CLASS, device=device, floor=False, progress=False,
).rows
same = records.same_models(bench["class3"], originals, live.references)
check = records.reproduces(bench["class3"], live.rows)
print(f"started from the committed run's models: {same}")
print(
    "largest difference of a live gap from its committed value: "
    f"{check['max_diff']:.3f} "
    f"(tolerance, the largest per-seed floor: {check['bound']:.3f})"
)
# From the same models, every row within the floor; from other models, a new draw.
assert check["ok"] or not same

# %% [markdown]
# ## Forget sets that are hard for a reason
#
# A random tenth of digits is a forget set the oracle still classifies almost perfectly: the samples are typical,
# and what the original model knows about them it would know from the rest of the data. The original and the
# oracle then barely differ on $D_f$, and no method can be told apart from doing nothing. Two forget sets make the
# two models differ for a reason.
#
# **Mislabeled samples (corrective unlearning).** Goel et al. {cite}`goel2024corrective` (arXiv 2402.14015) ask what
# a model owner can do after finding that some training data were wrong. We flip a random fraction $F$ of the
# training labels to another class (uniform over the $C - 1$ others) *before* the original model is trained; the
# forget set is the flipped samples. The oracle, trained on the clean rest, predicts their true classes; the
# original model has fitted some of the wrong labels. Besides UA (against the given, wrong labels) we report
# `true_label_acc`, the accuracy on $D_f$ against the correct labels, which corrective unlearning wants high. The
# stopping target of the methods is chance level, as in class-wise forgetting: labels known to be wrong should be
# predicted no better than guessing.
#
# **The most memorised samples.** Feldman and Zhang {cite}`feldman2020memorize` (arXiv 2008.03703), after Feldman's
# definition, measure the memorisation of a training sample $(x_i, y_i)$ by a training algorithm $\mathcal A$ on
# data $S$ as
#
# $$
# \operatorname{mem}(i) = \Pr_{h \sim \mathcal A(S)}\big[h(x_i) = y_i\big]
#                       - \Pr_{h \sim \mathcal A(S \setminus \{i\})}\big[h(x_i) = y_i\big] :
# $$ (eq-11-mem)
#
# how much better the sample is predicted when it was trained on. Atypical and mislabeled samples, which the rest
# of the data does not explain, have high memorisation; typical ones have none. Zhao et al.
# {cite}`zhao2024makes` (arXiv 2406.01257) show that unlearning methods behave differently on forget sets of highly
# memorised samples than on random ones. Leaving out one sample at a time costs one training per sample; Feldman
# and Zhang's estimator trains $k$ *shadow models* on random halves of $D$ instead, and compares, for every sample,
# the models that saw it with those that did not. Each half and its complement are both used, so every sample is
# "in" for exactly $k/2$ models. We average the probability of the true class instead of the 0/1 correctness:
# with $k = 16$ models the 0/1 estimate moves in steps of $1/8$, the probability resolves finer differences. The
# forget set is the fraction $F$ with the highest scores; it is a property of the data, like a class, so every seed
# of the benchmark forgets the same samples.

# %%
scores = memorization_scores(data, cfg, seed=MEMORIZATION_SHADOW_SEED)
mem_task = make_task(
    data, "memorized", forget_fraction=0.1, seed=0, cfg=cfg
)  # the scores above, from the cache
top = mem_task.forget_idx.cpu()
print(
    f"{profile.shadow_models} shadow models; memorisation: median "
    f"{np.median(scores):.3f}, "
    f"forget set (top 10 %) from {scores[top].min():.3f} to {scores[top].max():.3f}"
)
print(
    "accuracy on D_f of the shadows that never trained on it: "
    f"{mem_task.unseen_forget_acc:.1f} % "
    "(the oracle-free stopping target of this scenario)"
)

fig, (ax, ax2) = plt.subplots(
    1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1.3]}
)
ax.hist(scores, bins=40, color="C0")
ax.axvline(scores[top].min(), color="C3", ls="--", label="forget set: top 10 %")
ax.set_xlabel("memorisation score (true-class probability, in − out)")
ax.set_ylabel("training samples")
ax.legend()
ax2.axis("off")
order = top[np.argsort(-scores[top])][:16]
grid = data.x_train[order.to(data.x_train.device)].cpu()[:, 0]
for j, (img, i) in enumerate(zip(grid, order.tolist())):
    sub = fig.add_axes([0.5 + 0.055 * (j % 8), 0.5 - 0.42 * (j // 8), 0.05, 0.38])
    sub.imshow(img, cmap="gray_r")
    sub.set_title(f"{int(data.y_train[i])}", fontsize=8)
    sub.axis("off")
fig.suptitle(
    "memorisation scores of digits, and the 16 most memorised training images with "
    "their labels"
)
plt.show()

# %% [markdown]
# How far apart are the original model and the oracle on each forget set? The benchmark records the original
# model's metrics against every seed's oracle (`"original"` in its JSON): its distance to the oracle is the room a
# method has to move, and the floor is the part of that room in which nothing can be decided.

# %%
print(
    f"{'scenario':13s} {'UA original':>12s} {'UA oracle':>10s} {'gap original':>13s} "
    f"{'floor':>11s} "
    f"{'room/floor':>10s}"
)
room = {}
for name, report in bench.items():
    o, f = report["original"], report["floor"]
    room[name] = o["gap"]["mean"] / f["gap"]["mean"]
    print(
        f"{name:13s} {o['UA']['mean']:12.1f} {report['reference']['UA']:10.1f} "
        f"{o['gap']['mean']:7.2f}±{o['gap']['ci95']:4.2f} "
        f"{f['gap']['mean']:5.2f}±{f['gap']['ci95']:4.2f} "
        f"{room[name]:10.1f}"
    )

# %% [markdown]
# The original model sits about two floors away from the oracle in random forgetting: doing nothing is almost as
# good as any method there, which is why Parts I and II could separate nothing in that scenario. Both hard forget
# sets give the methods room. On the memorised set the oracle misclassifies about a quarter of $D_f$ and calls
# most of it a non-member, while the original model fits all of it. Flipped labels give less room than one might
# expect: the book's recipe (thirty epochs, with weight decay) does not fit most of the wrong labels in the first
# place (the original model predicts the true class for most of them), so correcting it is a matter of the few it
# did fit. The claims,
# checked on the committed runs: in both hard scenarios the original model is farther from the oracle than the
# floor on every seed, and the oracle's UA exceeds the original's by a margin whose 95 % interval excludes zero.

# %%
for name in ("mislabeled10", "memorized10"):
    report = bench[name]
    ua_orig = np.array([r["UA"] for r in report["original_per_seed"]])
    ua_oracle = np.array([r["UA"] for r in report["reference_per_seed"]])
    margin = paired_difference(ua_oracle - ua_orig)
    gap_orig = np.array([r["gap"] for r in report["original_per_seed"]])
    floor = np.array([r["gap"] for r in report["floor_per_seed"]])
    print(
        f"{name}: oracle UA − original UA = {margin['mean']:.1f} ± "
        f"{margin['ci95']:.1f} (95 % CI, "
        f"{len(ua_orig)} seeds); original gap > floor on "
        f"{int((gap_orig > floor).sum())}/{len(floor)} seeds"
    )
    assert margin["mean"] - margin["ci95"] > 0
    assert (gap_orig > floor).all()
assert {k: round(v) for k, v in room.items() if k != "class3"} == {
    "random10": 2,
    "mislabeled10": 24,
    "memorized10": 11,
}, room

# %% [markdown]
# Live, on the memorised set at the profile's seeds, with the original model as a row of its own:

# %%
live_mem = compare_methods(
    {"original": None, "ga": "ga", "neggrad_plus": "neggrad_plus"},
    "memorized",
    data=data,
    cfg=cfg,
    seeds=SEEDS,
    forget_fraction=0.1,
    device=device,
)
print(live_mem.table(keys=("UA", "RA", "TA", "MIA", "gap")))

# %% [markdown]
# And the ten-seed paired comparisons on the two hard sets:

# %%
for name in ("mislabeled10", "memorized10"):
    report = bench[name]
    print(f"--- {name}: floor gap {report['floor']['gap']['mean']:.2f}")
    print(
        format_table(
            report["summary"],
            report["reference"],
            floor=report["floor"],
            keys=("UA", "RA", "TA", "MIA", "gap", "relearn_acc"),
        )
    )
    print(format_paired(report["paired"], report["paired_family"]))
    print()
mem_gap = {m: s["gap"]["mean"] for m, s in bench["memorized10"]["summary"].items()}
ranked = sorted(mem_gap, key=mem_gap.get)
print("memorised set, from closest to farthest:", ", ".join(ranked))
assert set(ranked[:2]) == {"random_label", "salun"}
assert set(ranked[-4:]) == {
    "masked:ga",
    "masked:neggrad_plus",
    "implicit_surgery",
    "pcgrad",
}
mis = bench["mislabeled10"]
assert [m for m in mis["config"]["methods"] if not beyond_floor(mis, m)] == [
    "finetune",
    "l1_sparse",
]


# %% [markdown]
# ## Per-example audits
#
# MIA-Efficacy and the loss-based attack of chapter 01 ask whether the forget set *as a whole* looks like unseen
# data. Hayes et al. {cite}`hayes2024inexact` (arXiv 2403.01218) show that such population attacks give a false
# sense of privacy: an attack calibrated for *each example* finds unlearned examples that the population attack
# calls forgotten. Both audits below need many trained models per example, which is why papers at CIFAR scale
# rarely run them; on digits they take a minute or two.
#
# ### U-LiRA: a likelihood ratio per example
#
# For a target $x$ in $D_f$, an auditor sees a model and asks which of two worlds produced it: $H_1$, the model was
# trained with $x$ and then $x$ was unlearned; or $H_0$, the model was trained without $x$ (retrained). The
# statistic is the logit-scaled confidence of the label, $\phi(x) = \log\frac{p_y(x)}{1 - p_y(x)}$, which over
# training runs is close to Gaussian {cite}`carlini2022lira`. Shadow models estimate its distribution in each
# world, $\mathcal N(\mu_1(x), \sigma_1^2)$ and $\mathcal N(\mu_0(x), \sigma_0^2)$, and by the Neyman–Pearson
# lemma the most powerful test at every false-positive rate thresholds the likelihood ratio
#
# $$
# \Lambda(x) = \frac{\mathcal N\big(\phi(x);\ \mu_1(x), \sigma_1^2\big)}{\mathcal N\big(\phi(x);\ \mu_0(x), \sigma_0^2\big)} .
# $$ (eq-11-ulira)
#
# Our affordable version: $k$ shadow models are trained on random halves $S_j$ of $D$ (they stand in for the
# original model). For each, the method unlearns $F_j = D_f \cap S_j$ from shadow $j$, giving $U_j$, and a retrained
# shadow $R_j$ is trained on $S_j \setminus D_f$, which contains no target at all. Leaving one shadow out at a
# time, the Gaussians are fitted on the others (with a variance pooled over targets, as LiRA recommends for few
# shadow models), and the held-out $U_j$ (positives) and $R_j$ (negatives) are scored on the targets of $F_j$. The
# AUC over all held-out scores is 50 % for a method that cannot be told from retraining; the true-positive rate at
# 1 % false positives asks whether *some* examples are exposed with confidence. Applied to `retrain` itself (the
# unlearned shadow is then another retraining), the audit gives its own floor. On the memorised forget set, with
# eight shadow models (half the profile's, to keep the chapter fast; the committed runs below use sixteen), for GA:

# %%
u = audits.ulira("ga", mem_task, cfg, k=8, seed=0, device=device)
print(
    f"U-LiRA ga: AUC {u['auc']:.1f} % (s.e. {u['auc_se']:.1f}), TPR at 1 % FPR "
    f"{u['tpr_at_1pct_fpr']:.1f} % "
    f"[{u['models']} shadows, {u['targets']} targets, {u['positives']} positive and "
    f"{u['negatives']} negative "
    "scores]"
)
assert (
    u["auc"] - 4 * u["auc_se"] > 50
)  # GA's unlearned shadows are told apart from retrained ones

# %% [markdown]
# ### The competition's score
#
# The NeurIPS 2023 unlearning competition {cite}`triantafillou2024progress` (arXiv 2406.09073) turned the same
# question into a score. Run the method $n$ times from the same original model (different unlearning seeds) and
# retrain $n$ times; for each forget example, compare the two samples of $n$ statistics. If unlearning were
# $(\varepsilon, \delta)$-indistinguishable from retraining, every test that decides "unlearned" or "retrained"
# from the output would satisfy, with false-positive rate FPR and false-negative rate FNR,
#
# $$
# \mathrm{FPR} + e^{\varepsilon}\,\mathrm{FNR} \ge 1 - \delta , \qquad \mathrm{FNR} + e^{\varepsilon}\,\mathrm{FPR} \ge 1 - \delta
# $$ (eq-11-eps-region)
#
# (the privacy region of Kairouz et al. {cite}`kairouz2015composition`, arXiv 1311.0776). Every threshold attack on
# the $2n$ samples therefore certifies $\varepsilon \ge \max\big(\log\frac{1-\delta-\mathrm{FPR}}{\mathrm{FNR}},
# \log\frac{1-\delta-\mathrm{FNR}}{\mathrm{FPR}}\big)$, and the example's estimate is the largest over the attacks
# (single thresholds and intervals, $\delta = 10^{-5}$ as in the competition). The estimates are binned in steps
# of 0.5, an example in bin $b$ earns $2^{-b}$ points, the forgetting quality $F$ is the mean over examples, and the
# score is $F$ times the utility ratios $\mathrm{RA}_u/\mathrm{RA}_r$ and $\mathrm{TA}_u/\mathrm{TA}_r$.
#
# With $n$ models per side no finite $\varepsilon$ above $\log(n - 1)$ can be shown: the smallest non-zero rate is
# $1/n$. The competition used $n = 512$ (a ceiling of 6.2); the `ci` profile's $n = 8$ stops at 1.95, so the score
# separates "indistinguishable", "somewhat distinguishable" and "perfectly separated", and no finer. Chance alone
# also makes some attack look good on 8 + 8 samples, so even retraining scores below 1:
# `audits.null_forgetting_quality` gives what a perfect method scores at this $n$.

# %% [markdown]
# The estimator for one example, from scratch, with single thresholds only (the library also tries intervals, so
# it can only find a larger $\varepsilon$). Take eight retrained statistics $0, 1, \dots, 7$ and eight unlearned
# ones $3, 4, \dots, 10$. By hand: the threshold 6.5 has FPR $= 1/8$ (the retrained 7 lies above it) and
# FNR $= 4/8$ (the unlearned 3 to 6 lie below it), so the better of its two bounds is
# $\log\frac{1 - \delta - \mathrm{FNR}}{\mathrm{FPR}} = \log(4 - 8\delta) \approx 1.386$; the threshold 3.5 gives
# the same by symmetry, and no threshold does better.


# %%
def epsilon_thresholds(u, r, delta=audits.DELTA):
    """Largest ε certified by one threshold, "positive above t"; the positive side is
    the one with the larger median."""
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    pooled = np.sort(np.concatenate([pos, neg]))
    cuts = np.concatenate(
        [[pooled[0] - 1], (pooled[1:] + pooled[:-1]) / 2, [pooled[-1] + 1]]
    )
    best = 0.0
    for t in cuts:
        fpr, fnr = (neg > t).mean(), (pos <= t).mean()
        if fpr == 0 and fnr == 0:
            return math.inf
        if fpr > 0 and fnr > 0:
            best = max(
                best,
                math.log(1 - delta - fpr) - math.log(fnr),
                math.log(1 - delta - fnr) - math.log(fpr),
            )
    return best


r8, u8 = np.arange(8.0), np.arange(8.0) + 3
mine = epsilon_thresholds(u8, r8)
lib = audits.competition_epsilons(u8[:, None], r8[:, None])[0]
print(
    f"ε from single thresholds {mine:.4f} (log 4 = {math.log(4):.4f}); the library's "
    f"(thresholds and intervals) {lib:.4f}; ceiling at n = 8: "
    f"{audits.epsilon_ceiling(8):.4f}"
)
assert abs(mine - math.log(4 - 8 * audits.DELTA)) < 1e-12
assert mine <= lib + 1e-12 and lib <= audits.epsilon_ceiling(8) + 1e-12
null = audits.null_forgetting_quality(profile.audit_replicas)
print(
    f"n = {profile.audit_replicas}: forgetting quality of a perfect method "
    f"{null['mean']:.3f}"
)

# %% [markdown]
# The committed audit runs repeat this for five methods on five seeds (each seed its own shadow family and
# replicas), in class-wise forgetting, on the memorised set and on flipped labels; the floor row is the audits
# applied to retraining:

# %%
for name in ("class3", "memorized10", "mislabeled10"):
    report = records.load_bench(f"audit_{name}")
    print(
        f"--- {name}, {report['config']['seeds']} seeds, "
        f"{report['config']['shadow_models']} shadows, "
        f"{report['config']['audit_replicas']} replicas"
    )
    print(
        format_table(
            report["summary"],
            report["reference"],
            floor=report["floor"],
            keys=(
                "UA",
                "gap",
                "ulira_auc",
                "ulira_tpr_at_1pct_fpr",
                "competition_score",
            ),
        )
    )


# %% [markdown]
# This is the false sense of privacy that Hayes et al. warn about, measured. In class-wise forgetting fine-tuning
# and NegGrad+ are within a fraction of a point of the oracle on the Avg. Gap, and fine-tuning is within the floor;
# yet the per-example attack tells their unlearned shadows from retrained ones far better than chance (AUC 74 and
# 80 % against the oracle's 51), and at a 1 % false-positive rate it exposes about a third of the targets or
# more. On the memorised set every audited method is detected far above chance (AUC 73 to 92 %). On flipped labels
# fine-tuning, within the floor on the Avg. Gap, is the hardest to detect (AUC 63 %) and comes closest to
# retraining's competition score, yet is still told apart. In all three scenarios every method's competition score
# lies below what retraining scores at this $n$. Checked on the committed runs, with the intervals over
# seeds:

# %%
for name in ("class3", "memorized10", "mislabeled10"):
    report = records.load_bench(f"audit_{name}")
    floor = report["floor"]
    for m, st in report["summary"].items():
        auc, comp = st["ulira_auc"], st["competition_score"]
        assert (
            auc["mean"] - auc["ci95"]
            > floor["ulira_auc"]["mean"] + floor["ulira_auc"]["ci95"]
        ), (name, m)
        assert (
            comp["mean"] + comp["ci95"]
            < floor["competition_score"]["mean"] - floor["competition_score"]["ci95"]
        ), (name, m)


# %% [markdown]
# ## The relearning attack
#
# Population metrics and per-example attacks look at the model's *outputs*. An unlearned model may produce the
# outputs of a model that never saw $D_f$ and still hold $D_f$ in its weights, suppressed rather than removed. The
# relearning attack {cite}`hu2024jogging` (arXiv 2406.13356) tests this directly: fine-tune a copy of the model for
# a few steps on a small part $A$ of the forget set, and measure the accuracy on the rest, $D_f \setminus A$. The
# oracle, which never saw $D_f$, sets the pace that learning from $A$ alone allows; a model that recovers much
# faster kept what it was asked to forget. As a control, the same attack runs on as many samples of $D_r$: Siddiqui
# et al. {cite}`siddiqui2025dormant` (arXiv 2505.22310) found that fine-tuning on retain data alone can bring a
# forget set back. We attack with full-batch SGD at learning rate 0.01 on a fifth of $D_f$ (`relearn_curve`), in
# class-wise forgetting, where the oracle has something to learn:

# %%
task0 = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
m0 = original_model(data, cfg, seed=0, device=device, progress=False)
models = {"oracle": retrained_model(task0, cfg, seed=0, device=device, progress=False)}
for name in ("ga", "neggrad_plus", "pcgrad", "finetune"):
    models[name] = get_method(name)(m0, task0, seed=0)
curves = {name: relearn_curve(m, task0, seed=0) for name, m in models.items()}
controls = {
    name: relearn_curve(m, task0, seed=0, control=True) for name, m in models.items()
}

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for j, name in enumerate(models):
    # The oracle dashed and on top: other curves that stay at 0 would hide it.
    style = dict(color=f"C{j}")
    if name == "oracle":
        style = dict(color="k", ls="--", lw=2, zorder=3)
    axes[0].plot(curves[name], marker="o", ms=3, label=name, **style)
    axes[1].plot(controls[name], marker="o", ms=3, label=name, **style)
axes[0].set_title("attack: SGD on a fifth of $D_f$")
axes[1].set_title("control: SGD on as many samples of $D_r$")
for ax in axes:
    ax.set_xlabel("attack steps")
axes[0].set_ylabel("accuracy on the held-out 4/5 of $D_f$ (%)")
axes[0].legend()
fig.tight_layout()
plt.show()
for name in models:
    print(
        f"{name:13s} start {curves[name][0]:5.1f} %  after 2 steps "
        f"{curves[name][2]:5.1f} %  after 10 "
        f"{curves[name][-1]:5.1f} % (control {controls[name][-1]:5.1f} %); steps to 50 "
        "%: "
        f"{steps_to_recover(curves[name], 50)}"
    )

# %% [markdown]
# The oracle learns nothing of digit 3 from these ten small steps. GA, NegGrad+ and PCGrad, which start near
# chance (well below half, whichever machine trained the models), are back above 90 % within a few: the class was hidden, not removed. (Chapter 02 found that after GA the
# features below the head still encode the digits; a handful of gradient steps reconnects them.) Even the
# control, which shows no 3 at all, brings part of it back for GA. Fine-tuning, which never pushes on the forget
# set at all, resists on this seed. The margins are whole-class sized.

# %%
# The same attack on the committed ten seeds (accuracy on the held-out part of D_f
# after ten steps):
report = bench["class3"]
resist = {
    m: int((records.per_seed(report, m, "relearn_acc") < 50).sum())
    for m in report["config"]["methods"]
}
oracle_relearn = max(r["relearn_acc"] for r in report["reference_per_seed"])
print(
    f"oracle: at most {oracle_relearn:.1f} %; seeds on which a method stays below 50 "
    "%:",
    {m: k for m, k in resist.items() if k},
)
assert oracle_relearn < 5
assert {m: k for m, k in resist.items() if k} == {
    "finetune": 3,
    "masked:neggrad_plus": 5,
}
assert all(
    report["summary"][m]["relearn_acc"]["mean"] > 90 for m in resist if not resist[m]
)
assert (
    steps_to_recover(curves["oracle"], 50) is None
)  # the oracle does not learn the class in 10 steps
for name in ("ga", "neggrad_plus", "pcgrad"):
    # Below the attack's own recovery level at the start (each run stopped at, or its
    # budget near, chance on D_f), and back above 90 % within ten steps.
    assert steps_to_recover(curves[name], 50) != 0
    assert steps_to_recover(curves[name], 90) is not None

# %% [markdown]
# ## What survives: the claims of Parts I and II, re-tested
#
# Each chapter of Parts I and II stated its comparisons with three seeds and the care they allowed. Here they are
# again, on the committed ten-seed runs with the registry's defaults, as one family of paired tests on the Avg. Gap
# (method − other, per seed), Holm-corrected over the family. A claim of a win holds when the difference has the
# claimed sign and its adjusted p-value is below 0.05; a claim of a tie ("within the seed noise") is contradicted
# when the adjusted test finds a difference. Two settings differ from the chapters': chapter 10 compared the masked
# methods at matched forgetting (a tuned learning rate, the same stopping target), and chapters 07 and 08 gave
# OrthoGrad and LTU a small retain subset; the defaults of the registry, which the benchmark runs, use the whole
# retain set.

# %%
# (chapter, scenario, method, other, claim): "lower" = the method is closer to the
# oracle than the other, "tie" = no difference.
CLAIMS = [
    ("02", "class3", "neggrad_plus", "ga", "lower"),
    ("02", "class3", "finetune", "ga", "lower"),
    ("03", "class3", "scrub", "ga", "lower"),
    ("03", "class3", "scrub", "random_label", "lower"),
    ("03", "class3", "scrub", "neggrad_plus", "tie"),
    ("03", "class3", "salun", "random_label", "tie"),
    ("05", "class3", "pcgrad", "ga", "lower"),
    ("05", "class3", "neggrad_plus", "unilateral_surgery", "lower"),
    ("05", "class3", "pcgrad", "neggrad_plus", "tie"),
    ("06", "class3", "implicit_surgery", "ga", "lower"),
    ("06", "class3", "implicit_surgery", "unilateral_surgery", "tie"),
    ("09", "class3", "lur", "ga", "lower"),
    ("09", "class3", "lur", "neggrad_plus", "tie"),
    ("10", "class3", "masked:ga", "ga", "lower"),
    ("10", "class3", "masked:neggrad_plus", "neggrad_plus", "tie"),
    ("02-10", "random10", "neggrad_plus", "ga", "tie"),
    ("02-10", "random10", "pcgrad", "ga", "tie"),
    ("02-10", "random10", "lur", "ga", "tie"),
]
diffs = [
    records.per_seed(bench[s], m) - records.per_seed(bench[s], o)
    for _, s, m, o, _ in CLAIMS
]
tests = [paired_difference(d) for d in diffs]
adjusted = holm([t["p"] for t in tests])
verdicts = []
print(
    f"{'ch':5s} {'scenario':9s} {'method − other':38s} {'claim':5s} {'Δgap':>13s} "
    f"{'wins':>5s} {'p_holm':>7s}  verdict"
)
for (ch, s, m, o, claim), d, t, p in zip(CLAIMS, diffs, tests, adjusted):
    significant = p < 0.05
    if claim == "lower":
        verdict = (
            "holds"
            if significant and t["mean"] < 0
            else ("reversed" if significant else "not shown")
        )
    else:
        verdict = "holds (no difference found)" if not significant else "contradicted"
    verdicts.append(verdict)
    print(
        f"{ch:5s} {s:9s} {m + ' − ' + o:38s} {claim:5s} "
        f"{t['mean']:+6.2f}±{t['ci95']:5.2f} "
        f"{int((d < 0).sum()):2d}/{len(d)} {p:7.3f}  {verdict}"
    )

# %% [markdown]
# The verdicts that differ from the chapters' three-seed statements are worth reading closely. Ten paired seeds
# are far more sensitive than three unpaired intervals, so some "within the noise" ties of the chapters resolve
# into small but real differences, in either direction; the chapters whose text this changes (03 and 09) now
# report the ten-seed result beside their own. The claims about wins over GA all hold in class-wise forgetting:
# GA, with its stopping rule, is the weakest method there, and nearly everything beats it. None of the claimed ties
# among the strong methods in class-wise forgetting turned into a win for a conflict-aware method over NegGrad+.

# %%
verdict = dict(zip([(m, o) for _, _, m, o, _ in CLAIMS], zip(tests, adjusted)))
# Chapter 03's tie, resolved by ten seeds: SalUn closer to the oracle than random
# labels.
t, p = verdict[("salun", "random_label")]
assert p < 0.05 and t["mean"] < 0
# Chapter 09's tie, resolved the other way: NegGrad+ closer to the oracle than LUR.
t, p = verdict[("lur", "neggrad_plus")]
assert p < 0.05 and t["mean"] > 0
# Eleven of the fourteen other methods beat GA after the correction: not random
# labels, SalUn or LTU.
paired_ga = {
    m: e["ga"]["gap"] for m, e in bench["class3"]["paired"].items() if "ga" in e
}
paired_ga["neggrad_plus"] = bench["class3"]["paired"]["ga"]["neggrad_plus"][
    "gap"
]  # stored as ga − neggrad_plus
not_better = sorted(
    m
    for m, e in paired_ga.items()
    if not (
        e["p_holm"] < 0.05 and (e["mean"] > 0 if m == "neggrad_plus" else e["mean"] < 0)
    )
)
assert len(paired_ga) == 14 and not_better == ["ltu", "random_label", "salun"], (
    not_better
)
# Every claimed win over GA in class-wise forgetting holds after the correction.
assert all(
    v == "holds"
    for (ch, s, m, o, c), v in zip(CLAIMS, verdicts)
    if o == "ga" and s == "class3"
)
# No conflict-aware method is closer to the oracle than NegGrad+ beyond the
# correction, in either scenario.
for name in ("class3", "random10"):
    for m, by_base in bench[name]["paired"].items():
        e = by_base.get("neggrad_plus", {}).get("gap")
        if e is not None and m not in ("finetune",):
            assert not (e["p_holm"] < 0.05 and e["mean"] < 0), (name, m)

# %% [markdown]
# ## Summary
#
# - **The noise floor** {eq}`eq-11-floor` is the distance between two retrainings of the same task. Measured over ten
#   seeds it is 0.1 points of Avg. Gap in class-wise forgetting, 0.8 in random forgetting of 10 %, 0.2 on flipped
#   labels and 2.0 on the most memorised tenth of digits. No method can be said to match the oracle more closely;
#   in class-wise forgetting only fine-tuning and masked NegGrad+ are not measurably farther than a second oracle.
# - **Random forgetting on digits is nearly a non-problem**: the original model, untouched, is about two floors from
#   the oracle, and every method lands between one and three. The two hard forget sets give the methods room: the
#   original model is 24 floors from the oracle on flipped labels and 11 on the memorised set, where the oracle
#   misclassifies a quarter of $D_f$ that the original model fits entirely.
# - **Paired tests over ten seeds** {eq}`eq-11-paired-variance`, with **Holm's correction** {eq}`eq-11-holm` over the
#   family of each table, turn several "within the noise" statements into decisions. In class-wise forgetting
#   eleven of the fourteen other methods beat GA after the correction (not random labels and SalUn, which have no
#   retain term, and not LTU); no conflict-aware method beats NegGrad+, and two of the chapters' ties resolve:
#   SalUn is slightly closer to the oracle than random labels (chapter 03) and NegGrad+ closer than LUR
#   (chapter 09).
# - **The hard sets reorder the methods.** On the memorised set the methods that protect the retain set hardest
#   (masked updates, implicit surgery, PCGrad) barely forget and end farthest from the oracle; random labels and
#   SalUn, which push the forget set hardest, come closest. On flipped labels, fine-tuning on the clean retain set
#   (and $\ell_1$-sparse, a fine-tuning) are within the floor, and no other method is.
# - **Per-example audits** see what population metrics average away. U-LiRA tells every audited method's unlearned
#   shadow models from retrained ones, even where the Avg. Gap is within a fraction of a point of the oracle
#   (fine-tuning and NegGrad+ in class-wise forgetting: AUC 74 and 80 % against the oracle's 51), and every
#   method's competition score lies below retraining's. With eight replicas the competition's $\varepsilon$ cannot
#   exceed $\log 7 \approx 1.95$, and a perfect method scores about 0.18, not 1.
# - **The relearning attack** shows that class-wise unlearning hides rather than removes: GA, NegGrad+, PCGrad and
#   every other method except two recover digit 3 above 90 % within ten steps on a fifth of the class, which the
#   oracle does not learn at all; fine-tuning and masked NegGrad+ resist on some seeds (three and five of ten).

# %% [markdown]
# ## Exercises
#
# The exercises practise the chapter's instruments (the floor, paired tests, Holm's correction, the per-example
# statistic of the audits) on the committed results and on small live runs. The two graded exercises come with
# tests.

# %% tags=["exercise-setup"]
import numpy as np
import torch

from unlearnlib import audits as ex_audits
from unlearnlib.experiment import holm as ex_holm

# Logits of 6 examples over 4 classes (batch size != number of classes), with labels
# that are not always the predicted class.
ex_gen = torch.Generator().manual_seed(11)
ex_logits = 3 * torch.randn(6, 4, generator=ex_gen)
ex_y = torch.tensor([0, 1, 2, 3, 1, 0])

# %% [markdown]
# ```{exercise} Holm's decisions
# :label: ex-11-holm-reject
#
# *code · graded, 3 points · about 1 CPU minute*
#
# The chapter computes Holm's *adjusted* p-values. Write `holm_reject(p, alpha)` that returns the decisions of
# Holm's procedure {eq}`eq-11-holm` directly: which hypotheses of the family are rejected at family-wise level
# $\alpha$, in the order the p-values were given. Sort, compare the $i$-th smallest p-value with
# $\alpha/(m - i + 1)$, and stop at the first that fails.
# ```


# %% tags=["remove-cell", "graded"]
def holm_reject(p, alpha=0.05):
    """Holm's step-down decisions for a family of p-values.

    p: a sequence of m p-values; alpha: the family-wise error rate. Returns a numpy
    array of m booleans, True where the hypothesis is rejected, in the order of p.
    """
    # BEGIN SOLUTION
    p = np.asarray(p, dtype=float)
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] > alpha / (m - rank):  # rank counts from 0: alpha / (m - i + 1)
            break
        reject[i] = True
    return reject
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Sorted: 0.005 <= 0.05/4 and 0.01 <= 0.05/3 are rejected; 0.03 > 0.05/2 stops the
# procedure, so 0.04 is kept although 0.04 <= 0.05/1.
ex_r = holm_reject([0.01, 0.04, 0.03, 0.005], 0.05)
assert np.asarray(ex_r).tolist() == [True, False, False, True], ex_r

# %% tags=["remove-cell", "graded-test", "hidden"]
# Holm rejects all three (0.012 <= 0.05/3, 0.02 <= 0.05/2, 0.04 <= 0.05); Bonferroni
# (0.05/3 for each) would keep the last two.
ex_r = holm_reject(np.array([0.012, 0.02, 0.04]), 0.05)
assert np.asarray(ex_r).tolist() == [True, True, True], ex_r

# %% tags=["remove-cell", "graded-test", "hidden"]
# An unsorted family of eight at alpha = 0.1, against the library's adjusted p-values
# (no p-value lies within rounding of its threshold: the closest adjusted value is
# 0.095). The fifth smallest, 0.026 > 0.1/4, stops the procedure before 0.03 <= 0.1/3.
ex_p = [0.30, 0.004, 0.019, 0.011, 0.0005, 0.026, 0.6, 0.03]
ex_r = holm_reject(ex_p, 0.1)
assert np.asarray(ex_r).tolist() == [a <= 0.1 for a in ex_holm(ex_p)], ex_r
assert int(np.sum(ex_r)) == 4

# %% [markdown]
# ```{exercise} The statistic of the audits
# :label: ex-11-logit-confidence
#
# *code · graded, 3 points · about 1 CPU minute*
#
# U-LiRA's statistic is the logit-scaled confidence of the label, $\phi(x) = \log\frac{p_y(x)}{1 - p_y(x)}$.
# Write `logit_confidence(logits, y)` that computes it for a batch from the logits, finite however confident the
# model is. *Hint:* write $\log p_y$ and $\log(1 - p_y)$ with `torch.logsumexp`; computing $p_y$ first fails in
# floating point once $p_y$ rounds to 1.
# ```


# %% tags=["remove-cell", "graded"]
def logit_confidence(logits, y):
    """phi = log(p_y / (1 - p_y)) of every row, p the softmax of the row's logits.

    logits: [B, C] float tensor; y: [B] integer labels. Returns a float64 tensor [B],
    finite for any finite logits.
    """
    # BEGIN SOLUTION
    z = logits.double()
    z_y = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    # log p_y - log(1 - p_y) = (z_y - lse(z)) - (lse(others) - lse(z))
    return z_y - torch.logsumexp(others, dim=1)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Three rows of four classes; the second is uniform: p_y = 1/4, phi = log(1/3).
ex_l = torch.tensor(
    [[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 3.0, 0.0, 0.0]]
)
ex_yy = torch.tensor([0, 2, 1])
ex_p = torch.softmax(ex_l.double(), dim=1)[torch.arange(3), ex_yy]
ex_phi = logit_confidence(ex_l, ex_yy)
assert ex_phi.shape == (3,) and ex_phi.dtype == torch.float64
# float32 logits of size <= 3: a float32 computation is good to ~1e-6
assert torch.allclose(ex_phi, torch.log(ex_p / (1 - ex_p)), rtol=0, atol=1e-5)
assert abs(ex_phi[1].item() - np.log(1 / 3)) < 1e-5

# %% tags=["remove-cell", "graded-test", "hidden"]
# Six rows, four classes, labels not always the argmax: against the library.
ex_ref = ex_audits.logit_confidence(ex_logits, ex_y)
ex_phi = logit_confidence(ex_logits, ex_y)
assert torch.allclose(ex_phi.double(), ex_ref, rtol=1e-5, atol=1e-5)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Confident rows: p_y rounds to 1 (first row, phi = 40 - log(1 + e^-3 + e)) or the label
# is far below the prediction (second row, phi = -30 - log(2 e^-30 + 1) ~ -30). float32
# logits of size 40 carry an absolute error of ~4e-6.
ex_l = torch.tensor([[40.0, 0.0, -3.0, 1.0], [0.0, 30.0, 0.0, 0.0]])
ex_phi = logit_confidence(ex_l, torch.tensor([0, 0]))
ex_want = torch.tensor(
    [40 - np.log(1 + np.exp(-3) + np.exp(1)), -30 - np.log(2 * np.exp(-30) + 1)],
    dtype=torch.float64,
)
assert torch.isfinite(ex_phi).all()
assert torch.allclose(ex_phi.double(), ex_want, rtol=0, atol=1e-4)

# %% [markdown]
# ```{exercise} The floor from one number
# :label: ex-11-floor-binomial
#
# *derivation · about 1 CPU minute*
#
# If one retraining's UA on a random forget set of $n_f$ samples were a binomial proportion with error rate $q$,
# independently for each retraining, what would {eq}`eq-11-floor` predict for the floor of UA? Compare with the
# committed random-forgetting floor (`records.load_bench("eval_random10")`), using the oracle's UA as $q$. Which
# assumption is doubtful?
# ```

# %% [markdown]
# ```{solution-start} ex-11-floor-binomial
# :class: dropdown
# ```
# With $K, K'$ the numbers of errors of two retrainings, independent $\mathrm{Bin}(n_f, q)$, the floor of UA is
# $\frac{100}{n_f}\mathbb E|K - K'|$. In the normal approximation $K - K' \sim \mathcal N(0, 2n_fq(1-q))$, so the
# floor is $2\sigma/\sqrt\pi$ with $\sigma = 100\sqrt{q(1-q)/n_f}$, the formula of the chapter. Random forgetting
# of 10 % of the 1,347 training digits gives $n_f = 135$, and the oracle's UA gives $q = 0.89\,\%$: $\sigma = 0.81$
# and a predicted floor of 0.91 points (0.86 with the exact binomial sum). The committed floor is
# $0.74 \pm 0.66$ over ten seeds, compatible with either. Two assumptions are doubtful. With $n_f q \approx 1.2$
# expected errors the normal approximation is poor: UA moves in steps of $100/135 = 0.74$ points, and the
# per-seed floors are 0, 0.74, 1.48 or 2.96. And two retrainings on the same data are not independent coin flips:
# both tend to miss the same few atypical digits, which correlates $K$ and $K'$ and makes the true floor smaller
# than the binomial one; ten seeds cannot tell the two apart.

# %%
r10 = bench["random10"]
n_f = round(0.1 * len(data.y_train))
q = r10["reference"]["UA"] / 100
sigma = 100 * math.sqrt(q * (1 - q) / n_f)
k = np.arange(n_f + 1)
pk = stats.binom.pmf(k, n_f, q)
exact = 100 / n_f * np.sum(pk[:, None] * pk[None, :] * np.abs(k[:, None] - k[None, :]))
print(
    f"n_f {n_f}, q {100 * q:.2f} %: normal {2 * sigma / math.sqrt(math.pi):.2f}, "
    f"binomial {exact:.2f}; committed floor of UA {r10['floor']['UA']['mean']:.2f} "
    f"± {r10['floor']['UA']['ci95']:.2f}; per seed "
    f"{[round(f['UA'], 2) for f in r10['floor_per_seed']]}"
)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Unpaired versus paired
# :label: ex-11-unpaired-paired
#
# *experiment · about 1 CPU minute*
#
# For every method of the committed class-wise run, compute the p-value of its difference in Avg. Gap with
# NegGrad+ by Welch's unpaired test (`scipy.stats.ttest_ind(..., equal_var=False)`) and by the paired test. How
# many differences does each find after Holm's correction over the fourteen methods? Relate the answer to
# {eq}`eq-11-paired-variance` and to the correlations across seeds.
# ```

# %% [markdown]
# ```{solution-start} ex-11-unpaired-paired
# :class: dropdown
# ```
# On the committed ten seeds both find the same six differences (GA, random labels, SalUn, unilateral and
# implicit surgery, LUR). Pairing removes the term $-2\rho\sigma_a\sigma_b$ of {eq}`eq-11-paired-variance`, and
# against NegGrad+ the correlations across seeds are weak, from −0.19 to +0.45: NegGrad+'s gap varies little
# from seed to seed, so a seed that is hard for another method is not hard for NegGrad+, and pairing buys little.
# The p-values move in both directions (LUR's adjusted p-value is 0.004 unpaired and 0.021 paired). The two
# pairs printed in the chapter are no different (correlations +0.00 and −0.13, equal standard errors): on this
# run the seeds' shared randomness barely moves the methods together. Pairing pays only when $\rho$ is large,
# when both methods respond to the same seed-to-seed variation.

# %%
rep3 = bench["class3"]
others = [m for m in rep3["config"]["methods"] if m != "neggrad_plus"]
np_gap = records.per_seed(rep3, "neggrad_plus")
welch = [
    stats.ttest_ind(records.per_seed(rep3, m), np_gap, equal_var=False).pvalue
    for m in others
]
paired = [stats.ttest_rel(records.per_seed(rep3, m), np_gap).pvalue for m in others]
rhos = [np.corrcoef(records.per_seed(rep3, m), np_gap)[0, 1] for m in others]
for name, ps in (("Welch", welch), ("paired", paired)):
    found = [m for m, p in zip(others, holm(ps)) if p < 0.05]
    print(f"{name}: {len(found)} of {len(others)} after Holm: {found}")
print(f"correlations with NegGrad+ across seeds: {min(rhos):+.2f} to {max(rhos):+.2f}")

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} How many seeds?
# :label: ex-11-how-many-seeds
#
# *experiment · about 1 CPU minute*
#
# Subsample the committed ten seeds to 3, 5 and 8 (200 random subsets each) and recompute the verdicts of the
# claims table of section *What survives*, with Holm's correction over the eighteen claims as there. How often
# does each verdict come out as with ten seeds? Repeat with three seeds of the subsampling, and say which claims
# need all ten seeds.
# ```

# %% [markdown]
# ```{solution-start} ex-11-how-many-seeds
# :class: dropdown
# ```
# Over subsampling seeds 0–2 (the ranges below), with **3 seeds** the wins over GA are almost never shown (in
# 0–7 % of the subsets; $t_2$'s critical values and the correction over eighteen tests leave no power) and only
# the claimed ties agree, trivially. With **5 seeds** the wins are still shown in at most 59 % of the subsets
# (NegGrad+ over unilateral surgery, 52–59 %; SCRUB over random labels, 28–30 %; the others under 3 %). With
# **8 seeds** most wins return (NegGrad+ over GA 89–91 %, PCGrad over GA 84–85 %, masked GA over GA 80–82 %,
# fine-tuning and SCRUB over random labels 100 %), but implicit surgery and LUR over GA are shown in only
# 41–48 %, and the two ties that ten seeds resolve (SalUn closer than random labels, NegGrad+ closer than LUR)
# are found in 38–47 % and 20–24 %. Those four need all ten seeds; the claimed ties in random forgetting agree in
# 92 % or more of the subsets at every size.

# %% tags=["skip-execution"]
claim_diffs = np.array(
    [
        records.per_seed(bench[s], m) - records.per_seed(bench[s], o)
        for _, s, m, o, _ in CLAIMS
    ]
)


def verdicts_of(d):
    found = [paired_difference(row) for row in d]
    adj = holm([t["p"] for t in found])
    out = []
    for claim, t, p in zip(CLAIMS, found, adj):
        if claim[4] == "lower":
            out.append(
                "holds"
                if p < 0.05 and t["mean"] < 0
                else "reversed"
                if p < 0.05
                else "not shown"
            )
        else:
            out.append("contradicted" if p < 0.05 else "holds")
    return out


ten = verdicts_of(claim_diffs)
agree = {}
for sub_seed in (0, 1, 2):
    rng = np.random.default_rng(sub_seed)
    for n in (3, 5, 8):
        subsets = [rng.choice(10, n, replace=False) for _ in range(200)]
        same = [
            [a == b for a, b in zip(verdicts_of(claim_diffs[:, s]), ten)]
            for s in subsets
        ]
        agree.setdefault(n, []).append(np.mean(same, 0))
for n, rows in agree.items():
    lo, hi = np.min(rows, 0), np.max(rows, 0)
    print(f"--- {n} seeds")
    for (_, s, m, o, _), v, a, b in zip(CLAIMS, ten, lo, hi):
        print(f"{s:9s} {m + ' − ' + o:38s} {v:13s} same in {a:.2f}-{b:.2f}")

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Holm or Bonferroni
# :label: ex-11-holm-bonferroni
#
# *derivation · about 1 CPU minute*
#
# Show that Holm's adjusted p-values are never larger than Bonferroni's, $\min(1, m\,p_i)$, and find a family
# among the committed results (each benchmark's family of paired tests on the Avg. Gap, `report["paired"]`) in
# which Holm rejects a hypothesis at 0.05 that Bonferroni keeps.
# ```

# %% [markdown]
# ```{solution-start} ex-11-holm-bonferroni
# :class: dropdown
# ```
# Let $p_i$ be the $i$-th smallest. Holm's adjusted value is $\tilde p_{(i)} = \max_{j \le i}\min(1, (m - j + 1)
# p_{(j)})$. Every term has $m - j + 1 \le m$ and $p_{(j)} \le p_{(i)}$, so it is at most $\min(1, m\,p_{(i)})$,
# Bonferroni's value; hence Holm rejects everything Bonferroni rejects, and possibly more. In the committed
# class-wise run (27 pairs per metric) Holm rejects 16 hypotheses on the gap and Bonferroni 13; for instance
# $\ell_1$-sparse against GA has $p = 0.0041$, Bonferroni's $27p = 0.11$ keeps it, Holm's adjusted $0.049$ rejects
# it. The flipped-label and memorised runs have one such hypothesis each (GA against NegGrad+).

# %%
for name, rep in bench.items():
    pairs = [(m, b) for m, by in rep["paired"].items() for b in by]
    p_raw = np.array([rep["paired"][m][b]["gap"]["p"] for m, b in pairs])
    p_holm = np.array([rep["paired"][m][b]["gap"]["p_holm"] for m, b in pairs])
    only_holm = [
        pairs[i] for i in np.where((p_holm < 0.05) & (len(pairs) * p_raw >= 0.05))[0]
    ]
    print(
        f"{name}: {len(pairs)} tests, Holm rejects {int((p_holm < 0.05).sum())}, "
        f"Bonferroni {int((len(pairs) * p_raw < 0.05).sum())}; only Holm: {only_holm}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} A stronger relearning attack
# :label: ex-11-stronger-relearn
#
# *experiment · about 1 CPU minute*
#
# Raise the attack's learning rate (`relearn_curve(..., lr=...)`) from 0.01 to 0.02, 0.03 and 0.05 and repeat
# the relearning measurement for the oracle, GA, NegGrad+, PCGrad and fine-tuning on seeds 0–2. At which learning
# rate does the oracle itself learn the class within ten steps, and what is then left of the attack?
# ```

# %% [markdown]
# ```{solution-start} ex-11-stronger-relearn
# :class: dropdown
# ```
# Over seeds 0–2 the oracle stays at 0 % of the held-out class after ten steps at the chapter's learning rate
# 0.01, but reaches 86–97 % at 0.02 (50 % after 8–9 steps), 99–100 % at 0.03 and 100 % at 0.05 (50 % after 4–5
# steps): from 0.02 on the oracle itself learns the class within ten steps. The ten-step accuracy then no longer
# separates GA, NegGrad+ and PCGrad (100 % from 0.02 on) from the oracle, and fine-tuning, which resisted at
# 0.01 on two seeds, ends at 88–98 % from 0.03 on. What is left is the speed. From 0.02 on GA is back above
# 50 % after one step, NegGrad+ and PCGrad after 2–3 and the oracle after 4–9: the ordering survives as steps
# to recover, with a margin that shrinks as the learning rate grows. An attack must be calibrated against the
# oracle: of these rates, only the chapter's 0.01 leaves the oracle at 0.

# %% tags=["skip-execution"]
ATTACK_LRS = (0.01, 0.02, 0.03, 0.05)
after_ten, to_half = {}, {}
for seed in SEEDS:
    tk = make_task(data, "class", forget_class=FORGET_CLASS, seed=seed)
    orig = original_model(data, cfg, seed=seed, device=device, progress=False)
    attacked = {
        "oracle": retrained_model(tk, cfg, seed=seed, device=device, progress=False)
    }
    for name in ("ga", "neggrad_plus", "pcgrad", "finetune"):
        attacked[name] = get_method(name)(orig, tk, seed=seed)
    for name, mdl in attacked.items():
        for lr in ATTACK_LRS:
            curve = relearn_curve(mdl, tk, seed=seed, lr=lr)
            after_ten.setdefault((name, lr), []).append(curve[-1])
            to_half.setdefault((name, lr), []).append(steps_to_recover(curve, 50))
for lr in ATTACK_LRS:
    print(f"lr {lr}:")
    for name in attacked:
        print(
            f"  {name:13s} after ten steps {np.round(after_ten[name, lr], 1)} %, "
            f"steps to 50 %: {to_half[name, lr]}"
        )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Memorisation with correctness
# :label: ex-11-mem-correctness
#
# *experiment · about 3 CPU minutes*
#
# Recompute the memorisation scores {eq}`eq-11-mem` with 0/1 correctness instead of the true-class probability
# (use `unlearnlib.shadows.shadow_models` and `unlearnlib.metrics.predict_logits`). How much of the top decile
# changes? Repeat with two more shadow families (`seed=MEMORIZATION_SHADOW_SEED + 1` and `+ 2`; sixteen
# trainings each) to see how much of the difference is the family's own noise.
# ```

# %% [markdown]
# ```{solution-start} ex-11-mem-correctness
# :class: dropdown
# ```
# With eight models on each side the 0/1 score moves in steps of $1/8$, and on digits most samples are predicted
# correctly by every model, in or out: over the three families only 90–123 of the 1,347 training samples have a
# positive 0/1 score, fewer than the 134 of a decile. The 0/1 "top decile" is therefore completed by samples
# tied at 0, in an arbitrary order, and it shares only 63–81 % with the decile by probability. Of the samples
# the 0/1 score does single out, 88–92 % are in the probability decile: the two scores agree on the clearly
# memorised samples and the probability ranks the rest. Part of the difference is the family's own noise: the
# probability deciles of two families share 76–79 %, the 0/1 deciles (with their arbitrary ties) 60–69 %.

# %% tags=["skip-execution"]
from unlearnlib.metrics import predict_logits
from unlearnlib.shadows import shadow_models

FAMILIES = [MEMORIZATION_SHADOW_SEED + j for j in range(3)]
decile = len(data.y_train) // 10
by_prob, by_01 = {}, {}
for fam in FAMILIES:
    family, inside = shadow_models(data, cfg, seed=fam, device=device, progress=False)
    correct = torch.stack(
        [
            (predict_logits(mdl, data.x_train).argmax(1) == data.y_train).double()
            for mdl in family
        ]
    ).cpu()
    ins = inside.double()
    mem01 = (
        (correct * ins).sum(0) / ins.sum(0)
        - (correct * (1 - ins)).sum(0) / (1 - ins).sum(0)
    ).cpu().numpy()
    memp = memorization_scores(data, cfg, seed=fam, device=device, progress=False)
    by_prob[fam] = set(np.argsort(-memp, kind="stable")[:decile])
    by_01[fam] = set(np.argsort(-mem01, kind="stable")[:decile])
    positive = set(np.flatnonzero(mem01 > 0))
    in_decile = len(positive & by_prob[fam]) / len(positive)
    print(
        f"family {fam}: {len(positive)} samples with a positive 0/1 score, "
        f"{in_decile:.2f} of them in the probability decile; the two deciles share "
        f"{len(by_prob[fam] & by_01[fam]) / decile:.2f}"
    )
for a, b in ((0, 1), (0, 2), (1, 2)):
    fa, fb = FAMILIES[a], FAMILIES[b]
    print(
        f"families {fa} and {fb}: probability deciles share "
        f"{len(by_prob[fa] & by_prob[fb]) / decile:.2f}, 0/1 deciles "
        f"{len(by_01[fa] & by_01[fb]) / decile:.2f}"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} What the memorised set contains
# :label: ex-11-memorised-content
#
# *experiment · about 3 CPU minutes*
#
# Of the 16 most memorised images shown in section *Forget sets that are hard for a reason*, how many would you
# label differently? Then flip 5 % of the labels (`unlearnlib.data.flip_labels`), recompute the memorisation
# scores on the flipped data (`memorization_scores` trains a shadow family of its own on it) and measure what
# fraction of the flipped samples lands in the top decile, for flip seeds 0–2.
# ```

# %% [markdown]
# ```{solution-start} ex-11-memorised-content
# :class: dropdown
# ```
# The first part is a matter of judgement. At 8 × 8 pixels about half of the sixteen could pass for another
# digit (5s that resemble 3s or 9s, a 9 that resembles a 4, an 8 drawn as a thin vertical bar); none is an
# obvious mislabeling, but all are atypical renderings that only a model that saw them gets right.
#
# For flip seeds 0–2, 61–69 % of the 67 flipped samples land in the top decile, where they make 31–34 % of it;
# their median score is 0.36–0.39 against 0.02 for the other samples. A third of the flipped samples are not
# among the most memorised: as the chapter found for the flipped-label scenario, the training recipe does not
# fit every wrong label in the first place, and a label that even the models trained on it do not predict has
# nothing to be memorised. The rest of the decile is the atypical digits of the first part.

# %% tags=["skip-execution"]
from unlearnlib.data import flip_labels

for flip_seed in (0, 1, 2):
    flipped_data, flipped = flip_labels(data, 0.05, seed=flip_seed)
    fscores = memorization_scores(
        flipped_data, cfg, seed=MEMORIZATION_SHADOW_SEED, device=device, progress=False
    )
    top_f = np.argsort(-fscores)[: len(fscores) // 10]
    fl = flipped.cpu().numpy()
    share, part = np.isin(fl, top_f).mean(), np.isin(top_f, fl).mean()
    print(
        f"flip seed {flip_seed}: {100 * share:.0f} % of the {len(fl)} flipped samples "
        f"in the top decile, {100 * part:.0f} % of the decile; median score "
        f"{np.median(fscores[fl]):.2f} (others {np.median(np.delete(fscores, fl)):.2f})"
    )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects

# %% [markdown]
# ```{exercise} The competition at a larger n
# :label: ex-11-competition-n16
#
# *project · about 15 CPU minutes*
#
# Run `audits.competition_score` for GA and for `retrain` with $n = 16$ on the memorised set of seeds 0–2 (about
# four minutes per seed and method on a laptop). How do the forgetting quality and its null value
# (`audits.null_forgetting_quality`) change from $n = 8$ to $n = 16$, and why must a score always be read against
# the null of its $n$?
# ```

# %% [markdown]
# ```{solution-start} ex-11-competition-n16
# :class: dropdown
# ```
# A sketch. The ceiling $\log(n - 1 - n\delta)$ rises from 1.95 at $n = 8$ to 2.71 at $n = 16$, so the bins of
# the forgetting quality extend from 2 (4 bins of 0.5) to 3 (6 bins): an example that looks perfectly separated
# at $n = 8$ can now show a finite $\varepsilon$ and earn points. The null moves too, and down: a perfect
# method's expected forgetting quality is 0.18 at $n = 8$ and 0.13 at $n = 16$
# (`audits.null_forgetting_quality`, a simulation that needs no model), since the number of attacks tried per
# example grows as $(2n + 1)^2$ and the largest $\varepsilon$ that chance produces among them grows with it. A
# score is therefore a pair (method, $n$): only its distance to the null of the same $n$ says how
# distinguishable the method is, and two scores at different $n$ cannot be compared directly. Run the code for
# both methods, and read each score against its null.

# %% tags=["skip-execution"]
for n in (8, 16):
    print(n, audits.epsilon_ceiling(n), audits.null_forgetting_quality(n))
    for seed in SEEDS:
        mem_seed = make_task(data, "memorized", forget_fraction=0.1, seed=seed, cfg=cfg)
        for method in ("ga", "retrain"):
            print(
                seed,
                method,
                audits.competition_score(method, mem_seed, cfg, n=n, seed=seed),
            )

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. Two retrainings of the same task with different seeds differ by 0.8 points of Avg. Gap on average. A method
#    lands 0.6 points from the oracle. Can we say it matches the oracle better than a second retraining would?
#    (a) yes; (b) no, it is within the noise floor; (c) only with more seeds for the method alone.
# 2. Two methods have per-seed gaps with standard deviations 2 and 2 and a correlation of 0.75 across ten seeds.
#    By {eq}`eq-11-paired-variance`, by what factor is the standard error of the paired difference smaller than
#    the unpaired one?
# 3. A family has the p-values 0.001, 0.011, 0.02 and 0.3. At $\alpha = 0.05$, how many hypotheses does Holm's
#    procedure reject, and how many does Bonferroni's?
# 4. With $n = 8$ unlearned and 8 retrained models, the competition's score (a) can certify any $\varepsilon$;
#    (b) cannot show a finite $\varepsilon$ above about $\log 7 \approx 1.95$; (c) gives 1 to a perfect method.
# 5. After GA, a fifth of the forget class and ten SGD steps bring the class back above 90 %, while the oracle
#    stays near 0. This shows that (a) GA removed the class from the features; (b) GA hid the class, which was
#    still in the weights; (c) the attack's learning rate is too high.

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b): the floor is the distance of a perfect method (another retraining); below it nothing can
# be decided. 2. Unpaired $\sqrt{(4 + 4)/n}$, paired $\sqrt{(4 + 4 - 2 \cdot 0.75 \cdot 4)/n} = \sqrt{2/n}$: a factor
# 2 smaller. 3. Holm rejects three (0.001 ≤ 0.0125, 0.011 ≤ 0.0167, 0.02 ≤ 0.025, then 0.3 > 0.05); Bonferroni
# two (0.0125 for each). 4. (b): the smallest non-zero rate is $1/n$, so $\varepsilon \le \log(n - 1 - n\delta)$,
# and even a perfect method scores about 0.18 at $n = 8$. 5. (b): the oracle, which never saw the class, does not
# learn it from the same attack.
