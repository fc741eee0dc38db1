"""Planted wrong solutions of the graded exercises of chapter 01 (notebooks/01_unlearning_problem.py).

Each entry is a complete wrong definition of the graded function and the 1-based indices of the exercise's test
cells (in source order, public and hidden alike) that it must fail; the grader must give it exactly
total - len(fails) points.
"""

MUTANTS = {
    "rank_auc: ties ranked by position instead of mid-ranks": {
        "exercise": "ex-01-rank-auc",
        "fails": [2],
        "source": '''def rank_auc(scores_f, scores_t):
    n1, n0 = len(scores_f), len(scores_t)
    ranks = ex_rankdata(np.concatenate([scores_f, scores_t]), method="ordinal")
    r1 = ranks[:n1].sum()
    return 100.0 * float((r1 - n1 * (n1 + 1) / 2) / (n1 * n0))
''',
    },
    "rank_auc: ties count as a loss (minimum ranks)": {
        "exercise": "ex-01-rank-auc",
        "fails": [2],
        "source": '''def rank_auc(scores_f, scores_t):
    n1, n0 = len(scores_f), len(scores_t)
    ranks = ex_rankdata(np.concatenate([scores_f, scores_t]), method="min")
    r1 = ranks[:n1].sum()
    return 100.0 * float((r1 - n1 * (n1 + 1) / 2) / (n1 * n0))
''',
    },
    "rank_auc: ranks counted from 0 (off by one)": {
        "exercise": "ex-01-rank-auc",
        "fails": [1, 2, 3],
        "source": '''def rank_auc(scores_f, scores_t):
    n1, n0 = len(scores_f), len(scores_t)
    ranks = ex_rankdata(np.concatenate([scores_f, scores_t])) - 1
    r1 = ranks[:n1].sum()
    return 100.0 * float((r1 - n1 * (n1 + 1) / 2) / (n1 * n0))
''',
    },
    "rank_auc: normalised by n1 squared": {
        "exercise": "ex-01-rank-auc",
        "fails": [1, 3],
        "source": '''def rank_auc(scores_f, scores_t):
    n1, n0 = len(scores_f), len(scores_t)
    ranks = ex_rankdata(np.concatenate([scores_f, scores_t]))
    r1 = ranks[:n1].sum()
    return 100.0 * float((r1 - n1 * (n1 + 1) / 2) / (n1 * n1))
''',
    },
    "rank_auc: ranks of the test scores (roles swapped)": {
        "exercise": "ex-01-rank-auc",
        "fails": [1, 2, 3],
        "source": '''def rank_auc(scores_f, scores_t):
    n1, n0 = len(scores_f), len(scores_t)
    ranks = ex_rankdata(np.concatenate([scores_t, scores_f]))
    r0 = ranks[:n0].sum()
    return 100.0 * float((r0 - n0 * (n0 + 1) / 2) / (n1 * n0))
''',
    },
    "rank_auc: a fraction, not percent": {
        "exercise": "ex-01-rank-auc",
        "fails": [1, 2, 3],
        "source": '''def rank_auc(scores_f, scores_t):
    d = np.asarray(scores_f)[:, None] - np.asarray(scores_t)[None, :]
    return float((d > 0).mean() + 0.5 * (d == 0).mean())
''',
    },
    "mean_avg_gap: gap between the mean metrics": {
        "exercise": "ex-01-mean-avg-gap",
        "fails": [2, 3],
        "source": '''def mean_avg_gap(runs, refs):
    keys = ("UA", "RA", "TA", "MIA")
    return float(np.mean([
        abs(np.mean([r[k] for r in runs]) - np.mean([f[k] for f in refs])) for k in keys
    ]))
''',
    },
    "mean_avg_gap: every shared key, MIA_AUC included": {
        "exercise": "ex-01-mean-avg-gap",
        "fails": [1, 2, 3],
        "source": '''def mean_avg_gap(runs, refs):
    gaps = [np.mean([abs(r[k] - f[k]) for k in r if k in f]) for r, f in zip(runs, refs)]
    return float(np.mean(gaps))
''',
    },
    "mean_avg_gap: signed differences": {
        "exercise": "ex-01-mean-avg-gap",
        "fails": [1, 2, 3],
        "source": '''def mean_avg_gap(runs, refs):
    keys = ("UA", "RA", "TA", "MIA")
    gaps = [sum(r[k] - f[k] for k in keys) / len(keys) for r, f in zip(runs, refs)]
    return float(np.mean(gaps))
''',
    },
    "mean_avg_gap: every run against the mean oracle": {
        "exercise": "ex-01-mean-avg-gap",
        "fails": [2, 3],
        "source": '''def mean_avg_gap(runs, refs):
    keys = ("UA", "RA", "TA", "MIA")
    ref = {k: np.mean([f[k] for f in refs]) for k in keys}
    gaps = [sum(abs(r[k] - ref[k]) for k in keys) / len(keys) for r in runs]
    return float(np.mean(gaps))
''',
    },
    "mean_avg_gap: median over the seeds": {
        "exercise": "ex-01-mean-avg-gap",
        "fails": [2, 3],
        "source": '''def mean_avg_gap(runs, refs):
    keys = ("UA", "RA", "TA", "MIA")
    gaps = [sum(abs(r[k] - f[k]) for k in keys) / len(keys) for r, f in zip(runs, refs)]
    return float(np.median(gaps))
''',
    },
}
