"""Planted wrong solutions of chapter 12's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-12-select-index: tests 1 public (the reach and the best validation accuracy), 2 hidden (a stricter reach,
    # and the library's rule), 3 hidden (nobody reaches; a tie on validation accuracy)
    "no average over seeds: the first seed only": {
        "exercise": "ex-12-select-index",
        "fails": [1],
        "source": '''def select_index(forget, val, passes, target, start, reach=0.95):
    f = np.asarray(forget, dtype=float)[:, 0]
    v = np.asarray(val, dtype=float)[:, 0]
    c = np.asarray(passes, dtype=float)
    need = target + (1 - reach) * max(0.0, start - target)
    ok = np.flatnonzero(f <= need)
    if len(ok):
        return int(max(ok, key=lambda i: (v[i], -c[i]))), True
    return int(min(range(len(f)), key=lambda i: (f[i], -v[i]))), False
''',
    },
    "the reach ignored: the best validation accuracy of all": {
        "exercise": "ex-12-select-index",
        "fails": [1, 2, 3],
        "source": '''def select_index(forget, val, passes, target, start, reach=0.95):
    v = np.asarray(val, dtype=float).mean(axis=1)
    return int(np.argmax(v)), True
''',
    },
    "reach and its complement swapped: need = target + reach * (start - target)": {
        "exercise": "ex-12-select-index",
        "fails": [1, 2, 3],
        "source": '''def select_index(forget, val, passes, target, start, reach=0.95):
    f = np.asarray(forget, dtype=float).mean(axis=1)
    v = np.asarray(val, dtype=float).mean(axis=1)
    c = np.asarray(passes, dtype=float)
    need = target + reach * max(0.0, start - target)
    ok = np.flatnonzero(f <= need)
    if len(ok):
        return int(max(ok, key=lambda i: (v[i], -c[i]))), True
    return int(min(range(len(f)), key=lambda i: (f[i], -v[i]))), False
''',
    },
    "no fallback: the best validation accuracy even when nothing reached": {
        "exercise": "ex-12-select-index",
        "fails": [3],
        "source": '''def select_index(forget, val, passes, target, start, reach=0.95):
    f = np.asarray(forget, dtype=float).mean(axis=1)
    v = np.asarray(val, dtype=float).mean(axis=1)
    c = np.asarray(passes, dtype=float)
    need = target + (1 - reach) * max(0.0, start - target)
    ok = np.flatnonzero(f <= need)
    if len(ok):
        return int(max(ok, key=lambda i: (v[i], -c[i]))), True
    return int(max(range(len(f)), key=lambda i: (v[i], -c[i]))), False
''',
    },
    "a tie goes to the more expensive candidate": {
        "exercise": "ex-12-select-index",
        "fails": [3],
        "source": '''def select_index(forget, val, passes, target, start, reach=0.95):
    f = np.asarray(forget, dtype=float).mean(axis=1)
    v = np.asarray(val, dtype=float).mean(axis=1)
    c = np.asarray(passes, dtype=float)
    need = target + (1 - reach) * max(0.0, start - target)
    ok = np.flatnonzero(f <= need)
    if len(ok):
        return int(max(ok, key=lambda i: (v[i], c[i]))), True
    return int(min(range(len(f)), key=lambda i: (f[i], -v[i]))), False
''',
    },
    # ex-12-guard-return: tests 1 public (a dip and a recovery), 2 hidden (a collapse: the last check that held;
    # exactly at the floor holds), 3 hidden (nothing held; another margin)
    "stops at the first failure instead of judging the end": {
        "exercise": "ex-12-guard-return",
        "fails": [1],
        "source": '''def guard_return(r0, checks, margin=25.0):
    for i, a in enumerate(checks):
        if a < r0 - margin:
            return i - 1
    return len(checks) - 1
''',
    },
    "strict inequality: a check exactly at the floor fails": {
        "exercise": "ex-12-guard-return",
        "fails": [2],
        "source": '''def guard_return(r0, checks, margin=25.0):
    floor = r0 - margin
    if checks[-1] > floor:
        return len(checks) - 1
    held = [i for i, a in enumerate(checks[:-1]) if a > floor]
    return held[-1] if held else -1
''',
    },
    "the first check that held, not the last": {
        "exercise": "ex-12-guard-return",
        "fails": [2],
        "source": '''def guard_return(r0, checks, margin=25.0):
    floor = r0 - margin
    if checks[-1] >= floor:
        return len(checks) - 1
    held = [i for i, a in enumerate(checks[:-1]) if a >= floor]
    return held[0] if held else -1
''',
    },
    "the end never judged: always the last earlier check that held": {
        "exercise": "ex-12-guard-return",
        "fails": [1],
        "source": '''def guard_return(r0, checks, margin=25.0):
    held = [i for i, a in enumerate(checks[:-1]) if a >= r0 - margin]
    return held[-1] if held else -1
''',
    },
    "no starting state: the first check when none held": {
        "exercise": "ex-12-guard-return",
        "fails": [3],
        "source": '''def guard_return(r0, checks, margin=25.0):
    floor = r0 - margin
    if checks[-1] >= floor:
        return len(checks) - 1
    held = [i for i, a in enumerate(checks[:-1]) if a >= floor]
    return held[-1] if held else 0
''',
    },
}
