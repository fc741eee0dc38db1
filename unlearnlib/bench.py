"""``python -m unlearnlib.bench``: methods side by side on one task, written as JSON (contract items 1 and 5).

Two modes:

* the benchmark (default): for every seed, draw the forget set, take the cached original model and retrain
  oracle, run every method, evaluate it against the same seed's oracle, and write per-seed results and a summary
  (mean, standard deviation and the half-width of the 95 % Student-t confidence interval over seeds);
* ``--step-cost``: the time of one unlearning step of every method as a ratio to one gradient-ascent step on the
  same batches and model (the marginal time between two step budgets, after a warm-up, with CUDA synchronised,
  the methods timed round-robin; see :func:`step_times`).

Bad input exits with status 2 and one line on stderr that begins with ``error:``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unlearnlib import UnlearnError
from unlearnlib.config import get_device, get_profile, synchronize
from unlearnlib.data import load_dataset, make_task
from unlearnlib.methods import REGISTRY, get_method
from unlearnlib.models import MODELS
from unlearnlib.experiment import compare_methods, format_table
from unlearnlib.train import TrainConfig

#: extra step-cost entries: a method run with other settings, timed beside the registered ones.
STEP_COST_VARIANTS = {"orthograd[loop]": ("orthograd", {"per_sample": "loop"}),
                      "lur[first-order]": ("lur", {"second_order": False})}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UnlearnError(f"{message}; run with --help for the options")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m unlearnlib.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", help="digits (default), mnist, fashion-mnist, cifar10, or a path to an .npz")
    p.add_argument("--data-root", default=None, help="where torchvision datasets live (default ~/.cache/unlearnlib/data)")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset that is absent")
    p.add_argument("--scenario", default="random", choices=("random", "class"))
    p.add_argument("--forget-fraction", type=float, default=0.1, help="random scenario: fraction of D to forget")
    p.add_argument("--forget-class", type=int, default=None, help="class scenario: the class to forget")
    p.add_argument("--methods", default=None, help="comma-separated method names (default: every registered method)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the profile's)")
    p.add_argument("--profile", default=None, choices=("ci", "full", "auto"), help="default: $UNLEARN_PROFILE or auto")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: $UNLEARN_DEVICE or auto)")
    p.add_argument("--model", default=None, choices=MODELS, help="override the profile's model")
    p.add_argument("--out", default=None, help="write the JSON here")
    p.add_argument("--step-cost", action="store_true", help="time one step of every method relative to GA")
    p.add_argument("--batch-size", type=int, default=None, help="step cost: batch size (default: the profile's)")
    return p


def parse_methods(spec: str | None) -> list[str]:
    names = list(REGISTRY) if not spec else [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise UnlearnError("--methods is empty; give comma-separated names, e.g. ga,neggrad_plus")
    for name in names:
        get_method(name)
    return names


def run_benchmark(args, profile, device) -> dict:
    names = parse_methods(args.methods)
    seeds = args.seeds if args.seeds is not None else profile.seeds
    if seeds < 1:
        raise UnlearnError(f"--seeds must be at least 1, got {seeds}")
    data = load_dataset(args.dataset, args.data_root, args.download)
    cfg = TrainConfig.from_profile(profile)
    if args.model:
        cfg = TrainConfig(model=args.model, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr)
    comparison = compare_methods(names, args.scenario, data=data, cfg=cfg, seeds=range(seeds),
                                 forget_class=args.forget_class, forget_fraction=args.forget_fraction,
                                 device=device, progress=sys.stderr.isatty())
    config = {"dataset": args.dataset, "scenario": args.scenario,
              "forget_fraction": args.forget_fraction if args.scenario == "random" else None,
              "forget_class": args.forget_class if args.scenario == "class" else None,
              "methods": names, "seeds": seeds, "profile": profile.name, "device": str(device),
              "train": cfg.__dict__, "torch": torch.__version__}
    return {"config": config, "reference": comparison.reference, "results": comparison.rows,
            "summary": comparison.summary}


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


def step_times(names, model, task, batch_size: int, budgets=(4, 20), rounds: int = 5) -> dict[str, np.ndarray]:
    """Seconds per unlearning step of every method in ``names`` (registered names, ``masked:<base>`` or an entry
    of ``STEP_COST_VARIANTS``), ``rounds`` samples each (contract item 5; chapters 05-07).

    A sample is the *marginal* time between a run of ``budgets[1]`` steps and one of ``budgets[0]`` steps, so that
    copying the model and building the optimiser cancel. The methods are timed round-robin, one sample of each
    per round, so that a slow spell of a shared machine falls on every method of that round alike; divide by GA's
    sample *of the same round* to get a ratio that such spells do not bias. ``retrain`` is timed as one SGD step
    of the training recipe (``finetune``), which is what retraining repeats.
    """
    device = next(model.parameters()).device

    def run(name, steps):
        base, extra = STEP_COST_VARIANTS.get(name, (name, {}))
        synchronize(device)
        start = time.perf_counter()
        if base == "retrain":
            REGISTRY["finetune"](model, task, steps=steps, batch_size=batch_size, seed=0)
        else:
            get_method(base)(model, task, steps=steps, batch_size=batch_size, seed=0, stop_at=None, **extra)
        synchronize(device)
        return time.perf_counter() - start

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

    names = names + [v for v, (base, _) in STEP_COST_VARIANTS.items() if base in names]
    times = step_times(["ga", *names], model, task, batch, budgets, rounds)
    ratio = {name: float(np.median(times[name] / times["ga"])) for name in names}
    step_ms = {name: 1000 * float(np.median(times[name])) for name in names}
    for name in names:
        print(f"  {name:20s} {step_ms[name]:8.2f} ms/step  {ratio[name]:5.2f}x GA", file=sys.stderr)
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "model": model_name,
            "batch_size": batch, "dataset": args.dataset, "ga_step_ms": 1000 * float(np.median(times["ga"])),
            "step_ms": step_ms, "ratio": ratio,
            "ratio_range": {name: [float((times[name] / times["ga"]).min()), float((times[name] / times["ga"]).max())]
                            for name in names},
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "note": "marginal time per step between budgets of %d and %d steps; ratio: median over %d rounds of "
                    "the ratio to GA in the same round (ratio_range: its smallest and largest); retrain = one SGD "
                    "step of the training recipe" % (budgets[0], budgets[1], rounds)}


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        profile = get_profile(args.profile)
        device = get_device(args.device)
        if args.out:
            out = Path(args.out)
            if out.exists() and out.is_dir():
                raise UnlearnError(f"--out {out} is a directory; give a file name such as results.json")
            if not out.parent.exists():
                raise UnlearnError(f"the folder of --out ({out.parent}) does not exist; create it first")
        report = step_cost(args, profile, device) if args.step_cost else run_benchmark(args, profile, device)
    except UnlearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if not args.step_cost:
        print(format_table(report["summary"], report["reference"]))
    else:
        print(json.dumps(report["ratio"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
