"""The ``digits-stress`` dataset (unlearnlib.stress, chapter 01): made deterministically and offline, split without
leakage, distorted beyond its noise, still readable, and accepted by the models and the benchmark."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, cli_env
from unlearnlib import stress
from unlearnlib.data import BUILTIN, from_arrays, load_dataset


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """The dataset is made, not downloaded: any connection attempt fails loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("digits-stress tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def arrays():
    return stress.make_stress()


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("digits-stress")


def test_registered_and_shaped(dataset):
    assert "digits-stress" in BUILTIN
    n_train = stress.COPIES * len(stress.digits_split()[1])
    assert dataset.name == "digits-stress" and dataset.num_classes == 10
    assert dataset.input_shape == (1, 28, 28)
    assert dataset.x_train.shape == (n_train, 1, 28, 28) and dataset.x_train.dtype == torch.float32
    assert dataset.y_train.shape == (n_train,) and dataset.y_train.dtype == torch.int64
    assert dataset.x_test.shape[1:] == (1, 28, 28) and dataset.y_test.dtype == torch.int64
    assert 7_000 <= n_train <= 9_000   # "about 8,000 training images"
    # Standardised with the training statistics: mean 0 and standard deviation 1 up to float32 summation error
    # (relative 1e-7 per addition, a few hundred additions deep in NumPy's pairwise sums of 6 million pixels).
    assert abs(dataset.x_train.mean().item()) < 1e-4
    assert abs(dataset.x_train.std().item() - 1) < 1e-4


def test_deterministic_and_same_fingerprint_in_another_process(dataset, isolated_cache):
    again = load_dataset("digits-stress")
    for a, b in ((dataset.x_train, again.x_train), (dataset.y_train, again.y_train),
                 (dataset.x_test, again.x_test), (dataset.y_test, again.y_test)):
        assert torch.equal(a, b)
    assert dataset.fingerprint() == again.fingerprint()
    # Another process, with another thread count: the arrays depend on neither (float64 element-wise arithmetic,
    # einsum and gathers from one seeded NumPy generator).
    env = dict(cli_env(isolated_cache), OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    code = "from unlearnlib.data import load_dataset; print(load_dataset('digits-stress').fingerprint())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == dataset.fingerprint()


def test_labels_follow_the_sources_and_stay_balanced(arrays):
    from sklearn.datasets import load_digits

    target = load_digits().target
    xtr, ytr, itr, xte, yte, ite = stress.digits_split()
    for side, y_src in (("train", ytr), ("test", yte)):
        y = arrays[f"y_{side}"]
        # Every image carries the label of the digit it was drawn from ...
        assert np.array_equal(y, target[arrays[f"src_{side}"]])
        # ... and each class keeps exactly its share of the stratified split, COPIES times over.
        assert np.array_equal(np.bincount(y, minlength=10), stress.COPIES * np.bincount(y_src, minlength=10))


def test_train_and_test_come_from_disjoint_digits_of_the_digits_split(arrays):
    xtr, ytr, itr, xte, yte, ite = stress.digits_split()
    # The split is the digits dataset's own: the same arrays in the same order give the same fingerprint.
    same = from_arrays("digits", xtr, ytr, xte, yte, num_classes=10)
    assert same.fingerprint() == load_dataset("digits").fingerprint()
    assert set(itr).isdisjoint(ite)
    # Every test image is drawn from a test digit, every training image from a training digit: no test image is a
    # distortion of a training image.
    assert set(arrays["src_test"]) == set(ite)
    assert set(arrays["src_train"]) == set(itr)


def _msd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared pixel difference of paired images [N, 28, 28], in float64."""
    return ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)


def test_distortion_moves_pixels_beyond_the_noise(arrays):
    # Error model of noise alone: two copies with the same geometry differ by clip(v + n1) - clip(v + n2) per
    # pixel, with n1, n2 independent N(0, s^2); clipping to 0-1 never increases a difference, so each pixel's
    # squared difference has mean <= 2 s^2 and variance <= E[(n1 - n2)^4] = 12 s^4. The mean over P = 784
    # independent pixels then has mean <= 2 s^2 and standard deviation <= s^2 sqrt(12 / P); 6 standard deviations
    # above the mean (a normal tail of 1e-9 per pair) bound what noise alone can do.
    s, p = stress.NOISE, stress.SIZE**2
    bound = 2 * s**2 + 6 * s**2 * math.sqrt(12 / p)
    xtr = stress.digits_split()[0]
    rng = np.random.default_rng(0)
    plain = lambda: stress.distort(xtr, rng, alpha=0.0, affine=0.0, shift=0.0)
    noise_only = _msd(plain(), plain())
    assert noise_only.max() < bound  # the error model holds on the generator itself
    # Copies 0 and 1 of every training digit: same source, different distortions.
    n = len(xtr)
    distorted = _msd(arrays["x_train"][:n], arrays["x_train"][n:2 * n])
    # Almost every pair differs beyond the noise bound (a few digits, such as a "1", barely change under a
    # displacement along their stroke), and the typical pair by more than twice as much.
    assert (distorted > bound).mean() > 0.9
    assert np.median(distorted) > 2 * bound


def _downsample(x28: np.ndarray) -> np.ndarray:
    """The digit's 20x20 box averaged back to 8x8."""
    m = stress.MARGIN
    t = torch.from_numpy(np.ascontiguousarray(x28[:, None, m:-m, m:-m]))
    return torch.nn.functional.adaptive_avg_pool2d(t, 8)[:, 0].numpy().astype(np.float64)


def test_distorted_digits_stay_readable(arrays):
    # A reader that never saw a distortion: the nearest class centroid of the 8x8 training digits, applied to the
    # distorted test images averaged back to 8x8. Guessing scores 10 %. We call the labels readable when this
    # crude linear reader identifies at least three times as many images as guessing, with the accuracy's lower
    # 99.9 % bound (3.29 binomial standard deviations over the test images) as the figure compared.
    xtr, ytr, *_ = stress.digits_split()
    centroids = np.stack([xtr[ytr == c].mean(0) for c in range(10)]).reshape(10, -1).astype(np.float64)
    z = _downsample(arrays["x_test"]).reshape(len(arrays["x_test"]), 1, -1)
    predicted = ((z - centroids[None]) ** 2).sum(-1).argmin(1)
    acc = float((predicted == arrays["y_test"]).mean())
    lower = acc - 3.29 * math.sqrt(acc * (1 - acc) / len(arrays["y_test"]))
    assert lower > 3 * 0.1, acc


@pytest.mark.parametrize("name", ["mlp", "cnn", "cnn-wide", "resnet18"])
def test_models_build_for_28x28(name, dataset):
    from unlearnlib.models import make_model

    model = make_model(name, dataset.input_shape, dataset.num_classes, seed=0).eval()
    with torch.no_grad():
        out = model(dataset.x_test[:3])
    assert out.shape == (3, 10) and bool(torch.isfinite(out).all())


def test_bench_accepts_digits_stress(tmp_path, monkeypatch, capfd):
    from unlearnlib import bench, config

    # One training epoch instead of the profile's 30, so that the original model and both oracles train in
    # seconds: this checks the wiring, not the numbers.
    monkeypatch.setattr(bench, "get_profile", lambda name=None: config.get_profile(name, train_epochs=1))
    out = tmp_path / "r.json"
    rc = bench.main(["--dataset", "digits-stress", "--scenario", "class", "--forget-class", "3", "--seeds", "1",
                     "--methods", "ga", "--model", "mlp", "--device", "cpu", "--out", str(out)])
    _, err = capfd.readouterr()
    assert rc == 0, err
    report = json.loads(out.read_text())
    assert report["config"]["dataset"] == "digits-stress" and report["config"]["train"]["epochs"] == 1
    assert report["failures"] == []
    (row,) = report["results"]
    assert row["method"] == "ga"
    for k in ("UA", "RA", "TA"):
        assert 0 <= row[k] <= 100
