"""The language-model unlearning methods (unlearnlib.methods.language, chapter 15) on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unlearnlib import cost
from unlearnlib.errors import UnlearnError
from unlearnlib.facts import make_facts, make_facts_task
from unlearnlib.grads import flatten, pcgrad as pcgrad_ref, project_orthogonal, trainable
from unlearnlib.grads import unilateral_surgery as unilateral_ref
from unlearnlib.methods import language as L
from unlearnlib.methods.implicit import dual_step
from unlearnlib.transformer import LMConfig, answer_logprob, answer_nll, lm_per_sample_grads, original_lm

TINY = LMConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=24, epochs=15, batch_size=32, lr=1e-2)
#: The step tests read a direction back as (θ − θ') / η. In float32 the subtraction alone loses ~ulp(θ) / (η|d|)
#: per coordinate (1e-2 at η = 1e-3), so they run in float64: rounding ~1e-16 |θ| / (η |d|) ≈ 1e-10, plus the
#: same sums taken in another order (the loop shuffles the rows); 1e-6 relative to the norm is far above both.
RTOL = 1e-6


@pytest.fixture(scope="module")
def tiny():
    task = make_facts_task(make_facts(n_people=10, seed=0), 0.2, seed=0)
    model = original_lm(task, TINY, seed=0, use_cache=False)
    return task, model


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _full(task):
    """The whole forget and retain encodings: with a batch size above their sizes every step sees all rows."""
    f = L.encode_training(task.tokenizer, task.forget)
    r = L.encode_training(task.tokenizer, list(task.retain) + list(task.general))
    return f, r, 1 + max(len(f[0]), len(r[0]))


@pytest.mark.parametrize("name", sorted(L.LANGUAGE_REGISTRY))
def test_every_method_returns_a_new_model_and_leaves_the_input_alone(tiny, name):
    task, model = tiny
    before = _state(model)
    fn = L.LANGUAGE_REGISTRY[name]
    out = fn(model, task, steps=2, stop_at=None, batch_size=4)
    assert fn.modality == "language"
    assert out is not model
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{name} changed the input's {k}"
    assert all(torch.isfinite(p).all() for p in out.parameters())
    assert any(not torch.equal(p, model.state_dict()[n]) for n, p in out.state_dict().items())


def test_ga_raises_the_forget_loss(tiny):
    task, model = tiny
    ids, tgt = L.encode_training(task.tokenizer, task.forget)
    out = L.ga(model, task, steps=5, stop_at=None, lr=1e-3, batch_size=8)
    with torch.no_grad():
        assert answer_nll(out, ids, tgt).mean() > answer_nll(model, ids, tgt).mean()


def test_npo_loss_equals_its_formula_on_a_hand_made_example():
    logp = torch.tensor([-1.0, -2.5, -0.2], dtype=torch.float64)
    ref = torch.tensor([-1.5, -1.0, -0.2], dtype=torch.float64)
    beta = 0.5
    by_hand = sum(math.log(1 + math.exp(beta * (a - b))) for a, b in zip(logp.tolist(), ref.tolist()))
    assert math.isclose(float(L.npo_loss(logp, ref, beta)), 2 / beta * by_hand / 3, rel_tol=1e-12)
    # (π/π_ref)^β written out, the paper's form
    ratio = torch.exp(logp - ref) ** beta
    assert torch.allclose(L.npo_loss(logp, ref, beta), (2 / beta * torch.log1p(ratio)).mean(), rtol=1e-12)


def test_npo_gradient_at_the_reference_is_the_sequence_level_ascent_gradient(tiny):
    # At θ = θ_ref each sample's weight 2π^β / (π^β + π_ref^β) is 1: ∇L_NPO = ∇ mean log π(a|q).
    task, model = tiny
    m = L.fresh_copy(model)
    ids, tgt = L.encode_training(task.tokenizer, task.forget)
    with torch.no_grad():
        ref = answer_logprob(m, ids, tgt)
    g_npo = L._flat_grad(m, L.npo_loss(answer_logprob(m, ids, tgt), ref, beta=0.7))
    g_ga = L._flat_grad(m, answer_logprob(m, ids, tgt).mean())
    assert torch.allclose(g_npo, g_ga, rtol=RTOL, atol=RTOL * float(g_ga.norm()) / math.sqrt(g_ga.numel()))


def test_rmu_control_and_loss():
    c = L.rmu_control(8, steering=6.5, seed=3)
    assert math.isclose(float(c.norm()), 6.5, rel_tol=1e-6) and (c >= 0).all()
    h_f = c.expand(2, 3, 8).clone()
    h_r = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    ones = torch.ones(2, 3, dtype=torch.bool)
    # on target and unchanged: zero loss
    assert float(L.rmu_loss(h_f, ones, c, h_r, h_r, ones, alpha=5.0)) == 0.0
    shift = torch.zeros(8)
    shift[0] = 2.0
    mask = ones.clone()
    mask[1] = False   # padding rows are not scored
    loss = L.rmu_loss(h_f + shift, mask, c, h_r + 2 * shift, h_r, ones, alpha=5.0)
    assert math.isclose(float(loss), 4.0 / 8 + 5.0 * 16.0 / 8, rel_tol=1e-6)


def test_rmu_moves_only_the_mlps_of_its_layers(tiny):
    task, model = tiny
    out = L.rmu(model, task, steps=3, stop_at=None, layer=1, lr=1e-2)
    allowed = set(L.rmu_parameters(model, 1))
    assert allowed and all(".mlp" in n for n in allowed)
    for n, p in out.named_parameters():
        moved = not torch.equal(p, dict(model.named_parameters())[n])
        assert moved == (n in allowed), n
    assert all(p.requires_grad for p in out.parameters())


def _one_step(fn, model, task, lr, **hp):
    f, r, B = _full(task)
    assert next(model.parameters()).dtype == torch.float64
    out = fn(model, task, steps=1, stop_at=None, batch_size=B, lr=lr, **hp)
    before, after = flatten(trainable(model)), flatten(trainable(out))
    return (before - after) / lr, f, r


def _close(a, b):
    a = a.detach()
    assert torch.allclose(a, b, rtol=RTOL, atol=RTOL * float(b.norm()) / math.sqrt(b.numel())), \
        float((a - b).norm() / b.norm())


def test_pcgrad_and_unilateral_steps_are_the_grads_directions(tiny):
    task, model = tiny
    model = L.fresh_copy(model).double().eval()
    m = L.fresh_copy(model)
    lr = 1e-3
    d, f, r = _one_step(L.pcgrad, model, task, lr, beta=0.7, momentum=0.0)
    g_f, g_r = L.forget_retain_grads(m, f, r)
    _close(d, pcgrad_ref([0.3 * g_f, 0.7 * g_r]))
    for eps in (0.0, -0.5):
        d, _, _ = _one_step(L.unilateral_surgery, model, task, lr, eps=eps, momentum=0.0)
        _close(d, unilateral_ref(g_f, g_r, eps)[0])


def test_orthograd_step_is_the_projection_on_per_sample_retain_gradients(tiny):
    task, model = tiny
    model = L.fresh_copy(model).double().eval()
    m = L.fresh_copy(model)
    lr, alpha = 1e-3, 0.3
    d, f, r = _one_step(L.orthograd, model, task, lr, alpha=alpha)
    g_u = L._flat_grad(m, answer_nll(m, *f).mean())
    G = flatten_rows = torch.cat([v.reshape(v.shape[0], -1) for v in lm_per_sample_grads(m, *r).values()], dim=1)
    assert flatten_rows.shape[0] == len(r[0])
    _close(d, alpha * G.mean(0) - (1 - alpha) * project_orthogonal(g_u, G))


def test_implicit_surgery_first_step_and_dual_update(tiny):
    task, model = tiny
    model = L.fresh_copy(model).double().eval()
    m = L.fresh_copy(model)
    lr, eps, dual_lr = 1e-3, -0.2, 3.0
    history = []
    d, f, r = _one_step(L.implicit_surgery, model, task, lr, eps=eps, dual_lr=dual_lr, lam0=0.0, momentum=0.0,
                        history=history)
    g_f, _ = L.forget_retain_grads(m, f, r)
    _close(d, g_f)   # λ0 = 0: the first step is gradient ascent
    out = L.implicit_surgery(model, task, steps=1, stop_at=None, batch_size=len(r[0]) + 1, lr=lr, eps=eps,
                             dual_lr=dual_lr, momentum=0.0)
    with torch.no_grad():
        before, after = answer_nll(model, *r).mean(), answer_nll(out, *r).mean()
    expected = float(dual_step(torch.tensor(0.0), before, after, lr, eps, dual_lr))
    assert len(history) == 1 and math.isclose(history[0], expected, rel_tol=1e-3, abs_tol=1e-6)


def test_qaloss_adapter_gives_the_answer_nll_and_its_per_sample_gradients(tiny):
    from unlearnlib.grads import per_sample_grads

    task, model = tiny
    ids, tgt = L.encode_training(task.tokenizer, task.retain[:6])
    x = L.pack(ids, tgt)
    out = L.QALoss(model)(x)
    ce = nn.functional.cross_entropy(out, L.labels_for(x), reduction="none")
    assert torch.allclose(ce, answer_nll(model, ids, tgt), rtol=1e-5)
    a = per_sample_grads(L.QALoss(model), x, L.labels_for(x))
    b = lm_per_sample_grads(model, ids, tgt)
    for n, v in b.items():
        assert torch.allclose(a["lm." + n], v, rtol=1e-3, atol=1e-5 * float(v.abs().max()) + 1e-9), n


def test_masked_coordinates_never_move(tiny):
    task, model = tiny
    g = torch.Generator().manual_seed(0)
    names = [n for n, _ in L.QALoss(model).named_parameters()]
    masks = {n: (torch.rand(p.shape, generator=g) < 0.5).float() for n, p in L.QALoss(model).named_parameters()}
    out = L.run_lm_unlearning(model, task, lambda m, fb, rb: (-L.nll(m, fb)).backward(), steps=4, lr=1e-2,
                              stop_at=None, optimizer="sgd", mask_fn=lambda a, x, y: masks)
    for n, p in out.named_parameters():
        keep = masks["lm." + n].bool()
        old = dict(model.named_parameters())[n]
        assert torch.equal(p[~keep], old[~keep]), n
    assert len(names) == len(list(model.parameters()))


def test_masked_method_keeps_a_fraction_and_runs_sgd(tiny):
    task, model = tiny
    kept = []
    out = L.get_language_method("masked:grad_diff")(model, task, steps=3, stop_at=None, kept=kept, delta=0.2)
    assert len(kept) == 3 and all(0.0 <= k <= 1.0 for k in kept) and min(kept) < 1.0
    assert all(torch.isfinite(p).all() for p in out.parameters())


def test_exact_match_equals_greedy_decoding_accuracy(tiny):
    from unlearnlib.lm_metrics import qa_accuracy

    task, model = tiny
    half = L.ga(model, task, steps=3, stop_at=None, lr=1e-3, batch_size=4)   # some answers right, some wrong
    for m in (model, half):
        for split in ("forget", "retain", "holdout"):
            assert math.isclose(L.accuracy_on(m, task.tokenizer, getattr(task, split)),
                                qa_accuracy(m, task, split, task.tokenizer), abs_tol=1e-4)


def test_stopping_rule_and_pass_count(tiny):
    task, model = tiny
    with cost.counting() as passes:
        L.ga(model, task, steps=3, stop_at=None, batch_size=4)
    # the one-sample shape check, then 3 steps of 4 forget rows forward and backward
    assert (passes.forward, passes.backward) == (1 + 12, 12)
    log = []
    with cost.counting() as passes:
        L.ga(model, task, lr=3e-3, batch_size=4, log=log)
    target = L.forget_target(task, model)
    assert log[-1]["forget_acc"] <= target
    assert all(e["forget_acc"] > target for e in log[:-1])
    n_check = len(L.encode_training(task.tokenizer, task.forget, paraphrases="canonical")[0])
    assert passes.forward == 1 + len(task.holdout) + 4 * len(log) + n_check * len(log)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-1.0), "positive"),
    (dict(optimizer="adam"), "optimizer"),
    (dict(stop_at="never"), "stop_at"),
    (dict(steps=0), "steps"),
])
def test_bad_hyperparameters_are_refused(tiny, kwargs, match):
    task, model = tiny
    with pytest.raises(UnlearnError, match=match):
        L.ga(model, task, **kwargs)


def test_bad_names_are_refused(tiny):
    task, model = tiny
    with pytest.raises(UnlearnError, match="unknown language method"):
        L.get_language_method("scrub")
    with pytest.raises(UnlearnError, match="unknown language method"):
        L.get_language_method("masked:rmu")
    with pytest.raises(UnlearnError, match="beta"):
        L.npo(model, task, beta=0.0)
    with pytest.raises(UnlearnError, match="layer"):
        L.rmu(model, task, layer=7)
