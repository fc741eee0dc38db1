"""Shared fixtures of the unit tests of unlearnlib.

Everything expensive is built once per session in a private cache: the digits dataset, the original model of
the ``ci`` profile (seed 0, CPU), the class-3 and random-10 % tasks of seed 0 and, on demand, the retrain oracle
of the class-3 task. ``UNLEARN_CACHE`` points at a temporary folder for the whole session (subprocesses inherit
it through :func:`cli_env`), so no test reads or writes the user's cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """A private UNLEARN_CACHE and the ci profile for the whole session; one torch thread.

    One thread: the models are tiny, and on a 2-core machine shared with other jobs, two threads per process
    oversubscribe the cores and make the suite several times slower; results are the same up to rounding.
    """
    cache = tmp_path_factory.mktemp("unlearn-cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARN_CACHE", str(cache))
        mp.setenv("UNLEARN_PROFILE", "ci")
        yield cache
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data():
    from unlearnlib.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def cfg():
    from unlearnlib.config import get_profile
    from unlearnlib.train import TrainConfig

    return TrainConfig.from_profile(get_profile("ci"))


@pytest.fixture(scope="session")
def original(data, cfg, isolated_cache):
    """The original model of the ci profile, seed 0, on the CPU (cached in the session cache)."""
    from unlearnlib.train import original_model

    return original_model(data, cfg, seed=0, device="cpu", progress=False)


@pytest.fixture(scope="session")
def class_task(data):
    from unlearnlib.data import make_task

    return make_task(data, "class", forget_class=3, seed=0)


@pytest.fixture(scope="session")
def random_task(data):
    from unlearnlib.data import make_task

    return make_task(data, "random", forget_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def oracle(class_task, cfg, isolated_cache):
    """The retrain oracle of the class-3 task, seed 0 (also warms the cache for the command-line tests)."""
    from unlearnlib.train import retrained_model

    return retrained_model(class_task, cfg, seed=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def mlp_class_setting():
    """(digits, its class-3 task of seed 0, a fresh MLP): the small setting of the method unit tests."""
    from unlearnlib import data, models

    d = data.load_dataset("digits")
    task = data.make_task(d, "class", forget_class=3, seed=0)
    model = models.make_model("mlp", d.input_shape, d.num_classes, seed=0)
    return d, task, model


@pytest.fixture
def count_training(monkeypatch):
    """Count the calls of ``unlearnlib.train.train_model`` (still training for real)."""
    from unlearnlib import train as train_mod

    calls = []
    real = train_mod.train_model

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(train_mod, "train_model", counting)
    return calls


def state_of(model) -> dict:
    """A detached copy of a model's state dict, to compare before/after."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli_env(cache: Path) -> dict:
    env = dict(os.environ)
    env.update(UNLEARN_CACHE=str(cache), UNLEARN_PROFILE="ci", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return env


def run_cli(args, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m unlearnlib.bench ARGS`` in a subprocess with the session cache."""
    return subprocess.run([sys.executable, "-m", "unlearnlib.bench", *args], cwd=REPO, env=cli_env(cache),
                          capture_output=True, text=True, timeout=timeout)


def start_cli(args, cache: Path) -> subprocess.Popen:
    """Start ``python -m unlearnlib.bench ARGS`` without waiting (several error cases run side by side)."""
    return subprocess.Popen([sys.executable, "-m", "unlearnlib.bench", *args], cwd=REPO, env=cli_env(cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
