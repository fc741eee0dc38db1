"""A fair tuning protocol that never looks at the oracle, the same for every method (chapter 12).

Why: a method tuned on one setting and compared with a baseline left at defaults chosen elsewhere wins by its
tuning, not by its idea. Every method here gets the same treatment:

* **Tuning seeds** :data:`TUNING_SEEDS` (100 and 101): never the seeds 0, 1, ... that chapters and the benchmark
  report, so the chosen values are not fitted to the reported runs.
* **A validation slice** of the retain set, :data:`VALIDATION_FRACTION` of D_r (at most :data:`VALIDATION_MAX`
  samples), withheld from the method during tuning: the retain accuracy the rule maximises is measured on data
  the method did not train on.
* **The same grid size**: :data:`GRID_SIZE` candidates per method. The learning rate, the one hyperparameter
  every method has, on a log grid around the method's default: ×1/16 to ×8 in factors of 2 for a method with no
  weight of its own; ×1/4 to ×2 crossed with two values of its own weight (:data:`KNOBS`: NegGrad+'s and PCGrad's
  retain weight β, the l1 strength, the surgery's constraint level ε, LUR's look-ahead step, the masked add-on's
  test level δ) for a method that has one. A candidate that cannot run (a value outside the method's domain) is
  reported under ``"failed"`` and left out.
* **The same budget**: every candidate run stops once it has used as many per-sample passes as retraining
  from scratch would (:data:`BUDGET` × :func:`unlearnlib.cost.training_passes`): past that point retraining is
  the cheaper way to the oracle itself.
* **The collapse guard stays on** (:func:`unlearnlib.methods._loop.run_unlearning`).
* **The rule, without the oracle**: a candidate *reaches* the forget target when its forget accuracy, averaged
  over the tuning seeds, has covered at least :data:`REACH` of the way from the original model's to the target
  of :func:`~unlearnlib.methods._loop.forget_target` (chance level class-wise, the model's test accuracy for a
  random forget set). Among the candidates that reach it, the one with the highest validation accuracy is chosen;
  when none does, the one with the lowest forget accuracy, and the choice is marked ``"reached": false``.

:func:`tune` runs the protocol on any task the benchmark accepts (``python -m unlearnlib.bench --tune``), and
:func:`tuned_kwargs` reads the values stored in the package (``unlearnlib/tuned/<dataset>-<scenario>.json``), which
the benchmark applies by default. The registry's defaults are the values tuned on digits, class-wise.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from unlearnlib import cost
from unlearnlib.config import get_device, get_profile
from unlearnlib.data import Dataset, UnlearningTask, load_dataset, make_task
from unlearnlib.errors import UnlearnError
from unlearnlib.methods import MASKED_LR, REGISTRY, get_method
from unlearnlib.methods._loop import forget_target
from unlearnlib.metrics import accuracy
from unlearnlib.train import TrainConfig, original_model

#: the seeds the protocol tunes on (never reported).
TUNING_SEEDS = (100, 101)
#: the share of D_r withheld as the validation slice.
VALIDATION_FRACTION = 0.1
#: the largest validation slice.
VALIDATION_MAX = 500
#: candidates per method.
GRID_SIZE = 8
#: a candidate's budget of per-sample passes, as a multiple of retraining's.
BUDGET = 1.0
#: the share of the way from the original model's forget accuracy to the target a candidate must cover.
REACH = 0.95
#: a method's own weight, tuned beside the learning rate: the name and its two values (the default first).
KNOBS = {
    "neggrad_plus": ("beta", (0.97, 0.99)),
    "pcgrad": ("beta", (0.99, 0.97)),
    "l1_sparse": ("alpha", (1e-3, 1e-4)),
    "unilateral_surgery": ("eps", (-1.0, 0.0)),
    "implicit_surgery": ("eps", (-1.0, 0.0)),
    "lur": ("alpha", (0.1, 0.01)),
}
#: the learning-rate factors of a method with (``knob``) and without (``lr``) a weight of its own.
LR_FACTORS = {"lr": (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8), "knob": (1 / 4, 1 / 2, 1, 2)}
#: methods whose epochs count passes over the retain set: on a retain subset they get the steps they would take
#: on the whole of D_r, so that a small subset does not also shrink their budget of steps.
RETAIN_DRIVEN = ("finetune", "neggrad_plus", "scrub", "l1_sparse", "pcgrad")
#: where the package keeps the tuned values it ships.
TUNED_DIR = Path(__file__).parent / "tuned"


def default_lr(name: str) -> float:
    """The learning rate a method runs with when none is given (its registry default)."""
    if name.startswith("masked:"):
        base = name[len("masked:"):]
        return MASKED_LR.get(base, default_lr(base))
    par = inspect.signature(REGISTRY[name]).parameters.get("lr")
    if par is None or par.default is inspect.Parameter.empty:
        raise UnlearnError(f"method {name!r} has no learning rate to tune")
    return float(par.default)


def knob_of(name: str) -> tuple[str, tuple] | None:
    """The weight of its own that a method tunes beside the learning rate, if any (the masked add-on: δ)."""
    if name.startswith("masked:"):
        return ("delta", (0.1, 0.05))
    return KNOBS.get(name)


def grid(name: str) -> list[dict]:
    """The :data:`GRID_SIZE` candidates of ``name`` (keyword arguments of the method)."""
    if name == "retrain":
        raise UnlearnError("retrain has nothing to tune; leave it out of --methods")
    get_method(name)
    lr0, knob = default_lr(name), knob_of(name)
    if knob is None:
        return [{"lr": lr0 * f} for f in LR_FACTORS["lr"]]
    key, values = knob
    return [{"lr": lr0 * f, key: v} for v in values for f in LR_FACTORS["knob"]]


def validation_split(task: UnlearningTask, seed: int) -> tuple[UnlearningTask, torch.Tensor]:
    """The task without its validation slice, and the slice (indices into the training set)."""
    n = len(task.retain_idx)
    k = min(VALIDATION_MAX, max(1, int(round(VALIDATION_FRACTION * n))))
    if n - k < 2:
        raise UnlearnError(f"the retain set has {n} samples: too few to withhold a validation slice; tuning needs "
                           "at least a few dozen retain samples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 4099))  # host: CPU generator
    keep, val = perm[k:].sort().values, perm[:k].sort().values
    idx = task.retain_idx.cpu()
    return dataclasses.replace(task, retain_idx=idx[keep].to(task.retain_idx.device)), idx[val]


def select(candidates: list[dict], target: float, start: float) -> dict:
    """The protocol's rule (module docstring) over candidates with mean ``forget_acc`` and ``val_acc``."""
    need = target + (1 - REACH) * max(0.0, start - target)
    reached = [c for c in candidates if c["forget_acc"] <= need]
    if reached:
        best = max(reached, key=lambda c: (c["val_acc"], -c["passes_vs_retrain"]))
    else:
        best = min(candidates, key=lambda c: (c["forget_acc"], -c["val_acc"]))
    return {"kwargs": best["kwargs"], "reached": bool(reached), "forget_acc": best["forget_acc"],
            "val_acc": best["val_acc"], "passes_vs_retrain": best["passes_vs_retrain"],
            "guard_stopped": best["guard_stopped"], "need_forget_acc": need}


def tune(methods: list[str], scenario: str = "class", *, data: Dataset | None = None, cfg: TrainConfig | None = None,
         forget_class: int = 3, forget_fraction: float = 0.1, seeds=TUNING_SEEDS, device=None,
         progress: bool = True, dataset_name: str | None = None, retain_fraction: float | None = None) -> dict:
    """Run the protocol for every method on the tuning seeds; the report of the choices and every candidate.

    The original model of each tuning seed is trained (or taken from the cache); no oracle is trained. With
    ``retain_fraction``, every method may use only that fraction of D_r (``retain_positions``, drawn per seed, as
    chapters 07 and 08 do), and the baselines are tuned in that setting too; methods of :data:`RETAIN_DRIVEN` get
    the number of steps their default epochs give on the whole of D_r.
    """
    if retain_fraction is not None and not 0 < retain_fraction < 1:
        raise UnlearnError(f"the retain fraction must lie in (0, 1), got {retain_fraction}")
    profile = get_profile()
    device = get_device(device)
    data = (data if data is not None else load_dataset(profile.dataset)).to(device)
    cfg = cfg or TrainConfig.from_profile(profile)
    seeds = list(seeds)
    if not seeds:
        raise UnlearnError("tuning needs at least one seed")
    grids = {m: grid(m) for m in methods}
    setups = []
    for seed in seeds:
        task = make_task(data, scenario, forget_fraction=forget_fraction, forget_class=forget_class, seed=seed,
                         cfg=cfg)
        m0 = original_model(task.data, cfg, seed=seed, device=device, progress=False)
        sub, val = validation_split(task, seed)
        budget = max(1, int(BUDGET * cost.training_passes(len(task.retain_idx), cfg.epochs).total))
        extra = {}
        if retain_fraction is not None:
            extra["retain_positions"] = subset_positions(sub, retain_fraction, seed)
        setups.append({"seed": seed, "task": sub, "m0": m0, "extra": extra, "x_val": task.data.x_train[val],
                       "y_val": task.data.y_train[val], "budget": budget,
                       "target": forget_target(sub, m0), "start": accuracy(m0, sub.x_forget, sub.y_forget)})
    target = float(np.mean([s["target"] for s in setups]))
    start = float(np.mean([s["start"] for s in setups]))
    report = {"protocol": protocol(), "dataset": dataset_name or data.name, "scenario": scenario,
              "retain_fraction": retain_fraction,
              "forget_class": forget_class if scenario == "class" else None,
              "forget_fraction": None if scenario == "class" else forget_fraction, "seeds": seeds,
              "profile": profile.name, "train": dataclasses.asdict(cfg), "target_forget_acc": target,
              "start_forget_acc": start, "methods": {}}
    bar = tqdm(total=sum(len(g) for g in grids.values()) * len(seeds), desc="tuning: candidates x seeds",
               disable=not progress, leave=False, delay=5)
    for name, candidates in grids.items():
        fn, scored, failed = get_method(name), [], []
        for kw in candidates:
            runs = []
            for s in setups:
                try:
                    with cost.counting() as used:
                        model = fn(s["m0"], s["task"], seed=s["seed"], max_passes=s["budget"],
                                   **s["extra"], **subset_steps(name, s), **kw)
                except (UnlearnError, RuntimeError, ValueError) as exc:  # a candidate that cannot run is dropped
                    runs.append({"error": " ".join(f"{type(exc).__name__}: {exc}".split())})
                    bar.update()
                    continue
                runs.append({"forget_acc": accuracy(model, s["task"].x_forget, s["task"].y_forget),
                             "val_acc": accuracy(model, s["x_val"], s["y_val"]),
                             "ratio": used.total / (s["budget"] / BUDGET),
                             "guard": bool(getattr(model, "guard_stopped", False))})
                bar.update()
            errors = [r["error"] for r in runs if "error" in r]
            if errors:
                failed.append({"kwargs": kw, "error": errors[0]})
                continue
            scored.append({"kwargs": kw, "forget_acc": float(np.mean([r["forget_acc"] for r in runs])),
                           "val_acc": float(np.mean([r["val_acc"] for r in runs])),
                           "passes_vs_retrain": float(np.mean([r["ratio"] for r in runs])),
                           "guard_stopped": sum(r["guard"] for r in runs)})
        if not scored:
            raise UnlearnError(f"no candidate of {name} could run ({failed[0]['error']}); check its grid")
        report["methods"][name] = {**select(scored, target, start), "candidates": scored, "failed": failed}
    bar.close()
    return report


def subset_positions(task: UnlearningTask, fraction: float, seed: int, batch_size: int = 32) -> torch.Tensor:
    """A small retain subset, positions into ``task.x_retain``: ``fraction`` of D_r, at least one batch (chapter
    07's draw)."""
    n = max(batch_size, round(fraction * len(task.retain_idx)))
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randperm(len(task.retain_idx), generator=g)[:n].to(task.retain_idx.device)  # host: CPU generator


def subset_kwargs(name: str, task: UnlearningTask, fraction: float, seed: int) -> dict:
    """What a method runs with when it may use only ``fraction`` of D_r: the seed's subset (``retain_positions``,
    :func:`subset_positions`) and, for a retain-driven method, :func:`subset_steps` (the tuning and the benchmark
    of a retain subset, chapters 07, 08 and 12)."""
    extra = {"retain_positions": subset_positions(task, fraction, seed)}
    return {**extra, **subset_steps(name, {"task": task, "extra": extra})}


def subset_steps(name: str, setup: dict, batch_size: int = 32) -> dict:
    """``steps`` for a retain-driven method on a subset: its default epochs over the whole of D_r."""
    base = name[len("masked:"):] if name.startswith("masked:") else name
    if "retain_positions" not in setup["extra"] or base not in RETAIN_DRIVEN:
        return {}
    epochs = inspect.signature(REGISTRY[base]).parameters["epochs"].default
    return {"steps": int(epochs * math.ceil(len(setup["task"].retain_idx) / batch_size))}


def protocol() -> dict:
    """The protocol's constants, stored with every tuning report so that a reader can tell how it was made."""
    return {"seeds": list(TUNING_SEEDS), "validation_fraction": VALIDATION_FRACTION,
            "validation_max": VALIDATION_MAX, "grid_size": GRID_SIZE, "lr_factors": LR_FACTORS,
            "knobs": {k: list(v) for k, v in {**KNOBS, "masked:*": ("delta", (0.1, 0.05))}.items()},
            "budget_vs_retrain": BUDGET, "reach": REACH,
            "rule": "among candidates whose mean forget accuracy covers at least `reach` of the way from the "
                    "original model's to the oracle-free target, the highest mean accuracy on the withheld "
                    "validation slice of D_r; if none, the lowest mean forget accuracy"}


def setting_name(dataset: str, scenario: str, retain_fraction: float | None = None) -> str:
    """The file stem of a setting's tuned values: ``<dataset>-<scenario>``, the dataset reduced to its name, and
    ``-retain<percent>`` for a retain subset."""
    stem = Path(dataset).stem if dataset.endswith(".npz") else dataset
    return f"{stem}-{scenario}" + (f"-retain{round(100 * retain_fraction)}" if retain_fraction else "")


def load_tuned(path: str | Path) -> dict:
    """A tuning report from a file, checked enough that a wrong file fails with a clear message."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise UnlearnError(f"no tuned values at {path}; run python -m unlearnlib.bench --tune ... --out {path} "
                           "first") from None
    except (OSError, ValueError) as exc:
        raise UnlearnError(f"cannot read tuned values from {path} ({exc}); write them again with --tune") from None
    if not isinstance(report, dict) or not isinstance(report.get("methods"), dict) or any(
            not isinstance(v, dict) or not isinstance(v.get("kwargs"), dict) for v in report["methods"].values()):
        raise UnlearnError(f"{path} is not a tuning report (no 'methods' with 'kwargs'); write it with --tune")
    return report


def stored(dataset: str, scenario: str, retain_fraction: float | None = None) -> dict | None:
    """The tuning report the package ships for a setting, or None."""
    path = TUNED_DIR / f"{setting_name(dataset, scenario, retain_fraction)}.json"
    return load_tuned(path) if path.is_file() else None


def tuned_kwargs(name: str, dataset: str = "digits", scenario: str = "class", report: dict | None = None,
                 retain_fraction: float | None = None) -> dict:
    """The tuned keyword arguments of ``name`` in a setting (from ``report``, else the package's stored values);
    empty when the setting or the method was not tuned, so the method runs with its defaults."""
    report = report if report is not None else stored(dataset, scenario, retain_fraction)
    if report is None:
        return {}
    entry = report["methods"].get(name)
    return dict(entry["kwargs"]) if entry else {}


def format_choices(report: dict) -> str:
    """The chosen values as a text table: method, values, mean forget and validation accuracy, passes/retrain."""
    subset = f", {100 * report['retain_fraction']:g} % of D_r" if report.get("retain_fraction") else ""
    lines = [f"tuned on {report['dataset']} ({report['scenario']}{subset}), seeds {report['seeds']}; forget target "
             f"{report['target_forget_acc']:.1f} % (start {report['start_forget_acc']:.1f} %)"]
    for name, e in report["methods"].items():
        kw = ", ".join(f"{k}={_short(v)}" for k, v in e["kwargs"].items())
        note = "" if e["reached"] else "  (target not reached)"
        guard = f"  guard {e['guard_stopped']}" if e["guard_stopped"] else ""
        lines.append(f"{name:24s} {kw:28s} forget {e['forget_acc']:5.1f}  val {e['val_acc']:5.1f}  "
                     f"passes/retrain {e['passes_vs_retrain']:.2f}{guard}{note}")
    return "\n".join(lines)


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) and not math.isinf(v) else str(v)
