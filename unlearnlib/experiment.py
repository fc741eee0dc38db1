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

from unlearnlib.config import get_device, get_profile, synchronize
from unlearnlib.data import Dataset, UnlearningTask, load_dataset, make_task
from unlearnlib.errors import UnlearnError
from unlearnlib.methods import get_method
from unlearnlib.metrics import GAP_METRICS, avg_gap, evaluate
from unlearnlib.train import TrainConfig, original_model, retrained_model

#: the metrics a summary reports, in table order (``MIA_AUC`` is the loss-based attack of chapter 01).
REPORTED = ("UA", "RA", "TA", "MIA", "gap", "time_s", "MIA_AUC")

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


def format_table(summary: dict, reference: dict, keys=("UA", "RA", "TA", "MIA", "gap", "time_s")) -> str:
    """The summary as a text table, mean±95 % CI, with the retrain oracle's means as the first row (chapter 02).

    Each column is as wide as its widest entry, so that a chapter's table fits the book's content column.
    """
    def cell(stats: dict | None) -> str:
        if stats is None:
            return ""
        ci = stats["ci95"]
        return f"{stats['mean']:.1f}±{ci:.1f}" if ci is not None else f"{stats['mean']:.1f}"

    header = ["method", *keys]
    body = [["(retrain oracle)", *(f"{reference[k]:.1f}" if k in reference else "" for k in keys)]]
    body += [[method, *(cell(s.get(k)) for k in keys)] for method, s in summary.items()]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    # One space between columns: the ± keeps neighbouring cells apart.
    lines = [(row[0].ljust(widths[0]) + " " + "".join(c.rjust(w + 1) for c, w in zip(row[1:], widths[1:])))
             .rstrip() for row in (header, *body)]
    return "\n".join(lines)


@dataclass
class Comparison:
    """The rows of :func:`compare_methods` and what is computed from them (chapter 02)."""

    scenario: str
    seeds: list[int]
    rows: list[dict] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)

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
        """The summary as a text table (:func:`format_table`)."""
        return format_table(self.summary, self.reference, keys=keys)

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
                    progress: bool = True) -> Comparison:
    """Run every variant from each seed's original model and evaluate it against that seed's oracle (chapter 02).

    ``variants`` maps a row label to a :data:`Variant`; a list of method names uses the names as labels.
    Defaults: the profile's dataset, training recipe and number of seeds (seeds 0, 1, ...), the profile's device.
    Each row holds the metrics of :func:`unlearnlib.metrics.evaluate` against the same seed's oracle, the
    wall-clock ``time_s`` of the run, and ``steps`` (the unlearning steps taken, 0 for the original model).
    Every method is checked not to have changed the original model it was given. Within a seed the variants run
    in the order given, so a setup may use what an earlier variant of the same seed recorded (for example its
    ``log``, to run another variant for the same number of steps).
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
        task = make_task(data, scenario, forget_fraction=forget_fraction, forget_class=forget_class, seed=seed)
        m0 = original_model(data, cfg, seed=seed, device=device, progress=False)
        oracle = retrained_model(task, cfg, seed=seed, device=device, progress=False)
        reference = evaluate(oracle, task)
        result.references.append(reference)
        theta0 = {k: v.detach().clone() for k, v in m0.state_dict().items()}
        for label, (name, setup) in resolved.items():
            log: list = []
            if name is None:
                model, elapsed = m0, 0.0
            elif name == "retrain":
                model, elapsed = oracle, oracle.train_time_s
            else:
                kwargs = {"seed": seed, "log": log, **setup(task, seed)}
                log = kwargs["log"]  # a setup may pass its own list, to read the run's log later
                synchronize(device)
                start = time.perf_counter()
                model = get_method(name)(m0, task, **kwargs)
                synchronize(device)
                elapsed = time.perf_counter() - start
                if any(not torch.equal(v, theta0[k]) for k, v in m0.state_dict().items()):
                    raise RuntimeError(f"{label} ({name}) changed the original model it was given; a method must "
                                       "work on a copy (unlearnlib.methods._loop.fresh_copy)")
            steps = log[-1]["step"] if log else 0
            result.rows.append({"method": label, "seed": seed, "steps": steps,
                                **evaluate(model, task, reference=reference, time_s=elapsed)})
            bar.update()
    bar.close()
    return result
