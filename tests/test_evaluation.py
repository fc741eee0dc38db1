"""Chapter 11's evaluation machinery: the hard forget sets, the noise floor, paired statistics with Holm's
correction, the relearning attack, and the benchmark's new options and JSON blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import run_cli
from unlearnlib import UnlearnError
from unlearnlib.data import flip_labels, make_task
from unlearnlib.experiment import Comparison, compare_methods, holm, paired_difference
from unlearnlib.relearn import attack_split, relearn_curve, steps_to_recover
from unlearnlib.train import retrained_model


# --- the mislabeled scenario -----------------------------------------------------------------------------------
def test_mislabeled_task_flips_exactly_the_forget_set(data):
    task = make_task(data, "mislabeled", forget_fraction=0.1, seed=4)
    n = len(data.y_train)
    assert len(task.forget_idx) == round(0.1 * n)
    changed = (task.data.y_train != data.y_train).nonzero().flatten()
    assert torch.equal(changed, task.forget_idx)              # every flipped label, and nothing else, is in D_f
    assert torch.equal(task.y_forget_true, data.y_train[task.forget_idx])
    assert bool((task.y_forget != task.y_forget_true).all())   # a flip never gives back the true class
    assert torch.equal(task.data.y_test, data.y_test) and torch.equal(task.data.x_train, data.x_train)
    assert task.data.fingerprint() != data.fingerprint()        # the corrupted data get their own cached models
    again = make_task(data, "mislabeled", forget_fraction=0.1, seed=4)
    assert torch.equal(again.data.y_train, task.data.y_train)
    other = make_task(data, "mislabeled", forget_fraction=0.1, seed=5)
    assert not torch.equal(other.forget_idx, task.forget_idx)


def test_flipped_labels_are_spread_over_the_other_classes(data):
    """The new class is uniform over the C - 1 others: a chi-square test of the offsets at the 0.1 % level (the
    test fails only once in a thousand seeds if the draw is uniform; an offset of 0 or a fixed offset fails it
    with certainty)."""
    noisy, flipped = flip_labels(data, 0.5, seed=0)
    offsets = (noisy.y_train[flipped] - data.y_train[flipped]) % data.num_classes
    counts = torch.bincount(offsets, minlength=data.num_classes).numpy()
    assert counts[0] == 0
    assert stats.chisquare(counts[1:]).pvalue > 1e-3


def test_evaluate_reports_true_label_accuracy_on_mislabeled_tasks(data, original):
    from unlearnlib.metrics import evaluate

    task = make_task(data, "mislabeled", forget_fraction=0.1, seed=0)
    out = evaluate(original, task)
    assert 0 <= out["true_label_acc"] <= 100
    # The original of the clean data predicts the true labels of D_f as well as it does the rest of D:
    # its accuracy on the given (flipped) labels is then at most 100 minus that.
    assert out["UA"] >= out["true_label_acc"] - 1e-9
    assert "true_label_acc" not in evaluate(original, make_task(data, "random", seed=0))


# --- the memorized scenario ------------------------------------------------------------------------------------
def test_memorized_task_takes_the_highest_scores(data):
    n = len(data.y_train)
    scores = np.random.default_rng(0).normal(size=n)
    task = make_task(data, "memorized", forget_fraction=0.1, seed=3, scores=scores)
    k = round(0.1 * n)
    assert len(task.forget_idx) == k
    chosen = set(task.forget_idx.tolist())
    assert chosen == set(np.argsort(-scores, kind="stable")[:k].tolist())
    assert min(scores[list(chosen)]) >= max(np.delete(scores, list(chosen)))
    # The set is a property of the data: the seed only names the run.
    assert torch.equal(make_task(data, "memorized", 0.1, seed=7, scores=scores).forget_idx, task.forget_idx)


@pytest.mark.parametrize("scores", [[0.0] * 5, np.full(1347, np.nan)])
def test_memorized_task_refuses_bad_scores(data, scores):
    with pytest.raises(UnlearnError, match="memorisation scores"):
        make_task(data, "memorized", forget_fraction=0.1, scores=scores)


@pytest.mark.parametrize("scenario", ["mislabeled", "memorized"])
@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2, float("nan"), True])
def test_hard_scenarios_refuse_bad_fractions(data, scenario, fraction):
    with pytest.raises(UnlearnError, match="forget fraction"):
        make_task(data, scenario, forget_fraction=fraction, scores=[0.0] * len(data.y_train))


def test_forget_target_of_the_hard_scenarios(data, original):
    from unlearnlib.methods._loop import forget_target

    assert forget_target(make_task(data, "mislabeled", seed=0), original) == 100 / data.num_classes
    task = make_task(data, "memorized", scores=np.arange(len(data.y_train), dtype=float))
    task.unseen_forget_acc = 42.0
    assert forget_target(task, original) == 42.0


# --- paired statistics and Holm ---------------------------------------------------------------------------------
def test_holm_matches_the_step_down_procedure():
    p = [0.01, 0.04, 0.03, 0.005, None]
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    adj = holm(p)
    assert adj[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and adj[4] is None
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])       # capped at 1
    rng = np.random.default_rng(1)
    q = list(rng.uniform(size=12))
    a = holm(q)
    assert all(ai >= qi for ai, qi in zip(a, q))                # never smaller than the raw p-value
    order = np.argsort(q)
    assert all(np.diff(np.array(a)[order]) >= 0)                # and in the same order


def test_paired_difference_is_the_paired_t_test():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 1.0, 10), rng.normal(0.0, 1.0, 10)
    e = paired_difference(a - b)
    assert e["mean"] == pytest.approx(np.mean(a - b))
    assert e["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    lo, hi = stats.t.interval(0.95, 9, loc=np.mean(a - b), scale=stats.sem(a - b))
    assert e["ci95"] == pytest.approx((hi - lo) / 2)
    assert paired_difference([0.0, 0.0, 0.0])["p"] == 1.0 and paired_difference([1.0, 1.0])["p"] == 0.0
    assert paired_difference([3.0])["ci95"] is None


def _comparison(gaps: dict, floor_gaps) -> Comparison:
    seeds = list(range(len(floor_gaps)))
    rows = [{"method": m, "seed": s, "UA": 0.0, "RA": 100.0, "TA": 95.0, "MIA": 50.0, "gap": g[s]}
            for m, g in gaps.items() for s in seeds]
    refs = [{"UA": 0.0, "RA": 100.0, "TA": 95.0, "MIA": 50.0} for _ in seeds]
    return Comparison("class", seeds, rows, refs, [{"seed": s, "gap": f, "UA": 0.0} for s, f in zip(seeds, floor_gaps)])


def test_paired_stats_and_floor_on_known_rows():
    floor = [0.5, 0.6, 0.4, 0.5, 0.7, 0.3, 0.5, 0.6, 0.4, 0.5]
    gaps = {"ga": [3.0 + 0.1 * s for s in range(10)], "neggrad_plus": [1.0 + 0.05 * (s % 3) for s in range(10)],
            "pcgrad": [1.0 + 0.05 * ((s + 1) % 3) for s in range(10)], "close": [f + 0.01 * (-1) ** s for s, f in
                                                                               enumerate(floor)]}
    c = _comparison(gaps, floor)
    assert c.floor["gap"]["mean"] == pytest.approx(np.mean(floor))
    assert c.beyond_floor("ga") and not c.beyond_floor("close")
    paired, family = c.paired_stats(keys=("gap",))
    assert family["baselines"] == ["ga", "neggrad_plus"] and family["pairs_per_metric"] == 5
    e = paired["pcgrad"]["ga"]["gap"]
    assert e["mean"] == pytest.approx(np.mean(np.array(gaps["pcgrad"]) - gaps["ga"]))
    assert e["p_holm"] >= e["p"] and e["p_holm"] < 0.05
    assert "pcgrad" not in paired["pcgrad"]                     # never compared with itself
    assert paired["pcgrad"]["neggrad_plus"]["gap"]["p_holm"] > 0.05  # a shuffle of the same values
    assert "(noise floor)" in c.table(keys=("UA", "gap"))


def test_compare_methods_records_a_floor_from_a_second_oracle(data, cfg, class_task):
    first = retrained_model(class_task, cfg, seed=0, device="cpu", progress=False)
    second = retrained_model(class_task, cfg, seed=0, device="cpu", progress=False, replica=1)
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))
    c = compare_methods(["retrain"], "class", data=data, cfg=cfg, seeds=[0], device="cpu", progress=False)
    assert len(c.floor_rows) == 1 and c.floor_rows[0]["gap"] >= 0
    assert set(c.floor) >= {"UA", "RA", "TA", "MIA", "gap"}
    assert not compare_methods(["retrain"], "class", data=data, cfg=cfg, seeds=[0], device="cpu", progress=False,
                               floor=False).floor_rows
    with pytest.raises(UnlearnError, match="replica"):
        retrained_model(class_task, cfg, replica=-1)


# --- the relearning attack --------------------------------------------------------------------------------------
def test_relearn_curve_mechanics(original, class_task):
    before = {k: v.clone() for k, v in original.state_dict().items()}
    curve = relearn_curve(original, class_task, steps=5, seed=0)
    assert curve.shape == (6,) and np.all((0 <= curve) & (curve <= 100))
    assert all(torch.equal(v, before[k]) for k, v in original.state_dict().items())  # the model is not changed
    attack, held = attack_split(class_task, 0.2, seed=0)
    x, y = class_task.x_forget[held], class_task.y_forget[held]
    with torch.no_grad():
        start = (original(x).argmax(1) == y).float().mean().item() * 100
    assert curve[0] == pytest.approx(start)                     # step 0 is the model as given
    assert set(attack.tolist()).isdisjoint(held.tolist()) and len(attack) + len(held) == len(class_task.forget_idx)
    assert np.array_equal(curve, relearn_curve(original, class_task, steps=5, seed=0))
    assert steps_to_recover(np.array([10.0, 40.0, 90.0]), 50) == 2 and steps_to_recover(np.array([1.0]), 50) is None


def test_relearning_restores_what_gradient_ascent_suppressed(original, class_task, oracle):
    """GA drives class 3 to chance by pushing its logits down, not by erasing what the rest of the network knows
    of the class: steps on a fifth of the class bring the held-out four fifths back at once, while the oracle,
    which never learnt the class, learns nothing of it from the same steps. The margins are whole-class sized
    (the curves jump from below chance to above 90 %), far beyond any rounding difference between machines."""
    from unlearnlib.methods import get_method

    unlearned = get_method("ga")(original, class_task, seed=0)
    attack = relearn_curve(unlearned, class_task, seed=0)
    control = relearn_curve(unlearned, class_task, seed=0, control=True)
    oracle_attack = relearn_curve(oracle, class_task, seed=0)
    assert attack[0] < 100 / 10 + 5                              # forgotten, by the usual measure
    assert steps_to_recover(attack, 90) <= 2                     # back within two steps
    assert steps_to_recover(oracle_attack, 50) is None           # the oracle does not get there in ten
    assert attack[2] - control[2] > 30                            # and it is D_f that brings it back


@pytest.mark.parametrize("kw, match", [({"steps": -1}, "steps"), ({"lr": 0.0}, "lr"), ({"fraction": 1.0}, "fraction")])
def test_relearn_refuses_bad_input(original, class_task, kw, match):
    with pytest.raises(UnlearnError, match=match):
        relearn_curve(original, class_task, **kw)


# --- the benchmark's options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--scenario", "mislabeled", "--forget-class", "3"], "--forget-class applies to --scenario class only"),
    (["--scenario", "class", "--forget-class", "3", "--forget-fraction", "0.1"], "does not apply to --scenario class"),
    (["--audit", "lira"], "unknown audit"),
    (["--audit", ","], "--audit is empty"),
    (["--methods", "ga", "--baselines", "neggrad_plus"], "--baselines must name methods of the run"),
    (["--step-cost", "--audit", "ulira"], "do not apply to --step-cost"),
    (["--scenario", "mislabeled", "--forget-fraction", "1.5"], "forget fraction"),
])
def test_bench_refuses_bad_evaluation_options(args, message, capsys):
    """In-process (the command's ``main``), so that the refusals cost no interpreter start each; the subprocess
    path of the same errors is tested in test_bench_cli.py."""
    from unlearnlib.bench import main

    assert main(args) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error:") and message in line


def test_bench_mislabeled_writes_floor_and_paired(tmp_path, isolated_cache):
    out = tmp_path / "mislabeled.json"
    proc = run_cli(["--scenario", "mislabeled", "--seeds", "2", "--methods", "ga,neggrad_plus,finetune",
                    "--audit", "relearn", "--device", "cpu", "--out", str(out)], isolated_cache, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["config"]["scenario"] == "mislabeled" and report["config"]["forget_fraction"] == 0.1
    assert set(report["floor"]) >= {"UA", "RA", "TA", "MIA", "gap", "true_label_acc"}
    assert all("true_label_acc" in r for r in report["results"])
    fam = report["paired_family"]
    assert fam["baselines"] == ["ga", "neggrad_plus"] and "Holm" in fam["correction"]
    e = report["paired"]["finetune"]["ga"]["gap"]
    assert set(e) >= {"mean", "ci95", "p", "p_holm", "test"} and e["p_holm"] >= e["p"]
    gaps = {m: [r["gap"] for r in report["results"] if r["method"] == m] for m in ("finetune", "ga")}
    assert e["mean"] == pytest.approx(np.mean(np.subtract(gaps["finetune"], gaps["ga"])))
    assert "(noise floor)" in proc.stdout and "gap − ga" in proc.stdout
    # What there is to undo: the original model against each seed's oracle, and the oracle per seed.
    assert [r["seed"] for r in report["original_per_seed"]] == [0, 1] == [r["seed"] for r in report["reference_per_seed"]]
    assert report["original"]["UA"]["mean"] == pytest.approx(np.mean([r["UA"] for r in report["original_per_seed"]]))
    assert [r["seed"] for r in report["floor_per_seed"]] == [0, 1]
    # The relearning attack: every row and the oracle have it.
    assert all(0 <= r["relearn_acc"] <= 100 for r in report["results"]) and "relearn_acc" in report["reference"]


# --- the committed results that chapters load ------------------------------------------------------------------
def test_committed_results_are_consistent_with_their_rows():
    """Every committed benchmark file loads, and its summary, floor and paired blocks are what its own rows give:
    the tables a chapter prints are recomputable from the rows, not numbers typed in."""
    from unlearnlib import records
    from unlearnlib.experiment import summarise

    names = records.available()
    assert names, "no committed results: run bash benchmarks/run_evaluation.sh"
    checked = 0
    for name in names:
        if "results" not in records.load_result(name):
            continue  # the step cost, the cost curve, the language-model sweep: no benchmark rows
        report = records.load_bench(name)
        if report["config"].get("dataset") == "digits" and not report["config"].get("audits"):
            assert report["config"]["seeds"] >= 10, name  # the ten-seed tables of chapters 11 and 12
        key = "gap" if all("gap" in r for r in report["results"]) else "lm_gap"
        summary = summarise(report["results"], keys=(key,))
        for method, block in summary.items():
            assert block[key]["mean"] == pytest.approx(report["summary"][method][key]["mean"]), (name, method)
        floor = summarise([{"method": "f", **r} for r in report["floor_per_seed"]], keys=(key,))["f"]
        assert floor[key]["mean"] == pytest.approx(report["floor"][key]["mean"]), name
        for method, by_base in report["paired"].items():
            for base, by_key in by_base.items():
                d = records.per_seed(report, method, key) - records.per_seed(report, base, key)
                assert by_key[key]["mean"] == pytest.approx(d.mean()), (name, method, base)
        checked += 1
    assert checked >= 8


def test_records_refuse_unknown_and_check_reproduction():
    from unlearnlib import records

    with pytest.raises(UnlearnError, match="no committed results named"):
        records.load_bench("nope")
    report = {"results": [{"method": "ga", "seed": 0, "gap": 2.0}],
              "floor_per_seed": [{"seed": 0, "gap": 0.3}, {"seed": 1, "gap": 0.5}]}
    assert records.reproduces(report, [{"method": "ga", "seed": 0, "gap": 2.4}])["ok"]
    assert not records.reproduces(report, [{"method": "ga", "seed": 0, "gap": 2.6}])["ok"]
    with pytest.raises(UnlearnError, match="no row"):
        records.reproduces(report, [{"method": "ga", "seed": 3, "gap": 2.0}])


def test_verdicts_read_the_holm_decisions_both_ways():
    # A baseline's row against another baseline is stored once, the other way round; the verdict is read from it
    # with the sign flipped. Undecided: adjusted p at or above the level; an unknown method is a one-line error.
    from unlearnlib import records

    def entry(mean, p_holm):
        return {"gap": {"mean": mean, "ci95": 1.0, "p": p_holm, "p_holm": p_holm}}

    summary = {m: {"gap": {"mean": g, "ci95": 0.5}} for m, g in (("ga", 8.0), ("neggrad_plus", 0.4),
                                                                 ("x", 0.6), ("y", 3.0))}
    report = {"summary": summary, "floor": {"gap": {"mean": 0.2}}, "config": {"seeds": 10},
              "paired": {"ga": {"neggrad_plus": entry(7.6, 0.01)},
                         "x": {"ga": entry(-7.4, 0.02), "neggrad_plus": entry(0.2, 0.3)},
                         "y": {"ga": entry(-5.0, 0.04), "neggrad_plus": entry(2.6, 0.001)}}}
    v = records.verdicts(report, ["ga", "neggrad_plus", "x", "y"])
    assert v == {"ga": {"ga": 0, "neggrad_plus": 1}, "neggrad_plus": {"ga": -1, "neggrad_plus": 0},
                 "x": {"ga": -1, "neggrad_plus": 0}, "y": {"ga": -1, "neggrad_plus": 1}}
    assert records.verdicts(report, ["y"], level=0.03)["y"] == {"ga": 0, "neggrad_plus": 1}
    text = records.format_verdicts(report, ["x", "y"])
    assert "closer (p=0.02)" in text and "· (p=0.3)" in text and "farther (p=0.001)" in text
    with pytest.raises(UnlearnError, match="no rows for z"):
        records.verdicts(report, ["z"])


def test_bench_audits_write_their_row_keys_and_floor(tmp_path, data, monkeypatch, capsys):
    """``--audit ulira,competition`` end to end, in-process, on a 600-sample part of digits saved as an .npz (the
    dataset path users give) with the fewest shadow models and replicas the audits accept, so that it runs in
    seconds: every row gets the contract's keys, and the floor holds the oracle's own audit values."""
    from dataclasses import replace

    from unlearnlib import config
    from unlearnlib.bench import main

    npz = tmp_path / "digits600.npz"
    # The data are already standardised; standardising again (from_arrays does) leaves them as they are.
    np.savez(npz, x_train=data.x_train[:600, 0].numpy(), y_train=data.y_train[:600].numpy(),
             x_test=data.x_test[:, 0].numpy(), y_test=data.y_test.numpy())
    monkeypatch.setitem(config._PROFILES, "ci", replace(config._PROFILES["ci"], shadow_models=6, audit_replicas=3))
    out = tmp_path / "audit.json"
    status = main(["--dataset", str(npz), "--scenario", "class", "--forget-class", "3", "--seeds", "1",
                   "--methods", "ga", "--audit", "ulira,competition", "--device", "cpu", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    row, = report["results"]
    assert 0 <= row["ulira_auc"] <= 100 and 0 <= row["ulira_tpr_at_1pct_fpr"] <= 100
    assert 0 <= row["competition_score"] <= 1
    assert report["config"]["shadow_models"] == 6 and report["config"]["audit_replicas"] == 3
    floor = report["floor"]
    assert {"ulira_auc", "ulira_tpr_at_1pct_fpr", "competition_score"} <= set(floor)
    # GA's unlearned shadows are easier to tell from retrained ones than a second retraining is.
    assert row["ulira_auc"] > floor["ulira_auc"]["mean"]


def test_paired_across_two_reports_pairs_by_seed_and_refuses_different_tasks():
    from unlearnlib import records

    config = {"dataset": "digits", "scenario": "class", "forget_class": 3, "retain_fraction": 0.05}
    a = {"config": config, "results": [{"method": "m", "seed": s, "gap": g} for s, g in ((0, 1.0), (1, 2.0),
                                                                                         (2, 4.0))]}
    b = {"config": config, "results": [{"method": "n", "seed": s, "gap": g} for s, g in ((2, 1.0), (1, 1.5),
                                                                                         (3, 9.0))]}
    d = records.paired_across(a, "m", b, "n")
    assert d["seeds"] == [1, 2] and d["mean"] == pytest.approx(1.75) and d["n"] == 2
    with pytest.raises(UnlearnError, match="retain_fraction differ"):
        records.paired_across(a, "m", {**b, "config": {**config, "retain_fraction": None}}, "n")
    with pytest.raises(UnlearnError, match="no seed"):
        records.paired_across(a, "x", b, "n")


def test_same_models_compares_the_fingerprints_of_original_and_oracle():
    from unlearnlib import records

    report = {"original_per_seed": [{"seed": 0, "UA": 0.0, "RA": 100.0, "TA": 98.2, "MIA_AUC": 52.3469}],
              "reference_per_seed": [{"seed": 0, "UA": 100.0, "RA": 100.0, "TA": 99.5, "MIA_AUC": 100.0}]}
    original = {"method": "original", "seed": 0, "UA": 0.0, "RA": 100.0, "TA": 98.2, "MIA_AUC": 52.3469}
    oracle = {"UA": 100.0, "RA": 100.0, "TA": 99.5, "MIA_AUC": 100.0}
    assert records.same_models(report, [original], [oracle])
    # Another kernel: the accuracies tie, the continuous AUC does not.
    assert not records.same_models(report, [{**original, "MIA_AUC": 52.3512}], [oracle])
    assert not records.same_models(report, [original], [{**oracle, "TA": 99.3}])
    assert not records.same_models(report, [{**original, "seed": 4}], [oracle])  # a seed the report lacks
    with pytest.raises(UnlearnError, match="every seed"):
        records.same_models(report, [original], [])
    # The language-model report keeps its original rows among the results and no oracle per seed.
    lm_report = {"results": [{"method": "original", "seed": 0, "forget_acc": 100.0, "truth_ratio": 0.0385,
                              "privleak": 110.68, "utility": 98.41, "mia_auc": 98.64}]}
    lm_row = dict(lm_report["results"][0])
    assert records.same_models(lm_report, [lm_row], keys=records.LM_FINGERPRINT)
    assert not records.same_models(lm_report, [{**lm_row, "truth_ratio": 0.0391}], keys=records.LM_FINGERPRINT)
