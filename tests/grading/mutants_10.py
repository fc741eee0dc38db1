"""Planted wrong solutions of chapter 10's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-10-test-from-sums: tests 1 public (four samples by hand), 2 hidden (600 coordinates, five samples,
    # three levels, against the library), 3 hidden (three samples at delta 0.02, and delta 0.5)
    "sign of the step ignored: tests mean > 0 instead of agreement with u": {
        "exercise": "ex-10-test-from-sums",
        "fails": [1, 2, 3],
        "source": '''def mask_from_sums(s1, s2, batch, u, delta):
    from scipy.stats import t

    mean = s1 / batch
    var = (s2 / batch - mean * mean).clamp_min(0) * batch / (batch - 1)
    z = mean / (var.sqrt() / batch**0.5).clamp_min(1e-30)
    return (z >= t.ppf(1 - delta, batch - 1)).to(u.dtype)
''',
    },
    "biased variance: the factor B / (B - 1) left out": {
        "exercise": "ex-10-test-from-sums",
        "fails": [2, 3],
        "source": '''def mask_from_sums(s1, s2, batch, u, delta):
    from scipy.stats import t

    mean = s1 / batch
    var = (s2 / batch - mean * mean).clamp_min(0)
    z = torch.sign(u) * mean / (var.sqrt() / batch**0.5).clamp_min(1e-30)
    return (z >= t.ppf(1 - delta, batch - 1)).to(u.dtype)
''',
    },
    "off by one: B degrees of freedom instead of B - 1": {
        "exercise": "ex-10-test-from-sums",
        "fails": [2, 3],
        "source": '''def mask_from_sums(s1, s2, batch, u, delta):
    from scipy.stats import t

    mean = s1 / batch
    var = (s2 / batch - mean * mean).clamp_min(0) * batch / (batch - 1)
    z = torch.sign(u) * mean / (var.sqrt() / batch**0.5).clamp_min(1e-30)
    return (z >= t.ppf(1 - delta, batch)).to(u.dtype)
''',
    },
    "two-sided critical value t^-1(1 - delta / 2)": {
        "exercise": "ex-10-test-from-sums",
        "fails": [2, 3],
        "source": '''def mask_from_sums(s1, s2, batch, u, delta):
    from scipy.stats import t

    mean = s1 / batch
    var = (s2 / batch - mean * mean).clamp_min(0) * batch / (batch - 1)
    z = torch.sign(u) * mean / (var.sqrt() / batch**0.5).clamp_min(1e-30)
    return (z >= t.ppf(1 - delta / 2, batch - 1)).to(u.dtype)
''',
    },
    "wrong normalisation: the standard deviation instead of the standard error": {
        "exercise": "ex-10-test-from-sums",
        "fails": [2, 3],
        "source": '''def mask_from_sums(s1, s2, batch, u, delta):
    from scipy.stats import t

    mean = s1 / batch
    var = (s2 / batch - mean * mean).clamp_min(0) * batch / (batch - 1)
    z = torch.sign(u) * mean / var.sqrt().clamp_min(1e-30)
    return (z >= t.ppf(1 - delta, batch - 1)).to(u.dtype)
''',
    },
    # ex-10-masked-step: tests 1 public (one step by hand), 2 hidden (mask of ones against torch.optim.SGD),
    # 3 hidden (masked coordinates bit-identical over random masks), 4 hidden (no stale velocity)
    "sign flipped: ascent along the velocity": {
        "exercise": "ex-10-masked-step",
        "fails": [1, 2, 4],
        "source": '''def masked_sgd_step(theta, grad, v_prev, mask, lr, momentum, weight_decay):
    v = momentum * v_prev + grad + weight_decay * theta
    return theta + lr * mask * v, mask * v
''',
    },
    "the naive masked gradient: momentum and weight decay applied after the mask": {
        "exercise": "ex-10-masked-step",
        "fails": [1, 3, 4],
        "source": '''def masked_sgd_step(theta, grad, v_prev, mask, lr, momentum, weight_decay):
    v = momentum * v_prev + mask * grad + weight_decay * theta
    return theta - lr * v, v
''',
    },
    "velocity of masked coordinates not cleared": {
        "exercise": "ex-10-masked-step",
        "fails": [1, 4],
        "source": '''def masked_sgd_step(theta, grad, v_prev, mask, lr, momentum, weight_decay):
    v = momentum * v_prev + grad + weight_decay * theta
    return theta - lr * mask * v, v
''',
    },
    "weight decay outside the velocity (decoupled, not SGD's)": {
        "exercise": "ex-10-masked-step",
        "fails": [1, 2],
        "source": '''def masked_sgd_step(theta, grad, v_prev, mask, lr, momentum, weight_decay):
    v = momentum * v_prev + grad
    return theta - lr * mask * (v + weight_decay * theta), mask * v
''',
    },
}
