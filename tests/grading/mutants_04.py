"""Planted wrong solutions of chapter 04's graded exercises: the grader must catch each one.

Every entry names its exercise, the 1-based indices of that exercise's test cells it must fail (in source order,
public and hidden alike), and the full wrong definition.
"""

MUTANTS = {
    # ex-04-class-alignment: tests 1 public (hand example), 2 hidden (random rows), 3 hidden (real
    # gradients, a case without bound)
    "forget mean not negated: g_f of CE_f instead of -CE_f (sign flipped)": {
        "exercise": "ex-04-class-alignment",
        "fails": [1, 2, 3],
        "source": '''def class_alignment(G, forget):
    G = G.double()
    g_f = G[forget].mean(0)
    h_r = G[~forget].mean(0)
    m = G.mean(0)
    cos = (g_f @ h_r / (g_f.norm() * h_r.norm())).item()
    r = (len(G) * m.norm() / (int(forget.sum()) * g_f.norm())).item()
    bound = math.sqrt(1 - r * r) if r < 1 else float("nan")
    return cos, r, bound
''',
    },
    "r weighted by n_r instead of N": {
        "exercise": "ex-04-class-alignment",
        "fails": [1, 2, 3],
        "source": '''def class_alignment(G, forget):
    G = G.double()
    g_f = -G[forget].mean(0)
    h_r = G[~forget].mean(0)
    m = G.mean(0)
    cos = (g_f @ h_r / (g_f.norm() * h_r.norm())).item()
    r = (int((~forget).sum()) * m.norm() / (int(forget.sum()) * g_f.norm())).item()
    bound = math.sqrt(1 - r * r) if r < 1 else float("nan")
    return cos, r, bound
''',
    },
    "bound without the square root": {
        "exercise": "ex-04-class-alignment",
        "fails": [1, 2, 3],
        "source": '''def class_alignment(G, forget):
    G = G.double()
    g_f = -G[forget].mean(0)
    h_r = G[~forget].mean(0)
    m = G.mean(0)
    cos = (g_f @ h_r / (g_f.norm() * h_r.norm())).item()
    r = (len(G) * m.norm() / (int(forget.sum()) * g_f.norm())).item()
    bound = 1 - r * r if r < 1 else float("nan")
    return cos, r, bound
''',
    },
    "h_r taken as the mean of all rows (the retain set not separated)": {
        "exercise": "ex-04-class-alignment",
        "fails": [2, 3],
        "source": '''def class_alignment(G, forget):
    G = G.double()
    g_f = -G[forget].mean(0)
    m = G.mean(0)
    cos = (g_f @ m / (g_f.norm() * m.norm())).item()
    r = (len(G) * m.norm() / (int(forget.sum()) * g_f.norm())).item()
    bound = math.sqrt(1 - r * r) if r < 1 else float("nan")
    return cos, r, bound
''',
    },
    "no-bound case returns 0 instead of NaN": {
        "exercise": "ex-04-class-alignment",
        "fails": [3],
        "source": '''def class_alignment(G, forget):
    G = G.double()
    g_f = -G[forget].mean(0)
    h_r = G[~forget].mean(0)
    m = G.mean(0)
    cos = (g_f @ h_r / (g_f.norm() * h_r.norm())).item()
    r = (len(G) * m.norm() / (int(forget.sum()) * g_f.norm())).item()
    bound = math.sqrt(max(0.0, 1 - r * r))
    return cos, r, bound
''',
    },
    # ex-04-expected-alignment: tests 1 public (enumeration, n_f = 2), 2 hidden (n_f = 1 and 4,
    # blocks not contiguous), 3 hidden (float32 against float64, an empty block, real gradients)
    "sigma^2 with the unbiased 1/(N - 1) normalisation": {
        "exercise": "ex-04-expected-alignment",
        "fails": [1, 2, 3],
        "source": '''def expected_alignment(G, index, n_blocks):
    N = G.shape[0]
    m = G.mean(0)
    var = (G - m).pow(2).sum(0) / (N - 1)
    per_coord = var / (N - 1) - m * m
    out = torch.zeros(n_blocks, dtype=G.dtype, device=G.device)
    return out.index_add(0, index, per_coord)
''',
    },
    "noise term divided by N instead of N - 1": {
        "exercise": "ex-04-expected-alignment",
        "fails": [1, 2, 3],
        "source": '''def expected_alignment(G, index, n_blocks):
    N = G.shape[0]
    m = G.mean(0)
    var = (G - m).pow(2).mean(0)
    per_coord = var / N - m * m
    out = torch.zeros(n_blocks, dtype=G.dtype, device=G.device)
    return out.index_add(0, index, per_coord)
''',
    },
    "sign flipped (the expectation of <h_f, h_r>)": {
        "exercise": "ex-04-expected-alignment",
        "fails": [1, 2, 3],
        "source": '''def expected_alignment(G, index, n_blocks):
    N = G.shape[0]
    m = G.mean(0)
    var = (G - m).pow(2).mean(0)
    per_coord = m * m - var / (N - 1)
    out = torch.zeros(n_blocks, dtype=G.dtype, device=G.device)
    return out.index_add(0, index, per_coord)
''',
    },
    "independent-samples formula: the noise term dropped": {
        "exercise": "ex-04-expected-alignment",
        "fails": [1, 2, 3],
        "source": '''def expected_alignment(G, index, n_blocks):
    m = G.mean(0)
    out = torch.zeros(n_blocks, dtype=G.dtype, device=G.device)
    return out.index_add(0, index, -m * m)
''',
    },
    "variance averaged over the block's coordinates instead of summed": {
        "exercise": "ex-04-expected-alignment",
        "fails": [1, 2, 3],
        "source": '''def expected_alignment(G, index, n_blocks):
    N = G.shape[0]
    m = G.mean(0)
    var = (G - m).pow(2).mean(0)
    out = torch.zeros(n_blocks, dtype=G.dtype, device=G.device)
    count = torch.zeros(n_blocks, dtype=G.dtype, device=G.device).index_add(
        0, index, torch.ones_like(m))
    var_l = out.index_add(0, index, var) / count.clamp_min(1)
    return var_l / (N - 1) - out.index_add(0, index, m * m)
''',
    },
    "number of blocks read from the index, not from n_blocks": {
        "exercise": "ex-04-expected-alignment",
        "fails": [3],
        "source": '''def expected_alignment(G, index, n_blocks):
    N = G.shape[0]
    m = G.mean(0)
    var = (G - m).pow(2).mean(0)
    per_coord = var / (N - 1) - m * m
    out = torch.zeros(int(index.max()) + 1, dtype=G.dtype, device=G.device)
    return out.index_add(0, index, per_coord)
''',
    },
}
