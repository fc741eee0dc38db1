"""Planted wrong solutions of chapter 09's graded exercises (tools/check_grading.py grades them).

Test cells, in order: ex-09-taylor-model 1 value at alpha = 0 and the alpha^3 law (w_r = w_f = 1), 2 against a
reference value (w_r = 0.5, w_f = 2), 3 the alpha^3 law (w_r = 0.7, w_f = 2.5, a smaller forget batch);
ex-09-mirror-metagrad 1 finite differences of J_B, 2 exact gradient vs the library, 3 first order vs the library.
"""

MUTANTS = {
    "taylor: the 1/2 of the second-order term left out": {
        "exercise": "ex-09-taylor-model",
        "fails": [1, 2, 3],
        "source": '''def taylor_objective(model, p, xf, yf, xr, yr, alpha, w_r=1.0, w_f=1.0):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_r = grad(L_r)(p)
    g_u, Hu_gr = jvp(grad(L_u), (p,), (g_r,))
    inner = sum((g_u[k] * g_r[k]).sum() for k in p)
    curv = sum((g_r[k] * Hu_gr[k]).sum() for k in p)
    return w_r * L_r(p) + w_f * (L_u(p) - alpha * inner + alpha**2 * curv)
''',
    },
    "taylor: curvature of the retain loss (g_r^T H_r g_r) instead of H_u": {
        "exercise": "ex-09-taylor-model",
        "fails": [1, 2, 3],
        "source": '''def taylor_objective(model, p, xf, yf, xr, yr, alpha, w_r=1.0, w_f=1.0):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_r, Hr_gr = jvp(grad(L_r), (p,), (grad(L_r)(p),))
    g_u = grad(L_u)(p)
    inner = sum((g_u[k] * g_r[k]).sum() for k in p)
    curv = sum((g_r[k] * Hr_gr[k]).sum() for k in p)
    return w_r * L_r(p) + w_f * (L_u(p) - alpha * inner + alpha**2 / 2 * curv)
''',
    },
    "taylor: sign of the first-order term flipped": {
        "exercise": "ex-09-taylor-model",
        "fails": [1, 2, 3],
        "source": '''def taylor_objective(model, p, xf, yf, xr, yr, alpha, w_r=1.0, w_f=1.0):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_r = grad(L_r)(p)
    g_u, Hu_gr = jvp(grad(L_u), (p,), (g_r,))
    inner = sum((g_u[k] * g_r[k]).sum() for k in p)
    curv = sum((g_r[k] * Hu_gr[k]).sum() for k in p)
    return w_r * L_r(p) + w_f * (L_u(p) + alpha * inner + alpha**2 / 2 * curv)
''',
    },
    "taylor: w_f multiplies L_u only, not the look-ahead terms": {
        "exercise": "ex-09-taylor-model",
        "fails": [2, 3],
        "source": '''def taylor_objective(model, p, xf, yf, xr, yr, alpha, w_r=1.0, w_f=1.0):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_r = grad(L_r)(p)
    g_u, Hu_gr = jvp(grad(L_u), (p,), (g_r,))
    inner = sum((g_u[k] * g_r[k]).sum() for k in p)
    curv = sum((g_r[k] * Hu_gr[k]).sum() for k in p)
    return w_r * L_r(p) + w_f * L_u(p) - alpha * inner + alpha**2 / 2 * curv
''',
    },
    "taylor: the sign trap (+CE_f as the unlearning loss)": {
        "exercise": "ex-09-taylor-model",
        "fails": [1, 2, 3],
        "source": '''def taylor_objective(model, p, xf, yf, xr, yr, alpha, w_r=1.0, w_f=1.0):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_r = grad(L_r)(p)
    g_u, Hu_gr = jvp(grad(L_u), (p,), (g_r,))
    inner = sum((g_u[k] * g_r[k]).sum() for k in p)
    curv = sum((g_r[k] * Hu_gr[k]).sum() for k in p)
    return w_r * L_r(p) + w_f * (L_u(p) - alpha * inner + alpha**2 / 2 * curv)
''',
    },
    "mirror: LUR's roles (inner step on L_r, L_u at the look-ahead point)": {
        "exercise": "ex-09-mirror-metagrad",
        "fails": [1, 2, 3],
        "source": '''def mirror_meta_gradient(model, p, xf, yf, xr, yr, alpha, second_order=True):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)

    def inner(q):
        g = grad(L_r)(q)
        if not second_order:
            g = {k: v.detach() for k, v in g.items()}
        return {k: q[k] - alpha * g[k] for k in q}

    fast, pullback = vjp(inner, p)
    outer = pullback(grad(L_u)({k: v.detach() for k, v in fast.items()}))[0]
    g_r = grad(L_r)(p)
    return flatten({k: g_r[k] + outer[k] for k in p})
''',
    },
    "mirror: always first order (Hessian term dropped)": {
        "exercise": "ex-09-mirror-metagrad",
        "fails": [1, 2],
        "source": '''def mirror_meta_gradient(model, p, xf, yf, xr, yr, alpha, second_order=True):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_u = grad(L_u)(p)
    g_fast = grad(L_r)({k: p[k] - alpha * g_u[k] for k in p})
    return flatten({k: g_u[k] + g_fast[k] for k in p})
''',
    },
    "mirror: second_order ignored (always exact)": {
        "exercise": "ex-09-mirror-metagrad",
        "fails": [3],
        "source": '''def mirror_meta_gradient(model, p, xf, yf, xr, yr, alpha, second_order=True):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    inner = lambda q: {k: q[k] - alpha * v for k, v in grad(L_u)(q).items()}
    fast, pullback = vjp(inner, p)
    outer = pullback(grad(L_r)({k: v.detach() for k, v in fast.items()}))[0]
    g_u = grad(L_u)(p)
    return flatten({k: g_u[k] + outer[k] for k in p})
''',
    },
    "mirror: pull-back with (I + alpha H_u) instead of (I - alpha H_u)": {
        "exercise": "ex-09-mirror-metagrad",
        "fails": [1, 2],
        "source": '''def mirror_meta_gradient(model, p, xf, yf, xr, yr, alpha, second_order=True):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: -F.cross_entropy(functional_call(model, q, (xf,)), yf)
    g_u = grad(L_u)(p)
    g_fast = grad(L_r)({k: p[k] - alpha * g_u[k] for k in p})
    if not second_order:
        return flatten({k: g_u[k] + g_fast[k] for k in p})
    _, hv = jvp(grad(L_u), (p,), (g_fast,))
    return flatten({k: g_u[k] + g_fast[k] + alpha * hv[k] for k in p})
''',
    },
    "mirror: the sign trap (+CE_f as the unlearning loss)": {
        "exercise": "ex-09-mirror-metagrad",
        "fails": [1, 2, 3],
        "source": '''def mirror_meta_gradient(model, p, xf, yf, xr, yr, alpha, second_order=True):
    L_r = lambda q: F.cross_entropy(functional_call(model, q, (xr,)), yr)
    L_u = lambda q: F.cross_entropy(functional_call(model, q, (xf,)), yf)

    def inner(q):
        g = grad(L_u)(q)
        if not second_order:
            g = {k: v.detach() for k, v in g.items()}
        return {k: q[k] - alpha * g[k] for k in q}

    fast, pullback = vjp(inner, p)
    outer = pullback(grad(L_r)({k: v.detach() for k, v in fast.items()}))[0]
    g_u = grad(L_u)(p)
    return flatten({k: g_u[k] + outer[k] for k in p})
''',
    },
}
