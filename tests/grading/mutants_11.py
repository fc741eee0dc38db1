"""Planted wrong solutions of chapter 11's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-11-holm-reject: tests 1 public (four p-values, the stop matters), 2 hidden (Holm rejects what
    # Bonferroni keeps), 3 hidden (unsorted family of eight at alpha 0.1, against the library)
    "Bonferroni: alpha / m for every hypothesis": {
        "exercise": "ex-11-holm-reject",
        "fails": [2, 3],
        "source": '''def holm_reject(p, alpha=0.05):
    p = np.asarray(p, dtype=float)
    return p <= alpha / len(p)
''',
    },
    "off by one: the i-th smallest compared with alpha / (m - i + 2)": {
        "exercise": "ex-11-holm-reject",
        "fails": [2, 3],
        "source": '''def holm_reject(p, alpha=0.05):
    p = np.asarray(p, dtype=float)
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(np.argsort(p)):
        if p[i] > alpha / (m - rank + 1):
            break
        reject[i] = True
    return reject
''',
    },
    "no stop: every p-value compared with its own threshold": {
        "exercise": "ex-11-holm-reject",
        "fails": [1, 3],
        "source": '''def holm_reject(p, alpha=0.05):
    p = np.asarray(p, dtype=float)
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(np.argsort(p)):
        reject[i] = p[i] <= alpha / (m - rank)
    return reject
''',
    },
    "decisions returned in sorted order, not in the order of p": {
        "exercise": "ex-11-holm-reject",
        "fails": [1, 3],
        "source": '''def holm_reject(p, alpha=0.05):
    p = np.sort(np.asarray(p, dtype=float))
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for rank in range(m):
        if p[rank] > alpha / (m - rank):
            break
        reject[rank] = True
    return reject
''',
    },
    "Hochberg's step-up: reject up to the largest p-value under its threshold": {
        "exercise": "ex-11-holm-reject",
        "fails": [1, 3],
        "source": '''def holm_reject(p, alpha=0.05):
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p)
    passing = [r for r in range(m) if p[order[r]] <= alpha / (m - r)]
    reject = np.zeros(m, dtype=bool)
    if passing:
        reject[order[: max(passing) + 1]] = True
    return reject
''',
    },
    # ex-11-logit-confidence: tests 1 public (three rows by hand), 2 hidden (six rows, four classes, against
    # the library), 3 hidden (confident rows, where p_y rounds to 1)
    "through the probability: log(p / (1 - p)), which overflows once p_y rounds to 1": {
        "exercise": "ex-11-logit-confidence",
        "fails": [3],
        "source": '''def logit_confidence(logits, y):
    p = torch.softmax(logits.double(), dim=1)[torch.arange(len(y)), y]
    return torch.log(p) - torch.log(1 - p)
''',
    },
    "softmax over the wrong axis (over the batch)": {
        "exercise": "ex-11-logit-confidence",
        "fails": [1, 2, 3],
        "source": '''def logit_confidence(logits, y):
    logp = torch.log_softmax(logits.double(), dim=0)
    lp = logp[torch.arange(len(y)), y]
    return lp - torch.log1p(-torch.exp(lp))
''',
    },
    "log p_y only: the 1 - p_y of the odds left out": {
        "exercise": "ex-11-logit-confidence",
        "fails": [1, 2, 3],
        "source": '''def logit_confidence(logits, y):
    return torch.log_softmax(logits.double(), dim=1)[torch.arange(len(y)), y]
''',
    },
    "the predicted class used instead of the label": {
        "exercise": "ex-11-logit-confidence",
        "fails": [2, 3],
        "source": '''def logit_confidence(logits, y):
    z = logits.double()
    top = z.argmax(1)
    z_top = z.gather(1, top[:, None]).squeeze(1)
    others = z.scatter(1, top[:, None], float("-inf"))
    return z_top - torch.logsumexp(others, dim=1)
''',
    },
    "sign flipped: log((1 - p_y) / p_y)": {
        "exercise": "ex-11-logit-confidence",
        "fails": [1, 2, 3],
        "source": '''def logit_confidence(logits, y):
    z = logits.double()
    z_y = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - z_y
''',
    },
}
