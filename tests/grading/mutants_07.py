"""Planted wrong solutions of chapter 07's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-07-ghost-norms: tests 1 public (Linear, T = 1), 2 hidden (convolution, T = 6, float64), 3 hidden
    # (float32, T = 9, D < p)
    "cross terms between positions dropped (t = s only)": {
        "exercise": "ex-07-ghost-norms",
        "fails": [2, 3],
        "source": '''def ghost_sq_norms(a, b):
    return (a.pow(2).sum(dim=2) * b.pow(2).sum(dim=2)).sum(dim=1)
''',
    },
    "positions summed before the product": {
        "exercise": "ex-07-ghost-norms",
        "fails": [2, 3],
        "source": '''def ghost_sq_norms(a, b):
    return a.sum(dim=1).pow(2).sum(dim=1) * b.sum(dim=1).pow(2).sum(dim=1)
''',
    },
    "norms, not squared norms": {
        "exercise": "ex-07-ghost-norms",
        "fails": [1, 2, 3],
        "source": '''def ghost_sq_norms(a, b):
    aa = torch.einsum("itd,isd->its", a, a)
    bb = torch.einsum("itp,isp->its", b, b)
    return (aa * bb).sum(dim=(1, 2)).sqrt()
''',
    },
    "row sums of the ghost Gram matrix instead of its diagonal": {
        "exercise": "ex-07-ghost-norms",
        "fails": [1, 2, 3],
        "source": '''def ghost_sq_norms(a, b):
    aa = torch.einsum("itd,jsd->itjs", a, a)
    bb = torch.einsum("itp,jsp->itjs", b, b)
    return (aa * bb).sum(dim=(1, 3)).sum(dim=1)
''',
    },
    # ex-07-gem-direction: tests 1 public (two dimensions, one violated and one satisfied constraint), 2 hidden
    # (KKT conditions, random rows), 3 hidden (interacting constraints), 4 hidden (the trained network, float32)
    "equality projection (OrthoGrad's) instead of inequalities": {
        "exercise": "ex-07-gem-direction",
        "fails": [1, 2, 3, 4],
        "source": '''def gem_direction(g_u, G):
    return project_orthogonal(g_u, G)
''',
    },
    "equality projection against the violated rows only": {
        "exercise": "ex-07-gem-direction",
        "fails": [3],
        "source": '''def gem_direction(g_u, G):
    violated = (G @ g_u) > 0
    if not violated.any():
        return g_u.clone()
    return project_orthogonal(g_u, G[violated])
''',
    },
    "unconstrained multipliers clipped at zero": {
        "exercise": "ex-07-gem-direction",
        "fails": [2, 3, 4],
        "source": '''def gem_direction(g_u, G):
    A, v = G.double().T, g_u.double()
    mu = torch.linalg.lstsq(A, v[:, None]).solution[:, 0].clamp_min(0.0)
    return (v - A @ mu).to(g_u.dtype)
''',
    },
    "constraint direction flipped: no retain loss may fall": {
        "exercise": "ex-07-gem-direction",
        "fails": [1, 2, 3, 4],
        "source": '''def gem_direction(g_u, G):
    A = -G.detach().double().cpu().numpy().T
    v = g_u.detach().double().cpu().numpy()
    mu, _ = scipy.optimize.nnls(A, v)
    return torch.from_numpy(v - A @ mu).to(dtype=g_u.dtype, device=g_u.device)
''',
    },
    "correction added instead of subtracted (sign flipped)": {
        "exercise": "ex-07-gem-direction",
        "fails": [1, 2, 3, 4],
        "source": '''def gem_direction(g_u, G):
    A = G.detach().double().cpu().numpy().T
    v = g_u.detach().double().cpu().numpy()
    mu, _ = scipy.optimize.nnls(A, v)
    return torch.from_numpy(v + A @ mu).to(dtype=g_u.dtype, device=g_u.device)
''',
    },
}
