"""Attacks on an unlearned language model: does the knowledge come back, or was it only hidden? (chapter 15)

Each attack is run on the unlearned model and on the retrain oracle in the same way; the oracle's value is what
"never learned" looks like, so a method passes an attack when its value is close to the oracle's, not when it is 0.

* :func:`relearn_attack`: fine-tune a copy on a few forget QAs (the attacker's part), then measure the QA
  accuracy on the *other* forget QAs. Each fact is an independent draw from a closed list, so learning some
  facts cannot teach the others; if they return, they were still in the weights (as in chapter 11 for images).
* :func:`paraphrase_attack`: the forget QA accuracy on the held-out question template, never used in training or
  in unlearning (a method that only suppressed the trained wordings fails it).
* :func:`probe_attack`: a linear probe (multinomial logistic regression) of the residual stream at the last
  question token, trained on retain people to read off an attribute's value, tested on the forget people. A
  model whose outputs forgot but whose representations still encode the value is caught by it.
"""

from __future__ import annotations

import copy
import numbers

import numpy as np
import torch
from torch import nn

from unlearnlib.errors import UnlearnError
from unlearnlib.methods.language import accuracy_on, encode_training, exact_match


def _check_fraction(fraction) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise UnlearnError(f"fraction must lie strictly between 0 and 1, got {fraction!r}")


def attack_split(task, fraction: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """The attacker's forget QAs (a ``fraction`` of them, at least one) and the others, drawn from ``seed``."""
    _check_fraction(fraction)
    n = len(task.forget)
    if n < 2:
        raise UnlearnError("the relearning attack needs at least two forget QAs (some to relearn, some to test)")
    k = min(n - 1, max(1, round(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()  # host: CPU generator
    return [task.forget[i] for i in order[:k]], [task.forget[i] for i in order[k:]]


def relearn_attack(model: nn.Module, task, steps: int = 10, lr: float = 1e-3, fraction: float = 0.2,
                   seed: int = 0) -> dict:
    """Fine-tune a copy of ``model`` (AdamW, full batch, ``steps`` steps) on the attacker's forget QAs (in the
    training templates) and return the QA accuracy in % on the other forget QAs before and after:
    ``{"before", "after", "attack_qas", "held_qas"}`` (chapter 15). ``model`` is not changed."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise UnlearnError(f"steps must be a non-negative integer, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < float("inf"):
        raise UnlearnError(f"lr must be a positive finite number, got {lr!r}")
    from unlearnlib.transformer import answer_nll

    attack, held = attack_split(task, fraction, seed)
    device = next(model.parameters()).device
    ids, tgt = encode_training(task.tokenizer, attack, device)
    h_ids, h_tgt = encode_training(task.tokenizer, held, device, paraphrases="canonical")
    attacked = copy.deepcopy(model).train()
    before = 100.0 * int(exact_match(attacked, h_ids, h_tgt).sum()) / len(h_ids)
    opt = torch.optim.AdamW(attacked.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        answer_nll(attacked, ids, tgt).mean().backward()
        opt.step()
    after = 100.0 * int(exact_match(attacked, h_ids, h_tgt).sum()) / len(h_ids)
    return {"before": before, "after": after, "attack_qas": len(attack), "held_qas": len(held)}


def paraphrase_attack(model: nn.Module, task) -> dict:
    """Forget QA accuracy in % on the canonical question and on the held-out paraphrase (chapter 15):
    ``{"canonical", "paraphrase"}``."""
    device = next(model.parameters()).device
    return {"canonical": accuracy_on(model, task.tokenizer, task.forget, device),
            "paraphrase": accuracy_on(model, task.tokenizer, task.forget, device, paraphrases="heldout")}


@torch.no_grad()
def question_states(model: nn.Module, task, qas, layer: int = -1) -> torch.Tensor:
    """The residual stream after block ``layer`` at the last token of the canonical question (the position that
    predicts the answer's first token), one row per QA: [N, d]."""
    from unlearnlib.facts import encode_qa

    ids, tgt = encode_qa(task.tokenizer, list(qas), paraphrase=0, device=next(model.parameters()).device)
    was = model.training
    model.eval()
    h = model.hidden_states(ids)[layer]
    model.train(was)
    first = (tgt != -100).int().argmax(dim=1)   # the first scored position: the last question token
    return h[torch.arange(len(ids), device=h.device), first]


def probe_attack(model: nn.Module, task, attribute: str | None = None, layer: int = -1, C: float = 1.0) -> dict:
    """Linear-probe accuracy in % for the values of ``attribute`` (default: every person attribute, pooled),
    trained on the retain people's question states, tested on the forget people's; ``chance`` is the accuracy of
    always predicting the most frequent value of the training people (chapter 15).
    Returns ``{"probe_acc", "chance", "n_train", "n_test"}``."""
    from sklearn.linear_model import LogisticRegression

    attrs = sorted({q.attribute for q in task.forget}) if attribute is None else [attribute]
    if attribute is not None and attribute not in {q.attribute for q in task.forget}:
        raise UnlearnError(f"unknown attribute {attribute!r}; use one of "
                           f"{', '.join(sorted({q.attribute for q in task.forget}))}")
    correct, chance_correct, n_train, n_test = 0, 0, 0, 0
    for a in attrs:
        train = [q for q in task.retain if q.attribute == a]
        test = [q for q in task.forget if q.attribute == a]
        x_tr = question_states(model, task, train, layer).cpu().double().numpy()
        x_te = question_states(model, task, test, layer).cpu().double().numpy()
        y_tr = np.array([q.answer for q in train])
        y_te = np.array([q.answer for q in test])
        # standardise with the training statistics: the probe's regularisation then treats all directions alike
        mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-8
        clf = LogisticRegression(C=C, max_iter=2000)
        clf.fit((x_tr - mu) / sd, y_tr)
        correct += int((clf.predict((x_te - mu) / sd) == y_te).sum())
        values, counts = np.unique(y_tr, return_counts=True)
        chance_correct += int((y_te == values[counts.argmax()]).sum())
        n_train, n_test = n_train + len(train), n_test + len(test)
    return {"probe_acc": 100.0 * correct / n_test, "chance": 100.0 * chance_correct / n_test,
            "n_train": n_train, "n_test": n_test}


def run_attacks(model: nn.Module, oracle: nn.Module, task, seed: int = 0, **relearn) -> dict:
    """Every attack on ``model`` and on ``oracle``: ``{attack: {"model": value, "oracle": value}}`` with the
    relearned accuracy, the paraphrase accuracy and the probe accuracy, in % (chapter 15)."""
    out = {}
    for name, m in (("model", model), ("oracle", oracle)):
        out.setdefault("relearn_acc", {})[name] = relearn_attack(m, task, seed=seed, **relearn)["after"]
        out.setdefault("paraphrase_acc", {})[name] = paraphrase_attack(m, task)["paraphrase"]
        out.setdefault("probe_acc", {})[name] = probe_attack(m, task)["probe_acc"]
    return out
