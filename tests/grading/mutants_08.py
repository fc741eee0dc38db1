"""Planted wrong solutions of chapter 08's graded exercises (tools/check_grading.py grades them).

Test cells, in order: ex-08-harmonize-rows 1 two-sided vs the library, 2 one-sided vs the library, 3 float32 pairs
of 40 entries; ex-08-dropped-term 1 vs the library (w_f = 1), 2 vs the library (w_f = 0.4), 3 vs a finite-difference
Hessian (w_f = 2, other batches).
"""

MUTANTS = {
    "harmonize: sign of the projection flipped": {
        "exercise": "ex-08-harmonize-rows",
        "fails": [1, 2, 3],
        "source": '''def harmonize_rows(A, B, project="both"):
    c = (A * B).sum(1, keepdim=True)
    conflict = (c < 0).to(A.dtype)
    B_h = B + conflict * c / (A * A).sum(1, keepdim=True) * A
    if project == "forget":
        return A + B_h
    return A + conflict * c / (B * B).sum(1, keepdim=True) * B + B_h
''',
    },
    "harmonize: projects pairs that do not conflict too": {
        "exercise": "ex-08-harmonize-rows",
        "fails": [1, 2, 3],
        "source": '''def harmonize_rows(A, B, project="both"):
    c = (A * B).sum(1, keepdim=True)
    B_h = B - c / (A * A).sum(1, keepdim=True) * A
    if project == "forget":
        return A + B_h
    return A - c / (B * B).sum(1, keepdim=True) * B + B_h
''',
    },
    "harmonize: G_rem projected with its own norm instead of G_fgt's": {
        "exercise": "ex-08-harmonize-rows",
        "fails": [1, 3],
        "source": '''def harmonize_rows(A, B, project="both"):
    c = (A * B).sum(1, keepdim=True)
    conflict = (c < 0).to(A.dtype)
    B_h = B - conflict * c / (A * A).sum(1, keepdim=True) * A
    if project == "forget":
        return A + B_h
    return A - conflict * c / (A * A).sum(1, keepdim=True) * B + B_h
''',
    },
    "harmonize: squared norms summed over the rows (wrong axis)": {
        "exercise": "ex-08-harmonize-rows",
        "fails": [1, 2, 3],
        "source": '''def harmonize_rows(A, B, project="both"):
    c = (A * B).sum(1, keepdim=True)
    conflict = (c < 0).to(A.dtype)
    B_h = B - conflict * c / (A * A).sum(0, keepdim=True) * A
    if project == "forget":
        return A + B_h
    return A - conflict * c / (B * B).sum(0, keepdim=True) * B + B_h
''',
    },
    "harmonize: project argument ignored (always two-sided)": {
        "exercise": "ex-08-harmonize-rows",
        "fails": [2],
        "source": '''def harmonize_rows(A, B, project="both"):
    c = (A * B).sum(1, keepdim=True)
    conflict = (c < 0).to(A.dtype)
    B_h = B - conflict * c / (A * A).sum(1, keepdim=True) * A
    return A - conflict * c / (B * B).sum(1, keepdim=True) * B + B_h
''',
    },
    "harmonize: computed in float64 and returned in float64": {
        "exercise": "ex-08-harmonize-rows",
        "fails": [3],
        "source": '''def harmonize_rows(A, B, project="both"):
    A, B = A.double(), B.double()
    c = (A * B).sum(1, keepdim=True)
    conflict = (c < 0).to(A.dtype)
    B_h = B - conflict * c / (A * A).sum(1, keepdim=True) * A
    if project == "forget":
        return A + B_h
    return A - conflict * c / (B * B).sum(1, keepdim=True) * B + B_h
''',
    },
    "dropped term: sign flipped (+alpha H v)": {
        "exercise": "ex-08-dropped-term",
        "fails": [1, 2, 3],
        "source": '''def dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0):
    def ce(x, y, sign=1.0):
        return lambda q: sign * F.cross_entropy(functional_call(model, q, (x,)), y)

    L_sup = ce(xs, ys)
    g = grad(L_sup)(p)
    fast = {k: p[k] - alpha * g[k] for k in p}
    g_rem, g_fgt = grad(ce(xq, yq))(fast), grad(ce(xf, yf, -1.0))(fast)
    v = {k: g_rem[k] + w_f * g_fgt[k] for k in p}
    _, hv = jvp(grad(L_sup), (p,), (v,))
    return alpha * flatten(hv)
''',
    },
    "dropped term: Hessian taken at the fast weights instead of theta": {
        "exercise": "ex-08-dropped-term",
        "fails": [1, 2, 3],
        "source": '''def dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0):
    def ce(x, y, sign=1.0):
        return lambda q: sign * F.cross_entropy(functional_call(model, q, (x,)), y)

    L_sup = ce(xs, ys)
    g = grad(L_sup)(p)
    fast = {k: p[k] - alpha * g[k] for k in p}
    g_rem, g_fgt = grad(ce(xq, yq))(fast), grad(ce(xf, yf, -1.0))(fast)
    v = {k: g_rem[k] + w_f * g_fgt[k] for k in p}
    _, hv = jvp(grad(L_sup), (fast,), (v,))
    return -alpha * flatten(hv)
''',
    },
    "dropped term: outer gradients taken at theta, not at the fast weights": {
        "exercise": "ex-08-dropped-term",
        "fails": [1, 2, 3],
        "source": '''def dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0):
    def ce(x, y, sign=1.0):
        return lambda q: sign * F.cross_entropy(functional_call(model, q, (x,)), y)

    L_sup = ce(xs, ys)
    g_rem, g_fgt = grad(ce(xq, yq))(p), grad(ce(xf, yf, -1.0))(p)
    v = {k: g_rem[k] + w_f * g_fgt[k] for k in p}
    _, hv = jvp(grad(L_sup), (p,), (v,))
    return -alpha * flatten(hv)
''',
    },
    "dropped term: forgetting loss +CE instead of -CE": {
        "exercise": "ex-08-dropped-term",
        "fails": [1, 2, 3],
        "source": '''def dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0):
    def ce(x, y, sign=1.0):
        return lambda q: sign * F.cross_entropy(functional_call(model, q, (x,)), y)

    L_sup = ce(xs, ys)
    g = grad(L_sup)(p)
    fast = {k: p[k] - alpha * g[k] for k in p}
    g_rem, g_fgt = grad(ce(xq, yq))(fast), grad(ce(xf, yf))(fast)
    v = {k: g_rem[k] + w_f * g_fgt[k] for k in p}
    _, hv = jvp(grad(L_sup), (p,), (v,))
    return -alpha * flatten(hv)
''',
    },
    "dropped term: w_f weighs the query gradient instead of the forget one": {
        "exercise": "ex-08-dropped-term",
        "fails": [2, 3],
        "source": '''def dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0):
    def ce(x, y, sign=1.0):
        return lambda q: sign * F.cross_entropy(functional_call(model, q, (x,)), y)

    L_sup = ce(xs, ys)
    g = grad(L_sup)(p)
    fast = {k: p[k] - alpha * g[k] for k in p}
    g_rem, g_fgt = grad(ce(xq, yq))(fast), grad(ce(xf, yf, -1.0))(fast)
    v = {k: w_f * g_rem[k] + g_fgt[k] for k in p}
    _, hv = jvp(grad(L_sup), (p,), (v,))
    return -alpha * flatten(hv)
''',
    },
    "dropped term: w_f left out": {
        "exercise": "ex-08-dropped-term",
        "fails": [2, 3],
        "source": '''def dropped_term(model, p, xs, ys, xq, yq, xf, yf, alpha, w_f=1.0):
    def ce(x, y, sign=1.0):
        return lambda q: sign * F.cross_entropy(functional_call(model, q, (x,)), y)

    L_sup = ce(xs, ys)
    g = grad(L_sup)(p)
    fast = {k: p[k] - alpha * g[k] for k in p}
    g_rem, g_fgt = grad(ce(xq, yq))(fast), grad(ce(xf, yf, -1.0))(fast)
    v = {k: g_rem[k] + g_fgt[k] for k in p}
    _, hv = jvp(grad(L_sup), (p,), (v,))
    return -alpha * flatten(hv)
''',
    },
}
