"""Benchmark rows of the realistic track: ResNet-18 on synthetic 32x32 RGB data, trained with the ``full`` profile's
recipe (random crops and flips, mixed precision on CUDA), and the unlearning methods timed against retraining.

Steps, each its own process so that ``run_gpu.sh`` can give each its own time limit (the trained models are
shared through the model cache, ``UNLEARN_CACHE``):

    python benchmarks/realistic_rows.py --out DIR train          # the original model and the retrain oracle
    python benchmarks/realistic_rows.py --out DIR method NAME    # one method from the original model
    python benchmarks/realistic_rows.py --out DIR report         # the table and the verdict, DIR/realistic_rows.json

``--smoke`` shrinks everything (the small CNN, 200 images, 2 epochs) so that the same code runs on a CPU in
seconds; the tests run it that way. Timings depend on the machine and are recorded, never asserted.

What is measured. Random forgetting of 10 % of the training set, seed 0. Training (original and oracle) uses the
``full`` profile's recipe for fewer epochs (15 by default, meant to let the model fit its training images more
closely than unseen ones, so that there is something to forget: the report records the original model's UA, RA
and TA to show whether it did); the unlearning methods run as the library
runs them, with their registered defaults and in float32 (mixed precision is the training's). The ratios
describe this setting, not CIFAR-10: retraining's cost grows in proportion to the training set, a method's with
the number of steps its stopping rule lets it take and with the checks of that rule (a forward pass over D_f,
after every step for GA and implicit surgery), which need not scale the same way. Each row holds the wall-clock
time (after a one-step warm-up of the same method, so that CUDA's one-off kernel selection is not charged to it),
its per-sample passes (:mod:`unlearnlib.cost`) and both as ratios to retraining's. Retraining here runs for
``--epochs`` epochs, far fewer than the profile's; the ratios are therefore also given against retraining for
the profile's epochs (the measured time per epoch times that count: the training loop costs the same every
epoch). The target examined: every conflict-aware method (PCGrad, implicit surgery, OrthoGrad, masked GA)
unlearns in at most a tenth of the retraining time. The report says whether it holds, method by method.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from unlearnlib import UnlearnError, cost
from unlearnlib.config import get_device, get_profile, synchronize
from unlearnlib.data import make_task, synthetic_images
from unlearnlib.methods import get_method
from unlearnlib.metrics import evaluate
from unlearnlib.train import TrainConfig, original_model, retrained_model

#: the methods of the rows, in order; the conflict-aware ones are those the target is about.
METHODS = ("ga", "neggrad_plus", "pcgrad", "implicit_surgery", "orthograd", "masked:ga")
CONFLICT_AWARE = ("pcgrad", "implicit_surgery", "orthograd", "masked:ga")
#: the target: unlearning in at most this fraction of the retraining time.
TARGET = 0.1
FORGET_FRACTION = 0.1
SEED = 0


def setting(smoke: bool, n_train: int, n_test: int, epochs: int) -> tuple:
    """The data and the training recipe of the rows."""
    full = TrainConfig.from_profile(get_profile("full"))
    if smoke:   # the same code path at sizes a CPU runs in seconds
        data = synthetic_images(n_train=200, n_test=60, seed=SEED)
        cfg = replace(full, model="cnn", epochs=2, batch_size=64, lr=0.05)
    else:
        data = synthetic_images(n_train=n_train, n_test=n_test, seed=SEED)
        cfg = replace(full, epochs=epochs)
    return data, cfg, full.epochs


def _file(out: Path, name: str) -> Path:
    return out / f"row_{name.replace(':', '_')}.json"


def _task(data, device):
    return make_task(data, "random", forget_fraction=FORGET_FRACTION, seed=SEED).to(device)


def run_train(out: Path, data, cfg, device, profile_epochs: int) -> dict:
    """Train (or load from the model cache) the original model and the oracle; record their times and the oracle's
    metrics and passes."""
    task = _task(data, device)
    m0 = original_model(data, cfg, seed=SEED, device=device, progress=False)
    oracle = retrained_model(task, cfg, seed=SEED, device=device, progress=False)
    passes = cost.training_passes(len(task.y_retain), cfg.epochs)
    retrain = {"time_s": float(oracle.train_time_s), "passes": passes.total, **evaluate(oracle, task)}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    info = {"device": str(device), "device_name": name, "torch": torch.__version__, "data": data.name,
            "n_train": len(data.y_train), "n_test": len(data.y_test), "input_shape": list(data.input_shape),
            "forget_fraction": FORGET_FRACTION, "seed": SEED, "train_config": asdict(cfg),
            "profile_epochs": profile_epochs, "original_time_s": float(m0.train_time_s),
            "original": evaluate(m0, task), "retrain": retrain}
    (out / "train.json").write_text(json.dumps(info, indent=2))
    print(f"original {m0.train_time_s:.1f} s, oracle {oracle.train_time_s:.1f} s ({cfg.epochs} epochs on "
          f"{len(data.y_train)} images, {cfg.model}, {cfg.precision} precision, on {device})")
    return info


def run_method(out: Path, name: str, data, cfg, device) -> dict:
    """One method from the cached original model: a one-step warm-up, then the timed run of its defaults."""
    method = get_method(name)   # an unknown name fails here, before anything runs
    task = _task(data, device)
    m0 = original_model(data, cfg, seed=SEED, device=device, progress=False)
    oracle = retrained_model(task, cfg, seed=SEED, device=device, progress=False)
    reference = evaluate(oracle, task)
    method(m0, task, seed=SEED, steps=1, stop_at=None)   # kernels chosen and loaded: not the method's cost
    log: list = []
    synchronize(device)
    with cost.counting() as passes:
        start = time.perf_counter()
        model = method(m0, task, seed=SEED, log=log)
        synchronize(device)
        elapsed = time.perf_counter() - start
    row = {"method": name, "seed": SEED, "steps": log[-1]["step"] if log else None,
           **evaluate(model, task, reference=reference, time_s=elapsed),
           **passes.as_row(cost.training_passes(len(task.y_retain), cfg.epochs))}
    _file(out, name).write_text(json.dumps(row, indent=2))
    print(f"{name}: {elapsed:.2f} s, {passes.total} passes ({row['passes_vs_retrain']:.3f} of retraining's)")
    return row


def report(out: Path, methods=METHODS) -> dict:
    """The rows against retraining, and whether each conflict-aware method meets the target (a measurement)."""
    info = json.loads((out / "train.json").read_text())
    retrain = info["retrain"]
    epochs, profile_epochs = info["train_config"]["epochs"], info["profile_epochs"]
    # Retraining for the profile's epochs: the measured time and passes scaled by the number of epochs.
    scale = profile_epochs / epochs
    rows = {}
    for name in methods:
        path = _file(out, name)
        if not path.exists():
            rows[name] = None   # the step failed or ran out of time: not measured
            continue
        row = json.loads(path.read_text())
        rows[name] = {
            "time_s": row["time_s"], "passes": row["passes"], "steps": row.get("steps"),
            "UA": row["UA"], "RA": row["RA"], "TA": row["TA"],
            "time_vs_retrain": row["time_s"] / retrain["time_s"],
            "passes_vs_retrain": row["passes"] / retrain["passes"],
            "time_vs_retrain_profile_epochs": row["time_s"] / (retrain["time_s"] * scale),
            "passes_vs_retrain_profile_epochs": row["passes"] / (retrain["passes"] * scale),
        }
    verdict = {}
    for name in CONFLICT_AWARE:
        r = rows.get(name)
        verdict[name] = None if r is None else {
            "measured": r["time_vs_retrain"] <= TARGET,
            "profile_epochs": r["time_vs_retrain_profile_epochs"] <= TARGET}
    summary = {"setting": {k: info[k] for k in ("device", "device_name", "torch", "data", "n_train", "n_test",
                                                "input_shape", "forget_fraction", "seed", "train_config",
                                                "profile_epochs")},
               "note": ("training in the recipe's precision; unlearning methods with their registered defaults in "
                        "float32; ratios against the measured retraining and against retraining for the profile's "
                        "epochs (time and passes scaled by epochs)"),
               "target": f"each conflict-aware method unlearns in at most {TARGET:g} of the retraining time",
               "retrain": {"time_s": retrain["time_s"], "passes": retrain["passes"], "epochs": epochs,
                           "UA": retrain["UA"], "RA": retrain["RA"], "TA": retrain["TA"]},
               "original": {k: info["original"][k] for k in ("UA", "RA", "TA")},
               "original_time_s": info["original_time_s"], "rows": rows, "target_holds": verdict,
               "target_holds_for_all": (None if any(v is None for v in verdict.values()) else
                                        {k: all(v[k] for v in verdict.values())
                                         for k in ("measured", "profile_epochs")})}
    (out / "realistic_rows.json").write_text(json.dumps(summary, indent=2))
    print(f"retraining: {retrain['time_s']:.2f} s for {epochs} epochs ({profile_epochs} in the profile: "
          f"{retrain['time_s'] * scale:.1f} s by scaling)")
    print("original model: " + ", ".join(f"{k} {info['original'][k]:.1f}" for k in ("UA", "RA", "TA"))
          + "; oracle: " + ", ".join(f"{k} {retrain[k]:.1f}" for k in ("UA", "RA", "TA")))
    print(f"{'method':18} {'time_s':>8} {'x retrain':>10} {'x retrain@profile':>18} {'passes x retrain':>17}  "
          f"target ({TARGET:g})")
    for name, r in rows.items():
        if r is None:
            print(f"{name:18} {'not measured':>8}")
            continue
        v = verdict.get(name)
        mark = "" if v is None else ("holds" if v["measured"] else "misses") + " / " + (
            "holds" if v["profile_epochs"] else "misses") + " at profile epochs"
        print(f"{name:18} {r['time_s']:8.2f} {r['time_vs_retrain']:10.3f} "
              f"{r['time_vs_retrain_profile_epochs']:18.3f} {r['passes_vs_retrain']:17.3f}  {mark}")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder of the JSON files")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and the small CNN, for a CPU")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: $UNLEARN_DEVICE or auto)")
    p.add_argument("--n-train", type=int, default=2500)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--epochs", type=int, default=15, help="training epochs of the original model and the oracle")
    p.add_argument("step", choices=("train", "method", "report"))
    p.add_argument("name", nargs="?", help="the method of the step 'method'")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if args.step == "report":
            report(out)
            return 0
        device = get_device(args.device)
        data, cfg, profile_epochs = setting(args.smoke, args.n_train, args.n_test, args.epochs)
        data = data.to(device)
        if args.step == "train":
            run_train(out, data, cfg, device, profile_epochs)
        elif not args.name:
            raise UnlearnError("the step 'method' needs a method name, e.g. method pcgrad")
        else:
            run_method(out, args.name, data, cfg, device)
    except (UnlearnError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
