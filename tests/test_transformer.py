"""The tiny transformer: causality, per-sample gradients, training to memorisation and the cache (chapter 14)."""

from __future__ import annotations

import math
import os
from dataclasses import replace

import pytest
import torch

from unlearnlib import UnlearnError
from unlearnlib.facts import IGNORE, encode_qa, make_facts, make_facts_task
from unlearnlib.grads import per_sample_grads_loop
from unlearnlib.transformer import (LM_SIZES, LMConfig, TinyGPT, answer_logprob, answer_nll, lm_per_sample_grads,
                                    original_lm, retrained_lm, token_logprobs, train_lm)
from unlearnlib.transformer import _PackedLoss

#: A model small enough to train in about a second in the tests (the ci sizes are for the chapters).
TINY = LMConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16, epochs=80, batch_size=32, lr=1e-2)


@pytest.fixture(scope="module")
def task():
    return make_facts_task(make_facts(12, seed=0), 0.25, seed=0)


def _model(task, seed=0, **kw):
    torch.manual_seed(seed)
    return TinyGPT(task.tokenizer.vocab_size, **{"d_model": 32, "n_layers": 2, "n_heads": 4, "max_len": 16, **kw})


def test_shapes_and_hidden_states(task):
    model = _model(task)
    ids, _ = encode_qa(task.tokenizer, task.forget)
    assert model(ids).shape == (*ids.shape, task.tokenizer.vocab_size)
    hs = model.hidden_states(ids)
    assert len(hs) == 2 and all(h.shape == (*ids.shape, 32) for h in hs)
    # the last hidden state, normed and projected, is the forward pass
    torch.testing.assert_close(model.head(model.ln_f(hs[-1])), model(ids), rtol=0, atol=0)


def test_causal_mask_later_tokens_never_change_earlier_logits(task):
    model = _model(task).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(task.tokenizer.vocab_size, (3, 12), generator=g)
    with torch.no_grad():
        base = model(ids)
        for t in (0, 5, 11):
            changed = ids.clone()
            changed[:, t:] = torch.randint(task.tokenizer.vocab_size, changed[:, t:].shape, generator=g)
            out = model(changed)
            # exactly equal: the masked scores are -inf, so later tokens enter no sum before position t
            assert torch.equal(out[:, :t], base[:, :t])
            if t < 11:
                assert not torch.allclose(out[:, t:], base[:, t:])


def test_answer_likelihoods_against_a_direct_computation(task):
    model = _model(task, seed=1)
    ids, targets = encode_qa(task.tokenizer, task.forget[:4])
    logp = model(ids).double().log_softmax(-1)
    for b in range(ids.shape[0]):
        pos = (targets[b] != IGNORE).nonzero().flatten()
        direct = sum(logp[b, t, targets[b, t]] for t in pos)
        assert math.isclose(answer_logprob(model, ids, targets)[b].item(), direct.item(), rel_tol=1e-5)
        assert math.isclose(answer_nll(model, ids, targets)[b].item(), -direct.item() / len(pos), rel_tol=1e-5)
    lp, scored = token_logprobs(model, ids, targets)
    assert torch.equal(scored, targets != IGNORE) and (lp[~scored] == 0).all()


def test_per_sample_grads_equal_a_loop(task):
    model = _model(task, seed=2)
    ids, targets = encode_qa(task.tokenizer, task.forget[:5])
    fast = lm_per_sample_grads(model, ids, targets)
    assert list(fast) == [n for n, _ in model.named_parameters()]
    x = torch.stack([ids, targets], 1)
    slow = per_sample_grads_loop(_PackedLoss(model), x, torch.zeros(5, dtype=torch.long),
                                 loss_fn=lambda out, _y: out.mean())
    direct0 = torch.autograd.grad(answer_nll(model, ids[:1], targets[:1]).sum(), list(model.parameters()))
    # fp32 error model: reductions of length K <= max(d_ff, vocab, T) through ~6 matmuls per block, forward and
    # backward, each adding about eps * sqrt(K) relative error (rounding errors add in quadrature)
    K = max(128, task.tokenizer.vocab_size, ids.shape[1])
    rtol = 10 * 2.0**-23 * math.sqrt(K) * 2 * (6 * 2 + 1)
    flat = lambda g: torch.cat([v.reshape(v.shape[0], -1) for v in g.values()], 1)
    f, s = flat(fast), flat({k.removeprefix("lm."): v for k, v in slow.items()})
    assert ((f - s).norm(dim=1) / s.norm(dim=1)).max() < rtol
    d0 = torch.cat([g.reshape(-1) for g in direct0])
    assert (f[0] - d0).norm() / d0.norm() < rtol
    # a planted error (sample 1's gradient in place of sample 0's) fails the same tolerance
    assert (f[1] - s[0]).norm() / s[0].norm() > rtol


def test_training_memorises_and_is_seeded(task):
    qas = task.retain + task.forget + task.general
    a = train_lm(qas, task, TINY, seed=0, device="cpu")
    b = train_lm(qas, task, TINY, seed=0, device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not a.training and a.train_time_s > 0
    ids, targets = encode_qa(task.tokenizer, qas)
    with torch.no_grad():
        hit = ((a(ids).argmax(-1) == targets) | (targets == IGNORE)).all(1).float().mean().item()
    assert hit > 0.9


def test_cache_round_trip_and_oracle_is_independent(task, isolated_cache):
    cfg = replace(TINY, epochs=3)  # the cache does not need a trained model
    first = original_lm(task, cfg, seed=0, device="cpu")
    files = sorted(os.listdir(isolated_cache))
    again = original_lm(task, cfg, seed=0, device="cpu")
    assert sorted(os.listdir(isolated_cache)) == files
    assert all(torch.equal(x, y) for x, y in zip(first.state_dict().values(), again.state_dict().values()))
    assert again.train_time_s == first.train_time_s and not again.training
    oracle = retrained_lm(task, cfg, seed=0, device="cpu")
    replica = retrained_lm(task, cfg, seed=0, device="cpu", replica=1)
    assert not torch.equal(oracle.head.weight, first.head.weight)
    assert not torch.equal(oracle.head.weight, replica.head.weight)
    # a corrupted cache file is detected and rebuilt, not loaded
    path = next(p for p in isolated_cache.iterdir() if p.name.startswith("lm-original"))
    path.write_bytes(path.read_bytes()[:100])
    rebuilt = original_lm(task, cfg, seed=0, device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(first.state_dict().values(), rebuilt.state_dict().values()))


def test_profile_sizes():
    assert set(LM_SIZES) == {"ci", "full"}
    ci, full = LMConfig.from_profile("ci"), LMConfig.from_profile("full")
    assert full.d_model >= ci.d_model and full.n_layers >= ci.n_layers
    assert LMConfig.from_profile("ci", epochs=3).epochs == 3


@pytest.mark.parametrize("call", [
    lambda t: TinyGPT(10, d_model=30, n_heads=4),
    lambda t: TinyGPT(0),
    lambda t: _model(t)(torch.zeros(2, 3)),
    lambda t: _model(t)(torch.zeros(2, 17, dtype=torch.long)),
    lambda t: LMConfig(lr=float("nan")),
    lambda t: LMConfig(epochs=0),
    lambda t: LMConfig.from_profile("ci", width=3),
    lambda t: original_lm("task"),
    lambda t: retrained_lm(t, TINY, replica=-1),
    lambda t: answer_nll(_model(t), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long)),
    lambda t: train_lm([], t, TINY),
])
def test_bad_input_is_one_line_unlearn_error(task, call):
    with pytest.raises(UnlearnError) as err:
        call(task)
    assert "\n" not in str(err.value) and str(err.value)
