"""Shadow halves and leave-out memorisation scores (unlearnlib.shadows, chapter 11).

The memorisation tests train small shadow families on a 600-sample part of digits (a shadow model then trains
in well under a second on one thread); the models are cached in the session cache.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binom

from unlearnlib import UnlearnError
from unlearnlib.data import from_arrays
from unlearnlib.shadows import derived_seed, memorization_scores, shadow_models, shadow_splits

N_SMALL = 600


def _small(data, y=None, name="digits-600"):
    """The first N_SMALL training samples of digits (all test samples), optionally with other labels."""
    x = data.x_train[:N_SMALL].numpy()
    y = data.y_train[:N_SMALL].numpy() if y is None else y
    return from_arrays(name, x, y, data.x_test.numpy(), data.y_test.numpy(), num_classes=10)


def test_splits_are_balanced_complementary_and_deterministic():
    inside = shadow_splits(101, 8, seed=3)
    assert inside.shape == (8, 101) and inside.dtype == torch.bool
    assert torch.equal(inside.sum(0), torch.full((101,), 4))           # every sample inside k/2 models
    assert torch.equal(inside[0::2], ~inside[1::2])                     # rows come in complementary pairs
    assert sorted(set(inside.sum(1).tolist())) == [50, 51]              # halves of an odd n
    assert torch.equal(inside, shadow_splits(101, 8, seed=3))
    assert not torch.equal(inside, shadow_splits(101, 8, seed=4))
    # The pairs are different permutations, not one half repeated.
    assert len({tuple(r.tolist()) for r in inside}) == 8


@pytest.mark.parametrize("k", [3, 7, 2, 0, -4, True, 4.0, "8"])
def test_splits_refuse_bad_counts(k):
    with pytest.raises(UnlearnError) as e:
        shadow_splits(100, k, seed=0)
    assert "\n" not in str(e.value) and "even integer" in str(e.value)


@pytest.mark.parametrize("n, seed", [(1, 0), (0, 0), (100, -1), (100, 1.5)])
def test_splits_refuse_bad_sizes_and_seeds(n, seed):
    with pytest.raises(UnlearnError) as e:
        shadow_splits(n, 4, seed=seed)
    assert "\n" not in str(e.value)


def test_derived_seeds_differ_between_families_and_models():
    seeds = {derived_seed(kind, s, j) for kind in ("shadow", "ulira-retrained") for s in (0, 1) for j in range(64)}
    assert len(seeds) == 2 * 2 * 64


def test_shadow_models_follow_their_halves(data, cfg):
    small = _small(data)
    models, inside = shadow_models(small, cfg, k=4, seed=0, device="cpu", progress=False)
    assert len(models) == 4 and torch.equal(inside, shadow_splits(N_SMALL, 4, 0))
    # A model fits its own half better than the other half: it was trained on it.
    from unlearnlib.metrics import accuracy
    for m, mask in zip(models, inside):
        assert accuracy(m, small.x_train[mask], small.y_train[mask]) > accuracy(m, small.x_train[~mask],
                                                                               small.y_train[~mask])


def test_memorization_is_deterministic_across_caches(data, cfg, tmp_path, monkeypatch):
    """The same scores from models retrained in an empty cache: the estimate depends only on its arguments."""
    small = _small(data)
    first = memorization_scores(small, cfg, k=4, seed=0, device="cpu", progress=False)
    monkeypatch.setenv("UNLEARN_CACHE", str(tmp_path))
    second = memorization_scores(small, cfg, k=4, seed=0, device="cpu", progress=False)
    assert first.dtype == np.float64 and first.shape == (N_SMALL,)
    np.testing.assert_array_equal(first, second)
    assert np.all((first >= -1) & (first <= 1))


def test_flipped_labels_are_memorised(data, cfg):
    """Samples whose label was flipped are fitted only by the models that saw them: they must crowd the top
    decile of the memorisation scores.

    If flipped samples were no more memorised than the others, the number of them in the top 10 % would be at
    most hypergeometric, bounded by Binomial(n_flipped, 0.1); the test asks for a count that this binomial
    exceeds with probability below 1e-6. On the whole digits training set: on a 600-sample part the recipe's
    30 epochs are too few steps for a shadow to fit its flipped samples at all.
    """
    rng = np.random.default_rng(0)
    n = len(data.y_train)
    y = data.y_train.numpy().copy()
    flipped = rng.choice(n, size=n // 20, replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    noisy = from_arrays("digits-flipped", data.x_train.numpy(), y, data.x_test.numpy(), data.y_test.numpy(),
                        num_classes=10)
    mem = memorization_scores(noisy, cfg, k=8, seed=0, device="cpu", progress=False)
    top = np.argsort(-mem)[: n // 10]
    in_top = int(np.isin(flipped, top).sum())
    needed = int(binom.isf(1e-6, len(flipped), 0.1)) + 1
    assert in_top >= needed, (in_top, needed, len(flipped))


def test_leave_out_accuracy_is_the_mean_over_out_models(data, cfg):
    """Each sample's accuracy over the shadows that did not train on it, averaged: recomputed model by model."""
    from unlearnlib.metrics import predict_logits
    from unlearnlib.shadows import leave_out_accuracy

    small = _small(data)
    idx = torch.arange(0, N_SMALL, 7)
    models, inside = shadow_models(small, cfg, k=4, seed=0, device="cpu", progress=False)
    per_sample = []
    for i in idx.tolist():
        outs = [m for m, mask in zip(models, inside) if not mask[i]]
        hits = [float(predict_logits(m, small.x_train[i:i + 1]).argmax(1).item() == small.y_train[i].item())
                for m in outs]
        per_sample.append(np.mean(hits))
    got = leave_out_accuracy(small, cfg, idx, k=4, seed=0, device="cpu", progress=False)
    assert got == pytest.approx(100 * np.mean(per_sample), abs=1e-9)
