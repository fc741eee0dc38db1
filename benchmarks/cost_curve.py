"""The cost curve of chapter 12: unlearning against retraining as the retain set grows.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cost_curve.py                 # the book's curve, seed 0
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cost_curve.py --seeds 0,1     # two seeds

Runs :func:`unlearnlib.scaling.cost_curve` on ``digits-stress``, forgetting class 3 (the whole class, the same
samples at every size) while the retain set grows through nested subsets of the other classes, with the ``ci``
profile's training recipe, and writes ``unlearnlib/results/cost_curve.json`` (which chapter 12 plots) and the
log ``benchmarks/cpu/cost_curve.log``. Each method runs with the values the oracle-free tuning protocol stored for
the setting (``unlearnlib/tuned/digits-stress-class.json``), its registry defaults where there are none or with
``--defaults``; the JSON records which. The passes do not depend on the machine; the times do (and the oracle's
time is the one recorded when it was trained, possibly in an earlier run), so they are recorded, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from unlearnlib import scaling, tuning
from unlearnlib.bench import write_atomic
from unlearnlib.config import get_device
from unlearnlib.errors import UnlearnError

REPO = Path(__file__).resolve().parents[1]
DATASET = "digits-stress"


def _sizes(text: str) -> list:
    return [s if s.strip().lower() == "all" else int(s) for s in text.split(",") if s.strip()]


def log_text(report: dict, out: Path) -> str:
    """The log: the setting, the values the methods ran with, the table and where each method breaks even."""
    cfg = report["config"]
    ends = scaling.break_even(report)
    status = "" if cfg["complete"] else "  (incomplete: the run was still going or was interrupted)"
    return "\n".join([
        f"cost curve, started {cfg['started']}; {cfg['machine']}; torch {cfg['torch']}{status}",
        f"hyperparameters: {cfg['hyperparameters']}",
        *(f"  {m}: {kw}" for m, kw in report["kwargs"].items() if kw),
        "", scaling.curve_table(report), "",
        "passes below retraining's from |D_r| = (and at every larger measured size):",
        *(f"  {m:18s} {int(n) if n is not None else 'not at ' + str(max(r['size'] for r in report['rows']))}"
          for m, n in ends.items()),
        "", f"wall time {cfg['wall_s']:.0f} s; results in {out}"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(map(str, scaling.SIZES)), help="retain-set sizes, 'all' for every one")
    p.add_argument("--methods", default=",".join(scaling.METHODS))
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--dataset", default=DATASET, help=f"a dataset name (default {DATASET})")
    p.add_argument("--forget-class", type=int, default=3)
    p.add_argument("--n-forget", type=int, default=None, help="size of the fixed forget set (default: the whole class)")
    p.add_argument("--defaults", action="store_true", help="the registry's defaults, not the stored tuned values")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=REPO / "unlearnlib" / "results" / "cost_curve.json")
    p.add_argument("--log", type=Path, default=REPO / "benchmarks" / "cpu" / "cost_curve.log")
    args = p.parse_args(argv)
    try:
        seeds, sizes = [int(s) for s in args.seeds.split(",") if s.strip()], _sizes(args.sizes)
    except ValueError:
        print(f"error: --seeds must be comma-separated integers and --sizes integers or 'all', got {args.seeds!r} "
              f"and {args.sizes!r}", file=sys.stderr)
        return 2
    tuned_path = tuning.TUNED_DIR / f"{tuning.setting_name(args.dataset, 'class')}.json"
    use_tuned = not args.defaults and tuned_path.is_file()
    config = {
        "command": "python benchmarks/cost_curve.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "profile": "ci", "torch": torch.__version__, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)",
        "device": str(get_device(args.device)), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "hyperparameters": (f"tuned: {tuned_path.relative_to(REPO)}" if use_tuned
                            else "registry defaults" + (" (--defaults)" if args.defaults else
                                                        " (no tuned values stored for the setting)")),
    }
    t0 = time.perf_counter()

    def save(report: dict, complete: bool) -> None:
        """The JSON and the log, rewritten atomically after every size: an interrupted run keeps what it
        measured, marked incomplete."""
        report["config"] = {**config, "wall_s": round(time.perf_counter() - t0, 1), "complete": complete}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out, json.dumps(report, indent=1) + "\n")
        args.log.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.log, log_text(report, args.out) + "\n")

    try:
        report = scaling.cost_curve([m for m in args.methods.split(",") if m.strip()], sizes,
                                    dataset=args.dataset, forget_class=args.forget_class, n_forget=args.n_forget,
                                    seed=seeds, device=args.device, tuned=use_tuned,
                                    checkpoint=lambda r: save(r, complete=False))
    except UnlearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save(report, complete=True)
    print(log_text(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
