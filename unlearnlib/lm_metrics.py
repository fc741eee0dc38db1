"""Metrics of the language-model track, each as its benchmark defines it (chapter 14).

* QA accuracy: the greedy answer (tokens up to ``<eos>``) equals the true answer.
* Answer probability (TOFU, arXiv 2401.06121): ``P(a|q)^(1/|a|)``, the per-token normalised likelihood.
* ROUGE-L recall (TOFU): the longest common subsequence of the greedy answer and the true answer, divided by the
  length of the true answer (word tokens).
* Truth ratio (TOFU): ``R = mean_j P(a_j^pert|q)^(1/|a_j^pert|) / P(a~|q)^(1/|a~|)`` with ``a~`` a paraphrase of the
  true answer. Our answers are single values from closed lists and have no paraphrases, so ``a~`` is the true
  answer itself. TOFU summarises ``R`` by ``mean min(R, 1/R)`` on the forget set and by ``mean max(0, 1 - R)``
  on retained knowledge.
* Forget quality (TOFU): the p-value of the two-sample Kolmogorov-Smirnov test between the truth ratios of the
  model and those of the retrained oracle on the forget set (computed exactly, :func:`ks_2samp_pvalue`).
* Min-K% Prob (Shi et al., arXiv 2310.16789): the mean log-probability of the k % least likely tokens; a
  membership score (higher: more likely trained on).
* PrivLeak (MUSE, arXiv 2407.06460): ``(AUC_model - AUC_oracle) / AUC_oracle * 100`` with AUC the area under the
  ROC curve of Min-K% Prob separating the forget set from never-trained (holdout) facts.

Every function runs under ``torch.no_grad`` on whole batches: the likelihoods of all questions (and all their
perturbed answers) are one forward pass, greedy decoding advances every question by one token per step, and the
LCS table of ROUGE-L is filled for all pairs at once.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

from unlearnlib.errors import UnlearnError
from unlearnlib.facts import QA, FactsTask, Tokenizer, build_tokenizer, encode_qa
from unlearnlib.transformer import answer_nll, token_logprobs

SPLITS = ("forget", "retain", "general", "holdout")
#: the keys that :func:`lm_gap` averages (all in %)
LM_GAP_METRICS = ("forget_acc", "retain_acc", "rouge_l", "utility")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _qas(task_or_qas, split: str = "forget") -> list[QA]:
    if not isinstance(split, str):  # e.g. min_k_prob(model, qas, 0.5): k must be passed by keyword
        raise UnlearnError(f"split must be one of {', '.join(SPLITS)}, got {split!r}; pass k= and other options "
                           "by keyword")
    if isinstance(task_or_qas, FactsTask):
        if split not in SPLITS:
            raise UnlearnError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        qas = getattr(task_or_qas, split)
    else:
        qas = task_or_qas
    if not isinstance(qas, (list, tuple)) or not qas or not all(isinstance(q, QA) for q in qas):
        raise UnlearnError("expected a FactsTask or a non-empty list of QA (e.g. task.forget)")
    return list(qas)


# --- greedy decoding, accuracy, ROUGE-L -------------------------------------------------------------------------

@torch.no_grad()
def greedy_answers(model: nn.Module, qas: list[QA], tokenizer: Tokenizer | None = None, paraphrase: int = 0,
                   max_new: int | None = None) -> torch.Tensor:
    """Greedy answers to the questions, batched: ``[B, max_new]`` token ids, ``<pad>`` after the first ``<eos>``
    (the ``<eos>`` itself is not kept). ``max_new`` defaults to the longest true answer + 2 tokens.

    The prompts are right-padded; row b writes its next token at its own position ``cur[b]`` and reads the
    logits at ``cur[b] - 1``. The mask is causal, so the padding after ``cur[b]`` never changes those logits and
    every row decodes exactly as it would alone.
    """
    tok = tokenizer or build_tokenizer()
    qas = _qas(qas)
    device = _device(model)
    prompts = [[tok.bos_id] + tok.encode(q.questions[paraphrase]) for q in qas]
    if max_new is None:
        max_new = max(len(tok.encode(q.answer)) for q in qas) + 2
    B = len(prompts)
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    width = min(int(lengths.max()) + max_new, model.max_len)
    if int(lengths.max()) >= width:
        raise UnlearnError(f"a question of {int(lengths.max())} tokens leaves no room to answer within the "
                           f"model's max_len={model.max_len}")
    buf = torch.full((B, width), tok.pad_id, dtype=torch.long, device=device)
    for b, p in enumerate(prompts):  # building the input, not a hot path
        buf[b, :len(p)] = torch.tensor(p, device=device)
    out = torch.full((B, max_new), tok.pad_id, dtype=torch.long, device=device)
    rows = torch.arange(B, device=device)
    cur = lengths.clone()
    done = torch.zeros(B, dtype=torch.bool, device=device)
    for s in range(max_new):
        room = cur < width
        live = room & ~done
        if not bool(live.any()):
            break
        logits = model(buf[:, :int(cur.clamp_max(width).max())])
        nxt = logits[rows, cur.clamp_max(width) - 1].argmax(-1)
        finished = live & (nxt == tok.eos_id)
        keep = live & ~finished
        out[:, s] = torch.where(keep, nxt, tok.pad_id)
        buf[rows[keep], cur[keep]] = nxt[keep]
        cur = cur + keep.long()
        done = done | finished | ~room
    return out


def _answer_tensor(tok: Tokenizer, answers: list[str], width: int, device) -> torch.Tensor:
    ids = torch.full((len(answers), width), tok.pad_id, dtype=torch.long, device=device)
    for b, a in enumerate(answers):
        ids[b, :len(tok.encode(a))] = torch.tensor(tok.encode(a)[:width], device=device)
    return ids


def qa_accuracy(model: nn.Module, task_or_qas, split: str = "forget", tokenizer: Tokenizer | None = None,
                paraphrase: int = 0) -> float:
    """% of questions whose greedy answer equals the true answer exactly (chapter 14)."""
    tok = tokenizer or build_tokenizer()
    qas = _qas(task_or_qas, split)
    gen = greedy_answers(model, qas, tok, paraphrase)
    ref = _answer_tensor(tok, [q.answer for q in qas], gen.shape[1], gen.device)
    return 100.0 * (gen == ref).all(dim=1).double().mean().item()


def lcs_length(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Length of the longest common subsequence of each row pair, ``a [B, La]`` and ``b [B, Lb]`` (chapter 14).

    Entries < 0 are padding and match nothing. The dynamic programme ``L[i, j] = L[i-1, j-1] + 1`` if
    ``a_i = b_j`` else ``max(L[i-1, j], L[i, j-1])`` runs over the positions, on all rows at once.
    """
    B, La = a.shape
    Lb = b.shape[1]
    L = torch.zeros(B, La + 1, Lb + 1, dtype=torch.long, device=a.device)
    for i in range(1, La + 1):
        for j in range(1, Lb + 1):
            match = (a[:, i - 1] == b[:, j - 1]) & (a[:, i - 1] >= 0)
            L[:, i, j] = torch.where(match, L[:, i - 1, j - 1] + 1, torch.maximum(L[:, i - 1, j], L[:, i, j - 1]))
    return L[:, La, Lb]


def rouge_l_recall(candidates: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """ROUGE-L recall per row: ``LCS(candidate, reference) / |reference|``; negative entries are padding."""
    n_ref = (references >= 0).sum(dim=1)
    if bool((n_ref == 0).any()):
        raise UnlearnError("ROUGE-L recall needs a non-empty reference in every row")
    return lcs_length(candidates, references).double() / n_ref


def rouge_l(model: nn.Module, task_or_qas, split: str = "forget", tokenizer: Tokenizer | None = None,
            paraphrase: int = 0, per_question: bool = False):
    """Mean ROUGE-L recall (in [0, 1]) of the greedy answers against the true answers, word tokens (TOFU)."""
    tok = tokenizer or build_tokenizer()
    qas = _qas(task_or_qas, split)
    gen = greedy_answers(model, qas, tok, paraphrase)
    width = max(gen.shape[1], max(len(tok.encode(q.answer)) for q in qas))
    ref = _answer_tensor(tok, [q.answer for q in qas], width, gen.device)
    r = rouge_l_recall(torch.where(gen == tok.pad_id, -1, gen), torch.where(ref == tok.pad_id, -2, ref))
    return r if per_question else r.mean().item()


# --- likelihood metrics -----------------------------------------------------------------------------------------

@torch.no_grad()
def normalised_probs(model: nn.Module, qas: list[QA], answers: list[str] | None = None,
                     tokenizer: Tokenizer | None = None, paraphrase: int = 0) -> torch.Tensor:
    """``P(a|q)^(1/|a|) = exp(-mean NLL)`` per question [B], ``|a|`` = answer tokens + ``<eos>`` (chapter 14)."""
    tok = tokenizer or build_tokenizer()
    ids, targets = encode_qa(tok, qas, paraphrase, device=_device(model), answers=answers)
    return torch.exp(-answer_nll(model, ids, targets))


def answer_prob(model: nn.Module, task_or_qas, split: str = "forget", tokenizer: Tokenizer | None = None,
                paraphrase: int = 0) -> float:
    """TOFU's probability: the mean over questions of ``P(a|q)^(1/|a|)``, in [0, 1]."""
    return normalised_probs(model, _qas(task_or_qas, split), None, tokenizer, paraphrase).mean().item()


@torch.no_grad()
def truth_ratios(model: nn.Module, task_or_qas, split: str = "forget", tokenizer: Tokenizer | None = None,
                 paraphrase: int = 0) -> torch.Tensor:
    """TOFU's truth ratio per question [B] (float64): mean normalised probability of the perturbed answers over
    that of the true answer. < 1: the model prefers the truth; about 1: it cannot tell true from false."""
    tok = tokenizer or build_tokenizer()
    qas = _qas(task_or_qas, split)
    k = min(len(q.perturbed) for q in qas)
    if k == 0:
        raise UnlearnError("the truth ratio needs at least one perturbed answer per question")
    # one forward pass: the true answers, then the j-th perturbed answer of every question, j = 0 .. k-1
    many = qas * (k + 1)
    answers = [q.answer for q in qas] + [q.perturbed[j] for j in range(k) for q in qas]
    ids, targets = encode_qa(tok, many, paraphrase, device=_device(model), answers=answers)
    logp = -answer_nll(model, ids, targets).double().reshape(k + 1, len(qas))
    # log of the mean of exp(logp_pert) minus logp_true, in log space so that tiny probabilities do not vanish
    return torch.exp(torch.logsumexp(logp[1:], dim=0) - math.log(k) - logp[0])


def truth_ratio_summary(ratios: torch.Tensor, forget: bool) -> float:
    """TOFU's summary: ``mean min(R, 1/R)`` on the forget set (1: indifferent between true and false answers,
    as a model that never saw the facts), ``mean max(0, 1 - R)`` on retained knowledge (1: sure of the truth)."""
    r = torch.as_tensor(ratios, dtype=torch.float64)
    return (torch.minimum(r, 1 / r) if forget else (1 - r).clamp_min(0)).mean().item()


def truth_ratio(model: nn.Module, task_or_qas, split: str = "forget", tokenizer: Tokenizer | None = None) -> float:
    """The TOFU summary of the truth ratios of ``split`` (forget form for the forget set, else the retain form)."""
    return truth_ratio_summary(truth_ratios(model, task_or_qas, split, tokenizer), forget=split == "forget")


# --- the two-sample Kolmogorov-Smirnov test ---------------------------------------------------------------------

def ks_statistic(a, b) -> float:
    """``D = sup_x |F_a(x) - F_b(x)|`` of the two empirical CDFs (ties handled: evaluated at every value)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / len(a)
    fb = np.searchsorted(b, x, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def ks_2samp_pvalue(a, b) -> float:
    """Two-sided p-value of the two-sample KS test, exact under the null of one continuous distribution.

    Under the null every interleaving of the m + n sorted values is equally likely: a uniform random lattice path
    from (0, 0) to (m, n), where (i, j) means i values of ``a`` and j of ``b`` so far. ``D >= d`` exactly when the
    path touches a point with ``|i/m - j/n| >= d``. The probability mass of the paths that have not yet touched
    such a point is carried along the anti-diagonals (the step to (i+1, j) has probability (m-i)/(m+n-i-j));
    mass that touches one is added to the p-value. Only additions: no cancellation, even for p-values near 1e-30.
    In integers: ``|i n - j m| >= h g`` with ``g = gcd(m, n)`` and ``h = round(d lcm(m, n))``.
    For ``m n`` above 4e6 Kolmogorov's limiting distribution with Stephens' correction is used.
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise UnlearnError("the KS test needs two non-empty samples of finite numbers")
    m, n = len(a), len(b)
    d = ks_statistic(a, b)
    g = math.gcd(m, n)
    h = round(d * (m * n // g))
    if h == 0:
        return 1.0
    if m * n > 4_000_000:
        en = m * n / (m + n)
        lam = (math.sqrt(en) + 0.12 + 0.11 / math.sqrt(en)) * d
        return float(min(1.0, max(0.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
                                               for k in range(1, 101)))))
    i = np.arange(m + 1)
    mass = np.zeros(m + 1)
    mass[0] = 1.0
    p_out = 0.0
    for k in range(m + n):  # from anti-diagonal k (i + j = k) to k + 1
        j = k - i
        valid = (j >= 0) & (j <= n)
        stay = np.where(valid & (j < n), mass * (n - j) / (m + n - k), 0.0)      # (i, j) -> (i, j + 1)
        move = np.where(valid & (i < m), mass * (m - i) / (m + n - k), 0.0)      # (i, j) -> (i + 1, j)
        new = stay.copy()
        new[1:] += move[:-1]
        j_new = k + 1 - i
        outside = (j_new >= 0) & (j_new <= n) & (np.abs(i * n - j_new * m) >= h * g)
        p_out += new[outside].sum()
        mass = np.where(outside, 0.0, new)
    return float(min(1.0, p_out))


def forget_quality(tr_model, tr_oracle) -> float:
    """TOFU's forget quality: the KS p-value between the per-question truth ratios of the model and of the
    oracle on the forget set. 1: indistinguishable from the oracle; tiny: clearly different."""
    return ks_2samp_pvalue(torch.as_tensor(tr_model).cpu().numpy(), torch.as_tensor(tr_oracle).cpu().numpy())


# --- Min-K% Prob, AUC, PrivLeak ---------------------------------------------------------------------------------

@torch.no_grad()
def min_k_prob(model: nn.Module, task_or_qas, split: str = "forget", k: float = 0.2,
               tokenizer: Tokenizer | None = None, paraphrase: int = 0) -> torch.Tensor:
    """Min-K% Prob per question [B]: the mean of the ``max(1, floor(k n))`` lowest token log-probabilities among
    the ``n`` scored tokens (answer and ``<eos>``), higher for text the model was trained on."""
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not 0 < k <= 1:
        raise UnlearnError(f"k must lie in (0, 1], got {k!r}")
    tok = tokenizer or build_tokenizer()
    ids, targets = encode_qa(tok, _qas(task_or_qas, split), paraphrase, device=_device(model))
    logp, scored = token_logprobs(model, ids, targets)
    return min_k_from_logprobs(logp, scored, k)


def min_k_from_logprobs(logp: torch.Tensor, scored: torch.Tensor, k: float = 0.2) -> torch.Tensor:
    """Min-K% of given token log-probabilities ``[B, T]`` where ``scored`` is True (batched sort and mask)."""
    n = scored.sum(dim=1)
    count = torch.clamp((k * n.double()).floor().long(), min=1)
    ordered = torch.where(scored, logp, torch.inf).sort(dim=1).values  # unscored last
    take = torch.arange(logp.shape[1], device=logp.device)[None, :] < count[:, None]
    return torch.where(take, ordered, 0.0).sum(dim=1) / count


def auc(pos, neg) -> float:
    """Area under the ROC curve of scores ``pos`` (positives) against ``neg``: P(pos > neg) + P(tie) / 2."""
    pos = torch.as_tensor(pos, dtype=torch.float64).flatten()
    neg = torch.as_tensor(neg, dtype=torch.float64, device=pos.device).flatten()
    if len(pos) == 0 or len(neg) == 0:
        raise UnlearnError("an AUC needs at least one positive and one negative score")
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return (greater + ties / 2).item()


def mia_auc(model: nn.Module, task: FactsTask, k: float = 0.2) -> float:
    """AUC (in [0, 1]) of Min-K% Prob telling the forget QAs (positives) from never-trained holdout QAs."""
    return auc(min_k_prob(model, task, "forget", k, task.tokenizer), min_k_prob(model, task, "holdout", k,
                                                                                   task.tokenizer))


def privleak(auc_model: float, auc_oracle: float) -> float:
    """MUSE's PrivLeak in %: ``(AUC_model - AUC_oracle) / AUC_oracle * 100``; 0 for the oracle, large positive
    when the forget set still looks trained on, negative when it looks less seen than never-trained data."""
    if not 0 < auc_oracle <= 1 or not 0 <= auc_model <= 1:
        raise UnlearnError(f"AUCs must lie in [0, 1] (the oracle's above 0), got {auc_model!r}, {auc_oracle!r}")
    return (auc_model - auc_oracle) / auc_oracle * 100.0


# --- utility and the evaluation row -----------------------------------------------------------------------------

def utility(model: nn.Module, task: FactsTask) -> float:
    """Model utility in %, TOFU's construction on our data: the harmonic mean of the answer probability, the
    ROUGE-L recall and the truth score ``mean max(0, 1 - R)`` on the retain QAs and on the general facts (six
    numbers in [0, 1]). The harmonic mean is near 0 as soon as one of them is: utility cannot hide a collapse."""
    parts = []
    for split in ("retain", "general"):
        parts += [answer_prob(model, task, split, task.tokenizer), rouge_l(model, task, split, task.tokenizer),
                  truth_ratio(model, task, split, task.tokenizer)]
    if min(parts) <= 0:
        return 0.0
    return 100.0 * len(parts) / sum(1 / p for p in parts)


def lm_gap(row: dict, reference: dict, keys=LM_GAP_METRICS) -> float:
    """Mean absolute difference to the oracle over forget_acc, retain_acc, rouge_l, utility (all in %)."""
    return float(np.mean([abs(row[k] - reference[k]) for k in keys]))


def evaluate_lm(model: nn.Module, task: FactsTask, reference: dict | None = None) -> dict:
    """The facts track's row for ``model`` (chapter 14).

    Rates in %: ``forget_acc``, ``retain_acc``, ``general_acc``, ``rouge_l`` (forget set), ``utility``,
    ``mia_auc``; ``truth_ratio`` is TOFU's forget-set summary in [0, 1]; ``forget_quality`` a p-value;
    ``privleak`` in %; ``lm_gap`` the mean absolute difference to the oracle over :data:`LM_GAP_METRICS`.
    ``reference`` is what ``evaluate_lm(oracle, task)`` returned; without it the model is taken to be the oracle
    (forget quality 1, PrivLeak 0, gap 0). The private keys ``_truth_ratios`` and ``_mia_auc`` carry what a
    reference must provide.
    """
    if not isinstance(task, FactsTask):
        raise UnlearnError(f"evaluate_lm needs a FactsTask, got {type(task).__name__}")
    tok = task.tokenizer
    tr = truth_ratios(model, task, "forget", tok)
    auc_m = mia_auc(model, task)
    row = {
        "forget_acc": qa_accuracy(model, task, "forget", tok),
        "retain_acc": qa_accuracy(model, task, "retain", tok),
        "general_acc": qa_accuracy(model, task, "general", tok),
        "forget_prob": answer_prob(model, task, "forget", tok),
        "truth_ratio": truth_ratio_summary(tr, forget=True),
        "rouge_l": 100.0 * rouge_l(model, task, "forget", tok),
        "utility": utility(model, task),
        "mia_auc": 100.0 * auc_m,
        "_truth_ratios": tr.tolist(),
        "_mia_auc": auc_m,
    }
    if reference is None:
        row.update(forget_quality=1.0, privleak=0.0, lm_gap=0.0)
    else:
        missing = {"_truth_ratios", "_mia_auc", *LM_GAP_METRICS} - set(reference)
        if missing:
            raise UnlearnError(f"the reference lacks {sorted(missing)}; pass what evaluate_lm(oracle, task) returned")
        row.update(forget_quality=forget_quality(tr, reference["_truth_ratios"]),
                   privleak=privleak(auc_m, reference["_mia_auc"]), lm_gap=lm_gap(row, reference))
    return row
