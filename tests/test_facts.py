"""The synthetic facts, the tokenizer and the encoding of question-answer pairs (chapter 14)."""

from __future__ import annotations

import pytest
import torch

from unlearnlib import UnlearnError
from unlearnlib.facts import (ATTRIBUTES, IGNORE, N_PERTURBED, QA, build_tokenizer, encode_qa, make_facts,
                              make_facts_task, n_train_paraphrases)


@pytest.fixture(scope="module")
def facts():
    return make_facts(40, seed=3)


def test_make_facts_is_deterministic_and_seeded(facts):
    again = make_facts(40, seed=3)
    assert again.qas == facts.qas and again.holdout == facts.holdout and again.general == facts.general
    other = make_facts(40, seed=4)
    assert other.qas != facts.qas


def test_sizes_names_and_answers(facts):
    n_attr = len(ATTRIBUTES)
    assert len(facts.qas) == 40 * n_attr
    assert len(facts.holdout) == 8 * n_attr  # n_people // 5 never-trained people
    names = [p["name"] for p in facts.people]
    assert len(set(names)) == len(names) == 48
    for q in facts.qas + facts.holdout:
        templates, values = ATTRIBUTES[q.attribute]
        assert len(q.questions) == len(templates) >= 3
        assert q.answer in values and q.answer == facts.people[q.person][q.attribute]
        assert len(q.perturbed) == N_PERTURBED == len(set(q.perturbed))
        assert q.answer not in q.perturbed and set(q.perturbed) <= set(values)
        assert facts.people[q.person]["name"] in q.questions[0]
    assert all(q.person == -1 and q.answer not in q.perturbed for q in facts.general)
    assert n_train_paraphrases() == 2


@pytest.mark.parametrize("fraction,n_forget", [(0.1, 4), (0.05, 2), (0.025, 1)])
def test_task_split_by_people(facts, fraction, n_forget):
    task = make_facts_task(facts, fraction, seed=1)
    assert len(task.forget_people) == n_forget
    assert {q.person for q in task.forget} == set(task.forget_people)
    assert not {q.person for q in task.retain} & set(task.forget_people)
    assert len(task.forget) + len(task.retain) == len(facts.qas)
    assert not {q.person for q in task.holdout} & {q.person for q in facts.qas}
    assert make_facts_task(facts, fraction, seed=1).forget == task.forget


def test_fingerprint_changes_with_the_training_data(facts):
    a = make_facts_task(facts, 0.1, seed=0)
    assert a.fingerprint() == make_facts_task(make_facts(40, seed=3), 0.1, seed=0).fingerprint()
    assert a.fingerprint() != make_facts_task(facts, 0.1, seed=1).fingerprint()
    assert a.fingerprint() != make_facts_task(facts, 0.05, seed=0).fingerprint()
    assert a.fingerprint() != make_facts_task(make_facts(40, seed=4), 0.1, seed=0).fingerprint()


def test_tokenizer_round_trip_and_closed_vocabulary(facts):
    tok = build_tokenizer()
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2) and tok.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    texts = [t for q in facts.qas + facts.holdout + facts.general for t in q.questions + [q.answer] + q.perturbed]
    for t in texts:
        ids = tok.encode(t)
        assert tok.unk_id not in ids and tok.decode(ids) == t
    assert tok.encode("Zzyzx") == [tok.unk_id]
    assert tok.decode([tok.bos_id] + tok.encode("the lute") + [tok.eos_id, tok.pad_id]) == "the lute"


def test_encode_qa_targets_score_only_the_answer_and_eos(facts):
    tok = build_tokenizer()
    qas = facts.qas[:7]
    ids, targets = encode_qa(tok, qas, paraphrase=1)
    assert ids.dtype == targets.dtype == torch.long and ids.shape == targets.shape
    for b, q in enumerate(qas):
        question, answer = tok.encode(q.questions[1]), tok.encode(q.answer)
        row = [tok.bos_id] + question + answer + [tok.eos_id]
        assert ids[b, :len(row)].tolist() == row and (ids[b, len(row):] == tok.pad_id).all()
        scored = (targets[b] != IGNORE).nonzero().flatten().tolist()
        # position t predicts token t+1: the positions of the last question token .. the last answer token
        assert scored == list(range(len(question), len(question) + len(answer) + 1))
        assert targets[b, scored].tolist() == answer + [tok.eos_id]


def test_encode_qa_with_other_answers_and_heldout_paraphrase(facts):
    tok = build_tokenizer()
    qas = facts.qas[:5]
    ids, targets = encode_qa(tok, qas, paraphrase=-1, answers=[q.perturbed[0] for q in qas])
    for b, q in enumerate(qas):
        assert tok.decode(ids[b, 1:]) == q.questions[-1] + " " + q.perturbed[0]
        assert targets[b][targets[b] != IGNORE].tolist() == tok.encode(q.perturbed[0]) + [tok.eos_id]


@pytest.mark.parametrize("call", [
    lambda f: make_facts_task(f, 0.0),
    lambda f: make_facts_task(f, 1.0),
    lambda f: make_facts_task(f, float("nan")),
    lambda f: make_facts_task(f, 0.001),
    lambda f: make_facts_task("facts", 0.1),
    lambda f: make_facts(0),
    lambda f: make_facts(10**6),
    lambda f: encode_qa(build_tokenizer(), []),
    lambda f: encode_qa(build_tokenizer(), f.qas[:2], paraphrase=3),
    lambda f: encode_qa(build_tokenizer(), f.qas[:2], answers=["x"]),
    lambda f: encode_qa(build_tokenizer(), f.qas[:2], max_len=4),
    lambda f: build_tokenizer().decode([10**6]),
])
def test_bad_input_is_one_line_unlearn_error(facts, call):
    with pytest.raises(UnlearnError) as err:
        call(facts)
    assert "\n" not in str(err.value) and str(err.value)


def test_qa_is_a_plain_record():
    q = QA(0, "city", ["a?", "b?", "c?"], "Esk", ["Lune"])
    assert q.questions[0] == "a?" and q.person == 0
