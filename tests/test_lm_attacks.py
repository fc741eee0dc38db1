"""Attacks on unlearned language models (unlearnlib.lm_attacks, chapter 15) on a tiny model."""

from __future__ import annotations

import pytest
import torch

from unlearnlib import lm_attacks as A
from unlearnlib.errors import UnlearnError
from unlearnlib.facts import make_facts, make_facts_task
from unlearnlib.methods import language as L
from unlearnlib.transformer import LMConfig, original_lm, retrained_lm

TINY = LMConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=24, epochs=25, batch_size=32, lr=1e-2)


@pytest.fixture(scope="module")
def tiny():
    task = make_facts_task(make_facts(n_people=20, seed=0), 0.2, seed=0)
    return task, original_lm(task, TINY, seed=0, use_cache=False), retrained_lm(task, TINY, seed=0, use_cache=False)


def test_split_is_disjoint_and_covers_the_forget_set(tiny):
    task, _, _ = tiny
    attack, held = A.attack_split(task, 0.2, seed=3)
    assert len(attack) == round(0.2 * len(task.forget)) and len(attack) + len(held) == len(task.forget)
    assert not {id(q) for q in attack} & {id(q) for q in held}
    assert A.attack_split(task, 0.2, seed=3) == (attack, held)


def test_relearning_changes_nothing_in_the_input_and_zero_steps_change_nothing(tiny):
    task, model, _ = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r0 = A.relearn_attack(model, task, steps=0)
    assert r0["before"] == r0["after"]
    r = A.relearn_attack(model, task, steps=3)
    assert r["before"] == r0["before"]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_relearning_the_attack_qas_themselves_is_learned(tiny):
    # A forget set of one QA repeated: the attacker's part and the held part are the same question, so the attack
    # must teach it (the oracle, which never saw it, does not know it before).
    task, _, oracle = tiny
    sub = type(task)(**{**task.__dict__, "forget": [task.forget[0]] * 10})
    r = A.relearn_attack(oracle, sub, steps=40, lr=3e-3)
    assert r["before"] == 0.0 and r["after"] == 100.0, r


def test_paraphrase_attack_reports_both_templates(tiny):
    task, model, oracle = tiny
    p = A.paraphrase_attack(model, task)
    assert p["canonical"] == L.accuracy_on(model, task.tokenizer, task.forget)
    assert p["paraphrase"] == L.accuracy_on(model, task.tokenizer, task.forget, paraphrases="heldout")
    assert A.paraphrase_attack(oracle, task)["canonical"] < p["canonical"]


def test_question_states_are_the_hidden_state_before_the_answer(tiny):
    from unlearnlib.facts import encode_qa

    task, model, _ = tiny
    qas = task.forget[:3]
    h = A.question_states(model, task, qas, layer=-1)
    ids, tgt = encode_qa(task.tokenizer, qas[:1])
    n_question = 1 + len(task.tokenizer.encode(qas[0].questions[0]))   # <bos> + question words
    with torch.no_grad():
        direct = model.hidden_states(ids[:, :n_question])[-1][0, -1]    # causal: later tokens do not matter
    assert torch.allclose(h[0], direct, atol=1e-5)


def test_probe_reads_the_original_better_than_chance_and_better_than_the_oracle(tiny):
    task, model, oracle = tiny
    p = A.probe_attack(model, task)
    q = A.probe_attack(oracle, task)
    assert p["n_test"] == len(task.forget) and p["chance"] == q["chance"]
    assert p["probe_acc"] >= q["probe_acc"]


def test_bad_input(tiny):
    task, model, _ = tiny
    with pytest.raises(UnlearnError, match="fraction"):
        A.attack_split(task, 1.5)
    with pytest.raises(UnlearnError, match="steps"):
        A.relearn_attack(model, task, steps=-1)
    with pytest.raises(UnlearnError, match="attribute"):
        A.probe_attack(model, task, attribute="shoe size")
