"""``python -m unlearnlib.bench``: methods side by side on one task, written as JSON (contract items 1 and 5).

Two modes:

* the benchmark (default): for every seed, draw the forget set, take the cached original model and retrain
  oracle, run every method, evaluate it against the same seed's oracle, and write per-seed results and a summary
  (mean, standard deviation and the half-width of the 95 % Student-t confidence interval over seeds);
* ``--step-cost``: the time of one unlearning step of every method as a ratio to one gradient-ascent step on the
  same batches and model (the marginal time between two step budgets, after a warm-up, with CUDA synchronised,
  the methods timed round-robin; see :func:`step_times`).

The benchmark's JSON also holds the noise floor (``"floor"``: per metric, the distance between two independently
retrained oracles over seeds), the paired comparisons with the baselines (``"paired"``, Holm-corrected over the
family declared in ``"paired_family"``) and, with ``--audit``, the per-example audits of chapter 11 as row keys
(``ulira_auc``, ``ulira_tpr_at_1pct_fpr``, ``competition_score``; the oracle's values under ``"floor"``).

Beside the contract's keys, the benchmark's JSON holds ``"failures"`` (``[{"method", "seed", "error"}]``, empty
when every method ran), ``"undefined"`` (``{<metric>: reason}`` for a metric the task's set sizes leave undefined,
reported as ``null`` in every row; see :func:`unlearnlib.metrics.undefined_metrics`), ``"interrupted"`` and, in
``"summary"``, ``"gap_of_means"`` per method (:func:`unlearnlib.experiment.summarise`). Every row carries, beside
``time_s``, the contract's ``passes`` (per-sample forward plus backward passes used) and ``passes_vs_retrain``
(their ratio to retraining's), and ``forward_passes`` and ``backward_passes`` (:mod:`unlearnlib.cost`); the rows
are :func:`~unlearnlib.experiment.compare_methods`'s.

Exit status: 0 when every method ran; 1 when some method failed on some seed (its error is a ``warning:`` line
on stderr and an entry of ``"failures"`` in the JSON; the rows that finished are kept and written); 2 for bad
input or results that cannot be written, with one line on stderr that begins with ``error:``; 130 when
interrupted (Ctrl-C), after writing the rows finished so far with ``"interrupted": true``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from unlearnlib import UnlearnError
from unlearnlib.config import get_device, get_profile, synchronize
from unlearnlib.data import SCENARIOS, load_dataset, make_task
from unlearnlib.methods import REGISTRY, get_method, registry
from unlearnlib.models import MODELS
from unlearnlib import tuning
from unlearnlib.experiment import (AUDIT_KEYS, Comparison, compare_methods, flag_counts, format_paired, format_table,
                                   summarise)
from unlearnlib.metrics import undefined_metrics
from unlearnlib.train import TrainConfig

#: extra step-cost entries: a method run with other settings, timed beside the registered ones.
STEP_COST_VARIANTS = {"orthograd[loop]": ("orthograd", {"per_sample": "loop"}),
                      "orthograd[vmap]": ("orthograd", {"per_sample": "vmap"}),
                      "masked:ga[vmap]": ("masked:ga", {"route": "vmap"}),
                      "lur[first-order]": ("lur", {"second_order": False})}

#: the most seeds one run accepts: far beyond any study's needs, and small enough that a typing slip
#: (``--seeds 10000000``) fails at once instead of running for years.
MAX_SEEDS = 1000

EPILOG = """exit status: 0 every method ran; 1 some method failed on some seed (a warning line per failure on
stderr, the finished rows kept and written, the failures listed under "failures" in the JSON); 2 bad input, or
the results could not be written (an error line on stderr; an existing --out file is left as it was, and the
results are saved to a temporary file that the error line names); 130 interrupted (the finished rows written,
"interrupted": true). --out must name a file, not a folder; it is replaced only once the new results are
completely written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UnlearnError(f"{message}; run with --help for the options")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m unlearnlib.bench", description=__doc__.split("\n\n")[0], epilog=EPILOG)
    p.add_argument("--dataset", default="digits",
                   help="digits (default), digits-stress, mnist, fashion-mnist, cifar10, or a path to an .npz")
    p.add_argument("--data-root", default=None,
                   help="where torchvision datasets live (default $UNLEARN_DATA_ROOT, else ~/.cache/unlearnlib/data)")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset that is absent")
    # The defaults of --scenario and --forget-fraction are applied after parsing, so that an option the chosen
    # scenario does not use can be told apart from an untouched default and refused.
    p.add_argument("--scenario", default=None, choices=SCENARIOS,
                   help="random (default), class, mislabeled (a fraction of labels flipped; forget them) or "
                        "memorized (forget the most memorised fraction)")
    p.add_argument("--forget-fraction", type=float, default=None,
                   help="random, mislabeled and memorized scenarios: fraction of D to forget (default 0.1)")
    p.add_argument("--forget-class", type=int, default=None, help="class scenario only (required there): the class")
    p.add_argument("--methods", default=None, help="comma-separated method names (default: every registered method)")
    p.add_argument("--baselines", default=None,
                   help="comma-separated methods every other method is compared with, seed by seed (default: "
                        "ga,neggrad_plus, those of them that run)")
    p.add_argument("--audit", default=None,
                   help="audits, comma-separated: ulira, competition (chapter 11; they train shadow and replica "
                        "models, so they take several times longer than the benchmark alone), relearn (cheap)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"number of seeds, 1 to {MAX_SEEDS} (default: the profile's)")
    p.add_argument("--profile", default=None, choices=("ci", "full", "auto"),
                   help="default: $UNLEARN_PROFILE or auto; the option wins over the variable")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: $UNLEARN_DEVICE or auto)")
    p.add_argument("--model", default=None, choices=MODELS, help="override the profile's model")
    p.add_argument("--out", default=None, help="write the JSON to this file (its folder must exist and be writable; "
                                                "checked before the run starts)")
    p.add_argument("--step-cost", action="store_true", help="time one step of every method relative to GA")
    p.add_argument("--tune", action="store_true",
                   help="run the oracle-free tuning protocol (chapter 12) on this task instead of the benchmark and "
                        "write the chosen values (--out); --seeds is then the number of tuning seeds (100, 101, ...; "
                        "default 2)")
    p.add_argument("--retain-fraction", type=float, default=None,
                   help="every method may use only this fraction of D_r (a small retain subset, chapters 07-08); "
                        "with --tune, the values are tuned for that setting, and the benchmark applies the values "
                        "stored for it")
    p.add_argument("--guard", default=None,
                   help="the collapse guard's margin in points of accuracy (default 25, chapter 12), or none to switch "
                        "it off and see what it prevents")
    p.add_argument("--tuned", default="auto",
                   help="hyperparameters of the benchmark: auto (default: the values the package stores for this "
                        "dataset and scenario, else each method's defaults), none (the defaults), or a file "
                        "written by --tune")
    p.add_argument("--batch-size", type=int, default=None,
                   help="unlearning batch size (default: each method's own; with --step-cost, the profile's)")
    return p


def parse_methods(spec: str | None, modality: str = "vision") -> list[str]:
    """The method names of ``--methods``: every registered one of the dataset's modality when the option is
    absent; an empty value is an error, not a request for every method. Duplicates run once."""
    names = (list(registry(modality)) if spec is None
             else list(dict.fromkeys(m.strip() for m in spec.split(",") if m.strip())))
    if not names:
        raise UnlearnError("--methods is empty; give comma-separated names, e.g. ga,neggrad_plus, or leave the "
                           "option out to run every method")
    for name in names:
        get_method(name, modality)
    return names


def check_options(args) -> None:
    """Refuse options that the run would ignore or that cannot work, before anything is loaded or trained."""
    if args.dataset == "facts":
        given = [o for o, v in (("--scenario", args.scenario), ("--forget-class", args.forget_class),
                                ("--audit", args.audit), ("--baselines", args.baselines), ("--model", args.model),
                                ("--batch-size", args.batch_size), ("--guard", args.guard),
                                ("--retain-fraction", args.retain_fraction)) if v is not None]
        given += [o for o, v in (("--step-cost", args.step_cost), ("--tune", args.tune),
                                 ("--tuned", args.tuned != "auto")) if v]
        if given:
            raise UnlearnError(f"{', '.join(given)} do(es) not apply to --dataset facts (the language-model track "
                               "forgets --forget-fraction of the people, chapter 15); drop them")
    if args.step_cost:
        # The step cost always times the same class-wise batches of seed 0: these options would change nothing.
        given = [o for o, v in (("--scenario", args.scenario), ("--forget-fraction", args.forget_fraction),
                                ("--forget-class", args.forget_class), ("--seeds", args.seeds)) if v is not None]
        if given:
            raise UnlearnError(f"{', '.join(given)} do(es) not apply to --step-cost (it times fixed batches of "
                               "seed 0); drop them, or drop --step-cost to run the benchmark")
    scenario = args.scenario or "random"
    if scenario != "class" and args.forget_class is not None:
        raise UnlearnError(f"--forget-class applies to --scenario class only; add --scenario class, or drop "
                           f"--forget-class to run the {scenario} scenario")
    if scenario == "class" and args.forget_fraction is not None:
        raise UnlearnError("--forget-fraction does not apply to --scenario class; class-wise forgetting forgets "
                           "the whole class given by --forget-class, so drop --forget-fraction")
    if args.step_cost and (args.audit is not None or args.baselines is not None):
        raise UnlearnError("--audit and --baselines do not apply to --step-cost; drop them")
    if args.guard is not None:
        args.guard = parse_guard(args.guard)
    if args.retain_fraction is not None and not 0 < args.retain_fraction < 1:
        raise UnlearnError(f"--retain-fraction must lie strictly between 0 and 1, got {args.retain_fraction}")
    if args.retain_fraction is not None and args.step_cost:
        raise UnlearnError("--retain-fraction does not apply to --step-cost (it times fixed batches); drop it")
    if args.tune and (args.step_cost or args.audit is not None or args.baselines is not None
                      or args.tuned != "auto" or args.guard is not None):
        raise UnlearnError("--tune chooses hyperparameters and runs no benchmark: drop --step-cost, --audit, "
                           "--baselines, --guard and --tuned")
    if args.batch_size is not None and args.batch_size < 1:
        raise UnlearnError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.seeds is not None and not 1 <= args.seeds <= MAX_SEEDS:
        raise UnlearnError(f"--seeds must be at least 1, got {args.seeds}" if args.seeds < 1 else
                           f"--seeds must be at most {MAX_SEEDS}, got {args.seeds}; split a larger study into "
                           "several runs")


AUDITS = ("ulira", "competition", "relearn")


def parse_audits(spec: str | None) -> list[str]:
    """The audits of ``--audit``: none when the option is absent."""
    if spec is None:
        return []
    names = list(dict.fromkeys(a.strip() for a in spec.split(",") if a.strip()))
    if not names:
        raise UnlearnError(f"--audit is empty; give one or more of {', '.join(AUDITS)}")
    for name in names:
        if name not in AUDITS:
            raise UnlearnError(f"unknown audit {name!r}; use {' or '.join(AUDITS)} (comma-separated for both)")
    return names


def parse_baselines(spec: str | None, methods: list[str]) -> list[str]:
    """The baselines of the paired comparisons: by default GA and NegGrad+, those of them that run; named ones
    must run."""
    if spec is None:
        return [b for b in ("ga", "neggrad_plus") if b in methods]
    names = list(dict.fromkeys(b.strip() for b in spec.split(",") if b.strip()))
    missing = [b for b in names if b not in methods]
    if not names or missing:
        raise UnlearnError(f"--baselines must name methods of the run; {', '.join(missing) or 'none given'} "
                           f"not in --methods {','.join(methods)}")
    return names


def run_audits(audits: list[str], name: str, task, cfg, seed: int, device) -> dict:
    """The row keys of the per-example audits of ``name`` on one seed (chapter 11). (The relearning attack is
    computed with the row itself, by :func:`~unlearnlib.experiment.compare_methods`.)"""
    from unlearnlib import audits as audit_lib

    out = {}
    if "ulira" in audits:
        u = audit_lib.ulira(name, task, cfg, seed=seed, device=device, progress=False)
        out.update(ulira_auc=u["auc"], ulira_tpr_at_1pct_fpr=u["tpr_at_1pct_fpr"])
    if "competition" in audits:
        out["competition_score"] = audit_lib.competition_score(name, task, cfg, seed=seed, device=device,
                                                               progress=False)["score"]
    return out


def check_out(spec: str) -> Path:
    """The ``--out`` path, checked before the (long) run: it names a file (not a folder) in an existing folder
    where a file can be created. A device or pipe that exists (``/dev/stdout``) is written in place."""
    if not spec.strip():
        raise UnlearnError("--out is empty; give a file name such as results.json")
    out = Path(spec)
    if spec.endswith(("/", os.sep)) or out.is_dir():
        raise UnlearnError(f"--out {spec} is a directory; give a file name such as {out / 'results.json'}")
    if not out.parent.is_dir():
        what = "does not exist" if not out.parent.exists() else "is not a folder"
        raise UnlearnError(f"the folder of --out ({out.parent}) {what}; create it first or choose another --out")
    if out.exists() and not out.is_file():
        if not os.access(out, os.W_OK):
            raise UnlearnError(f"--out {out} cannot be written (permission denied); choose another --out")
        return out
    try:  # a file can be created beside it: the atomic write needs one there
        fd, probe = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UnlearnError(f"cannot write in the folder of --out ({out.parent}: {exc.strerror or exc}); "
                           "choose another --out") from None
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` holds either its previous content or all of ``text``, never a
    part: a temporary file in the same folder (so that the rename does not cross file systems), flushed and
    synced to the disk, then renamed over ``path``. A device or pipe is written in place."""
    if path.exists() and not path.is_file():
        with open(path, "w") as f:
            f.write(text)
        return
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:  # mkstemp makes the file private; a results file gets the usual permissions
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself reaches the disk with the folder's entry
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def _rescue(text: str) -> str | None:
    """Save results that could not be written where asked in a new temporary file; its path, or None."""
    try:
        fd, path = tempfile.mkstemp(prefix="unlearnlib-bench-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path
    except OSError:
        return None


def _one_line(message) -> str:
    """A message on one line: some library messages (a failed download lists every mirror) span several."""
    return " ".join(str(message).split())


def _finite(obj):
    """The report with NaN and infinities as ``null``: JSON has no such numbers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


@contextlib.contextmanager
def _settings_env(profile, device):
    """The run's profile and device exported while it runs: library code that reads ``UNLEARN_PROFILE`` or
    ``UNLEARN_DEVICE`` itself (a method's default training recipe, for one) must agree with the options
    given, and an unusable value left in the environment must not break a run that names its own."""
    saved = {k: os.environ.get(k) for k in ("UNLEARN_PROFILE", "UNLEARN_DEVICE")}
    os.environ.update(UNLEARN_PROFILE=profile.name, UNLEARN_DEVICE=str(device))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def task_setting(args, profile) -> tuple:
    """The scenario, forget fraction (None class-wise), dataset and training recipe the options describe."""
    scenario = args.scenario or "random"
    fraction = (args.forget_fraction if args.forget_fraction is not None else 0.1) if scenario != "class" else None
    data = load_dataset(args.dataset, args.data_root, args.download)
    cfg = TrainConfig.from_profile(profile)
    if args.model:
        cfg = dataclasses.replace(cfg, model=args.model)
    return scenario, fraction, data, cfg


def run_benchmark(args, profile, device) -> dict:
    """Every method on every seed; a method that fails on a seed is recorded in ``"failures"`` and the others go
    on. Each (method, seed) is its own :func:`~unlearnlib.experiment.compare_methods` call, so that the rows
    finished before a failure are kept; the original model, the oracle and the floor's second oracle come from
    the model cache after the first call of a seed. The audits (``--audit``) run per method and seed too; the
    oracle's audit values (method ``retrain``) are the audits' floor."""
    names = parse_methods(args.methods)
    baselines = parse_baselines(args.baselines, names)
    audits = parse_audits(args.audit)
    seeds = args.seeds if args.seeds is not None else profile.seeds
    scenario, fraction, data, cfg = task_setting(args, profile)
    task_args = {"forget_class": args.forget_class, "forget_fraction": fraction if fraction is not None else 0.1}
    # Up front, before anything trains: the task itself (a bad fraction or class fails here) and the metrics
    # its set sizes leave undefined. Every seed draws sets of the same sizes. (The memorized scenario's scores
    # come later, with the first seed: a placeholder of equal scores gives the set sizes.)
    probe = make_task(data, scenario, seed=0, scores=[0.0] * len(data.y_train), **task_args)
    undefined = undefined_metrics(probe)
    for metric, reason in undefined.items():
        print(f"warning: {metric} will be null: {reason}", file=sys.stderr)
    extra = {"batch_size": args.batch_size} if args.batch_size is not None else {}
    tuned_from, tuned = resolve_tuned(args.tuned, args.dataset, scenario, args.retain_fraction)
    if tuned is not None and tuned.get("retain_fraction") != args.retain_fraction:
        raise UnlearnError(f"the values of {tuned_from} were tuned for a retain fraction of "
                           f"{tuned.get('retain_fraction')}, not {args.retain_fraction}; pass the matching "
                           "--retain-fraction, or a file that --tune wrote for this setting")
    if args.guard is not None:  # "none" was parsed to the string "off": run_unlearning takes None
        extra["guard"] = None if args.guard == "off" else args.guard
    hyper = {n: {**tuning.tuned_kwargs(n, report=tuned), **extra} if tuned else dict(extra) for n in names}

    def variant(name):
        """The method with its hyperparameters and, on a retain subset, the seed's subset and steps."""
        if args.retain_fraction is None or name == "retrain":
            return name, hyper[name]
        return name, lambda t, s: {**tuning.subset_kwargs(name, t, args.retain_fraction, s), **hyper[name]}
    rows, references, floor_rows, failures, interrupted = [], {}, {}, [], False
    originals = []  # per seed, the original model's metrics against the seed's oracle: what there is to undo
    audit_floor = {}
    trains_audits = bool(set(audits) - {"relearn"})  # the relearning attack runs inside each row
    bar = tqdm(total=seeds * (len(names) + trains_audits), desc="methods x seeds", disable=not sys.stderr.isatty(),
               leave=False)
    try:
        for seed in range(seeds):
            task = None
            try:
                originals += compare_methods({"original": None}, scenario, data=data, cfg=cfg, seeds=[seed],
                                             device=device, progress=False, floor=False, **task_args).rows
            except Exception as exc:  # noqa: BLE001 - the methods' rows matter more than this one
                error = _one_line(f"{type(exc).__name__}: {exc}")
                failures.append({"method": "original", "seed": seed, "error": error})
            for name in names:
                try:
                    part = compare_methods({name: variant(name)}, scenario, data=data, cfg=cfg, seeds=[seed],
                                           device=device, progress=False, floor=seed not in floor_rows,
                                           relearn="relearn" in audits, **task_args)
                    row = part.rows[0]
                    if trains_audits:
                        task = task or make_task(data.to(device), scenario, seed=seed, cfg=cfg, **task_args)
                        row.update(run_audits(audits, name, task, cfg, seed, device))
                except Exception as exc:  # noqa: BLE001 - any fault of one method must not lose the others
                    error = _one_line(f"{type(exc).__name__}: {exc}")
                    failures.append({"method": name, "seed": seed, "error": error})
                    tqdm.write(f"warning: {name} failed on seed {seed}: {error}", file=sys.stderr)
                else:
                    rows.append(row)
                    references.setdefault(seed, part.references[0])
                    if part.floor_rows:
                        floor_rows[seed] = part.floor_rows[0]
                bar.update()
            if trains_audits and seed in floor_rows:
                try:
                    task = task or make_task(data.to(device), scenario, seed=seed, cfg=cfg, **task_args)
                    audit_floor[seed] = run_audits(audits, "retrain", task, cfg, seed, device)
                except Exception as exc:  # noqa: BLE001
                    error = _one_line(f"{type(exc).__name__}: {exc}")
                    failures.append({"method": "retrain (audit floor)", "seed": seed, "error": error})
                    tqdm.write(f"warning: the audits' floor failed on seed {seed}: {error}", file=sys.stderr)
                bar.update()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    done = sorted(references)
    comparison = Comparison(scenario, done, rows, [references[s] for s in done],
                            [{**floor_rows[s], **audit_floor.get(s, {})} for s in done if s in floor_rows])
    paired, family = comparison.paired_stats(baselines) if len(done) >= 2 else ({}, {})
    config = {"dataset": args.dataset, "scenario": scenario, "forget_fraction": fraction,
              "forget_class": args.forget_class if scenario == "class" else None,
              "methods": names, "baselines": baselines, "audits": audits, "seeds": seeds,
              "batch_size": args.batch_size, "profile": profile.name, "device": str(device), "train": cfg.__dict__,
              "shadow_models": profile.shadow_models if "ulira" in audits else None,
              "audit_replicas": profile.audit_replicas if "competition" in audits else None,
              "torch": torch.__version__, "tuned": tuned_from, "retain_fraction": args.retain_fraction,
              "hyperparameters": {n: hyper[n] for n in names if n != "retrain"}}
    return {"config": config, "reference": comparison.reference if done else {},
            "reference_per_seed": [{"seed": s, **references[s]} for s in done], "results": rows,
            "summary": comparison.summary, "floor": comparison.floor, "floor_per_seed": comparison.floor_rows,
            "paired": paired, "paired_family": family, "flags": flag_counts(rows),
            "original": summarise(originals).get("original", {}), "original_per_seed": originals,
            "failures": failures, "undefined": undefined, "interrupted": interrupted}


def parse_guard(spec: str):
    """``--guard``: ``none`` (returned as ``"off"``) or a margin in points, a positive number below 100."""
    if spec.strip().lower() == "none":
        return "off"
    try:
        margin = float(spec)
    except ValueError:
        margin = float("nan")
    if not 0 < margin < 100:
        raise UnlearnError(f"--guard must be none or a margin in points of accuracy between 0 and 100, got {spec!r}")
    return margin


def resolve_tuned(spec: str, dataset: str, scenario: str,
                  retain_fraction: float | None = None) -> tuple[str, dict | None]:
    """Where the benchmark's hyperparameters come from (``--tuned``): a description and the tuning report (for
    ``auto``, the values stored for the setting, retain subset included)."""
    if spec == "none":
        return "defaults", None
    if spec == "auto":
        report = tuning.stored(dataset, scenario, retain_fraction)
        name = tuning.setting_name(dataset, scenario, retain_fraction)
        return (f"stored: unlearnlib/tuned/{name}.json", report) if report else ("defaults (none stored)", None)
    return f"file: {spec}", tuning.load_tuned(spec)


#: the row keys of the language-model track (contract item 5), in table order.
FACTS_KEYS = ("forget_acc", "retain_acc", "truth_ratio", "rouge_l", "forget_quality", "privleak", "utility")


def run_facts_track(args, profile, device) -> dict:
    """``--dataset facts``: the language-model track of chapter 15 (:func:`unlearnlib.lm_bench.run_facts`), every
    language method by default, with the oracle's values, the noise floor and the paired differences."""
    from unlearnlib import lm_bench

    names = parse_methods(args.methods, "language")
    fraction = args.forget_fraction if args.forget_fraction is not None else 0.1
    seeds = list(range(args.seeds if args.seeds is not None else profile.seeds))
    report = lm_bench.run_facts(names, seeds, fraction, profile=profile, device=device,
                                progress=sys.stderr.isatty())
    report.setdefault("interrupted", False)
    return report


def run_tuning(args, profile, device) -> dict:
    """``--tune``: the protocol of :mod:`unlearnlib.tuning` on this task, for every method asked (default: every
    registered method but retrain)."""
    names = [n for n in parse_methods(args.methods) if n != "retrain"]
    if not names:
        raise UnlearnError("--methods names only retrain, which has nothing to tune; name the methods to tune")
    n = args.seeds if args.seeds is not None else len(tuning.TUNING_SEEDS)
    scenario, fraction, data, cfg = task_setting(args, profile)
    return tuning.tune(names, scenario, data=data, cfg=cfg, forget_class=args.forget_class,
                       forget_fraction=fraction or 0.1, seeds=range(tuning.TUNING_SEEDS[0], tuning.TUNING_SEEDS[0] + n),
                       device=device, progress=sys.stderr.isatty(), dataset_name=args.dataset,
                       retain_fraction=args.retain_fraction)


def median_time(fn, repeats: int = 5, device=None) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after one warm-up call; on CUDA the queue is
    drained around each call so that the time is the work's, not the launch's (chapters 04, 07-09)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def step_times(names, model, task, batch_size: int, budgets=(4, 20), rounds: int = 5,
               peaks: dict | None = None) -> dict[str, np.ndarray]:
    """Seconds per unlearning step of every method in ``names`` (registered names, ``masked:<base>`` or an entry
    of ``STEP_COST_VARIANTS``), ``rounds`` samples each (contract item 5; chapters 05-07).

    A sample is the *marginal* time between a run of ``budgets[1]`` steps and one of ``budgets[0]`` steps, so that
    copying the model and building the optimiser cancel. The methods are timed round-robin, one sample of each
    per round, so that a slow spell of a shared machine falls on every method of that round alike; divide by GA's
    sample *of the same round* to get a ratio that such spells do not bias. ``retrain`` is timed as one SGD step
    of the training recipe (``finetune``), which is what retraining repeats. On the CPU the clock is the process's
    CPU time (one thread: the work done, not the time spent waiting for a core another process holds); on CUDA it
    is wall-clock time between synchronisations. ``peaks``, if a dict, receives on CUDA the largest
    ``max_memory_allocated`` of each method's runs above what was allocated before them, in bytes.
    """
    device = next(model.parameters()).device
    clock = time.perf_counter if device.type == "cuda" else time.process_time

    def run(name, steps):
        base, extra = STEP_COST_VARIANTS.get(name, (name, {}))
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            held = torch.cuda.memory_allocated(device)
        start = clock()
        if base == "retrain":
            REGISTRY["finetune"](model, task, steps=steps, batch_size=batch_size, seed=0)
        else:
            get_method(base)(model, task, steps=steps, batch_size=batch_size, seed=0, stop_at=None, **extra)
        synchronize(device)
        elapsed = clock() - start
        if device.type == "cuda" and peaks is not None:
            peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated(device) - held)
        return elapsed

    names = list(dict.fromkeys(names))
    for name in names:
        run(name, budgets[0])  # warm-up: first-call costs (allocations, vmap tracing) are not a step's
    samples = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            samples[name].append((run(name, budgets[1]) - run(name, budgets[0])) / (budgets[1] - budgets[0]))
    return {name: np.asarray(v) for name, v in samples.items()}


def step_cost(args, profile, device, budgets=(4, 20), rounds: int = 7) -> dict:
    """Time per step of every method, divided by GA's on the same batches (contract item 5; chapter 07 runs it):
    the median over rounds of the ratio to GA's time in the same round (:func:`step_times`)."""
    names = parse_methods(args.methods)
    batch = args.batch_size if args.batch_size is not None else profile.unlearn_batch_size
    if batch < 1:
        raise UnlearnError(f"--batch-size must be at least 1, got {batch}")
    data = load_dataset(args.dataset, args.data_root, args.download).to(device)
    model_name = args.model or profile.model
    task = make_task(data, "class", forget_class=int(data.y_train[0]), seed=0)
    from unlearnlib.models import make_model
    model = make_model(model_name, data.input_shape, data.num_classes, seed=0).to(device)

    names = names + [v for v, (base, extra) in STEP_COST_VARIANTS.items() if base in names
                     and not (extra.get("per_sample") == "loop" and (batch > 32 or model_name == "resnet18"))]
    # (the Python-loop reference runs B sequential passes per step: timed for the small models at B <= 32 only)
    peaks: dict[str, int] = {}
    times = step_times(["ga", *names], model, task, batch, budgets, rounds, peaks=peaks)

    import inspect

    from unlearnlib.grads import BYTE_ROUTES, per_sample_bytes

    def route_of(name):
        """How the method gets per-sample information: its ``per_sample``/``route`` setting, or "batch"."""
        base, extra = STEP_COST_VARIANTS.get(name, (name, {}))
        if base == "retrain":
            return "batch"
        sig = inspect.signature(get_method(base)).parameters
        for key in ("per_sample", "route"):
            if key in extra:
                return extra[key]
            if key in sig and sig[key].default is not inspect.Parameter.empty:
                return sig[key].default
        return "batch"

    route = {name: route_of(name) for name in ["ga", *names]}
    if device.type != "cuda":   # counted from the shapes on the meta device (unlearnlib.grads.per_sample_bytes)
        xb, yb = task.x_retain[:batch], task.y_retain[:batch]
        peaks = {name: per_sample_bytes(model, xb, yb, r) if r in BYTE_ROUTES else 0 for name, r in route.items()}
    ratio = {name: float(np.median(times[name] / times["ga"])) for name in names}
    step_ms = {name: 1000 * float(np.median(times[name])) for name in names}
    for name in names:
        print(f"  {name:20s} {step_ms[name]:8.2f} ms/step  {ratio[name]:5.2f}x GA  {route[name]:9s} "
              f"{peaks.get(name, 0) / 2**20:9.1f} MiB", file=sys.stderr)
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "model": model_name,
            "batch_size": batch, "dataset": args.dataset, "ga_step_ms": 1000 * float(np.median(times["ga"])),
            "step_ms": step_ms, "ratio": ratio, "route": route,
            "peak_bytes": {name: int(peaks.get(name, 0)) for name in ["ga", *names]},
            "ratio_range": {name: [float((times[name] / times["ga"]).min()), float((times[name] / times["ga"]).max())]
                            for name in names},
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "note": "marginal time per step between budgets of %d and %d steps; ratio: median over %d rounds of "
                    "the ratio to GA in the same round (ratio_range: its smallest and largest); retrain = one SGD "
                    "step of the training recipe; time: %s; route: how per-sample information is obtained "
                    "(batch: none); peak_bytes: %s" % (
                        budgets[0], budgets[1], rounds,
                        "wall clock" if device.type == "cuda" else "CPU time of the process (one thread)",
                        "CUDA max_memory_allocated during the method's runs above what was allocated before"
                        if device.type == "cuda" else "counted from the shapes, the per-sample work of one "
                        "retain batch beyond a batch backward pass (unlearnlib.grads.per_sample_bytes), 0 for "
                        "the batch route")}


def main(argv=None) -> int:
    """The command; returns the exit status (see the module's docstring and ``--help``)."""
    try:
        args = build_parser().parse_args(argv)
        check_options(args)
        profile = get_profile(args.profile)    # --profile, when given, wins over UNLEARN_PROFILE
        device = get_device(args.device)
        out = check_out(args.out) if args.out is not None else None
        with _settings_env(profile, device):
            run = (run_facts_track if args.dataset == "facts" else step_cost if args.step_cost
                   else run_tuning if args.tune else run_benchmark)
            report = run(args, profile, device)
    except UnlearnError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any row finished (the benchmark's loop keeps the rows it has)
        print("error: interrupted before any result was finished; nothing was written", file=sys.stderr)
        return 130
    # The table first: it is on the screen whatever happens to the file.
    if args.tune:
        print(tuning.format_choices(report))
    elif args.dataset == "facts":
        print(format_table(report["summary"], report["reference"], keys=FACTS_KEYS, floor=report["floor"]))
        if report["paired"]:
            print(format_paired(report["paired"], report["paired_family"], key="forget_acc"))
    elif not args.step_cost:
        keys = ("UA", "RA", "TA", "MIA", "gap", "time_s")
        if report["config"]["scenario"] == "mislabeled":
            keys = ("UA", "true_label_acc", *keys[1:])
        keys += tuple(k for k in AUDIT_KEYS if any(k in r for r in report["results"]))
        print(format_table(report["summary"], report["reference"], keys=keys, floor=report["floor"]))
        if report["paired"]:
            print(format_paired(report["paired"], report["paired_family"]))
        if report["flags"]:
            print("guardrail flags (runs per method): " + "; ".join(
                f"{m} " + ", ".join(f"{f} {n}" for f, n in fl.items()) for m, fl in report["flags"].items()))
    else:
        print(json.dumps(report["ratio"], indent=2))
    sys.stdout.flush()
    if out is not None:
        text = json.dumps(_finite(report), indent=2) + "\n"
        try:
            write_atomic(out, text)
        except OSError as exc:
            rescued = _rescue(text)
            where = (f"the results were saved to {rescued} instead" if rescued else
                     "the table above is all that remains of the results")
            kept = "; the previous file is unchanged" if out.is_file() else ""
            print(f"error: cannot write --out {out} ({exc.strerror or exc}){kept}; {where}", file=sys.stderr)
            return 2
    if args.step_cost or args.tune:
        return 0
    if report["interrupted"]:
        print("error: interrupted; the rows finished so far are kept" + (f" in {out}" if out else ""),
              file=sys.stderr)
        return 130
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
