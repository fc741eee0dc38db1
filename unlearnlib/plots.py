"""Figures the chapters share (chapters 01-03). Each function draws on a given axis or makes its own figure
and returns it, so that a chapter can arrange and caption figures as it likes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def histograms(ax, samples: dict, bins: int = 30, xlabel: str = "", log_x: bool = False, title: str = ""):
    """Overlaid, normalised histograms of several samples (e.g. forget vs test losses) (chapter 01)."""
    arrays = {k: np.asarray(v, dtype=float) for k, v in samples.items()}
    pool = np.concatenate(list(arrays.values()))
    if log_x:
        pool = pool[pool > 0]
        edges = np.logspace(np.log10(pool.min()), np.log10(pool.max()), bins + 1)
        ax.set_xscale("log")
    else:
        edges = np.linspace(pool.min(), pool.max(), bins + 1)
    for label, values in arrays.items():
        ax.hist(values, bins=edges, density=not log_x, alpha=0.5, label=f"{label} (n={len(values)})",
                weights=np.full(len(values), 1 / len(values)) if log_x else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of samples" if log_x else "density")
    ax.set_title(title)
    ax.legend()
    return ax


def curves(ax, series: dict, xlabel: str = "step", ylabel: str = "", title: str = "", hline: float | None = None,
           hline_label: str = ""):
    """Line plots of several named series ``{label: (x, y)}``, with an optional reference line (chapter 02)."""
    for label, (x, y) in series.items():
        ax.plot(x, y, marker=".", label=label)
    if hline is not None:
        ax.axhline(hline, color="k", ls="--", lw=1, label=hline_label or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return ax


def metric_bars(summary: dict, reference: dict | None = None, metrics=("UA", "RA", "TA", "MIA"), title: str = ""):
    """Grouped bars of each method's mean metrics with 95 % CI whiskers, the oracle as dashed lines (chapter 02).

    ``summary`` has the layout of the benchmark JSON: ``{method: {metric: {"mean", "ci95"}}}``.
    """
    methods = list(summary)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), sharey=False)
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        means = [summary[m][metric]["mean"] for m in methods]
        errs = [summary[m][metric]["ci95"] or 0.0 for m in methods]
        ax.bar(range(len(methods)), means, yerr=errs, capsize=3, color="C0")
        if reference is not None and metric in reference:
            ax.axhline(reference[metric], color="C3", ls="--", lw=1.2, label="retrain")
            ax.legend(loc="lower right")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=60, ha="right")
        ax.set_title(metric)
    fig.suptitle(title)
    fig.tight_layout()
    return fig

