"""How the cost of unlearning and of retraining grows with the retain set (chapter 12).

Retraining from scratch costs ``epochs × |D_r|`` per-sample forward and backward passes (:mod:`unlearnlib.cost`):
it grows in proportion to the retain set. An unlearning method costs what its loop runs: a method that walks
over the forget set (gradient ascent and its relatives) takes a number of steps set by the size of D_f and by its stopping
rule, whatever the size of D_r; a method that walks over the retain set (fine-tuning, NegGrad+, PCGrad, l1-sparse)
grows with D_r as retraining does. Whether unlearning is cheaper than retraining is therefore not a property of
a method alone but of the method *and* the size of the retain set, and the answer is a curve.

:func:`cost_curve` measures it. The forget set is held fixed (the same ``n_forget`` samples of the forget class,
by default all of them) while the retain set grows through nested subsets of the other classes (every smaller
retain set is contained in every larger one, and each holds the classes in equal shares, to within one sample).
At every size the original model and the retrain oracle are trained with the same recipe (cached, through
:mod:`unlearnlib.train`), every method runs from the original model with the values the oracle-free tuning
protocol chose for the setting (:func:`unlearnlib.tuning.tuned_kwargs`; the registry's defaults where none are
stored), and each run records its passes, its wall-clock time, its metrics and its distance to the oracle, and the
guardrail flags of chapter 12. :func:`plot_cost_curve` draws cost and quality side by side: a method that is
cheap because it does not forget, or because it wrecks the model, shows on the second panel.

The subsets index the standardised training set of the full dataset, so the inputs are the same numbers at every
size (only the amount of data changes), and the largest size with the whole forget class is the full dataset
itself: the benchmark's class-wise task, with the same cached models. With the whole class as the forget set
(822 images in ``digits-stress``), the smallest retain sets are smaller than the forget set: the left end of the
curve is a large deletion from a small training set, the right end a deletion of about a tenth of the data.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm  # text bars: they work in terminals, notebooks and the built book alike

from unlearnlib import cost
from unlearnlib.config import get_device, get_profile, synchronize
from unlearnlib.data import Dataset, UnlearningTask, load_dataset, make_task
from unlearnlib.errors import UnlearnError
from unlearnlib.metrics import GAP_METRICS, evaluate
from unlearnlib.train import TrainConfig, original_model, retrained_model

#: the retain-set sizes of the book's curve; ``"all"`` is every training sample of the other classes.
SIZES = (500, 1000, 2000, 4000, "all")
#: the methods of the book's curve: four whose loop walks over the retain set (neggrad_plus, finetune, pcgrad,
#: l1_sparse) and five whose loop walks over the forget set (ga, implicit_surgery, orthograd, masked:ga, lur).
METHODS = ("ga", "neggrad_plus", "finetune", "pcgrad", "implicit_surgery", "orthograd", "masked:ga", "l1_sparse",
           "lur")
#: offsets of the random streams that draw the forget subset and the retain order from ``seed``, so that the two
#: draws are independent of each other and of the training seeds.
_FORGET_STREAM, _RETAIN_STREAM = 7_001, 7_013


def _count(value, what: str, low: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise UnlearnError(f"{what} must be an integer of at least {low}, got {value!r}")
    return int(value)


def _check_class(data: Dataset, forget_class) -> int:
    present = sorted(set(data.y_train.cpu().tolist()))
    whole = (isinstance(forget_class, numbers.Real) and not isinstance(forget_class, (bool, np.bool_))
             and math.isfinite(forget_class) and int(forget_class) == forget_class)
    if not whole or int(forget_class) not in present:
        raise UnlearnError(f"class {forget_class!r} does not exist in {data.name}; choose one of "
                           f"{present[0]}..{present[-1]}")
    return int(forget_class)


def forget_choice(data: Dataset, forget_class: int = 3, n_forget: int | None = None, seed: int = 0) -> torch.Tensor:
    """The fixed forget set of the curve (chapter 12): ``n_forget`` training samples of ``forget_class`` drawn with
    ``seed`` (all of them when ``None``), as sorted indices into ``data``'s training set on the host."""
    forget_class = _check_class(data, forget_class)
    members = (data.y_train.cpu() == forget_class).nonzero().flatten()
    if n_forget is None:
        return members
    n_forget = _count(n_forget, "n_forget")
    if n_forget > len(members):
        raise UnlearnError(f"n_forget is {n_forget} but {data.name} has {len(members)} training samples of class "
                           f"{forget_class}; choose at most {len(members)} (or None: all of them)")
    g = torch.Generator().manual_seed(seed + _FORGET_STREAM)
    pick = torch.randperm(len(members), generator=g)[:n_forget]  # host: a CPU generator, indices on the host
    return members[pick].sort().values


def retain_order(data: Dataset, forget_class: int = 3, seed: int = 0) -> torch.Tensor:
    """The order in which the training samples of the other classes join the retain set (chapter 12): indices
    into ``data``'s training set, on the host. Its first n entries are the retain set of size n, so the retain sets
    are nested; they go round the classes (the first sample of every class, then the second of every class, ...),
    so every prefix holds the classes in equal shares to within one sample. Within a class the order is drawn
    with ``seed``."""
    forget_class = _check_class(data, forget_class)
    y = data.y_train.cpu()
    others = (y != forget_class).nonzero().flatten()
    g = torch.Generator().manual_seed(seed + _RETAIN_STREAM)
    shuffled = others[torch.randperm(len(others), generator=g)]  # host: a CPU generator, indices on the host
    cls = y[shuffled]
    grouped = torch.sort(cls, stable=True).indices   # positions grouped by class, the shuffled order kept inside
    counts = torch.bincount(cls, minlength=data.num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(grouped)
    rank[grouped] = torch.arange(len(grouped)) - starts[cls[grouped]]  # host: positions within each class
    # Rank first, class second: a unique key per sample, so the order does not depend on the sort's tie rule.
    return shuffled[torch.sort(rank * data.num_classes + cls).indices]


def _resolve_sizes(sizes, available: int, forget_class: int, name: str) -> list[int]:
    if isinstance(sizes, (str, numbers.Integral)):
        sizes = [sizes]
    sizes = list(sizes) if sizes is not None else []
    if not sizes:
        raise UnlearnError("no retain-set sizes given; pass sizes such as [500, 1000, 'all']")
    out = []
    for s in sizes:
        n = available if isinstance(s, str) and s.strip().lower() == "all" else _count(s, "a retain-set size")
        if n > available:
            raise UnlearnError(f"retain-set size {n} is larger than the {available} training samples of the classes "
                               f"other than {forget_class} in {name}; use at most {available} (or 'all')")
        out.append(n)
    return sorted(set(out))


def nested_task(data: Dataset, size: int | str, *, forget_class: int = 3, n_forget: int | None = None,
                seed: int = 0) -> tuple[UnlearningTask, torch.Tensor]:
    """The class-wise task of the curve at one retain-set size (chapter 12), and the indices (into ``data``'s
    training set, sorted, on the host) of the training samples it keeps: the fixed forget set of
    :func:`forget_choice` and the first ``size`` samples of :func:`retain_order` (``"all"``: every one). The
    test set is ``data``'s, without the forget class, at every size."""
    forget = forget_choice(data, forget_class, n_forget, seed)
    order = retain_order(data, forget_class, seed)
    n = _resolve_sizes([size], len(order), forget_class, data.name)[0]
    kept = torch.cat([forget, order[:n]]).sort().values
    on = kept.to(data.y_train.device)
    sub = Dataset(f"{data.name}, |D_f| = {len(forget)}, |D_r| = {n} (seed {seed})", data.x_train[on],
                  data.y_train[on], data.x_test, data.y_test, data.num_classes)
    return make_task(sub, "class", forget_class=forget_class, seed=seed), kept


def _seeds(seed) -> list[int]:
    seeds = [seed] if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) else list(seed)
    if not seeds:
        raise UnlearnError("no seeds to run; pass seed=0 or a list such as [0, 1]")
    return [_count(s, "a seed", low=0) for s in seeds]


def _tuned_values(methods: Sequence[str], dataset_name: str, tuned) -> dict[str, dict]:
    from unlearnlib import tuning

    if tuned is False or tuned is None:
        return {m: {} for m in methods}
    report = tuned if isinstance(tuned, dict) else None
    return {m: tuning.tuned_kwargs(m, dataset_name, "class", report=report) for m in methods}


def cost_curve(methods: Iterable[str] = METHODS, sizes: Iterable = SIZES, *, dataset: str | Dataset = "digits-stress",
               forget_class: int = 3, n_forget: int | None = None, seed: int | Iterable[int] = 0,
               cfg: TrainConfig | None = None, device=None, progress: bool = True, tuned: bool | dict = True,
               checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Passes, time and quality of every method and of retraining, at every retain-set size (chapter 12).

    ``dataset``: a dataset name or a :class:`~unlearnlib.data.Dataset`. ``sizes``: retain-set sizes (integers,
    or ``"all"``), run in increasing order. ``n_forget``: the size of the fixed forget set (``None``: the whole
    forget class). ``seed``: one seed or several (each draws its own subsets, models and runs). ``cfg``: the
    training recipe, by default the ``ci`` profile's. ``tuned``: ``True`` applies the values stored for the
    setting (:func:`unlearnlib.tuning.tuned_kwargs` for the dataset's name, class-wise), ``False`` the
    registry's defaults, a dict a tuning report's. ``checkpoint(report)``, when given, is called with the report
    so far after every size, so that a long run can save what it has measured.

    Returns a JSON-ready dict: the setting; ``references``, one entry per (seed, size) with the oracle's metrics,
    the untouched original model's metrics and gap, and retraining's passes and time; and ``rows``, one per
    (seed, size, method) with ``passes``, ``passes_vs_retrain``, ``time_s``, ``retrain_time_s``,
    ``time_vs_retrain``, the metrics of :func:`~unlearnlib.metrics.evaluate` (``gap``: the Avg. Gap to that
    size's oracle), ``steps`` and the guardrail ``flags``. Times are wall-clock seconds of this machine; the
    oracle's is the time recorded when it was trained (possibly in an earlier run, under another load), so the
    time ratios are indicative only, and the passes are the measure that does not depend on the machine.
    """
    from unlearnlib.experiment import guardrail_flags, start_point
    from unlearnlib.methods import get_method

    methods = list(methods) if not isinstance(methods, str) else [methods]
    if not methods:
        raise UnlearnError("no methods to run; pass method names such as ['ga', 'finetune']")
    for name in methods:
        if name == "retrain":
            raise UnlearnError("retrain is the reference of every row, not a method of the curve; leave it out")
        get_method(name)   # an unknown name fails before anything is trained
    device = get_device(device)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    dataset_name = dataset if isinstance(dataset, str) else data.name
    cfg = cfg or TrainConfig.from_profile(get_profile("ci"))
    seeds = _seeds(seed)
    forget_class = _check_class(data, forget_class)
    available = int((data.y_train != forget_class).sum())
    sizes = _resolve_sizes(sizes, available, forget_class, data.name)
    forget_size = len(forget_choice(data, forget_class, n_forget, seeds[0]))  # a bad n_forget fails here, early
    kwargs = _tuned_values(methods, dataset_name, tuned)
    data = data.to(device)
    report = {"dataset": dataset_name, "scenario": "class", "forget_class": forget_class, "sizes": sizes,
              "available": available, "methods": methods, "seeds": seeds, "train": dataclasses.asdict(cfg),
              "n_forget": forget_size, "device": str(device),
              "kwargs": kwargs, "references": [], "rows": []}
    bar = tqdm(total=len(seeds) * len(sizes) * (len(methods) + 1), desc="cost curve: sizes x methods",
               disable=not progress, leave=False, delay=5)
    for s in seeds:
        for n in sizes:
            bar.set_postfix_str(f"|D_r| = {n}: original and oracle")
            task, _ = nested_task(data, n, forget_class=forget_class, n_forget=n_forget, seed=s)
            m0 = original_model(task.data, cfg, seed=s, device=device, progress=False)
            oracle = retrained_model(task, cfg, seed=s, device=device, progress=False)
            reference = evaluate(oracle, task)
            retrain = cost.training_passes(len(task.y_retain), cfg.epochs)
            retrain_time = _finite(oracle.train_time_s)
            start = start_point(m0, task)
            report["references"].append({
                "seed": s, "size": n, "n_forget": len(task.forget_idx), "retrain_passes": retrain.total,
                "retrain_time_s": retrain_time, "original_time_s": _finite(m0.train_time_s),
                "oracle": {k: reference[k] for k in (*GAP_METRICS, "MIA_AUC")},
                "original": evaluate(m0, task, reference=reference), "start": start})
            bar.update()
            for method in methods:
                bar.set_postfix_str(f"|D_r| = {n}: {method}")
                synchronize(device)
                with cost.counting() as passes:
                    t0 = time.perf_counter()
                    model = get_method(method)(m0, task, seed=s, **kwargs[method])
                    synchronize(device)
                    elapsed = time.perf_counter() - t0
                row = {"seed": s, "size": n, "n_forget": len(task.forget_idx), "method": method,
                       "steps": getattr(model, "steps_taken", None),
                       **evaluate(model, task, reference=reference, time_s=elapsed), **passes.as_row(retrain),
                       "retrain_passes": retrain.total, "retrain_time_s": retrain_time,
                       "time_vs_retrain": elapsed / retrain_time if retrain_time else None}
                row["flags"] = guardrail_flags(row, start, model)
                report["rows"].append(row)
                bar.update()
            if checkpoint is not None:
                checkpoint(report)
    bar.close()
    return report


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) and float(x) > 0 else None


def curve_means(report: dict, key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method, the sizes and the mean of ``key`` over the report's seeds at each size (chapter 12)."""
    out = {}
    for method in report["methods"]:
        rows = [r for r in report["rows"] if r["method"] == method and r.get(key) is not None]
        sizes = sorted({r["size"] for r in rows})
        out[method] = (np.array(sizes, dtype=float),
                       np.array([np.mean([r[key] for r in rows if r["size"] == n]) for n in sizes], dtype=float))
    return out


def break_even(report: dict) -> dict[str, float | None]:
    """Per method, the smallest measured retain-set size from which on its mean passes stay below retraining's
    (ratio < 1 at that size and every larger one); ``None`` when it is at or above retraining at the largest."""
    out = {}
    for method, (sizes, ratio) in curve_means(report, "passes_vs_retrain").items():
        below = ratio < 1.0
        out[method] = None
        for i in range(len(sizes) - 1, -1, -1):
            if not below[i]:
                break
            out[method] = float(sizes[i])
    return out


def curve_table(report: dict, keys=("passes_vs_retrain", "time_vs_retrain", "gap")) -> str:
    """The report as a text table (chapter 12): one line per (size, method), the means over seeds of ``keys``,
    the flags that occurred, and per size the original model's gap (no unlearning) for scale."""
    lines = [f"{report['dataset']}, forget class {report['forget_class']} (|D_f| = {report.get('n_forget')}), "
             f"seeds {report['seeds']}; ratios to retraining, gap in points to the oracle"]
    header = f"{'|D_r|':>6} {'method':18s}" + "".join(f"{k:>18s}" for k in keys) + "  flags"
    lines.append(header)
    for n in report["sizes"]:
        refs = [r for r in report["references"] if r["size"] == n]
        if not refs:   # a size an interrupted run did not reach
            continue
        no_unlearning = np.mean([r["original"]["gap"] for r in refs])
        lines.append(f"{n:>6d} {'(no unlearning)':18s}" + "".join(
            f"{no_unlearning:18.2f}" if k == "gap" else f"{'':>18s}" for k in keys))
        for method in report["methods"]:
            rows = [r for r in report["rows"] if r["size"] == n and r["method"] == method]
            cells = []
            for k in keys:
                vals = [r[k] for r in rows if r.get(k) is not None]
                cells.append(f"{np.mean(vals):18.3f}" if vals else f"{'':>18s}")
            flags = sorted({f for r in rows for f in r.get("flags") or []})
            lines.append(f"{n:>6d} {method:18s}" + "".join(cells) + "  " + ",".join(flags))
    return "\n".join(lines)


def plot_cost_curve(report: dict, methods: Sequence[str] | None = None):
    """Cost and quality against the size of the retain set (chapter 12), a figure with two axes.

    Left: per-sample passes relative to retraining, log-log, one line per method (the mean over the report's
    seeds), the break-even line at 1 (above it, retraining is the cheaper way, and it reaches the oracle itself).
    Right: the Avg. Gap to that size's oracle, with the untouched original model's gap (no unlearning) dashed for
    scale: a method whose gap is near that line has not done the job, whatever it cost. On both panels a ring marks
    the points where a run carries the guardrail flag ``not_forgotten`` or ``collapsed`` (on any seed): cheap,
    but not an unlearned model.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    methods = list(methods) if methods is not None else list(report["methods"])
    passes, gaps = curve_means(report, "passes_vs_retrain"), curve_means(report, "gap")
    fig, (ax_cost, ax_gap) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    markers = "os^vD<>ph*"
    for i, method in enumerate(methods):
        style = dict(marker=markers[i % len(markers)], color=f"C{i % 10}", lw=1.4, ms=4, label=method)
        ax_cost.plot(*passes[method], **style)
        ax_gap.plot(*gaps[method], **style)
    # A point that is cheap because the run did not do the job: ringed, on both panels.
    flagged = {m: sorted({r["size"] for r in report["rows"] if r["method"] == m
                          and set(r.get("flags") or ()) & {"not_forgotten", "collapsed"}}) for m in methods}
    ring = dict(marker="o", ms=10, mfc="none", mec="k", mew=0.8, ls="none")
    for ax, curves in ((ax_cost, passes), (ax_gap, gaps)):
        xs = [x for m in methods for x, y in zip(*curves[m]) if x in flagged[m]]
        ys = [y for m in methods for x, y in zip(*curves[m]) if x in flagged[m]]
        ax.plot(xs, ys, **ring, label="not forgotten or collapsed (guardrail flag, any seed)")
    ax_cost.axhline(1.0, color="k", ls="--", lw=1.2, label="break-even (= retraining)")
    side = ax_cost.get_yaxis_transform()   # x in axes coordinates, y in data: the notes follow the line at 1
    ax_cost.text(0.99, 1.12, "retraining cheaper", transform=side, ha="right", va="bottom", fontsize=8, color="0.3")
    ax_cost.text(0.99, 0.89, "unlearning cheaper", transform=side, ha="right", va="top", fontsize=8, color="0.3")
    ax_cost.set_xscale("log")
    ax_cost.set_yscale("log")
    ax_cost.set_xlabel("|D_r| (retain samples)")
    ax_cost.set_ylabel("per-sample passes / retraining's")
    ax_cost.set_title("cost relative to retraining")
    sizes = sorted({r["size"] for r in report["references"]})
    no_unlearning = [np.mean([r["original"]["gap"] for r in report["references"] if r["size"] == n]) for n in sizes]
    ax_gap.plot(sizes, no_unlearning, color="0.4", ls="--", lw=1.2, label="no unlearning (original model)")
    ax_gap.set_xscale("log")
    ax_gap.set_xlabel("|D_r| (retain samples)")
    ax_gap.set_ylabel("Avg. Gap to the oracle (points)")
    ax_gap.set_title("distance to the retrain oracle")
    ax_gap.set_ylim(bottom=0)
    for ax in (ax_cost, ax_gap):
        # The measured sizes as the ticks: a log axis's own ticks (powers of ten) would fall between them.
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(int(n)) for n in sizes])
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax_cost.get_legend_handles_labels()
    extra_h, extra_l = ax_gap.get_legend_handles_labels()
    handles.append(extra_h[-1])
    labels.append(extra_l[-1])
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
