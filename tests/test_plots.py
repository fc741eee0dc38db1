"""The shared figures draw what they are given: one bar per method and metric, the oracle as a line."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from unlearnlib.plots import comparison_bars, metric_bars  # noqa: E402


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


def test_comparison_bars_leaves_out_the_original_and_labels_percent():
    comparison = SimpleNamespace(summary=_summary(["original", "ga", "lur"]), reference={"UA": 1.0})
    fig = comparison_bars(comparison, title="t")
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["ga", "lur"]
        assert ax.get_ylabel() == "%"
    plt.close(fig)
