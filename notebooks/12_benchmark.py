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
# # A fair benchmark
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/12_benchmark.ipynb)
#
# Every chapter of Part II compared its method with the baselines of Part I, and every one of those comparisons
# had the same weak point: the hyperparameters. Each method's defaults were chosen by a rule that never looks at the
# oracle, but not by the *same* rule: different grids, different numbers of candidates, and in chapters 07 and 08 a
# method tuned for a 5 % retain subset against baselines that were not. A comparison in which one side was tuned
# harder measures the tuning. This chapter gives every method the same treatment, runs all of them on every
# scenario over ten seeds, and asks what each costs next to retraining from scratch.
#
# **What you will learn**
#
# - a **tuning protocol** that is the same for every method (grid size, budget, seeds, rule) and never looks at
#   the oracle, and how to run it on your own task;
# - a **collapse guard** that stops a method from silently returning a model at chance, and the **guardrail flags**
#   that show a failed run instead of averaging it in;
# - the **benchmark**: every registered method on four scenarios, ten seeds, against the noise floor, with paired
#   tests, and the Pareto fronts of forgetting, utility and privacy;
# - **cost in units that do not depend on the machine** (per-sample passes), and where unlearning stops being
#   cheaper than retraining as the retain set grows;
# - what the defaults of Parts I and II do on a harder dataset, and what the protocol changes there.
#
# The ten-seed tables, the tuned values and the cost curve come from runs committed with the library (`bash
# benchmarks/run_cpu.sh` with `VERDICT=1` writes them; `unlearnlib.records` loads them); the chapter re-runs a
# sample live and checks that it agrees.

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
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

import unlearnlib.config
from unlearnlib import records, scaling, tuning
from unlearnlib.data import load_dataset, make_task
from unlearnlib.experiment import (
    compare_methods,
    decision,
    format_table,
    guardrail_flags,
    start_point,
)
from unlearnlib.methods import REGISTRY, get_method
from unlearnlib.methods._loop import GUARD_MARGIN, GUARD_SIZE
from unlearnlib.metrics import accuracy, evaluate
from unlearnlib.train import TrainConfig, original_model

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
SCENARIOS = {
    "class3": "class-wise, digit 3",
    "random10": "random 10 %",
    "mislabeled10": "flipped labels, 10 %",
    "memorized10": "most memorised 10 %",
}
bench = {name: records.load_bench(f"bench_{name}") for name in SCENARIOS}
METHODS = [m for m in bench["class3"]["config"]["methods"] if m != "retrain"]


CONFLICT_AWARE = [
    "pcgrad", "unilateral_surgery", "implicit_surgery", "unilateral_surgery_rl",
    "implicit_surgery_rl", "orthograd", "ltu", "ltu_ascent", "lur", "masked:ga",
    "masked:neggrad_plus", "masked:random_label",
]


def bench_names(s):
    return bench[s]["summary"].keys()


print(f"{len(METHODS)} methods x {len(SCENARIOS)} scenarios x "
      f"{bench['class3']['config']['seeds']} seeds")

# %% [markdown]
# ## One protocol for every method
#
# A method's result depends on its hyperparameters as much as on its idea, and a reader comparing two methods
# compares two tunings unless both were tuned alike. We fix everything that a tuning can vary, and give every method
# the same:
#
# 1. **Seeds.** Tuning runs on seeds 100 and 101, never on the seeds $0, 1, \dots$ that the tables report, so the
#    chosen values are not fitted to the runs that judge them.
# 2. **Data.** A validation slice $V$ of the retain set (10 %, at most 500 samples) is withheld from the method
#    while it is tuned; the retain accuracy the rule maximises is measured on samples the method never saw.
# 3. **Grid.** Eight candidates each. The learning rate, the one hyperparameter every method has, on a log grid
#    around the method's default: $\times 2^{-4}, \dots, \times 2^{3}$ for a method with no weight of its own;
#    $\times \tfrac14, \tfrac12, 1, 2$ crossed with two values of its own weight for one that has one (NegGrad+'s
#    and PCGrad's retain weight $\beta$, the $\ell_1$ strength, the surgery's constraint level $\varepsilon$, LUR's
#    look-ahead step, the masked add-on's test level $\delta$).
# 4. **Budget.** A candidate stops once it has used as many per-sample passes as retraining from scratch would.
#    Past that point retraining is the cheaper way to the oracle itself, so an unlearning method that needs more
#    has failed at its one purpose.
# 5. **Rule.** Let $a_0$ be the original model's forget accuracy and $a^\star$ the oracle-free target of chapter 02
#    (chance level class-wise, the model's own test accuracy for a random forget set). A candidate whose forget
#    accuracy $a$, averaged over the tuning seeds, satisfies
#
# $$
# a \le a^\star + (1 - \rho)\,(a_0 - a^\star), \qquad \rho = 0.95,
# $$ (eq-12-reach)
#
#    has *reached* the target: it covered 95 % of the way. Among those, the rule takes the highest validation
#    accuracy (the cheaper on a tie); if none reached it, the lowest forget accuracy, and the choice is marked as
#    not reached.
#
# Nothing here uses the oracle: the target, the validation slice and the budget are all available to someone who
# holds the trained model and the data, which is the position of anyone who must unlearn. The rule is short enough
# to write out; here it is from scratch, checked against the library's on the stored tuning of digits.

# %%
def choose(candidates, target, start, reach=0.95):
    """The protocol's rule: the best validation accuracy among candidates that reached
    the forget target {eq}`eq-12-reach`, else the lowest forget accuracy."""
    need = target + (1 - reach) * max(0.0, start - target)
    ok = [c for c in candidates if c["forget_acc"] <= need]
    if ok:
        return max(ok, key=lambda c: (c["val_acc"], -c["passes_vs_retrain"])), True
    return min(candidates, key=lambda c: (c["forget_acc"], -c["val_acc"])), False


tuned = tuning.stored("digits", "class")
for name, entry in tuned["methods"].items():
    mine, reached = choose(
        entry["candidates"], tuned["target_forget_acc"], tuned["start_forget_acc"]
    )
    assert mine["kwargs"] == entry["kwargs"] and reached == entry["reached"], name
print(tuning.format_choices(tuned))

# %% [markdown]
# How far are these from the defaults that Parts I and II used? The table lists every value the protocol changed.

# %%
def default_of(name, key):
    if name.startswith("masked:"):
        base = get_method(name)
        if key == "lr":
            return tuning.default_lr(name)
        return inspect.signature(base).parameters[key].default
    return inspect.signature(REGISTRY[name]).parameters[key].default


changed = {}
for name, entry in tuned["methods"].items():
    diff = {
        k: (default_of(name, k), v)
        for k, v in entry["kwargs"].items()
        if not np.isclose(default_of(name, k), v, rtol=1e-12, atol=0)
    }
    if diff:
        changed[name] = diff
for name, diff in changed.items():
    values = "; ".join(f"{k} {a:.3g} -> {b:.3g}" for k, (a, b) in diff.items())
    print(f"{name:22s}", values)
print(f"{len(changed)} of {len(tuned['methods'])} methods changed at least one value")

# %% [markdown]
# Did the tuning help? Chapter 11 committed ten-seed runs of fifteen of these methods with the defaults of Parts I
# and II, on the same seeds and the same oracles as this chapter's runs (loaded below). A method whose values the
# protocol left alone must give the same gaps, to the last digit, in both: the runs are deterministic on one
# machine, and the guard, which the older runs did not have, must not have changed a run that did not collapse.
# For the others the difference is what the protocol changed.

# %%
old = {s: records.load_bench(f"eval_{s}") for s in SCENARIOS}
effect = {}
for s in SCENARIOS:
    for m in old[s]["summary"]:
        if m in bench_names(s) and m != "retrain":
            effect[s, m] = (
                old[s]["summary"][m]["gap"]["mean"],
                bench[s]["summary"][m]["gap"]["mean"],
            )
print(f"{'method':22s}" + "".join(f"{s:>20s}" for s in SCENARIOS))
for m in dict.fromkeys(m for _, m in effect):
    cells = [
        f"{effect[s, m][0]:6.2f} -> {effect[s, m][1]:6.2f}" if (s, m) in effect else ""
        for s in SCENARIOS
    ]
    print(f"{m:22s}" + "".join(f"{c:>20s}" for c in cells))
for m in old["class3"]["summary"]:
    if m in bench_names("class3") and m not in changed and m != "retrain":
        before, after = effect["class3", m]
        assert before == after, m  # untouched: identical

# %% [markdown]
# In class-wise forgetting the six methods the protocol left alone (GA, $\ell_1$-sparse, PCGrad, both surgeries,
# OrthoGrad) give the same gaps to the last digit, as they must. Of the others, NegGrad+ gains most: with the
# retain weight $\beta = 0.99$ and twice the step its gap halves, and it becomes the method to beat. Three methods
# lose, and the reason is worth knowing: fine-tuning, SCRUB and LTU forget by a threshold effect (fine-tuning
# forgets class 3 only when its step is large enough to wreck the model and learn the retain set again, as the next
# section shows), and the protocol picked, for each, a value whose forget accuracy met the target on average over
# the two tuning seeds but that does not cross the threshold on every reported seed (the `not_forgotten` flags in
# the table below count the seeds where it did not). A rule that averages two
# seeds cannot see how close to a threshold a candidate sits; that is the price of tuning on so few seeds, and the
# reason the chosen values are stored with every candidate.
#
# The other scenarios were tuned separately (one report each). On the most memorised tenth the protocol helps
# most, because the defaults were chosen for class-wise forgetting and the target there is far from chance:
# NegGrad+ goes from 13.4 to 7.5, $\ell_1$-sparse from 10.2 to 3.8, PCGrad from 17.4 to 10.9, implicit surgery
# from 18.6 to 12.0. On random forgetting the changes stay within a floor or two. On flipped labels the rule has
# nothing to work with: the original model predicts the flipped labels of only 8.5 % of $D_f$ (it learns the
# true classes of most of them despite the noise), which is already below the target, chance level. Every
# candidate "reaches" the target from the start and the rule takes the one that moves least: fine-tuning's gap
# grows from 0.11 to 1.2, NegGrad+'s from 1.5 to 2.3. Corrective unlearning needs an oracle-free target other
# than the forget accuracy on the flipped labels; the protocol does not have one.

# %% [markdown]
# The figure shows what the rule saw: every candidate of every method, its forget accuracy against its validation
# accuracy (means over the two tuning seeds), the chosen one circled, and the line {eq}`eq-12-reach` that a
# candidate must be left of.

# %%
fig, axes = plt.subplots(4, 5, figsize=(13, 10), sharex=True, sharey=True)
need = tuned["target_forget_acc"] + 0.05 * (
    tuned["start_forget_acc"] - tuned["target_forget_acc"]
)
for ax, (name, entry) in zip(axes.flat, tuned["methods"].items()):
    fa = [c["forget_acc"] for c in entry["candidates"]]
    va = [c["val_acc"] for c in entry["candidates"]]
    ax.scatter(fa, va, s=14, color="tab:blue")
    ax.scatter(
        [entry["forget_acc"]], [entry["val_acc"]], s=80, facecolors="none",
        edgecolors="tab:red",
    )
    ax.axvline(need, color="grey", ls="--", lw=0.8)
    ax.set_title(name, fontsize=9)
for ax in axes.flat[len(tuned["methods"]):]:
    ax.axis("off")
for ax in axes[-1]:
    ax.set_xlabel("forget acc. (%)")
for ax in axes[:, 0]:
    ax.set_ylabel("validation acc. (%)")
fig.suptitle("digits, class 3: the eight candidates of every method (chosen: circled)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A guard against collapse
#
# A method that pushes the forget loss up can take the whole model with it. On digits the stopping rule of chapter
# 02 catches this in time for most methods; on the harder data at the end of this chapter, three of the registry's
# defaults return models at chance on the retain set, and their forget accuracy is perfect, so the stopping rule
# is satisfied. A benchmark that averages such a run into a mean reports a number, not a failure.
#
# The guard needs no oracle. Before the first step it scores the starting model on a fixed slice $S$ of the retain
# samples the method may use ($|S| = 256$, or all of them for a smaller subset), and it scores the model again every
# pass over the data (at most every 50 steps) and at the end. With $r_0$ the starting accuracy on $S$ and $m$ the
# margin, the model the run returns must satisfy
#
# $$
# \operatorname{acc}_S(\theta_T) \ge r_0 - m, \qquad m = 25 \text{ points};
# $$ (eq-12-guard)
#
# if it does not, the run returns instead the parameters of its last check that held (the starting ones if none
# did) and says so (`guard_stopped`). Two choices in this rule are worth defending.
#
# **The margin.** The accuracy on $S$ is a mean of $|S|$ Bernoulli variables, with standard error at most
# $\sqrt{0.25/256} \approx 3.1$ points. A margin of 25 points is eight standard errors: a healthy run is not stopped
# by the luck of the slice, and a model on its way to chance (10 % on digits) is stopped long before it gets there.
# It also leaves room for the utility that some methods legitimately give up: the oracle itself, retrained without
# the forget set, is not the original model.
#
# **Judging the end, not the path.** The guard checks along the run only to keep a state to fall back to; it judges
# the model the run returns. The reason is fine-tuning with the step size of chapter 02: it does not forget by
# interference, as chapter 02 described it, but by passing through a collapse and learning the retain set again
# (how deep the collapse goes depends on the trained model; on the machine that built this book, close to chance;
# on models trained on other kernels, less deep, but below the guard's line).

# %%
m0 = original_model(data, cfg, seed=0, device=device, progress=False)
task0 = make_task(data, "class", forget_class=FORGET_CLASS, seed=0)
pick = np.random.default_rng(0).permutation(len(task0.retain_idx))[:GUARD_SIZE]
x_s, y_s = task0.x_retain[pick], task0.y_retain[pick]
path = []


def record_slice(model, opt):
    path.append(accuracy(model, x_s, y_s))


ft = get_method("finetune")(
    m0, task0, lr=0.1, guard=None, post_step=record_slice, seed=0
)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(np.arange(1, len(path) + 1), path)
ax.axhline(path[0] - GUARD_MARGIN, color="grey", ls="--", lw=0.8)
ax.set_xlabel("step")
ax.set_ylabel("accuracy on a retain slice (%)")
ax.set_title("fine-tuning, learning rate 0.1 (the default of chapter 02)")
fig.tight_layout()
plt.show()
print(f"lowest {min(path):.1f} %, final {path[-1]:.1f} %")
# Below the guard's line along the way, above it at the end: a guard that judged the
# path would have stopped this run.
line = path[0] - GUARD_MARGIN
assert min(path) < line < path[-1]

# %% [markdown]
# A guard that stopped at the first bad check would have returned the original model here and called fine-tuning
# a failure; judged at the end, the run is left alone. Gradient ascent with a large step and no stopping rule is the
# opposite case: it does not come back.

# %%
kw = dict(lr=0.01, steps=60, stop_at=None, seed=0)
wild = get_method("ga")(m0, task0, guard=None, **kw)
held = get_method("ga")(m0, task0, **kw)
origin = start_point(m0, task0)
for label, model in (("without the guard", wild), ("with the guard", held)):
    row = evaluate(model, task0)
    print(
        f"{label:18s} UA {row['UA']:5.1f}  RA {row['RA']:5.1f}  "
        f"flags {guardrail_flags(row, origin, model)}"
    )
assert accuracy(wild, task0.x_retain, task0.y_retain) < 30
assert held.guard_stopped
kept = accuracy(held, task0.x_retain, task0.y_retain)
assert kept > origin["retain_acc"] - GUARD_MARGIN - 5  # the slice's sampling error

# %% [markdown]
# **Guardrail flags.** The guard is one of three checks that every row of the benchmark now carries, each decided
# without the oracle:
#
# - `guard_stopped`: the guard returned an earlier state {eq}`eq-12-guard`;
# - `collapsed`: the retain accuracy ended more than the margin below the original model's (possible when the guard
#   is switched off, or when the slice missed what the whole retain set shows);
# - `not_forgotten`: the forget accuracy removed less than half of its excess over the target,
#   $a - a^\star > \tfrac12 (a_0 - a^\star)$.
#
# The benchmark counts them per method and prints them under its table. A flagged run stays in the means: it is
# what the method did. The count beside the mean says how often.

# %% [markdown]
# ## Every method, every scenario, ten seeds
#
# The committed runs apply the protocol's values of each scenario (`unlearnlib/tuned/digits-<scenario>.json`; the
# benchmark's default, `--tuned auto`) to every registered method, on the four scenarios of chapter 11, over ten
# seeds, each seed against its own oracle, with the noise floor as the second row and the relearning attack of
# chapter 11 (`relearn_acc`). The tables are long; the figures after them summarise.

# %%
KEYS = ("UA", "RA", "TA", "MIA", "gap", "relearn_acc")
for name, label in SCENARIOS.items():
    rep = bench[name]
    cfg_s = rep["config"]
    print(f"=== {label}: {cfg_s['seeds']} seeds, values {cfg_s['tuned']}")
    print(format_table(rep["summary"], rep["reference"], keys=KEYS, floor=rep["floor"]))
    flagged = {m: f for m, f in rep["flags"].items() if m != "retrain"}
    shown = [
        f"{m} " + ", ".join(f"{k} {n}" for k, n in f.items())
        for m, f in flagged.items()
    ]
    print("flags:", "; ".join(shown) or "none")
    print()

# %% [markdown]
# **In floors.** The Avg. Gap of a method means little without the distance between two retrainings of the same
# task, which differs by a factor of twenty between scenarios (chapter 11). The heat map divides each method's mean
# gap by its scenario's floor: 1 is as close to the oracle as a second retraining; a star marks a paired difference
# from the tuned NegGrad+ that survives Holm's correction over the table (chapter 11), green where the method is
# closer to the oracle, red where it is farther.

# %%
def in_floors(rep, method):
    return rep["summary"][method]["gap"]["mean"] / rep["floor"]["gap"]["mean"]


def versus(rep, method, baseline="neggrad_plus"):
    return decision(rep["paired"], method, baseline)


grid_f = np.array([[in_floors(bench[s], m) for s in SCENARIOS] for m in METHODS])
fig, ax = plt.subplots(figsize=(7, 8))
im = ax.imshow(np.log10(grid_f), cmap="viridis", aspect="auto")
for i, m in enumerate(METHODS):
    for j, s in enumerate(SCENARIOS):
        v = versus(bench[s], m)
        ax.text(
            j, i, f"{grid_f[i, j]:.1f}" + ("*" if v else ""), ha="center", va="center",
            fontsize=8,
            color={-1: "lime", 1: "red", 0: "white"}[v],
        )
ax.set_xticks(range(len(SCENARIOS)), list(SCENARIOS.values()), rotation=20)
ax.set_yticks(range(len(METHODS)), METHODS)
fig.colorbar(im, ax=ax, label="log10(mean gap / noise floor)")
ax.set_title("distance to the oracle, in noise floors (* Holm p < 0.05 vs NegGrad+)")
fig.tight_layout()
plt.show()

wins = {
    s: {m: versus(bench[s], m) for m in METHODS if m != "neggrad_plus"}
    for s in SCENARIOS
}
for s in SCENARIOS:
    closer = [m for m, v in wins[s].items() if v < 0]
    # the claim of the text below: nothing conflict-aware is decidedly closer
    assert not set(closer) & set(CONFLICT_AWARE), (s, closer)
    farther = sum(v > 0 for v in wins[s].values())
    print(f"{SCENARIOS[s]:22s} closer than NegGrad+: {closer or 'none'}; "
          f"farther: {farther}")

# %% [markdown]
# With every method tuned alike, the tuned NegGrad+ is the method to beat, and in none of the four scenarios does a
# conflict-aware method beat it decidedly. Five of the twelve are decidedly farther from the oracle in class-wise
# forgetting, three in random forgetting, eight on flipped labels and four on the memorised set; the rest are
# undecided over ten seeds. Masked NegGrad+ comes within 1.2 floors of the oracle in class-wise forgetting against
# NegGrad+'s 3.1, and PCGrad and OrthoGrad within 1.3 in random forgetting against 2.1, but none of these
# differences survives the correction. The only methods decidedly closer than NegGrad+ anywhere are fine-tuning,
# SCRUB and $\ell_1$-sparse on flipped labels: they train on the clean retain set, which is what corrective
# unlearning needs, and $\ell_1$-sparse lands within the floor there. On the memorised set the closest methods
# (the classification-setting implicit surgery, $\ell_1$-sparse, LTU, at about two floors against NegGrad+'s 3.7)
# are not decidedly closer either: the best of them differs from NegGrad+ by 3.8 points of gap with a
# Holm-adjusted $p$ of 0.07.

# %% [markdown]
# ## Forgetting, utility, privacy: the Pareto fronts
#
# The Avg. Gap averages four distances into one number, and so hides trade-offs: a method may forget like the
# oracle and lose utility, or keep utility and leak membership. We separate three, each a mean over seeds of the
# per-seed distance to that seed's oracle: **forgetting** $|\mathrm{UA} - \mathrm{UA}_{rt}|$, **utility**
# $|\mathrm{TA} - \mathrm{TA}_{rt}|$ and **privacy** $|\mathrm{MIA} - \mathrm{MIA}_{rt}|$. A method is on the Pareto
# front when no other method is at least as close to the oracle on all three and closer on one.

# %%
def distances(rep, method):
    ref = {r["seed"]: r for r in rep["reference_per_seed"]}
    rows = [r for r in rep["results"] if r["method"] == method]
    return np.array([
        np.mean([abs(r[k] - ref[r["seed"]][k]) for r in rows])
        for k in ("UA", "TA", "MIA")
    ])


def pareto(points):
    """Indices of the rows of `points` (lower is better in every column) that no other
    row dominates."""
    points = np.asarray(points, dtype=float)
    keep = []
    for i, p in enumerate(points):
        dominated = np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))
        if not dominated:
            keep.append(i)
    return keep


fronts = {}
fig, axes = plt.subplots(1, 4, figsize=(15, 4))
for ax, (s, label) in zip(axes, SCENARIOS.items()):
    pts = np.array([distances(bench[s], m) for m in METHODS])
    front = pareto(pts)
    fronts[s] = [METHODS[i] for i in front]
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=pts[:, 2], cmap="plasma", s=30)
    for i in front:
        ax.annotate(METHODS[i], pts[i, :2], fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_yscale("symlog", linthresh=0.5)
    ax.set_xlabel("|UA - UA oracle|")
    ax.set_title(label, fontsize=10)
    fig.colorbar(sc, ax=ax, label="|MIA - MIA oracle|")
axes[0].set_ylabel("|TA - TA oracle|")
fig.suptitle("distance to the oracle on forgetting, utility and privacy (front: named)")
fig.tight_layout()
plt.show()
for s, names in fronts.items():
    print(f"{SCENARIOS[s]:22s} Pareto front: {', '.join(names)}")

# %% [markdown]
# The fronts are short and they move. In class-wise forgetting only the two masked methods are on it; in random
# forgetting NegGrad+, $\ell_1$-sparse, PCGrad, unilateral surgery and OrthoGrad; on flipped labels $\ell_1$-sparse
# alone, which is closest on all three counts; on the memorised set seven methods, none of them NegGrad+, each
# trading a little forgetting for a little utility. No method is on the front of every scenario.

# %% [markdown]
# ## What it costs, next to retraining
#
# Wall-clock time depends on the machine, the kernels and whatever else is running; the number of samples pushed
# through the model does not. Every row counts its **per-sample passes** (one sample forward once, or one sample's
# loss backward once; chapter 01 and `unlearnlib.cost` state the conventions) and divides them by retraining's,
# $2 \cdot E \cdot |D_r| + 1$ for $E$ epochs. The checks of the stopping rule and of the guard are part of a method's
# cost; an evaluation only for a plot is not.

# %%
def mean_of(rep, method, key):
    vals = [
        r[key] for r in rep["results"]
        if r["method"] == method and r.get(key) is not None
    ]
    return float(np.mean(vals)) if vals else float("nan")


header = "".join(f"{s:>14s}" for s in SCENARIOS)
print(f"{'method':22s}{header}   time/retrain (class3)")
retrain_time = mean_of(bench["class3"], "retrain", "time_s")
ratios = {}
for m in METHODS:
    ratios[m] = [mean_of(bench[s], m, "passes_vs_retrain") for s in SCENARIOS]
    t = mean_of(bench["class3"], m, "time_s") / retrain_time
    print(f"{m:22s}" + "".join(f"{v:14.2f}" for v in ratios[m]) + f"{t:14.2f}")

# %% [markdown]
# On digits every method costs less than retraining, and most a third of it or less; none reaches a tenth in
# every scenario. The forget-driven methods with a stopping rule are the cheapest when the rule fires early (random
# labels, SalUn, LTU, GA on flipped labels); the methods that keep a per-step retain test or probe (masked GA,
# implicit surgery) come close to retraining in random forgetting and on the memorised set, where their stopping
# rule fires late or never. The per-run counts include the checks of the stopping rule and of the guard: with a
# forget set of 140 samples, gradient ascent spends more passes checking whether it may stop than stepping.

# %% [markdown]
# Per step, the methods differ more than per run: a step of OrthoGrad computes per-sample gradients, a step of LUR
# differentiates through a look-ahead. The step-cost benchmark of the library (`python -m unlearnlib.bench
# --step-cost`) times one step of each against one step of gradient ascent on the same batches (the committed CPU
# run; `bash benchmarks/run_gpu.sh` measures the same on a GPU).

# %%
step = records.load_result("step_cost_cnn_b32")
print(f"{step['device']}, {step['model']}, batch {step['batch_size']}: "
      f"one GA step {step['ga_step_ms']:.2f} ms")
for m, r in sorted(step["ratio"].items(), key=lambda kv: kv[1]):
    print(f"  {m:22s} {r:5.2f} x GA step   ({step['route'].get(m, '')})")

# %% [markdown]
# **As the retain set grows.** Retraining costs $2E|D_r|$ passes. A method that runs over the forget set (gradient
# ascent, the surgeries, OrthoGrad, LUR, masked GA) pays for its steps over $D_f$ and for the checks of its stopping
# rule, none of which grows with $D_r$: its ratio to retraining falls like $1/|D_r|$. A method that runs over the
# retain set (fine-tuning, NegGrad+, PCGrad, $\ell_1$-sparse) pays about two passes per retain sample and epoch, a
# fixed share of retraining's whatever the size: the epochs it runs over $E$ (a fifteenth for NegGrad+ stopped after
# one pass, a third for the ten epochs of fine-tuning). The committed curve measures this on the stress set of the
# next section: the same forget set at every size (all 822 training images of digit 3), the retain set growing
# through nested subsets from 500 images to all 7,260 of the other classes, two seeds, with the guard on.

# %%
curve = records.load_result("cost_curve")
print("hyperparameters:", curve["config"]["hyperparameters"])
fig = scaling.plot_cost_curve(curve)
plt.show()
print(scaling.curve_table(curve))
ratio = scaling.curve_means(curve, "passes_vs_retrain")
grow = {m: r[-1] / r[0] for m, (n, r) in ratio.items()}
print({m: round(v, 3) for m, v in grow.items()})
# forget-driven: the ratio falls with |D_r|; retain-driven (all epochs): it stays put
assert grow["orthograd"] < 0.2 and grow["ga"] < 0.2
assert 0.7 < grow["l1_sparse"] < 1.3

# %% [markdown]
# The curve bears out the counting argument. With 500 retain images, fewer than the 822 to forget, retraining is
# cheap and the forget-driven methods cost more than it (GA 1.5 times, OrthoGrad 3.8, implicit surgery, whose
# stopping rule evaluates all of $D_f$ after every step, more than ten); from 1,000 retain images on, every method is
# below break-even, and at the full 7,260 the forget-driven methods use 2 to 12 % of retraining's passes while
# fine-tuning and $\ell_1$-sparse stay at 36 %. Cheap is not the same as done: at 2,000 and 4,000 images GA and
# implicit surgery end guard-stopped with the class not forgotten (the rings). At the full size fine-tuning,
# $\ell_1$-sparse, NegGrad+, OrthoGrad and masked GA end within about two points of the oracle for 2 to 36 % of
# its cost. The passes of the tuning itself (eight candidates per method) are not in these counts: a protocol run
# costs several unlearning runs, paid once per setting. Times are printed for completeness; the retraining time is
# the one recorded when the cached model was trained, under another load, so the passes are the measure.

# %% [markdown]
# ## A harder dataset: what the defaults do, and what the protocol changes
#
# Digits are easy: eight by eight pixels, a small network that fits them in seconds, a retain set the model
# classifies perfectly. The library's `digits-stress` (chapter 01) draws every digit six times at 28×28 under a
# random elastic distortion, a small affine jitter and pixel noise: about 8,000 training images that the same
# network learns far less cleanly (the oracle's test accuracy is below 95 %), made on the machine, no download.
# Two committed runs on class-wise forgetting of digit 3, two seeds each: the registry's defaults (the values Parts
# I and II use) with the guard switched off, to show what it prevents (`--tuned none --guard none`), and the values
# the protocol chose on this dataset, with the guard (one tuning seed: each model takes a minute to train on a
# laptop core).

# %%
stress_default = records.load_bench("stress_class3_defaults")
stress_tuned = records.load_bench("bench_stress_class3")
print(f"{'method':22s}{'defaults: RA':>14s}{'gap':>7s}   "
      f"{'tuned: RA':>10s}{'gap':>7s}  flags (tuned)")
stress_rows = {}
for m in [m for m in stress_tuned["config"]["methods"] if m != "retrain"]:
    d, t = stress_default["summary"][m], stress_tuned["summary"][m]
    stress_rows[m] = (
        d["RA"]["mean"], d["gap"]["mean"], t["RA"]["mean"], t["gap"]["mean"]
    )
    ra_d, gap_d, ra_t, gap_t = stress_rows[m]
    print(f"{m:22s}{ra_d:14.1f}{gap_d:7.1f}   {ra_t:10.1f}{gap_t:7.1f}  "
          f"{stress_tuned['flags'].get(m, {})}")
chance = 100 / 10
at_chance_default = [m for m, v in stress_rows.items() if v[0] < chance + 5]
at_chance_tuned = [m for m, v in stress_rows.items() if v[2] < chance + 5]
print("at chance on D_r with the defaults:", at_chance_default)
print("at chance with the tuned values:", at_chance_tuned or "none")
assert sorted(at_chance_default) == ["implicit_surgery", "lur", "pcgrad"]
assert not at_chance_tuned
assert stress_rows["neggrad_plus"][3] < stress_rows["neggrad_plus"][1] / 3
# No tuned run is silently at chance: any row near chance carries a flag.
for r in stress_tuned["results"]:
    if r["method"] != "retrain" and r["RA"] < chance + 5:
        assert r["flags"], r

# %% [markdown]
# Without the guard, the registry's defaults leave PCGrad, implicit surgery and LUR at chance on the retain set on
# both seeds, with a perfect forget accuracy: the stopping rule is satisfied by a model that predicts nothing. The
# protocol, run on this dataset, fixes most of it. NegGrad+ goes from a gap of 10.2 to 1.4; no tuned method is at
# chance; implicit surgery found no candidate that reached the target without collapsing, and its guard returned
# a state close to the original model on both seeds, flagged `guard_stopped` and `not_forgotten` rather than
# averaged in as a success. With the tuned values the closest methods to the oracle are $\ell_1$-sparse (0.4) and
# fine-tuning (0.5), then LTU, masked NegGrad+, OrthoGrad and NegGrad+ (0.9 to 1.4); two seeds separate none of
# these.

# %% [markdown]
# ## Does the committed run reproduce?
#
# The tables above were computed on one machine. What a re-run should match depends on where it starts. On the same
# kernels it starts from the same trained models, the original model and the oracle of each seed (the run below
# checks them by their metrics, the continuous MIA AUC included), and each row should then land no farther from the
# committed one than one retraining lands from another (chapter 11's floor). On other kernels (another CPU's
# oneDNN, oneDNN switched off, a GPU) the trained models differ in their last bits, thirty epochs of training
# amplify the difference, and the re-run is a new draw of each seed: it can be compared with the committed run only
# over seeds, as a distribution. We re-run two methods at their tuned values on two seeds.

# %%
sample = ["neggrad_plus", "orthograd"]
variants = {m: (m, tuning.tuned_kwargs(m, "digits", "class")) for m in sample}
live = compare_methods(
    {"original": None, **variants}, "class", data=data, cfg=cfg, seeds=SEEDS[:2],
    forget_class=FORGET_CLASS, device=device, floor=False,
)
print(live.table(keys=("UA", "RA", "TA", "MIA", "gap")))
originals = [r for r in live.rows if r["method"] == "original"]
same = records.same_models(bench["class3"], originals, live.references)
rerun = [r for r in live.rows if r["method"] in sample]
check = records.reproduces(bench["class3"], rerun)
print(f"started from the committed run's models: {same}")
print(
    f"largest difference from the committed gap: {check['max_diff']:.3f} "
    f"(tolerance, the largest per-seed floor: {check['bound']:.3f})"
)
# From the same models, every row within the floor; from other models, a new draw.
assert check["ok"] or not same

# %% [markdown]
# The same two methods again, from the same models, with oneDNN's kernels switched off for the unlearning runs
# (`torch.backends.mkldnn.flags`): the kernel family changes, the starting point does not.

# %%
with torch.backends.mkldnn.flags(enabled=False):
    live_off = compare_methods(
        variants, "class", data=data, cfg=cfg, seeds=SEEDS[:2],
        forget_class=FORGET_CLASS, device=device, floor=False, progress=False,
    )
check_off = records.reproduces(bench["class3"], live_off.rows)
print(
    f"oneDNN off around the unlearning: largest difference {check_off['max_diff']:.3f} "
    f"(tolerance {check_off['bound']:.3f})"
)
assert check_off["ok"] or not same

# %% [markdown]
# ### On another kernel family
#
# A reader on another CPU starts from other models. How far does that move the verdicts? We ran the whole
# class-wise benchmark again (ten seeds, every method at its tuned values, the same command) with oneDNN switched
# off *before* training, so that every original model and every oracle was trained afresh on the other kernels
# (`UNLEARN_ONEDNN=0`; the run is committed as `bench_class3_onednn_off`).

# %%
off = records.load_bench("bench_class3_onednn_off")
methods = [m for m in bench["class3"]["config"]["methods"] if m != "retrain"]
v_on, v_off = (records.verdicts(r, methods) for r in (bench["class3"], off))
pairs = [(m, b) for m in methods for b in ("ga", "neggrad_plus") if m != b]
agree = [(m, b) for m, b in pairs if v_on[m][b] == v_off[m][b]]
opposite = [(m, b) for m, b in pairs if v_on[m][b] * v_off[m][b] < 0]
print(f"{'method':22s}{'gap, committed':>18s}{'gap, oneDNN off':>18s}")
for m in methods:
    on_s, off_s = bench["class3"]["summary"][m]["gap"], off["summary"][m]["gap"]
    print(f"{m:22s}{on_s['mean']:9.2f} ± {on_s['ci95']:5.2f}"
          f"{off_s['mean']:11.2f} ± {off_s['ci95']:5.2f}")
print(f"Holm decisions that agree: {len(agree)} of {len(pairs)}; "
      f"opposite: {len(opposite)}")
ngp_off = records.per_seed(off, "neggrad_plus")
print("NegGrad+ per seed, oneDNN off:", np.round(ngp_off, 2))
print("flags, oneDNN off:")
for m, f in off["flags"].items():
    print(f"  {m:22s}{f}")
# No decision turns around, and under neither kernel family is any method decidedly
# closer to the oracle than NegGrad+.
assert not opposite and len(pairs) - len(agree) == 11
assert all(v[m]["neggrad_plus"] >= 0 for v in (v_on, v_off) for m in methods)

# %% [markdown]
# From the same models the unlearning runs do not depend on the kernels: with oneDNN off they repeat the committed
# rows within the floor (on the machine that wrote this book, exactly). All of the difference comes from training.
# On freshly trained models most verdicts hold and none turns around: under either kernel family no method is
# decidedly closer to the oracle than NegGrad+. But eleven of the thirty-six decisions become undecided, and the
# reason is one run: retrained on the other kernels, NegGrad+ at its tuned values (a forget weight of
# $1 - \beta = 0.01$) does not forget digit 3 on seed 0 within its budget and ends 19.7 points of gap from the
# oracle, which widens its interval enough to undo every decision "decidedly farther than NegGrad+". The guardrail
# flags report that run (`not_forgotten`) without the oracle, as a user would see it. Stopping rules make the
# outcome of a run a discontinuous function of the model it starts from (chapter 02), so a verdict that rests on
# every seed of one method reaching its target is fragile; the two runs together are better evidence than either.

# %% [markdown]
# ## Summary
#
# - **One protocol for every method** {eq}`eq-12-reach`: eight candidates around each default, a budget of
#   retraining's passes, tuning seeds that are never reported, a validation slice withheld from the method, and a
#   rule that never looks at the oracle. In class-wise forgetting it changed the values of 13 of the 19 methods.
#   NegGrad+ gained most (gap 0.73 to 0.38) and became the method to beat; fine-tuning, SCRUB and LTU lost,
#   because two tuning seeds cannot see how close to a threshold their forgetting sits; on flipped labels the rule
#   has nothing to select on, since the original model already predicts fewer flipped labels than chance.
# - **The collapse guard** {eq}`eq-12-guard` judges the model a run returns, not its path: fine-tuning with a large
#   step passes through a collapse and recovers, gradient ascent with a large step does not and is returned at its
#   last good state. Every row carries oracle-free flags (`guard_stopped`, `collapsed`, `not_forgotten`), counted
#   beside the means instead of averaged into them.
# - **The benchmark**, every method on four scenarios over ten seeds: no conflict-aware method is decidedly closer
#   to the oracle than the tuned NegGrad+ in any scenario, and five, three, eight and four of the twelve are
#   decidedly farther (class-wise, random, flipped labels, memorised). Fine-tuning, SCRUB and $\ell_1$-sparse,
#   which train on the clean retain set, are decidedly closer on flipped labels. The Pareto fronts of forgetting,
#   utility and privacy are short and change with the scenario.
# - **Cost**: on digits every method is cheaper than retraining, most by a factor of three or more, none by a
#   factor of ten in every scenario. Methods that run over the forget set get cheaper relative to retraining as the
#   retain set grows; methods that run over the retain set cost a fixed share of it.
# - **The stress set**: the registry's defaults collapse three methods to chance on 28×28 distorted digits; the
#   protocol, run there, leaves no method silently at chance (the one it could not fix, implicit surgery, is flagged
#   on both seeds), and the tuned NegGrad+ lands next to OrthoGrad and masked NegGrad+, behind $\ell_1$-sparse and
#   fine-tuning.
# - **Reproduction.** From the same trained models a re-run repeats the committed rows, with oneDNN on or off.
#   Models trained on another kernel family are a new draw: re-run there, the class-wise benchmark keeps 25 of its
#   36 decisions and turns none around, but the "decidedly farther than NegGrad+" ones become undecided, because
#   NegGrad+ misses its target on one seed (flagged, oracle-free).

# %% [markdown]
# ## Exercises
#
# The exercises practise the protocol, the guard and the reading of a benchmark. The two graded exercises come with
# tests.

# %% tags=["exercise-setup"]
import numpy as np

from unlearnlib import tuning as ex_tuning

# Five candidates of one method over three tuning seeds: forget and validation accuracy
# in %, and the passes each used (relative to retraining).
ex_forget = np.array([
    [60.0, 70.0, 65.0],
    [12.0, 9.0, 12.0],
    [8.0, 10.0, 9.0],
    [2.0, 1.0, 3.0],
    [30.0, 2.0, 4.0],
])
ex_val = np.array([
    [99.0, 99.0, 98.0],
    [96.0, 97.0, 95.0],
    [96.0, 96.0, 96.0],
    [80.0, 85.0, 82.0],
    [99.0, 95.0, 97.0],
])
ex_passes = np.array([0.9, 0.4, 0.3, 0.2, 0.5])

# %% [markdown]
# ```{exercise} The protocol's choice over seeds
# :label: ex-12-select-index
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `select_index(forget, val, passes, target, start, reach=0.95)` that applies the rule of the protocol to
# candidates measured on several tuning seeds: `forget` and `val` are arrays of shape `[K, S]` (K candidates, S
# seeds), `passes` has shape `[K]`. Average over the seeds, keep the candidates that satisfy {eq}`eq-12-reach`,
# return the index of the one with the highest mean validation accuracy (the fewer passes on a tie) and `True`;
# when none satisfies it, the index of the lowest mean forget accuracy (the higher validation accuracy on a tie)
# and `False`.
# ```


# %% tags=["remove-cell", "graded"]
def select_index(forget, val, passes, target, start, reach=0.95):
    """The protocol's choice: (index of the chosen candidate, whether it reached).

    forget, val: arrays [K, S] of accuracies in % (K candidates, S tuning seeds);
    passes: array [K]; target, start: forget accuracies in % (the oracle-free target and
    the original model's); reach: the share of the way from start to target to cover.
    """
    # BEGIN SOLUTION
    f = np.asarray(forget, dtype=float).mean(axis=1)
    v = np.asarray(val, dtype=float).mean(axis=1)
    c = np.asarray(passes, dtype=float)
    need = target + (1 - reach) * max(0.0, start - target)
    ok = np.flatnonzero(f <= need)
    if len(ok):
        best = max(ok, key=lambda i: (v[i], -c[i]))
        return int(best), True
    return int(min(range(len(f)), key=lambda i: (f[i], -v[i]))), False
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Means over seeds: forget 65, 11, 9, 2, 12; need 10 + 0.05 * 90 = 14.5. Candidates
# 1, 2, 3 and 4 reach; the best mean validation accuracy among them is candidate 4.
ex_i, ex_ok = select_index(ex_forget, ex_val, ex_passes, 10.0, 100.0)
assert (ex_i, ex_ok) == (4, True), (ex_i, ex_ok)

# %% tags=["remove-cell", "graded-test", "hidden"]
# A stricter reach (forget <= 10.9): only candidates 2 and 3; 2 has the higher
# validation accuracy. Against the library's rule on the same means.
ex_i, ex_ok = select_index(ex_forget, ex_val, ex_passes, 10.0, 100.0, reach=0.99)
assert (ex_i, ex_ok) == (2, True), (ex_i, ex_ok)
ex_c = [{"kwargs": {"k": k}, "forget_acc": float(ex_forget[k].mean()),
         "val_acc": float(ex_val[k].mean()), "passes_vs_retrain": float(ex_passes[k]),
         "guard_stopped": 0} for k in range(5)]
assert ex_tuning.select(ex_c, 10.0, 100.0)["kwargs"] == {"k": 4}

# %% tags=["remove-cell", "graded-test", "hidden"]
# Nobody reaches a target of 0 with start 100 and reach 0.99 (need 1): the lowest mean
# forget accuracy (candidate 3, 2 %) is returned, marked as not reached. A tie on
# validation accuracy goes to the fewer passes.
ex_i, ex_ok = select_index(ex_forget, ex_val, ex_passes, 0.0, 100.0, reach=0.99)
assert (ex_i, ex_ok) == (3, False), (ex_i, ex_ok)
ex_i, ex_ok = select_index(
    np.array([[5.0, 5.0], [5.0, 5.0]]), np.array([[90.0, 90.0], [90.0, 90.0]]),
    np.array([0.7, 0.2]), 10.0, 100.0,
)
assert (ex_i, ex_ok) == (1, True), (ex_i, ex_ok)

# %% [markdown]
# ```{exercise} What the guard returns
# :label: ex-12-guard-return
#
# *code · graded, 3 points · about 1 CPU minute*
#
# The guard {eq}`eq-12-guard` scores the retain slice at the start ($r_0$), at a series of checks along the run,
# and at the end. Write `guard_return(r0, checks, margin=25.0)`, where `checks` is the list of slice accuracies of
# the checks in order, the last one being the end of the run. Return `len(checks) - 1` when the end holds (the run's
# own model is returned); otherwise the index of the last earlier check that held; `-1` (the starting state) when
# none did. A check *holds* when its accuracy is at least $r_0 - m$.
# ```


# %% tags=["remove-cell", "graded"]
def guard_return(r0, checks, margin=25.0):
    """Index of the state the guarded run returns (-1: the starting state).

    r0: the starting accuracy on the slice (%); checks: the slice accuracies of the
    checks in order, the last one at the end of the run; margin: in points.
    """
    # BEGIN SOLUTION
    floor = r0 - margin
    if checks[-1] >= floor:
        return len(checks) - 1
    held = [i for i, a in enumerate(checks[:-1]) if a >= floor]
    return held[-1] if held else -1
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Fine-tuning's path: a dip below 75 and back. The end holds: the run's own model.
assert guard_return(100.0, [98.0, 30.0, 20.0, 60.0, 99.0]) == 4

# %% tags=["remove-cell", "graded-test", "hidden"]
# A collapse that does not recover: the last check that held (index 1), not the first
# failure, not the first check; exactly at the floor (75) still holds.
assert guard_return(100.0, [90.0, 75.0, 40.0, 60.0, 12.0]) == 1
assert guard_return(100.0, [76.0, 80.0, 74.9, 11.0]) == 1

# %% tags=["remove-cell", "graded-test", "hidden"]
# No check held: the starting state. Another margin and start.
assert guard_return(80.0, [40.0, 30.0, 20.0]) == -1
assert guard_return(80.0, [75.0, 69.0, 68.0], margin=10.0) == 0

# %% [markdown]
# ```{exercise} How often does the guard stop a healthy run?
# :label: ex-12-false-stop
#
# *derivation · no computing*
#
# A run whose model has true accuracy $p$ on the retain data the slice is drawn from is stopped when its accuracy
# on the slice of $n$ samples falls below $r_0 - m$. Treat $r_0$ as fixed and the slice as $n$ independent draws.
# Bound the probability of a false stop for a run with $p = r_0 - m + \delta$, $\delta > 0$, with Hoeffding's
# inequality, and evaluate it for $n = 256$ and $\delta = 10$ points.
# ```

# %% [markdown]
# ```{solution-start} ex-12-false-stop
# :class: dropdown
# ```
# The slice accuracy $\hat p$ is a mean of $n$ variables in $[0, 1]$ with mean $p$. Hoeffding's inequality gives
# $P(\hat p \le p - t) \le \exp(-2 n t^2)$. A false stop needs $\hat p < r_0 - m = p - \delta$, so its probability is
# at most $\exp(-2 n \delta^2)$ with $\delta$ as a fraction. For $n = 256$ and $\delta = 0.10$:
# $\exp(-5.12) \approx 0.006$; for $\delta = 0.15$, $\exp(-11.5) \approx 10^{-5}$. The bound ignores that $r_0$ is
# itself measured on the same slice, which makes the two estimates positively correlated and the true rate lower.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Why retraining's passes?
# :label: ex-12-budget
#
# *concept · no computing*
#
# The protocol stops every candidate after as many per-sample passes as retraining would use. Explain why a larger
# budget would favour some methods over others, and what a budget of a tenth of retraining would do to the methods
# that run over the retain set (fine-tuning, NegGrad+, PCGrad) compared with those that run over the forget set.
# ```

# %% [markdown]
# ```{solution-start} ex-12-budget
# :class: dropdown
# ```
# A method that needs more passes than retraining is dominated by retraining, which reaches the oracle itself: any
# budget above it rewards methods for being slow, and the ones with expensive steps (per-sample gradients,
# look-ahead) would gain candidates whose only merit is to have run longer. A budget of a tenth would cut the
# retain-driven methods, whose epochs are passes over $D_r$ (each of their steps also costs a retain batch), to a
# fraction of an epoch of the retain set on digits; the forget-driven methods, which pay for $|D_f|$ and their
# checks, would mostly be untouched. The tables would then compare a truncated NegGrad+ with complete runs of
# gradient ascent: a statement about the budget, not the methods. That is why the choice of budget is itself a
# claim, and the one defended here is the break-even with retraining.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects
#
# ```{exercise} The protocol on other seeds
# :label: ex-12-other-seeds
#
# *project · about 20 CPU minutes*
#
# Run the protocol on digits, class-wise, with tuning seeds 102 and 103 (`unlearnlib.tuning.tune(..., seeds=[102,
# 103])`) for NegGrad+, PCGrad, OrthoGrad and masked GA. Which chosen values change? Re-run the benchmark of those
# four methods on seeds 0–9 with each set of values and compare the gaps with paired tests: is the protocol's
# choice stable enough that the benchmark's ordering does not depend on the tuning seeds?
# ```

# %% [markdown]
# ```{solution-start} ex-12-other-seeds
# :class: dropdown
# ```
# A sketch. Values near a boundary of the grid (a learning rate at the edge, a candidate just inside the reach)
# are the likeliest to move; write the two tuning reports with `--out` and compare their `kwargs`. For the
# benchmark, pass each report with `--tuned FILE` and compare the per-seed gaps of each method under the two
# reports with `unlearnlib.experiment.paired_difference`.

# %% tags=["skip-execution"]
other = tuning.tune(
    ["neggrad_plus", "pcgrad", "orthograd", "masked:ga"], "class", data=data, cfg=cfg,
    forget_class=FORGET_CLASS, seeds=[102, 103], device=device,
)
for m, e in other["methods"].items():
    print(m, e["kwargs"], tuned["methods"][m]["kwargs"])

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Your own task
# :label: ex-12-own-task
#
# *project · about 60 CPU minutes*
#
# Pick a dataset the benchmark accepts (an `.npz` of your own, or MNIST with `--download` on a machine that may
# download), run `python -m unlearnlib.bench --tune` on it for five methods of your choice, then the benchmark with
# `--tuned` and three seeds. Which guardrail flags appear with the registry's defaults (`--tuned none`), and which
# with the tuned values?
# ```

# %% [markdown]
# ```{solution-start} ex-12-own-task
# :class: dropdown
# ```
# A sketch: `python -m unlearnlib.bench --tune --dataset mnist --download --scenario class --forget-class 3
# --methods ga,neggrad_plus,pcgrad,orthograd,masked:ga --out tuned.json`, then the same options without `--tune`,
# with `--tuned tuned.json --seeds 3 --out bench.json`, and once more with `--tuned none`. Compare the `"flags"`
# blocks of the two JSON files. On data harder than digits, expect the defaults to raise `guard_stopped` for the
# methods whose step is too large for the new task, and the tuned values to remove most of them.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. Why does the protocol tune on seeds 100 and 101 rather than on the seeds the tables report?
# 2. A candidate reaches a forget accuracy of 14 % in class-wise forgetting of digits (ten classes, original model
#    100 %). Does it satisfy {eq}`eq-12-reach` with $\rho = 0.95$? With $\rho = 0.99$?
# 3. Fine-tuning with a large step passes through a collapse and recovers. What does a guard that stops at the
#    first failed check return, and what does the book's guard return?
# 4. A method's mean gap is 0.4 points in class-wise forgetting and 1.5 in random forgetting. Which is the better
#    result, given floors of 0.1 and 0.8?
# 5. A method runs over the retain set for five epochs, with a forget batch beside each retain batch, against
#    thirty epochs of retraining. Roughly what fraction of retraining's passes does it use, whatever the size of
#    $D_r$?

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. So that the chosen values are not fitted to the runs that judge them: a value picked on the
# reported seeds would carry their luck into the table. 2. The need is $10 + 0.05 \cdot 90 = 14.5$ %: yes; with
# $\rho = 0.99$ the need is $10.9$ %: no. 3. The first: the starting state (the run stopped at its first failed
# check, with nothing held since); the book's: the run's own final model, since the end holds. 4. In floors: 4 and
# about 1.9; the random-forgetting result is the closer to a second retraining, although its gap is larger.
# 5. Each step pushes a retain and a forget batch forward and backward, so per epoch of $D_r$ it costs about twice
# an epoch of training: $2 \cdot 5 / 30 \approx 0.33$ of retraining, independent of $|D_r|$.
