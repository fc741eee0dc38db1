"""Per-example audits of an unlearning method: U-LiRA and the NeurIPS 2023 competition's score (chapter 11).

Population attacks (MIA-Efficacy, the loss-based AUC of :mod:`unlearnlib.metrics`) ask whether the forget set *as a
whole* looks like unseen data. Both audits here ask it *per example*, against the one reference that defines
success, retraining without the example, and both need many trained models, which digits makes affordable:

* :func:`ulira`: U-LiRA (Hayes et al., arXiv 2403.01218), a likelihood-ratio membership attack in the manner of
  LiRA (Carlini et al., arXiv 2112.03570) that tells an *unlearned* model from a *retrained* one, one target at a
  time, with per-target Gaussians fitted over shadow models. AUC 50 %: the method is indistinguishable from
  retraining for this attack.
* :func:`competition_score`: the score of the NeurIPS 2023 unlearning competition (Triantafillou et al., arXiv
  2406.09073): per forget example an (ε, δ) estimate from the best threshold attacks on the outputs of N
  unlearned against N retrained models, binned into a forgetting quality, times the utility ratios.

Both use the same 1-D statistic per example, the logit-scaled confidence of the label, log(p / (1 - p)), which
LiRA showed to be close to Gaussian over training runs (:func:`logit_confidence`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # text bars: they work in terminals, notebooks and the built book alike

from unlearnlib import config
from unlearnlib.data import Dataset, UnlearningTask
from unlearnlib.errors import UnlearnError
from unlearnlib.metrics import predict_logits
from unlearnlib.shadows import check_shadow_count, check_seed, derived_seed, shadow_models

#: the competition's δ of the (ε, δ) bound and the cap on a per-example ε (metric.py of its evaluation code).
DELTA = 1e-5
EPSILON_CAP = 50.0
#: width of the competition's ε bins; bin b (ε in [b w, (b + 1) w)) earns 2^-b points.
BIN_WIDTH = 0.5
#: a per-target variance is fitted only from this many samples of a family on (a sample variance of m Gaussian
#: values has a relative standard error of sqrt(2 / (m - 1)): 25 % at 32); below, the family's variance pooled
#: over targets, LiRA's "global variance", which Carlini et al. use when shadow models are few.
MIN_PER_TARGET_VARIANCE = 32
#: the false-positive rate at which U-LiRA's true-positive rate is reported.
LOW_FPR = 0.01
#: the fewest shadow models U-LiRA accepts: with held-out model j, each target must keep two unlearned shadows
#: (k/2 - 1 >= 2) for a within-target variance to exist.
MIN_ULIRA_SHADOWS = 6
#: the fewest replicas of the competition's score: its bins stop at ceil(log(n - 1)), 0 for n = 2.
MIN_REPLICAS = 3


# ---------------------------------------------------------------------------------------------------------------
# Shared pieces.
# ---------------------------------------------------------------------------------------------------------------

def logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log(p_y / (1 - p_y)) of each row's label y, from logits, without forming p (chapter 11).

    log p_y - log(1 - p_y) = z_y - logsumexp over c != y of z_c: exact, and finite however confident the model
    is (computing p first saturates at p = 1 in float32 for z_y - z_c beyond about 17). In float64.
    """
    z = logits.double()
    y = y.to(z.device)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return z_y - torch.logsumexp(others, dim=1)


def _resolve_method(method, cfg, method_kwargs):
    """``(callable, kwargs, name)`` for a registered name or a callable ``(model, task, seed=...) -> model``."""
    from unlearnlib.methods import REGISTRY, get_method

    kwargs = dict(method_kwargs or {})
    if isinstance(method, str):
        fn, name = get_method(method), method
    elif callable(method):
        fn, name = method, getattr(method, "__name__", "custom")
    else:
        raise UnlearnError(f"method must be a registered name or a callable (model, task, seed=...) -> model, got "
                           f"{type(method).__name__}")
    if fn is REGISTRY["retrain"]:
        # retrain reads the profile's recipe by default; the audit's references use ``cfg``, and so must it.
        kwargs.setdefault("train_config", cfg)
    return fn, kwargs, name


def _check_task(task: UnlearningTask) -> None:
    if not isinstance(task, UnlearningTask):
        raise UnlearnError(f"the audits take an UnlearningTask (unlearnlib.data.make_task), got {type(task).__name__}")
    if len(task.forget_idx) == 0:
        raise UnlearnError("the forget set is empty: the per-example audits have no target; choose a task with a "
                           "non-empty forget set")


def _subtask(task: UnlearningTask, inside: torch.Tensor, is_forget: torch.Tensor) -> UnlearningTask:
    """The unlearning task of a shadow model: its training set is the half ``inside`` (a host bool mask over
    task.data's training set), its forget set the targets in that half; the test set stays the task's.

    Built over a dataset of the half only (not over the full one with partial indices), so that a task's
    fingerprint, and with it the retrain cache key, names the half.
    """
    data = task.data
    idx = inside.nonzero().flatten()
    dev_idx = idx.to(data.y_train.device)
    sub = Dataset(f"{data.name} (shadow half)", data.x_train[dev_idx], data.y_train[dev_idx], data.x_test,
                  data.y_test, data.num_classes)
    f_local = is_forget[idx]
    forget_pos = f_local.nonzero().flatten().to(data.y_train.device)
    retain_pos = (~f_local).nonzero().flatten().to(data.y_train.device)
    true = None if getattr(task, "y_train_true", None) is None else task.y_train_true[dev_idx]
    extra = {} if true is None else {"y_train_true": true}
    return UnlearningTask(sub, task.scenario, forget_pos, retain_pos, task.seed, forget_fraction=task.forget_fraction,
                          forget_class=task.forget_class, _test_mask=task._test_mask, **extra)


# ---------------------------------------------------------------------------------------------------------------
# ROC summaries.
# ---------------------------------------------------------------------------------------------------------------

def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Whitney placements: for each positive, the share of negatives it beats (ties count 1/2); for each
    negative, the share of positives that beat it. The AUC is the mean of either."""
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, "left")
    ties = np.searchsorted(neg_sorted, pos, "right") - below
    v10 = (below + 0.5 * ties) / len(neg)
    above = len(pos) - np.searchsorted(pos_sorted, neg, "right")
    ties_p = np.searchsorted(pos_sorted, neg, "right") - np.searchsorted(pos_sorted, neg, "left")
    v01 = (above + 0.5 * ties_p) / len(pos)
    return v10, v01


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + P(tie) / 2, in % (chapter 11)."""
    v10, _ = _placements(np.asarray(pos, float), np.asarray(neg, float))
    return 100.0 * float(v10.mean())


def clustered_auc_se(pos, neg, pos_cluster, neg_cluster) -> float:
    """Standard error (in %) of the AUC when scores come in clusters that are not independent (chapter 11).

    Obuchowski's estimator (Biometrics 53, 1997): the Mann-Whitney placements are summed per cluster and their
    spread over clusters gives the variance, so that whatever is shared inside a cluster (here: one held-out
    shadow model and its unlearned twin score all of their targets) counts once per cluster, not once per score.
    Needs at least two clusters.
    """
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    pc, nc = np.asarray(pos_cluster), np.asarray(neg_cluster)
    v10, v01 = _placements(pos, neg)
    a = v10.mean()
    ids = np.union1d(pc, nc)
    i = len(ids)
    if i < 2:
        return float("nan")
    m_i = np.array([np.sum(pc == c) for c in ids], float)
    n_i = np.array([np.sum(nc == c) for c in ids], float)
    s10_i = np.array([v10[pc == c].sum() for c in ids]) - m_i * a
    s01_i = np.array([v01[nc == c].sum() for c in ids]) - n_i * a
    m, n = len(pos), len(neg)
    s10 = i / ((i - 1) * m) * np.sum(s10_i ** 2)
    s01 = i / ((i - 1) * n) * np.sum(s01_i ** 2)
    s11 = i / (i - 1) * np.sum(s10_i * s01_i)
    var = s10 / m + s01 / n + 2 * s11 / (m * n)
    return 100.0 * math.sqrt(max(var, 0.0))


def tpr_at_fpr(pos, neg, fpr: float = LOW_FPR) -> float:
    """The highest true-positive rate (in %) of a threshold rule "member if score >= t" whose false-positive rate
    is at most ``fpr``: the ROC curve read at low FPR, as LiRA reports it (chapter 11)."""
    pos, neg = np.sort(np.asarray(pos, float)), np.sort(np.asarray(neg, float))
    # The best rules put their threshold on a positive score; FPR and TPR of "score >= t" for each.
    fprs = (len(neg) - np.searchsorted(neg, pos, "left")) / len(neg)
    tprs = (len(pos) - np.searchsorted(pos, pos, "left")) / len(pos)
    ok = fprs <= fpr
    return 100.0 * float(tprs[ok].max()) if ok.any() else 0.0


# ---------------------------------------------------------------------------------------------------------------
# U-LiRA.
# ---------------------------------------------------------------------------------------------------------------

def _gaussian_logpdf(x, mean, var):
    return -0.5 * (torch.log(2 * math.pi * var) + (x - mean) ** 2 / var)


def _family_fit(stat: torch.Tensor, member: torch.Tensor):
    """Leave-one-model-out Gaussian fits of one family: for each held-out model j and target t, the mean and
    variance of ``stat[i, t]`` over the models i != j with ``member[i, t]``; ``[k, T]`` each.

    The per-target variance is used where it rests on at least :data:`MIN_PER_TARGET_VARIANCE` samples, the
    family's pooled within-target variance (one number per held-out model) elsewhere.
    """
    m = member.double()
    x = stat * m
    s, q, c = x.sum(0), (x * stat).sum(0), m.sum(0)        # [T]: all models
    s_j, q_j, c_j = s - x, q - x * stat, c - m             # [k, T]: without model j
    mean = s_j / c_j
    ss = (q_j - s_j * mean).clamp_min(0.0)                 # within-target sum of squares
    pooled = ss.sum(1, keepdim=True) / (c_j - 1).sum(1, keepdim=True)
    per_target = ss / (c_j - 1).clamp_min(1.0)
    var = torch.where(c_j >= MIN_PER_TARGET_VARIANCE, per_target, pooled.expand_as(per_target))
    # A floor far below any spread of trained models: only identical models (no randomness at all) reach it.
    return mean, var.clamp_min(1e-12)


def lira_scores(unlearned: torch.Tensor, retrained: torch.Tensor, member: torch.Tensor):
    """The held-out likelihood-ratio scores of U-LiRA (chapter 11).

    ``unlearned[j, t]``, ``retrained[j, t]``: the statistic of target t under the unlearned shadow U_j and the
    retrained shadow R_j; ``member[j, t]``: whether t was in U_j's forget set F_j. For every held-out j, the
    Gaussians of ``_family_fit`` are fitted on the other models (U_i with t in F_i; every R_i), and the score
    of a statistic s is log N(s; unlearned fit) - log N(s; retrained fit). Returns ``(positives, negatives,
    cluster)``: the scores of U_j and of R_j on the targets of F_j (paired: the same targets), and j for each.
    """
    mu_u, var_u = _family_fit(unlearned, member)
    mu_r, var_r = _family_fit(retrained, torch.ones_like(member))

    def lr(s):
        return _gaussian_logpdf(s, mu_u, var_u) - _gaussian_logpdf(s, mu_r, var_r)

    keep = member.bool()
    cluster = torch.arange(len(member), device=member.device)[:, None].expand_as(member)[keep]
    return lr(unlearned)[keep], lr(retrained)[keep], cluster


def ulira_statistics(method, task: UnlearningTask, cfg, k: int | None = None, seed: int = 0, device=None,
                     progress: bool = True, method_kwargs: dict | None = None) -> dict:
    """The models' side of :func:`ulira` (chapter 11): ``{"unlearned", "retrained", "member", "method"}``, with
    ``unlearned[j, t]`` and ``retrained[j, t]`` the logit-scaled confidence of target t (the t-th sample of D_f)
    under U_j and R_j (float64 ``[k, T]`` on the device; a row of ``unlearned`` is 0 where F_j is empty) and
    ``member[j, t]`` whether t is in F_j. Arguments as for :func:`ulira`."""
    from unlearnlib.train import subset_model

    _check_task(task)
    if k is None:
        k = config.get_profile().shadow_models
    k = check_shadow_count(k)
    if k < MIN_ULIRA_SHADOWS:
        raise UnlearnError(f"U-LiRA needs at least {MIN_ULIRA_SHADOWS} shadow models (each target must be unlearned "
                           f"by two shadows besides the held-out one to fit a variance), got k = {k}")
    seed = check_seed(seed)
    fn, kwargs, name = _resolve_method(method, cfg, method_kwargs)
    device = config.get_device(device)
    data = task.data
    n = len(data.y_train)
    shadows, inside = shadow_models(data, cfg, k=k, seed=seed, device=device, progress=progress)
    is_forget = torch.zeros(n, dtype=torch.bool)  # host: masks over the training set, like the halves
    is_forget[task.forget_idx.cpu()] = True
    member = inside[:, task.forget_idx.cpu()].to(device)  # [k, T]: target t in F_j
    xf, yf = task.x_forget.to(device), task.y_forget.to(device)
    stats_u = torch.zeros(k, len(yf), dtype=torch.float64, device=device)
    stats_r = torch.zeros(k, len(yf), dtype=torch.float64, device=device)
    has_targets = member.any(1).cpu().tolist()  # host: which shadows have a non-empty F_j, read once
    for j in tqdm(range(k), desc=f"U-LiRA {name}", disable=not progress, leave=False):
        keep = (inside[j] & ~is_forget).nonzero().flatten()
        retrained = subset_model(data, keep, cfg, seed=derived_seed("ulira-retrained", seed, j), device=device,
                                 progress=False)
        stats_r[j] = logit_confidence(predict_logits(retrained, xf), yf)
        if has_targets[j]:  # an empty F_j (a tiny D_f) leaves nothing to unlearn and nothing to score
            sub = _subtask(task, inside[j], is_forget)
            unlearned = fn(shadows[j], sub, seed=derived_seed("ulira-unlearn", seed, j), **kwargs)
            stats_u[j] = logit_confidence(predict_logits(unlearned, xf), yf)
    return {"unlearned": stats_u, "retrained": stats_r, "member": member, "method": name}


def ulira_from_statistics(stats: dict) -> dict:
    """:func:`ulira`'s figures from the statistics of :func:`ulira_statistics` (chapter 11)."""
    member = stats["member"]
    k, t = member.shape
    pos, neg, cluster = lira_scores(stats["unlearned"], stats["retrained"], member)
    pos, neg, cluster = pos.cpu().numpy(), neg.cpu().numpy(), cluster.cpu().numpy()  # host: once, at the end
    return {
        "auc": roc_auc(pos, neg),
        "tpr_at_1pct_fpr": tpr_at_fpr(pos, neg, LOW_FPR),
        "auc_se": clustered_auc_se(pos, neg, cluster, cluster),
        "targets": int(t),
        "models": int(k),
        "positives": int(len(pos)),
        "negatives": int(len(neg)),
        # The scored entries of each family rest on k/2 - 1 unlearned and k - 1 retrained samples per target.
        "variance": {"unlearned": "per-target" if k // 2 - 1 >= MIN_PER_TARGET_VARIANCE else "pooled",
                     "retrained": "per-target" if k - 1 >= MIN_PER_TARGET_VARIANCE else "pooled"},
        "method": stats.get("method", "custom"),
    }


def ulira(method, task: UnlearningTask, cfg, k: int | None = None, seed: int = 0, device=None, progress: bool = True,
          method_kwargs: dict | None = None) -> dict:
    """U-LiRA: can a per-example likelihood-ratio attack tell ``method``'s unlearned models from retrained ones?
    (Hayes et al., arXiv 2403.01218; chapter 11.)

    Targets: the task's forget set D_f. The shadow family ``seed`` of ``task.data``
    (:func:`unlearnlib.shadows.shadow_models`: k models on random halves S_j) stands in for the original model; for
    each j:

    * the unlearned shadow U_j = ``method`` applied to shadow j with forget set F_j = D_f ∩ S_j and retain set
      S_j \\ F_j (the test set stays the task's);
    * the retrained shadow R_j, trained with ``cfg`` on S_j \\ D_f: it has seen no target at all.

    The statistic of target x under a model is its logit-scaled confidence (:func:`logit_confidence`). Leave one
    model out: for held-out j, Gaussians per target are fitted to the statistics of the U_i (i != j, x in F_i)
    and of the R_i (i != j); U_j on its targets gives the positive scores, R_j on the same targets the negative
    ones, each scored by the likelihood ratio of the two Gaussians (LiRA's test). With fewer than
    :data:`MIN_PER_TARGET_VARIANCE` samples per target the variance is pooled over targets, as LiRA does with few
    shadow models. AUC and TPR at 1 % FPR are over all held-out scores; ``auc_se`` is their standard error with
    held-out models as clusters (:func:`clustered_auc_se`).

    ``method``: a registered name or a callable ``(model, task, seed=...) -> model`` (``method_kwargs`` are passed
    on). ``method="retrain"`` gives the floor: U_j is then another retraining (another seed) on S_j \\ F_j, so
    AUC 50 % up to noise. k defaults to the profile's ``shadow_models``; shadow and retrained models are cached.

    Returns a dict: ``auc``, ``tpr_at_1pct_fpr`` (in %), ``auc_se`` (in %), ``targets`` (the size of D_f),
    ``models`` (k), ``positives`` and ``negatives`` (number of scores of each kind), ``variance`` (per family,
    ``"per-target"`` or ``"pooled"``), ``method``.
    """
    return ulira_from_statistics(ulira_statistics(method, task, cfg, k=k, seed=seed, device=device, progress=progress,
                                                  method_kwargs=method_kwargs))


# ---------------------------------------------------------------------------------------------------------------
# The competition's score.
# ---------------------------------------------------------------------------------------------------------------

def epsilon_ceiling(n: int, delta: float = DELTA) -> float:
    """The largest finite ε that n unlearned against n retrained samples can show (chapter 11).

    A finite estimate needs an attack with FPR > 0 and FNR > 0, hence both at least 1/n, so
    ε <= log((1 - δ - 1/n) / (1/n)) = log(n - 1 - nδ) < log(n - 1): about 1.95 for n = 8, 6.24 for n = 512.
    Beyond it only "perfectly separated" (ε = ∞, capped at ``EPSILON_CAP``) remains.
    """
    return math.log(n - 1 - n * delta)


def _cut_masks(values: torch.Tensor) -> torch.Tensor:
    """``[2n + 1, E]``: whether a threshold can fall between sorted positions k - 1 and k (always at the ends;
    inside, only between two different values: equal statistics cannot be split)."""
    inner = values[1:] > values[:-1]
    ends = torch.ones(1, values.shape[1], dtype=torch.bool, device=values.device)
    return torch.cat([ends, inner, ends])


def _rule_epsilons(fpr: torch.Tensor, fnr: torch.Tensor, valid: torch.Tensor, delta: float) -> torch.Tensor:
    """ε of each decision rule as the competition's metric computes it: ∞ for a perfect rule (FPR = FNR = 0),
    discarded (NaN) when exactly one rate is 0 (too few samples to bound it), else
    max(log(1 - δ - FPR) - log FNR, log(1 - δ - FNR) - log FPR), at least 0. Invalid rules: NaN."""
    e1 = torch.log(1 - delta - fpr) - torch.log(fnr)
    e2 = torch.log(1 - delta - fnr) - torch.log(fpr)
    eps = torch.fmax(e1, e2).clamp_min(0.0)  # fmax: a NaN (log of a negative) loses to a number
    perfect = (fpr == 0) & (fnr == 0)
    one_zero = (fpr * fnr == 0) & ~perfect
    eps = torch.where(perfect, torch.full_like(eps, math.inf), eps)
    return torch.where(one_zero | ~valid, torch.full_like(eps, math.nan), eps)


def competition_epsilons(unlearned, retrained, delta: float = DELTA, chunk_elements: int = 1 << 22) -> np.ndarray:
    """Per-example ε of the NeurIPS 2023 unlearning competition (Triantafillou et al., arXiv 2406.09073;
    chapter 11), from ``[n, E]`` arrays of a 1-D statistic of E examples under n unlearned and n retrained models.

    For each example, the *positive* distribution is whichever of the two has the larger median. Two families
    of attacks decide "positive" or not from the statistic: a single threshold (positive above it), and an
    interval (the peakier distribution, the one of smaller range, inside it). Each attack's FPR and FNR over the
    n + n samples bound ε through the (ε, δ) inequalities FPR + e^ε FNR >= 1 - δ and FNR + e^ε FPR >= 1 - δ
    (``_rule_epsilons``); the example's ε is the largest over attacks, in [0, ``EPSILON_CAP``]. As in
    the competition, an example whose two ranges differ by a factor of 100 or more (a collapsed, peaky
    distribution, which thresholds on few samples may miss) gets the cap.

    Thresholds are placed between consecutive pooled statistics, and every interval between two such cuts is
    tried: the exact supremum over both families, independent of the statistic's units (the competition's code
    walks a grid of step 0.01 and limits the interval widths around the peaky range, which can only find less).
    Vectorised over examples, in chunks of at most ``chunk_elements`` rule-example pairs.
    """
    u = torch.as_tensor(np.asarray(unlearned, dtype=np.float64)) if not torch.is_tensor(unlearned) \
        else unlearned.double()
    r = torch.as_tensor(np.asarray(retrained, dtype=np.float64), device=u.device) if not torch.is_tensor(retrained) \
        else retrained.double().to(u.device)
    if u.dim() != 2 or u.shape != r.shape:
        raise UnlearnError(f"the unlearned and retrained statistics must both be [n models, E examples], got "
                           f"{tuple(u.shape)} and {tuple(r.shape)}")
    n, e = u.shape
    if n < 2 or e == 0:
        raise UnlearnError(f"ε needs at least 2 models per side and one example, got {n} models and {e} examples")
    if not bool(torch.isfinite(u).all() & torch.isfinite(r).all()):
        raise UnlearnError("the statistics hold NaN or infinite values; compute them with logit_confidence")
    out = []
    per_example = (2 * n + 1) ** 2
    step = max(1, chunk_elements // per_example)
    for start in range(0, e, step):
        out.append(_epsilons_chunk(u[:, start:start + step], r[:, start:start + step], delta))
    return torch.cat(out).cpu().numpy()  # host: the per-example ε, once


def _epsilons_chunk(u: torch.Tensor, r: torch.Tensor, delta: float) -> torch.Tensor:
    n = u.shape[0]
    retrain_pos = torch.quantile(r, 0.5, dim=0) > torch.quantile(u, 0.5, dim=0)
    pos = torch.where(retrain_pos, r, u)
    neg = torch.where(retrain_pos, u, r)
    pos_range = pos.amax(0) - pos.amin(0)
    neg_range = neg.amax(0) - neg.amin(0)
    largest, smallest = torch.maximum(pos_range, neg_range), torch.minimum(pos_range, neg_range)

    values, order = torch.cat([pos, neg]).sort(0)
    is_pos = (order < n).double()                                        # [2n, E] labels in sorted order
    zero = torch.zeros(1, u.shape[1], dtype=torch.float64, device=u.device)
    cum_pos = torch.cat([zero, is_pos.cumsum(0)])                        # [2n + 1, E]: positives below cut k
    cum_neg = torch.cat([zero, (1 - is_pos).cumsum(0)])
    cut_ok = _cut_masks(values)

    # Single threshold between sorted positions k - 1 and k: positive above it.
    fpr_s = (n - cum_neg) / n
    fnr_s = cum_pos / n
    eps_s = _rule_epsilons(fpr_s, fnr_s, cut_ok, delta)

    # Interval between cuts a < b: the peakier distribution inside it. [2n + 1 (a), 2n + 1 (b), E].
    peaky_is_pos = pos_range < neg_range
    cum_peaky = torch.where(peaky_is_pos, cum_pos, cum_neg)
    cum_other = torch.where(peaky_is_pos, cum_neg, cum_pos)
    inside_peaky = cum_peaky[None, :, :] - cum_peaky[:, None, :]
    inside_other = cum_other[None, :, :] - cum_other[:, None, :]
    k = torch.arange(2 * n + 1, device=u.device)
    valid = (k[:, None] < k[None, :])[:, :, None] & cut_ok[:, None, :] & cut_ok[None, :, :]
    eps_d = _rule_epsilons(inside_other / n, (n - inside_peaky) / n, valid, delta)

    all_eps = torch.cat([eps_s, eps_d.flatten(0, 1)])
    # The largest ε over the attacks that were not discarded; an example none bounds gets 0 (no evidence).
    eps = torch.where(torch.isnan(all_eps), torch.zeros_like(all_eps), all_eps).amax(0)
    eps = eps.clamp(0.0, EPSILON_CAP)
    peaky = smallest < 0.01 * largest
    both_constant = largest == 0
    eps = torch.where(peaky & ~both_constant, torch.full_like(eps, EPSILON_CAP), eps)
    # Both distributions constant: indistinguishable if equal, perfectly separated if not.
    same = pos.amax(0) == neg.amax(0)
    return torch.where(both_constant, torch.where(same, torch.zeros_like(eps), torch.full_like(eps, EPSILON_CAP)), eps)


def forgetting_quality(epsilons, n: int) -> float:
    """The competition's forgetting quality F in [0, 1] from per-example ε and the number n of models per side
    (chapter 11).

    ε is binned in bins of width :data:`BIN_WIDTH` from 0 up to ceil(log(n - 1)), the largest finite ε n models
    can show, rounded up (:func:`epsilon_ceiling`); an example in bin b earns 2^-b points (1 for ε < 0.5, 1/2
    for ε in [0.5, 1), ...), beyond the last bin none. F is the mean over examples. With n = 8 (the ``ci``
    profile) the bins end at 2: every finite ε < log 7 ≈ 1.95 earns at least 1/8, and only a perfectly
    separated example earns nothing; identical distributions do not reach F = 1 either, since chance alone makes
    some attack look good on 8 + 8 samples (:func:`null_forgetting_quality`).
    """
    return float(_points(np.asarray(epsilons, dtype=np.float64), _check_replicas(n)).mean())


def _points(eps: np.ndarray, n: int) -> np.ndarray:
    """The competition's points of each ε: 2^-b in bin b = floor(ε / width), 0 from ceil(log(n - 1)) on."""
    bins = int(math.floor(math.ceil(math.log(n - 1)) / BIN_WIDTH))
    b = np.floor(eps / BIN_WIDTH)
    return np.where(b < bins, 2.0 ** -np.minimum(b, 1023), 0.0)


def null_forgetting_quality(n: int, draws: int | None = None, seed: int = 0) -> dict:
    """The forgetting quality of a perfect method at n models per side: ``{"mean", "std"}`` of one example's
    points when the unlearned and retrained samples come from the same distribution (chapter 11).

    Every attack depends only on the order of the 2n pooled samples (and, for the peaky rule, on a ratio of
    ranges that continuous samples of one distribution almost never trip), so under this null the per-example
    points have one distribution whatever the statistic's: simulated here with Gaussian draws. ``mean`` is E[F]
    for an indistinguishable method; examples share models, so F over many examples varies by at most ``std``.
    """
    n = _check_replicas(n)
    if draws is None:
        # 2000 simulated examples (Monte-Carlo error of the mean below 0.5 / sqrt(2000) = 0.011), fewer when n is
        # so large that the (2n + 1)^2 attacks per example would cost more than ~2^26 evaluations (at least 200).
        draws = max(200, min(2000, 2**26 // (2 * n + 1) ** 2))
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, draws, generator=g, dtype=torch.float64)  # host: a simulation, never on a model
    b = torch.randn(n, draws, generator=g, dtype=torch.float64)  # host: as above
    points = _points(competition_epsilons(a, b), n)
    return {"mean": float(points.mean()), "std": float(points.std())}


def _check_replicas(n) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < MIN_REPLICAS:
        raise UnlearnError(f"the competition's score needs at least {MIN_REPLICAS} unlearned and {MIN_REPLICAS} "
                           f"retrained models (its ε bins end at ceil(log(n - 1)), 0 for n = 2), got n = {n!r}")
    return int(n)


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy in % as a 0-d device tensor (no host copy per model)."""
    pred = predict_logits(model, x).argmax(1)
    return 100.0 * (pred == y.to(pred.device)).double().mean()


def competition_statistics(method, task: UnlearningTask, cfg, n: int | None = None, seed: int = 0, device=None,
                           progress: bool = True, original: nn.Module | None = None,
                           method_kwargs: dict | None = None) -> dict:
    """The models' side of :func:`competition_score` (chapter 11): ``{"unlearned", "retrained", "accuracy",
    "method"}`` with ``unlearned[i, t]``, ``retrained[i, t]`` the logit-scaled confidence of forget example t
    under unlearned model i and retrained replica i (float64 ``[n, T]`` on the device) and ``accuracy`` the
    accuracies in % on D_r and D_t, ``{"unlearned": [n, 2], "retrained": [n, 2]}``. Arguments as for
    :func:`competition_score`."""
    from unlearnlib.train import original_model, retrained_model

    _check_task(task)
    if n is None:
        n = config.get_profile().audit_replicas
    n = _check_replicas(n)
    seed = check_seed(seed)
    fn, kwargs, name = _resolve_method(method, cfg, method_kwargs)
    device = config.get_device(device)
    if original is None:
        original = original_model(task.data, cfg, seed=seed, device=device, progress=False)
    xf, yf = task.x_forget.to(device), task.y_forget.to(device)
    xr, yr = task.x_retain.to(device), task.y_retain.to(device)
    xt, yt = task.x_test.to(device), task.y_test.to(device)
    conf = {side: torch.zeros(n, len(yf), dtype=torch.float64, device=device) for side in ("u", "r")}
    acc = {side: torch.zeros(n, 2, dtype=torch.float64, device=device) for side in ("u", "r")}
    for i in tqdm(range(2 * n), desc=f"competition {name}", disable=not progress, leave=False):
        side, j = ("u", i) if i < n else ("r", i - n)
        if side == "u":
            model = fn(original, task, seed=derived_seed("competition-unlearn", seed, j), **kwargs)
        else:
            model = retrained_model(task, cfg, seed=seed, device=device, progress=False, replica=j)
        conf[side][j] = logit_confidence(predict_logits(model, xf), yf)
        acc[side][j, 0] = _correct(model, xr, yr)
        acc[side][j, 1] = _correct(model, xt, yt)
    return {"unlearned": conf["u"], "retrained": conf["r"], "accuracy": {"unlearned": acc["u"], "retrained": acc["r"]},
            "method": name}


def competition_from_statistics(stats: dict) -> dict:
    """:func:`competition_score`'s figures from the statistics of :func:`competition_statistics` (chapter 11)."""
    conf = {"u": stats["unlearned"], "r": stats["retrained"]}
    acc = {"u": stats["accuracy"]["unlearned"], "r": stats["accuracy"]["retrained"]}
    n = _check_replicas(len(conf["u"]))
    name = stats.get("method", "custom")
    eps = competition_epsilons(conf["u"], conf["r"])
    fq = forgetting_quality(eps, n)
    (ra_u, ta_u), (ra_r, ta_r) = acc["u"].mean(0).cpu().tolist(), acc["r"].mean(0).cpu().tolist()  # host: once
    ra_ratio, ta_ratio = ra_u / ra_r, ta_u / ta_r
    return {
        "score": fq * ra_ratio * ta_ratio,
        "forgetting_quality": fq,
        "forgetting_quality_null": null_forgetting_quality(n)["mean"],
        "epsilons": [float(e) for e in eps],
        "epsilon_ceiling": epsilon_ceiling(n),
        "ra_ratio": ra_ratio,
        "ta_ratio": ta_ratio,
        "ra_unlearned": ra_u,
        "ta_unlearned": ta_u,
        "ra_retrained": ra_r,
        "ta_retrained": ta_r,
        "n": n,
        "method": name,
    }


def competition_score(method, task: UnlearningTask, cfg, n: int | None = None, seed: int = 0, device=None,
                      progress: bool = True, original: nn.Module | None = None,
                      method_kwargs: dict | None = None) -> dict:
    """The NeurIPS 2023 unlearning competition's score of ``method`` on ``task`` (Triantafillou et al., arXiv
    2406.09073; chapter 11).

    n unlearned models: ``method`` applied to the seed's original model (``original``, by default
    :func:`unlearnlib.train.original_model` of ``task.data`` with ``cfg``) with n different unlearning seeds;
    n retrained models: :func:`unlearnlib.train.retrained_model` replicas 0 .. n-1 of the task. Per forget
    example, ε from the logit-scaled confidences of the 2n models (:func:`competition_epsilons`, δ =
    :data:`DELTA`); the forgetting quality F bins them (:func:`forgetting_quality`); the score is, as in the
    competition, F x (RA_u / RA_r) x (TA_u / TA_r) with the accuracies on D_r and D_t averaged over each side's n
    models. A method that retrains scores F about ``forgetting_quality_null`` (what n allows), not 1.

    With n models per side no finite ε above log(n - 1) can be shown (:func:`epsilon_ceiling`): for the ``ci``
    profile's n = 8 the scale stops at about 1.95, so the score separates "indistinguishable", "somewhat
    distinguishable" and "perfectly separated", not finer; the competition used n = 512 (ceiling 6.24).

    Returns a dict: ``score``, ``forgetting_quality``, ``forgetting_quality_null`` (mean F of a perfect method at
    this n), ``epsilons`` (per forget example, a list), ``epsilon_ceiling``, ``ra_ratio``, ``ta_ratio``,
    ``ra_unlearned``, ``ta_unlearned``, ``ra_retrained``, ``ta_retrained`` (in %), ``n``, ``method``.
    """
    return competition_from_statistics(competition_statistics(
        method, task, cfg, n=n, seed=seed, device=device, progress=progress, original=original,
        method_kwargs=method_kwargs))
