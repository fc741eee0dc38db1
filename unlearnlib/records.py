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
