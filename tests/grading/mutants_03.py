"""Planted wrong solutions of the graded exercises of chapter 03 (notebooks/03_stronger_baselines.py).

Each entry is a complete wrong definition of the graded function and the 1-based indices of the exercise's test
cells (in source order, public and hidden alike) that it must fail; the grader must give it exactly
total - len(fails) points.
"""

MUTANTS = {
    "masked_trajectory: the velocity b0 ignored (empty buffer)": {
        "exercise": "ex-03-masked-velocity",
        "fails": [2, 3],
        "source": '''def masked_trajectory(theta0, b0, lr, steps, momentum, weight_decay):
    theta, buf, out = theta0.clone(), torch.zeros_like(theta0), [theta0.clone()]
    for _ in range(steps):
        buf = momentum * buf + weight_decay * theta
        theta = theta - lr * buf
        out.append(theta)
    return torch.stack(out)
''',
    },
    "masked_trajectory: b0 not multiplied by the momentum at the first step": {
        "exercise": "ex-03-masked-velocity",
        "fails": [2, 3],
        "source": '''def masked_trajectory(theta0, b0, lr, steps, momentum, weight_decay):
    theta, buf, out = theta0.clone(), None, [theta0.clone()]
    for _ in range(steps):
        g = weight_decay * theta
        buf = b0 + g if buf is None else momentum * buf + g
        theta = theta - lr * buf
        out.append(theta)
    return torch.stack(out)
''',
    },
    "masked_trajectory: decoupled weight decay": {
        "exercise": "ex-03-masked-velocity",
        "fails": [1, 3],
        "source": '''def masked_trajectory(theta0, b0, lr, steps, momentum, weight_decay):
    theta, buf, out = theta0.clone(), b0.clone(), [theta0.clone()]
    for _ in range(steps):
        buf = momentum * buf
        theta = theta - lr * (buf + weight_decay * theta)
        out.append(theta)
    return torch.stack(out)
''',
    },
    "masked_trajectory: weight decay with the wrong sign": {
        "exercise": "ex-03-masked-velocity",
        "fails": [1, 3],
        "source": '''def masked_trajectory(theta0, b0, lr, steps, momentum, weight_decay):
    theta, buf, out = theta0.clone(), b0.clone(), [theta0.clone()]
    for _ in range(steps):
        buf = momentum * buf - weight_decay * theta
        theta = theta - lr * buf
        out.append(theta)
    return torch.stack(out)
''',
    },
    "masked_trajectory: the closed form of eq-03-masked-drift instead of the recursion": {
        "exercise": "ex-03-masked-velocity",
        "fails": [1, 2, 3],
        "source": '''def masked_trajectory(theta0, b0, lr, steps, momentum, weight_decay):
    c = 1 - lr * weight_decay / (1 - momentum)
    return torch.stack([c**t * theta0 for t in range(steps + 1)])
''',
    },
    "masked_trajectory: row t holds theta_{t+1} (off by one)": {
        "exercise": "ex-03-masked-velocity",
        "fails": [1, 2, 3],
        "source": '''def masked_trajectory(theta0, b0, lr, steps, momentum, weight_decay):
    theta, buf, out = theta0.clone(), b0.clone(), []
    for _ in range(steps + 1):
        buf = momentum * buf + weight_decay * theta
        theta = theta - lr * buf
        out.append(theta)
    return torch.stack(out)
''',
    },
    "per_tensor_saliency_mask: one global top-k (SalUn's mask)": {
        "exercise": "ex-03-per-tensor-mask",
        "fails": [2, 3],
        "source": '''def per_tensor_saliency_mask(grads, ratio):
    s = torch.cat([g.abs().flatten() for g in grads.values()])
    tau = s.sort(descending=True).values[round(ratio * len(s)) - 1]
    return {n: (g.abs() >= tau).float() for n, g in grads.items()}
''',
    },
    "per_tensor_saliency_mask: signed gradient instead of its magnitude": {
        "exercise": "ex-03-per-tensor-mask",
        "fails": [1, 2, 3],
        "source": '''def per_tensor_saliency_mask(grads, ratio):
    masks = {}
    for name, g in grads.items():
        s = g.flatten()
        m = torch.zeros_like(s)
        m[s.topk(round(ratio * s.numel())).indices] = 1.0
        masks[name] = m.view_as(g)
    return masks
''',
    },
    "per_tensor_saliency_mask: k truncated instead of rounded": {
        "exercise": "ex-03-per-tensor-mask",
        "fails": [2, 3],
        "source": '''def per_tensor_saliency_mask(grads, ratio):
    masks = {}
    for name, g in grads.items():
        s = g.abs().flatten()
        m = torch.zeros_like(s)
        m[s.topk(int(ratio * s.numel())).indices] = 1.0
        masks[name] = m.view_as(g)
    return masks
''',
    },
    "per_tensor_saliency_mask: strict threshold at the k-th largest (one short)": {
        "exercise": "ex-03-per-tensor-mask",
        "fails": [1, 2, 3],
        "source": '''def per_tensor_saliency_mask(grads, ratio):
    masks = {}
    for name, g in grads.items():
        s = g.abs().flatten()
        tau = s.sort(descending=True).values[round(ratio * s.numel()) - 1]
        masks[name] = (g.abs() > tau).float()
    return masks
''',
    },
    "per_tensor_saliency_mask: top-k along the last axis of each tensor": {
        "exercise": "ex-03-per-tensor-mask",
        "fails": [1, 2, 3],
        "source": '''def per_tensor_saliency_mask(grads, ratio):
    masks = {}
    for name, g in grads.items():
        s = g.abs()
        k = round(ratio * s.shape[-1])
        m = torch.zeros_like(s)
        m.scatter_(-1, s.topk(k, dim=-1).indices, 1.0)
        masks[name] = m
    return masks
''',
    },
}
