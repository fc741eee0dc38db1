"""UA / RA / TA, MIA-Efficacy, the loss-based MIA and Avg. Gap (unlearnlib.metrics, chapter 01)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from unlearnlib.data import Dataset, UnlearningTask
from unlearnlib.metrics import (DIRECTIONS, GAP_METRICS, accuracy, avg_gap, evaluate, loss_mia_auc, mia_efficacy,
                                per_sample_loss, predict_logits, true_class_confidence)


class Constant(nn.Module):
    """Always predicts ``cls`` (with confidence ~1)."""

    def __init__(self, cls: int, num_classes: int = 10):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.logits = torch.full((num_classes,), -10.0)
        self.logits[cls] = 10.0

    def forward(self, x):
        return self.logits.expand(len(x), -1) + 0 * self.w


def test_accuracy_of_empty_set_is_nan(original, data):
    assert math.isnan(accuracy(original, data.x_test[:0], data.y_test[:0]))


def test_accuracy_and_directions_with_constant_predictors(class_task):
    # A model perfect on D_f (it always says 3, and D_f is all 3s) has UA 0; it is wrong on every remaining
    # sample, so RA = TA = 0 (the class-wise test set has no 3s).
    m3 = evaluate(Constant(3), class_task)
    assert m3["UA"] == 0.0 and m3["RA"] == 0.0 and m3["TA"] == 0.0
    # A model that always says 5: UA 100 (never right on D_f), RA and TA = the share of 5s.
    m5 = evaluate(Constant(5), class_task)
    assert m5["UA"] == 100.0
    share_r = 100 * (class_task.y_retain == 5).float().mean().item()
    share_t = 100 * (class_task.y_test == 5).float().mean().item()
    assert m5["RA"] == pytest.approx(share_r) and m5["TA"] == pytest.approx(share_t)
    assert 5 < m5["RA"] < 20


def test_evaluate_keys_ranges_and_extras(original, random_task):
    out = evaluate(original, random_task, time_s=1.5)
    assert set(GAP_METRICS) <= set(out) and "MIA_AUC" in out
    assert "gap" not in out and out["time_s"] == 1.5
    for k in ("UA", "RA", "TA", "MIA", "MIA_AUC"):
        assert 0.0 <= out[k] <= 100.0, (k, out[k])
    assert out["UA"] == pytest.approx(100 - accuracy(original, random_task.x_forget, random_task.y_forget))
    assert out["TA"] == pytest.approx(accuracy(original, random_task.x_test, random_task.y_test))


def test_glossary_of_directions():
    assert set(GAP_METRICS) == {"UA", "RA", "TA", "MIA"}
    assert all(DIRECTIONS[k] == "retrain" for k in GAP_METRICS)
    assert DIRECTIONS["gap"] == "lower" and DIRECTIONS["time_s"] == "lower"


def test_avg_gap_arithmetic():
    m = {"UA": 10.0, "RA": 90.0, "TA": 80.0, "MIA": 50.0, "MIA_AUC": 99.0, "time_s": 3.0}
    ref = {"UA": 20.0, "RA": 95.0, "TA": 85.0, "MIA": 40.0, "MIA_AUC": 0.0}
    assert avg_gap(m, ref) == pytest.approx((10 + 5 + 5 + 10) / 4)  # other keys ignored, absolute values
    assert avg_gap(ref, m) == pytest.approx(7.5)
    assert avg_gap(m, m) == 0.0
    assert avg_gap(m, ref, keys=("UA",)) == pytest.approx(10.0)


def test_retrain_gap_to_itself_is_zero(oracle, class_task):
    reference = evaluate(oracle, class_task)
    again = evaluate(oracle, class_task, reference=reference)
    assert again["gap"] == 0.0
    assert {k: again[k] for k in reference} == reference  # the evaluation is deterministic


def test_mia_efficacy_separates_original_and_oracle(original, oracle, class_task):
    # Class-wise forgetting: the original model is confident on class 3 (it trained on it) so the attack calls D_f
    # members, while the oracle never saw class 3 and is not confident on it. Measured: 0 % and 100 %.
    assert mia_efficacy(original, class_task) < 10
    assert mia_efficacy(oracle, class_task) > 90


def test_per_sample_loss_and_confidence(original, data):
    x, y = data.x_test[:50], data.y_test[:50]
    loss = per_sample_loss(original, x, y)
    conf = true_class_confidence(original, x, y)
    assert loss.shape == conf.shape == (50,)
    np.testing.assert_allclose(loss.mean(), nn.functional.cross_entropy(original(x), y).item(), rtol=1e-5)
    np.testing.assert_allclose(conf, np.exp(-loss), rtol=1e-4, atol=1e-6)  # p_y = exp(-CE)
    assert ((conf >= 0) & (conf <= 1)).all()


def test_predict_logits_restores_mode(original):
    original.train()
    try:
        predict_logits(original, torch.zeros(3, 1, 8, 8))
        assert original.training
    finally:
        original.eval()


# ---------------------------------------------------------------------------------------------------------------
# MIA near chance when D_f and D_t are identically distributed.
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def heldout_tasks(data):
    """Two tasks whose "forget" sets the model never saw.

    The test set of digits (450 samples) is split at random into halves A and B. The training set is extended
    with copies of A and B (the model is *not* retrained on them: it is the original, trained on the real
    training set only), and the test set is B. Task ``a``: forget = A. Task ``b``: forget = B itself. Both tasks
    have the same retain and test sets, hence the same shadow data and the same fitted attack; they differ only in
    the target set, and A and B are i.i.d. draws from the same distribution, both unseen.
    """
    perm = torch.randperm(len(data.y_test), generator=torch.Generator().manual_seed(0))
    A, B = perm[:225], perm[225:]
    n = len(data.y_train)
    x = torch.cat([data.x_train, data.x_test[A], data.x_test[B]])
    y = torch.cat([data.y_train, data.y_test[A], data.y_test[B]])
    mixed = Dataset("digits-heldout", x, y, data.x_test[B], data.y_test[B], 10)
    retain = torch.arange(n)
    a = UnlearningTask(mixed, "random", torch.arange(n, n + 225), retain, 0, forget_fraction=0.1)
    b = UnlearningTask(mixed, "random", torch.arange(n + 225, n + 450), retain, 0, forget_fraction=0.1)
    return a, b


def test_mia_efficacy_at_chance_for_unseen_forget_set(original, heldout_tasks):
    # "Chance" for MIA-Efficacy is not 50 %: it is the share of genuinely unseen data that this attack calls
    # non-member, i.e. its value on the test set itself (task b). On digits the original model is confident on
    # test samples too, so that share is small (measured ~3-7 % over 9 model seeds x splits). A and B are two
    # samples of 225 from the same distribution: with p ~ 0.05 the standard deviation of the difference of the
    # two proportions is sqrt(2 p (1-p) / 225) ~ 2 points, and 8 points is 4 standard deviations.
    a, b = heldout_tasks
    mia_a, mia_b = mia_efficacy(original, a), mia_efficacy(original, b)
    assert abs(mia_a - mia_b) <= 8, (mia_a, mia_b)
    # The attack is not degenerate: it does not call everything non-member (it would then be 100 for members).
    assert mia_b < 50


def test_loss_mia_auc_at_chance_for_unseen_forget_set(original, heldout_tasks):
    # Under the null (A and B i.i.d.) the AUC of n = 225 vs 225 scores has a standard deviation of
    # sqrt((n1 + n2 + 1) / (12 n1 n2)) ~ 2.7 points; cross-validation adds a little (measured 44-55 over 9 model
    # seeds x splits). 10 points is ~3.7 standard deviations.
    a, _ = heldout_tasks
    assert abs(loss_mia_auc(original, a) - 50) <= 10


def test_loss_mia_auc_detects_a_separable_forget_set(original, heldout_tasks):
    # Sensitivity control: relabel the unseen set A with wrong labels; its losses are then far above those of
    # D_t and the attack must separate the two almost perfectly.
    a, _ = heldout_tasks
    y = a.data.y_train.clone()
    y[a.forget_idx] = (y[a.forget_idx] + 1) % 10
    wrong = Dataset("wrong", a.data.x_train, y, a.data.x_test, a.data.y_test, 10)
    task = UnlearningTask(wrong, "random", a.forget_idx, a.retain_idx, 0, forget_fraction=0.1)
    assert loss_mia_auc(original, task) > 95
    assert mia_efficacy(original, task) > 90  # wrong-label confidence ~0: called non-member
