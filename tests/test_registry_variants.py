"""The registry rows named after papers run those papers' mechanisms (chapters 05, 06 and 08).

``ltu`` uses the membership-inference forgetting signal of arXiv 2407.10494 and ``ltu_ascent`` our ascent variant;
``unilateral_surgery_rl`` and ``implicit_surgery_rl`` are the classification setting of the official code of
arXiv 2510.22124: the random-label forget objective, ε ≥ 0 and the gradient norm clipped to 1 after the surgery.
"""

import inspect

import pytest
import torch
import torch.nn.functional as F

from unlearnlib import UnlearnError
from unlearnlib.grads import flatten, trainable, unilateral_surgery as unilateral_direction
from unlearnlib.methods import REGISTRY, get_method
from unlearnlib.methods._loop import other_labels
from unlearnlib.methods.surgery import forget_objective

U32 = torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def setting(mlp_class_setting):
    return mlp_class_setting


def defaults(name):
    return {k: v.default for k, v in inspect.signature(get_method(name)).parameters.items()
            if v.default is not inspect.Parameter.empty}


def record_run(model, task, method, **kw):
    """Run ``method`` and record the inputs of every forward pass and, after every optimiser step, the flat
    direction that was handed to the optimiser (the ``.grad`` of the trainable parameters)."""
    inputs, directions = [], []
    hook = model.register_forward_pre_hook(lambda mod, args: inputs.append(args[0].detach().clone()))
    try:
        method(model, task, post_step=lambda m, opt: directions.append(
            flatten([p.grad.detach().clone() for p in m.parameters() if p.requires_grad])), **kw)
    finally:
        hook.remove()
    return inputs, directions


def rows_of(x, pool):
    """Positions in ``pool`` of the rows of ``x`` (digits has no two identical images in one set)."""
    same = (x.flatten(1)[:, None, :] == pool.flatten(1)[None]).all(-1)
    assert (same.sum(1) == 1).all()
    return same.float().argmax(1)


def flat_grad(model, loss):
    params = list(trainable(model).values())
    return flatten(torch.autograd.grad(loss, params))


# ---------------------------------------------------------------------------------------------------------------
# LTU: the registered name runs the membership-inference signal; ltu_ascent is the ascent variant.
# ---------------------------------------------------------------------------------------------------------------

def test_registered_ltu_uses_the_membership_signal_and_ltu_ascent_the_ascent(setting, monkeypatch):
    _, task, model = setting
    assert defaults("ltu")["forget_signal"] == "mia"
    assert defaults("ltu_ascent")["forget_signal"] == "ascent"
    ltu_module = inspect.getmodule(REGISTRY["ltu"])
    fitted = []
    real = ltu_module.train_membership_model
    monkeypatch.setattr(ltu_module, "train_membership_model", lambda *a, **k: fitted.append(1) or real(*a, **k))
    kw = dict(steps=3, stop_at=None, seed=2)
    mia = get_method("ltu")(model, task, **kw)
    assert len(fitted) == 1  # the attack is fitted once, at θ0
    asc = get_method("ltu_ascent")(model, task, **kw)
    assert len(fitted) == 1  # the ascent variant fits no attack
    # ltu_ascent is ltu with the ascent signal and its own defaults, step for step
    d = defaults("ltu_ascent")
    ref = ltu_module.ltu(model, task, forget_signal="ascent", lr=d["lr"], alpha=d["alpha"], project=d["project"],
                         **kw)
    for a, b in zip(asc.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(asc.parameters(), mia.parameters()))


# ---------------------------------------------------------------------------------------------------------------
# EUPMU in the official code's classification setting.
# ---------------------------------------------------------------------------------------------------------------

def test_random_label_objective_is_the_cross_entropy_against_other_labels():
    torch.manual_seed(0)
    logits, y = torch.randn(50, 10), torch.randint(0, 10, (50,))
    loss = forget_objective("random_label", 10, seed=4)
    first, second = loss(logits, y), loss(logits, y)
    g = torch.Generator().manual_seed(5)  # seed + 1, as random_label draws them
    labels = [other_labels(y, 10, g) for _ in range(2)]
    assert not any((lab == y).any() for lab in labels)  # never the true label
    assert torch.equal(first, F.cross_entropy(logits, labels[0]))
    assert torch.equal(second, F.cross_entropy(logits, labels[1]))  # redrawn at every call
    assert forget_objective("ascent", 10) is None  # −CE_f, the book's objective
    with pytest.raises(UnlearnError):
        forget_objective("kl", 10)


@pytest.mark.parametrize("name", ["unilateral_surgery_rl", "implicit_surgery_rl"])
def test_paper_setting_defaults_and_negative_eps_refused(setting, name):
    _, task, model = setting
    d = defaults(name)
    assert d["eps"] == 0.0 and d["max_norm"] == 1.0
    with pytest.raises(UnlearnError):
        get_method(name)(model, task, steps=1, eps=-1.0)
    with pytest.raises(UnlearnError):
        get_method(name)(model, task, steps=1, max_norm=0.0)


@pytest.mark.parametrize("name", ["unilateral_surgery_rl", "implicit_surgery_rl"])
def test_clip_bounds_the_norm_of_every_update_direction(setting, name):
    _, task, model = setting
    kw = dict(steps=8, stop_at=None, lr=1e-3)
    _, free = record_run(model, task, get_method(name), max_norm=1e9, **kw)
    norms = torch.stack([d.norm() for d in free])
    cap = float(norms.median()) / 2  # half of the unclipped norms: the clip must act on most steps
    _, clipped = record_run(model, task, get_method(name), max_norm=cap, **kw)
    got = torch.stack([d.norm() for d in clipped])
    assert (norms > cap).sum() >= 4
    assert (got <= cap * (1 + 8 * U32)).all()  # rescaling to the cap: a few roundings of fp32
    assert (got[0] - cap).abs() <= 8 * U32 * cap or norms[0] <= cap


def test_unilateral_rl_first_step_is_the_clipped_surgery_of_the_random_label_gradient(setting):
    _, task, model = setting
    seed, cap = 3, 0.05
    inputs, dirs = record_run(model, task, get_method("unilateral_surgery_rl"), steps=1,
                              stop_at=None, seed=seed, max_norm=cap, guard=None)  # the guard's slice: no step
    # forget_retain_grads: the forget batch first, then the retain batch (after a one-sample probe of the model)
    xf, xr = [x for x in inputs if len(x) > 1]
    yf = task.y_forget[rows_of(xf, task.x_forget)]
    yr = task.y_retain[rows_of(xr, task.x_retain)]
    rl = other_labels(yf, 10, torch.Generator().manual_seed(seed + 1))
    g_f = flat_grad(model, F.cross_entropy(model(xf), rl))
    g_r = flat_grad(model, F.cross_entropy(model(xr), yr))
    d, _ = unilateral_direction(g_f, g_r, 0.0)
    assert torch.dot(d, g_r) >= -8 * U32 * d.norm() * g_r.norm()  # ε = 0: no first-order retain rise
    d = d * cap / d.norm().clamp_min(cap)
    assert (dirs[0] - d).norm() <= 1e-5 * d.norm()  # the same fp32 arithmetic, possibly reassociated


def test_implicit_rl_first_step_is_the_clipped_random_label_gradient(setting):
    _, task, model = setting
    seed, cap = 3, 0.05
    inputs, dirs = record_run(model, task, get_method("implicit_surgery_rl"), steps=1,
                              stop_at=None, seed=seed, max_norm=cap, guard=None)  # the guard's slice: no step
    # one forward of the forget and retain batches together, then the retain batch again to measure; λ0 = 0
    both, _ = [x for x in inputs if len(x) > 1]
    xf = both[:32]
    yf = task.y_forget[rows_of(xf, task.x_forget)]
    rl = other_labels(yf, 10, torch.Generator().manual_seed(seed + 1))
    g = flat_grad(model, F.cross_entropy(model(xf), rl))
    assert g.norm() > cap
    assert (dirs[0] - g * cap / g.norm()).norm() <= 1e-5 * cap
