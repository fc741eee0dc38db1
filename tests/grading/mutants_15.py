"""Planted wrong solutions of chapter 15's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-15-npo-loss: tests 1 public (two answers, beta 1), 2 hidden (seven answers, three betas, against the
    # library), 3 hidden (log-ratios +400 and -100 at beta 2: overflow of a naive exp, and 2/beta = 1 there)
    "the factor 2 / beta left out": {
        "exercise": "ex-15-npo-loss",
        "fails": [1, 2],
        "source": '''def npo_loss(logp, logp_ref, beta):
    return torch.nn.functional.softplus(beta * (logp - logp_ref)).mean()
''',
    },
    "the ratio inverted: pi_ref / pi": {
        "exercise": "ex-15-npo-loss",
        "fails": [1, 2, 3],
        "source": '''def npo_loss(logp, logp_ref, beta):
    return 2.0 / beta * torch.nn.functional.softplus(beta * (logp_ref - logp)).mean()
''',
    },
    "summed over the batch instead of averaged": {
        "exercise": "ex-15-npo-loss",
        "fails": [1, 2, 3],
        "source": '''def npo_loss(logp, logp_ref, beta):
    return 2.0 / beta * torch.nn.functional.softplus(beta * (logp - logp_ref)).sum()
''',
    },
    "log(1 + exp(x)) computed naively: overflows for a large ratio": {
        "exercise": "ex-15-npo-loss",
        "fails": [3],
        "source": '''def npo_loss(logp, logp_ref, beta):
    return 2.0 / beta * torch.log(1 + torch.exp(beta * (logp - logp_ref))).mean()
''',
    },
    "beta applied outside the log only: (2/beta) log(1 + pi/pi_ref)": {
        "exercise": "ex-15-npo-loss",
        "fails": [2, 3],
        "source": '''def npo_loss(logp, logp_ref, beta):
    return 2.0 / beta * torch.nn.functional.softplus(logp - logp_ref).mean()
''',
    },
    # ex-15-rmu-loss: tests 1 public (one scored forget token, one padding token far away, alpha 3, terms 1 and
    # 4), 2 hidden (ragged masks, three alphas, against the library), 3 hidden (pooled over the batch, not a mean
    # of the row means)
    "padding tokens scored (masks ignored)": {
        "exercise": "ex-15-rmu-loss",
        "fails": [1, 2, 3],
        "source": '''def rmu_loss(h_f, mask_f, control, h_r, h_r_ref, mask_r, alpha):
    d = h_f.shape[-1]
    return (((h_f - control) ** 2).sum(-1) / d).mean() + alpha * (((h_r - h_r_ref) ** 2).sum(-1) / d).mean()
''',
    },
    "squared norm not divided by d": {
        "exercise": "ex-15-rmu-loss",
        "fails": [1, 2, 3],
        "source": '''def rmu_loss(h_f, mask_f, control, h_r, h_r_ref, mask_r, alpha):
    forget = ((h_f - control) ** 2).sum(-1)[mask_f]
    retain = ((h_r - h_r_ref) ** 2).sum(-1)[mask_r]
    return forget.mean() + alpha * retain.mean()
''',
    },
    "alpha weights the forget term instead of the retain term": {
        "exercise": "ex-15-rmu-loss",
        "fails": [1, 2],
        "source": '''def rmu_loss(h_f, mask_f, control, h_r, h_r_ref, mask_r, alpha):
    d = h_f.shape[-1]
    forget = ((h_f - control) ** 2).sum(-1)[mask_f] / d
    retain = ((h_r - h_r_ref) ** 2).sum(-1)[mask_r] / d
    return alpha * forget.mean() + retain.mean()
''',
    },
    "mean per row first, then over the rows": {
        "exercise": "ex-15-rmu-loss",
        "fails": [2, 3],
        "source": '''def rmu_loss(h_f, mask_f, control, h_r, h_r_ref, mask_r, alpha):
    d = h_f.shape[-1]
    mf, mr = mask_f.float(), mask_r.float()
    forget = ((((h_f - control) ** 2).sum(-1) / d) * mf).sum(1) / mf.sum(1)
    retain = ((((h_r - h_r_ref) ** 2).sum(-1) / d) * mr).sum(1) / mr.sum(1)
    return forget.mean() + alpha * retain.mean()
''',
    },
}
