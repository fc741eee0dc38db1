"""Planted wrong solutions of chapter 14's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-14-truth-ratio: tests 1 public (two hand-computed questions), 2 hidden (against the library on a model's
    # likelihoods), 3 hidden (random lengths and probabilities, float64 reference)
    "ratio inverted: truth over the perturbed answers": {
        "exercise": "ex-14-truth-ratio",
        "fails": [1, 2, 3],
        "source": '''def truth_ratio(logp_true, n_true, logp_pert, n_pert):
    pert = torch.exp(logp_pert.double() / n_pert).mean(dim=1)
    return torch.exp(logp_true.double() / n_true) / pert
''',
    },
    "geometric mean of the perturbed answers (TOFU's code, not its equation)": {
        "exercise": "ex-14-truth-ratio",
        "fails": [1, 2, 3],
        "source": '''def truth_ratio(logp_true, n_true, logp_pert, n_pert):
    pert = torch.exp((logp_pert.double() / n_pert).mean(dim=1))
    return pert / torch.exp(logp_true.double() / n_true)
''',
    },
    "no per-token normalisation": {
        "exercise": "ex-14-truth-ratio",
        "fails": [1, 2, 3],
        "source": '''def truth_ratio(logp_true, n_true, logp_pert, n_pert):
    pert = torch.exp(logp_pert.double()).mean(dim=1)
    return pert / torch.exp(logp_true.double())
''',
    },
    "perturbed answers normalised by the true answer's length": {
        "exercise": "ex-14-truth-ratio",
        "fails": [1, 2, 3],
        "source": '''def truth_ratio(logp_true, n_true, logp_pert, n_pert):
    pert = torch.exp(logp_pert.double() / n_true[:, None]).mean(dim=1)
    return pert / torch.exp(logp_true.double() / n_true)
''',
    },
    "mean over the questions instead of over the perturbed answers": {
        "exercise": "ex-14-truth-ratio",
        "fails": [1, 2, 3],
        "source": '''def truth_ratio(logp_true, n_true, logp_pert, n_pert):
    pert = torch.exp(logp_pert.double() / n_pert).mean(dim=0)
    return pert[: len(logp_true)] / torch.exp(logp_true.double() / n_true)
''',
    },
    # ex-14-rouge-l: tests 1 public (the brown dog; empty candidate), 2 hidden (hand-made cases), 3 hidden
    # (random word lists against the library)
    "precision: divided by the generated answer's length": {
        "exercise": "ex-14-rouge-l",
        "fails": [1, 2, 3],
        "source": '''def rouge_l_recall(generated, reference):
    table = [[0] * (len(reference) + 1) for _ in range(len(generated) + 1)]
    for i, g in enumerate(generated, 1):
        for j, r in enumerate(reference, 1):
            table[i][j] = (table[i - 1][j - 1] + 1 if g == r
                           else max(table[i - 1][j], table[i][j - 1]))
    return table[-1][-1] / max(len(generated), 1)
''',
    },
    "longest common substring (contiguous) instead of subsequence": {
        "exercise": "ex-14-rouge-l",
        "fails": [1, 2, 3],
        "source": '''def rouge_l_recall(generated, reference):
    best = 0
    table = [[0] * (len(reference) + 1) for _ in range(len(generated) + 1)]
    for i, g in enumerate(generated, 1):
        for j, r in enumerate(reference, 1):
            if g == r:
                table[i][j] = table[i - 1][j - 1] + 1
                best = max(best, table[i][j])
    return best / len(reference)
''',
    },
    "unigram overlap: order ignored": {
        "exercise": "ex-14-rouge-l",
        "fails": [2, 3],
        "source": '''def rouge_l_recall(generated, reference):
    left = list(generated)
    hits = 0
    for r in reference:
        if r in left:
            left.remove(r)
            hits += 1
    return hits / len(reference)
''',
    },
    "greedy in-order matching instead of the dynamic programme": {
        "exercise": "ex-14-rouge-l",
        "fails": [2, 3],
        "source": '''def rouge_l_recall(generated, reference):
    hits, j = 0, 0
    for g in generated:
        if g in reference[j:]:
            j = reference.index(g, j) + 1
            hits += 1
    return hits / len(reference)
''',
    },
    # ex-14-causal-attention: tests 1 public (hand-made, one head), 2 hidden (random, against PyTorch),
    # 3 hidden (causality)
    "no causal mask": {
        "exercise": "ex-14-causal-attention",
        "fails": [1, 2, 3],
        "source": '''def causal_attention(q, k, v):
    d = q.shape[-1]
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1) @ v
''',
    },
    "mask transposed: attends to the future": {
        "exercise": "ex-14-causal-attention",
        "fails": [1, 2, 3],
        "source": '''def causal_attention(q, k, v):
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    allowed = torch.ones(T, T, dtype=torch.bool).triu()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v
''',
    },
    "no 1/sqrt(d) scaling": {
        "exercise": "ex-14-causal-attention",
        "fails": [1, 2],
        "source": '''def causal_attention(q, k, v):
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v
''',
    },
    "masked scores set to 0 instead of -inf": {
        "exercise": "ex-14-causal-attention",
        "fails": [1, 2, 3],
        "source": '''def causal_attention(q, k, v):
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, 0.0), dim=-1) @ v
''',
    },
    # each column is then normalised over the rows t >= s, which still depend on keys and values at s <= t only:
    # causal, but wrong
    "softmax over the queries (wrong axis)": {
        "exercise": "ex-14-causal-attention",
        "fails": [1, 2],
        "source": '''def causal_attention(q, k, v):
    T, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-2) @ v
''',
    },
}
