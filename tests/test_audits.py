"""Per-example audits: U-LiRA and the NeurIPS 2023 competition's score (unlearnlib.audits, chapter 11).

The estimators are checked on synthetic samples against hand-computed values and against a brute-force
reference; the audits run on a 600-sample part of digits (models train in well under a second on one thread)
with 8 shadow models and 8 replicas, against two references whose answers are known: retraining (the floor:
indistinguishable from retraining by construction) and doing nothing (the identity: the forget set is still
trained on).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from unlearnlib import UnlearnError
from unlearnlib.audits import (DELTA, EPSILON_CAP, clustered_auc_se, competition_epsilons,
                               competition_from_statistics, competition_score, competition_statistics,
                               epsilon_ceiling, forgetting_quality, logit_confidence, null_forgetting_quality,
                               roc_auc, tpr_at_fpr, ulira, ulira_from_statistics, ulira_statistics)
from unlearnlib.data import from_arrays, make_task

N_SMALL = 600
K = 8
N_REPLICAS = 8


def identity(model, task, seed=0):
    """Unlearning that does nothing: the model as it was (a copy, as every method returns)."""
    return copy.deepcopy(model)


@pytest.fixture(scope="module")
def small_task(data):
    """A random 10 % forget set of the first 600 digits training samples (seed 0)."""
    small = from_arrays("digits-600", data.x_train[:N_SMALL].numpy(), data.y_train[:N_SMALL].numpy(),
                        data.x_test.numpy(), data.y_test.numpy(), num_classes=10)
    return make_task(small, "random", forget_fraction=0.1, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# The statistic and the ROC summaries.
# ---------------------------------------------------------------------------------------------------------------

def test_logit_confidence_is_exact_and_finite():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    p = logits.double().softmax(1)[torch.arange(3), y]
    got = logit_confidence(logits, y)
    # Rows 0-1 against log(p / (1 - p)) in float64; row 2 (p = 1 - 2e-44 in float64) against its closed form.
    np.testing.assert_allclose(got[:2].numpy(), torch.log(p / (1 - p))[:2].numpy(), rtol=1e-12)
    assert got[2].item() == pytest.approx(100.0 - math.log(2.0), rel=1e-12)


def test_roc_summaries_on_hand_examples():
    assert roc_auc([3.0, 4.0], [1.0, 2.0]) == 100.0
    assert roc_auc([1.0, 2.0], [1.0, 2.0]) == 50.0           # ties count 1/2
    assert roc_auc([2.0, 0.0], [1.0, 3.0]) == 25.0           # 1 of 4 pairs ordered
    pos, neg = np.arange(100.0) + 0.5, np.arange(100.0)
    # "score >= t" with FPR <= 1 %: at most one negative above; t = 98.5 keeps 2 positives and 1 negative.
    assert tpr_at_fpr(pos, neg, 0.01) == 2.0
    assert tpr_at_fpr(pos, neg + 1000, 0.01) == 0.0
    # With one score per cluster the clustered variance is the unclustered (DeLong) one, up to I / (I - 1).
    rng = np.random.default_rng(0)
    p, q = rng.normal(1, 1, 50), rng.normal(0, 1, 50)
    se = clustered_auc_se(p, q, np.arange(50), np.arange(50, 100))
    a = roc_auc(p, q) / 100
    hanley = math.sqrt((a * (1 - a) + 49 * (a / (2 - a) - a * a) + 49 * (2 * a * a / (1 + a) - a * a)) / 2500)
    assert se / 100 == pytest.approx(hanley, rel=0.35)  # two estimators of one variance, on 50 + 50 scores


# ---------------------------------------------------------------------------------------------------------------
# The competition's ε estimator.
# ---------------------------------------------------------------------------------------------------------------

def _brute_epsilon(u, r, delta=DELTA):
    """One example's ε by walking every threshold and every interval on a fine grid (values on a 0.1 lattice):
    the definition, written independently of the vectorised code."""
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    n = len(pos)
    peaky, other = (pos, neg) if np.ptp(pos) < np.ptp(neg) else (neg, pos)
    if min(np.ptp(pos), np.ptp(neg)) < 0.01 * max(np.ptp(pos), np.ptp(neg)):
        return EPSILON_CAP
    lo, hi = min(u.min(), r.min()), max(u.max(), r.max())
    cuts = np.arange(lo - 0.05, hi + 0.1, 0.1)
    rates = [((neg >= c).mean(), (pos < c).mean()) for c in cuts]
    rates += [(((other >= a) & (other < b)).mean(), 1 - ((peaky >= a) & (peaky < b)).mean())
              for a in cuts for b in cuts if a < b]
    best = 0.0
    for fpr, fnr in rates:
        if fpr == 0 and fnr == 0:
            return EPSILON_CAP
        if fpr * fnr == 0:
            continue
        for a, b in ((fpr, fnr), (fnr, fpr)):
            if 1 - delta - a > 0:
                best = max(best, math.log(1 - delta - a) - math.log(b))
    return best


def test_epsilon_hand_values():
    r = np.array([0.0, 1.0, 2.0, 3.0])[:, None]
    # Identical samples: every attack has FPR = 1 - FNR, so the bound holds with ε = 0.
    assert competition_epsilons(r, r.copy()).tolist() == [0.0]
    # Fully separated: one threshold makes no error, ε = ∞, capped.
    assert competition_epsilons(r + 10, r).tolist() == [EPSILON_CAP]
    # One overlap: the threshold between 2.5 and 3 errs once on each side (FPR = FNR = 1/4), so
    # ε = log((1 - δ - 1/4) / (1/4)) = log(3 - 4δ): the largest finite ε four models can show.
    u = np.array([2.5, 4.0, 5.0, 6.0])[:, None]
    got = competition_epsilons(u, r)[0]
    assert got == pytest.approx(math.log(3 - 4 * DELTA), rel=1e-12)
    assert got == pytest.approx(epsilon_ceiling(4), rel=1e-12)
    # A collapsed unlearned distribution (every model outputs the same) gets the cap, as in the competition.
    assert competition_epsilons(np.full((4, 1), 1.5), r).tolist() == [EPSILON_CAP]


def test_epsilon_matches_brute_force_on_a_lattice():
    rng = np.random.default_rng(1)
    n, e = 8, 60
    u = np.round(rng.normal(0.0, 1.0, (n, e)), 1)       # lattice values: ties included, cuts of 0.1 find all
    r = np.round(rng.normal(0.4, 1.0, (n, e)), 1)
    fast = competition_epsilons(u, r)
    slow = np.array([_brute_epsilon(u[:, i], r[:, i]) for i in range(e)])
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    assert len(np.unique(np.round(fast, 6))) > 3        # the sample exercises several values, not only 0 and cap


def test_forgetting_quality_bins():
    # n = 8: bins of 0.5 up to ceil(log 7) = 2; 2^-b points in bin b, none beyond.
    eps = [0.2, 0.7, 1.2, 1.7, epsilon_ceiling(8), EPSILON_CAP]
    assert forgetting_quality(eps, 8) == pytest.approx((1 + 0.5 + 0.25 + 0.125 + 0.125 + 0) / 6)
    # n = 512 (the competition's): the bins reach ceil(log 511) = 7, 14 bins; 6.9 is in the last one.
    assert forgetting_quality([6.9], 512) == pytest.approx(2.0 ** -13)
    assert forgetting_quality([7.0], 512) == 0.0
    assert epsilon_ceiling(8) == pytest.approx(math.log(7 - 8 * DELTA))


def test_null_quality_is_distribution_free():
    """The estimator reads only the order of the pooled samples: another continuous distribution (here a
    heavy-tailed one, rescaled) gives the same points, up to Monte-Carlo noise (4 standard errors of the
    difference of two means of 3000 independent examples)."""
    null = null_forgetting_quality(8, draws=3000, seed=0)
    rng = np.random.default_rng(5)
    a, b = 7 * rng.standard_t(2, (8, 3000)), 7 * rng.standard_t(2, (8, 3000))
    other = forgetting_quality(competition_epsilons(a, b), 8)
    se = math.hypot(null["std"], null["std"]) / math.sqrt(3000)
    assert abs(other - null["mean"]) < 4 * se
    assert 0 < null["mean"] < 1


@pytest.mark.parametrize("n", [2, 1, 0, 2.5, True])
def test_competition_refuses_too_few_replicas(n, small_task, cfg):
    with pytest.raises(UnlearnError) as e:
        competition_score("ga", small_task, cfg, n=n, progress=False)
    assert "\n" not in str(e.value) and "at least 3" in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [3, 4, 2, 7])
def test_ulira_refuses_bad_shadow_counts(k, small_task, cfg):
    with pytest.raises(UnlearnError) as e:
        ulira("ga", small_task, cfg, k=k, progress=False)
    assert "\n" not in str(e.value)


def test_audits_refuse_unknown_methods_and_empty_forget_sets(small_task, cfg):
    for audit in (ulira, competition_score):
        with pytest.raises(UnlearnError, match="unknown method"):
            audit("no_such_method", small_task, cfg, progress=False)
        with pytest.raises(UnlearnError, match="registered name or a callable"):
            audit(42, small_task, cfg, progress=False)
        empty = copy.copy(small_task)
        empty.forget_idx = small_task.forget_idx[:0]
        with pytest.raises(UnlearnError, match="forget set is empty"):
            audit("ga", empty, cfg, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# U-LiRA against its two known answers.
# ---------------------------------------------------------------------------------------------------------------

def _null_se(result) -> float:
    """Standard error (in %) of an AUC of 50: Hanley-McNeil's null variance (P + N + 1) / (12 P N) for
    independent scores, or the clustered estimate when the scores of one held-out model move together; the
    larger."""
    p, n = result["positives"], result["negatives"]
    return max(100 * math.sqrt((p + n + 1) / (12 * p * n)), result["auc_se"])


@pytest.fixture(scope="module")
def ulira_floor(small_task, cfg, isolated_cache):
    return ulira_statistics("retrain", small_task, cfg, k=K, seed=0, device="cpu", progress=False)


def test_ulira_retrain_is_the_floor(ulira_floor, small_task):
    """Retraining is indistinguishable from retraining: AUC 50 within 4 standard errors (with 8 clusters the
    clustered estimate has 7 degrees of freedom; |t_7| > 4 has probability 0.5 %)."""
    res = ulira_from_statistics(ulira_floor)
    assert res["models"] == K and res["targets"] == len(small_task.forget_idx)
    # Every target is in F_j for exactly k/2 shadows: k/2 positive and k/2 negative scores each.
    assert res["positives"] == res["negatives"] == K // 2 * res["targets"]
    assert abs(res["auc"] - 50) <= 4 * _null_se(res), res


def test_ulira_identity_is_caught(ulira_floor, small_task, cfg):
    """Doing nothing leaves every target trained on: the attack must beat chance by far more than its noise."""
    stats = ulira_statistics(identity, small_task, cfg, k=K, seed=0, device="cpu", progress=False)
    res = ulira_from_statistics(stats)
    assert res["method"] == "identity"
    assert res["auc"] - 50 > 4 * _null_se(res), res
    # The retrained shadows are shared: the two audits differ only in their unlearned models.
    assert torch.equal(stats["retrained"], ulira_floor["retrained"])


def _reference_scores(u, r, member):
    """U-LiRA's held-out scores written the slow way: one held-out model at a time, the Gaussians fitted on the
    other models explicitly (pooled variances, as with few shadows)."""
    u, r, member = u.numpy(), r.numpy(), member.numpy()
    k = len(u)
    pos, neg = [], []
    for j in range(k):
        others = [i for i in range(k) if i != j]
        mu_u = np.array([u[[i for i in others if member[i, t]], t].mean() for t in range(u.shape[1])])
        dev_u = [(u[i, t] - mu_u[t]) ** 2 for t in range(u.shape[1]) for i in others if member[i, t]]
        dof_u = sum(member[others, t].sum() - 1 for t in range(u.shape[1]))
        var_u = sum(dev_u) / dof_u
        mu_r = r[others].mean(0)
        var_r = ((r[others] - mu_r) ** 2).sum() / ((k - 2) * r.shape[1])

        def lr(s):
            return (-0.5 * np.log(var_u) - (s - mu_u) ** 2 / (2 * var_u)) - (-0.5 * np.log(var_r) - (s - mu_r) ** 2
                                                                            / (2 * var_r))
        keep = member[j]
        pos.append(lr(u[j])[keep])
        neg.append(lr(r[j])[keep])
    return np.concatenate(pos), np.concatenate(neg)


def test_ulira_scores_match_a_direct_leave_one_out(ulira_floor):
    from unlearnlib.audits import lira_scores

    pos, neg, cluster = lira_scores(ulira_floor["unlearned"], ulira_floor["retrained"], ulira_floor["member"])
    ref_pos, ref_neg = _reference_scores(ulira_floor["unlearned"], ulira_floor["retrained"], ulira_floor["member"])
    # float64 throughout; the vectorised fit subtracts the held-out model from sums of squares of statistics of
    # size ~10, losing a few digits to cancellation: 1e-9 relative is far above that and far below any effect.
    np.testing.assert_allclose(pos.numpy(), ref_pos, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(neg.numpy(), ref_neg, rtol=1e-9, atol=1e-9)
    assert torch.equal(torch.bincount(cluster), ulira_floor["member"].sum(1))


# ---------------------------------------------------------------------------------------------------------------
# The competition's score against its two known answers.
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def competition_floor(small_task, cfg, isolated_cache):
    return competition_statistics("retrain", small_task, cfg, n=N_REPLICAS, seed=0, device="cpu", progress=False)


def test_competition_retrain_scores_what_n_allows(competition_floor):
    """Retraining against retraining: the forgetting quality is that of identical distributions at n = 8.

    Its spread is measured by relabelling: under the null the 2n models are exchangeable, so every split of
    them into two groups of n is a draw of F with the same cross-example correlation as the real split.
    """
    res = competition_from_statistics(competition_floor)
    both = torch.cat([competition_floor["unlearned"], competition_floor["retrained"]])
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(100):
        perm = torch.as_tensor(rng.permutation(2 * N_REPLICAS))
        draws.append(forgetting_quality(competition_epsilons(both[perm[:N_REPLICAS]], both[perm[N_REPLICAS:]]),
                                        N_REPLICAS))
    spread = float(np.std(draws))
    assert abs(res["forgetting_quality"] - res["forgetting_quality_null"]) <= 4 * spread + 1e-12, (res, spread)
    # Retrained models have the oracle's utility: the ratios are 1 up to the spread of accuracies over seeds.
    acc = competition_floor["accuracy"]
    for col, key in ((0, "ra_ratio"), (1, "ta_ratio")):
        sd = float(torch.cat([acc["unlearned"][:, col], acc["retrained"][:, col]]).std())
        mean = float(acc["retrained"][:, col].mean())
        assert abs(res[key] - 1) <= 4 * sd * math.sqrt(2 / N_REPLICAS) / mean + 1e-12
    assert len(res["epsilons"]) == len(competition_floor["unlearned"][0])
    assert res["epsilon_ceiling"] == pytest.approx(math.log(N_REPLICAS - 1 - N_REPLICAS * DELTA))


def test_competition_identity_scores_lower(competition_floor, small_task, cfg):
    """n copies of the original model are one point, not a distribution: every example collapses (ε capped)
    and earns nothing, far below retraining."""
    res = competition_score(identity, small_task, cfg, n=N_REPLICAS, seed=0, device="cpu", progress=False)
    floor = competition_from_statistics(competition_floor)
    assert res["forgetting_quality"] == 0.0 and res["score"] == 0.0
    assert all(e == EPSILON_CAP for e in res["epsilons"])
    assert floor["score"] > res["score"]
