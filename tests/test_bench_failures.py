"""Faults of the benchmark command: options it would ignore, results it cannot write, a method that fails, a
metric a task leaves undefined (contract item 1). None of them may lose finished results or print a traceback.

Most cases call :func:`unlearnlib.bench.main` in-process (fast, and able to plant a fault); the cases that
depend on the process itself (its environment, a device file) run ``python -m unlearnlib.bench``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, cli_env, run_cli, start_cli
from unlearnlib.methods import REGISTRY

#: a tiny benchmark whose models the session cache holds (the ``original`` and ``oracle`` fixtures train them).
TINY = ["--scenario", "class", "--forget-class", "3", "--seeds", "1", "--device", "cpu"]


def _one_error_line(err: str, words: str) -> None:
    assert "Traceback" not in err, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert words in err, err


@pytest.fixture()
def warm(original, oracle):
    """The session cache holds seed 0's original model and class-3 oracle, so a TINY run only unlearns."""


# ---------------------------------------------------------------------------------------------------------------
# Options the run would ignore, or that cannot work: refused before anything trains
# ---------------------------------------------------------------------------------------------------------------

OPTION_CASES = [
    ("forget-class-without-class", ["--forget-class", "3"], "--forget-class applies to --scenario class only"),
    ("fraction-with-class", ["--scenario", "class", "--forget-class", "3", "--forget-fraction", "0.2"],
     "--forget-fraction does not apply to --scenario class"),
    ("batch-size-0", ["--batch-size", "0"], "--batch-size must be at least 1"),
    ("batch-size-negative", ["--batch-size", "-8"], "--batch-size must be at least 1"),
    ("seeds-0", ["--seeds", "0"], "--seeds must be at least 1"),
    ("seeds-negative", ["--seeds", "-3"], "--seeds must be at least 1"),
    ("seeds-huge", ["--seeds", str(10**12)], "--seeds must be at most 1000"),
    ("methods-empty", ["--methods", ""], "--methods is empty"),
    ("methods-blank", ["--methods", " , "], "--methods is empty"),
    ("out-empty", ["--out", ""], "--out is empty"),
    ("out-trailing-separator", ["--out", "newdir/"], "is a directory"),
    ("step-cost-with-seeds", ["--step-cost", "--seeds", "2"], "do(es) not apply to --step-cost"),
    ("step-cost-with-class", ["--step-cost", "--forget-class", "3"], "do(es) not apply to --step-cost"),
]


@pytest.mark.parametrize("case_id,args,words", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_option_refused_in_process(case_id, args, words, capfd):
    from unlearnlib.bench import main

    rc = main(args)
    out, err = capfd.readouterr()
    assert rc == 2 and out == ""
    _one_error_line(err, words)


#: a few of the cases above run as processes too; each process spends seconds importing torch, and the
#: in-process test covers every case through the same ``main``.
SUBPROCESS = ("forget-class-without-class", "fraction-with-class", "seeds-huge", "out-trailing-separator")


def test_option_refused_as_a_process(isolated_cache, tmp_path):
    cases = [c for c in OPTION_CASES if c[0] in SUBPROCESS]
    procs = [(c, start_cli(c[1], isolated_cache)) for c in cases]
    for (case_id, _, words), proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (case_id, err)
        assert out == ""
        _one_error_line(err, words)
    assert not (REPO / "newdir").exists()   # the refused folder name is not created either


def test_out_existing_folder_is_refused(tmp_path, capfd):
    from unlearnlib.bench import main

    rc = main(["--out", str(tmp_path)])
    _, err = capfd.readouterr()
    assert rc == 2
    _one_error_line(err, "is a directory")
    assert str(tmp_path / "results.json") in err    # the message says what to give instead


# ---------------------------------------------------------------------------------------------------------------
# The profile: the option wins over the environment; only a value actually used is checked
# ---------------------------------------------------------------------------------------------------------------

def test_profile_option_wins_over_a_bad_environment(isolated_cache, warm, tmp_path):
    env = dict(cli_env(isolated_cache), UNLEARN_PROFILE="nonsense")
    out = tmp_path / "r.json"
    start = lambda *extra: subprocess.Popen([sys.executable, "-m", "unlearnlib.bench", "--methods", "ga", *TINY,
                                             *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
    good, bad = start("--profile", "ci", "--out", str(out)), start()   # without the option the variable is used
    _, good_err = good.communicate(timeout=300)
    _, bad_err = bad.communicate(timeout=300)
    assert good.returncode == 0, good_err
    assert "Traceback" not in good_err
    assert json.loads(out.read_text())["config"]["profile"] == "ci"
    assert bad.returncode == 2
    _one_error_line(bad_err, "unknown profile 'nonsense'")


# ---------------------------------------------------------------------------------------------------------------
# A failed download: one line, however many mirrors were tried
# ---------------------------------------------------------------------------------------------------------------

def test_failed_download_is_one_error_line(tmp_path, monkeypatch, capfd):
    import torchvision

    from unlearnlib.bench import main

    def offline(self):  # what torchvision raises when every mirror fails: one line per mirror
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a.example/mnist/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>\nTried https://b.example/mnist/, "
                           "got:\n<urlopen error [Errno -2] Name or service not known>\n")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    rc = main(["--dataset", "mnist", "--data-root", str(tmp_path), "--download"])
    out, err = capfd.readouterr()
    assert rc == 2 and out == ""
    _one_error_line(err, "could not download 'mnist'")
    assert "b.example" in err    # collapsed onto the line, not cut


# ---------------------------------------------------------------------------------------------------------------
# Writing the results: checked before the run, atomic, never losing the previous file or the new results
# ---------------------------------------------------------------------------------------------------------------

def _fail_fsync(fd):
    raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))   # what a file-size limit gives a write


def test_write_atomic_replaces_whole_file_or_nothing(tmp_path, monkeypatch):
    from unlearnlib.bench import write_atomic

    path = tmp_path / "r.json"
    path.write_text("old\n")
    path.chmod(0o640)
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o640            # the file keeps its permissions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]   # no temporary file left behind
    monkeypatch.setattr(os, "fsync", _fail_fsync)
    with pytest.raises(OSError):
        write_atomic(path, "newer, but the disk refuses it\n")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def _rescued(err: str) -> Path:
    match = re.search(r"saved to (\S+) instead", err)
    assert match, err
    return Path(match.group(1))


def test_failed_write_keeps_previous_file_and_the_new_results(warm, tmp_path, monkeypatch, capfd):
    from unlearnlib.bench import main

    previous = tmp_path / "results.json"
    previous.write_text('{"previous": true}\n')
    monkeypatch.setattr(os, "fsync", _fail_fsync)
    rc = main(["--methods", "ga", *TINY, "--out", str(previous)])
    out, err = capfd.readouterr()
    assert rc == 2
    _one_error_line(err, f"cannot write --out {previous}")
    assert "the previous file is unchanged" in err
    assert previous.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert "ga" in out and "(retrain oracle)" in out       # the table was printed before the write
    rescued = _rescued(err)
    report = json.loads(rescued.read_text())
    rescued.unlink()
    assert [(r["method"], r["seed"]) for r in report["results"]] == [("ga", 0)]


def test_out_device_that_fails_saves_results_elsewhere(isolated_cache, warm):
    proc = run_cli(["--methods", "ga", *TINY, "--out", "/dev/full"], isolated_cache)
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc.stderr, "cannot write --out /dev/full (No space left on device)")
    assert "ga" in proc.stdout
    rescued = _rescued(proc.stderr)
    report = json.loads(rescued.read_text())
    rescued.unlink()
    assert report["results"][0]["method"] == "ga"


def test_unwritable_folder_is_refused_before_the_run(isolated_cache, tmp_path, monkeypatch, capfd):
    # /proc accepts no new files, whoever runs the test (a read-only folder made with chmod does not stop root).
    proc = run_cli(["--methods", "ga", *TINY, "--out", "/proc/unlearnlib-results.json"], isolated_cache)
    assert proc.returncode == 2 and proc.stdout == ""
    _one_error_line(proc.stderr, "cannot write in the folder of --out (/proc")
    # A read-only mount, in-process: the check fails before any dataset is loaded or model trained.
    import tempfile

    from unlearnlib import bench

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(bench, "load_dataset", lambda *a, **k: pytest.fail("the run started"))
    rc = bench.main(["--methods", "ga", *TINY, "--out", str(tmp_path / "r.json")])
    out, err = capfd.readouterr()
    assert rc == 2 and out == ""
    _one_error_line(err, "Read-only file system")


# ---------------------------------------------------------------------------------------------------------------
# A method that fails: the other rows are kept and written, the failure is recorded, the status is 1
# ---------------------------------------------------------------------------------------------------------------

def test_failing_method_keeps_the_other_rows(warm, tmp_path, monkeypatch, capfd):
    from unlearnlib.bench import main

    def boom(model, task, **kwargs):
        raise RuntimeError("planted failure\nwith a second line")

    monkeypatch.setitem(REGISTRY, "boom", boom)
    out_path = tmp_path / "r.json"
    rc = main(["--methods", "ga,boom,retrain", *TINY, "--out", str(out_path)])
    out, err = capfd.readouterr()
    assert rc == 1
    assert "Traceback" not in err
    assert err.splitlines() == ["warning: boom failed on seed 0: RuntimeError: planted failure with a second line"]
    report = json.loads(out_path.read_text())
    assert report["failures"] == [{"method": "boom", "seed": 0,
                                   "error": "RuntimeError: planted failure with a second line"}]
    assert [r["method"] for r in report["results"]] == ["ga", "retrain"]   # finished before and after the fault
    assert set(report["summary"]) == {"ga", "retrain"} and report["interrupted"] is False
    assert "ga" in out and "boom" not in out


def test_interrupted_run_writes_what_finished(warm, tmp_path, monkeypatch, capfd):
    from unlearnlib.bench import main

    def ctrl_c(model, task, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(REGISTRY, "ctrl_c", ctrl_c)
    out_path = tmp_path / "r.json"
    rc = main(["--methods", "ga,ctrl_c,retrain", *TINY, "--out", str(out_path)])
    _, err = capfd.readouterr()
    assert rc == 130
    _one_error_line(err, "interrupted")
    report = json.loads(out_path.read_text())
    assert report["interrupted"] is True and [r["method"] for r in report["results"]] == ["ga"]


# ---------------------------------------------------------------------------------------------------------------
# A one-sample forget set: the loss-based MIA is undefined, said up front and in the JSON; no traceback
# ---------------------------------------------------------------------------------------------------------------

def test_one_sample_forget_set_metrics(data, original):
    from unlearnlib.data import make_task
    from unlearnlib.metrics import evaluate, loss_mia_auc, undefined_metrics

    one = make_task(data, "random", forget_fraction=1 / len(data.y_train), seed=0)
    assert len(one.forget_idx) == 1
    assert set(undefined_metrics(one)) == {"MIA_AUC"}
    assert loss_mia_auc(original, one) is None
    metrics = evaluate(original, one)
    assert metrics["MIA_AUC"] is None and metrics["MIA"] in (0.0, 100.0)   # one sample: called member or not
    two = make_task(data, "random", forget_fraction=2 / len(data.y_train), seed=0)
    assert len(two.forget_idx) == 2 and undefined_metrics(two) == {}
    assert 0 <= loss_mia_auc(original, two) <= 100


def test_one_sample_forget_set_run(isolated_cache, original, data, tmp_path):
    out_path = tmp_path / "r.json"
    fraction = repr(1 / len(data.y_train))
    proc = run_cli(["--methods", "ga", "--forget-fraction", fraction, "--seeds", "1", "--device", "cpu",
                    "--out", str(out_path)], isolated_cache)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("warning: MIA_AUC will be null")   # said before anything trained
    report = json.loads(out_path.read_text())
    assert "needs at least 2" in report["undefined"]["MIA_AUC"]
    (row,) = report["results"]
    assert row["MIA_AUC"] is None and row["MIA"] in (0.0, 100.0) and np.isfinite(row["gap"])
    assert "MIA_AUC" not in report["reference"] and "MIA_AUC" not in report["summary"]["ga"]
