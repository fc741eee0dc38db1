"""Planted wrong solutions of chapter 05's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-05-pcgrad-parts: tests 1 public (hand pairs), 2 hidden (random pairs), 3 hidden (triples,
    # four tasks in float32)
    "projects against the already projected gradients (rows updated in place)": {
        "exercise": "ex-05-pcgrad-parts",
        "fails": [1, 2, 3],
        "source": '''def pcgrad_parts(G):
    for i in range(len(G)):
        for j in range(len(G)):
            if j == i:
                continue
            dot = G[i] @ G[j]
            if dot < 0:
                G[i] = G[i] - dot / (G[j] @ G[j]) * G[j]
    return G
''',
    },
    "projects whenever the inner product is nonzero (no sign test)": {
        "exercise": "ex-05-pcgrad-parts",
        "fails": [1, 2, 3],
        "source": '''def pcgrad_parts(G):
    out = G.clone()
    for i in range(len(G)):
        for j in range(len(G)):
            if j != i:
                out[i] = out[i] - (out[i] @ G[j]) / (G[j] @ G[j]) * G[j]
    return out
''',
    },
    "divides by ||g_j|| instead of ||g_j||^2": {
        "exercise": "ex-05-pcgrad-parts",
        "fails": [1, 2, 3],
        "source": '''def pcgrad_parts(G):
    out = G.clone()
    for i in range(len(G)):
        for j in range(len(G)):
            if j == i:
                continue
            dot = out[i] @ G[j]
            if dot < 0:
                out[i] = out[i] - dot / G[j].norm() * G[j]
    return out
''',
    },
    "sign of the projection flipped (adds the conflicting component)": {
        "exercise": "ex-05-pcgrad-parts",
        "fails": [1, 2, 3],
        "source": '''def pcgrad_parts(G):
    out = G.clone()
    for i in range(len(G)):
        for j in range(len(G)):
            if j == i:
                continue
            dot = out[i] @ G[j]
            if dot < 0:
                out[i] = out[i] + dot / (G[j] @ G[j]) * G[j]
    return out
''',
    },
    "visits the other tasks in decreasing order": {
        "exercise": "ex-05-pcgrad-parts",
        "fails": [3],
        "source": '''def pcgrad_parts(G):
    out = G.clone()
    for i in range(len(G)):
        for j in reversed(range(len(G))):
            if j == i:
                continue
            dot = out[i] @ G[j]
            if dot < 0:
                out[i] = out[i] - dot / (G[j] @ G[j]) * G[j]
    return out
''',
    },
    "tests the conflict of the original g_i, not of the current vector": {
        "exercise": "ex-05-pcgrad-parts",
        "fails": [3],
        "source": '''def pcgrad_parts(G):
    out = G.clone()
    for i in range(len(G)):
        for j in range(len(G)):
            if j == i:
                continue
            if G[i] @ G[j] < 0:
                out[i] = out[i] - (out[i] @ G[j]) / (G[j] @ G[j]) * G[j]
    return out
''',
    },
    # ex-05-scale-free: tests 1 public (hand rows), 2 hidden (random rows against the library, KKT),
    # 3 hidden (equivariance in float32, a zero retain gradient)
    "tolerance not scaled: eps = kappa": {
        "exercise": "ex-05-scale-free",
        "fails": [1, 2, 3],
        "source": '''def scale_free_surgery(g_f, g_r, kappa):
    dot = (g_f * g_r).sum(1)
    nr2 = (g_r * g_r).sum(1)
    safe = torch.where(nr2 > 0, nr2, torch.ones_like(nr2))
    lam = torch.where(nr2 > 0, (-dot - kappa) / safe, torch.zeros_like(nr2)).clamp_min(0)
    return g_f + lam[:, None] * g_r, lam
''',
    },
    "sign of the inner product flipped": {
        "exercise": "ex-05-scale-free",
        "fails": [1, 2],
        "source": '''def scale_free_surgery(g_f, g_r, kappa):
    dot = (g_f * g_r).sum(1)
    nr2 = (g_r * g_r).sum(1)
    eps = kappa * g_f.norm(dim=1) * g_r.norm(dim=1)
    safe = torch.where(nr2 > 0, nr2, torch.ones_like(nr2))
    lam = torch.where(nr2 > 0, (dot - eps) / safe, torch.zeros_like(nr2)).clamp_min(0)
    return g_f + lam[:, None] * g_r, lam
''',
    },
    "multiplier not clamped at zero": {
        "exercise": "ex-05-scale-free",
        "fails": [1, 2, 3],
        "source": '''def scale_free_surgery(g_f, g_r, kappa):
    dot = (g_f * g_r).sum(1)
    nr2 = (g_r * g_r).sum(1)
    eps = kappa * g_f.norm(dim=1) * g_r.norm(dim=1)
    safe = torch.where(nr2 > 0, nr2, torch.ones_like(nr2))
    lam = torch.where(nr2 > 0, (-dot - eps) / safe, torch.zeros_like(nr2))
    return g_f + lam[:, None] * g_r, lam
''',
    },
    "norms taken over the batch axis": {
        "exercise": "ex-05-scale-free",
        "fails": [1, 2],
        "source": '''def scale_free_surgery(g_f, g_r, kappa):
    dot = (g_f * g_r).sum(1)
    nr2 = (g_r * g_r).sum(1)
    eps = kappa * (g_f.norm(dim=0) * g_r.norm(dim=0)).sum() / g_f.shape[1]
    safe = torch.where(nr2 > 0, nr2, torch.ones_like(nr2))
    lam = torch.where(nr2 > 0, (-dot - eps) / safe, torch.zeros_like(nr2)).clamp_min(0)
    return g_f + lam[:, None] * g_r, lam
''',
    },
    "normalised by ||g_r|| instead of ||g_r||^2": {
        "exercise": "ex-05-scale-free",
        "fails": [2, 3],
        "source": '''def scale_free_surgery(g_f, g_r, kappa):
    dot = (g_f * g_r).sum(1)
    nr = g_r.norm(dim=1)
    eps = kappa * g_f.norm(dim=1) * nr
    safe = torch.where(nr > 0, nr, torch.ones_like(nr))
    lam = torch.where(nr > 0, (-dot - eps) / safe, torch.zeros_like(nr)).clamp_min(0)
    return g_f + lam[:, None] * g_r, lam
''',
    },
    "a zero retain gradient not guarded (0 / 0)": {
        "exercise": "ex-05-scale-free",
        "fails": [3],
        "source": '''def scale_free_surgery(g_f, g_r, kappa):
    dot = (g_f * g_r).sum(1)
    nr2 = (g_r * g_r).sum(1)
    eps = kappa * g_f.norm(dim=1) * g_r.norm(dim=1)
    lam = ((-dot - eps) / nr2).clamp_min(0)
    return g_f + lam[:, None] * g_r, lam
''',
    },
}
