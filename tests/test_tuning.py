"""The oracle-free tuning protocol, the collapse guard and the pass budget (unlearnlib.tuning, chapter 12)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_cli, same_state, state_of
from unlearnlib import UnlearnError, cost, tuning
from unlearnlib.methods import REGISTRY, get_method
from unlearnlib.methods._loop import GUARD_MARGIN, GUARD_SIZE
from unlearnlib.metrics import accuracy

TUNABLE = [n for n in REGISTRY if n != "retrain"]


@pytest.mark.parametrize("name", TUNABLE)
def test_every_method_gets_the_same_grid_size_around_its_default(name):
    g = tuning.grid(name)
    assert len(g) == tuning.GRID_SIZE
    assert len({tuple(sorted(c.items())) for c in g}) == tuning.GRID_SIZE       # no candidate twice
    lr0 = tuning.default_lr(name)
    assert any(c["lr"] == lr0 and all(v == tuning.knob_of(name)[1][0] for k, v in c.items() if k != "lr")
               for c in g), "the method's own default is a candidate"
    get_method(name)  # every candidate names a method the registry resolves


def test_retrain_and_unknown_methods_are_refused():
    with pytest.raises(UnlearnError, match="nothing to tune"):
        tuning.grid("retrain")
    with pytest.raises(UnlearnError, match="unknown method"):
        tuning.grid("nope")


def cand(lr, forget, val, ratio=0.5):
    return {"kwargs": {"lr": lr}, "forget_acc": forget, "val_acc": val, "passes_vs_retrain": ratio,
            "guard_stopped": 0}


def test_the_rule_takes_the_best_validation_accuracy_among_those_that_forget():
    # target 10, start 100: a candidate must reach 10 + (1 - 0.95) * 90 = 14.5 %.
    assert tuning.REACH == 0.95
    cands = [cand(1, 50.0, 99.0), cand(2, 14.0, 90.0), cand(3, 5.0, 80.0), cand(4, 14.6, 98.0)]
    best = tuning.select(cands, target=10.0, start=100.0)
    assert best["kwargs"] == {"lr": 2} and best["reached"] and best["need_forget_acc"] == pytest.approx(14.5)
    # Nobody forgets: the lowest forget accuracy, marked as not reached.
    best = tuning.select([cand(1, 60.0, 99.0), cand(2, 40.0, 70.0)], target=10.0, start=100.0)
    assert best["kwargs"] == {"lr": 2} and not best["reached"]
    # Equal validation accuracy: the cheaper run.
    best = tuning.select([cand(1, 5.0, 90.0, 0.9), cand(2, 5.0, 90.0, 0.3)], target=10.0, start=100.0)
    assert best["kwargs"] == {"lr": 2}


def test_validation_slice_is_withheld_and_disjoint(class_task):
    sub, val = tuning.validation_split(class_task, seed=100)
    n = len(class_task.retain_idx)
    assert len(val) == min(tuning.VALIDATION_MAX, round(tuning.VALIDATION_FRACTION * n))
    assert len(sub.retain_idx) + len(val) == n
    assert not set(val.tolist()) & set(sub.retain_idx.tolist())
    assert set(val.tolist()) <= set(class_task.retain_idx.tolist())
    assert torch.equal(sub.forget_idx, class_task.forget_idx)
    again, val2 = tuning.validation_split(class_task, seed=100)
    assert torch.equal(val, val2) and torch.equal(again.retain_idx, sub.retain_idx)


def slice_accuracy(model, task, seed=0):
    """The guard's own slice (the same draw as the loop's), to check what it promises."""
    g = torch.Generator().manual_seed(seed + 7919)
    pick = torch.randperm(len(task.y_retain), generator=g)[:GUARD_SIZE]
    return accuracy(model, task.x_retain[pick], task.y_retain[pick])


def test_guard_returns_no_collapsed_model(original, class_task):
    # Gradient ascent without its stopping rule and with a large step drives the model to chance on the retain set;
    # with the guard the returned model keeps its slice accuracy within the margin, and says it was stopped.
    kw = dict(lr=0.05, steps=60, stop_at=None, seed=0)
    wild = get_method("ga")(original, class_task, guard=None, **kw)
    guarded = get_method("ga")(original, class_task, **kw)
    start = slice_accuracy(original, class_task)
    assert slice_accuracy(wild, class_task) < start - GUARD_MARGIN   # the premise: unguarded, it collapses
    assert not wild.guard_stopped
    assert guarded.guard_stopped and slice_accuracy(guarded, class_task) >= start - GUARD_MARGIN


def test_guard_leaves_a_healthy_run_bit_identical(original, class_task):
    kw = dict(steps=12, seed=0)
    a = get_method("neggrad_plus")(original, class_task, guard=None, **kw)
    b = get_method("neggrad_plus")(original, class_task, **kw)
    assert not b.guard_stopped and same_state(state_of(a), state_of(b))


def test_guard_and_budget_inputs_are_checked(original, class_task):
    for bad in (0, -1.0, float("nan"), "5"):
        with pytest.raises(UnlearnError, match="guard must be"):
            get_method("ga")(original, class_task, steps=1, guard=bad)
    for bad in (0, 2.5, True):
        with pytest.raises(UnlearnError, match="max_passes must be"):
            get_method("ga")(original, class_task, steps=1, max_passes=bad)


def test_budget_stops_the_run_after_the_step_that_reaches_it(original, class_task):
    # The budget counts the loop's own passes; the run stops after the first step that reaches it. Checked against
    # runs of a fixed number of steps without guard and budget (their count includes the one-sample shape check).
    kw = dict(stop_at=None, seed=0)
    out = get_method("neggrad_plus")(original, class_task, max_passes=1000, **kw)
    k = out.steps_taken
    assert out.budget_stopped and k > 1
    counts = []
    for steps in (k - 1, k):
        with cost.counting() as used:
            get_method("neggrad_plus")(original, class_task, steps=steps, guard=None, **kw)
        counts.append(used.total - 1)
    assert counts[0] < 1000 <= counts[1]


def test_tune_and_bench_from_the_command_line(tmp_path, isolated_cache, oracle):
    out = tmp_path / "tuned.json"
    r = run_cli(["--tune", "--scenario", "class", "--forget-class", "3", "--methods", "neggrad_plus",
                 "--seeds", "1", "--out", str(out)], isolated_cache, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    entry = report["methods"]["neggrad_plus"]
    assert len(entry["candidates"]) == tuning.GRID_SIZE and entry["kwargs"] in [c["kwargs"]
                                                                               for c in entry["candidates"]]
    assert report["seeds"] == [100] and report["protocol"]["budget_vs_retrain"] == tuning.BUDGET
    assert "neggrad_plus" in r.stdout and "forget target" in r.stdout
    bench = tmp_path / "bench.json"
    r = run_cli(["--scenario", "class", "--forget-class", "3", "--methods", "neggrad_plus", "--seeds", "1",
                 "--tuned", str(out), "--out", str(bench)], isolated_cache, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(bench.read_text())
    assert res["config"]["hyperparameters"]["neggrad_plus"] == entry["kwargs"]
    assert res["config"]["tuned"] == f"file: {out}" and "flags" in res
    assert all(isinstance(row["flags"], list) for row in res["results"])
    # A retain subset: the benchmark applies the values stored for that setting (seed 0's models are cached now).
    r = run_cli(["--scenario", "class", "--forget-class", "3", "--methods", "neggrad_plus", "--seeds", "1",
                 "--retain-fraction", "0.05", "--out", str(bench)], isolated_cache, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(bench.read_text())
    assert res["config"]["tuned"] == "stored: unlearnlib/tuned/digits-class-retain5.json"
    assert res["config"]["retain_fraction"] == 0.05
    assert res["config"]["hyperparameters"]["neggrad_plus"] == tuning.tuned_kwargs("neggrad_plus",
                                                                                   retain_fraction=0.05)


def test_subset_kwargs_restrict_every_method_and_keep_the_retain_driven_budget(class_task):
    # Every method gets the seed's subset (5 %, at least one batch, the same draw for every method); a method that
    # runs over D_r keeps the steps its epochs give on the whole of it, a method over D_f keeps its own budget.
    n = len(class_task.retain_idx)
    ngp = tuning.subset_kwargs("neggrad_plus", class_task, 0.05, seed=0)
    ga = tuning.subset_kwargs("ga", class_task, 0.05, seed=0)
    assert len(ngp["retain_positions"]) == max(32, round(0.05 * n))
    assert torch.equal(ngp["retain_positions"], ga["retain_positions"])
    assert set(ga) == {"retain_positions"} and "steps" in ngp
    assert ngp["steps"] > len(ngp["retain_positions"]) // 32
    assert len(set(ngp["retain_positions"].tolist())) == len(ngp["retain_positions"]) < n


def test_bad_tuned_files_and_options_are_one_line_errors(tmp_path, isolated_cache):
    bad = tmp_path / "bad.json"
    bad.write_text('{"methods": {"ga": 3}}')
    tuned_file = tmp_path / "whole.json"  # values tuned on the whole of D_r
    tuned_file.write_text(json.dumps(tuning.stored("digits", "class")))
    for args, needle in ((["--tuned", str(tmp_path / "missing.json")], "no tuned values"),
                         (["--tuned", str(bad)], "not a tuning report"),
                         (["--tune", "--audit", "relearn"], "--tune chooses"),
                         (["--tune", "--methods", "retrain"], "nothing to tune"),
                         (["--guard", "0"], "--guard must be"),
                         (["--retain-fraction", "1.5"], "strictly between 0 and 1"),
                         (["--retain-fraction", "0.05", "--tuned", str(tuned_file)], "tuned for a retain fraction")):
        r = run_cli(["--scenario", "class", "--forget-class", "3", "--seeds", "1", *args], isolated_cache)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr


@pytest.mark.parametrize("path", sorted(tuning.TUNED_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_stored_choices_follow_the_rule(path):
    # Every committed tuning report is what the protocol's rule picks from its own candidates, with the protocol's
    # current constants: a change of the rule without re-tuning fails here.
    report = tuning.load_tuned(path)
    assert report["protocol"] == json.loads(json.dumps(tuning.protocol()))
    for name, entry in report["methods"].items():
        assert len(entry["candidates"]) + len(entry.get("failed", [])) == tuning.GRID_SIZE
        again = tuning.select(entry["candidates"], report["target_forget_acc"], report["start_forget_acc"])
        assert again["kwargs"] == entry["kwargs"] and again["reached"] == entry["reached"], name


def test_the_benchmark_applies_the_stored_values_by_default():
    from unlearnlib.bench import resolve_tuned

    assert tuning.stored("digits", "class") is not None, "unlearnlib/tuned/digits-class.json is missing"
    source, report = resolve_tuned("auto", "digits", "class")
    assert source.startswith("stored:") and report["methods"]["neggrad_plus"]["kwargs"] == \
        tuning.tuned_kwargs("neggrad_plus", "digits", "class")
    assert resolve_tuned("none", "digits", "class") == ("defaults", None)
    assert resolve_tuned("auto", "mnist", "class")[1] is None or tuning.stored("mnist", "class") is not None


@pytest.fixture(scope="module")
def small_stress(isolated_cache):
    """A 2,000-image slice of the offline stress set (chapter 01) with its original CNN (ci recipe, cached): the
    setting in which the registry's defaults of PCGrad collapse the model, at a size a unit test can train."""
    from unlearnlib.config import get_profile
    from unlearnlib.data import from_arrays, load_dataset, make_task
    from unlearnlib.train import TrainConfig, original_model

    full = load_dataset("digits-stress")
    g = torch.Generator().manual_seed(0)
    tr = torch.randperm(len(full.y_train), generator=g)[:2000]
    te = torch.randperm(len(full.y_test), generator=g)[:500]
    data = from_arrays("stress-2000", full.x_train[tr].numpy(), full.y_train[tr].numpy(),
                       full.x_test[te].numpy(), full.y_test[te].numpy())
    cfg = TrainConfig.from_profile(get_profile("ci"))
    task = make_task(data, "class", forget_class=3, seed=0)
    return data, cfg, task, original_model(data, cfg, seed=0, device="cpu", progress=False)


def test_stress_set_guard_flags_the_collapse_and_tuning_avoids_it(small_stress, monkeypatch):
    from unlearnlib.experiment import guardrail_flags, start_point
    from unlearnlib.metrics import evaluate

    data, cfg, task, m0 = small_stress
    wild = get_method("pcgrad")(m0, task, guard=None)
    origin = start_point(m0, task)
    chance = 100.0 / data.num_classes
    # The premise: without the guard, PCGrad's defaults leave the model near chance on the retain set.
    ra_wild = accuracy(wild, task.x_retain, task.y_retain)
    assert ra_wild < chance + 15 and "collapsed" in guardrail_flags(evaluate(wild, task), origin, wild)
    guarded = get_method("pcgrad")(m0, task)
    row = evaluate(guarded, task)
    assert guarded.guard_stopped and "guard_stopped" in guardrail_flags(row, origin, guarded)
    assert row["RA"] >= origin["retain_acc"] - GUARD_MARGIN - 5   # the slice's sampling error, 256 of ~1,800
    # The protocol on the same slice, with two learning rates (×1/8 and ×1) to keep the test short: the chosen
    # value is not a collapsed model on the withheld validation slice.
    monkeypatch.setitem(tuning.LR_FACTORS, "knob", (1 / 8, 1))
    monkeypatch.setitem(tuning.KNOBS, "pcgrad", ("beta", (0.99,)))
    monkeypatch.setattr(tuning, "GRID_SIZE", 2)
    report = tuning.tune(["pcgrad"], "class", data=data, cfg=cfg, forget_class=3, seeds=[0], device="cpu",
                         progress=False)
    entry = report["methods"]["pcgrad"]
    assert entry["val_acc"] > chance + 15
    assert len(entry["candidates"]) == 2
