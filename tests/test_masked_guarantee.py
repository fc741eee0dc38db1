"""The guarantee of the masked add-on (chapter 10): a one-sided test at level δ on the step actually taken.

A coordinate is a false keep when the mask keeps it although its true retain gradient does not strictly agree in
sign with the step (u_i μ_i ≤ 0). Over n independent such tests the false-keep count is binomial, so its rate
may exceed δ by at most a few binomial standard deviations, sqrt(δ(1 − δ)/n); three give a false alarm of
about 0.1 %.
"""

import math

import pytest
import torch

from unlearnlib import UnlearnError, data, models
from unlearnlib.methods import get_method
from unlearnlib.methods import feasible
from unlearnlib.methods._loop import ce, run_unlearning
from unlearnlib.methods.feasible import FeasibilityMasker, critical_value, false_keep_rate, sign_test


def _within_level(false_keeps: int, n: int, delta: float) -> bool:
    return false_keeps / n <= delta + 3 * math.sqrt(delta * (1 - delta) / n)


# 40 % of the coordinates on the boundary (true mean 0), 30 % with a small true mean (a third of a batch
# standard error, so either sign of u is common), 30 % with a clear one: the last two are infeasible only
# when u points against them.
MEANS = torch.cat([torch.zeros(40), torch.full((30,), -0.06), torch.full((30,), 0.5)])


@pytest.mark.parametrize("delta", [0.1, 0.25])
@pytest.mark.parametrize("means", [None, MEANS], ids=["boundary", "mixed"])
def test_false_keep_rate_is_at_most_delta_with_an_independent_batch(delta, means):
    false_keeps, n = false_keep_rate(delta, trials=400, coords=100, means=means, seed=1)
    assert n >= 20_000  # enough tests that the planted case below is far outside the tolerance
    assert _within_level(false_keeps, n, delta), (false_keeps / n, delta, n)


@pytest.mark.parametrize("delta", [0.1, 0.25])
def test_planted_same_batch_for_step_and_test_is_rejected(delta):
    # NegGrad+'s step carries the batch mean of g_r: testing on that batch keeps a boundary coordinate
    # whenever |t| clears the threshold, with probability about 2δ.
    false_keeps, n = false_keep_rate(delta, trials=400, coords=100, same_batch=True, seed=1)
    assert not _within_level(false_keeps, n, delta), (false_keeps / n, delta, n)


def test_the_threshold_is_students_t_and_zero_at_one_half():
    assert critical_value(0.5, 32) == 0.0
    assert critical_value(0.1, 32) > critical_value(0.1, 1000) > 1.2815  # heavier tails for small B
    G = torch.tensor([[1.0, -1.0], [3.0, -3.0]])  # mean (2, -2), std (√2, √2), B = 2
    m = sign_test({"w": G}, {"w": torch.tensor([1.0, 1.0])}, 0.5)["w"]
    assert m.tolist() == [1.0, 0.0]
    with pytest.raises(UnlearnError):
        sign_test({"w": G[:1]}, {"w": torch.ones(2)}, 0.1)


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits")


def test_the_step_taken_is_the_tested_velocity_and_masked_velocity_is_cleared(digits, monkeypatch):
    task = data.make_task(digits, "class", forget_class=3, seed=0)
    model = models.make_model("mlp", digits.input_shape, digits.num_classes, seed=1)
    mom, wd, lr = 0.9, 0.05, 0.05
    masker = FeasibilityMasker(0.1, retain=(task.x_retain, task.y_retain), test_batch=32, momentum=mom,
                               weight_decay=wd, seed=0)
    tested, records = [], []
    inner = feasible.feasibility_mask

    def spy(m, x, y, delta, update):
        tested.append((x, y))
        return inner(m, x, y, delta, update=update)

    monkeypatch.setattr(feasible, "feasibility_mask", spy)

    def mask_fn(m, xr, yr):
        theta = {n: p.detach().clone() for n, p in m.named_parameters()}
        g = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
        prev = {n: v.clone() for n, v in masker.velocity.items()}
        masks = masker(m, xr, yr)
        post = {n: v.clone() for n, v in masker.velocity.items()}
        records.append((theta, g, prev, masks, xr, post))
        return masks

    after = []
    run_unlearning(model, task, lambda m, xf, yf, xr, yr: (-ce(m, xf, yf)).backward(), epochs=1, lr=lr,
                   momentum=0.0, weight_decay=0.0, steps=6, stop_at=None, mask_fn=mask_fn,
                   post_step=lambda m, opt: after.append({n: p.detach().clone() for n, p in m.named_parameters()}))
    assert len(records) == len(after) == len(tested) == 6
    cleared = kept = 0
    for (theta, g, prev, masks, xr, post), new, (xt, _) in zip(records, after, tested):
        assert not torch.equal(xt, xr)  # the test batch is not the base's batch
        for n in theta:
            # torch.optim.SGD's heavy ball, computed independently: v = μ v_prev + g + λ θ
            v = g[n] + wd * theta[n] if n not in prev else mom * prev[n] + (g[n] + wd * theta[n])
            keep = masks[n].bool()
            torch.testing.assert_close(new[n], theta[n] - lr * v * masks[n], rtol=1e-6, atol=1e-7)
            assert torch.equal(new[n][~keep], theta[n][~keep])  # masked: bit-identical
            # the velocity carried to the next step is the kept part only
            torch.testing.assert_close(post[n], v * masks[n], rtol=1e-6, atol=1e-7)
            assert torch.all(post[n][~keep] == 0)
            kept += int(keep.sum())
            cleared += int((~keep & (v != 0)).sum())
    assert kept > 0 and cleared > 0  # both branches were exercised


def test_masked_methods_run_when_the_loop_draws_a_retain_batch_of_one(digits):
    task = data.make_task(digits, "random", forget_fraction=0.0965, seed=0)
    assert len(task.y_retain) % 32 == 1  # the last retain batch of each pass holds one sample
    model = models.make_model("mlp", digits.input_shape, digits.num_classes, seed=0)
    kept = []
    steps = -(-len(task.y_retain) // 32)  # one full pass over D_r, the batch of one included
    get_method("masked:neggrad_plus")(model, task, kept=kept, stop_at=None, steps=steps)
    assert len(kept) == steps and all(0 <= k <= 1 for k in kept)


def test_a_retain_pool_of_one_sample_is_refused(digits):
    task = data.make_task(digits, "class", forget_class=3, seed=0)
    with pytest.raises(UnlearnError):
        FeasibilityMasker(0.1, retain=(task.x_retain[:1], task.y_retain[:1]))
    model = models.make_model("mlp", digits.input_shape, digits.num_classes, seed=0)
    with pytest.raises(UnlearnError):
        get_method("masked:ga")(model, task, retain_positions=[0], steps=1)
