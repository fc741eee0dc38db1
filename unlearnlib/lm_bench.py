"""The facts track of the benchmark: language-model unlearning methods against the retrain oracle (chapter 15).

:func:`run_facts` is what ``python -m unlearnlib.bench --dataset facts`` runs; ``python -m unlearnlib.lm_bench``
runs it on its own::

    python -m unlearnlib.lm_bench --seeds 5 --out facts.json [--methods npo,ga] [--forget-fraction 0.1]
                                  [--profile ci|full|auto] [--device auto|cpu|cuda] [--no-floor]
    python -m unlearnlib.lm_bench --sweep --out lm_sweep.json     # the defaults' sweep (held-out seeds)
    python -m unlearnlib.lm_bench --sweep --methods rmu --out lm_sweep.json   # re-sweep one method in place

For each seed: the facts (fixed, like a dataset), the forgotten people drawn from the seed, the cached original
model and the seed's retrain oracle (:mod:`unlearnlib.transformer`); every method runs from the original and is
evaluated by :func:`unlearnlib.lm_metrics.evaluate_lm` against the oracle. The JSON has ``config``, ``reference``
(the oracle's row keys, mean over seeds), ``results`` (one row per method and seed: the contract's LM keys
``forget_acc``, ``retain_acc``, ``truth_ratio``, ``rouge_l``, ``forget_quality``, ``privleak``, ``utility``, and
``lm_gap``, ``time_s``, ``passes``, ``passes_vs_retrain``), ``summary`` (mean, std, ci95 over seeds), ``floor``
(the distance between two independently retrained oracles), ``paired`` and ``paired_family`` (per-seed
differences against NPO and GA, Holm-corrected over the family) and ``failures``. Bad input exits with status 2
and one line on stderr that begins with ``error:``.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from unlearnlib import cost
from unlearnlib.config import get_device, get_profile, synchronize
from unlearnlib.errors import UnlearnError

#: the contract's row keys of the facts track, then the distance to the oracle of :mod:`unlearnlib.lm_metrics`.
LM_KEYS = ("forget_acc", "retain_acc", "truth_ratio", "rouge_l", "forget_quality", "privleak", "utility")
COMPARED = (*LM_KEYS, "lm_gap")
#: extra row keys of :func:`unlearnlib.lm_metrics.evaluate_lm` kept in the rows.
EXTRA = ("general_acc", "mia_auc")
#: keys that already compare a model with the oracle (the floor keeps the second oracle's own value of these).
SELF_COMPARED = ("forget_quality", "privleak", "lm_gap")
#: the baselines of the paired comparisons: NPO (the strongest LM-specific baseline of chapter 15) and GA.
BASELINES = ("npo", "ga")
#: the seeds the defaults were chosen on, never reported (the bench and the chapters use 0, 1, 2, ...).
SWEEP_SEEDS = (100, 101)
#: the seed of the facts themselves: the people are a fixed dataset; seeds draw the forget set and the models.
FACTS_SEED = 0


def facts_task(seed: int, forget_fraction: float = 0.1, profile=None, n_people: int | None = None):
    """The facts of the profile (fixed, :data:`FACTS_SEED`; ``n_people`` overrides the profile's size) with
    ``forget_fraction`` of the people, drawn from ``seed``, to forget (chapter 15)."""
    from unlearnlib.facts import PEOPLE_BY_PROFILE, make_facts, make_facts_task

    profile = profile if profile is not None and not isinstance(profile, str) else get_profile(profile)
    facts = make_facts(n_people or PEOPLE_BY_PROFILE[profile.name], seed=FACTS_SEED)
    return make_facts_task(facts, forget_fraction, seed=seed)


def retrain_passes(task, cfg) -> cost.Passes:
    """Retraining's per-sample passes: every retain and general QA in every training template, forward and
    backward, once per epoch (:func:`unlearnlib.transformer.train_lm`'s loop)."""
    from unlearnlib.facts import n_train_paraphrases

    n = (len(task.retain) + len(task.general)) * n_train_paraphrases() * cfg.epochs
    return cost.Passes(forward=n, backward=n)


# ----------------------------------------------------------------------------------------------------------------
# The defaults' sweep
# ----------------------------------------------------------------------------------------------------------------

#: the grids of the sweep, per method: hyperparameter -> values (every combination is run).
SWEEP_GRID: dict[str, dict[str, list]] = {
    "ga": {"lr": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]},
    "grad_diff": {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "retain_weight": [1.0, 3.0, 10.0, 30.0]},
    "npo": {"lr": [3e-4, 1e-3, 3e-3], "beta": [0.1, 0.5, 2.0], "retain_weight": [0.0, 1.0, 3.0, 10.0]},
    "rmu": {"lr": [3e-3, 1e-2, 3e-2], "steering": [20.0, 50.0, 100.0], "alpha": [1.0, 10.0], "layer": [1]},
    "idk": {"lr": [3e-4, 1e-3, 3e-3], "retain_weight": [1.0, 3.0, 10.0]},
    "pcgrad": {"lr": [0.01, 0.02, 0.03, 0.1], "beta": [0.5, 0.7, 0.9, 0.97]},
    "unilateral_surgery": {"lr": [1e-3, 3e-3, 0.01, 0.03, 0.1], "eps": [0.0, -1.0, -10.0]},
    "implicit_surgery": {"lr": [1e-3, 3e-3, 0.01, 0.03, 0.1], "dual_lr": [1.0, 10.0], "eps": [0.0, -1.0]},
    "orthograd": {"lr": [0.01, 0.02, 0.03, 0.05, 0.1], "alpha": [0.0, 0.5, 0.75]},
    "masked:ga": {"lr": [0.03, 0.1, 0.3, 1.0, 3.0]},
    "masked:npo": {"lr": [0.03, 0.1, 0.3, 1.0, 3.0]},
}


def _grid(spec: dict[str, list]) -> list[dict]:
    combos = [{}]
    for name, values in spec.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return combos


def sweep(methods=None, seeds=SWEEP_SEEDS, forget_fraction: float = 0.1, profile=None, device=None,
          progress: bool = False, grid: dict | None = None, lm_config=None, n_people: int | None = None) -> dict:
    """Choose each method's defaults by the oracle-free rule of :mod:`unlearnlib.methods.language` (chapter 15).

    For every setting of :data:`SWEEP_GRID` and every held-out seed: run the method from the original model with
    the stopping rule, then measure the forget QA accuracy and the retain QA accuracy (canonical questions). A
    setting *qualifies* when its forget accuracy is at or below the target (the original's accuracy on the
    never-trained facts) on every seed; the rule picks the qualifying setting with the highest mean retain
    accuracy. No oracle is trained or consulted. ``grid`` replaces :data:`SWEEP_GRID`; ``lm_config`` and
    ``n_people`` as in :func:`run_facts`.
    """
    from unlearnlib.methods.language import accuracy_on, forget_target, get_language_method
    from unlearnlib.transformer import original_lm

    profile = get_profile(profile) if profile is None or isinstance(profile, str) else profile
    device = get_device(device)
    grid = SWEEP_GRID if grid is None else grid
    methods = list(grid) if methods is None else list(methods)
    unknown = [m for m in methods if m not in grid]
    if unknown:
        raise UnlearnError(f"no sweep grid for {', '.join(unknown)}; methods with a grid: {', '.join(grid)}")
    setups = []
    for seed in seeds:
        task = facts_task(seed, forget_fraction, profile, n_people)
        model = original_lm(task, lm_config, seed=seed, device=device)
        setups.append((seed, task, model, forget_target(task, model)))
    out = {"rule": "highest mean retain QA accuracy among the settings whose forget QA accuracy is at or below "
                   "the original model's accuracy on never-trained facts on every held-out seed",
           "seeds": list(seeds), "forget_fraction": forget_fraction, "profile": profile.name, "grid": {},
           "chosen": {}}
    for name in methods:
        fn = get_language_method(name)
        cells = []
        for params in _grid(grid[name]):
            per_seed = []
            for seed, task, model, target in setups:
                start = time.perf_counter()
                try:
                    unlearned = fn(model, task, seed=seed, **params)
                except UnlearnError as exc:  # a diverged run is a setting that does not qualify
                    per_seed.append({"seed": seed, "error": str(exc)})
                    continue
                tok = task.tokenizer
                per_seed.append({"seed": seed, "target": target,
                                 "forget_acc": accuracy_on(unlearned, tok, task.forget, device),
                                 "retain_acc": accuracy_on(unlearned, tok, task.retain, device),
                                 "time_s": time.perf_counter() - start})
            ok = all("error" not in r and r["forget_acc"] <= r["target"] for r in per_seed)
            mean_retain = (float(np.mean([r["retain_acc"] for r in per_seed]))
                           if all("error" not in r for r in per_seed) else None)
            cells.append({"params": params, "qualifies": ok, "mean_retain_acc": mean_retain, "per_seed": per_seed})
            if progress:
                print(f"{name} {params}: qualifies={ok} retain={mean_retain}", file=sys.stderr)
        out["grid"][name] = cells
        best = max((c for c in cells if c["qualifies"]), key=lambda c: c["mean_retain_acc"], default=None)
        out["chosen"][name] = best["params"] if best is not None else None
    return out


# ----------------------------------------------------------------------------------------------------------------
# The bench
# ----------------------------------------------------------------------------------------------------------------

def _public(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def _check_args(methods, seeds, forget_fraction) -> None:
    from unlearnlib.methods.language import get_language_method

    if not isinstance(methods, (list, tuple)) or not methods:
        raise UnlearnError("methods must be a non-empty list of language method names (e.g. ['npo', 'ga'])")
    for m in methods:
        get_language_method(m)   # raises the one-line error for an unknown name
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise UnlearnError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    if isinstance(forget_fraction, bool) or not isinstance(forget_fraction, numbers.Real) \
            or not 0 < forget_fraction < 1:
        raise UnlearnError(f"the forget fraction must lie strictly between 0 and 1 (e.g. 0.1), got {forget_fraction!r}")


def default_methods() -> list[str]:
    """Every registered language method (the facts track's default list)."""
    from unlearnlib.methods.language import LANGUAGE_REGISTRY

    return list(LANGUAGE_REGISTRY)


def run_facts(methods: list[str] | None = None, seeds: list[int] | None = None, forget_fraction: float = 0.1,
              profile=None, device=None, progress: bool = True, floor: bool = True,
              hyperparameters: dict[str, dict] | None = None, lm_config=None, n_people: int | None = None) -> dict:
    """Run ``methods`` (default: every language method) for ``seeds`` (default 0 .. the profile's seed count − 1)
    on the facts with ``forget_fraction`` of the people forgotten; return the bench's JSON (module docstring).

    ``hyperparameters``: per method, keyword arguments that replace its defaults. A method that raises on a seed
    is recorded in ``failures`` (method, seed, one-line error) and left out of the paired comparisons.
    ``lm_config`` (an :class:`~unlearnlib.transformer.LMConfig`) and ``n_people`` replace the profile's model
    and number of people (the tests use tiny ones).

    ``floor``: per seed, a second oracle (``replica=1``) is evaluated against the first: for the rates the floor
    row holds the absolute difference, for ``forget_quality``, ``privleak`` and ``lm_gap`` (already comparisons
    with the oracle) the second oracle's own value, i.e. what retraining with another seed scores.
    """
    from unlearnlib.experiment import Comparison, summarise
    from unlearnlib.lm_metrics import evaluate_lm
    from unlearnlib.methods.language import DEFAULTS, get_language_method
    from unlearnlib.transformer import LMConfig, original_lm, retrained_lm

    profile = get_profile(profile) if profile is None or isinstance(profile, str) else profile
    methods = default_methods() if methods is None else list(methods)
    seeds = list(range(profile.seeds)) if seeds is None else list(seeds)
    _check_args(methods, seeds, forget_fraction)
    hyperparameters = hyperparameters or {}
    device = get_device(device)
    cfg = lm_config or LMConfig.from_profile(profile)
    rows, references, floor_rows, failures = [], [], [], []
    started = time.perf_counter()
    for seed in seeds:
        task = facts_task(seed, forget_fraction, profile, n_people)
        t_models = time.perf_counter()
        original = original_lm(task, cfg, seed=seed, device=device)
        oracle = retrained_lm(task, cfg, seed=seed, device=device)
        reference = evaluate_lm(oracle, task)
        references.append(_public(reference))
        if floor:
            second = retrained_lm(task, cfg, seed=seed, device=device, replica=1)
            other = evaluate_lm(second, task, reference=reference)
            floor_rows.append({"seed": seed, **{k: other[k] if k in SELF_COMPARED else abs(other[k] - reference[k])
                                                for k in COMPARED}})
        if progress:
            print(f"seed {seed}: original and oracle(s) ready in {time.perf_counter() - t_models:.1f} s "
                  "(trained, or loaded from the cache)", file=sys.stderr)
        budget = retrain_passes(task, cfg)
        rows.append({"method": "original", "seed": seed, **_row(evaluate_lm(original, task, reference=reference)),
                     "time_s": 0.0, **cost.Passes().as_row(budget)})
        for name in methods:
            fn = get_language_method(name)
            try:
                with cost.counting() as passes:
                    synchronize(device)
                    t0 = time.perf_counter()
                    out = fn(original, task, seed=seed, **hyperparameters.get(name, {}))
                    synchronize(device)
                    elapsed = time.perf_counter() - t0
                metrics = evaluate_lm(out, task, reference=reference)
            except (UnlearnError, RuntimeError, ValueError) as exc:
                failures.append({"method": name, "seed": seed, "error": _one_line(exc)})
                continue
            rows.append({"method": name, "seed": seed, **_row(metrics), "time_s": elapsed,
                         **passes.as_row(budget)})
            if progress:
                print(f"seed {seed} {name}: forget {metrics['forget_acc']:.1f} retain {metrics['retain_acc']:.1f} "
                      f"gap {metrics['lm_gap']:.2f} ({elapsed:.1f} s)", file=sys.stderr)
    failed = {f["method"] for f in failures}
    complete = [r for r in rows if r["method"] not in failed]
    comparison = Comparison(scenario="facts", seeds=seeds, rows=complete, references=references,
                            floor_rows=floor_rows)
    paired, family = comparison.paired_stats(baselines=BASELINES, keys=list(COMPARED))
    keys = (*COMPARED, *EXTRA, "time_s", "passes", "passes_vs_retrain")
    reference_mean = {k: float(np.mean([r[k] for r in references])) for k in (*COMPARED, *EXTRA)
                      if k in references[0]}
    return {
        "config": {"dataset": "facts", "scenario": "random", "forget_fraction": forget_fraction,
                   "profile": profile.name, "seeds": seeds, "methods": methods, "device": str(device),
                   "n_people": len({q.person for q in task.forget + task.retain}), "facts_seed": FACTS_SEED,
                   "lm": asdict(cfg), "retrain_passes": budget.total,
                   "hyperparameters": {m: {**DEFAULTS.get(m, {}), **hyperparameters.get(m, {})} for m in methods},
                   "torch": torch.__version__, "python": platform.python_version(),
                   "wall_s": time.perf_counter() - started},
        "reference": reference_mean,
        "results": rows,
        "summary": summarise(rows, keys=keys),
        "floor": summarise([{"method": "floor", **r} for r in floor_rows], keys=COMPARED)["floor"] if floor_rows
        else {},
        "floor_per_seed": floor_rows,
        "paired": paired,
        "paired_family": family,
        "failures": failures,
    }


def load_committed(name: str = "facts_forget10") -> dict:
    """A committed facts-track result shipped in the package (``unlearnlib/results/<name>.json``, so that a chapter
    run from an installed wheel finds it): a benchmark report, checked by :func:`unlearnlib.records.load_bench`,
    or the defaults' sweep (``lm_sweep``)."""
    from unlearnlib import records

    report = records.load_result(name)
    return records.load_bench(name) if "results" in report else report


def _row(metrics: dict) -> dict:
    return {k: metrics[k] for k in (*COMPARED, *EXTRA) if k in metrics}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, status 2, as the contract's bad-input rule
        raise UnlearnError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m unlearnlib.lm_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=None, help="comma-separated language methods (default: all)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default: the profile's)")
    p.add_argument("--forget-fraction", type=float, default=0.1, help="fraction of the people to forget")
    p.add_argument("--profile", default=None, choices=["ci", "full", "auto"])
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-floor", action="store_true", help="skip the second oracle (the noise floor)")
    p.add_argument("--sweep", action="store_true", help="run the defaults' sweep on the held-out seeds instead")
    p.add_argument("--out", default=None, help="write the JSON here (default: stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.seeds is not None and args.seeds < 1:
            raise UnlearnError(f"--seeds must be a positive integer, got {args.seeds}")
        if args.out is not None:
            out = Path(args.out)
            if out.is_dir() or (out.parent != Path("") and not out.parent.is_dir()):
                raise UnlearnError(f"cannot write --out {out}: give a file in an existing folder")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods is not None else None
        if args.sweep:
            result = sweep(methods, forget_fraction=args.forget_fraction, profile=args.profile, device=args.device,
                           progress=not args.quiet)
            if methods is not None and args.out is not None and Path(args.out).is_file():
                # a sweep of some methods updates their entries of an existing sweep (the methods are
                # independent: the same seeds, models and targets), e.g. after widening one method's grid
                old = json.loads(Path(args.out).read_text())
                if {k: old.get(k) for k in ("seeds", "forget_fraction", "profile")} != \
                        {k: result[k] for k in ("seeds", "forget_fraction", "profile")}:
                    raise UnlearnError(f"{args.out} holds a sweep of other seeds, fraction or profile; "
                                       "write to a new file")
                old["grid"].update(result["grid"])
                old["chosen"].update(result["chosen"])
                result = old
        else:
            seeds = list(range(args.seeds)) if args.seeds is not None else None
            result = run_facts(methods, seeds, args.forget_fraction, profile=args.profile, device=args.device,
                               progress=not args.quiet, floor=not args.no_floor)
    except UnlearnError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    if not args.quiet and not args.sweep:
        print(f"done in {result['config']['wall_s']:.0f} s", file=sys.stderr)
    text = json.dumps(result, indent=1, default=_json_default)
    if args.out is None:
        print(text)
    else:
        Path(args.out).write_text(text + "\n")
    return 0


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


if __name__ == "__main__":
    sys.exit(main())
