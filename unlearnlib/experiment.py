"""Methods side by side over several seeds: the experiment every chapter runs (chapter 02).

For each seed: draw the forget set, take the cached original model θ0 and the same seed's retrain oracle, run
every variant from θ0, and evaluate it against that oracle. :func:`compare_methods` returns a
:class:`Comparison`, which holds one row per (variant, seed) and the oracle's metrics per seed, and gives the
summary (mean, standard deviation, 95 % CI over seeds), per-seed arrays, a text table and a bar chart. The
benchmark command (:mod:`unlearnlib.bench`) runs the same function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm  # text bars: they work in terminals, notebooks and the built book alike

from unlearnlib import cost
from unlearnlib.config import get_device, get_profile, synchronize
from unlearnlib.data import Dataset, UnlearningTask, load_dataset, make_task
from unlearnlib.errors import UnlearnError
from unlearnlib.methods import get_method
from unlearnlib.metrics import GAP_METRICS, avg_gap, evaluate
from unlearnlib.relearn import relearn_curve
from unlearnlib.train import TrainConfig, original_model, retrained_model

#: the row keys of the per-example audits of chapter 11 (``python -m unlearnlib.bench --audit``).
AUDIT_KEYS = ("ulira_auc", "ulira_tpr_at_1pct_fpr", "competition_score", "relearn_acc")
#: the metrics a summary reports, in table order (``MIA_AUC`` is the loss-based attack of chapter 01;
#: ``true_label_acc`` exists in the mislabeled scenario, the audit keys when audits ran).
REPORTED = ("UA", "RA", "TA", "MIA", "gap", "time_s", "MIA_AUC", "true_label_acc", *AUDIT_KEYS)
#: decimals of a key in the text tables: one for percentages; the competition's score lies in [0, 1].
DECIMALS = {"competition_score": 3}
#: the keys that paired comparisons and the floor cover, those of them that the rows have.
COMPARED = (*GAP_METRICS, "gap", "true_label_acc", *AUDIT_KEYS)

#: the guardrail flags a row may carry (chapter 12), each decided without the oracle: ``guard_stopped``, the
#: collapse guard of the shared loop returned an earlier state (:func:`~unlearnlib.methods._loop.run_unlearning`);
#: ``collapsed``, the retain accuracy ended more than the guard's margin below the original model's;
#: ``not_forgotten``, the forget accuracy removed less than half of its excess over the oracle-free target of
#: :func:`~unlearnlib.methods._loop.forget_target`.
FLAGS = ("guard_stopped", "collapsed", "not_forgotten")

#: A variant: a method name; ``(name, kwargs)``; or ``(name, setup)`` with ``setup(task, seed)`` returning the
#: keyword arguments of that run (a chapter uses it to attach a hook that records something along the run).
#: ``None`` is the original model itself (no unlearning); ``"retrain"`` is the seed's oracle.
Variant = str | tuple[str, dict | Callable[[UnlearningTask, int], dict]] | None


def summarise(rows: list[dict], keys=REPORTED, references: dict | None = None) -> dict:
    """Mean, sample standard deviation and 95 % CI half-width (Student t) per method and metric (chapter 02).

    ``ci95`` is ``None`` for a single seed (no interval can be estimated from one value).

    With ``references`` (seed -> the retrain oracle's metrics of that seed), each method also gets
    ``gap_of_means``, a plain number: the Avg. Gap between the method's mean UA, RA, TA, MIA and the oracle's
    means over the same seeds, the convention of the SalUn code. ``gap`` is instead the mean of the per-seed gaps.
    The two differ: per-seed differences of opposite signs cancel in the means, so by the triangle inequality
    ``gap_of_means`` is at most the mean ``gap``, equal only when every metric's difference keeps one sign
    across seeds. A method that lands above the oracle on one seed and below it on another looks closer to it
    under ``gap_of_means``.
    """
    from scipy import stats

    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        summary[method] = {}
        for key in keys:
            vals = np.array([r[key] for r in mine if r.get(key) is not None], dtype=float)
            if len(vals) == 0:
                continue
            n = len(vals)
            std = float(vals.std(ddof=1)) if n > 1 else 0.0
            ci = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else None
            summary[method][key] = {"mean": float(vals.mean()), "std": std, "ci95": ci}
        # Only the seeds on which both the method and the oracle have every metric: means over different seeds
        # would not be comparable.
        paired = [r for r in mine if references is not None and r["seed"] in references
                  and all(r.get(k) is not None and references[r["seed"]].get(k) is not None for k in GAP_METRICS)]
        if paired:
            means = {k: float(np.mean([r[k] for r in paired])) for k in GAP_METRICS}
            oracle = {k: float(np.mean([references[r["seed"]][k] for r in paired])) for k in GAP_METRICS}
            summary[method]["gap_of_means"] = avg_gap(means, oracle)
    return summary


def paired_difference(d) -> dict:
    """Mean, 95 % Student-t half-width and two-sided paired t-test p-value of per-seed differences ``d``
    (chapter 11). With fewer than two seeds there is no interval and no test (``None``); differences that are
    all equal have no spread: p is 1 when they are 0 and 0 otherwise."""
    from scipy import stats

    d = np.asarray(d, dtype=float)
    n = len(d)
    entry = {"mean": float(d.mean()) if n else float("nan"), "ci95": None, "p": None, "p_holm": None,
             "test": "paired t", "n": n}
    if n < 2:
        return entry
    sd = float(d.std(ddof=1))
    entry["ci95"] = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    entry["p"] = float(stats.ttest_1samp(d, 0.0).pvalue) if sd > 0 else (0.0 if d[0] != 0 else 1.0)
    return entry


def holm(pvalues) -> list:
    """Holm's step-down adjustment of a family of p-values (chapter 11): the i-th smallest is multiplied by
    (m − i), running maxima keep the order, capped at 1. ``None`` entries (no test) stay ``None``."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def format_table(summary: dict, reference: dict, keys=("UA", "RA", "TA", "MIA", "gap", "time_s"),
                 floor: dict | None = None) -> str:
    """The summary as a text table, mean±95 % CI, with the retrain oracle's means as the first row (chapter 02).

    With ``floor`` (:attr:`Comparison.floor`), a second row gives the noise floor: the mean absolute difference
    between two independently retrained oracles, per metric (chapter 11). Each column is as wide as its widest
    entry, so that a chapter's table fits the book's content column.
    """
    def cell(stats: dict | None, key: str) -> str:
        if stats is None:
            return ""
        ci, d = stats["ci95"], DECIMALS.get(key, 1)
        return f"{stats['mean']:.{d}f}±{ci:.{d}f}" if ci is not None else f"{stats['mean']:.{d}f}"

    header = ["method", *keys]
    body = [["(retrain oracle)", *(f"{reference[k]:.{DECIMALS.get(k, 1)}f}" if k in reference else "" for k in keys)]]
    if floor:
        body.append(["(noise floor)", *(cell(floor.get(k), k) for k in keys)])
    body += [[method, *(cell(s.get(k), k) for k in keys)] for method, s in summary.items()]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    # One space between columns: the ± keeps neighbouring cells apart.
    lines = [(row[0].ljust(widths[0]) + " " + "".join(c.rjust(w + 1) for c, w in zip(row[1:], widths[1:])))
             .rstrip() for row in (header, *body)]
    return "\n".join(lines)


def format_paired(paired: dict, family: dict, key: str = "gap") -> str:
    """Paired differences (method − baseline) of ``key`` as a text table: mean ± 95 % half-width and the
    Holm-adjusted p-value, a star where it is below 0.05 (chapter 11)."""
    bases = family.get("baselines", [])
    header = ["method", *(f"{key} − {b}" for b in bases)]

    def cell(e):
        if e is None:
            return ""
        if e["ci95"] is None:
            return f"{e['mean']:+.1f}"
        star = "*" if e["p_holm"] is not None and e["p_holm"] < 0.05 else " "
        p = "p<0.001" if e["p_holm"] < 0.001 else f"p={e['p_holm']:.3f}"
        return f"{e['mean']:+.1f}±{e['ci95']:.1f} {p}{star}"

    body = [[m, *(cell(paired[m].get(b, {}).get(key)) for b in bases)] for m in paired]
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    lines = [(r[0].ljust(widths[0]) + "".join(c.rjust(w + 2) for c, w in zip(r[1:], widths[1:]))).rstrip()
             for r in (header, *body)]
    return "\n".join(lines + [f"({family.get('test')}; p: {family.get('correction')}; * p < 0.05)"])


@dataclass
class Comparison:
    """The rows of :func:`compare_methods` and what is computed from them (chapter 02)."""

    scenario: str
    seeds: list[int]
    rows: list[dict] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)
    #: per seed, the absolute difference of every metric between a second, independently retrained oracle and
    #: the seed's oracle (``gap``: their Avg. Gap); empty when the comparison was run without a floor.
    floor_rows: list[dict] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        """:func:`summarise` of the rows, ``gap_of_means`` included (``references`` is in seed order)."""
        return summarise(self.rows, references=dict(zip(self.seeds, self.references)))

    @property
    def reference(self) -> dict:
        """The retrain oracle's metrics, averaged over seeds (a metric undefined on every seed, ``None``, is
        left out; see :func:`unlearnlib.metrics.undefined_metrics`)."""
        keys = dict.fromkeys(k for r in self.references for k in r)
        values = {k: [r[k] for r in self.references if r.get(k) is not None] for k in keys}
        return {k: float(np.mean(v)) for k, v in values.items() if v}

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    def per_seed(self, method: str, key: str) -> np.ndarray:
        """The values of ``key`` for ``method``, one per seed, in seed order."""
        if method not in self.methods:
            raise UnlearnError(f"no rows for {method!r}; the comparison has {', '.join(self.methods)}")
        return np.array([r[key] for r in self.rows if r["method"] == method], dtype=float)

    def mean(self, method: str, key: str) -> float:
        return float(self.per_seed(method, key).mean())

    def ci95(self, method: str, key: str) -> float:
        """Half-width of the 95 % CI of the mean over seeds (0 for one seed)."""
        return self.summary[method][key]["ci95"] or 0.0

    def table(self, keys=("UA", "RA", "TA", "MIA", "gap", "time_s")) -> str:
        """The summary as a text table (:func:`format_table`), the noise floor as its second row."""
        return format_table(self.summary, self.reference, keys=keys, floor=self.floor)

    @property
    def floor(self) -> dict:
        """The noise floor (chapter 11): per metric and for ``gap``, the mean, standard deviation and 95 % CI
        over seeds of the distance between two independently retrained oracles of the same task. A method whose
        distance to the oracle is within it cannot be told apart from retraining with another seed."""
        if not self.floor_rows:
            return {}
        return summarise([{"method": "floor", **r} for r in self.floor_rows],
                         keys=(*GAP_METRICS, "gap", "MIA_AUC", "true_label_acc", *AUDIT_KEYS))["floor"]

    def distance(self, method: str, key: str = "gap") -> np.ndarray:
        """Per seed, the method's distance to the seed's oracle on ``key``: its Avg. Gap for ``gap``, else the
        absolute difference of the metric; what the noise floor is compared with (chapter 11)."""
        if key == "gap":
            return self.per_seed(method, "gap")
        oracle = np.array([r[key] for r in self.references], dtype=float)
        return np.abs(self.per_seed(method, key) - oracle)

    def floor_per_seed(self, key: str = "gap") -> np.ndarray:
        if not self.floor_rows:
            raise UnlearnError("this comparison has no noise floor; run compare_methods with floor=True")
        return np.array([r[key] for r in self.floor_rows], dtype=float)

    def beyond_floor(self, method: str, key: str = "gap", level: float = 0.05) -> bool:
        """Is ``method`` measurably farther from the oracle than a second oracle is? A one-sided paired t-test of
        the per-seed differences (method's distance − the floor's) at ``level`` (chapter 11). ``False`` means
        the seeds cannot tell the method from retraining, not that it equals it."""
        from scipy import stats

        d = self.distance(method, key) - self.floor_per_seed(key)
        if len(d) < 2:
            raise UnlearnError("a paired test needs at least two seeds; run the comparison with more seeds")
        if not np.any(d != d[0]):
            return bool(d[0] > 0)
        return bool(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue < level)

    def paired_stats(self, baselines=("ga", "neggrad_plus"), keys=None) -> tuple[dict, dict]:
        """Paired comparisons of every method with each baseline, Holm-corrected (chapter 11).

        Returns ``(paired, family)``: ``paired[method][baseline][key]`` holds the mean of the per-seed
        differences (method − baseline), the half-width of its 95 % Student-t interval, the two-sided paired
        t-test's p-value and ``p_holm``, corrected by Holm's step-down procedure over the family of every
        (method, baseline) pair of the same key; ``family`` declares it. Baselines absent from the comparison
        are left out; a method is not compared with itself, two baselines are compared once (the first listed
        as ``method``), and ``retrain`` and ``original`` rows are no methods.
        """
        present = set(self.methods)
        bases = [b for b in baselines if b in present]
        if keys is None:  # every compared key that every row has
            keys = [k for k in COMPARED if self.rows and all(r.get(k) is not None for r in self.rows)]
        methods = [m for m in self.methods if m not in ("retrain", "original")]
        paired: dict = {}
        pvals: dict = {k: [] for k in keys}
        for m in methods:
            for b in bases:
                # Not with itself; and two baselines once only (b − m is the mirror of m − b, not a new test).
                if m == b or (m in bases and b in paired and m in paired[b]):
                    continue
                for key in keys:
                    d = self.per_seed(m, key) - self.per_seed(b, key)
                    entry = paired_difference(d)
                    paired.setdefault(m, {}).setdefault(b, {})[key] = entry
                    pvals[key].append((m, b, entry["p"]))
        for key, family in pvals.items():
            for (m, b, _), p_adj in zip(family, holm([p for *_, p in family])):
                paired[m][b][key]["p_holm"] = p_adj
        family = {"baselines": bases, "methods": [m for m in methods if m in paired], "metrics": list(keys),
                  "pairs_per_metric": len(pvals[keys[0]]) if keys else 0,
                  "test": "paired Student t, two-sided, over seeds",
                  "correction": "Holm over the (method, baseline) pairs of each metric"}
        return paired, family

    # Comparisons between two methods of the same comparison (chapters 02-09). Every seed ran both methods from
    # the same original model against the same oracle, so differences are taken seed by seed (paired).
    def paired(self, a: str, b: str, key: str = "gap") -> tuple[float, float]:
        """Mean and standard error of the per-seed differences ``a - b`` (chapter 06)."""
        d = self.per_seed(a, key) - self.per_seed(b, key)
        if len(d) < 2:
            raise UnlearnError("a paired comparison needs at least two seeds; run the comparison with more seeds")
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))

    def above(self, a: str, b: str, key: str = "gap") -> bool:
        """``a``'s mean lies above ``b``'s 95 % interval (chapter 02)."""
        return self.mean(a, key) > self.mean(b, key) + self.ci95(b, key)

    def below(self, a: str, b: str, key: str = "gap") -> bool:
        """``a``'s mean lies below ``b``'s 95 % interval (chapter 02)."""
        return self.mean(a, key) < self.mean(b, key) - self.ci95(b, key)

    def within_noise(self, a: str, b: str, key: str = "gap") -> bool:
        """The two means are closer than the sum of their 95 % half-widths (chapter 02)."""
        return abs(self.mean(a, key) - self.mean(b, key)) < self.ci95(a, key) + self.ci95(b, key)

    def plot(self, title: str = "", metrics=("UA", "RA", "TA", "MIA"), skip=("original",)):
        """Grouped bars of every method's mean metrics in percent, the retrain oracle dashed
        (:func:`unlearnlib.plots.metric_bars`). The untouched original model, a row of most chapters' tables, is
        left out by default: it is the starting point, not a method (chapter 02)."""
        from unlearnlib.plots import metric_bars

        shown = {m: s for m, s in self.summary.items() if m not in skip}
        fig = metric_bars(shown, self.reference, metrics=metrics, title=title)
        for ax in fig.axes:
            ax.set_ylabel("%")
        return fig


def decision(paired: dict, method: str, baseline: str, key: str = "gap", level: float = 0.05) -> int:
    """The verdict of a paired comparison in a benchmark's ``"paired"`` block (chapters 12-13): ``-1`` when
    ``method`` is decidedly below ``baseline`` on ``key`` (for ``gap``: closer to the oracle), ``+1`` decidedly
    above, ``0`` undecided (Holm-adjusted p at or above ``level``, no test, or no entry)."""
    e = paired.get(method, {}).get(baseline, {}).get(key)
    if e is None or e.get("p_holm") is None or e["p_holm"] >= level or e["mean"] == 0:
        return 0
    return -1 if e["mean"] < 0 else 1


def start_point(m0, task: UnlearningTask) -> dict:
    """What the guardrail flags compare with, all without the oracle (chapter 12): the original model's forget and
    retain accuracy, and the forget target of :func:`~unlearnlib.methods._loop.forget_target`."""
    from unlearnlib.methods._loop import forget_target
    from unlearnlib.metrics import accuracy

    return {"forget_acc": accuracy(m0, task.x_forget, task.y_forget),
            "retain_acc": accuracy(m0, task.x_retain, task.y_retain), "target": forget_target(task, m0)}


def guardrail_flags(row: dict, start: dict, model=None) -> list[str]:
    """The :data:`FLAGS` of one row (chapter 12): the run's own guard stop, a retain accuracy more than the guard's
    margin below the original model's, a forget accuracy that removed less than half of its excess over the
    target."""
    from unlearnlib.methods._loop import GUARD_MARGIN

    flags = []
    if getattr(model, "guard_stopped", False):
        flags.append("guard_stopped")
    if row["RA"] < start["retain_acc"] - GUARD_MARGIN:
        flags.append("collapsed")
    forget_acc, excess = 100.0 - row["UA"], start["forget_acc"] - start["target"]
    if excess > 0 and forget_acc - start["target"] > excess / 2:
        flags.append("not_forgotten")
    return flags


def flag_counts(rows: list[dict]) -> dict:
    """Per method, how many of its rows carry each guardrail flag (only the flags that occur; chapter 12)."""
    out: dict = {}
    for r in rows:
        for f in r.get("flags") or []:
            out.setdefault(r["method"], {}).setdefault(f, 0)
            out[r["method"]][f] += 1
    return out


def _resolve(label: str, spec: Variant) -> tuple[str | None, Callable]:
    if spec is None:
        return None, lambda task, seed: {}
    if isinstance(spec, str):
        return spec, lambda task, seed: {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        name, kw = spec
        if callable(kw):
            return name, kw
        if isinstance(kw, dict):
            return name, lambda task, seed: dict(kw)
    raise UnlearnError(f"variant {label!r} must be a method name, (name, kwargs), (name, setup) or None; "
                       f"got {spec!r}")


def compare_methods(variants: dict[str, Variant] | list[str], scenario: str = "class", *,
                    data: Dataset | None = None, cfg: TrainConfig | None = None, seeds=None,
                    forget_class: int = 3, forget_fraction: float = 0.1, device=None,
                    progress: bool = True, floor: bool = True, relearn: bool = False) -> Comparison:
    """Run every variant from each seed's original model and evaluate it against that seed's oracle (chapter 02).

    ``variants`` maps a row label to a :data:`Variant`; a list of method names uses the names as labels.
    Defaults: the profile's dataset, training recipe and number of seeds (seeds 0, 1, ...), the profile's device.
    Each row holds the metrics of :func:`unlearnlib.metrics.evaluate` against the same seed's oracle, the
    wall-clock ``time_s`` of the run, and ``steps`` (the unlearning steps taken, 0 for the original model).
    Beside the time, the cost in units that do not depend on the machine (:mod:`unlearnlib.cost`): ``passes``
    (per-sample forward plus backward passes, counted as the run executes), ``forward_passes``,
    ``backward_passes`` and ``passes_vs_retrain``, the ratio of ``passes`` to retraining's (the retrain row's is
    its training count, ratio 1; the original model's is 0).
    Every method is checked not to have changed the original model it was given. Within a seed the variants run
    in the order given, so a setup may use what an earlier variant of the same seed recorded (for example its
    ``log``, to run another variant for the same number of steps). With ``floor`` (the default), each seed also
    trains a second, independent oracle (:func:`~unlearnlib.train.retrained_model` replica 1, cached) and records
    its distance to the first: the noise floor of chapter 11. With ``relearn``, every row (and the oracle's
    reference) gets ``relearn_acc``: the held-out forget accuracy after the relearning attack of chapter 11
    (:func:`unlearnlib.relearn.relearn_curve` with its defaults).
    """
    profile = get_profile()
    device = get_device(device)
    data = (data if data is not None else load_dataset(profile.dataset)).to(device)
    cfg = cfg or TrainConfig.from_profile(profile)
    seeds = list(range(profile.seeds)) if seeds is None else list(seeds)
    if not seeds:
        raise UnlearnError("no seeds to run; pass seeds=[0, 1, 2] or leave the profile's default")
    if isinstance(variants, (list, tuple)):
        variants = {name: name for name in variants}
    resolved = {label: _resolve(label, spec) for label, spec in variants.items()}
    for name, _ in resolved.values():
        if name is not None and name != "retrain":
            get_method(name)  # an unknown name fails before anything is trained
    result = Comparison(scenario, seeds)
    bar = tqdm(total=len(seeds) * len(resolved), desc=f"{scenario}: methods x seeds", disable=not progress,
               leave=False, delay=5)
    for seed in seeds:
        task = make_task(data, scenario, forget_fraction=forget_fraction, forget_class=forget_class, seed=seed,
                         cfg=cfg)
        # task.data, not data: in the mislabeled scenario the original model trains on the flipped labels.
        m0 = original_model(task.data, cfg, seed=seed, device=device, progress=False)
        oracle = retrained_model(task, cfg, seed=seed, device=device, progress=False)
        reference = evaluate(oracle, task)
        if relearn:
            reference["relearn_acc"] = float(relearn_curve(oracle, task, seed=seed)[-1])
        result.references.append(reference)
        if floor:
            second = evaluate(retrained_model(task, cfg, seed=seed, device=device, progress=False, replica=1), task,
                              reference=reference)
            result.floor_rows.append({"seed": seed, "gap": second["gap"],
                                      **{k: abs(second[k] - reference[k])
                                         for k in (*GAP_METRICS, "MIA_AUC", "true_label_acc")
                                         if second.get(k) is not None and reference.get(k) is not None}})
        theta0 = {k: v.detach().clone() for k, v in m0.state_dict().items()}
        origin = start_point(m0, task)
        for label, (name, setup) in resolved.items():
            log: list = []
            retrain_passes = cost.training_passes(len(task.y_retain), cfg.epochs)
            if name is None:
                model, elapsed, passes = m0, 0.0, cost.Passes()
            elif name == "retrain":
                model, elapsed, passes = oracle, oracle.train_time_s, retrain_passes
            else:
                kwargs = {"seed": seed, "log": log, **setup(task, seed)}
                log = kwargs["log"]  # a setup may pass its own list, to read the run's log later
                synchronize(device)
                with cost.counting() as passes:
                    start = time.perf_counter()
                    model = get_method(name)(m0, task, **kwargs)
                    synchronize(device)
                    elapsed = time.perf_counter() - start
                if any(not torch.equal(v, theta0[k]) for k, v in m0.state_dict().items()):
                    raise RuntimeError(f"{label} ({name}) changed the original model it was given; a method must "
                                       "work on a copy (unlearnlib.methods._loop.fresh_copy)")
            steps = log[-1]["step"] if log else 0
            row = {"method": label, "seed": seed, "steps": steps,
                   **evaluate(model, task, reference=reference, time_s=elapsed), **passes.as_row(retrain_passes)}
            row["flags"] = [] if name in (None, "retrain") else guardrail_flags(row, origin, model)
            if relearn:
                row["relearn_acc"] = float(relearn_curve(model, task, seed=seed)[-1])
            result.rows.append(row)
            bar.update()
    bar.close()
    return result
