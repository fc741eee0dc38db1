"""The language-model metrics against direct computations on hand-made examples (chapter 14)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score
from torch import nn

from unlearnlib import UnlearnError
from unlearnlib.facts import IGNORE, QA, build_tokenizer, encode_qa, make_facts, make_facts_task
from unlearnlib.lm_metrics import (answer_prob, auc, evaluate_lm, forget_quality, greedy_answers, ks_2samp_pvalue,
                                   ks_statistic, lcs_length, min_k_from_logprobs, min_k_prob, privleak, qa_accuracy,
                                   rouge_l, rouge_l_recall, truth_ratio_summary, truth_ratios, utility)
from unlearnlib.transformer import LMConfig, TinyGPT, original_lm, retrained_lm

TOK = build_tokenizer()
TINY = LMConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16, epochs=80, batch_size=32, lr=1e-2)


class ConstLM(nn.Module):
    """A 'language model' whose next-token distribution is the same fixed p at every position."""

    max_len = 32

    def __init__(self, p):
        super().__init__()
        self.logp = nn.Parameter(torch.log(torch.as_tensor(p, dtype=torch.float32)))

    def forward(self, ids):
        return self.logp.expand(*ids.shape, -1)


def _const_model():
    # probability 0.3 for "the", 0.2 for "lute", 0.1 for "harp" and "<eos>", the rest spread uniformly
    p = torch.zeros(TOK.vocab_size, dtype=torch.float64)
    fixed = {"the": 0.3, "lute": 0.2, "harp": 0.1, "<eos>": 0.1}
    for w, v in fixed.items():
        p[TOK.stoi[w]] = v
    rest = [i for i in range(TOK.vocab_size) if TOK.itos[i] not in fixed]
    p[rest] = (1 - sum(fixed.values())) / len(rest)
    return ConstLM(p), p


QA_LUTE = QA(0, "instrument", ["Which instrument does Bane Koek play?"] * 3, "the lute", ["the harp", "Esk"])


def test_lcs_and_rouge_l_on_known_strings():
    words = "the quick brown fox jumps over a lazy dog".split()
    ids = {w: i for i, w in enumerate(words)}
    enc = lambda s, n, pad: [ids[w] for w in s.split()] + [pad] * (n - len(s.split()))
    cand = torch.tensor([enc("the quick brown fox", 4, -1), enc("a lazy dog", 4, -1), enc("dog the", 4, -1)])
    ref = torch.tensor([enc("the brown dog", 3, -2), enc("the brown dog", 3, -2), enc("the dog", 3, -2)])
    assert lcs_length(cand, ref).tolist() == [2, 1, 1]
    np.testing.assert_allclose(rouge_l_recall(cand, ref).numpy(), [2 / 3, 1 / 3, 1 / 2])
    # padding never matches padding
    assert lcs_length(torch.tensor([[-1, -1]]), torch.tensor([[-2, -2]])).item() == 0


@pytest.mark.parametrize("m,n,shift", [(5, 7, 0.5), (10, 10, 1.0), (40, 40, 0.3), (30, 45, 0.8), (50, 3, 0.0),
                                       (60, 60, 3.0)])
def test_ks_pvalue_against_scipy_exact(m, n, shift):
    rng = np.random.default_rng(m * 100 + n)
    a, b = rng.normal(size=m), rng.normal(shift, size=n)
    ref = stats.ks_2samp(a, b, method="exact")
    assert math.isclose(ks_statistic(a, b), ref.statistic, rel_tol=1e-12)
    # both are exact sums of at most C(m+n, m) path probabilities in float64: agreement to ~1e-10 relative
    assert math.isclose(ks_2samp_pvalue(a, b), ref.pvalue, rel_tol=1e-9, abs_tol=1e-300)


def test_ks_with_ties_and_identical_samples():
    a, b = np.array([0.0, 1, 1, 2, 3]), np.array([1.0, 1, 2, 2, 5, 6])
    ref = stats.ks_2samp(a, b, method="exact")
    assert math.isclose(ks_statistic(a, b), ref.statistic) and math.isclose(ks_2samp_pvalue(a, b), ref.pvalue)
    assert ks_2samp_pvalue(a, a) == 1.0 and forget_quality(torch.tensor(a), torch.tensor(a)) == 1.0
    # completely separated samples of 50: p = 2 / C(100, 50), far below what 1 - P(inside) could resolve
    assert math.isclose(ks_2samp_pvalue(np.arange(50), np.arange(50) + 100), 2 / math.comb(100, 50), rel_tol=1e-9)


def test_truth_ratio_and_answer_prob_on_a_hand_computed_model():
    model, p = _const_model()
    pr = lambda words: math.prod(p[TOK.stoi[w]].item() for w in words.split() + ["<eos>"])
    norm = lambda words: pr(words) ** (1 / (len(words.split()) + 1))
    expected = (norm("the harp") + norm("Esk")) / 2 / norm("the lute")
    got = truth_ratios(model, [QA_LUTE])
    assert math.isclose(got.item(), expected, rel_tol=1e-5)  # float32 log-probabilities of a few tokens
    assert math.isclose(answer_prob(model, [QA_LUTE]), norm("the lute"), rel_tol=1e-5)
    r = torch.tensor([0.5, 2.0, 1.0, 0.1], dtype=torch.float64)
    assert math.isclose(truth_ratio_summary(r, forget=True), (0.5 + 0.5 + 1 + 0.1) / 4)
    assert math.isclose(truth_ratio_summary(r, forget=False), (0.5 + 0 + 0 + 0.9) / 4)


def test_greedy_decoding_of_the_constant_model():
    model, _ = _const_model()
    gen = greedy_answers(model, [QA_LUTE], max_new=3)
    # argmax is "the" at every step, and never <eos>
    assert gen.tolist() == [[TOK.stoi["the"]] * 3]
    assert qa_accuracy(model, [QA_LUTE]) == 0.0
    assert math.isclose(rouge_l(model, [QA_LUTE]), 1 / 2)


def test_min_k_on_known_logprobs():
    logp = torch.tensor([[-1.0, -5.0, -2.0, -0.5, -3.0], [-0.1, -0.7, 0.0, 0.0, 0.0], [0.0, -2.0, -4.0, 0.0, 0.0]])
    scored = torch.tensor([[True] * 5, [True, True, False, False, False], [False, True, True, False, False]])
    # k = 0.4: floor(0.4 * 5) = 2 lowest of row 0 (-5, -3); rows with 2 tokens keep max(1, 0) = 1, their minimum
    np.testing.assert_allclose(min_k_from_logprobs(logp, scored, 0.4).numpy(), [-4.0, -0.7, -4.0])
    np.testing.assert_allclose(min_k_from_logprobs(logp, scored, 1.0).numpy(), [-11.5 / 5, -0.4, -3.0])
    model, p = _const_model()
    lp = [math.log(p[TOK.stoi[w]].item()) for w in ["the", "lute", "<eos>"]]
    assert math.isclose(min_k_prob(model, [QA_LUTE], k=0.2).item(), min(lp), rel_tol=1e-5)


def test_auc_and_privleak():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 30).astype(float), rng.integers(0, 4, 20).astype(float)  # many ties
    y = np.r_[np.ones(30), np.zeros(20)]
    assert math.isclose(auc(pos, neg), roc_auc_score(y, np.r_[pos, neg]), rel_tol=1e-12)
    assert privleak(0.9, 0.6) == pytest.approx(50.0) and privleak(0.5, 0.5) == 0.0


@pytest.fixture(scope="module")
def trained():
    task = make_facts_task(make_facts(12, seed=0), 0.25, seed=0)
    return task, original_lm(task, TINY, device="cpu"), retrained_lm(task, TINY, device="cpu")


def test_batched_greedy_equals_one_question_at_a_time(trained):
    task, original, _ = trained
    qas = task.forget[:3] + task.general[:2] + task.holdout[:3]
    batched = greedy_answers(original, qas, task.tokenizer)
    for b, q in enumerate(qas):
        alone = greedy_answers(original, [q], task.tokenizer, max_new=batched.shape[1])
        assert torch.equal(alone[0], batched[b])


def test_accuracy_equals_teacher_forced_argmax(trained):
    # greedy decoding reproduces the answer exactly when every scored next-token argmax is the target
    task, original, oracle = trained
    for model in (original, oracle):
        for split in ("forget", "retain", "holdout"):
            qas = getattr(task, split)
            ids, targets = encode_qa(task.tokenizer, qas)
            with torch.no_grad():
                hit = ((model(ids).argmax(-1) == targets) | (targets == IGNORE)).all(1).float().mean().item()
            assert qa_accuracy(model, task, split) == pytest.approx(100 * hit)


def test_evaluate_lm_rows(trained):
    task, original, oracle = trained
    ref = evaluate_lm(oracle, task)
    assert ref["forget_quality"] == 1.0 and ref["privleak"] == 0.0 and ref["lm_gap"] == 0.0
    row = evaluate_lm(original, task, reference=ref)
    for key in ("forget_acc", "retain_acc", "truth_ratio", "rouge_l", "forget_quality", "privleak", "utility"):
        assert math.isfinite(row[key])
    assert 0 <= row["forget_quality"] <= 1 and 0 <= row["truth_ratio"] <= 1
    assert row["forget_acc"] > ref["forget_acc"]  # the original knows the forget facts; the oracle never saw them
    assert row["forget_quality"] == forget_quality(row["_truth_ratios"], ref["_truth_ratios"])
    assert row["lm_gap"] == pytest.approx(np.mean([abs(row[k] - ref[k]) for k in
                                                   ("forget_acc", "retain_acc", "rouge_l", "utility")]))
    parts = [f(original, task, s) for s in ("retain", "general") for f in
             (answer_prob, rouge_l, lambda m, t, s: truth_ratio_summary(truth_ratios(m, t, s), False))]
    assert utility(original, task) == pytest.approx(100 * 6 / sum(1 / x for x in parts))


@pytest.mark.parametrize("call", [
    lambda t, m: qa_accuracy(m, t, "test"),
    lambda t, m: qa_accuracy(m, []),
    lambda t, m: min_k_prob(m, t, k=0.0),
    lambda t, m: min_k_prob(m, t.forget, 0.5),
    lambda t, m: truth_ratios(m, [replace(QA_LUTE, perturbed=[])]),
    lambda t, m: ks_2samp_pvalue([], [1.0]),
    lambda t, m: ks_2samp_pvalue([float("nan")], [1.0]),
    lambda t, m: auc([], [1.0]),
    lambda t, m: privleak(0.5, 0.0),
    lambda t, m: evaluate_lm(m, "task"),
    lambda t, m: evaluate_lm(m, t, reference={"forget_acc": 1.0}),
    lambda t, m: greedy_answers(TinyGPT(TOK.vocab_size, d_model=8, n_layers=1, n_heads=2, max_len=4), t.forget),
])
def test_bad_input_is_one_line_unlearn_error(trained, call):
    task, original, _ = trained
    with pytest.raises(UnlearnError) as err:
        call(task, original)
    assert "\n" not in str(err.value) and str(err.value)
