"""Evaluation: UA, RA, TA, MIA-Efficacy, a loss-based MIA, Avg. Gap to retrain (chapter 01).

The definitions, directions and the conventions of other codebases are in the book's glossary page. All
percentages are in 0-100. MIA-Efficacy follows the SVC recipe of the Sparse/SalUn code (methods.md §2.2):

1. shadow members: the first ``|D_t|`` samples of D_r; shadow non-members: all of D_t;
2. feature: the softmax probability of the true class ("confidence");
3. ``SVC(C=3, kernel="rbf", gamma="auto")`` fitted on members (1) vs non-members (0);
4. MIA-Efficacy = % of D_f predicted *non-member*. Higher means the forget set looks less like training data.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.metrics import roc_auc_score
from sklearn.svm import SVC
from torch import nn

from unlearnlib.data import UnlearningTask

GAP_METRICS = ("UA", "RA", "TA", "MIA")
#: direction of each metric: "retrain" means "the closer to the retrain oracle, the better".
DIRECTIONS = {"UA": "retrain", "RA": "retrain", "TA": "retrain", "MIA": "retrain", "MIA_AUC": "retrain",
              "gap": "lower", "time_s": "lower"}


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched (chapter 01). The model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in % (chapter 01). An empty set has no accuracy: NaN."""
    if len(y) == 0:
        return float("nan")
    pred = predict_logits(model, x).argmax(1)
    return 100.0 * (pred == y.to(pred.device)).float().mean().item()


@torch.no_grad()
def per_sample_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Cross-entropy of every sample (chapter 01)."""
    logits = predict_logits(model, x)
    return nn.functional.cross_entropy(logits, y.to(logits.device), reduction="none").cpu().numpy()


@torch.no_grad()
def true_class_confidence(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Softmax probability of the true class, the feature of MIA-Efficacy (chapter 01)."""
    p = predict_logits(model, x).softmax(1)
    return p.gather(1, y.to(p.device)[:, None]).squeeze(1).cpu().numpy()


def mia_efficacy(model: nn.Module, task: UnlearningTask) -> float:
    """MIA-Efficacy in %: the share of D_f that an SVC on true-class confidence calls non-member (chapter 01)."""
    n_shadow = min(len(task.y_test), len(task.retain_idx))
    conf_in = true_class_confidence(model, task.x_retain[:n_shadow], task.y_retain[:n_shadow])
    conf_out = true_class_confidence(model, task.x_test, task.y_test)
    features = np.concatenate([conf_in, conf_out])[:, None]
    labels = np.concatenate([np.ones(len(conf_in)), np.zeros(len(conf_out))])
    svc = SVC(C=3, kernel="rbf", gamma="auto").fit(features, labels)
    conf_f = true_class_confidence(model, task.x_forget, task.y_forget)
    return 100.0 * float((svc.predict(conf_f[:, None]) == 0).mean())


#: the fewest samples of D_f and of D_t the loss-based attack can be cross-validated on: each of two folds needs
#: one member and one non-member to fit on and to score.
MIN_AUC_SAMPLES = 2


def undefined_metrics(task: UnlearningTask) -> dict[str, str]:
    """The metrics of :func:`evaluate` that ``task`` leaves undefined (reported as ``None``), each with the
    reason (chapter 01). Known from the sizes of the sets alone, so a run can say so before it trains anything.

    Only the loss-based MIA can be undefined: it cross-validates on a balanced sample of D_f and D_t, which needs
    at least :data:`MIN_AUC_SAMPLES` of each. MIA-Efficacy fits its SVC on D_r and D_t (never empty) and only
    scores D_f, so it is defined for a forget set of any size; with one sample it is 0 or 100.
    """
    n = min(len(task.forget_idx), len(task.y_test))
    if n < MIN_AUC_SAMPLES:
        return {"MIA_AUC": f"the loss-based MIA cross-validates on D_f against D_t and needs at least "
                           f"{MIN_AUC_SAMPLES} samples of each; the smaller set has {n}"}
    return {}


def loss_mia_auc(model: nn.Module, task: UnlearningTask, folds: int = 5, seed: int = 0) -> float | None:
    """Loss-based MIA: cross-validated ROC AUC (in %) of a logistic regression on per-sample losses telling D_f from
    D_t (chapter 01). 50 means the forget set is indistinguishable from unseen data.

    The two sets are balanced by subsampling the larger one, so that the attack cannot win by predicting the
    majority class. ``None`` when D_f or D_t holds fewer than :data:`MIN_AUC_SAMPLES` samples (no held-out
    fold can be scored; :func:`undefined_metrics` gives the reason).
    """
    if "MIA_AUC" in undefined_metrics(task):
        return None
    lf = per_sample_loss(model, task.x_forget, task.y_forget)
    lt = per_sample_loss(model, task.x_test, task.y_test)
    n = min(len(lf), len(lt))
    rng = np.random.default_rng(seed)
    lf, lt = rng.choice(lf, n, replace=False), rng.choice(lt, n, replace=False)
    # log(loss) spreads the tiny losses of memorised samples; the clip keeps it finite.
    x = np.log(np.clip(np.concatenate([lf, lt]), 1e-12, None))[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    cv = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    scores = cross_val_predict(LogisticRegression(), x, y, cv=cv, method="predict_proba")[:, 1]
    return 100.0 * float(roc_auc_score(y, scores))


def avg_gap(metrics: dict, reference: dict, keys=GAP_METRICS) -> float:
    """Avg. Gap: the mean absolute difference to the retrain oracle over UA, RA, TA, MIA (chapter 01)."""
    return float(np.mean([abs(metrics[k] - reference[k]) for k in keys]))


def evaluate(model: nn.Module, task: UnlearningTask, reference: dict | None = None, time_s: float | None = None) -> dict:
    """Every metric of the book for ``model`` on ``task``, as a plain dict (chapter 01).

    Keys: ``UA`` (100 - accuracy on D_f), ``RA`` (accuracy on D_r), ``TA`` (accuracy on D_t; class-wise: the
    remaining classes only), ``MIA`` (MIA-Efficacy), ``MIA_AUC`` (loss-based MIA; ``None`` when the task leaves
    it undefined, see :func:`undefined_metrics`), and, when given,
    ``gap`` (Avg. Gap to ``reference``, the retrain oracle's metrics) and ``time_s``. A task whose training
    labels were corrupted (the ``mislabeled`` scenario) adds ``true_label_acc``: the accuracy on D_f against the
    correct labels, which corrective unlearning wants high (chapter 11).
    """
    out = {
        "UA": 100.0 - accuracy(model, task.x_forget, task.y_forget),
        "RA": accuracy(model, task.x_retain, task.y_retain),
        "TA": accuracy(model, task.x_test, task.y_test),
        "MIA": mia_efficacy(model, task),
        "MIA_AUC": loss_mia_auc(model, task),
    }
    if task.y_train_true is not None:
        out["true_label_acc"] = accuracy(model, task.x_forget, task.y_forget_true)
    if reference is not None:
        out["gap"] = avg_gap(out, reference)
    if time_s is not None:
        out["time_s"] = float(time_s)
    return out
