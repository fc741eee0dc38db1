"""Planted wrong solutions of chapter 06's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-06-dual-iterates: tests 1 public (converges below the bound), 2 hidden (cycle through 0 above it),
    # 3 hidden (momentum: fixed point and bound 2(1 + mu)), 4 hidden (inactive constraint from lambda_0 = 2)
    "projection lambda >= 0 skipped": {
        "exercise": "ex-06-dual-iterates",
        "fails": [2, 4],
        "source": '''def dual_iterates(c, G, eps, beta, steps, momentum=0.0, lam0=0.0):
    lam, s, out = float(lam0), 0.0, []
    for _ in range(steps):
        s = momentum * s + c + G * lam
        lam = lam - beta * (s + eps)
        out.append(lam)
    return torch.tensor(out, dtype=torch.float64)
''',
    },
    "dual step taken uphill (sign flipped)": {
        "exercise": "ex-06-dual-iterates",
        "fails": [1, 2, 3, 4],
        "source": '''def dual_iterates(c, G, eps, beta, steps, momentum=0.0, lam0=0.0):
    lam, s, out = float(lam0), 0.0, []
    for _ in range(steps):
        s = momentum * s + c + G * lam
        lam = max(0.0, lam + beta * (s + eps))
        out.append(lam)
    return torch.tensor(out, dtype=torch.float64)
''',
    },
    "tolerance with the wrong sign": {
        "exercise": "ex-06-dual-iterates",
        "fails": [1, 2, 3, 4],
        "source": '''def dual_iterates(c, G, eps, beta, steps, momentum=0.0, lam0=0.0):
    lam, s, out = float(lam0), 0.0, []
    for _ in range(steps):
        s = momentum * s + c + G * lam
        lam = max(0.0, lam - beta * (s - eps))
        out.append(lam)
    return torch.tensor(out, dtype=torch.float64)
''',
    },
    "momentum ignored: the probe measures d, not the buffer": {
        "exercise": "ex-06-dual-iterates",
        "fails": [3],
        "source": '''def dual_iterates(c, G, eps, beta, steps, momentum=0.0, lam0=0.0):
    lam, out = float(lam0), []
    for _ in range(steps):
        s = c + G * lam
        lam = max(0.0, lam - beta * (s + eps))
        out.append(lam)
    return torch.tensor(out, dtype=torch.float64)
''',
    },
    "buffer as an exponential average (1 - mu) d (wrong normalisation)": {
        "exercise": "ex-06-dual-iterates",
        "fails": [3],
        "source": '''def dual_iterates(c, G, eps, beta, steps, momentum=0.0, lam0=0.0):
    lam, s, out = float(lam0), 0.0, []
    for _ in range(steps):
        s = momentum * s + (1 - momentum) * (c + G * lam)
        lam = max(0.0, lam - beta * (s + eps))
        out.append(lam)
    return torch.tensor(out, dtype=torch.float64)
''',
    },
    "off by one: returns lambda_0 .. lambda_{steps-1}": {
        "exercise": "ex-06-dual-iterates",
        "fails": [1, 2, 4],
        "source": '''def dual_iterates(c, G, eps, beta, steps, momentum=0.0, lam0=0.0):
    lam, s, out = float(lam0), 0.0, []
    for _ in range(steps):
        out.append(lam)
        s = momentum * s + c + G * lam
        lam = max(0.0, lam - beta * (s + eps))
    return torch.tensor(out, dtype=torch.float64)
''',
    },
    # ex-06-curvature: tests 1 public (exact records), 2 hidden (noisy records vs NumPy), 3 hidden (R > T, a
    # constant window, invariance to a shift of lambda)
    "slope negated (the derivative of the dual, not of delta)": {
        "exercise": "ex-06-curvature",
        "fails": [1, 2, 3],
        "source": '''def curvature_estimates(lams, deltas):
    lams, deltas = lams.double(), deltas.double()
    lc = lams - lams.mean(dim=1, keepdim=True)
    dc = deltas - deltas.mean(dim=1, keepdim=True)
    return -(lc * dc).sum(dim=1) / (lc * lc).sum(dim=1)
''',
    },
    "no intercept: the fit is forced through the origin": {
        "exercise": "ex-06-curvature",
        "fails": [1, 2, 3],
        "source": '''def curvature_estimates(lams, deltas):
    lams, deltas = lams.double(), deltas.double()
    return (lams * deltas).sum(dim=1) / (lams * lams).sum(dim=1)
''',
    },
    "means taken over the windows (wrong axis)": {
        "exercise": "ex-06-curvature",
        "fails": [1, 2, 3],
        "source": '''def curvature_estimates(lams, deltas):
    lams, deltas = lams.double(), deltas.double()
    lc = lams - lams.mean(dim=0, keepdim=True)
    dc = deltas - deltas.mean(dim=0, keepdim=True)
    return (lc * dc).sum(dim=1) / (lc * lc).sum(dim=1)
''',
    },
    "covariance with n - 1, variance with n (wrong normalisation)": {
        "exercise": "ex-06-curvature",
        "fails": [1, 2, 3],
        "source": '''def curvature_estimates(lams, deltas):
    lams, deltas = lams.double(), deltas.double()
    n = lams.shape[1]
    lc = lams - lams.mean(dim=1, keepdim=True)
    dc = deltas - deltas.mean(dim=1, keepdim=True)
    return ((lc * dc).sum(dim=1) / (n - 1)) / ((lc * lc).sum(dim=1) / n)
''',
    },
    "regression of lambda on delta, inverted": {
        "exercise": "ex-06-curvature",
        "fails": [2, 3],
        "source": '''def curvature_estimates(lams, deltas):
    lams, deltas = lams.double(), deltas.double()
    lc = lams - lams.mean(dim=1, keepdim=True)
    dc = deltas - deltas.mean(dim=1, keepdim=True)
    return (dc * dc).sum(dim=1) / (lc * dc).sum(dim=1)
''',
    },
}
