"""Inputs that used to give a silently wrong number, a cryptic error or a huge allocation (contract item 1).

Every case below is refused with one clear :class:`unlearnlib.UnlearnError` line, or (the model cache) repaired
without a word; the valid neighbour of each case still works, so that the checks are not simply "refuse all".
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import same_state, state_of
from unlearnlib import UnlearnError
from unlearnlib.config import get_profile
from unlearnlib.data import from_arrays, make_task, minibatches
from unlearnlib.grads import (harmonize, pcgrad, per_sample_grads, per_sample_grads_loop,
                              project_orthogonal, unilateral_surgery)
from unlearnlib.methods import get_method
from unlearnlib.methods._loop import run_unlearning
from unlearnlib.models import make_model
from unlearnlib.train import TrainConfig, original_model, state_digest, train_model

TINY = TrainConfig(model="mlp", epochs=2, batch_size=64, lr=0.05)


def _raises(call, *words):
    with pytest.raises(UnlearnError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    for w in words:
        assert w in message, message
    return message


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 6, 6)).astype(np.uint8)


def _arrays(y_train, y_test, x_train=None, x_test=None):
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    x_train = _images(len(y_train)) if x_train is None else x_train
    x_test = _images(len(y_test), 1) if x_test is None else x_test
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------------------------------------------------
# Labels and classes
# ---------------------------------------------------------------------------------------------------------------

LABELS = np.arange(40) % 4
BAD_LABELS = [
    # (id, y_train, y_test, num_classes, words)
    ("one-class", np.zeros(40, int), np.zeros(12, int), None, "single class"),
    ("stray-million", np.r_[LABELS[:-1], 1_000_000], LABELS[:12], None, "relabel"),
    ("stray-2**31-1", np.r_[LABELS[:-1], 2**31 - 1], LABELS[:12], None, "relabel"),
    ("sparse", (np.arange(40) % 10) * 100, (np.arange(12) % 10) * 100, None, "relabel them to 0 .. C-1"),
    ("unseen-test-label", LABELS, np.r_[LABELS[:11], 7], None, "never seen in training"),
    ("fractional-labels", LABELS + 0.25, LABELS[:12] + 0.25, None, "integer class labels"),
    ("nan-labels", np.r_[LABELS[:-1], np.nan], LABELS[:12].astype(float), None, "integer class labels"),
    ("float-labels-beyond-2**53", np.r_[LABELS[:-1], 1e30], LABELS[:12].astype(float), None,
     "integer class labels"),
    ("whole-float-stray-label", np.r_[LABELS[:-1], 1e6], LABELS[:12].astype(float), None, "relabel"),
    ("num-classes-too-small", LABELS, LABELS[:12], 3, "num_classes is 3"),
    ("num-classes-too-large", LABELS, LABELS[:12], 10, "relabel"),
    ("num-classes-0", LABELS, LABELS[:12], 0, "at least 2"),
    ("num-classes-bool", LABELS, LABELS[:12], True, "must be an integer"),
]


@pytest.mark.parametrize("case_id,y_train,y_test,num_classes,words", BAD_LABELS, ids=[c[0] for c in BAD_LABELS])
def test_bad_labels_are_refused(case_id, y_train, y_test, num_classes, words):
    _raises(lambda: from_arrays("t", *_arrays(y_train, y_test), num_classes=num_classes), words)


def test_good_labels_still_load():
    d = from_arrays("t", *_arrays(LABELS, LABELS[:12]))
    assert d.num_classes == 4 and d.y_train.dtype == torch.int64
    assert from_arrays("t", *_arrays(LABELS, LABELS[:12]), num_classes=np.int64(4)).num_classes == 4
    whole = from_arrays("t", *_arrays(LABELS.astype(float), LABELS[:12].astype(np.float32)))
    assert torch.equal(whole.y_train, d.y_train) and whole.y_train.dtype == torch.int64


@pytest.mark.parametrize("value,dtype", [(3e38, np.float32), (1e20, np.float32), (1e300, np.float64)])
def test_huge_finite_pixels_are_refused_without_blaming_nan(value, dtype):
    # 3e38: the float32 mean overflows; 1e20: the variance overflows (the result would be a constant 0, not NaN);
    # 1e300: beyond float32 altogether. The file holds no NaN, and the message must not say it does.
    x = _images(40).astype(dtype)
    x[0, 0, :] = value
    message = _raises(lambda: from_arrays("t", *_arrays(LABELS, LABELS[:12], x_train=x)), "rescale")
    assert "NaN" not in message


def test_nan_pixels_are_still_called_nan():
    x = _images(40).astype(np.float64)
    x[0, 0, 0] = np.nan
    _raises(lambda: from_arrays("t", *_arrays(LABELS, LABELS[:12], x_train=x)), "NaN")


def test_standardisation_of_valid_data_is_unchanged():
    # The float32 computation of the statistics is kept (the overflow is checked, not avoided), so valid data
    # gives the same numbers as the plain formula.
    x = _images(40).astype(np.float32) / 255.0
    d = from_arrays("t", *_arrays(LABELS, LABELS[:12], x_train=x))
    xc = x[:, None]
    expected = (xc - xc.mean(axis=(0, 2, 3), keepdims=True)) / (xc.std(axis=(0, 2, 3), keepdims=True) + 1e-6)
    assert np.array_equal(d.x_train.numpy(), expected)


def test_forgetting_the_only_test_class_is_refused():
    d = from_arrays("t", *_arrays(LABELS, np.zeros(12, int)))
    _raises(lambda: make_task(d, "class", forget_class=0), "empty test set")
    assert len(make_task(d, "class", forget_class=1).y_test) == 12


@pytest.mark.parametrize("value", [True, np.bool_(True), float("nan"), "3", 3.5])
def test_forget_class_must_be_a_whole_number(data, value):
    _raises(lambda: make_task(data, "class", forget_class=value), "does not exist")


def test_forget_class_accepts_numpy_and_whole_float(data):
    for value in (np.int64(3), 3.0):
        assert make_task(data, "class", forget_class=value).forget_class == 3


@pytest.mark.parametrize("num_classes", [0, 1, True, 2.5])
def test_make_model_refuses_bad_class_counts(num_classes):
    _raises(lambda: make_model("mlp", (1, 8, 8), num_classes), "num_classes")


def test_make_model_refuses_bad_input_shapes():
    _raises(lambda: make_model("cnn", (8, 8), 10), "input_shape")
    _raises(lambda: make_model("mlp", (1, 0, 8), 10), "input_shape")


def test_training_refuses_labels_beyond_the_model_outputs(data):
    model = make_model("mlp", data.input_shape, 5, seed=0)
    _raises(lambda: train_model(model, data.x_train, data.y_train, TINY, progress=False), "5 outputs")


def test_training_refuses_float_labels(data):
    model = make_model("mlp", data.input_shape, 10, seed=0)
    _raises(lambda: train_model(model, data.x_train, data.y_train.float(), TINY, progress=False), "integer")


def test_diverged_training_is_an_error_not_a_cached_model(data, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_CACHE", str(tmp_path))
    cfg = TrainConfig(model="mlp", epochs=1, lr=1e30)
    _raises(lambda: original_model(data, cfg, device="cpu", progress=False), "diverged")
    assert list(tmp_path.glob("*.pt")) == []


# ---------------------------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(data):
    return make_model("mlp", data.input_shape, data.num_classes, seed=0), make_task(data, "class", forget_class=3)


LOOP_CASES = [
    ("lr-nan", dict(lr=float("nan")), "must be positive"),
    ("lr-0", dict(lr=0.0), "must be positive"),
    ("lr-inf", dict(lr=math.inf), "must be positive"),
    ("epochs-nan", dict(epochs=float("nan")), "must be positive"),
    ("batch-size-float", dict(batch_size=2.5), "must be positive"),
    ("steps-negative", dict(steps=-5), "steps must be a positive integer"),
    ("steps-0", dict(steps=0), "steps must be a positive integer"),
    ("steps-float", dict(steps=2.5), "steps must be a positive integer"),
    ("stop-at-bogus", dict(stop_at="bogus"), "stop_at must be None, 'auto'"),
    ("stop-at-nan", dict(stop_at=float("nan")), "stop_at must be None, 'auto'"),
    ("check-every-0", dict(check_every=0), "check_every"),
    ("momentum-nan", dict(momentum=float("nan")), "momentum"),
    ("weight-decay-negative", dict(weight_decay=-1.0), "weight_decay"),
]


@pytest.mark.parametrize("case_id,kw,words", LOOP_CASES, ids=[c[0] for c in LOOP_CASES])
def test_loop_refuses_bad_hyperparameters(case_id, kw, words, small):
    model, task = small
    args = dict(epochs=1, lr=0.1, steps=1, stop_at=None) | kw
    _raises(lambda: run_unlearning(model, task, lambda *a: None, **args), words)


def test_methods_refuse_bad_steps_and_stop_at(small):
    model, task = small
    _raises(lambda: get_method("ga")(model, task, steps=-5), "steps")
    _raises(lambda: get_method("ga")(model, task, stop_at="bogus"), "stop_at")
    _raises(lambda: get_method("scrub")(model, task, stop_max_at="bogus"), "stop_max_at")


def test_loop_refuses_a_model_with_nan_weights(small):
    model, task = small
    bad = make_model("mlp", task.data.input_shape, task.data.num_classes, seed=0)
    with torch.no_grad():
        next(bad.parameters())[0, 0] = float("nan")
    _raises(lambda: get_method("finetune")(bad, task, steps=1), "NaN")


def test_loop_refuses_a_model_of_another_class_count(small):
    _, task = small
    other = make_model("mlp", task.data.input_shape, 7, seed=0)
    _raises(lambda: get_method("ga")(other, task, steps=1), "7", "10 classes")


def test_valid_steps_and_stop_at_still_run(small):
    model, task = small
    out = get_method("ga")(model, task, steps=2, stop_at=None)
    assert not same_state(state_of(out), state_of(model))
    get_method("ga")(model, task, steps=np.int64(1), stop_at=np.float32(10.0))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_minibatches_refuses_bad_batch_sizes(batch_size):
    _raises(lambda: list(minibatches(10, batch_size)), "batch_size")


@pytest.mark.parametrize("field,value", [("seeds", -1), ("seeds", 0), ("seeds", True), ("seeds", 2.0),
                                         ("train_epochs", 0), ("train_lr", float("nan")), ("train_lr", -0.1),
                                         ("unlearn_batch_size", 0), ("model", "")])
def test_get_profile_refuses_bad_overrides(field, value):
    _raises(lambda: get_profile("ci", **{field: value}), field)


def test_get_profile_accepts_good_overrides():
    p = get_profile("ci", seeds=np.int64(2), train_lr=0.01)
    assert p.seeds == 2 and p.train_lr == 0.01


@pytest.mark.parametrize("kw", [dict(lr=float("nan")), dict(lr=0), dict(epochs=0), dict(batch_size=-1),
                                dict(momentum=float("nan"))])
def test_train_config_refuses_bad_values(kw):
    _raises(lambda: TrainConfig(**kw), "TrainConfig")


# ---------------------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------------------

def _cnn(data):
    return make_model("cnn", data.input_shape, data.num_classes, seed=0).eval()


@pytest.mark.parametrize("fn", [per_sample_grads, per_sample_grads_loop], ids=["vmap", "loop"])
def test_per_sample_grads_refuse_unbatched_inputs(fn, data):
    model, x, y = _cnn(data), data.x_train[:4], data.y_train[:4]
    _raises(lambda: fn(model, x[0], y[0]), "y of shape [B]")         # one image, a 0-d label
    _raises(lambda: fn(model, x[0].flatten(), y[:64]), "batch of inputs")   # a flat vector
    _raises(lambda: fn(model, x, y[:, None]), "one label per sample")
    _raises(lambda: fn(model, x, y.float()), "integer")


def test_per_sample_grads_refuse_images_of_the_wrong_shape(data):
    model = _cnn(data)
    _raises(lambda: per_sample_grads(model, data.x_train[:4, 0], data.y_train[:4]), "x[:1] of shape")


def _bn_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))


def test_loop_reference_refuses_train_mode_batchnorm_like_vmap(data):
    x, y = data.x_train[:6], data.y_train[:6]
    torch.manual_seed(0)
    model = _bn_model().train()
    stats = [b.clone() for b in model.buffers()]
    for fn in (per_sample_grads, per_sample_grads_loop):
        _raises(lambda: fn(model, x, y), "BatchNorm")
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers()))  # running statistics untouched
    model.eval()  # in eval mode both are defined and agree
    a, b = per_sample_grads(model, x, y), per_sample_grads_loop(model, x, y)
    assert all(torch.allclose(a[n], b[n], rtol=1e-4, atol=1e-6) for n in a)


def _dropout_model(data):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))


def test_dropout_is_refused_clearly_by_per_sample_methods(data):
    task = make_task(data, "class", forget_class=3)
    model = _dropout_model(data)
    _raises(lambda: per_sample_grads(model.train(), data.x_train[:4], data.y_train[:4]), "Dropout")
    for name in ("orthograd", "masked:ga", "masked:neggrad_plus"):
        _raises(lambda: get_method(name)(model, task, steps=1, stop_at=None), "Dropout")
    per_sample_grads(model.eval(), data.x_train[:4], data.y_train[:4])  # eval mode: no mask, defined


def test_project_orthogonal_refuses_nan():
    g, G = torch.randn(20), torch.randn(3, 20)
    G[1, 4] = float("nan")
    _raises(lambda: project_orthogonal(g, G), "NaN")
    g[0] = float("inf")
    _raises(lambda: project_orthogonal(g, torch.randn(3, 20)), "NaN")


def _conflicting_pair(n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    return (a, b) if torch.dot(a, b) < 0 else (a, -b)


def _projections(a, b, eps_scale=1.0):
    return [pcgrad([a, b]), *harmonize(a, b), unilateral_surgery(a, b)[0],
            unilateral_surgery(a, b, eps=-0.5 * eps_scale)[0]]


@pytest.mark.parametrize("exponent", [-37, 37])
def test_projections_are_exactly_homogeneous_in_powers_of_two(exponent):
    # Scaling by 2**k is exact in floating point (far from under/overflow), so a scale-invariant formula gives
    # bit-for-bit the scaled result. The former floor 1e-20 on squared norms broke this for norms below 1e-10.
    a, b = _conflicting_pair()
    s = 2.0 ** exponent
    for ref, out in zip(_projections(a, b), _projections(a * s, b * s, s * s)):
        assert torch.equal(out, ref * s)


@pytest.mark.parametrize("scale", [1e-11, 1e11])
def test_projections_are_homogeneous_in_decimal_scales(scale):
    # Scaling by 1e±11 rounds every entry (relative error <= u, u = 2**-24), and each result is a few dot
    # products of n = 16 terms away from the inputs: the error bound is a small multiple of n·u·(‖a‖ + ‖b‖).
    a, b = _conflicting_pair()
    u = torch.finfo(torch.float32).eps / 2
    tol = 8 * a.numel() * u * (a.norm() + b.norm())
    for ref, out in zip(_projections(a, b), _projections(a * scale, b * scale, scale * scale)):
        assert (out / scale - ref).norm() <= tol
    a_proj = harmonize(a * scale, b * scale)[0] / scale  # a real projection: orthogonal to b up to rounding
    assert torch.dot(a_proj, b).abs() <= tol * b.norm()


def test_projections_leave_zero_gradients_finite():
    a, z = torch.randn(8), torch.zeros(8)
    assert torch.equal(pcgrad([a, z]), a) and torch.equal(harmonize(a, z)[0], a)
    d, lam = unilateral_surgery(a, z, eps=-1.0)
    assert torch.equal(d, a) and lam == 0


# ---------------------------------------------------------------------------------------------------------------
# The model cache
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("UNLEARN_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def fresh(data):
    return state_of(original_model(data, TINY, seed=0, device="cpu", progress=False, use_cache=False))


def _overwrite_inside_a_tensor(path, state, name, new_bytes):
    """Replace bytes in the middle of tensor ``name``'s data inside the cache file, leaving the archive valid."""
    raw = bytearray(path.read_bytes())
    data = state[name].numpy().tobytes()
    at = raw.find(data)
    assert at >= 0 and raw.find(data, at + 1) < 0
    mid = at + (len(data) // 2) // 4 * 4
    raw[mid:mid + len(new_bytes)] = new_bytes
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["flipped-bit", "nan"])
def test_changed_bytes_inside_a_cache_file_are_rebuilt(damage, data, cache, count_training, fresh):
    original_model(data, TINY, seed=0, device="cpu", progress=False)
    (path,) = cache.glob("original-*.pt")
    state = torch.load(path, weights_only=True)["state_dict"]
    name = "net.1.weight"
    value = state[name].reshape(-1)[len(state[name].reshape(-1)) // 2]
    flipped = np.frombuffer(np.float32(value).tobytes(), np.uint32) ^ np.uint32(1 << 20)
    new = flipped.tobytes() if damage == "flipped-bit" else np.float32(np.nan).tobytes()
    _overwrite_inside_a_tensor(path, state, name, new)
    # Control: the damaged archive still loads, with other weights: only the checksum can tell.
    damaged = torch.load(path, weights_only=True)["state_dict"]
    assert not torch.equal(damaged[name], state[name], ) and not same_state(damaged, state)
    again = original_model(data, TINY, seed=0, device="cpu", progress=False)
    assert len(count_training) == 2 and same_state(state_of(again), fresh)
    third = original_model(data, TINY, seed=0, device="cpu", progress=False)  # the rebuilt entry is used
    assert len(count_training) == 2 and same_state(state_of(third), fresh)


def test_nan_weights_with_a_matching_checksum_are_evicted(data, cache, count_training, fresh):
    original_model(data, TINY, seed=0, device="cpu", progress=False)
    (path,) = cache.glob("original-*.pt")
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["net.1.weight"][0, 0] = float("nan")
    blob["sha256"] = state_digest(blob["state_dict"])
    torch.save(blob, path)
    again = original_model(data, TINY, seed=0, device="cpu", progress=False)
    assert len(count_training) == 2 and same_state(state_of(again), fresh)


def test_cache_file_without_checksum_is_rebuilt(data, cache, count_training, fresh):
    original_model(data, TINY, seed=0, device="cpu", progress=False)
    (path,) = cache.glob("original-*.pt")
    blob = torch.load(path, weights_only=True)
    del blob["sha256"]
    torch.save(blob, path)
    again = original_model(data, TINY, seed=0, device="cpu", progress=False)
    assert len(count_training) == 2 and same_state(state_of(again), fresh)


def test_cache_path_that_is_a_file_is_one_error_line(data, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("not a folder")
    monkeypatch.setenv("UNLEARN_CACHE", str(not_a_folder))
    _raises(lambda: original_model(data, TINY, seed=0, device="cpu", progress=False), "UNLEARN_CACHE")
    monkeypatch.setenv("UNLEARN_CACHE", str(not_a_folder / "below"))
    _raises(lambda: original_model(data, TINY, seed=0, device="cpu", progress=False), "UNLEARN_CACHE")
    original_model(data, TINY, seed=0, device="cpu", progress=False, use_cache=False)  # no cache: no error


def test_state_digest_sees_one_flipped_bit():
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    other = {k: v.clone() for k, v in state.items()}
    other["w"].view(torch.int32)[1, 1] ^= 1
    assert state_digest(state) != state_digest(other)
    assert state_digest(state) == state_digest({k: v.clone() for k, v in reversed(state.items())})
