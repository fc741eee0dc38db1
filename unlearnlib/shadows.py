"""Shadow models on random halves of the training set, and leave-out memorisation scores (chapter 11).

A *shadow family* is k models trained with the book's recipe, model j on a random half S_j of the training set.
The halves come in complementary pairs, so every sample is inside exactly k/2 models and outside the other k/2:
each sample has a balanced set of models that saw it and models that did not, which is all a leave-out estimate
(memorisation, chapter 11) or a per-example membership attack (U-LiRA, :mod:`unlearnlib.audits`) needs. The
models are cached on disk (:func:`unlearnlib.train.subset_model`), so the memorisation scores, the ``memorized``
scenario and the audits of the same data share one family.
"""

from __future__ import annotations

import hashlib
import numbers

import numpy as np
import torch
from tqdm import tqdm  # text bars: they work in terminals, notebooks and the built book alike

from unlearnlib import config
from unlearnlib.data import Dataset
from unlearnlib.errors import UnlearnError
from unlearnlib.metrics import predict_logits

#: the fewest shadow models: two complementary pairs, so that a sample has at least two models on each side.
MIN_SHADOWS = 4


def derived_seed(kind: str, seed: int, j: int) -> int:
    """A training seed for model ``j`` of the family ``kind`` drawn from ``seed`` (chapter 11).

    A hash rather than ``seed + j``: the seeds of different families (shadows, retrained shadows, unlearning runs)
    and of different family seeds never coincide, so no two models meant to be independent share an
    initialisation and a batch order. 48 bits: any torch seed, and the same on every machine.
    """
    digest = hashlib.sha256(f"{kind}|{int(seed)}|{int(j)}".encode()).digest()
    return int.from_bytes(digest[:6], "little")


def check_shadow_count(k, what: str = "k, the number of shadow models") -> int:
    """``k`` as an int, or a one-line UnlearnError unless it is an even integer of at least :data:`MIN_SHADOWS`
    (chapter 11)."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise UnlearnError(f"{what} must be an even integer of at least {MIN_SHADOWS}, got {k!r}")
    k = int(k)
    if k < MIN_SHADOWS or k % 2:
        raise UnlearnError(f"{what} must be an even integer of at least {MIN_SHADOWS} (complementary halves: "
                           f"each sample inside k/2 models, outside k/2), got {k}; for example "
                           f"{max(MIN_SHADOWS, k + k % 2)}")
    return k


def check_seed(seed) -> int:
    """``seed`` as an int, or a one-line UnlearnError unless it is a non-negative integer (chapter 11)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise UnlearnError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def shadow_splits(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """``inside[j, i]``: whether training sample i is in the half S_j of shadow model j; bool ``[k, n]`` on the
    host (chapter 11).

    k/2 random permutations of range(n), each cut into a half (rows 0, 2, 4, ...) and its complement (rows 1, 3,
    5, ...): every sample is inside exactly k/2 models. Deterministic given (n, k, seed).
    """
    k = check_shadow_count(k)
    seed = check_seed(seed)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 2:
        raise UnlearnError(f"shadow halves need at least 2 training samples, got n = {n!r}")
    n = int(n)
    g = torch.Generator().manual_seed(seed)
    inside = torch.zeros(k, n, dtype=torch.bool)  # host: split masks, drawn with a CPU generator
    for p in range(k // 2):
        half = torch.randperm(n, generator=g)[: n // 2]
        inside[2 * p, half] = True
        inside[2 * p + 1] = ~inside[2 * p]
    return inside


def shadow_models(data: Dataset, cfg, k: int | None = None, seed: int = 0, device=None,
                  progress: bool = True) -> tuple[list[torch.nn.Module], torch.Tensor]:
    """The shadow family ``seed`` of ``data``: k models, model j trained with the recipe ``cfg`` on the half S_j of
    :func:`shadow_splits` only; returns ``(models, inside)`` with ``inside`` the ``[k, n]`` host mask (chapter 11).

    Trained on ``data`` as given (labels included: a dataset whose labels were flipped keeps them flipped).
    ``k`` defaults to the profile's ``shadow_models``. Each model is cached, keyed by the data, its half, the
    recipe and its seed (:func:`derived_seed`), so a second call costs only the loading.
    """
    from unlearnlib.train import subset_model  # train imports data; imported here to keep the import graph flat

    if k is None:
        k = config.get_profile().shadow_models
    inside = shadow_splits(len(data.y_train), k, seed)
    device = config.get_device(device)
    models = []
    for j in tqdm(range(len(inside)), desc=f"shadow models (family {seed})", disable=not progress, leave=False):
        idx = inside[j].nonzero().flatten()
        models.append(subset_model(data, idx, cfg, seed=derived_seed("shadow", seed, j), device=device,
                                   progress=False))
    return models, inside


@torch.no_grad()
def true_class_probabilities(models, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Softmax probability of the label ``y`` under each model: ``[len(models), len(x)]`` on the models' device
    (chapter 11)."""
    rows = []
    for m in models:
        logits = predict_logits(m, x)
        rows.append(logits.softmax(1).gather(1, y.to(logits.device)[:, None]).squeeze(1))
    return torch.stack(rows)


def memorization_scores(data: Dataset, cfg, k: int | None = None, seed: int = 0, device=None,
                        progress: bool = True) -> np.ndarray:
    """Leave-out memorisation of every training sample, estimated over the shadow family ``seed`` (chapter 11).

    Feldman and Zhang (arXiv 2008.03703) define the memorisation of sample i as the drop in the probability of
    predicting its label when i is left out of training: mem(i) = P[f(x_i) = y_i | i in S] - P[f(x_i) = y_i | i
    not in S], over the randomness of training and of the subset S. With the k shadow models of
    :func:`shadow_models` (i is inside k/2 of them, outside the other k/2) it is estimated here, as Zhao et al.
    do for their memorised forget sets (arXiv 2406.01257), by

        mem(i) = mean over models j with i in S_j of p_j(y_i | x_i)  -  mean over the others of p_j(y_i | x_i),

    with p_j the softmax probability of the label rather than the 0/1 correctness: both have the same
    expectation for a calibrated model in the limit, but the probability is a continuous quantity whose variance
    is far smaller than a coin flip's at small k (16 models in the ``ci`` profile), so the ranking of samples is
    far less noisy. Values lie in [-1, 1]; near 0 for a typical sample (learned from its neighbours), near 1 for
    a sample only fitted when it is seen (an atypical or mislabeled one). Deterministic given (data, cfg, k,
    seed); returned as float64 on the host, one score per training sample.
    """
    models, inside = shadow_models(data, cfg, k=k, seed=seed, device=device, progress=progress)
    p = true_class_probabilities(models, data.x_train, data.y_train).double()  # [k, n]
    mask = inside.to(p.device).double()
    p_in = (p * mask).sum(0) / mask.sum(0)
    p_out = (p * (1 - mask)).sum(0) / (1 - mask).sum(0)
    return (p_in - p_out).cpu().numpy()


def leave_out_accuracy(data: Dataset, cfg, idx, k: int | None = None, seed: int = 0, device=None,
                       progress: bool = True) -> float:
    """The accuracy in % on the training samples ``idx`` of the shadow models that did not train on them, each
    sample averaged over its k/2 "out" models (chapter 11): what a model that never saw these samples gets right,
    estimated without training a model on the retain set. The memorized scenario's oracle-free stopping target
    (:func:`unlearnlib.methods._loop.forget_target`)."""
    models, inside = shadow_models(data, cfg, k=k, seed=seed, device=device, progress=progress)
    idx = torch.as_tensor(idx, dtype=torch.long).cpu()
    x, y = data.x_train[idx.to(data.x_train.device)], data.y_train[idx.to(data.y_train.device)]
    correct = torch.stack([(predict_logits(m, x).argmax(1) == y.to(x.device)) for m in models]).double()
    out = (~inside[:, idx]).to(correct.device).double()
    per_sample = (correct * out).sum(0) / out.sum(0)
    return float(100.0 * per_sample.mean())  # host: one number, once
