"""The facts track of the bench (unlearnlib.lm_bench, chapter 15) on a tiny model and a handful of people."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from unlearnlib import lm_bench
from unlearnlib.errors import UnlearnError
from unlearnlib.transformer import LMConfig

TINY = LMConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=24, epochs=15, batch_size=32, lr=1e-2)


@pytest.fixture(scope="module")
def result():
    return lm_bench.run_facts(["ga", "npo", "idk"], seeds=[0, 1], forget_fraction=0.2, progress=False,
                              lm_config=TINY, n_people=10, hyperparameters={m: {"epochs": 2} for m in
                                                                           ("ga", "npo", "idk")})


def test_json_has_the_contract_keys(result):
    assert set(result) >= {"config", "reference", "results", "summary", "floor", "paired", "paired_family",
                           "failures"}
    json.dumps(result)   # serialisable as it is
    assert result["config"]["dataset"] == "facts"
    for key in (*lm_bench.LM_KEYS, "lm_gap"):
        assert key in result["reference"] and key in result["floor"]
    rows = result["results"]
    assert {(r["method"], r["seed"]) for r in rows} == {(m, s) for m in ("original", "ga", "npo", "idk")
                                                       for s in (0, 1)}
    for r in rows:
        assert set(r) >= {"method", "seed", *lm_bench.LM_KEYS, "time_s", "passes", "passes_vs_retrain"}
        assert 0 <= r["forget_quality"] <= 1 and 0 <= r["forget_acc"] <= 100
        assert (r["passes"] == 0) == (r["method"] == "original")
    assert result["failures"] == []


def test_reference_is_the_oracle_and_rows_are_compared_with_it(result):
    ref = result["reference"]
    assert ref["forget_quality"] == 1.0 and ref["privleak"] == 0.0 and ref["lm_gap"] == 0.0
    for r in result["results"]:
        assert r["lm_gap"] >= 0


def test_paired_against_npo_and_ga_with_holm(result):
    paired, family = result["paired"], result["paired_family"]
    assert family["baselines"] == ["npo", "ga"]
    entry = paired["idk"]["npo"]["lm_gap"]
    assert set(entry) >= {"mean", "ci95", "p", "p_holm"}
    assert entry["p_holm"] is None or entry["p_holm"] >= entry["p"]
    # two baselines compared once: ga against npo, not both ways
    assert "npo" not in paired.get("ga", {}).get("npo", {}) and "ga" not in paired.get("npo", {})


def test_passes_vs_retrain_uses_retraining_count(result):
    cfg = result["config"]
    for r in result["results"]:
        if r["method"] != "original":
            assert r["passes_vs_retrain"] == pytest.approx(r["passes"] / cfg["retrain_passes"])


@pytest.mark.parametrize("args, match", [
    (dict(methods=["nope"]), "unknown language method"),
    (dict(methods=["ga"], seeds=[-1]), "seeds"),
    (dict(methods=["ga"], forget_fraction=1.0), "fraction"),
    (dict(methods=[]), "non-empty"),
])
def test_bad_input_is_refused_before_any_training(args, match):
    with pytest.raises(UnlearnError, match=match):
        lm_bench.run_facts(**{"seeds": [0], **args}, progress=False, lm_config=TINY, n_people=10)


@pytest.mark.parametrize("argv, match", [
    (["--methods", "nope", "--seeds", "1"], "unknown language method"),
    (["--seeds", "0"], "--seeds"),
    (["--forget-fraction", "2"], "fraction"),
    (["--out", "/nonexistent/dir/x.json"], "cannot write"),
    (["--bogus"], "unrecognized"),
])
def test_command_line_bad_input_is_one_error_line_and_status_2(argv, match):
    proc = subprocess.run([sys.executable, "-m", "unlearnlib.lm_bench", *argv], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0]


def test_sweep_applies_the_rule():
    grid = {"ga": {"lr": [1e-4, 3e-3]}, "npo": {"lr": [3e-3], "beta": [0.5]}}
    out = lm_bench.sweep(seeds=(100,), grid=grid, lm_config=TINY, n_people=10)
    assert set(out["grid"]) == {"ga", "npo"} and len(out["grid"]["ga"]) == 2
    for name, cells in out["grid"].items():
        qualifying = [c for c in cells if c["qualifies"]]
        for c in cells:
            r = c["per_seed"][0]
            assert c["qualifies"] == (r["forget_acc"] <= r["target"])
        best = max(qualifying, key=lambda c: c["mean_retain_acc"])["params"] if qualifying else None
        assert out["chosen"][name] == best


def test_defaults_are_the_committed_sweep_choice():
    from unlearnlib.methods.language import DEFAULTS

    chosen = lm_bench.load_committed("lm_sweep")["chosen"]
    for name, params in chosen.items():
        if params is not None:
            assert {k: DEFAULTS[name][k] for k in params} == params, name
