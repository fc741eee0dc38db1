"""Part I unlearning methods and their registry (contract item 2; chapters 02-03)."""

from __future__ import annotations

import pytest
import torch

from conftest import same_state, state_of
from unlearnlib import UnlearnError
from unlearnlib.grads import loss_grad
from unlearnlib.methods import REGISTRY, get_method, saliency_mask
from unlearnlib.methods._loop import MaskKeeper, ce, forget_target, other_labels, run_unlearning
from unlearnlib.metrics import accuracy
from unlearnlib.models import make_model

PART_I = ("retrain", "finetune", "ga", "neggrad_plus", "random_label", "scrub", "salun", "l1_sparse")
BASELINES = PART_I[1:]


def test_registry_has_every_part_one_name():
    assert set(PART_I) <= set(REGISTRY)
    for name in PART_I:
        assert callable(REGISTRY[name]) and get_method(name) is REGISTRY[name]


def test_unknown_method_lists_known_names():
    with pytest.raises(UnlearnError, match="unknown method") as info:
        get_method("gradient_descent")
    assert all(name in str(info.value) for name in PART_I) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Methods never mutate their input
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PART_I)
def test_method_does_not_mutate_input(name, original, class_task, cfg, oracle):
    before = state_of(original)
    flags = [p.requires_grad for p in original.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in original.parameters()]
    kwargs = dict(train_config=cfg) if name == "retrain" else dict(steps=3)
    out = REGISTRY[name](original, class_task, seed=0, **kwargs)
    assert same_state(before, state_of(original))
    assert not original.training
    assert all((p.grad is None) if g is None else torch.equal(p.grad, g) for p, g in zip(original.parameters(), grads))
    assert [p.requires_grad for p in original.parameters()] == flags
    # ... and they did return something else: a new model, in eval mode, with other weights.
    assert out is not original and not out.training
    assert not same_state(before, state_of(out))
    if name != "retrain":
        assert all(a.data_ptr() != b.data_ptr() for a, b in zip(out.parameters(), original.parameters()))


# ---------------------------------------------------------------------------------------------------------------
# Class-wise forgetting of class 3 with the library defaults, seed 0
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def unlearned(original, class_task):
    """``name -> (model, log)``: each baseline with its default hyperparameters on seed 0, run once."""
    memo = {}

    def get(name):
        if name not in memo:
            log = []
            memo[name] = (REGISTRY[name](original, class_task, seed=0, log=log), log)
        return memo[name]
    return get


# Measured under these tests' conditions (one thread, original of seed 0; forget acc / RA / TA in %; original
# 100 / 100 / 98.3, oracle 0 / 100 / 99.5). finetune, neggrad_plus, scrub and l1_sparse forget class 3 and keep
# RA/TA >= 97. ga, random_label and salun forget it too, but at their oracle-free stopping point they have lost
# 20-30 points on the nine remaining classes (RA 69-77 on seed 0, 88-97 on the held-out tuning seeds 100-104):
# ascending the loss of a whole class wrecks features the other classes share. That disagrees with the
# expectation that every baseline keeps the remaining classes; the chapters say so. The second test pins the
# damage from both sides, so a change that fixes it (or makes it worse) shows up here.
KEEPERS = ("finetune", "neggrad_plus", "scrub", "l1_sparse")
DAMAGERS = ("ga", "random_label", "salun")


@pytest.mark.parametrize("name", BASELINES)
def test_method_lowers_forget_accuracy(name, unlearned, original, class_task):
    # The original is 100 % accurate on class 3; the oracle 0 %. "Forgetting" means at least halving it: the
    # methods reach 0-10 %, well inside this margin.
    acc0 = accuracy(original, class_task.x_forget, class_task.y_forget)
    model, _ = unlearned(name)
    acc = accuracy(model, class_task.x_forget, class_task.y_forget)
    assert acc <= acc0 - 50, f"{name}: forget accuracy {acc:.1f} % (original {acc0:.1f} %)"


@pytest.mark.parametrize("name", KEEPERS)
def test_method_keeps_the_remaining_classes(name, unlearned, class_task):
    # A method that loses more than ~10 points on the remaining classes damages knowledge it was not asked to remove.
    model, _ = unlearned(name)
    ra = accuracy(model, class_task.x_retain, class_task.y_retain)
    ta = accuracy(model, class_task.x_test, class_task.y_test)
    assert ra >= 90 and ta >= 90, f"{name}: RA {ra:.1f} %, TA {ta:.1f} %"


@pytest.mark.parametrize("name", DAMAGERS)
def test_ascent_style_methods_damage_but_do_not_destroy_the_remaining_classes(name, unlearned, class_task):
    # Chance on the nine remaining classes is 11 %; the original is at 100 %. Measured: RA 69-77 % on seed 0.
    model, _ = unlearned(name)
    ra = accuracy(model, class_task.x_retain, class_task.y_retain)
    assert 50 <= ra <= 95, f"{name}: RA {ra:.1f} %"


@pytest.mark.parametrize("name", ["ga", "random_label", "salun", "neggrad_plus"])
def test_auto_stop_at_forget_target(name, unlearned, class_task):
    # stop_at="auto": stop at the end of the first pass whose forget accuracy is at or below chance (10 %).
    _, log = unlearned(name)
    assert forget_target(class_task, None) == pytest.approx(10.0)
    assert log and log[-1]["forget_acc"] <= 10.0
    assert all(entry["forget_acc"] > 10.0 for entry in log[:-1])


def test_forget_target_random_is_test_accuracy(original, random_task):
    assert forget_target(random_task, original) == pytest.approx(accuracy(original, random_task.x_test,
                                                                          random_task.y_test))


def test_methods_are_deterministic_from_seed(original, class_task):
    a = REGISTRY["ga"](original, class_task, seed=0, steps=5, stop_at=None)
    b = REGISTRY["ga"](original, class_task, seed=0, steps=5, stop_at=None)
    c = REGISTRY["ga"](original, class_task, seed=1, steps=5, stop_at=None)
    assert same_state(state_of(a), state_of(b))
    assert not same_state(state_of(a), state_of(c))


def test_steps_budget_is_honoured(original, class_task):
    log = []
    run_unlearning(original, class_task, lambda m, xf, yf, xr, yr: ce(m, xr, yr).backward(), epochs=100, lr=0.01,
                   steps=7, log=log)
    # forget set: 137 samples, batches of 32 -> 5 steps per pass; 7 steps = one full pass + the final step.
    assert [e["step"] for e in log] == [5, 7]


def test_l1_sparse_penalty_never_turns_negative(class_task):
    # lr tiny and α huge: the update is dominated by the l1 term, which can only shrink ‖θ‖₁ while α_t ≥ 0.
    # epochs=0.1 implies 4 steps; a budget of 20 steps must not reward large weights in the last 16.
    model = make_model("cnn", class_task.data.input_shape, 10, seed=0).eval()
    l1 = lambda m: sum(p.abs().sum().item() for p in m.parameters())
    out = REGISTRY["l1_sparse"](model, class_task, epochs=0.1, steps=20, lr=1e-6, alpha=1e3, momentum=0.0,
                                weight_decay=0.0)
    assert l1(out) <= l1(model)


def test_other_labels_always_differ():
    y = torch.arange(10).repeat(100)
    z = other_labels(y, 10, torch.Generator().manual_seed(0))
    assert (z != y).all() and z.min() >= 0 and z.max() <= 9
    assert len(set(z[y == 0].tolist())) == 9  # every other class is drawn


# ---------------------------------------------------------------------------------------------------------------
# SalUn: the saliency mask and the MaskKeeper
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def half_mask(original, class_task):
    return saliency_mask(original, class_task, ratio=0.5)


@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0])
def test_saliency_mask_ratio(ratio, original, class_task, half_mask):
    masks = half_mask if ratio == 0.5 else saliency_mask(original, class_task, ratio=ratio)
    params = dict(original.named_parameters())
    assert list(masks) == list(params)
    assert all(masks[n].shape == params[n].shape for n in masks)
    flat = torch.cat([m.reshape(-1) for m in masks.values()])
    assert set(flat.unique().tolist()) <= {0.0, 1.0}
    P, k = flat.numel(), round(ratio * flat.numel())
    ones = int(flat.sum().item())
    assert k <= ones <= k + max(1, P // 1000), (ones, k)  # ties at the threshold may add a few


def test_saliency_mask_ranks_globally_by_forget_gradient(original, class_task, half_mask):
    # |D_f| = 137 < the mask's batch of 256, so the saliency is |∇ CE_f(θ0)| over the whole forget set.
    g = loss_grad(original.eval(), class_task.x_forget, class_task.y_forget).abs()
    m = torch.cat([half_mask[n].reshape(-1) for n in half_mask]).bool()
    assert g[m].min() >= g[~m].max() * (1 - 1e-4)
    # A global threshold: layers get very different shares (a per-layer top-50 % would give each layer 50 %).
    shares = [half_mask[n].mean().item() for n in half_mask if half_mask[n].numel() > 100]
    assert max(shares) - min(shares) > 0.2


def test_saliency_mask_ratio_out_of_range(original, class_task):
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(UnlearnError):
            saliency_mask(original, class_task, ratio=bad)


SALUN_STEPS = dict(steps=20, stop_at=None, momentum=0.9, weight_decay=5e-4)


def _masked_and_salient_changes(model, original, masks):
    frozen_moved = salient_moved = n_frozen = n_salient = 0
    start = dict(original.named_parameters())
    for n, p in model.named_parameters():
        changed = p.detach() != start[n].detach()
        keep = masks[n].bool()
        frozen_moved += changed[~keep].sum().item()
        salient_moved += changed[keep].sum().item()
        n_frozen += (~keep).sum().item()
        n_salient += keep.sum().item()
    return frozen_moved, n_frozen, salient_moved, n_salient


def test_salun_keeps_masked_weights_bit_identical(original, class_task, half_mask):
    from unlearnlib.methods import salun

    out = salun(original, class_task, masks=half_mask, seed=0, **SALUN_STEPS)
    for n, p in out.named_parameters():
        keep = half_mask[n].bool()
        assert torch.equal(p.detach()[~keep], original.get_parameter(n).detach()[~keep]), n
    frozen_moved, n_frozen, salient_moved, n_salient = _masked_and_salient_changes(out, original, half_mask)
    assert frozen_moved == 0 and n_frozen > 0
    assert salient_moved > 0.9 * n_salient  # the salient half did train


def test_gradient_masking_alone_does_not_keep_masked_weights(original, class_task, half_mask):
    """The naive SalUn loop (mask the gradient, no restore): weight decay and momentum move masked weights."""
    g = torch.Generator().manual_seed(1)

    def masked_step(m, xf, yf, xr, yr):
        (ce(m, xf, other_labels(yf, 10, g)) + ce(m, xr, yr)).backward()
        for n, p in m.named_parameters():
            p.grad.mul_(half_mask[n])
    naive = run_unlearning(original, class_task, masked_step, epochs=1, lr=3e-4, **SALUN_STEPS)
    frozen_moved, n_frozen, _, _ = _masked_and_salient_changes(naive, original, half_mask)
    assert frozen_moved > 0.9 * n_frozen  # weight decay shrinks every non-zero masked weight
    # Without weight decay and momentum, gradient masking alone would have been enough: it is those two.
    plain = run_unlearning(original, class_task, masked_step, epochs=1, lr=3e-4, steps=20, momentum=0.0,
                           weight_decay=0.0)
    assert _masked_and_salient_changes(plain, original, half_mask)[0] == 0


def test_mask_keeper_restores_and_clears_momentum():
    lin = torch.nn.Linear(3, 2)
    start = state_of(lin)
    mask = {"weight": torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), "bias": torch.tensor([0.0, 1.0])}
    keeper = MaskKeeper(lin, mask)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        lin(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
        keeper(lin, opt)
    for n, p in lin.named_parameters():
        keep = mask[n].bool()
        assert torch.equal(p.detach()[~keep], start[n][~keep])
        assert (p.detach()[keep] != start[n][keep]).all()
        buf = opt.state[p]["momentum_buffer"]
        assert (buf[~keep] == 0).all() and (buf[keep] != 0).all()


def test_salun_accepts_a_post_step_hook_that_sees_the_restored_weights(original, class_task, half_mask):
    # Every method on the shared loop takes post_step (chapter 04's ConflictTracker, chapter 03's recorders); SalUn
    # used to pass its own MaskKeeper as post_step, so a caller's hook raised "multiple values for post_step".
    from unlearnlib.methods import salun

    start = {n: p.detach().clone() for n, p in original.named_parameters()}
    seen = []

    def hook(model, opt):
        frozen_ok = all(torch.equal(p.detach()[half_mask[n] == 0], start[n][half_mask[n] == 0])
                        for n, p in model.named_parameters())
        seen.append(frozen_ok)
    salun(original, class_task, masks=half_mask, seed=0, post_step=hook, **SALUN_STEPS)
    assert len(seen) == SALUN_STEPS["steps"] and all(seen)


def test_salun_with_ratio_one_is_random_labels(original, class_task):
    # Every weight salient: the mask multiplies by 1 and restores nothing, so SalUn is random labels step for step.
    from unlearnlib.methods import random_label, salun

    kw = dict(seed=0, steps=12, lr=3e-4, stop_at=None)
    a, b = salun(original, class_task, ratio=1.0, **kw), random_label(original, class_task, **kw)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not same_state(state_of(a), state_of(original))


def test_scrub_first_max_step_is_pure_weight_decay(original, class_task):
    # At θ0 the student is the teacher, so the KL and its gradient vanish (chapter 03, eq-03-kl-grad): one full-batch
    # max step moves θ only by weight decay, θ1 = θ0 (1 − ηλ). A wrong KL (e.g. to the labels) would fail this.
    from unlearnlib.methods import scrub

    lr, wd = 0.1, 5e-4
    out = scrub(original, class_task, steps=1, lr=lr, batch_size=10_000, stop_max_at=None, weight_decay=wd)
    for p, q in zip(out.parameters(), original.parameters()):
        expected = q.detach() * (1 - lr * wd)
        assert torch.allclose(p.detach(), expected, rtol=1e-6, atol=1e-7)
    moved = max((p - q).abs().max().item() for p, q in zip(out.parameters(), original.parameters()))
    assert moved > 1e-5


def test_scrub_without_max_passes_does_not_forget(original, class_task):
    # The forgetting of SCRUB is the max passes' work: distillation + CE on D_r alone keeps class 3 (chapter 03).
    from unlearnlib.methods import scrub

    out = scrub(original, class_task, seed=0, max_epochs=0, epochs=1)
    assert accuracy(out, class_task.x_forget, class_task.y_forget) > 90
