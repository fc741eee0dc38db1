"""Planted wrong solutions of the graded exercises of chapter 02 (notebooks/02_first_order_baselines.py).

Each entry is a complete wrong definition of the graded function and the 1-based indices of the exercise's test
cells (in source order, public and hidden alike) that it must fail; the grader must give it exactly
total - len(fails) points.
"""

MUTANTS = {
    "random_label_grad: labels drawn from all C classes (SalUn's code)": {
        "exercise": "ex-02-rl-logit-grad",
        "fails": [1, 2, 3],
        "source": '''def random_label_grad(z, y):
    return torch.softmax(z, dim=1) - 1.0 / z.shape[1]
''',
    },
    "random_label_grad: sign flipped (the ascent direction)": {
        "exercise": "ex-02-rl-logit-grad",
        "fails": [1, 2, 3],
        "source": '''def random_label_grad(z, y):
    p = torch.softmax(z, dim=1)
    target = torch.full_like(z, 1.0 / (z.shape[1] - 1))
    target[torch.arange(len(y)), y] = 0.0
    return target - p
''',
    },
    "random_label_grad: softmax over the batch axis": {
        "exercise": "ex-02-rl-logit-grad",
        "fails": [1, 2, 3],
        "source": '''def random_label_grad(z, y):
    p = torch.softmax(z, dim=0)
    target = torch.full_like(z, 1.0 / (z.shape[1] - 1))
    target[torch.arange(len(y)), y] = 0.0
    return p - target
''',
    },
    "random_label_grad: gradient of the batch mean": {
        "exercise": "ex-02-rl-logit-grad",
        "fails": [1, 2, 3],
        "source": '''def random_label_grad(z, y):
    p = torch.softmax(z, dim=1)
    target = torch.full_like(z, 1.0 / (z.shape[1] - 1))
    target[torch.arange(len(y)), y] = 0.0
    return (p - target) / len(y)
''',
    },
    "random_label_grad: one_hot without num_classes": {
        "exercise": "ex-02-rl-logit-grad",
        "fails": [3],
        "source": '''def random_label_grad(z, y):
    wrong = 1.0 - torch.nn.functional.one_hot(y).to(z.dtype)
    return torch.softmax(z, dim=1) - wrong / (z.shape[1] - 1)
''',
    },
    "random_label_grad: true class not excluded": {
        "exercise": "ex-02-rl-logit-grad",
        "fails": [1, 2, 3],
        "source": '''def random_label_grad(z, y):
    return torch.softmax(z, dim=1) - 1.0 / (z.shape[1] - 1)
''',
    },
    "sgd_trajectory: decoupled weight decay (added after the buffer)": {
        "exercise": "ex-02-sgd-trajectory",
        "fails": [2],
        "source": '''def sgd_trajectory(theta0, directions, lr, momentum, weight_decay):
    theta, buf, out = theta0.clone(), None, [theta0.clone()]
    for d in directions:
        buf = d if buf is None else momentum * buf + d
        theta = theta - lr * (buf + weight_decay * theta)
        out.append(theta)
    return torch.stack(out)
''',
    },
    "sgd_trajectory: dampened buffer, (1 - momentum) g": {
        "exercise": "ex-02-sgd-trajectory",
        "fails": [1, 2],
        "source": '''def sgd_trajectory(theta0, directions, lr, momentum, weight_decay):
    theta, buf, out = theta0.clone(), None, [theta0.clone()]
    for d in directions:
        g = d + weight_decay * theta
        buf = g if buf is None else momentum * buf + (1 - momentum) * g
        theta = theta - lr * buf
        out.append(theta)
    return torch.stack(out)
''',
    },
    "sgd_trajectory: Nesterov look-ahead": {
        "exercise": "ex-02-sgd-trajectory",
        "fails": [1, 2],
        "source": '''def sgd_trajectory(theta0, directions, lr, momentum, weight_decay):
    theta, buf, out = theta0.clone(), None, [theta0.clone()]
    for d in directions:
        g = d + weight_decay * theta
        buf = g if buf is None else momentum * buf + g
        theta = theta - lr * (g + momentum * buf)
        out.append(theta)
    return torch.stack(out)
''',
    },
    "sgd_trajectory: weight decay with the wrong sign": {
        "exercise": "ex-02-sgd-trajectory",
        "fails": [2, 3],
        "source": '''def sgd_trajectory(theta0, directions, lr, momentum, weight_decay):
    theta, buf, out = theta0.clone(), None, [theta0.clone()]
    for d in directions:
        g = d - weight_decay * theta
        buf = g if buf is None else momentum * buf + g
        theta = theta - lr * buf
        out.append(theta)
    return torch.stack(out)
''',
    },
    "sgd_trajectory: each iterate recorded before its step (off by one)": {
        "exercise": "ex-02-sgd-trajectory",
        "fails": [1, 2, 3],
        "source": '''def sgd_trajectory(theta0, directions, lr, momentum, weight_decay):
    theta, buf, out = theta0.clone(), None, [theta0.clone()]
    for d in directions:
        out.append(theta)
        g = d + weight_decay * theta
        buf = g if buf is None else momentum * buf + g
        theta = theta - lr * buf
    return torch.stack(out)
''',
    },
    "sgd_trajectory: no momentum buffer carried over": {
        "exercise": "ex-02-sgd-trajectory",
        "fails": [1, 2],
        "source": '''def sgd_trajectory(theta0, directions, lr, momentum, weight_decay):
    theta, out = theta0.clone(), [theta0.clone()]
    for d in directions:
        theta = theta - lr * (d + weight_decay * theta)
        out.append(theta)
    return torch.stack(out)
''',
    },
}
