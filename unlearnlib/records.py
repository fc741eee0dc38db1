"""Committed benchmark results that chapters load (chapter 11).

Ten seeds of every method on every scenario take longer than a chapter may run, so the tables of Part III come
from benchmark runs committed with the library (``unlearnlib/results/<name>.json``, written by
``bash benchmarks/run_evaluation.sh``) and shipped inside the package: a chapter run from an installed wheel
finds them too. A chapter re-runs a sample of the rows live and checks that it agrees within the noise floor
(:func:`reproduces`).
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from unlearnlib.errors import UnlearnError


def available() -> list[str]:
    """The names of the committed results."""
    folder = resources.files("unlearnlib") / "results"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_bench(name: str) -> dict:
    """The benchmark JSON committed as ``name`` (for example ``"eval_class3"``), checked to hold the blocks the
    chapters read."""
    path = resources.files("unlearnlib") / "results" / f"{name}.json"
    if not path.is_file():
        raise UnlearnError(f"no committed results named {name!r}; available: {', '.join(available()) or 'none'} "
                           "(bash benchmarks/run_evaluation.sh writes them)")
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnlearnError(f"the committed results {name!r} cannot be read ({exc}); restore the file from the "
                           "repository or re-run bash benchmarks/run_evaluation.sh") from None
    missing = [k for k in ("config", "results", "summary", "floor", "paired", "paired_family") if k not in report]
    if missing or not report["results"]:
        raise UnlearnError(f"the committed results {name!r} lack {', '.join(missing) or 'rows'}; re-run "
                           "bash benchmarks/run_evaluation.sh")
    return report


def load_result(name: str) -> dict:
    """Any other committed result (``unlearnlib/results/<name>.json``: a step-cost run, the cost curve), read
    without the benchmark's checks (chapter 12)."""
    path = resources.files("unlearnlib") / "results" / f"{name}.json"
    if not path.is_file():
        raise UnlearnError(f"no committed results named {name!r}; available: {', '.join(available()) or 'none'}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnlearnError(f"the committed results {name!r} cannot be read ({exc}); restore the file from the "
                           "repository") from None


def per_seed(report: dict, method: str, key: str = "gap") -> np.ndarray:
    """The values of ``key`` for ``method`` in a benchmark report, in seed order."""
    rows = sorted((r for r in report["results"] if r["method"] == method), key=lambda r: r["seed"])
    if not rows:
        raise UnlearnError(f"no rows for {method!r}; the report has {', '.join(report['config']['methods'])}")
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def floor_bound(report: dict, key: str = "gap") -> float:
    """The largest distance between two retrainings of the same task over the report's seeds
    (``"floor_per_seed"``): the tolerance of :func:`reproduces`."""
    values = [r[key] for r in report.get("floor_per_seed", []) if r.get(key) is not None]
    if not values:
        raise UnlearnError("the committed results hold no per-seed floor; re-run bash benchmarks/run_evaluation.sh")
    return float(max(values))


#: the metrics that identify a seed's original model and oracle: the MIA AUC is continuous, so models trained on
#: other kernels (another CPU's oneDNN, a GPU) differ there even when their accuracies tie.
FINGERPRINT = ("UA", "RA", "TA", "MIA_AUC")

#: the same for the language-model track (chapter 15): the original model's row against its oracle, whose truth
#: ratio, PrivLeak and attack AUC are continuous in both models.
LM_FINGERPRINT = ("forget_acc", "truth_ratio", "privleak", "utility", "mia_auc")


def same_models(report: dict, originals: list[dict], references: list[dict] | None = None,
                keys=FINGERPRINT) -> bool:
    """Whether a live run started from the committed run's models (chapters 11, 12 and 15): the original model's
    row of every live seed (``originals``: rows with ``seed``, scored against the live oracle) equals the committed
    one (``"original_per_seed"``, else the rows of method ``original``) to 1e-6 on ``keys``, and so do the oracle's
    metrics (``references``, in the same order) where the report stores them per seed. Only then can a re-run row
    be expected to follow the committed one step for step."""
    committed = {r["seed"]: r for r in report.get("original_per_seed")
                 or [r for r in report.get("results", []) if r["method"] == "original"]}
    oracles = {r["seed"]: r for r in report.get("reference_per_seed", [])}
    if not originals or (references is not None and len(originals) != len(references)):
        raise UnlearnError("same_models needs the live original row of every seed (and, when given, the oracle's "
                           "metrics of every seed)")

    def equal(a, b):
        return all(a.get(k) is not None and b.get(k) is not None and abs(a[k] - b[k]) <= 1e-6
                   for k in keys if k in a or k in b)

    def oracle_equal(i, seed):
        if references is None or not oracles:
            return True  # the original's row is scored against the oracle, so it fingerprints both
        return seed in oracles and equal(references[i], oracles[seed])

    return all(o["seed"] in committed and equal(o, committed[o["seed"]]) and oracle_equal(i, o["seed"])
               for i, o in enumerate(originals))


def reproduces(report: dict, rows: list[dict], key: str = "gap") -> dict:
    """Compare rows re-run live (``method``, ``seed`` and ``key``) with the committed ones of the same method
    and seed: ``{"max_diff", "bound", "ok"}``, ``ok`` when every difference is within :func:`floor_bound`.
    A re-run on another machine may take another path at a rounding tie; it should still land no farther from
    the committed result than a second retraining lands from the first."""
    committed = {(r["method"], r["seed"]): r[key] for r in report["results"]}
    diffs = []
    for r in rows:
        if (r["method"], r["seed"]) not in committed:
            raise UnlearnError(f"the committed results have no row for {r['method']} on seed {r['seed']}")
        diffs.append(abs(r[key] - committed[(r["method"], r["seed"])]))
    bound = floor_bound(report, key)
    return {"max_diff": float(max(diffs)), "bound": bound, "ok": bool(max(diffs) <= bound)}


def verdicts(report: dict, methods, baselines=("ga", "neggrad_plus"), key: str = "gap",
             level: float = 0.05) -> dict:
    """The paired verdicts of a committed benchmark for ``methods`` (chapters 02-10 restate their comparisons at
    the tuned values of chapter 12 with it): ``{method: {baseline: -1 | 0 | +1}}``, -1 when the method is
    decidedly below the baseline on ``key`` (Holm-adjusted p below ``level``), +1 decidedly above, 0 undecided;
    a method compared with itself is 0."""
    from unlearnlib.experiment import decision  # experiment imports the training stack; records stays light

    missing = [m for m in (*methods, *baselines) if m not in report["summary"]]
    if missing:
        raise UnlearnError(f"the committed results have no rows for {', '.join(missing)}; they hold "
                           f"{', '.join(report['summary'])}")
    def one(m, b):  # a baseline's row against another baseline is stored the other way round
        if m == b:
            return 0
        return (decision(report["paired"], m, b, key, level) if b in report["paired"].get(m, {})
                else -decision(report["paired"], b, m, key, level))

    return {m: {b: one(m, b) for b in baselines} for m in methods}


def format_verdicts(report: dict, methods, baselines=("ga", "neggrad_plus"), key: str = "gap") -> str:
    """A table of ``methods`` in a committed benchmark: ``key`` (mean ± 95 % CI over seeds), the mean in noise
    floors, and the Holm-corrected verdict against each baseline (``closer``/``farther`` for the gap, else
    ``lower``/``higher``; ``·`` undecided, with the adjusted p)."""
    words = {-1: "closer", 1: "farther"} if key == "gap" else {-1: "lower", 1: "higher"}
    table = verdicts(report, methods, baselines, key)
    floor = report["floor"].get(key, {}).get("mean")
    seeds = report["config"]["seeds"]
    lines = [f"{key}: mean ± 95 % CI over {seeds} seeds at the tuned values; noise floor "
             f"{floor:.2f}" if floor is not None else f"{key}: mean ± 95 % CI over {seeds} seeds",
             f"{'method':22s}{key:>14s}{'floors':>8s}" + "".join(f"{'vs ' + b:>22s}" for b in baselines)]
    for m in methods:
        s = report["summary"][m][key]
        cells = []
        for b in baselines:
            e = report["paired"].get(m, {}).get(b, {}).get(key) or report["paired"].get(b, {}).get(m, {}).get(key)
            v = table[m][b]
            cells.append("—" if m == b or e is None else
                         f"{words[v]} (p={e['p_holm']:.2g})" if v else f"· (p={e['p_holm']:.2g})")
        ratio = f"{s['mean'] / floor:8.0f}" if floor else f"{'':8s}"
        lines.append(f"{m:22s}{s['mean']:7.2f} ± {s['ci95']:4.2f}{ratio}" + "".join(f"{c:>22s}" for c in cells))
    return "\n".join(lines)


#: the committed ten-seed benchmarks at the tuned values (chapter 12), by name, with what each forgets.
TUNED_BENCHMARKS = {"bench_class3": "class-wise: forget digit 3", "bench_random10": "random: forget 10 % of D",
                    "bench_mislabeled10": "mislabeled: forget 10 % of flipped labels",
                    "bench_memorized10": "memorized: forget the 10 % most memorised",
                    "bench_class3_retain5": "class-wise, every method given 5 % of D_r"}


def format_tuned(methods, names=("bench_class3", "bench_random10"), baselines=("ga", "neggrad_plus")) -> str:
    """:func:`format_verdicts` of ``methods`` in several committed benchmarks (:data:`TUNED_BENCHMARKS`), each
    under its title: how a chapter of Parts I-II restates its comparison at the tuned values."""
    blocks = []
    for name in names:
        title = TUNED_BENCHMARKS.get(name, name)
        blocks.append(f"== {title} ({name})\n" + format_verdicts(load_bench(name), methods, baselines))
    return "\n\n".join(blocks)


def paired_across(report_a: dict, method_a: str, report_b: dict, method_b: str, key: str = "gap") -> dict:
    """The paired difference ``method_a`` (in ``report_a``) minus ``method_b`` (in ``report_b``) over their common
    seeds, as :func:`unlearnlib.experiment.paired_difference` gives it (chapters 07-08: a method at its chapter's
    defaults against a baseline at its tuned values). Two reports pair only when their tasks are the same: same
    dataset, scenario, forget set and retain fraction, checked here."""
    from unlearnlib.experiment import paired_difference

    same = ("dataset", "scenario", "forget_class", "forget_fraction", "retain_fraction", "profile")
    differ = [k for k in same if report_a["config"].get(k) != report_b["config"].get(k)]
    if differ:
        raise UnlearnError(f"the two reports ran different tasks ({', '.join(differ)} differ); a paired "
                           "difference needs the same tasks seed by seed")
    a = {r["seed"]: r.get(key) for r in report_a["results"] if r["method"] == method_a}
    b = {r["seed"]: r.get(key) for r in report_b["results"] if r["method"] == method_b}
    seeds = sorted(s for s in set(a) & set(b) if a[s] is not None and b[s] is not None)
    if not seeds:
        raise UnlearnError(f"no seed has {key} for both {method_a} and {method_b}")
    return {**paired_difference([a[s] - b[s] for s in seeds]), "seeds": seeds}
