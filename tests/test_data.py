"""Datasets and forgetting scenarios (unlearnlib.data, chapter 01)."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
import torch

from unlearnlib import UnlearnError
from unlearnlib.data import from_arrays, load_dataset, make_task, minibatches


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test of this module may reach the network: any connection attempt fails loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("a data test tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------------------------------------------------------
# Forgetting scenarios
# ---------------------------------------------------------------------------------------------------------------

def _check_partition(task, n):
    f, r = task.forget_idx.tolist(), task.retain_idx.tolist()
    assert set(f).isdisjoint(r)
    assert sorted(f + r) == list(range(n))
    assert len(set(f)) == len(f) and len(set(r)) == len(r)
    assert torch.equal(task.x_forget, task.data.x_train[task.forget_idx])
    assert torch.equal(task.y_retain, task.data.y_train[task.retain_idx])


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.013])
def test_random_split_partitions_training_set_with_right_size(data, fraction):
    n = len(data.y_train)
    task = make_task(data, "random", forget_fraction=fraction, seed=3)
    _check_partition(task, n)
    assert len(task.forget_idx) == round(fraction * n)
    assert len(task.retain_idx) == n - round(fraction * n)
    # Random forgetting keeps the whole test set.
    assert torch.equal(task.y_test, data.y_test) and torch.equal(task.x_test, data.x_test)


def test_random_split_deterministic_from_seed_and_varies_with_it(data):
    a = make_task(data, "random", forget_fraction=0.1, seed=0)
    b = make_task(data, "random", forget_fraction=0.1, seed=0)
    c = make_task(data, "random", forget_fraction=0.1, seed=1)
    assert torch.equal(a.forget_idx, b.forget_idx) and torch.equal(a.retain_idx, b.retain_idx)
    assert not torch.equal(a.forget_idx, c.forget_idx)
    # Different seeds give substantially different forget sets (not a shifted copy of the same one).
    overlap = len(set(a.forget_idx.tolist()) & set(c.forget_idx.tolist())) / len(a.forget_idx)
    assert overlap < 0.5
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_random_split_is_not_biased_towards_one_class(data):
    # A uniformly random 50 % forget set holds between 30 % and 70 % of every class (each class has ~135
    # samples; a deviation of 20 points is more than 4 standard deviations of a hypergeometric draw).
    task = make_task(data, "random", forget_fraction=0.5, seed=0)
    for c in range(10):
        share = (task.y_forget == c).sum().item() / (data.y_train == c).sum().item()
        assert 0.3 < share < 0.7, (c, share)


@pytest.mark.parametrize("cls", [0, 3, 9])
def test_class_split_takes_every_sample_of_the_class(data, cls):
    n = len(data.y_train)
    task = make_task(data, "class", forget_class=cls, seed=0)
    _check_partition(task, n)
    assert (task.y_forget == cls).all()
    assert len(task.forget_idx) == (data.y_train == cls).sum().item()
    assert (task.y_retain != cls).all()
    # The class-wise test set excludes the class; the full test set stays available.
    assert (task.y_test != cls).all()
    assert len(task.y_test) == (data.y_test != cls).sum().item()
    assert torch.equal(task.x_test, data.x_test[data.y_test != cls])
    assert torch.equal(task.y_test_all, data.y_test)


def test_class_split_does_not_depend_on_seed(data):
    a = make_task(data, "class", forget_class=3, seed=0)
    b = make_task(data, "class", forget_class=3, seed=7)
    assert torch.equal(a.forget_idx, b.forget_idx)


def test_describe_mentions_sizes(class_task):
    text = class_task.describe()
    assert f"|D_f| = {len(class_task.forget_idx)}" in text and "class 3" in text


def test_minibatches_cover_range_once():
    g = torch.Generator().manual_seed(0)
    batches = list(minibatches(10, 3, g))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [len(b) for b in minibatches(10, 3, g, drop_last=True)] == [3, 3, 3]


# ---------------------------------------------------------------------------------------------------------------
# Loading: digits, .npz layouts, standardisation
# ---------------------------------------------------------------------------------------------------------------

def test_digits_shapes_and_standardisation(data):
    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.num_classes == 10 and set(data.y_train.tolist()) == set(range(10))
    assert abs(data.x_train.mean().item()) < 1e-4
    assert abs(data.x_train.std().item() - 1) < 1e-3


def _raw(rng, n, shape, dtype=np.uint8):
    return rng.integers(0, 256, size=(n, *shape)).astype(dtype)


def _expected_standardised(xtr_nchw, xte_nchw):
    mean = xtr_nchw.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr_nchw.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return (xtr_nchw - mean) / std, (xte_nchw - mean) / std


@pytest.mark.parametrize("layout", ["grey-uint8", "colour-last-uint8", "colour-first-float", "labels-n1",
                                    "grey-last-uint8", "float-integral-labels"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    ntr, nte, h, w = 40, 12, 6, 5
    ytr, yte = rng.integers(0, 4, ntr), rng.integers(0, 4, nte)
    ytr[:4] = [0, 1, 2, 3]
    if layout == "grey-uint8":
        xtr, xte = _raw(rng, ntr, (h, w)), _raw(rng, nte, (h, w))
        ref_tr, ref_te = xtr[:, None] / 255.0, xte[:, None] / 255.0
    elif layout == "grey-last-uint8":  # Keras style [N, H, W, 1]
        xtr, xte = _raw(rng, ntr, (h, w, 1)), _raw(rng, nte, (h, w, 1))
        ref_tr, ref_te = xtr.transpose(0, 3, 1, 2) / 255.0, xte.transpose(0, 3, 1, 2) / 255.0
    elif layout == "colour-last-uint8":
        xtr, xte = _raw(rng, ntr, (h, w, 3)), _raw(rng, nte, (h, w, 3))
        ref_tr, ref_te = xtr.transpose(0, 3, 1, 2) / 255.0, xte.transpose(0, 3, 1, 2) / 255.0
    elif layout == "colour-first-float":
        xtr = rng.normal(size=(ntr, 3, h, w)).astype(np.float32)
        xte = rng.normal(size=(nte, 3, h, w)).astype(np.float32)
        ref_tr, ref_te = xtr, xte
    elif layout == "labels-n1":
        xtr, xte = _raw(rng, ntr, (h, w)), _raw(rng, nte, (h, w))
        ref_tr, ref_te = xtr[:, None] / 255.0, xte[:, None] / 255.0
        ytr, yte = ytr[:, None], yte[:, None]
    elif layout == "float-integral-labels":
        xtr, xte = _raw(rng, ntr, (h, w)), _raw(rng, nte, (h, w))
        ref_tr, ref_te = xtr[:, None] / 255.0, xte[:, None] / 255.0
        ytr, yte = ytr.astype(np.float64), yte.astype(np.float32)
    path = tmp_path / "toy.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)

    d = load_dataset(str(path))
    c = ref_tr.shape[1]
    assert d.x_train.shape == (ntr, c, h, w) and d.x_test.shape == (nte, c, h, w)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.y_train.tolist() == np.asarray(ytr).reshape(-1).astype(int).tolist()
    assert d.y_test.tolist() == np.asarray(yte).reshape(-1).astype(int).tolist()
    assert d.num_classes == 4 and d.name == "toy"
    exp_tr, exp_te = _expected_standardised(ref_tr.astype(np.float64), ref_te.astype(np.float64))
    np.testing.assert_allclose(d.x_train.numpy(), exp_tr, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d.x_test.numpy(), exp_te, rtol=1e-4, atol=1e-4)


def test_standardisation_uses_training_statistics_only():
    # The test images are the first 50 training images shifted by +40: standardised with the *training*
    # statistics they sit 40 / std_c away from those images (mean well above 0); with their own statistics they
    # would be centred at 0.
    rng = np.random.default_rng(1)
    xtr = (10 + 2 * rng.standard_normal((200, 3, 5, 6))).astype(np.float32)
    xtr[:, 1] += 100  # channels with other means and scales: statistics are per channel
    xtr[:, 2] *= 7
    xte = xtr[:50].copy() + 40
    d = from_arrays("shift", xtr, np.arange(200) % 3, xte, np.arange(50) % 3)
    per_channel_mean = d.x_train.mean(dim=(0, 2, 3))
    per_channel_std = d.x_train.std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(per_channel_mean, torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel_std, torch.ones(3), atol=1e-4, rtol=0)
    # test = train[:50] + 40 exactly, so the standardised test is the standardised train shifted by 40 / std.
    std = xtr.std(axis=(0, 2, 3)) + 1e-6
    expected = d.x_train[:50] + torch.tensor(40 / std, dtype=torch.float32)[None, :, None, None]
    torch.testing.assert_close(d.x_test, expected, atol=1e-4, rtol=1e-5)
    assert d.x_test.mean().item() > 10


def test_fingerprint_changes_with_content(data):
    other = from_arrays("d", data.x_train.numpy(), data.y_train.numpy(), data.x_test.numpy(), data.y_test.numpy())
    y = data.y_train.numpy().copy()
    y[0] = (y[0] + 1) % 10
    changed = from_arrays("d", data.x_train.numpy(), y, data.x_test.numpy(), data.y_test.numpy())
    assert other.fingerprint() != changed.fingerprint()
    assert other.fingerprint() == from_arrays("e", data.x_train.numpy(), data.y_train.numpy(), data.x_test.numpy(),
                                              data.y_test.numpy()).fingerprint()


# ---------------------------------------------------------------------------------------------------------------
# torchvision datasets from local files only
# ---------------------------------------------------------------------------------------------------------------

def _write_idx(path, array: np.ndarray) -> None:
    """The big-endian idx format of MNIST: magic 0x0000 08 <ndim> (uint8), then the dimensions as uint32."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    path.write_bytes(header + array.tobytes())


def make_fake_mnist(root, folder="MNIST", ntr=30, nte=10, size=7, seed=0):
    """A tiny dataset in torchvision's raw MNIST layout.

    torchvision 0.29's MNIST with download=False only checks that root/<folder>/raw/{train,t10k}-images-idx3-ubyte
    and -labels-idx1-ubyte exist (no checksum), then parses them.
    """
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", ntr), ("t10k", nte)):
        x = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(raw / f"{split}-images-idx3-ubyte", x)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", y)
        arrays[split] = (x, y)
    return arrays


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_dataset_from_local_files(tmp_path, name, folder):
    pytest.importorskip("torchvision")
    arrays = make_fake_mnist(tmp_path, folder)
    d = load_dataset(name, root=tmp_path, download=False)
    assert d.name == name and d.num_classes == 10
    assert d.x_train.shape == (30, 1, 7, 7) and d.x_test.shape == (10, 1, 7, 7)
    assert d.y_train.tolist() == arrays["train"][1].tolist()
    assert d.y_test.tolist() == arrays["t10k"][1].tolist()
    # Pixel values come through: the standardised images are an affine function of the raw bytes.
    xtr = arrays["train"][0][:, None] / 255.0
    exp_tr, _ = _expected_standardised(xtr, xtr)
    np.testing.assert_allclose(d.x_train.numpy(), exp_tr, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_absent_torchvision_dataset_says_download(tmp_path, name):
    pytest.importorskip("torchvision")
    with pytest.raises(UnlearnError, match="--download") as info:
        load_dataset(name, root=tmp_path / "empty", download=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").rglob("*-ubyte*"))


def test_fake_mnist_task_end_to_end(tmp_path):
    """The loaded torchvision dataset is an ordinary Dataset: scenarios work on it."""
    pytest.importorskip("torchvision")
    make_fake_mnist(tmp_path)
    d = load_dataset("mnist", root=tmp_path)
    task = make_task(d, "class", forget_class=2, seed=0)
    assert len(task.forget_idx) == 3 and (task.y_test != 2).all()
