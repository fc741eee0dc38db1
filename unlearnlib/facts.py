"""Synthetic facts about fictitious people: the data of the language-model chapters (chapter 14).

Everything is generated from a seed, offline, from closed lists: names are made of invented syllables (never a
real person), every attribute value comes from a fixed list, and the questions come from fixed templates. A
word-level :class:`Tokenizer` over exactly that closed vocabulary turns the text into token ids, so no tokenizer
download and no unknown word can occur in the data.

Each (person, attribute) is one question-answer pair (:class:`QA`) asked in several paraphrases: templates
``0 .. k-2`` are used in training, the last one is held out (a paraphrase the model never saw, for the
paraphrase attack of chapter 15). Each QA carries perturbed answers (other values of the same attribute), the
false alternatives of TOFU's truth ratio (arXiv 2401.06121). General facts (invented countries and their
capitals) are trained into every model and never forgotten: they measure whether unlearning keeps the model's
general knowledge. Some generated people are never trained at all (``FactsTask.holdout``): the non-members
of the membership attacks behind MUSE's PrivLeak (arXiv 2407.06460).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field

import torch

from unlearnlib import config
from unlearnlib.errors import UnlearnError

# --- the closed lists -------------------------------------------------------------------------------------------

#: Syllables of the invented names: first names are two syllables, family names three, capitalised.
_SYLLABLES = ("ba", "ko", "ri", "mel", "tan", "vo", "si", "dur", "ne", "lo", "fa", "gri", "zu", "pe", "ka",
              "mon")
#: First and family names available to the generator (fixed lists, so the vocabulary is closed).
FIRST_NAMES = tuple(sorted({(a + b).capitalize() for a in _SYLLABLES[:8] for b in _SYLLABLES[8:]}))
FAMILY_NAMES = tuple(sorted({(a + b).capitalize() + end for a in _SYLLABLES[8:] for b in _SYLLABLES[:8]
                             for end in ("ek", "ar")}))

#: attribute -> (question templates with {name}, closed list of values). The LAST template is held out.
ATTRIBUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "birth_year": (("In which year was {name} born?", "What is the birth year of {name}?",
                    "{name} was born in which year?"),
                   tuple(str(y) for y in range(1931, 1991, 3))),
    "city": (("In which city does {name} live?", "Where does {name} live?",
              "What is the home city of {name}?"),
             ("Velmora", "Tarsk", "Ondrelle", "Quillby", "Marrowgate", "Esk", "Pellan", "Drumhollow", "Ivory Bay",
              "Saltmere", "Korvin", "Lune", "Old Hatch", "Brindle", "Cask Hill", "Wenlow")),
    "profession": (("What is the profession of {name}?", "What does {name} do for a living?",
                    "What work does {name} do?"),
                   ("baker", "glass maker", "river pilot", "clock mender", "surveyor", "bee keeper",
                    "lamp lighter", "map drawer", "rope maker", "salt trader", "tea merchant", "bridge builder",
                    "bookbinder", "stone carver", "weaver", "ferry captain")),
    "instrument": (("Which instrument does {name} play?", "What instrument is played by {name}?",
                    "{name} plays which instrument?"),
                   ("the lute", "the oboe", "the harp", "the drum", "the fiddle", "the horn", "the zither",
                    "the flute", "the bells", "the organ", "the cello", "the pipes")),
    "colour": (("What is the favourite colour of {name}?", "Which colour does {name} like best?",
                "{name} likes which colour most?"),
               ("deep blue", "amber", "moss green", "pale red", "grey", "violet", "ochre", "white", "black",
                "sea green", "rose", "copper")),
}

#: General facts every model learns and keeps: invented countries and their capitals (the utility check).
GENERAL_FACTS: tuple[tuple[str, str], ...] = (
    ("Zembra", "Ollin"), ("Karoth", "Vess"), ("Tullmark", "Brae"), ("Oskany", "Merrin"), ("Feldra", "Quoy"),
    ("Haskarn", "Tiln"), ("Norvale", "Edda"), ("Pyrrin", "Sabo"), ("Ulmastra", "Gant"), ("Verrow", "Ilse"),
    ("Dalmouth", "Coro"), ("Istrel", "Nimm"), ("Borska", "Tavel"), ("Cendry", "Orrow"), ("Gallowmere", "Fesk"),
    ("Rhune", "Lattis"),
)
GENERAL_TEMPLATES = ("What is the capital of {name}?", "Which city is the capital of {name}?",
                     "The capital of {name} is which city?")

N_PERTURBED = 4  #: false answers per QA (other values of the same attribute)
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"

#: people per profile (training people; the never-trained holdout people come on top, see :func:`make_facts`)
PEOPLE_BY_PROFILE = {"ci": 100, "full": 400}


# --- tokenizer --------------------------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    # "?" is a word of its own, so that "born?" and "born" share the token "born"
    return text.replace("?", " ?").split()


class Tokenizer:
    """Word-level tokenizer over the generator's closed vocabulary plus ``<pad> <bos> <eos> <unk>`` (chapter 14).

    Ids 0-3 are the special tokens; the words follow in sorted order, so the ids depend on the closed lists only.
    ``decode(encode(t)) == t`` for every text the generator writes (single spaces, "?" glued to the word before).
    """

    def __init__(self, words):
        self.itos = [PAD, BOS, EOS, UNK] + sorted(set(words) - {PAD, BOS, EOS, UNK})
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = 0, 1, 2, 3

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise UnlearnError(f"Tokenizer.encode needs a string, got {type(text).__name__}")
        return [self.stoi.get(w, self.unk_id) for w in _words(text)]

    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        words = []
        for i in ids:
            if not isinstance(i, numbers.Integral) or not 0 <= i < self.vocab_size:
                raise UnlearnError(f"token id {i!r} is outside the vocabulary 0 .. {self.vocab_size - 1}")
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                words.append(self.itos[i])
        return " ".join(words).replace(" ?", "?")

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(self.itos).encode()).hexdigest()[:16]


def build_tokenizer() -> Tokenizer:
    """The tokenizer of every facts task: the closed vocabulary of names, templates and values (chapter 14)."""
    words = set(FIRST_NAMES) | set(FAMILY_NAMES)
    for templates, values in ATTRIBUTES.values():
        for t in templates:
            words |= set(_words(t.replace("{name}", "")))
        for v in values:
            words |= set(_words(v))
    for country, capital in GENERAL_FACTS:
        words |= {country, capital}
    for t in GENERAL_TEMPLATES:
        words |= set(_words(t.replace("{name}", "")))
    return Tokenizer(words)


# --- facts ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QA:
    """One question-answer pair (chapter 14). ``person`` is -1 for a general fact; ``questions[0]`` is the
    canonical question, ``questions[-1]`` the held-out paraphrase; ``perturbed`` are false answers."""

    person: int
    attribute: str
    questions: list[str]
    answer: str
    perturbed: list[str]


@dataclass
class Facts:
    """Generated people and their QAs (chapter 14): ``people[i]`` = {"name", attribute: value}; people
    ``0 .. n_people-1`` are trained, those from ``n_people`` on form the never-trained holdout."""

    seed: int
    n_people: int
    people: list[dict]
    qas: list[QA]            # the trained people's QAs, person-major, attributes in ATTRIBUTES order
    holdout: list[QA]        # the QAs of the holdout people (never trained)
    general: list[QA]

    def person_qas(self, person: int) -> list[QA]:
        return [q for q in self.qas + self.holdout if q.person == person]


def _check_count(name, v, low=1):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise UnlearnError(f"{name} must be an integer >= {low}, got {v!r}")


def _qa(person: int, name: str, attribute: str, value: str, rng: torch.Generator) -> QA:
    templates, values = ATTRIBUTES[attribute]
    others = [v for v in values if v != value]
    pick = torch.randperm(len(others), generator=rng)[:N_PERTURBED].tolist()  # host: CPU generator, tiny list
    return QA(person, attribute, [t.format(name=name) for t in templates], value, [others[i] for i in pick])


def make_facts(n_people: int | None = None, seed: int = 0) -> Facts:
    """Fictitious people with attributes from closed lists, their QAs, and the general facts (chapter 14).

    ``n_people`` (default: the profile's size, :data:`PEOPLE_BY_PROFILE`) people are trained; ``max(2,
    n_people // 5)`` more people, generated the same way, are never trained (the holdout). Names are unique.
    Deterministic: the same ``(n_people, seed)`` always gives the same facts.
    """
    if n_people is None:
        n_people = PEOPLE_BY_PROFILE[config.get_profile().name]
    _check_count("n_people", n_people)
    _check_count("seed", seed, low=0)
    n_holdout = max(2, n_people // 5)
    total = n_people + n_holdout
    n_names = len(FIRST_NAMES) * len(FAMILY_NAMES)
    if total > n_names:
        raise UnlearnError(f"n_people={n_people} needs {total} distinct names but only {n_names} exist; "
                           f"use n_people <= {n_names * 5 // 6}")
    rng = torch.Generator().manual_seed(int(seed))
    name_idx = torch.randperm(n_names, generator=rng)[:total].tolist()  # host: CPU generator, list of ints
    people, qas = [], []
    for p, k in enumerate(name_idx):
        name = f"{FIRST_NAMES[k // len(FAMILY_NAMES)]} {FAMILY_NAMES[k % len(FAMILY_NAMES)]}"
        person = {"name": name}
        for attribute, (_, values) in ATTRIBUTES.items():
            value = values[int(torch.randint(len(values), (1,), generator=rng))]  # host: CPU generator
            person[attribute] = value
            qas.append(_qa(p, name, attribute, value, rng))
        people.append(person)
    n_attr = len(ATTRIBUTES)
    general = []
    capitals = [c for _, c in GENERAL_FACTS]
    for country, capital in GENERAL_FACTS:
        others = [c for c in capitals if c != capital]
        pick = torch.randperm(len(others), generator=rng)[:N_PERTURBED].tolist()  # host: CPU generator
        general.append(QA(-1, "capital", [t.format(name=country) for t in GENERAL_TEMPLATES], capital,
                          [others[i] for i in pick]))
    return Facts(seed=int(seed), n_people=int(n_people), people=people, qas=qas[:n_people * n_attr],
                 holdout=qas[n_people * n_attr:], general=general)


@dataclass
class FactsTask:
    """What to forget (chapter 14): all QAs of a ``forget_fraction`` of the trained people.

    ``forget`` + ``retain`` = the trained people's QAs; ``general`` is always trained and kept; ``holdout``
    (people never trained) are the non-members of the membership attacks. ``forget_people`` lists the ids.
    """

    facts: Facts
    forget_fraction: float
    seed: int
    forget: list[QA]
    retain: list[QA]
    general: list[QA]
    holdout: list[QA]
    forget_people: list[int]
    tokenizer: Tokenizer = field(repr=False)

    def fingerprint(self) -> str:
        """A hash of everything that determines the training data of the original and the oracle."""
        def rows(qas):
            return [[q.person, q.attribute, q.questions, q.answer] for q in qas]
        blob = json.dumps({"forget": rows(self.forget), "retain": rows(self.retain), "general": rows(self.general),
                           "vocab": self.tokenizer.fingerprint(), "train_paraphrases": n_train_paraphrases()},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def n_train_paraphrases() -> int:
    """How many question templates are used in training (all but the last, held-out one)."""
    return min(len(t) for t, _ in ATTRIBUTES.values()) - 1


def make_facts_task(facts: Facts, forget_fraction: float = 0.1, seed: int = 0) -> FactsTask:
    """Forget ``round(forget_fraction * n_people)`` people chosen at random from ``seed`` (chapter 14)."""
    if not isinstance(facts, Facts):
        raise UnlearnError(f"make_facts_task needs the Facts of make_facts, got {type(facts).__name__}")
    if isinstance(forget_fraction, bool) or not isinstance(forget_fraction, numbers.Real) or \
            not 0 < forget_fraction < 1:
        raise UnlearnError(f"forget_fraction must lie strictly between 0 and 1 (e.g. 0.01, 0.05, 0.1), "
                           f"got {forget_fraction!r}")
    _check_count("seed", seed, low=0)
    n_forget = round(forget_fraction * facts.n_people)
    if n_forget < 1:
        raise UnlearnError(f"forget_fraction={forget_fraction} of {facts.n_people} people forgets nobody; use a "
                           f"fraction >= {1 / facts.n_people:.3g} or more people")
    if n_forget >= facts.n_people:
        raise UnlearnError(f"forget_fraction={forget_fraction} of {facts.n_people} people leaves nobody to "
                           "retain; use a smaller fraction")
    rng = torch.Generator().manual_seed(10_007 + int(seed))
    forget_people = sorted(torch.randperm(facts.n_people, generator=rng)[:n_forget].tolist())  # host: CPU rng
    chosen = set(forget_people)
    return FactsTask(facts=facts, forget_fraction=float(forget_fraction), seed=int(seed),
                     forget=[q for q in facts.qas if q.person in chosen],
                     retain=[q for q in facts.qas if q.person not in chosen],
                     general=list(facts.general), holdout=list(facts.holdout), forget_people=forget_people,
                     tokenizer=build_tokenizer())


# --- tensors ----------------------------------------------------------------------------------------------------

IGNORE = -100  #: the label of positions that are not scored (PyTorch's cross-entropy ignore_index)


def encode_qa(tokenizer: Tokenizer, qas: list[QA], paraphrase: int = 0, device=None,
              answers: list[str] | None = None, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and next-token targets of ``<bos> question answer <eos>`` (chapter 14).

    ``ids`` ``[B, T]`` right-padded with ``<pad>``; ``targets[b, t]`` is ``ids[b, t+1]`` where that next token
    is an answer token or ``<eos>``, and :data:`IGNORE` (-100) elsewhere: the question and the padding are
    never scored. ``paraphrase`` selects the question template (``-1``: the held-out one); ``answers`` replaces
    the true answers (one string per QA), e.g. by perturbed ones. ``max_len`` refuses longer sequences.
    """
    if not isinstance(qas, (list, tuple)) or not qas or not all(isinstance(q, QA) for q in qas):
        raise UnlearnError("encode_qa needs a non-empty list of QA (e.g. task.forget)")
    if answers is None:
        answers = [q.answer for q in qas]
    elif len(answers) != len(qas) or not all(isinstance(a, str) for a in answers):
        raise UnlearnError(f"answers must be one string per QA: {len(qas)} QAs, got {len(answers)} answers")
    n_para = min(len(q.questions) for q in qas)
    if isinstance(paraphrase, bool) or not isinstance(paraphrase, numbers.Integral) or \
            not -n_para <= paraphrase < n_para:
        raise UnlearnError(f"paraphrase must be an integer in {-n_para} .. {n_para - 1}, got {paraphrase!r}")
    rows, starts = [], []
    for q, a in zip(qas, answers):
        question = [tokenizer.bos_id] + tokenizer.encode(q.questions[paraphrase])
        rows.append(question + tokenizer.encode(a) + [tokenizer.eos_id])
        starts.append(len(question))
    T = max(len(r) for r in rows)
    if max_len is not None and T > max_len:
        raise UnlearnError(f"a question-answer pair has {T} tokens but the model takes at most {max_len}; "
                           "build the model with a larger max_len")
    ids = torch.full((len(rows), T), tokenizer.pad_id, dtype=torch.long)  # host: filled on the CPU, moved below
    lengths = torch.tensor([len(r) for r in rows])  # host: see above
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r)  # host: see above
    pos = torch.arange(T)  # host: see above
    start = torch.tensor(starts)  # host: see above
    # position t predicts token t+1; score it when t+1 is an answer token or <eos>: start <= t+1 < length
    scored = (pos[None, :] + 1 >= start[:, None]) & (pos[None, :] + 1 < lengths[:, None])
    targets = torch.full_like(ids, IGNORE)
    targets[:, :-1] = torch.where(scored[:, :-1], ids[:, 1:], IGNORE)
    device = config.get_device(device)
    return ids.to(device), targets.to(device)


def qa_batch_answers(qas: list[QA], which: int) -> list[str]:
    """The ``which``-th perturbed answer of every QA (for scoring false answers with :func:`encode_qa`)."""
    return [q.perturbed[which] for q in qas]
