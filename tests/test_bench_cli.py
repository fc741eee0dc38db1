"""The command-line benchmark: its JSON layout (contract items 1 and 5) on tiny runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import start_cli
from unlearnlib.metrics import GAP_METRICS

ROW_KEYS = {"method", "seed", "UA", "RA", "TA", "MIA", "gap", "time_s"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, isolated_cache, original, oracle):
    """Both tiny runs, side by side. ``original`` and ``oracle`` warm the session cache with seed 0's models."""
    out = tmp_path_factory.mktemp("bench")
    bench_json, cost_json = out / "bench.json", out / "cost.json"
    procs = {
        "bench": (start_cli(["--methods", "retrain,ga", "--seeds", "2", "--scenario", "class", "--forget-class", "3",
                             "--device", "cpu", "--out", str(bench_json)], isolated_cache), bench_json),
        "cost": (start_cli(["--step-cost", "--methods", "ga,finetune", "--batch-size", "8", "--device", "cpu",
                            "--out", str(cost_json)], isolated_cache), cost_json),
    }
    results = {}
    for name, (proc, path) in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        results[name] = (json.loads(path.read_text()), stdout, stderr)
    return results


def test_bench_json_layout(runs):
    report, stdout, _ = runs["bench"]
    assert set(report) >= {"config", "reference", "results", "summary"}
    config = report["config"]
    assert config["scenario"] == "class" and config["forget_class"] == 3 and config["seeds"] == 2
    assert config["methods"] == ["retrain", "ga"] and config["dataset"] == "digits" and config["profile"] == "ci"
    assert config["device"] == "cpu"          # the device is recorded with the results
    assert set(GAP_METRICS) <= set(report["reference"])
    rows = report["results"]
    assert len(rows) == 4
    assert sorted((r["method"], r["seed"]) for r in rows) == [("ga", 0), ("ga", 1), ("retrain", 0), ("retrain", 1)]
    for r in rows:
        assert ROW_KEYS <= set(r)
        for k in ("UA", "RA", "TA", "MIA"):
            assert 0 <= r[k] <= 100  # percentages
        assert r["gap"] >= 0 and r["time_s"] > 0
    assert "retrain" in stdout and "ga" in stdout  # the table
    assert report["failures"] == [] and report["interrupted"] is False and report["undefined"] == {}


def test_bench_retrain_gap_is_zero_and_reference_is_its_mean(runs):
    report = runs["bench"][0]
    retrain = [r for r in report["results"] if r["method"] == "retrain"]
    assert all(r["gap"] == 0.0 for r in retrain)
    for k in GAP_METRICS:
        assert report["reference"][k] == pytest.approx(np.mean([r[k] for r in retrain]))
    # The oracle of class-wise forgetting: UA 100 (never predicts class 3), MIA-Efficacy high.
    assert all(r["UA"] == 100.0 for r in retrain)
    # GA is not the oracle: its gap is positive and is the mean absolute difference to the same seed's oracle.
    by = {(r["method"], r["seed"]): r for r in report["results"]}
    for seed in (0, 1):
        ga, ref = by[("ga", seed)], by[("retrain", seed)]
        assert ga["gap"] == pytest.approx(np.mean([abs(ga[k] - ref[k]) for k in GAP_METRICS]))
        assert ga["gap"] > 0


def test_bench_summary_statistics(runs):
    report = runs["bench"][0]
    summary = report["summary"]
    assert set(summary) == {"retrain", "ga"}
    t = stats.t.ppf(0.975, 1)  # n = 2 seeds: 12.706
    assert t == pytest.approx(12.7062, abs=1e-4)
    for method, metrics in summary.items():
        for key in ("UA", "RA", "TA", "MIA", "gap", "time_s"):
            vals = np.array([r[key] for r in report["results"] if r["method"] == method])
            s = metrics[key]
            assert set(s) == {"mean", "std", "ci95"}
            assert s["mean"] == pytest.approx(vals.mean())
            assert s["std"] == pytest.approx(vals.std(ddof=1))  # sample standard deviation
            assert s["ci95"] == pytest.approx(t * vals.std(ddof=1) / math.sqrt(2))
    # Not a trivial case: GA's two seeds differ, so its interval is not zero.
    assert summary["ga"]["RA"]["ci95"] > 0


def test_bench_gap_of_means(runs):
    """``gap_of_means`` (SalUn's convention): the Avg. Gap between the mean metrics over seeds, beside ``gap``, the
    mean of the per-seed gaps."""
    report = runs["bench"][0]
    by = {(r["method"], r["seed"]): r for r in report["results"]}
    for method in ("retrain", "ga"):
        mean = {k: np.mean([by[(method, s)][k] for s in (0, 1)]) for k in GAP_METRICS}
        oracle = {k: np.mean([by[("retrain", s)][k] for s in (0, 1)]) for k in GAP_METRICS}
        by_hand = np.mean([abs(mean[k] - oracle[k]) for k in GAP_METRICS])
        got = report["summary"][method]["gap_of_means"]
        assert isinstance(got, float) and got == pytest.approx(by_hand, rel=1e-12, abs=1e-12)
        # Triangle inequality: the gap of the means never exceeds the mean of the gaps (up to rounding).
        assert got <= report["summary"][method]["gap"]["mean"] + 1e-9
    assert report["summary"]["retrain"]["gap_of_means"] == 0.0
    assert report["summary"]["ga"]["gap_of_means"] > 0


def test_gap_of_means_lets_opposite_errors_cancel():
    from unlearnlib.experiment import summarise

    ref = {"UA": 50.0, "RA": 90.0, "TA": 80.0, "MIA": 40.0}
    # Seed 0 lands 4 above the oracle on every metric, seed 1 lands 4 below: each seed is 4 away, the means agree.
    rows = [{"method": "m", "seed": s, **{k: v + d for k, v in ref.items()}, "gap": 4.0}
            for s, d in ((0, 4.0), (1, -4.0))]
    s = summarise(rows, references={0: ref, 1: ref})["m"]
    assert s["gap"]["mean"] == 4.0 and s["gap_of_means"] == 0.0
    # Without the oracle's metrics there is nothing to compare the means with: no key.
    assert "gap_of_means" not in summarise(rows)["m"]


def test_summarise_single_seed_has_no_interval():
    from unlearnlib.experiment import summarise

    rows = [{"method": "ga", "seed": 0, "UA": 1.0, "RA": 2.0, "TA": 3.0, "MIA": 4.0, "gap": 5.0, "time_s": 6.0,
             "MIA_AUC": 50.0}]
    s = summarise(rows)["ga"]
    assert s["UA"] == {"mean": 1.0, "std": 0.0, "ci95": None}
    rows3 = [dict(rows[0], seed=i, UA=float(v)) for i, v in enumerate((1, 2, 6))]
    s3 = summarise(rows3)["ga"]["UA"]
    assert s3["mean"] == pytest.approx(3.0) and s3["std"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert s3["ci95"] == pytest.approx(4.302653 * s3["std"] / math.sqrt(3), rel=1e-6)


def test_step_cost_json(runs):
    report, stdout, _ = runs["cost"]
    assert set(report) >= {"device", "model", "batch_size", "ga_step_ms", "ratio"}
    assert report["device"] == "cpu" and report["model"] == "cnn" and report["batch_size"] == 8
    assert report["ga_step_ms"] > 0
    assert set(report["ratio"]) == {"ga", "finetune"}
    assert report["ratio"]["ga"] == 1.0  # GA against itself, by construction
    assert all(v > 0 and math.isfinite(v) for v in report["ratio"].values())
    assert json.loads(stdout) == report["ratio"]


def test_median_time_warms_up_once_then_takes_the_median():
    from unlearnlib.bench import median_time
    calls = []
    durations = iter([0.0, 0.002, 0.030, 0.001])   # warm-up, then three timed calls; the slow one is an outlier

    def fn():
        calls.append(1)
        import time
        time.sleep(next(durations))

    t = median_time(fn, repeats=3)
    assert len(calls) == 4
    assert 0.002 <= t < 0.02


def test_step_times_one_sample_per_round_for_every_method(class_task, original):
    from unlearnlib.bench import step_times
    before = {k: v.clone() for k, v in original.state_dict().items()}
    times = step_times(["ga", "ga", "retrain", "orthograd[loop]"], original, class_task, batch_size=4,
                       budgets=(1, 3), rounds=2)
    assert list(times) == ["ga", "retrain", "orthograd[loop]"]     # duplicates timed once, order kept
    assert all(v.shape == (2,) and np.isfinite(v).all() for v in times.values())
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())   # timing leaves θ0 alone


def test_facts_dataset_runs_the_language_track(tmp_path, monkeypatch, capsys):
    # `--dataset facts` goes to the language-model track with the language methods; a tiny model and ten people
    # keep it to seconds (the real sizes are the profile's).
    from unlearnlib import bench, lm_bench
    from unlearnlib.transformer import LMConfig

    tiny = LMConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=24, epochs=15, batch_size=32, lr=1e-2)
    real = lm_bench.run_facts

    def small(names, seeds, fraction, **kw):
        return real(names, seeds, fraction, lm_config=tiny, n_people=10,
                    hyperparameters={m: {"epochs": 2} for m in names}, **kw)
    monkeypatch.setattr(lm_bench, "run_facts", small)
    out = tmp_path / "facts.json"
    rc = bench.main(["--dataset", "facts", "--methods", "ga,npo", "--seeds", "2", "--forget-fraction", "0.2",
                     "--device", "cpu", "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert {r["method"] for r in report["results"]} >= {"ga", "npo"}
    for key in ("forget_acc", "retain_acc", "truth_ratio", "rouge_l", "forget_quality", "privleak", "utility"):
        assert key in report["reference"] and all(key in r for r in report["results"])
    assert "forget_acc" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--methods", "salun"], ["--scenario", "class"], ["--tune"], ["--audit", "relearn"]])
def test_facts_refuses_what_does_not_apply(args, capsys):
    from unlearnlib import bench

    assert bench.main(["--dataset", "facts", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
