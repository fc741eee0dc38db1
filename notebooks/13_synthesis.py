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
# # The verdict
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/13_synthesis.ipynb)
#
# The book set out with one question: the objective that erases the forget set and the objective that preserves
# the retain set pull the weights in conflicting directions; *when does managing that conflict make a better
# unlearning method?* Parts I and II derived the methods that manage it and measured each against the baselines
# it was designed to beat; chapter 11 built instruments that can tell methods apart; chapter 12 gave every method
# the same tuning and ran all of them on every scenario. This chapter puts the evidence side by side and states
# what it supports, including where it does not reach.
#
# **What you will learn**
#
# - what the book's measurements say, method family by family, about managing the conflict;
# - where, in our settings, it pays and where a fixed multiplier or plain fine-tuning suffices;
# - a decision guide for a practitioner, and the questions the evidence leaves open.

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
import matplotlib.pyplot as plt
import numpy as np

from unlearnlib import records
from unlearnlib.experiment import decision

SCENARIOS = {
    "class3": "class-wise, digit 3",
    "random10": "random 10 %",
    "mislabeled10": "flipped labels, 10 %",
    "memorized10": "most memorised 10 %",
}
bench = {name: records.load_bench(f"bench_{name}") for name in SCENARIOS}
stress = records.load_bench("bench_stress_class3")
# The methods that manage the conflict between the two gradients (Part II), and the ones
# that weigh the two objectives by a fixed multiplier or use one of them only (Part I).
CONFLICT_AWARE = [
    "pcgrad", "unilateral_surgery", "implicit_surgery", "unilateral_surgery_rl",
    "implicit_surgery_rl", "orthograd", "ltu", "ltu_ascent", "lur", "masked:ga",
    "masked:neggrad_plus", "masked:random_label",
]
FIXED = [
    "finetune", "ga", "neggrad_plus", "random_label", "scrub", "salun", "l1_sparse",
]
assert sorted(CONFLICT_AWARE + FIXED) == sorted(
    m for m in bench["class3"]["config"]["methods"] if m != "retrain"
)

# %% [markdown]
# ## The question, and the evidence
#
# Every method the book studies takes steps that combine a forget gradient $g_f$ and a retain gradient $g_r$. The
# **fixed-weight** methods combine them with a constant: gradient ascent uses $g_f$ alone, fine-tuning $g_r$ alone,
# NegGrad+ $(1-\beta)\,g_f + \beta\,g_r$ with a tuned $\beta$, random labels, SCRUB, SalUn and $\ell_1$-sparse other
# fixed recipes. The **conflict-aware** methods change the combination when the two conflict: PCGrad and the
# surgeries project (chapters 05-06), OrthoGrad projects against every per-sample retain gradient (chapter 07),
# LTU harmonises meta-gradients (chapter 08), LUR rewards their alignment one step ahead (chapter 09), the masked
# add-on drops the coordinates where the step is not clearly feasible (chapter 10).
#
# What the chapters measured along the way:
#
# - **There is no conflict at the original weights** in class-wise forgetting (chapter 04: cosine above 0.8); the
#   runs create it, and NegGrad+ survives it with its retain term.
# - **Each conflict-aware method does what its derivation says**: PCGrad leaves no negative inner product with two
#   tasks, the surgery's multiplier solves its constrained problem, OrthoGrad protects the samples of its batch to
#   first order, the masked step is feasible coordinate by coordinate with the stated probability. The derivations
#   hold; the question is whether they buy a model closer to the retrained one.
# - **Mechanisms that did not show**: LTU's advantage comes from its gradient harmonisation, not its meta-step
#   (chapter 08); LUR does not move the forget/retain cosine towards agreement in our measurement (chapter 09).
# - **Under equal treatment** (chapter 12: the same protocol, budget and guard for every method, ten seeds, the
#   noise floor, Holm-corrected paired tests), the table below counts, per scenario, the conflict-aware methods
#   decidedly closer to the oracle than the tuned NegGrad+, undecided, and decidedly farther.

# %%
def gap(rep, m):
    return rep["summary"][m]["gap"]["mean"]


def floor(rep):
    return rep["floor"]["gap"]["mean"]


print(f"{'scenario':22s}{'floor':>7s}{'NegGrad+':>10s}  best conflict-aware        "
      "vs NegGrad+ (Holm): closer / undecided / farther")
verdicts = {}
for s, label in SCENARIOS.items():
    rep = bench[s]
    best = min(CONFLICT_AWARE, key=lambda m: gap(rep, m))
    d = [decision(rep["paired"], m, "neggrad_plus") for m in CONFLICT_AWARE]
    verdicts[s] = {m: v for m, v in zip(CONFLICT_AWARE, d)}
    print(f"{label:22s}{floor(rep):7.2f}{gap(rep, 'neggrad_plus'):10.2f}  "
          f"{best:22s}{gap(rep, best):5.2f}   "
          f"{d.count(-1):3d} / {d.count(0):3d} / {d.count(1):3d}")
    assert d.count(-1) == 0 and 3 <= d.count(1) <= 8, (s, d)

# %% [markdown]
# In none of the four scenarios on digits is a conflict-aware method decidedly closer to the retrained model than a
# tuned NegGrad+, and in each three to eight of the twelve are decidedly farther. The first half of that sentence
# holds on both kernel families chapter 12 compared; the second does not: with models trained on other kernels,
# NegGrad+ missed its target on one class-wise seed, and the decisions "farther than NegGrad+" became undecided
# there. The closest conflict-aware
# methods come within one to two floors of the oracle in class-wise and random forgetting (masked NegGrad+, PCGrad,
# OrthoGrad), where NegGrad+ is at two to three: differences too small for ten seeds to decide. The figure ranks
# every method by its distance in floors; conflict-aware methods are orange.

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 4), sharey=False)
for ax, (s, label) in zip(axes, SCENARIOS.items()):
    rep = bench[s]
    names = sorted(CONFLICT_AWARE + FIXED, key=lambda m: gap(rep, m))
    colors = ["tab:orange" if m in CONFLICT_AWARE else "tab:blue" for m in names]
    ax.barh(range(len(names)), [gap(rep, m) / floor(rep) for m in names], color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="grey", ls="--", lw=0.8)
    ax.set_title(label, fontsize=10)
    ax.set_xlabel("mean gap / noise floor")
fig.suptitle("ten seeds, tuned values: conflict-aware (orange) and fixed-weight (blue)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Where managing the conflict pays
#
# The question is where the evidence could point the other way. Five candidates, each with what the book measured.
#
# **Corrective unlearning (flipped labels).** What helps here is not a way of managing the conflict but the
# retain set itself: fine-tuning, SCRUB and $\ell_1$-sparse, which train on the clean retain data, are the only
# methods decidedly closer to the oracle than NegGrad+, and $\ell_1$-sparse lands within the noise floor.
# Eight of the twelve conflict-aware methods are decidedly farther.
#
# **The most memorised examples.** The classification-setting implicit surgery, $\ell_1$-sparse and LTU come
# within about two floors of the oracle against NegGrad+'s 3.7, but no difference survives the correction (the
# best, $-3.8$ points of gap, has a Holm-adjusted $p$ of 0.07). The masked methods, which protect the retain set
# hardest, are the farthest of all: they do not forget these examples (chapter 11 found the same with the
# defaults). Protecting the retain set is exactly wrong where the forget set is what the model learnt by heart.
#
# **A small retain set.** OrthoGrad and LTU are designed for it. The protocol was run again with every method,
# NegGrad+ included, restricted to a 5 % subset of the retain set (60 images, drawn per seed), and the
# benchmark ran the values it chose on ten seeds. A second run gave the three methods that chapters 07 and 08
# tuned for the subset themselves their chapters' defaults, on the same seeds and subsets. Both runs were repeated
# with every model trained afresh on another kernel family (oneDNN off, chapter 12).

# %%
subset = records.load_bench("bench_class3_retain5")
print(records.format_verdicts(subset, CONFLICT_AWARE, baselines=("neggrad_plus",)))
print("flagged:", {m: f for m, f in subset["flags"].items() if m in CONFLICT_AWARE})
# The same two runs with models trained on another kernel family (oneDNN off,
# chapter 12).
runs = {
    "this machine's kernels": ("bench_class3_retain5", "bench_class3_retain5_defaults"),
    "oneDNN off": ("bench_class3_retain5_onednn_off",
                   "bench_class3_retain5_defaults_onednn_off"),
}
closer, farther, own_d = {}, {}, {}
for kernels, (tuned_run, own_run) in runs.items():
    tuned_rep, own_rep = records.load_bench(tuned_run), records.load_bench(own_run)
    v = records.verdicts(tuned_rep, CONFLICT_AWARE, ("neggrad_plus",))
    closer[kernels] = [m for m in CONFLICT_AWARE if v[m]["neggrad_plus"] == -1]
    farther[kernels] = [m for m in CONFLICT_AWARE if v[m]["neggrad_plus"] == 1]
    print(f"\n{kernels}: NegGrad+ re-tuned for the subset at "
          f"{tuned_rep['summary']['neggrad_plus']['gap']['mean']:.1f} points of gap")
    print("  decidedly closer:", closer[kernels], " farther:", farther[kernels])
    for m in ("orthograd", "ltu_ascent", "ltu"):
        d = records.paired_across(own_rep, m, tuned_rep, "neggrad_plus")
        own_d[kernels, m] = d
        print(f"  {m:11s}at its chapter's defaults, minus NegGrad+: "
              f"{d['mean']:+6.2f} ± {d['ci95']:.2f} (p = {d['p']:.1g})")
# Masked GA is decidedly closer on both kernel families; OrthoGrad and LTU's ascent
# variant at their chapters' defaults are closer beyond the 95 % interval on both.
assert all("masked:ga" in c for c in closer.values())
assert all(own_d[k, m]["mean"] + own_d[k, m]["ci95"] < 0
           for k in runs for m in ("orthograd", "ltu_ascent"))
assert subset["flags"]["orthograd"]["not_forgotten"] > 5

# %% [markdown]
# This is the one setting where the evidence leans towards managing the conflict, by one to two points of gap, and
# it leans the same way on both kernel families. With 5 % of the retain set, NegGrad+ re-tuned for it ends about
# three points from the oracle (0.4 with the whole retain set). Masked GA ends below one point and is decidedly
# closer on both kernel families; on the other one masked NegGrad+, PCGrad and LTU's ascent variant are decidedly
# closer too, and on ours they are within a point of NegGrad+, undecided. OrthoGrad at the protocol's pick does not
# forget on six seeds of ten: two tuning seeds placed its learning rate on the wrong side of a threshold. At the
# defaults that chapters 07 and 08 chose on five held-out seeds, OrthoGrad and LTU's ascent variant are closer than
# the re-tuned NegGrad+ beyond the 95 % interval of the paired difference, on both kernel families (these tests are
# outside the protocol's Holm family; corrected for the three made per kernel family, they still hold). A small
# retain set is where protecting it pays, modestly, and where the tuning of the method matters as much as the
# method.
#
# **Harder data.** On the stress set (chapter 12), the registry's defaults of three conflict-aware methods collapse
# the model to chance; the tuned values, with the guard, are below.

# %%
stress_default = records.load_bench("stress_class3_defaults")
print(f"{'method':22s}{'defaults: gap':>15s}{'tuned: gap':>12s}{'RA':>7s}  flags")
for m in CONFLICT_AWARE + FIXED:
    print(f"{m:22s}{gap(stress_default, m):15.1f}{gap(stress, m):12.1f}"
          f"{stress['summary'][m]['RA']['mean']:7.1f}  {stress['flags'].get(m, {})}")

# %% [markdown]
# Tuned on the stress set itself, every method but implicit surgery forgets without collapsing, and the methods that
# come closest to the oracle are the ones that train on the retain set ($\ell_1$-sparse 0.4, fine-tuning 0.5); LTU,
# masked NegGrad+, OrthoGrad and NegGrad+ follow within a point of each other (0.9 to 1.4). With the defaults of
# digits, NegGrad+ was at 10.2 and OrthoGrad, LTU and masked GA at 0.9 to 1.9: what looked like an advantage of the
# conflict-aware methods on harder data was, at least in part, an advantage of their defaults. Two seeds decide
# nothing here; the ordering is a finding to test, not a verdict.
#
# **A language model.** Chapter 15 applies PCGrad, both surgeries, OrthoGrad and the masked add-on to a small
# transformer trained on synthetic facts. Every one of them ends decidedly farther from the retrained model than
# NPO, the strongest language-model baseline, and five of them lose between 30 and 98 % of the retained facts.

# %% [markdown]
# **The cost.** Chapter 12 counted per-sample passes: on digits every method costs less than retraining and most
# a third of it or less, none a tenth in every scenario. The methods that run over the retain set cost a fixed
# share of retraining whatever its size; the ones that run over the forget set get cheaper relative to it as the
# retain set grows. Managing the conflict adds per-step work (per-sample gradients, a probe, a look-ahead) that is
# paid on every step: OrthoGrad's step costs four GA steps on the CPU, LUR's seven.

# %% [markdown]
# ## A decision guide
#
# 1. **Start with a tuned NegGrad+.** With the whole retain set, in every scenario we measured, no conflict-aware
#    method is decidedly closer to the retrained model than NegGrad+ with its weight and step tuned, and several
#    are decidedly farther.
# 2. **Tune on your own task, oracle-free, and keep the guard on.** Defaults carried from one dataset to another
#    collapse models to chance; `python -m unlearnlib.bench --tune` and the guardrail flags catch it.
# 3. **To undo wrong labels, fine-tune on the clean retain set** ($\ell_1$-sparse, fine-tuning): nothing that pushes
#    the forget set away did as well.
# 4. **Protect the retain set when you hold little of it, not when the forget set is memorised:** with 5 % of
#    $D_r$, masked GA (and OrthoGrad and LTU at their chapters' defaults) ended one to two points of gap closer
#    than a re-tuned NegGrad+; on memorised examples the masked methods barely forget.
# 5. **Count the passes before choosing, and retrain when the retain set is small:** unlearning pays when $|D_r|$
#    is large next to $|D_f|$ and the method runs over the forget set; below that, retraining is as cheap and exact.

# %% [markdown]
# ## What this book does not know
#
# - **Larger models and real images.** Every verdict above is on digits (8×8 and 28×28) with a small CNN, and on a
#   tiny transformer. The `full` profile runs CIFAR-10 with ResNet-18, the setting of the papers, but the book has
#   not yet been executed there; conflicts may matter more when the two gradients share more of a large network.
# - **Tuning on more seeds.** Two tuning seeds were enough for most methods and too few for those whose forgetting
#   is a threshold effect (fine-tuning, SCRUB, LTU, chapter 12, and OrthoGrad on a small retain subset). The
#   advantage of OrthoGrad and LTU with 5 % of $D_r$ rests on defaults tuned on five held-out seeds, against a
#   NegGrad+ tuned on two: the same five-seed protocol for every method would settle it.
# - **An oracle-free target for corrective unlearning.** On flipped labels the forget accuracy gives the tuning
#   rule nothing to select on (chapter 12).
# - **Per-example audits of the tuned methods.** Chapter 11 audited the defaults; the audits cost shadow models per
#   method and were not re-run for the tuned values.
# - **Pretrained language models.** Chapter 15's model is small and its facts synthetic: the methods can be compared
#   with an exact oracle there, which is the point, but whether the ordering holds for a pretrained model is open.

# %% [markdown]
# ## Summary
#
# - The book's question was when managing the conflict between the forget and the retain gradients makes a better
#   unlearning method. On the settings it can run (digits in four scenarios over ten seeds, a harder 28×28 set, a
#   small language model), the answer is: **only with a small retain subset, and narrowly**. With the whole retain
#   set, a fixed multiplier tuned by the same oracle-free protocol is as close to the retrained model as the best
#   conflict-aware method, and closer than many; for corrective unlearning, plain fine-tuning on the clean retain
#   set is closer than both. With 5 % of the retain set, masked GA is decidedly closer than the re-tuned NegGrad+,
#   by about two points of gap, and OrthoGrad and LTU are at their chapters' defaults.
# - Each conflict-aware method does what its derivation promises (chapters 05-10); the promise is about a step,
#   and a step's guarantee did not become a better model in our measurements. The mechanisms we could test
#   directly (LTU's meta-step, LUR's alignment) did not show.
# - Elsewhere the evidence leans, slightly and undecidedly, towards one conflict-aware method on the most memorised
#   examples (the classification-setting implicit surgery). The masked methods are the exception in the other
#   direction: on memorised examples they do not forget.
# - Unlearning is cheaper than retraining on digits for every method, by a factor of three or more for most, and
#   the cost curve shows why: a method that runs over the forget set stops growing with the retain set.
# - What the book cannot say: larger models and real images (the `full` profile exists, not its measurements),
#   more tuning seeds, an oracle-free target for corrective unlearning, and pretrained language models.

# %% [markdown]
# ## Exercises
#
# The exercises turn the verdict's instruments on the committed benchmark: counting decisions in a table of paired
# tests, and a test that needs no normality. The two graded exercises come with tests.

# %% tags=["exercise-setup"]
import numpy as np
from scipy import stats as ex_stats

# A small table of paired comparisons with one baseline, in the layout of the
# benchmark's "paired" block: per method, per baseline, per metric, the mean difference
# (method - baseline), its p-value and its Holm-adjusted p-value.
ex_paired = {
    "a": {"base": {"gap": {"mean": -0.8, "p": 0.001, "p_holm": 0.004}}},
    "b": {"base": {"gap": {"mean": 1.5, "p": 0.01, "p_holm": 0.03}}},
    "c": {"base": {"gap": {"mean": -0.3, "p": 0.02, "p_holm": 0.06}}},
    "d": {"base": {"gap": {"mean": 2.0, "p": 0.2, "p_holm": 0.4}},
          "other": {"gap": {"mean": -5.0, "p": 0.0001, "p_holm": 0.0004}}},
    "e": {"other": {"gap": {"mean": -1.0, "p": 0.001, "p_holm": 0.002}}},
}
# Per-seed gaps of two methods over ten seeds (one tie).
ex_a = np.array([0.4, 0.5, 0.3, 0.9, 0.2, 0.6, 0.5, 0.4, 0.7, 0.3])
ex_b = np.array([0.6, 0.7, 0.5, 0.8, 0.4, 0.6, 0.9, 0.5, 0.8, 0.6])

# %% [markdown]
# ```{exercise} A tally of decisions
# :label: ex-13-tally
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `tally(paired, baseline, key="gap", level=0.05)` that counts, over the methods compared with `baseline`
# in a `paired` block of the benchmark's JSON, how many are decidedly closer to the oracle than the baseline (a
# negative mean difference of `key` with a Holm-adjusted p-value below `level`), decidedly farther (positive mean,
# adjusted p below `level`), and undecided. Methods without an entry for `baseline` are not counted. Return a dict
# with the keys `"closer"`, `"farther"`, `"undecided"`.
# ```


# %% tags=["remove-cell", "graded"]
def tally(paired, baseline, key="gap", level=0.05):
    """Counts of methods closer to / farther from the oracle than `baseline`, and
    undecided, by Holm-adjusted paired tests: {"closer": int, "farther": int,
    "undecided": int}."""
    # BEGIN SOLUTION
    out = {"closer": 0, "farther": 0, "undecided": 0}
    for entries in paired.values():
        e = entries.get(baseline, {}).get(key)
        if e is None:
            continue
        if e["p_holm"] is not None and e["p_holm"] < level and e["mean"] != 0:
            out["closer" if e["mean"] < 0 else "farther"] += 1
        else:
            out["undecided"] += 1
    return out
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# a closer (p_holm 0.004), b farther (0.03), c and d undecided (0.06, 0.4); e has no
# entry.
assert tally(ex_paired, "base") == {"closer": 1, "farther": 1, "undecided": 2}

# %% tags=["remove-cell", "graded-test", "hidden"]
# Against "other": d and e closer; the raw p-value of c (0.02) must not count at level
# 0.05, its adjusted one (0.06) decides.
assert tally(ex_paired, "other") == {"closer": 2, "farther": 0, "undecided": 0}
ex_t = tally(ex_paired, "base", level=0.01)
assert ex_t == {"closer": 1, "farther": 0, "undecided": 3}

# %% tags=["remove-cell", "graded-test", "hidden"]
# Another metric and an entry with no test (one seed: p_holm None) counts as undecided.
ex_q = {"m": {"base": {"RA": {"mean": -1.0, "p": None, "p_holm": None}}},
        "n": {"base": {"RA": {"mean": 3.0, "p": 0.001, "p_holm": 0.001}}}}
assert tally(ex_q, "base", key="RA") == {"closer": 0, "farther": 1, "undecided": 1}
assert tally(ex_q, "base") == {"closer": 0, "farther": 0, "undecided": 0}

# %% [markdown]
# ```{exercise} A sign test of two methods
# :label: ex-13-sign-test
#
# *code · graded, 3 points · about 1 CPU minute*
#
# The paired $t$-test of chapter 11 assumes the per-seed differences are roughly normal. The sign test assumes
# nothing but independence: under the null hypothesis that neither method is more often closer to the oracle, the
# number of seeds on which $a$ beats $b$ is binomial with $p = \tfrac12$, over the seeds that are not ties. Write
# `sign_test(gap_a, gap_b)` that returns `(wins, n, p)`: the seeds on which $a$'s gap is smaller, the number of
# seeds that are not ties, and the exact two-sided p-value.
# ```


# %% tags=["remove-cell", "graded"]
def sign_test(gap_a, gap_b):
    """Exact two-sided sign test of per-seed gaps: (wins of a, non-tied seeds, p)."""
    # BEGIN SOLUTION
    d = np.asarray(gap_a, dtype=float) - np.asarray(gap_b, dtype=float)
    d = d[d != 0]
    n, wins = len(d), int((d < 0).sum())
    if n == 0:
        return 0, 0, 1.0
    k = min(wins, n - wins)
    # P(X <= k) + P(X >= n - k) for X ~ Binomial(n, 1/2), capped at 1
    tail = sum(ex_stats.binom.pmf(i, n, 0.5) for i in range(k + 1))
    return wins, n, float(min(1.0, 2 * tail))
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Ten seeds, one tie (seed 5): a wins 8 of 9, the exact two-sided p is 20/512.
ex_w, ex_n, ex_p = sign_test(ex_a, ex_b)
assert (ex_w, ex_n) == (8, 9), (ex_w, ex_n)
assert abs(ex_p - 20 / 512) < 1e-12, ex_p

# %% tags=["remove-cell", "graded-test", "hidden"]
# Against scipy's exact binomial test, both directions, on seeded random gaps.
ex_r = np.random.default_rng(13)
for ex_k in range(5):
    ex_x, ex_y = ex_r.normal(1, 1, 12), ex_r.normal(1.3, 1, 12)
    ex_w, ex_n, ex_p = sign_test(ex_x, ex_y)
    ex_ref = ex_stats.binomtest(ex_w, ex_n, 0.5).pvalue
    assert ex_n == 12 and ex_w == int((ex_x < ex_y).sum()), (ex_k, ex_w)
    assert abs(ex_p - ex_ref) < 1e-12, (ex_k, ex_p, ex_ref)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Symmetric: swapping the methods turns wins into losses and keeps p; a balanced split
# gives p = 1 (not above it).
ex_w, ex_n, ex_p = sign_test(ex_b, ex_a)
assert (ex_w, ex_n) == (1, 9) and abs(ex_p - 20 / 512) < 1e-12
ex_w, ex_n, ex_p = sign_test([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0])
assert (ex_w, ex_n) == (2, 4) and ex_p == 1.0

# %% [markdown]
# ## Quiz
#
# 1. In which scenario on digits is a conflict-aware method decidedly closer to the oracle than a tuned NegGrad+?
# 2. Which methods are decidedly closer than NegGrad+ on flipped labels, and what do they have in common?
# 3. Why do the masked methods end farthest from the oracle on the most memorised examples?
# 4. A method runs over the retain set for five epochs; retraining runs thirty. As $D_r$ grows tenfold with $D_f$
#    fixed, what happens to its cost relative to retraining? And to gradient ascent's?
# 5. Why is "method A's mean gap is smaller than method B's" not enough to recommend A, and what does the book
#    require instead?

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. None: in all four scenarios the conflict-aware methods are either undecided or decidedly farther
# (chapter 12). 2. Fine-tuning, SCRUB and $\ell_1$-sparse: all three train on the clean retain set, which is what
# undoes the effect of wrong labels; $\ell_1$-sparse lands within the noise floor. 3. They keep only the
# coordinates where the step is clearly feasible for the retain set; on memorised examples almost every step that
# would forget them hurts the retain loss somewhere, so the masked step barely moves and the examples stay learnt.
# 4. The retain-driven method's passes grow with $|D_r|$ like retraining's, so its ratio stays near
# $2 \cdot 5/30 \approx 0.33$; gradient ascent's passes depend on $|D_f|$ and its checks, so its ratio falls about
# tenfold. 5. Means over seeds hide the spread and the pairing; the book requires a paired test over ten seeds with
# Holm's correction, and a distance larger than the noise floor of two retrainings.
