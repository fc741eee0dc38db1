"""Diagnostics of gradient conflict (chapter 04): loss changes, per-layer and per-sample cosines, the tracker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unlearnlib import UnlearnError
from unlearnlib.data import make_task
from unlearnlib.diagnostics import (ConflictTracker, blockwise_cosines, conflict_by_class, forget_retain_grads,
                                    layer_index, loss_change, neg_ce, sample_cosines)
from unlearnlib.grads import (conflict_rate, cosine, flatten_batched, layer_cosines, loss_grad, per_sample_grads,
                              trainable)
from unlearnlib.methods import ga
from unlearnlib.models import make_model


@pytest.fixture(scope="module")
def small(data):
    """An untrained small CNN on the digits (its gradients are large and varied) and a class-3 task."""
    model = make_model("cnn", data.input_shape, data.num_classes, seed=0)
    return model, make_task(data, "class", forget_class=3, seed=0)


# -- loss_change ------------------------------------------------------------------------------------------------

def test_loss_change_is_exact_for_a_quadratic():
    """For least squares L(w) = |Xw - y|^2 / n the remainder of the linear prediction is exactly eta^2 |Xd|^2 / n."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, generator=g, dtype=torch.float64), torch.randn(20, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(3, 1, bias=False).double()
    d = torch.randn(3, generator=g, dtype=torch.float64)
    etas = [1e-3, 1e-2, 0.1, 1.0]
    measured, predicted = loss_change(model, x, y, d, etas, loss_fn=nn.functional.mse_loss)
    expected = torch.tensor(etas, dtype=torch.float64) ** 2 * (x @ d).pow(2).mean()
    torch.testing.assert_close(measured - predicted, expected, rtol=1e-9, atol=1e-14)
    # the prediction itself is -eta <grad L, d>
    w = model.weight.detach().reshape(-1)
    grad_l = 2 * x.T @ (x @ w - y.reshape(-1)) / len(y)
    torch.testing.assert_close(predicted, -torch.tensor(etas, dtype=torch.float64) * grad_l.dot(d))


def test_loss_change_leaves_the_model_alone(small):
    model, task = small
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = torch.ones(sum(p.numel() for p in model.parameters()))
    measured, predicted = loss_change(model, task.x_retain[:16], task.y_retain[:16], d, [1e-4, 1e-3])
    assert measured.shape == predicted.shape == (2,)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_loss_change_rejects_bad_directions(small):
    model, task = small
    with pytest.raises(UnlearnError, match="flat vector"):
        loss_change(model, task.x_retain[:4], task.y_retain[:4], torch.ones(7), [1e-3])
    with pytest.raises(UnlearnError, match="etas is empty"):
        loss_change(model, task.x_retain[:4], task.y_retain[:4],
                    torch.ones(sum(p.numel() for p in model.parameters())), [])


# -- cosines ----------------------------------------------------------------------------------------------------

def test_blockwise_cosines_of_known_vectors():
    a = torch.tensor([1.0, 0.0, 1.0, 1.0, 2.0, 0.0, 0.0])
    b = torch.tensor([3.0, 0.0, -1.0, -1.0, 0.0, 5.0, 0.0])
    index = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    out = blockwise_cosines(a, b, index, 4)
    torch.testing.assert_close(out, torch.tensor([1.0, -1.0, 0.0, 0.0]))       # a zero block gets cosine 0
    with pytest.raises(UnlearnError, match="same length"):
        blockwise_cosines(a, b[:3], index)


def test_blockwise_cosines_equal_the_per_tensor_loop(small):
    model, task = small
    g_f, g_r = forget_retain_grads(model, task.x_forget[:32], task.y_forget[:32], task.x_retain[:32],
                                   task.y_retain[:32])
    names, index = layer_index(model)
    assert names == list(trainable(model)) and index.numel() == g_f.numel()
    looped = layer_cosines(g_f, g_r, trainable(model))
    np.testing.assert_allclose(blockwise_cosines(g_f, g_r, index, len(names)).numpy(), list(looped.values()),
                               atol=1e-6)
    assert np.ptp(list(looped.values())) > 0.1     # not a constant: the per-tensor cosines really differ


def test_forget_retain_grads_conventions(small):
    model, task = small
    g_f, g_r = forget_retain_grads(model, task.x_forget, task.y_forget, task.x_retain[:50], task.y_retain[:50])
    torch.testing.assert_close(g_f, -loss_grad(model, task.x_forget, task.y_forget))   # g_f = ∇(−CE_f)
    torch.testing.assert_close(g_r, loss_grad(model, task.x_retain[:50], task.y_retain[:50]))
    assert model.head.weight.grad is None                                              # .grad untouched
    with pytest.raises(UnlearnError, match="at least one"):
        forget_retain_grads(model, task.x_forget[:0], task.y_forget[:0], task.x_retain, task.y_retain)


def test_sample_cosines_equal_a_direct_computation(small):
    model, task = small
    x, y = task.x_retain[:24], task.y_retain[:24]
    g = loss_grad(model, task.x_forget, task.y_forget, neg_ce)
    G = flatten_batched(per_sample_grads(model, x, y))
    direct = torch.stack([cosine(g, G[i]) for i in range(len(y))])
    out = sample_cosines(model, g, x, y)
    torch.testing.assert_close(out, direct, rtol=1e-5, atol=1e-6)
    assert (out < 0).any() and (out > 0).any()          # both signs occur, so the rate below is not trivial
    assert conflict_rate(out) == pytest.approx((direct < 0).float().mean().item())


def test_conflict_by_class_of_known_values():
    cos = np.array([[-0.5, 0.2, 0.3, -0.1, 0.9],
                    [-0.2, -0.4, 0.5, 0.1, 0.8]])
    labels = np.array([0, 0, 1, 1, 3])
    out = conflict_by_class(cos, labels, num_classes=4)
    np.testing.assert_array_equal(out["count"], [2, 2, 0, 1])
    np.testing.assert_allclose(out["mean_cos"][[0, 1, 3]], [(-0.5 + 0.2 - 0.2 - 0.4) / 4, (0.3 - 0.1 + 0.5 + 0.1) / 4,
                                                            0.85])
    np.testing.assert_allclose(out["conflict_rate"][[0, 1, 3]], [3 / 4, 1 / 4, 0.0])
    assert np.isnan(out["mean_cos"][2]) and np.isnan(out["conflict_rate"][2])
    with pytest.raises(UnlearnError, match="must match"):
        conflict_by_class(cos, labels[:3], 4)


# -- the tracker --------------------------------------------------------------------------------------------------

def test_tracker_cosine_equals_direct_computation(small):
    model, task = small
    tracker = ConflictTracker(task, probe_size=64, probe_seed=3, per_layer=True, per_sample=True)
    tracker.record(model, step=0)
    pos = torch.as_tensor(tracker.probe_positions)
    assert len(set(tracker.probe_positions.tolist())) == 64
    xr, yr = task.x_retain[pos], task.y_retain[pos]
    g_f = loss_grad(model, task.x_forget, task.y_forget, neg_ce)
    g_r = loss_grad(model, xr, yr)
    assert tracker.cos[0] == pytest.approx(cosine(g_f, g_r).item(), abs=1e-6)
    assert tracker.forget_norm[0] == pytest.approx(g_f.norm().item(), rel=1e-5)
    assert tracker.retain_norm[0] == pytest.approx(g_r.norm().item(), rel=1e-5)
    ce_f = nn.functional.cross_entropy(model(task.x_forget), task.y_forget).item()
    assert tracker.forget_loss[0] == pytest.approx(-ce_f, rel=1e-5)
    assert tracker.retain_loss[0] == pytest.approx(nn.functional.cross_entropy(model(xr), yr).item(), rel=1e-5)
    acc_f = (model(task.x_forget).argmax(1) == task.y_forget).float().mean().item()
    assert tracker.forget_acc[0] == pytest.approx(100 * acc_f)
    assert tracker.retain_acc[0] == pytest.approx(100 * (model(xr).argmax(1) == yr).float().mean().item())
    np.testing.assert_allclose(tracker.layer_cos[0], list(layer_cosines(g_f, g_r, trainable(model)).values()),
                               atol=1e-5)
    assert tracker.layer_names == list(trainable(model))
    direct = sample_cosines(model, g_f, xr, yr).numpy()
    np.testing.assert_allclose(tracker.sample_cos[0], direct, atol=1e-5)
    assert tracker.conflict_rate[0] == pytest.approx((direct < 0).mean())
    np.testing.assert_array_equal(tracker.probe_labels, yr.numpy())


def test_tracker_as_post_step_hook(small):
    """Records every k steps, does not change the run, restores the training mode and leaves .grad alone."""
    model, task = small
    tracker = ConflictTracker(task, every=2, probe_size=32, per_sample=True, sample_every=2)
    with_tracker = ga(model, task, steps=7, stop_at=None, lr=0.05, seed=0, post_step=tracker)
    without = ga(model, task, steps=7, stop_at=None, lr=0.05, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(with_tracker.parameters(), without.parameters()))
    assert tracker.calls == 7 and len(tracker) == 3
    np.testing.assert_array_equal(tracker.steps, [2, 4, 6])
    np.testing.assert_array_equal(tracker.sample_steps, [2, 6])          # every second record
    assert tracker.sample_cos.shape == (2, 32)
    assert np.ptp(tracker.cos) > 1e-3                                    # the run moved the cosine
    s = tracker.summary()
    assert s["records"] == 3 and s["cos_first"] == pytest.approx(tracker.cos[0]) and "conflict_rate_last" in s
    # the 8th call records; in training mode it keeps training mode, and .grad stays as it was
    m = make_model("cnn", task.data.input_shape, task.data.num_classes, seed=1).train()
    tracker(m, None)
    assert len(tracker) == 4 and tracker.steps[-1] == 8
    assert m.training and all(p.grad is None for p in m.parameters())


def test_tracker_probe_of_the_whole_retain_set(small):
    model, task = small
    tracker = ConflictTracker(task, probe_size=None)
    tracker.record(model, step=5)
    assert len(tracker.probe_positions) == len(task.retain_idx)
    g_f, g_r = forget_retain_grads(model, task.x_forget, task.y_forget, task.x_retain, task.y_retain)
    assert tracker.cos[0] == pytest.approx(cosine(g_f, g_r).item(), abs=1e-6)
    np.testing.assert_array_equal(tracker.steps, [5])


def test_tracker_with_another_forget_objective(small):
    model, task = small
    ce = nn.functional.cross_entropy
    plain, flipped = ConflictTracker(task, probe_size=32), ConflictTracker(task, probe_size=32, forget_loss=ce)
    plain.record(model, 0)
    flipped.record(model, 0)
    assert flipped.cos[0] == pytest.approx(-plain.cos[0], abs=1e-6)     # the ascended loss flips the sign
    assert flipped.forget_loss[0] == pytest.approx(-plain.forget_loss[0], rel=1e-6)


def test_tracker_errors(small):
    model, task = small
    with pytest.raises(UnlearnError, match="every"):
        ConflictTracker(task, every=0)
    with pytest.raises(UnlearnError, match="probe_size"):
        ConflictTracker(task, probe_size=len(task.retain_idx) + 1)
    tracker = ConflictTracker(task, probe_size=8)
    with pytest.raises(UnlearnError, match="no records"):
        tracker.summary()
    tracker.record(model, 0)
    with pytest.raises(UnlearnError, match="per_layer=True"):
        tracker.layer_cos
    with pytest.raises(UnlearnError, match="per_sample=True"):
        tracker.sample_cos
