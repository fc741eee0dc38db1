"""The cost curve of chapter 12 (unlearnlib.scaling): a fixed forget set, nested retain sets, retraining's passes
from the training loop's structure, the report's layout, the figure, and bad input refused before any training.

Everything runs on the 8x8 digits with the MLP and two training epochs, at retain sets of a few dozen samples:
the properties tested do not depend on the size of the experiment."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from unlearnlib import cost, scaling  # noqa: E402
from unlearnlib.data import make_task  # noqa: E402
from unlearnlib.errors import UnlearnError  # noqa: E402
from unlearnlib.methods import get_method  # noqa: E402
from unlearnlib.train import TrainConfig, original_model  # noqa: E402

SIZES = (20, 40)
N_FORGET = 10
CFG = TrainConfig(model="mlp", epochs=2, batch_size=32)
#: a tuning report of the layout unlearnlib.tuning writes: GA with a learning rate that is not its default.
TUNED = {"methods": {"ga": {"kwargs": {"lr": 1e-3}}}}
ROW_KEYS = {"seed", "size", "n_forget", "method", "steps", "UA", "RA", "TA", "MIA", "MIA_AUC", "gap", "time_s",
            "passes", "passes_vs_retrain", "forward_passes", "backward_passes", "retrain_passes", "retrain_time_s",
            "time_vs_retrain", "flags"}


@pytest.fixture(scope="module")
def report(data):
    return scaling.cost_curve(["ga", "finetune"], SIZES, dataset=data, n_forget=N_FORGET, cfg=CFG, device="cpu",
                              progress=False, tuned=TUNED)


def _originals(task, kept):
    """The forget and retain sets of a nested task as indices into the full training set."""
    return kept[task.forget_idx.cpu()], kept[task.retain_idx.cpu()]


def test_forget_set_is_fixed_and_retain_sets_are_nested_and_balanced(data):
    sizes = (20, 40, 80, "all")
    tasks = [scaling.nested_task(data, n, n_forget=N_FORGET, seed=0) for n in sizes]
    forgets = [_originals(t, kept)[0] for t, kept in tasks]
    retains = [set(_originals(t, kept)[1].tolist()) for t, kept in tasks]
    for f in forgets:
        assert torch.equal(f, forgets[0])
    assert len(forgets[0]) == N_FORGET and bool((data.y_train[forgets[0]] == 3).all())
    n_other = int((data.y_train != 3).sum())
    for n, r, (t, _) in zip(sizes, retains, tasks):
        assert len(r) == (n_other if n == "all" else n)
        assert not bool((t.y_retain == 3).any())
        counts = torch.bincount(t.y_retain, minlength=10)[[c for c in range(10) if c != 3]]
        if n != "all":   # equal shares to within one sample (the whole set has the dataset's own shares)
            assert int(counts.max() - counts.min()) <= 1
    for small, large in zip(retains, retains[1:]):
        assert small < large
    # The seed draws the subsets: another seed, another forget subset (of the same size).
    other = _originals(*scaling.nested_task(data, 20, n_forget=N_FORGET, seed=1))[0]
    assert len(other) == N_FORGET and not torch.equal(other, forgets[0])


def test_whole_class_at_full_size_is_the_benchmark_task(data):
    """With the whole forget class and every other sample, the subset is the dataset itself: the same cache
    keys as the class-wise task of the benchmark, so its models are shared."""
    task, kept = scaling.nested_task(data, "all")
    assert torch.equal(kept, torch.arange(len(data.y_train)))
    assert task.fingerprint() == make_task(data, "class", forget_class=3).fingerprint()


def test_report_rows_and_retraining_passes(report, data):
    assert set(report) >= {"dataset", "forget_class", "sizes", "methods", "seeds", "train", "n_forget", "kwargs",
                           "references", "rows"}
    assert report["sizes"] == list(SIZES) and report["n_forget"] == N_FORGET
    assert report["kwargs"] == {"ga": {"lr": 1e-3}, "finetune": {}}
    assert len(report["rows"]) == len(SIZES) * 2 and len(report["references"]) == len(SIZES)
    for row in report["rows"]:
        assert set(row) == ROW_KEYS
        # Retraining: every retain sample forward and backward once per epoch, plus the one-sample label check.
        n = row["size"]
        assert row["retrain_passes"] == 2 * CFG.epochs * n + 1 == cost.training_passes(n, CFG.epochs).total
        assert row["passes_vs_retrain"] == pytest.approx(row["passes"] / row["retrain_passes"], rel=1e-12)
        assert row["passes"] == row["forward_passes"] + row["backward_passes"] > 0
        assert all(f in ("guard_stopped", "collapsed", "not_forgotten") for f in row["flags"])
    for ref in report["references"]:
        assert ref["original"]["gap"] >= 0 and set(ref["oracle"]) >= {"UA", "RA", "TA", "MIA"}


def test_rows_count_the_run_with_the_tuned_values(report, data):
    """A row's passes are those of the method run on that size's task with the tuned values, counted anew."""
    task, _ = scaling.nested_task(data, SIZES[0], n_forget=N_FORGET, seed=0)
    m0 = original_model(task.data, CFG, seed=0, device="cpu", progress=False)
    with cost.counting() as passes:
        get_method("ga")(m0, task, seed=0, lr=1e-3)
    row = next(r for r in report["rows"] if r["method"] == "ga" and r["size"] == SIZES[0])
    assert row["passes"] == passes.total


def test_plot_has_cost_and_gap_panels(report):
    fig = scaling.plot_cost_curve(report)
    assert len(fig.axes) == 2
    cost_ax, gap_ax = fig.axes
    assert cost_ax.get_xscale() == "log" and cost_ax.get_yscale() == "log" and gap_ax.get_xscale() == "log"
    # One line per method on each panel; the break-even line at 1, the no-unlearning gap, the flagged rings.
    for ax, extra in ((cost_ax, "break-even"), (gap_ax, "no unlearning")):
        labels = [line.get_label() for line in ax.lines]
        assert [lab for lab in labels if lab in report["methods"]] == report["methods"]
        assert sum(lab.startswith(extra) for lab in labels) == 1
        assert sum(lab.startswith("not forgotten or collapsed") for lab in labels) == 1
    assert any(np.allclose(line.get_ydata(), 1.0) for line in cost_ax.lines if line.get_label().startswith("break"))
    ga = next(line for line in cost_ax.lines if line.get_label() == "ga")
    expected = [np.mean([r["passes_vs_retrain"] for r in report["rows"] if r["method"] == "ga" and r["size"] == n])
                for n in SIZES]
    assert np.allclose(ga.get_xdata(), SIZES) and np.allclose(ga.get_ydata(), expected)
    plt.close(fig)


def test_break_even_is_the_first_size_from_which_the_ratio_stays_below_one():
    rows = [{"method": m, "size": n, "seed": 0, "passes_vs_retrain": v}
            for m, vals in {"a": (2.0, 0.5, 0.2), "b": (0.5, 2.0, 0.9), "c": (0.5, 0.6, 1.0)}.items()
            for n, v in zip((10, 20, 40), vals)]
    assert scaling.break_even({"methods": ["a", "b", "c"], "rows": rows}) == {"a": 20.0, "b": 40.0, "c": None}


@pytest.mark.parametrize("kwargs, words", [
    ({"sizes": [20, 10_000]}, "larger than"),
    ({"methods": []}, "no methods"),
    ({"sizes": []}, "no retain-set sizes"),
    ({"methods": ["retrain"]}, "reference"),
    ({"methods": ["no_such_method"]}, "unknown method"),
    ({"n_forget": 10_000}, "n_forget"),
    ({"forget_class": 11}, "does not exist"),
    ({"sizes": [0]}, "at least 1"),
])
def test_bad_input_fails_before_training_with_one_line(data, kwargs, words):
    args = {"methods": ["ga"], "sizes": [20], **kwargs}
    with pytest.raises(UnlearnError) as err:
        scaling.cost_curve(args.pop("methods"), args.pop("sizes"), dataset=data, cfg=CFG, device="cpu",
                           progress=False, **args)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_plot_rings_exactly_the_flagged_points():
    rows = [{"method": m, "size": n, "seed": s, "passes_vs_retrain": 0.1 * n + i, "gap": 5.0 + i,
             "flags": ["not_forgotten"] if (m, n, s) == ("b", 20, 1) else (["guard_stopped"] if m == "a" else [])}
            for i, m in enumerate(("a", "b")) for n in (10, 20) for s in (0, 1)]
    refs = [{"size": n, "seed": s, "original": {"gap": 30.0}} for n in (10, 20) for s in (0, 1)]
    fig = scaling.plot_cost_curve({"methods": ["a", "b"], "rows": rows, "references": refs})
    for ax, y in zip(fig.axes, (0.1 * 20 + 1, 6.0)):
        ring = next(line for line in ax.lines if line.get_label().startswith("not forgotten or collapsed"))
        assert list(ring.get_xdata()) == [20] and np.allclose(ring.get_ydata(), [y])   # guard_stopped alone: none
    plt.close(fig)
