"""Planted wrong solutions of chapter 13's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-13-tally: tests 1 public (closer, farther, undecided, a method without the baseline), 2 hidden (another
    # baseline; the raw p-value must not decide), 3 hidden (another metric; no test counts as undecided)
    "the raw p-value instead of Holm's": {
        "exercise": "ex-13-tally",
        "fails": [1],
        "source": '''def tally(paired, baseline, key="gap", level=0.05):
    out = {"closer": 0, "farther": 0, "undecided": 0}
    for entries in paired.values():
        e = entries.get(baseline, {}).get(key)
        if e is None:
            continue
        if e["p"] is not None and e["p"] < level:
            out["closer" if e["mean"] < 0 else "farther"] += 1
        else:
            out["undecided"] += 1
    return out
''',
    },
    "the sign convention reversed: a positive difference counted as closer": {
        "exercise": "ex-13-tally",
        "fails": [2, 3],
        "source": '''def tally(paired, baseline, key="gap", level=0.05):
    out = {"closer": 0, "farther": 0, "undecided": 0}
    for entries in paired.values():
        e = entries.get(baseline, {}).get(key)
        if e is None:
            continue
        if e["p_holm"] is not None and e["p_holm"] < level:
            out["closer" if e["mean"] > 0 else "farther"] += 1
        else:
            out["undecided"] += 1
    return out
''',
    },
    "methods without the baseline counted as undecided": {
        "exercise": "ex-13-tally",
        "fails": [1, 2, 3],
        "source": '''def tally(paired, baseline, key="gap", level=0.05):
    out = {"closer": 0, "farther": 0, "undecided": 0}
    for entries in paired.values():
        e = entries.get(baseline, {}).get(key)
        if e is not None and e["p_holm"] is not None and e["p_holm"] < level:
            out["closer" if e["mean"] < 0 else "farther"] += 1
        else:
            out["undecided"] += 1
    return out
''',
    },
    "an entry without a test crashes (None compared with the level)": {
        "exercise": "ex-13-tally",
        "fails": [3],
        "source": '''def tally(paired, baseline, key="gap", level=0.05):
    out = {"closer": 0, "farther": 0, "undecided": 0}
    for entries in paired.values():
        e = entries.get(baseline, {}).get(key)
        if e is None:
            continue
        if e["p_holm"] < level:
            out["closer" if e["mean"] < 0 else "farther"] += 1
        else:
            out["undecided"] += 1
    return out
''',
    },
    # ex-13-sign-test: tests 1 public (ten seeds with a tie), 2 hidden (against scipy), 3 hidden (symmetry and a
    # balanced split)
    "ties counted as losses": {
        "exercise": "ex-13-sign-test",
        "fails": [1, 3],
        "source": '''def sign_test(gap_a, gap_b):
    d = np.asarray(gap_a, dtype=float) - np.asarray(gap_b, dtype=float)
    n, wins = len(d), int((d < 0).sum())
    k = min(wins, n - wins)
    tail = sum(ex_stats.binom.pmf(i, n, 0.5) for i in range(k + 1))
    return wins, n, float(min(1.0, 2 * tail))
''',
    },
    "one-sided: the lower tail only": {
        "exercise": "ex-13-sign-test",
        "fails": [1, 2, 3],
        "source": '''def sign_test(gap_a, gap_b):
    d = np.asarray(gap_a, dtype=float) - np.asarray(gap_b, dtype=float)
    d = d[d != 0]
    n, wins = len(d), int((d < 0).sum())
    k = min(wins, n - wins)
    tail = sum(ex_stats.binom.pmf(i, n, 0.5) for i in range(k + 1))
    return wins, n, float(tail)
''',
    },
    "not capped at 1: a balanced split gives p above 1": {
        "exercise": "ex-13-sign-test",
        "fails": [3],
        "source": '''def sign_test(gap_a, gap_b):
    d = np.asarray(gap_a, dtype=float) - np.asarray(gap_b, dtype=float)
    d = d[d != 0]
    n, wins = len(d), int((d < 0).sum())
    k = min(wins, n - wins)
    tail = sum(ex_stats.binom.pmf(i, n, 0.5) for i in range(k + 1))
    return wins, n, float(2 * tail)
''',
    },
    "wins counted for the larger gap": {
        "exercise": "ex-13-sign-test",
        "fails": [1, 2, 3],
        "source": '''def sign_test(gap_a, gap_b):
    d = np.asarray(gap_a, dtype=float) - np.asarray(gap_b, dtype=float)
    d = d[d != 0]
    n, wins = len(d), int((d > 0).sum())
    k = min(wins, n - wins)
    tail = sum(ex_stats.binom.pmf(i, n, 0.5) for i in range(k + 1))
    return wins, n, float(min(1.0, 2 * tail))
''',
    },
}
