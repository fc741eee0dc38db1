# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A language model to forget with
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/unlearn-book/unlearn-book/blob/v0.1.0/colab/14_language_model.ipynb)
#
# Most of what is asked of unlearning today is asked of language models: forget a person, a copyrighted book, a
# dangerous skill. The benchmarks of that setting, TOFU {cite}`maini2024tofu` and MUSE {cite}`shi2024muse`,
# fine-tune a large model on facts about fictitious people and then ask it to forget some of them. This part of
# the book builds the same experiment at a size that trains on one CPU core in seconds: synthetic facts about
# invented people, a small decoder-only transformer trained from scratch to memorise them, and the metrics the
# benchmarks report, each derived from its definition. This chapter builds the instruments and measures the two
# models every later comparison needs: the **original**, trained on all facts, and the **oracle**, retrained
# without the people to forget. Chapter 15 then runs the unlearning methods between the two.
#
# **What you will learn**
#
# - how a closed world of fictitious facts is generated, asked in several paraphrases, and tokenised;
# - the decoder-only transformer written out from its equations (causal self-attention, the pre-norm block, the
#   model), and checked equal to the library's `TinyGPT`;
# - the metrics of the language-model benchmarks, from their definitions: QA accuracy, answer probability,
#   ROUGE-L recall, TOFU's truth ratio and forget quality (a Kolmogorov-Smirnov test), Min-K% Prob and MUSE's
#   PrivLeak, and a utility score;
# - how far apart the original and the oracle lie on each metric: the distance an unlearning method has to cover.

# %%
# Colab only: install the book's library, unlearnlib, from this release of the book.
import sys

if "google.colab" in sys.modules:
    import subprocess

    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "unlearnlib @ git+https://github.com/unlearn-book/unlearn-book@v0.1.0"],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        print(pip.stdout, pip.stderr, sep="\n")
        raise RuntimeError(
            "pip could not install unlearnlib (its output is above): check that "
            "this Colab session is online, then run this cell again"
        )

# %%
import math
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

import unlearnlib.config
from unlearnlib import lm_metrics
from unlearnlib.facts import (
    ATTRIBUTES,
    IGNORE,
    encode_qa,
    make_facts,
    make_facts_task,
)
from unlearnlib.transformer import LMConfig, TinyGPT, original_lm, retrained_lm

profile = unlearnlib.config.get_profile()
device = unlearnlib.config.get_device()
print(f"profile {profile.name}, device {device}")

# %% [markdown]
# ## The facts
#
# TOFU {cite}`maini2024tofu` has a large model write 200 profiles of fictitious authors as 20 question-answer
# pairs each. We want the same property, facts that no model can know before training, without a
# generator model and without ambiguity in the answers. `unlearnlib.facts` draws people whose names are made of
# invented syllables, and gives each of them five attributes (birth year, city, profession, instrument, favourite
# colour), every value drawn independently and uniformly from a closed list. Each (person, attribute) pair is one
# question-answer pair (a `QA`), asked in three paraphrases: the first two are used in training, the third is held
# out for the paraphrase attack of chapter 15. Each QA also carries four **perturbed answers**, other values of the
# same attribute: the false alternatives of the truth ratio below.
#
# Two more sets complete the world. **General facts** (invented countries and their capitals) are trained into
# every model and never forgotten: they measure whether unlearning keeps knowledge that has nothing to do with the
# forget set. **Holdout people**, generated like the others but never trained, are the non-members of the
# membership attacks: what a model looks like on facts it never saw.

# %%
facts = make_facts(seed=0)
task = make_facts_task(facts, forget_fraction=0.1, seed=0)
tok = task.tokenizer
print(f"{facts.n_people} people x {len(ATTRIBUTES)} attributes = {len(facts.qas)} QAs")
print(f"forget: {len(task.forget)} QAs of {len(task.forget_people)} people; "
      f"retain: {len(task.retain)}; general: {len(task.general)}; "
      f"holdout: {len(task.holdout)}")
for attribute, (templates, values) in ATTRIBUTES.items():
    print(f"{attribute:11s} {len(values):2d} values, e.g. {', '.join(values[:3])}")
person = facts.people[task.forget_people[0]]
print("\na person to forget:", person)
example = task.forget[2]
for i, q in enumerate(example.questions):
    role = "held out" if i == len(example.questions) - 1 else "trained"
    print(f"  Q{i} ({role}): {q}")
print(f"  A: {example.answer}    perturbed: {example.perturbed}")
print("a general fact:", task.general[0].questions[0], "->", task.general[0].answer)

# %% [markdown]
# The values are drawn independently of the names, so the question carries no information about the answer: for
# a person it never saw, a model can only guess from the attribute, and any guess is right with probability
# $1/|\text{values}|$ (the values are uniform). We take as the **guessing level** something slightly more generous,
# the frequency of each attribute's most common value among the retain people (what a model that learned the
# empirical frequencies would score); the oracle's accuracy on the forget set must stay near it.

# %%
def guessing_level(qas):
    """% of `qas` a person-blind guesser gets right: per attribute, the frequency of
    its most common value among the trained (retain) people."""
    best = {}
    for attribute in ATTRIBUTES:
        answers = [q.answer for q in task.retain if q.attribute == attribute]
        best[attribute] = max(answers.count(v) for v in set(answers)) / len(answers)
    return 100 * float(np.mean([best[q.attribute] for q in qas]))


guess = guessing_level(task.forget)
print(f"guessing level on the forget set: {guess:.1f} %")

# %% [markdown]
# ## The tokenizer
#
# Because the world is closed, so is its vocabulary: every word the generator can write (names, template words,
# values) plus four special tokens, `<pad>`, `<bos>` (beginning of sequence), `<eos>` (end of sequence) and
# `<unk>`. The library's `Tokenizer` is word level ("?" is a word of its own) and never meets an unknown word in
# the data. A training sequence is `<bos> question answer <eos>`.
#
# A causal language model with parameters $\theta$ gives the probability of the next token given the ones before.
# Like TOFU's fine-tuning, we train only the answer: for a question $q$ and an answer $a = (a_1, \dots, a_n)$, with
# $a_{n+1} = $ `<eos>`, the loss of one pair is the mean negative log-likelihood of the answer tokens,
#
# $$
# \ell(\theta; q, a) = -\frac{1}{n+1} \sum_{t=1}^{n+1} \log p_\theta(a_t \mid q, a_{<t}) .
# $$ (eq-14-loss)
#
# In tensors: `encode_qa` returns the ids `[B, T]` and targets `[B, T]` where position $t$ holds the label of
# token $t+1$ when that token is an answer token or `<eos>`, and $-100$ (ignored) elsewhere: the question and the
# padding are never scored.

# %%
print(f"vocabulary: {tok.vocab_size} tokens; first ten: {tok.itos[:10]}")
ids, targets = encode_qa(tok, [example], device=device)
words = [tok.itos[i] for i in ids[0].tolist()]
label = [tok.itos[t] if t != IGNORE else "-" for t in targets[0].tolist()]
for t, (w, y) in enumerate(zip(words, label)):
    print(f"{t:2d} {w:12s} -> {y}")
assert tok.decode(ids[0]) == example.questions[0] + " " + example.answer
# the scored labels are exactly the answer and <eos>
scored = targets[0][targets[0] != IGNORE].tolist()
assert scored == tok.encode(example.answer) + [tok.eos_id]

# %% [markdown]
# ## The transformer, from its equations
#
# The model is a decoder-only transformer {cite}`vaswani2017attention` in the pre-norm arrangement of
# {cite}`xiong2020layernorm` (GPT-2's): it maps token ids $x_1, \dots, x_T$ to logits over the vocabulary at every
# position, and position $t$ may use only positions $\le t$.
#
# **Embeddings.** $h^{(0)}_t = E[x_t] + P[t]$, a learned vector per token and per position, of width $d$.
#
# **Causal self-attention.** With $H$ heads of width $d_h = d/H$, each head projects the (normalised) states to
# queries, keys and values, $Q = hW_Q$, $K = hW_K$, $V = hW_V$ (each $[T, d_h]$), and mixes the values with weights
# that may only look back:
#
# $$
# \mathrm{Attn}(h)_t = \sum_{s \le t} \alpha_{ts} V_s ,\qquad
# \alpha_{ts} = \frac{\exp\!\big(Q_t \cdot K_s / \sqrt{d_h}\big)}{\sum_{s' \le t} \exp\!\big(Q_t \cdot K_{s'} /
# \sqrt{d_h}\big)} .
# $$ (eq-14-attention)
#
# In matrix form the sum over $s \le t$ is a softmax over a row of scores in which every entry $s > t$ has been
# set to $-\infty$ (the **causal mask**); $\exp(-\infty) = 0$ removes it from both sums. The heads' outputs are
# concatenated and projected by $W_O$. The $1/\sqrt{d_h}$ keeps the scores of order one when the entries of $Q$
# and $K$ are.
#
# **The block.** With LayerNorm $\mathrm{LN}$ (per token: subtract the mean over the $d$ features, divide by the
# standard deviation, then a learned gain and bias) and a two-layer MLP with GELU,
#
# $$
# u = h + \mathrm{Attn}\big(\mathrm{LN}_1(h)\big) W_O ,\qquad
# h' = u + \mathrm{GELU}\big(\mathrm{LN}_2(u) W_1 + b_1\big) W_2 + b_2 .
# $$ (eq-14-block)
#
# **The model.** $L$ blocks, a final LayerNorm and a linear head: $\mathrm{logits}_t = \mathrm{LN}_f(h^{(L)}_t)
# W_{\mathrm{head}}$. Everything acts on each token separately except attention, and attention looks only back:
# so the logits at $t$ depend on $x_{\le t}$ only, and every sample is independent of the others in the batch
# (no BatchNorm), which per-sample gradients need.
#
# Written out, on the weights of a `TinyGPT` (a dictionary of its parameters):

# %%
def layer_norm(x, gain, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # the biased variance, as LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * gain + bias


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))  # x * Phi(x), the exact GELU


def causal_attention(q, k, v):
    """Equation (eq-14-attention) for q, k, v of shape [B, H, T, d_h]."""
    T, d_h = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_h)  # [B, H, T, T]: row t, column s
    allowed = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()  # s <= t
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def gpt_logits(p, ids, n_layers, n_heads):
    """The model of equations (eq-14-attention) and (eq-14-block) on parameters p."""
    B, T = ids.shape
    h = p["tok.weight"][ids] + p["pos.weight"][:T]
    d = h.shape[-1]
    for i in range(n_layers):
        w = {k.removeprefix(f"blocks.{i}."): v for k, v in p.items()
             if k.startswith(f"blocks.{i}.")}
        x = layer_norm(h, w["ln1.weight"], w["ln1.bias"])
        q, k, v = (x @ w["attn.qkv.weight"].T + w["attn.qkv.bias"]).split(d, dim=-1)
        q, k, v = (t.reshape(B, T, n_heads, d // n_heads).transpose(1, 2)
                   for t in (q, k, v))
        a = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, d)
        u = h + a @ w["attn.proj.weight"].T + w["attn.proj.bias"]
        x = layer_norm(u, w["ln2.weight"], w["ln2.bias"])
        m = gelu(x @ w["mlp.0.weight"].T + w["mlp.0.bias"])
        h = u + m @ w["mlp.2.weight"].T + w["mlp.2.bias"]
    h = layer_norm(h, p["ln_f.weight"], p["ln_f.bias"])
    return h @ p["head.weight"].T


# %% [markdown]
# The library's `TinyGPT` computes the same thing with `torch.nn` modules. On a freshly initialised model and the
# forget questions, the two must agree to the rounding of float32: we evaluate the from-scratch version in float64,
# so the difference is the library's float32 error. A logit is the end of about $6L + 1$ matrix products (four
# linear maps per block plus attention's two products, and the head), each a sum of at most $K = \max(d_{ff}, V)$
# terms, whose relative error grows like $\varepsilon_{32}\sqrt K$ per product (rounding errors add in
# quadrature); we allow ten times that sum.

# %%
cfg = LMConfig.from_profile(profile)
torch.manual_seed(0)
fresh = TinyGPT(tok.vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers,
                n_heads=cfg.n_heads, max_len=cfg.max_len, d_ff=cfg.d_ff).to(device)
ids, _ = encode_qa(tok, task.forget[:8], device=device)
p64 = {k: v.detach().double() for k, v in fresh.named_parameters()}
mine = gpt_logits(p64, ids, cfg.n_layers, cfg.n_heads)
with torch.no_grad():
    lib = fresh(ids).double()
K = max(cfg.d_ff, tok.vocab_size)
rtol = 10 * 2.0**-23 * math.sqrt(K) * (6 * cfg.n_layers + 1)
err = ((mine - lib).abs().max() / lib.abs().max()).item()
print(f"max |difference| / max |logit| = {err:.1e} (allowed {rtol:.1e})")
assert err < rtol

# Causality: changing the tokens from position 6 on leaves positions 0-5 unchanged.
changed = ids.clone()
changed[:, 6:] = (changed[:, 6:] + 7) % tok.vocab_size
with torch.no_grad():
    assert torch.equal(fresh(changed)[:, :6], fresh(ids)[:, :6])
    assert not torch.allclose(fresh(changed)[:, 6:], fresh(ids)[:, 6:])

# %% [markdown]
# ## Training the original and the oracle
#
# Both models share one recipe (`LMConfig`, sized by the profile): AdamW {cite}`loshchilov2019adamw` on the mean
# of the loss {eq}`eq-14-loss` over minibatches, with a short linear warm-up and a cosine decay of the learning
# rate. The **original** is trained on the retain, forget and general facts, each in the two training paraphrases;
# the **oracle** on the retain and general facts only, from another initialisation and batch order, as retraining
# from scratch would be. Both are cached on disk by a hash of the task, the recipe and the seed, like the vision
# models of the earlier chapters, so the chapter trains them once.

# %%
print(cfg)
original = original_lm(task, cfg, seed=0, device=device, progress=True)
oracle = retrained_lm(task, cfg, seed=0, device=device, progress=True)
n_params = sum(p.numel() for p in original.parameters())
print(f"{n_params:,} parameters; training time (measured when trained, on this or "
      f"the machine that filled the cache): original {original.train_time_s:.1f} s, "
      f"oracle {oracle.train_time_s:.1f} s")

# the from-scratch model of the previous section reproduces the trained original too
p64 = {k: v.detach().double() for k, v in original.named_parameters()}
mine = gpt_logits(p64, ids, cfg.n_layers, cfg.n_heads)
with torch.no_grad():
    lib = original(ids).double()
err = ((mine - lib).abs().max() / lib.abs().max()).item()
print(f"trained original: max |difference| / max |logit| = {err:.1e}")
assert err < rtol

# %% [markdown]
# ## The metrics, from their definitions
#
# Each metric below is written from its definition, then compared with `unlearnlib.lm_metrics`, which computes
# the same number on whole batches.
#
# ### QA accuracy and greedy decoding
#
# The model answers by **greedy decoding**: feed `<bos> question`, append the most likely next token, repeat until
# it produces `<eos>`. The QA accuracy is the percentage of questions whose greedy answer equals the true answer.
# Greedy decoding reproduces an answer exactly if and only if, given the true prefix, every next-token argmax is
# the true token, so this is also "every scored token is the model's first choice".

# %%
def greedy_answer(model, question, max_new):
    ids = [tok.bos_id] + tok.encode(question)
    out = []
    for _ in range(max_new):
        with torch.no_grad():
            logits = model(torch.tensor([ids], device=device))
        nxt = int(logits[0, -1].argmax())
        if nxt == tok.eos_id:
            break
        ids.append(nxt)
        out.append(nxt)
    return tok.decode(out)


def budget(qas):
    # as many new tokens as the longest true answer, plus two (the library's rule)
    return max(len(tok.encode(q.answer)) for q in qas) + 2


def accuracy_from_scratch(model, qas):
    return 100 * np.mean([greedy_answer(model, q.questions[0], budget(qas)) == q.answer
                          for q in qas])


for name, model in (("original", original), ("oracle", oracle)):
    mine = accuracy_from_scratch(model, task.forget)
    lib = lm_metrics.qa_accuracy(model, task, "forget")
    print(f"{name}: forget accuracy {mine:.1f} % (library {lib:.1f} %)")
    assert math.isclose(mine, lib, rel_tol=1e-12)  # the same greedy answers
for q in task.forget[:5]:
    print(f"  {q.questions[0]:48s} true: {q.answer:12s} oracle: "
          f"{greedy_answer(oracle, q.questions[0], budget(task.forget))}")

# %% [markdown]
# ### Answer probability
#
# The probability of the whole answer, $P(a \mid q) = \prod_t p_\theta(a_t \mid q, a_{<t})$, shrinks with the
# length of the answer. TOFU normalises it per token, $P(a \mid q)^{1/|a|} = \exp(-\ell(\theta; q, a))$ with
# $\ell$ of {eq}`eq-14-loss` (our $|a|$ counts `<eos>`), and reports its mean over the questions:
#
# $$
# \mathrm{Prob}(S) = \frac{1}{|S|} \sum_{(q, a) \in S} P(a \mid q)^{1/|a|} .
# $$ (eq-14-prob)
#
# Each term is a product of scored next-token probabilities; written with the logits and the targets:

# %%
def answer_logprob_from_scratch(model, qas, answers=None):
    """Sum of log p(token) over the scored tokens, and their number, per QA."""
    ids, targets = encode_qa(tok, qas, device=device, answers=answers)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).double(), dim=-1)
    total, count = [], []
    for b in range(len(qas)):
        positions = (targets[b] != IGNORE).nonzero().flatten().tolist()
        total.append(sum(logp[b, t, targets[b, t]].item() for t in positions))
        count.append(len(positions))
    return np.array(total), np.array(count)


s, n = answer_logprob_from_scratch(original, task.forget)
prob_mine = np.mean(np.exp(s / n))
prob_lib = lm_metrics.answer_prob(original, task, "forget")
print(f"original: Prob(forget) {prob_mine:.4f} (library {prob_lib:.4f})")
# float32 log-softmax over V logits: relative error ~ 10 eps sqrt(V) per token
assert abs(prob_mine - prob_lib) < 1e-4

# %% [markdown]
# ### ROUGE-L recall
#
# Accuracy gives no credit to "moss green" for "sea green". TOFU scores the generated answer $g$ against the true
# answer $a$ by ROUGE-L recall, the length of their **longest common subsequence** (words in the same order, not
# necessarily adjacent) over the length of the true answer:
#
# $$
# \text{ROUGE-L}(g, a) = \frac{\mathrm{LCS}(g, a)}{|a|},\qquad
# \mathrm{LCS}_{i,j} = \begin{cases} \mathrm{LCS}_{i-1,j-1} + 1 & g_i = a_j \\
# \max(\mathrm{LCS}_{i-1,j}, \mathrm{LCS}_{i,j-1}) & \text{otherwise.} \end{cases}
# $$ (eq-14-rouge)

# %%
def lcs(x, y):
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            if x[i - 1] == y[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def rouge_l_from_scratch(generated, answer):
    return lcs(generated.split(), answer.split()) / len(answer.split())


assert rouge_l_from_scratch("the old brown fox", "the brown dog") == 2 / 3
assert rouge_l_from_scratch("sea green", "moss green") == 1 / 2
mine = np.mean([rouge_l_from_scratch(
    greedy_answer(oracle, q.questions[0], budget(task.forget)), q.answer)
    for q in task.forget])
lib = lm_metrics.rouge_l(oracle, task, "forget")
print(f"oracle: ROUGE-L recall on the forget set {mine:.3f} (library {lib:.3f})")
assert abs(mine - lib) < 1e-12

# %% [markdown]
# ### The truth ratio
#
# A model can stop producing an answer and still prefer it. TOFU's **truth ratio** compares the normalised
# probability of false answers $\hat a \in A_{\mathrm{pert}}$ with that of the truth:
#
# $$
# R(q) = \frac{\frac{1}{|A_{\mathrm{pert}}|}\sum_{\hat a \in A_{\mathrm{pert}}} P(\hat a \mid q)^{1/|\hat a|}}
# {P(\tilde a \mid q)^{1/|\tilde a|}} .
# $$ (eq-14-truth-ratio)
#
# In TOFU $\tilde a$ is a *paraphrase* of the true answer, so that a model is not rewarded for reciting the exact
# training string. Our answers are single values from closed lists with no paraphrase, so $\tilde a = a$ (a
# simplification to keep in mind: $R$ here also measures verbatim recall). $R \ll 1$: the model knows the truth;
# $R \approx 1$: it cannot tell true from false. TOFU summarises $R$ over the forget set by
# $\frac{1}{|S|}\sum \min(R, 1/R)$ (1 for a model indifferent between the answers, as one that never saw them
# should roughly be) and over retained knowledge by $\frac{1}{|S|}\sum \max(0, 1 - R)$ (1 for a model sure of the
# truth). TOFU's released code averages the perturbed answers' log-probabilities (a geometric mean) where the paper
# writes the arithmetic mean; we follow the paper.

# %%
def truth_ratios_from_scratch(model, qas):
    s_true, n_true = answer_logprob_from_scratch(model, qas)
    k = len(qas[0].perturbed)
    pert = [answer_logprob_from_scratch(model, qas, [q.perturbed[j] for q in qas])
            for j in range(k)]
    mean_pert = np.mean([np.exp(s / n) for s, n in pert], axis=0)
    return mean_pert / np.exp(s_true / n_true)


for name, model in (("original", original), ("oracle", oracle)):
    mine = truth_ratios_from_scratch(model, task.forget)
    lib = lm_metrics.truth_ratios(model, task, "forget").cpu().numpy()
    print(f"{name}: median R on the forget set {np.median(mine):.3g}")
    # float32 log-softmax of logits of size ~15: ~eps*15 per token, a few 1e-6 in R
    np.testing.assert_allclose(mine, lib, rtol=1e-4)
tr_original = lm_metrics.truth_ratios(original, task, "forget").cpu().numpy()
tr_oracle = lm_metrics.truth_ratios(oracle, task, "forget").cpu().numpy()

# %% [markdown]
# ### Forget quality: a two-sample Kolmogorov-Smirnov test
#
# TOFU asks whether the unlearned model's truth ratios on the forget set look like those of the oracle, and
# answers with the **two-sample Kolmogorov-Smirnov test**. With $F_X$ and $F_Y$ the empirical distribution functions
# of the $m$ and $n$ truth ratios of the two models, the statistic is
#
# $$
# D = \sup_x \big|F_X(x) - F_Y(x)\big| ,
# $$ (eq-14-ks)
#
# and the **forget quality** is the p-value $P(D_{\text{null}} \ge D)$ under the hypothesis that both samples come
# from one continuous distribution: near 1 when the model is indistinguishable from the oracle, tiny when it is
# not. Under that hypothesis every interleaving of the $m + n$ sorted values is equally likely: a path on the grid
# from $(0, 0)$ to $(m, n)$, one step right per value of $X$ and one step up per value of $Y$, all
# $\binom{m+n}{m}$ paths equally likely. At the point $(i, j)$ the difference of the two distribution functions is
# $i/m - j/n$, so $D_{\text{null}} \ge D$ exactly when the path touches a point with $|i n - j m| \ge D\,mn$.
# Counting the paths that never do, with exact integers:

# %%
def ks_from_scratch(x, y):
    x, y = np.sort(x), np.sort(y)
    grid = np.concatenate([x, y])
    d = np.max(np.abs(np.searchsorted(x, grid, "right") / len(x)
                      - np.searchsorted(y, grid, "right") / len(y)))
    m, n = len(x), len(y)
    bound = round(d * m * n)  # D m n is an integer: D is a multiple of 1 / lcm(m, n)
    inside = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(m + 1):
        for j in range(n + 1):
            if abs(i * n - j * m) >= bound and (i, j) != (0, 0) or bound == 0:
                continue  # the path has reached D here (or D = 0: every path does)
            inside[i][j] = 1 if i == j == 0 else (
                (inside[i - 1][j] if i else 0) + (inside[i][j - 1] if j else 0))
    p = 1 - Fraction(inside[m][n], math.comb(m + n, m))
    return d, float(p)


d, p = ks_from_scratch(tr_original, tr_oracle)
print(f"original vs oracle: D = {d:.2f}, forget quality = {p:.3g}")
assert math.isclose(p, lm_metrics.forget_quality(tr_original, tr_oracle), rel_tol=1e-9)
assert math.isclose(p, stats.ks_2samp(tr_original, tr_oracle, method="exact").pvalue,
                    rel_tol=1e-6)
# two halves of the oracle's own truth ratios, two samples of one distribution
half = len(tr_oracle) // 2
d, p = ks_from_scratch(tr_oracle[:half], tr_oracle[half:])
print(f"oracle, first half vs second half: D = {d:.2f}, p = {p:.2f}")
assert math.isclose(p, lm_metrics.ks_2samp_pvalue(tr_oracle[:half], tr_oracle[half:]),
                    rel_tol=1e-9)

# %% [markdown]
# ### Min-K% Prob and PrivLeak
#
# Membership inference asks whether a text was in the training data. **Min-K% Prob** {cite}`shi2024mink` scores a
# text by the mean log-probability of its $k\,\%$ least likely tokens: a text seen in training has few surprising
# tokens. With $\mathrm{Min}_k(x)$ the set of the $\max(1, \lfloor k n \rfloor)$ tokens of lowest probability among
# the $n$ scored ones,
#
# $$
# \text{Min-K\%}(x) = \frac{1}{|\mathrm{Min}_k(x)|} \sum_{x_t \in \mathrm{Min}_k(x)} \log p_\theta(x_t \mid x_{<t}) .
# $$ (eq-14-mink)
#
# We score the answer tokens and `<eos>`, the only tokens trained. MUSE {cite}`shi2024muse` turns the attack into a
# leakage measure: the AUC of Min-K% separating the forget set (positives) from never-trained **holdout** facts,
# compared with the oracle's, for which both sets are unseen,
#
# $$
# \mathrm{PrivLeak} = \frac{\mathrm{AUC}_{\text{model}} - \mathrm{AUC}_{\text{oracle}}}{\mathrm{AUC}_{\text{oracle}}}
# \times 100 \,\% .
# $$ (eq-14-privleak)
#
# PrivLeak is 0 for the oracle, strongly positive when the forget set still looks trained on, and negative when
# unlearning has pushed the forget set *below* never-seen data, which is itself a signal an attacker can read.

# %%
def min_k_from_scratch(model, qas, k=0.2):
    ids, targets = encode_qa(tok, qas, device=device)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).double(), dim=-1)
    scores = []
    for b in range(len(qas)):
        positions = (targets[b] != IGNORE).nonzero().flatten().tolist()
        lp = sorted(logp[b, t, targets[b, t]].item() for t in positions)
        count = max(1, math.floor(k * len(lp)))
        scores.append(np.mean(lp[:count]))
    return np.array(scores)


def auc_from_scratch(pos, neg):
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


aucs = {}
for name, model in (("original", original), ("oracle", oracle)):
    s_f = min_k_from_scratch(model, task.forget)
    s_h = min_k_from_scratch(model, task.holdout)
    np.testing.assert_allclose(
        s_f, lm_metrics.min_k_prob(model, task, "forget").cpu().numpy(), rtol=1e-4,
        atol=1e-5)
    aucs[name] = auc_from_scratch(s_f, s_h)
    assert abs(aucs[name] - lm_metrics.mia_auc(model, task)) < 1e-9
    print(f"{name}: Min-K% AUC forget vs holdout = {aucs[name]:.3f}")
leak = (aucs["original"] - aucs["oracle"]) / aucs["oracle"] * 100
print(f"PrivLeak of the original: {leak:.0f} %")
assert math.isclose(leak, lm_metrics.privleak(aucs["original"], aucs["oracle"]))

# %% [markdown]
# The comparison with the library above uses an absolute tolerance as well: a Min-K% score is a log-probability
# near 0 for well-learned tokens, where a relative comparison would magnify the float32 rounding of the library.
#
# ### Utility
#
# Forgetting is easy if the model may forget everything. TOFU's **model utility** is the harmonic mean of the
# probability, ROUGE-L and truth score $\max(0, 1 - R)$ on the knowledge the model must keep; we take those three
# on the retain QAs and on the general facts, six numbers in $[0, 1]$:
#
# $$
# U = 100\,\% \cdot \frac{6}{\sum_{i=1}^{6} 1/u_i} .
# $$ (eq-14-utility)
#
# The harmonic mean is near 0 as soon as one of the six is: utility cannot hide a collapse of one kind of knowledge
# behind the others.

# %%
def utility_from_scratch(model):
    parts = []
    for split in ("retain", "general"):
        qas = getattr(task, split)
        s, n = answer_logprob_from_scratch(model, qas)
        r = truth_ratios_from_scratch(model, qas)
        rouge = [rouge_l_from_scratch(greedy_answer(model, q.questions[0], budget(qas)),
                                      q.answer) for q in qas]
        parts += [np.mean(np.exp(s / n)), np.mean(rouge), np.mean(np.maximum(0, 1 - r))]
    return 100 * len(parts) / sum(1 / u for u in parts)


u_mine = utility_from_scratch(oracle)
u_lib = lm_metrics.utility(oracle, task)
print(f"oracle utility {u_mine:.2f} % (library {u_lib:.2f} %)")
assert abs(u_mine - u_lib) < 1e-3

# %% [markdown]
# ## The original against the oracle
#
# `lm_metrics.evaluate_lm` computes every metric above into one row, the row of the facts track of the benchmark.
# Called on the oracle without a reference, it gives the oracle's own row (forget quality 1 and PrivLeak 0 by
# definition); called on another model with the oracle's row as reference, it adds the forget quality, the
# PrivLeak and `lm_gap`, the mean absolute difference to the oracle over forget accuracy, retain accuracy, ROUGE-L
# and utility (the language-model counterpart of the Avg. Gap of the vision chapters).

# %%
ref = lm_metrics.evaluate_lm(oracle, task)
row = lm_metrics.evaluate_lm(original, task, reference=ref)
keys = ["forget_acc", "retain_acc", "general_acc", "rouge_l", "truth_ratio",
        "forget_quality", "mia_auc", "privleak", "utility", "lm_gap"]
print(f"{'metric':15s} {'original':>10s} {'oracle':>10s}")
for key in keys:
    print(f"{key:15s} {row[key]:10.3g} {ref[key]:10.3g}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
shown = ["forget_acc", "rouge_l", "retain_acc", "utility", "mia_auc"]
x = np.arange(len(shown))
axes[0].bar(x - 0.2, [row[k] for k in shown], 0.4, label="original")
axes[0].bar(x + 0.2, [ref[k] for k in shown], 0.4, label="oracle")
axes[0].axhline(guess, color="gray", lw=0.8, ls="--", label="guessing level")
axes[0].set_xticks(x, shown, rotation=20)
axes[0].set_ylabel("%")
axes[0].set_ylim(0, 125)
axes[0].legend(fontsize=8, ncol=3, loc="upper center")
axes[0].set_title("10 % of the people: rates")
bins = np.linspace(-5, 5, 31)
axes[1].hist(np.log10(tr_original), bins, alpha=0.6, label="original")
axes[1].hist(np.log10(tr_oracle), bins, alpha=0.6, label="oracle")
axes[1].set_xlabel("log10 truth ratio R on the forget set")
axes[1].legend(fontsize=8)
axes[1].set_title(f"forget quality of the original: {row['forget_quality']:.1e}")
for name, model, color in (("original", original, "C0"), ("oracle", oracle, "C1")):
    for split, ls in (("forget", "-"), ("holdout", "--")):
        # the empirical distribution function: the AUC compares two such curves
        scores = np.sort(lm_metrics.min_k_prob(model, task, split).cpu().numpy())
        axes[2].step(scores, np.arange(1, len(scores) + 1) / len(scores), where="post",
                     color=color, ls=ls, label=f"{name}: {split}")
axes[2].set_xlabel("Min-K% Prob (k = 20 %)")
axes[2].set_ylabel("fraction of QAs below")
axes[2].legend(fontsize=7)
axes[2].set_title(f"PrivLeak of the original: {row['privleak']:.0f} %")
fig.tight_layout()
plt.show()

# %% [markdown]
# The two models agree on everything they were both trained on and disagree on everything about the forgotten
# people, which is what makes the pair a useful yardstick.
#
# - **Accuracy.** The original answers every forget question; the oracle answers about as many as a person-blind
#   guesser would (the dashed line). On 50 questions a binomial count at the guessing level has a standard
#   deviation of about 4 points, so we allow the oracle four of them above it. Both models answer every retain
#   question and every general fact: the oracle lost nothing else.
# - **Truth ratio and forget quality.** The original's truth ratios on the forget set are far below 1 (it prefers
#   the truth by a factor of ten or more on nearly every question); the oracle's spread over orders of magnitude on
#   both sides of 1 (it has no reason to prefer the true value; {ref}`ex-14-oracle-ratio` asks why they are not all
#   near 1). The KS test separates the two with a tiny p-value; the conventional threshold of 0.05 is far above it.
# - **Min-K% and PrivLeak.** For the oracle the forget people are as unseen as the holdout people, so its AUC is
#   chance up to sampling noise (the AUC of two samples of 50 and 100 from one distribution has a standard deviation
#   of $\sqrt{(m + n + 1)/(12mn)} \approx 0.05$); the original separates them almost perfectly.
# - **Utility** is the same for both within a few points: removing 10 % of the people costs no general knowledge.

# %%
n_f = len(task.forget)
sd_guess = 100 * math.sqrt(guess / 100 * (1 - guess / 100) / n_f)
assert row["forget_acc"] >= 95 and ref["forget_acc"] <= guess + 4 * sd_guess
kept = [m[k] for m in (row, ref) for k in ("retain_acc", "general_acc")]
assert min(kept) >= 95
assert ref["forget_quality"] == 1.0 and row["forget_quality"] < 1e-3
assert np.mean(tr_original < 0.1) > 0.9
assert min(np.mean(tr_oracle < 1), np.mean(tr_oracle > 1)) > 0.1
assert row["truth_ratio"] < ref["truth_ratio"]
n_h = len(task.holdout)
sd_auc = math.sqrt((n_f + n_h + 1) / (12 * n_f * n_h))
assert abs(ref["_mia_auc"] - 0.5) < 4 * sd_auc and row["_mia_auc"] > 0.9
# the two bounds above give PrivLeak > (0.9 - 0.7) / 0.7 = 28 %
assert row["privleak"] > 28
assert abs(row["utility"] - ref["utility"]) < 5
assert min(row["utility"], ref["utility"]) > 80

# %% [markdown]
# One more measurement prepares chapter 15. The third paraphrase of each question was never trained. How often does
# each model answer it?

# %%
for name, model in (("original", original), ("oracle", oracle)):
    para = {s: lm_metrics.qa_accuracy(model, task, s, paraphrase=-1)
            for s in ("forget", "retain")}
    print(f"{name}: held-out paraphrase accuracy, forget {para['forget']:.0f} %, "
          f"retain {para['retain']:.0f} %")
para_original = lm_metrics.qa_accuracy(original, task, "forget", paraphrase=-1)
para_oracle = lm_metrics.qa_accuracy(oracle, task, "forget", paraphrase=-1)
assert para_original > para_oracle

# %% [markdown]
# The original transfers part of what it memorised to a question it never saw asked that way: its knowledge of a
# person is not only a set of memorised strings. How much it transfers depends strongly on the training run: over
# seeds 0-2 of the ci profile the original answered 12 to 80 % of the held-out paraphrases of the forget questions,
# the oracle 4 % (the guessing level) on every seed. An unlearning method that only breaks the trained strings would
# leave that part in place, and chapter 15 checks it.
#
# ## Summary
#
# - **The facts**: fictitious people with five attributes drawn from closed lists, asked in three paraphrases (two
#   trained, one held out), with four false answers per question; general facts that every model keeps; holdout
#   people that no model sees. A word-level tokenizer over the closed vocabulary; the loss {eq}`eq-14-loss` scores
#   the answer tokens and `<eos>` only.
# - **The model**: a pre-norm decoder-only transformer, {eq}`eq-14-attention` and {eq}`eq-14-block`, written out in
#   a dozen lines and equal to `TinyGPT` to float32 rounding. The causal mask makes position $t$ blind to later
#   tokens, exactly.
# - **The original and the oracle** of the 10 % split train in seconds on one core and are cached; the original
#   memorises every trained fact.
# - **The metrics** follow their definitions: greedy QA accuracy, answer probability {eq}`eq-14-prob`, ROUGE-L
#   recall {eq}`eq-14-rouge`, TOFU's truth ratio {eq}`eq-14-truth-ratio` (with the true answer in place of its
#   paraphrase) and forget quality, the exact KS p-value {eq}`eq-14-ks`; Min-K% Prob {eq}`eq-14-mink`, MUSE's
#   PrivLeak {eq}`eq-14-privleak` and a harmonic-mean utility {eq}`eq-14-utility`.
# - **The gap to cover**: the original knows every forget fact, the oracle guesses; the KS test separates their
#   truth ratios with a tiny p-value; the original's forget set is nearly perfectly separable from unseen facts;
#   both keep their retained and general knowledge.

# %% [markdown]
# ## Exercises
#
# The exercises practise the chapter's metrics and its attention. The three graded exercises (the truth ratio,
# ROUGE-L recall and causal attention) come with tests.

# %% tags=["exercise-setup"]
import math

import numpy as np
import torch

from unlearnlib import lm_metrics as ex_lm_metrics
from unlearnlib.facts import encode_qa as ex_encode_qa
from unlearnlib.facts import make_facts as ex_make_facts
from unlearnlib.facts import make_facts_task as ex_make_facts_task
from unlearnlib.transformer import TinyGPT as ex_TinyGPT
from unlearnlib.transformer import answer_logprob as ex_answer_logprob

# A small facts task and an untrained (seeded) model: its likelihoods are not
# degenerate, so every formula below is tested on non-trivial numbers.
ex_task = ex_make_facts_task(ex_make_facts(10, seed=0), 0.2, seed=0)
ex_qas = ex_task.forget + ex_task.general[:3]
torch.manual_seed(0)
ex_model = ex_TinyGPT(ex_task.tokenizer.vocab_size, d_model=32, n_layers=1,
                      n_heads=2, max_len=24)

# %% [markdown]
# ```{exercise} The truth ratio
# :label: ex-14-truth-ratio
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `truth_ratio(logp_true, n_true, logp_pert, n_pert)` that returns TOFU's truth ratio
# {eq}`eq-14-truth-ratio` of every question from log-likelihoods: `logp_true[b]` is $\log P(a \mid q_b)$, the
# SUM of the log-probabilities of the `n_true[b]` scored tokens of the true answer, and `logp_pert[b, j]`,
# `n_pert[b, j]` the same for the $j$-th perturbed answer. Normalise each probability per token and average the
# perturbed answers' normalised probabilities (the arithmetic mean, as in the equation).
# ```


# %% tags=["remove-cell", "graded"]
def truth_ratio(logp_true, n_true, logp_pert, n_pert):
    """TOFU's truth ratio per question.

    logp_true: [B] float tensor, log P(true answer | q) summed over its tokens;
    n_true: [B] number of those tokens; logp_pert, n_pert: [B, K] the same for the
    K perturbed answers. Returns a float tensor [B]:
    mean_j P(pert_j | q)^(1/n_pert_j) / P(true | q)^(1/n_true).
    """
    # BEGIN SOLUTION
    pert = torch.exp(logp_pert.double() / n_pert).mean(dim=1)
    return pert / torch.exp(logp_true.double() / n_true)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# Two questions, two perturbed answers of different lengths. Question 0: true
# P = 0.25 over 2 tokens (0.5 per token); perturbed 0.01 over 2 tokens (0.1) and
# 0.3 over 1 token (0.3): R = (0.1 + 0.3) / 2 / 0.5 = 0.4.
ex_lt = torch.log(torch.tensor([0.25, 0.5]))
ex_nt = torch.tensor([2, 1])
ex_lp = torch.log(torch.tensor([[0.01, 0.3], [0.5, 0.125]]))
ex_np = torch.tensor([[2, 1], [1, 3]])
ex_r = truth_ratio(ex_lt, ex_nt, ex_lp, ex_np)
assert ex_r.shape == (2,)
# question 1: (0.5 + 0.5) / 2 / 0.5 = 1; float32 logs: relative error ~1e-7
assert torch.allclose(ex_r.double(), torch.tensor([0.4, 1.0], dtype=torch.float64),
                      rtol=1e-5, atol=0)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Against the library on the setup model's likelihoods of the true and the four
# perturbed answers (answers of one to three words, plus <eos>).
ex_tok = ex_task.tokenizer
ex_ids, ex_tg = ex_encode_qa(ex_tok, ex_qas)
ex_lt = ex_answer_logprob(ex_model, ex_ids, ex_tg).detach()
ex_nt = (ex_tg != -100).sum(1)
ex_lp, ex_np = [], []
for ex_j in range(4):
    ex_ans = [q.perturbed[ex_j] for q in ex_qas]
    ex_ids, ex_tg = ex_encode_qa(ex_tok, ex_qas, answers=ex_ans)
    ex_lp.append(ex_answer_logprob(ex_model, ex_ids, ex_tg).detach())
    ex_np.append((ex_tg != -100).sum(1))
ex_r = truth_ratio(ex_lt, ex_nt, torch.stack(ex_lp, 1), torch.stack(ex_np, 1))
ex_ref = ex_lm_metrics.truth_ratios(ex_model, ex_qas, tokenizer=ex_tok)
assert torch.allclose(ex_r.double(), ex_ref, rtol=1e-4, atol=0)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Unequal lengths and probabilities spread over orders of magnitude (per-token
# probabilities 0.9 .. 1e-3), against a float64 computation from the definition.
ex_g = torch.Generator().manual_seed(1)
ex_nt = torch.randint(1, 4, (5,), generator=ex_g)
ex_np = torch.randint(1, 4, (5, 3), generator=ex_g)
ex_lt = -7 * torch.rand(5, generator=ex_g, dtype=torch.float64) * ex_nt
ex_lp = -7 * torch.rand(5, 3, generator=ex_g, dtype=torch.float64) * ex_np
ex_want = (ex_lp / ex_np).exp().mean(1) / (ex_lt / ex_nt).exp()
ex_r = truth_ratio(ex_lt, ex_nt, ex_lp, ex_np)
assert torch.allclose(ex_r.double(), ex_want, rtol=1e-6, atol=0)

# %% [markdown]
# ```{exercise} ROUGE-L recall
# :label: ex-14-rouge-l
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `rouge_l_recall(generated, reference)` for two lists of words: the length of their longest common
# subsequence {eq}`eq-14-rouge` (same order, not necessarily adjacent) divided by the length of the reference.
# An empty generated answer scores 0.
# ```


# %% tags=["remove-cell", "graded"]
def rouge_l_recall(generated, reference):
    """LCS(generated, reference) / len(reference), for lists of words (strings).

    reference is not empty; generated may be. Returns a float in [0, 1].
    """
    # BEGIN SOLUTION
    table = [[0] * (len(reference) + 1) for _ in range(len(generated) + 1)]
    for i, g in enumerate(generated, 1):
        for j, r in enumerate(reference, 1):
            table[i][j] = (table[i - 1][j - 1] + 1 if g == r
                           else max(table[i - 1][j], table[i][j - 1]))
    return table[-1][-1] / len(reference)
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# "the brown" is common in order: 2 of the reference's 3 words.
ex_v = rouge_l_recall("the old brown fox".split(), "the brown dog".split())
assert abs(ex_v - 2 / 3) < 1e-12
assert rouge_l_recall([], ["amber"]) == 0

# %% tags=["remove-cell", "graded-test", "hidden"]
# A subsequence that is not contiguous (a c e), a word repeated, and a candidate
# longer than the reference: recall divides by the reference's length.
ex_cases = [
    ("a x c y e".split(), "a c e".split(), 1.0),
    ("a b a b".split(), "b a".split(), 1.0),
    ("a b c d e f".split(), "f a".split(), 0.5),
    ("c b a".split(), "a b c d".split(), 0.25),
]
for ex_g, ex_ref, ex_want in ex_cases:
    assert abs(rouge_l_recall(ex_g, ex_ref) - ex_want) < 1e-12, (ex_g, ex_ref)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Against the library's batched LCS on random word lists over a small vocabulary
# (so that words repeat and common subsequences are long).
ex_g = torch.Generator().manual_seed(4)
for ex_i in range(20):
    ex_a = torch.randint(0, 4, (int(torch.randint(1, 8, (1,), generator=ex_g)),),
                         generator=ex_g)
    ex_b = torch.randint(0, 4, (int(torch.randint(1, 8, (1,), generator=ex_g)),),
                         generator=ex_g)
    ex_want = ex_lm_metrics.rouge_l_recall(ex_a[None], ex_b[None]).item()
    ex_v = rouge_l_recall([str(w) for w in ex_a.tolist()],
                          [str(w) for w in ex_b.tolist()])
    assert abs(ex_v - ex_want) < 1e-12, (ex_a, ex_b)

# %% [markdown]
# ```{exercise} Causal attention
# :label: ex-14-causal-attention
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Write `causal_attention(q, k, v)` for queries, keys and values of shape `[B, H, T, d]`: equation
# {eq}`eq-14-attention`, the scaled dot-product attention in which position $t$ attends to positions $s \le t$
# only. Return `[B, H, T, d]`.
# ```


# %% tags=["remove-cell", "graded"]
def causal_attention(q, k, v):
    """softmax(q k^T / sqrt(d) with entries s > t masked out) v, per batch and head.

    q, k, v: float tensors [B, H, T, d]. Returns [B, H, T, d].
    """
    # BEGIN SOLUTION
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    allowed = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v
    # END SOLUTION


# %% tags=["remove-cell", "graded-test"]
# One head, three positions, d = 2: position 0 sees only itself, so its output is
# v_0 whatever the scores; position 2 averages all three values with softmax weights.
ex_q = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]])
ex_k = torch.tensor([[[[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]]]])
ex_v = torch.tensor([[[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]])
ex_out = causal_attention(ex_q, ex_k, ex_v)
assert ex_out.shape == (1, 1, 3, 2)
assert torch.allclose(ex_out[0, 0, 0], ex_v[0, 0, 0], atol=1e-6)
ex_w = torch.softmax(torch.tensor([1.0, 2.0, 0.0]) / math.sqrt(2), 0)
assert torch.allclose(ex_out[0, 0, 2], ex_w @ ex_v[0, 0], atol=1e-5)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Random inputs with B = 2, H = 3, T = 5, d = 4 (non-square shapes), against
# PyTorch's scaled_dot_product_attention.
ex_g = torch.Generator().manual_seed(2)
ex_q, ex_k, ex_v = (torch.randn(2, 3, 5, 4, generator=ex_g) for _ in range(3))
ex_out = causal_attention(ex_q, ex_k, ex_v)
ex_ref = torch.nn.functional.scaled_dot_product_attention(
    ex_q, ex_k, ex_v, is_causal=True)
# float32, sums of 5 terms of size ~3: absolute error ~1e-6
assert torch.allclose(ex_out, ex_ref, atol=1e-5, rtol=0)

# %% tags=["remove-cell", "graded-test", "hidden"]
# Causality: changing the keys and values at positions >= 3 leaves outputs 0..2
# unchanged, and changes output 3.
ex_g = torch.Generator().manual_seed(3)
ex_q, ex_k, ex_v = (torch.randn(1, 2, 6, 3, generator=ex_g) for _ in range(3))
ex_k2, ex_v2 = ex_k.clone(), ex_v.clone()
ex_k2[:, :, 3:] += 1.0
ex_v2[:, :, 3:] -= 2.0
ex_a = causal_attention(ex_q, ex_k, ex_v)
ex_b = causal_attention(ex_q, ex_k2, ex_v2)
assert torch.allclose(ex_a[:, :, :3], ex_b[:, :, :3], atol=1e-6)
assert not torch.allclose(ex_a[:, :, 3], ex_b[:, :, 3], atol=1e-3)

# %% [markdown]
# ```{exercise} The p-value of two separated samples
# :label: ex-14-ks-separated
#
# *derivation · no computing*
#
# The truth ratios of a model that remembers every forget fact all lie below those of the oracle. Show that for
# two samples of size $n$ with every value of one below every value of the other, the two-sided KS p-value of
# {eq}`eq-14-ks` is $2/\binom{2n}{n}$. What is it for $n = 50$, and what does that say about comparing forget
# qualities of methods that all fail to forget?
# ```

# %% [markdown]
# ```{solution-start} ex-14-ks-separated
# :class: dropdown
# ```
# Separated samples give $D = 1$, and under the null a path of the grid reaches $|i/n - j/n| = 1$ only at the
# corners $(n, 0)$ or $(0, n)$: the paths that take all $n$ steps of one sample first. There are two of the
# $\binom{2n}{n}$, so $p = 2/\binom{2n}{n}$; for $n = 50$ that is $2 \cdot 10^{-29}$. Every model whose truth ratios
# are all below the oracle's gets exactly this value, however far below: the forget quality stops discriminating
# among methods that fail, and differences of $10^{-29}$ against $10^{-25}$ carry little meaning beyond "rejected".
# TOFU plots it on a log scale for this reason.

# %%
separated = lm_metrics.ks_2samp_pvalue(np.arange(50), np.arange(50) + 50)
print(2 / math.comb(100, 50), separated)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Which tokens should Min-K% score?
# :label: ex-14-mink-tokens
#
# *concept · no computing*
#
# The chapter's Min-K% scores the answer tokens and `<eos>` only. Predict what happens to the AUC of the original
# (forget against holdout) if it scored the question tokens as well, with $k = 20\,\%$, and why.
# ```

# %% [markdown]
# ```{solution-start} ex-14-mink-tokens
# :class: dropdown
# ```
# The question tokens were never trained as targets (their labels are $-100$), so the model predicts a person's
# name from the template words no better for a trained person than for a holdout person: the name tokens have
# log-probabilities of about $-\log(\text{number of names})$ in both sets. With $k = 20\,\%$ of about twelve
# tokens, the two least likely tokens are these name tokens, for members and non-members alike, and Min-K% sees
# only them: the AUC falls towards 0.5 although the model still knows every answer. Scoring the whole text is right
# for pretraining data, where every token was trained; here the membership signal is in the answer.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The choice of k
# :label: ex-14-mink-k
#
# *experiment · about 1 CPU minute*
#
# Compute the Min-K% AUC of the original and of the oracle (forget against holdout) for $k \in \{0.2, 0.5, 1\}$
# ($k = 1$ is the mean log-likelihood, the loss attack). Does $k$ matter for these models? Why might it matter more
# for long texts?
# ```

# %% [markdown]
# ```{solution-start} ex-14-mink-k
# :class: dropdown
# ```
# Our answers have two to four scored tokens, so $\lfloor k n \rfloor$ is 1 token up to $k = 0.25$ and 2 at $k =
# 0.5$: $k$ barely changes the score. Over seeds 0-2 of the ci profile the original's AUC is 0.98-1.00 for every $k$
# and the oracle's 0.47-0.51. In a long text most tokens are predictable from the context for members
# and non-members alike (function words, formulaic phrases); averaging all of them (the loss attack) dilutes the
# few surprising tokens that carry the membership signal, which is the case Min-K% was designed for.

# %%
for k in (0.2, 0.5, 1.0):
    auc_k = [lm_metrics.auc(lm_metrics.min_k_prob(m, task, "forget", k),
                            lm_metrics.min_k_prob(m, task, "holdout", k))
             for m in (original, oracle)]
    print(f"k = {k}: AUC original {auc_k[0]:.3f}, oracle {auc_k[1]:.3f}")

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The oracle's truth ratio is not 1
# :label: ex-14-oracle-ratio
#
# *concept · no computing*
#
# The oracle never saw the forget people, yet its truth ratios on the forget set are spread over orders of
# magnitude around 1, not concentrated at 1. Give two reasons, one from the normalisation $P^{1/|a|}$ and one from
# what the oracle did learn about the attribute values.
# ```

# %% [markdown]
# ```{solution-start} ex-14-oracle-ratio
# :class: dropdown
# ```
# (1) The per-token normalisation does not make answers of different lengths comparable for a model that guesses:
# "the lute" has a first token ("the") that every instrument shares and that the model predicts with certainty,
# so the normalised probability of a two-word value is the square root of a product with one factor near 1,
# larger than that of a one-word value of the same attribute with the same total probability. Perturbed answers
# with more words than the truth raise $R$, fewer lower it. (2) The oracle learned the empirical frequencies of
# the values among the retain people (and, through shared first or family names, spurious associations); a true
# value that is rare in the retain set gets a low probability and $R > 1$, a frequent one $R < 1$. The spread is why
# TOFU compares distributions (the KS test) rather than checking $R = 1$.

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ### Projects

# %% [markdown]
# ```{exercise} The full profile
# :label: ex-14-full-profile
#
# *project · about 12 CPU minutes*
#
# Run the chapter with `UNLEARN_PROFILE=full` (400 people, a four-layer model of width 128). Does the original still
# memorise every trained fact? Does the held-out paraphrase accuracy of the original rise with the model's size,
# and does the oracle's forget accuracy stay at the guessing level?
# ```

# %% [markdown]
# ```{solution-start} ex-14-full-profile
# :class: dropdown
# ```
# A sketch: set the profile before importing the library's sizes, then rerun the measurement cells. Expect the
# oracle's forget accuracy to stay at the guessing level (the values are independent of the names at any size);
# whether the paraphrase accuracy rises is the open question of the project. For scale: with seed 0, the full
# original trained in about 5.5 CPU minutes on one core and answered every trained question (100 %).

# %% tags=["skip-execution"]
full_cfg = LMConfig.from_profile("full")
full_task = make_facts_task(make_facts(400, seed=0), 0.1, seed=0)
full_original = original_lm(full_task, full_cfg, device=device, progress=True)
full_oracle = retrained_lm(full_task, full_cfg, device=device, progress=True)
full_ref = lm_metrics.evaluate_lm(full_oracle, full_task)
print(lm_metrics.evaluate_lm(full_original, full_task, reference=full_ref))
print(lm_metrics.qa_accuracy(full_original, full_task, "forget", paraphrase=-1))

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Quiz
#
# 1. The training targets of `<bos> In which city does Bane Koek live? Ivory Bay <eos>` score (a) every token;
#    (b) "Ivory", "Bay" and `<eos>`; (c) "Ivory" and "Bay" only.
# 2. In causal attention the score of position $t$ for position $s > t$ is set to $-\infty$ before the softmax
#    because (a) it makes the softmax weight exactly 0; (b) it makes the gradient smaller; (c) it normalises the
#    scores.
# 3. A model's truth ratio on a question is 0.02. It (a) prefers the perturbed answers; (b) prefers the true answer
#    about fifty times over the average false one (per token); (c) cannot tell them apart.
# 4. The greedy answer is "moss green", the true answer "sea green". What is the ROUGE-L recall, and the QA accuracy
#    on that question?
# 5. An unlearned model's Min-K% AUC (forget against holdout) is 0.40 and the oracle's 0.50. What is its PrivLeak,
#    and what does the sign say?

# %% [markdown] tags=["remove-cell", "instructor"]
# **Answers.** 1. (b): the labels are the answer tokens and `<eos>`; the question is never scored. 2. (a):
# $\exp(-\infty) = 0$, so later positions enter neither the numerator nor the normalisation. 3. (b): $R < 1$ means
# the normalised probability of the truth exceeds the mean of the false ones, here by a factor 50. 4. ROUGE-L recall
# 1/2 ("green" is the common subsequence of one word out of two); accuracy 0. 5. $(0.40 - 0.50)/0.50 = -20\,\%$:
# the forget set now looks *less* likely to be trained on than never-seen data, over-unlearning that an attacker can
# detect.
