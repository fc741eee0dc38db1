"""The shared figures draw what they are given: one bar per method and metric, the oracle as a line."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from unlearnlib.experiment import Comparison  # noqa: E402
from unlearnlib.plots import metric_bars  # noqa: E402


def _summary(methods):
    return {m: {k: {"mean": 10.0 * i + j, "ci95": 1.0} for j, k in enumerate(("UA", "RA", "TA", "MIA"))}
            for i, m in enumerate(methods)}


def test_metric_bars_draws_each_mean_and_the_oracle():
    summary = _summary(["ga", "neggrad_plus"])
    fig = metric_bars(summary, {"UA": 5.0, "RA": 99.0, "TA": 95.0, "MIA": 50.0})
    assert len(fig.axes) == 4
    for ax, metric in zip(fig.axes, ("UA", "RA", "TA", "MIA")):
        heights = [p.get_height() for p in ax.patches]
        assert heights == pytest.approx([summary[m][metric]["mean"] for m in summary])
        assert [t.get_text() for t in ax.get_xticklabels()] == list(summary)
        assert len(ax.lines) >= 1  # the dashed oracle line (plus the error bars' lines)
    plt.close(fig)


def test_comparison_plot_leaves_out_the_original_and_labels_percent():
    rows = [{"method": m, "seed": seed, "UA": 1.0 + seed, "RA": 99.0, "TA": 95.0, "MIA": 50.0}
            for m in ("original", "ga", "lur") for seed in (0, 1)]
    refs = [{"UA": 5.0, "RA": 100.0, "TA": 98.0, "MIA": 60.0}] * 2
    comparison = Comparison("class", [0, 1], rows, refs)
    fig = comparison.plot(title="t")
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["ga", "lur"]
        assert ax.get_ylabel() == "%"
    assert [p.get_height() for p in fig.axes[0].patches] == pytest.approx([1.5, 1.5])   # UA mean over seeds
    plt.close(fig)
    fig = comparison.plot(skip=())
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["original", "ga", "lur"]
    plt.close(fig)
