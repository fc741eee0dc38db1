"""``python -m unlearnlib.bench``: methods side by side on one task, written as JSON (contract items 1 and 5).

Two modes:

* the benchmark (default): for every seed, draw the forget set, take the cached original model and retrain
  oracle, run every method, evaluate it against the same seed's oracle, and write per-seed results and a summary
  (mean, standard deviation and the half-width of the 95 % Student-t confidence interval over seeds);
* ``--step-cost``: the time of one unlearning step of every method as a ratio to one gradient-ascent step on the
  same batches and model (the marginal time between two step budgets, after a warm-up, with CUDA synchronised).

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
from unlearnlib.config import get_device, get_profile
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
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
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


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


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


def step_cost(args, profile, device, budgets=(4, 20), repeats: int = 5) -> dict:
    """Marginal time per step of every method, divided by GA's (contract item 5)."""
    names = parse_methods(args.methods)
    batch = args.batch_size if args.batch_size is not None else profile.unlearn_batch_size
    if batch < 1:
        raise UnlearnError(f"--batch-size must be at least 1, got {batch}")
    data = load_dataset(args.dataset, args.data_root, args.download).to(device)
    model_name = args.model or profile.model
    task = make_task(data, "class", forget_class=int(data.y_train[0]), seed=0)
    from unlearnlib.models import make_model
    model = make_model(model_name, data.input_shape, data.num_classes, seed=0).to(device)

    def timed(name, steps):
        base, extra = STEP_COST_VARIANTS.get(name, (name, {}))
        _sync(device)
        start = time.perf_counter()
        if base == "retrain":  # one step of the retraining recipe = one SGD step on a retain batch
            REGISTRY["finetune"](model, task, steps=steps, batch_size=batch, seed=0)
        else:
            get_method(base)(model, task, steps=steps, batch_size=batch, seed=0, stop_at=None, **extra)
        _sync(device)
        return time.perf_counter() - start

    names = names + [v for v, (base, _) in STEP_COST_VARIANTS.items() if base in names]
    per_step = {}
    for name in dict.fromkeys(["ga", *names]):
        timed(name, budgets[0])  # warm-up
        samples = [(timed(name, budgets[1]) - timed(name, budgets[0])) / (budgets[1] - budgets[0])
                   for _ in range(repeats)]
        per_step[name] = float(np.median(samples))
        print(f"  {name:20s} {1000 * per_step[name]:8.2f} ms/step", file=sys.stderr)
    ga_ms = 1000 * per_step["ga"]
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "model": model_name,
            "batch_size": batch, "dataset": args.dataset, "ga_step_ms": ga_ms,
            "step_ms": {k: 1000 * v for k, v in per_step.items() if k in names},
            "ratio": {k: v / per_step["ga"] for k, v in per_step.items() if k in names},
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "note": "marginal time per step between budgets of %d and %d steps, median of %d; retrain = one SGD "
                    "step of the training recipe" % (budgets[0], budgets[1], repeats)}


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
