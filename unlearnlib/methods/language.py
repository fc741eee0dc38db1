"""Unlearning a language model: one loop, the LM methods and the book's conflict-aware methods on the LM loss
(chapter 15).

The model is :class:`~unlearnlib.transformer.TinyGPT`, the task a :class:`~unlearnlib.facts.FactsTask`. A training
sample is a question-answer pair; its loss is the mean negative log-likelihood of the answer tokens (and ``<eos>``)
given the question, :func:`~unlearnlib.transformer.answer_nll`. Every method is a function ``(model, task,
**hyperparameters) -> model`` that returns a new model and never mutates its input, like the vision methods
(:mod:`unlearnlib.methods`), and carries ``fn.modality = "language"``.

Methods (conventions of :mod:`unlearnlib.methods.surgery`: descent, θ ← θ − η d; L_f the forget objective to
minimise, L_r the retain loss):

* ``ga``: L_f = −NLL on the forget QAs. ``grad_diff``: L_f + w·NLL on retain and general QAs.
* ``npo`` (Zhang et al., arXiv 2404.05868): (2/β) E log(1 + (π_θ(a|q) / π_ref(a|q))^β), with the input model as
  π_ref, plus ``retain_weight`` · NLL_r (NPO-RT when positive).
* ``rmu`` (Li et al., arXiv 2403.03218): the hidden states of layer ℓ on forget inputs are steered towards c·u (u a
  fixed random unit vector), and kept at the frozen model's on retain inputs; only the MLPs of layers ℓ−2..ℓ move.
* ``idk``: NLL of the answer ``IDK_ANSWER`` for the forget questions, plus ``retain_weight`` · NLL_r.
* ``pcgrad``, ``unilateral_surgery``, ``implicit_surgery`` (its dual update), ``orthograd`` (per-sample retain
  gradients) with g_f = ∇(−NLL_f) and g_r = ∇NLL_r, through :mod:`unlearnlib.grads` and
  :func:`unlearnlib.methods.implicit.dual_step`; ``masked:<base>``, the feasibility mask of
  :mod:`unlearnlib.methods.feasible` on any base of this module.

Per-sample gradients of a QA pair go through :class:`QALoss`, an adapter that presents the LM to the
classification-shaped helpers of :mod:`unlearnlib.grads` and :mod:`unlearnlib.methods.feasible`: a QA pair is one
"sample" x = (ids, targets) stacked as [2, T], and the adapter's two "logits" are log P and log(1 − P) with
P = exp(−NLL), so that their cross-entropy with the label 0 is exactly the sample's NLL.

Stopping rule and defaults (oracle-free). The target forget accuracy is the accuracy of the *input* model on the
held-out facts (people generated but never trained, ``FactsTask.holdout``): forgotten facts should be answered
no better than facts the model never saw (:func:`forget_target`). Every default below was chosen by one rule on
held-out seeds 100 and 101 (never the seeds 0-4 of the chapter and the bench), 10 % of the people forgotten, the
``ci`` profile: among the settings of a small grid whose forget QA accuracy falls to the target on both seeds, the
one with the highest mean retain QA accuracy. The grid and its results are reproduced by
``python -m unlearnlib.lm_bench --sweep`` (committed as ``unlearnlib/results/lm_sweep.json``); :data:`DEFAULTS` holds
the choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from unlearnlib import cost
from unlearnlib.data import cycle_batches
from unlearnlib.errors import UnlearnError
from unlearnlib.grads import flatten_batched, pcgrad as pcgrad_combine, project_orthogonal
from unlearnlib.grads import trainable, unilateral_surgery as unilateral_direction
from unlearnlib.methods._loop import (_is_int, _is_real, _masked_step, check_loop_args, fresh_copy, set_grads,
                                     to_host)
from unlearnlib.methods.feasible import FeasibilityMasker
from unlearnlib.methods.implicit import dual_step
from unlearnlib.train import has_nonfinite

#: The answer the ``idk`` method teaches for every forget question, unless :mod:`unlearnlib.facts` defines its own
#: ``IDK_ANSWER`` (whose words its closed vocabulary contains).
IDK_ANSWER = "i do not know"


def idk_answer() -> str:
    """The refusal answer of ``idk``: ``unlearnlib.facts.IDK_ANSWER`` if defined, else :data:`IDK_ANSWER`."""
    from unlearnlib import facts

    return getattr(facts, "IDK_ANSWER", IDK_ANSWER)

#: Defaults chosen by the rule of the module docstring (``python -m unlearnlib.lm_bench --sweep``).
DEFAULTS: dict[str, dict] = {
    "ga": {"lr": 0.0001},
    "grad_diff": {"lr": 0.001, "retain_weight": 30.0},
    "npo": {"lr": 0.0003, "beta": 2.0, "retain_weight": 3.0},
    "rmu": {"lr": 0.003, "steering": 50.0, "alpha": 10.0, "layer": 1},
    "idk": {"lr": 0.0003, "retain_weight": 3.0},
    "pcgrad": {"lr": 0.01, "beta": 0.7},
    "unilateral_surgery": {"lr": 0.001, "eps": -10.0},
    "implicit_surgery": {"lr": 0.003, "dual_lr": 1.0, "eps": 0.0},
    "orthograd": {"lr": 0.03, "alpha": 0.5},
    "masked:ga": {"lr": 0.3},
    "masked:npo": {"lr": 0.1},
}


# ----------------------------------------------------------------------------------------------------------------
# Data: QA pairs as padded token tensors
# ----------------------------------------------------------------------------------------------------------------

def _pad(pairs: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate encodings of different lengths, right-padding ids with ``pad_id`` and targets with −100."""
    T = max(ids.shape[1] for ids, _ in pairs)
    out_ids, out_t = [], []
    for ids, tgt in pairs:
        extra = T - ids.shape[1]
        out_ids.append(nn.functional.pad(ids, (0, extra), value=pad_id))
        out_t.append(nn.functional.pad(tgt, (0, extra), value=-100))
    return torch.cat(out_ids), torch.cat(out_t)


def encode_training(tokenizer, qas, device=None, answers: list[str] | None = None,
                    paraphrases: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Every QA of ``qas`` as (ids, targets) in the question templates the models were trained on: templates
    0..k−2 (``paraphrases="train"``); ``"canonical"`` only template 0; ``"heldout"`` only the last, k−1.
    ``answers``, when given, replaces the true answers (one per QA)."""
    from unlearnlib.facts import encode_qa

    if len(qas) == 0:
        raise UnlearnError("no QA pairs to encode; the forget or retain set is empty")
    ks = [len(q.questions) for q in qas]
    if paraphrases == "canonical":
        templates = [0]
    elif paraphrases == "heldout":
        templates = sorted({k - 1 for k in ks})
    elif paraphrases == "train":
        templates = list(range(max(ks) - 1))
    else:
        raise UnlearnError(f"paraphrases must be 'train', 'canonical' or 'heldout', got {paraphrases!r}")
    pairs = []
    for j in templates:
        if paraphrases == "heldout":
            keep = [i for i, k in enumerate(ks) if k - 1 == j]
        else:
            keep = [i for i, k in enumerate(ks) if j < max(k - 1, 1)]
        if not keep:
            continue
        sub = [qas[i] for i in keep]
        kw = {} if answers is None else {"answers": [answers[i] for i in keep]}
        ids, tgt = encode_qa(tokenizer, sub, paraphrase=j, device=device, **kw)
        pairs.append((ids, tgt))
    return _pad(pairs, tokenizer.pad_id)


def pack(ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """QA pairs as the "samples" [B, 2, T] of :class:`QALoss` (ids and targets stacked)."""
    return torch.stack([ids, targets], dim=1)


def answer_nll(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample mean NLL of the scored tokens, [B] (:func:`unlearnlib.transformer.answer_nll`)."""
    from unlearnlib.transformer import answer_nll as nll

    return nll(model, ids, targets)


class QALoss(nn.Module):
    """The LM seen as a two-class classifier of QA pairs, for the classification-shaped helpers (module docstring).

    ``forward(x)`` with x = :func:`pack` (ids, targets) [B, 2, T] returns [B, 2] log-probabilities
    (log P, log(1 − P)), P = exp(−NLL) the normalised probability of the answer (TOFU's ``P(a|q)^(1/|a|)``). The
    cross-entropy of these with the label 0 is −log P = NLL, the sample's loss, so :func:`~unlearnlib.grads.per_sample_grads`
    (default loss) and :class:`~unlearnlib.methods.feasible.FeasibilityMasker` compute
    per-sample gradients of the NLL. Its parameters are the LM's (shared, not copied), named ``lm.<name>``.
    """

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nll = answer_nll(self.lm, x[:, 0], x[:, 1])
        # A loss of exactly 0 (every answer token predicted with probability 1 in fp32) would make log(1 − P)
        # infinite; the clamp makes the gradient 0 there, which is the exact gradient's limit.
        nll = nll.clamp_min(1e-12)
        return torch.stack([-nll, torch.log(-torch.expm1(-nll))], dim=1)


def labels_for(x: torch.Tensor) -> torch.Tensor:
    """The label 0 of every packed sample (the "answer" class of :class:`QALoss`)."""
    return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)


# ----------------------------------------------------------------------------------------------------------------
# Accuracy and the stopping target
# ----------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def exact_match(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Per QA, 1.0 if every scored token is the model's most likely next token (teacher forcing), else 0.0.

    This equals greedy decoding of the answer being exactly the true answer (followed by ``<eos>``): greedy
    decoding emits the first answer token iff it is the argmax after the question, and so on token by token, each
    time with the same (true) prefix as teacher forcing, so both agree position by position until the first
    mismatch. It needs one forward pass of the batch instead of one per answer token.
    """
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(ids), chunk):
        logits = model(ids[i:i + chunk])
        t = targets[i:i + chunk]
        scored = t != -100
        ok = (logits.argmax(-1) == t) | ~scored
        out.append(ok.all(dim=1).float())
    model.train(was)
    return torch.cat(out)


def accuracy_on(model: nn.Module, tokenizer, qas, device=None, paraphrases: str = "canonical") -> float:
    """QA accuracy in % (greedy exact match, :func:`exact_match`) on ``qas`` in the given templates."""
    ids, tgt = encode_training(tokenizer, qas, device, paraphrases=paraphrases)
    return _percent(exact_match(model, ids, tgt))


def _percent(hits: torch.Tensor) -> float:
    """The share of 1.0 entries in %, counted exactly (an fp32 mean of 0/1 values is not)."""
    return 100.0 * int(hits.sum()) / len(hits)


def forget_target(task, model: nn.Module) -> float:
    """The oracle-free stopping target, in %: the QA accuracy of ``model`` on the held-out facts (people generated
    but never trained), whose answers the model can only guess from the closed lists of values (chapter 15).
    Forgotten facts answered no better than never-seen ones are forgotten as far as accuracy can tell."""
    holdout = getattr(task, "holdout", None)
    if not holdout:
        raise UnlearnError("the task has no held-out facts (task.holdout) to set the stopping target; "
                           "pass stop_at=<accuracy in %> or None")
    device = next(model.parameters()).device
    cost.forward(len(holdout))
    return accuracy_on(model, task.tokenizer, holdout, device)


def check_lm(model: nn.Module, task) -> None:
    """Refuse a model with non-finite weights or a vocabulary that does not match the task's tokenizer."""
    if not isinstance(model, nn.Module):
        raise UnlearnError(f"expected a TinyGPT model, got {type(model).__name__}")
    if bool(has_nonfinite(model)):
        raise UnlearnError("the model has NaN or infinite weights; start from a finite model (retrain it, or "
                           "lower the learning rate that produced it)")
    first = next(model.parameters())
    ids = torch.full((1, 2), task.tokenizer.bos_id, dtype=torch.long, device=first.device)
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(ids)
    model.train(was)
    cost.forward(1)
    if out.dim() != 3 or out.shape[-1] != task.tokenizer.vocab_size:
        raise UnlearnError(f"the model's outputs have shape {tuple(out.shape)}, not [B, T, {task.tokenizer.vocab_size}]"
                           "; build the model with the task's tokenizer.vocab_size (unlearnlib.transformer.TinyGPT)")


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------

#: ``step(model, forget_batch, retain_batch)``; each batch is (ids, targets). It fills ``.grad``.
LMStepFn = Callable[[nn.Module, tuple, tuple], None]
OPTIMIZERS = ("adamw", "sgd")


def run_lm_unlearning(model: nn.Module, task, step: LMStepFn, *, epochs: float = 30, lr: float = 1e-4,
                      batch_size: int = 16, seed: int = 0, optimizer: str = "adamw", momentum: float = 0.9,
                      weight_decay: float = 0.0, stop_at: float | str | None = "auto", check_every: int | None = 1,
                      steps: int | None = None, mask_fn=None, post_step=None, params: list[str] | None = None,
                      forget_rows: tuple | None = None, desc: str = "unlearn", progress: bool = False,
                      log: list | None = None) -> nn.Module:
    """Run ``step`` for ``epochs`` passes over the forget QAs (in the training templates), retain and general QAs
    cycled alongside (chapter 15): the LM counterpart of :func:`unlearnlib.methods._loop.run_unlearning`.

    The input model is copied (never mutated). ``optimizer``: ``"adamw"`` (β = (0.9, 0.999), ``weight_decay``)
    or ``"sgd"`` (``momentum``, ``weight_decay``). ``stop_at``: stop as soon as the forget QA accuracy (canonical
    questions, checked every ``check_every`` steps, default every step; ``None``: once per pass over the forget
    QAs) is at or below this many %;
    ``"auto"`` for :func:`forget_target`, ``None`` never. ``steps`` overrides the number of steps ``epochs``
    implies. ``mask_fn(adapter, xr, yr)`` (the masked add-on) is called with the :class:`QALoss` adapter after
    ``step`` and returns 0/1 masks by the adapter's parameter names; masked coordinates do not move.
    ``params``: names of the only parameters that may change (RMU); the others get no gradient.
    ``forget_rows``: (ids, targets) that replace the forget encoding the step sees, row for row (the IdK answers);
    the stopping rule still scores the true answers.
    Per-sample passes are recorded with :mod:`unlearnlib.cost` as in the vision loop: the loop records its own
    forwards (shape check, target, stopping checks), each step its forward and backward passes.
    """
    if optimizer not in OPTIMIZERS:
        raise UnlearnError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    check_loop_args(lr, epochs, batch_size, momentum, weight_decay, steps, check_every, stop_at)
    if not task.forget:
        raise UnlearnError("the forget set is empty; there is nothing to unlearn")
    check_lm(model, task)
    device = next(model.parameters()).device
    target = forget_target(task, model) if stop_at == "auto" else stop_at
    model = fresh_copy(model)
    if params is not None:
        unknown = set(params) - {n for n, _ in model.named_parameters()}
        if unknown:
            raise UnlearnError(f"unknown parameter names {sorted(unknown)[:3]}; use names of model.named_parameters()")
        for n, p in model.named_parameters():
            p.requires_grad_(n in params)
    tok = task.tokenizer
    f_ids, f_t = encode_training(tok, task.forget, device) if forget_rows is None else forget_rows
    r_ids, r_t = encode_training(tok, list(task.retain) + list(task.general), device)
    c_ids, c_t = encode_training(tok, task.forget, device, paraphrases="canonical")
    g = torch.Generator().manual_seed(seed)
    forget_stream = cycle_batches(len(f_ids), batch_size, g, device)
    retain_stream = cycle_batches(len(r_ids), batch_size, g, device)
    steps_per_epoch = -(-len(f_ids) // batch_size)
    total = steps if steps is not None else max(1, int(round(epochs * steps_per_epoch)))
    trainable_params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(trainable_params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(trainable_params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    adapter = QALoss(model) if mask_fn is not None else None
    for t in tqdm(range(total), desc=desc, disable=not progress, leave=False, delay=5):
        fi, ri = next(forget_stream), next(retain_stream)
        opt.zero_grad(set_to_none=True)
        rb = (r_ids[ri], r_t[ri])
        step(model, (f_ids[fi], f_t[fi]), rb)
        if mask_fn is None:
            opt.step()
        else:
            xr = pack(*rb)
            _masked_step(adapter, opt, mask_fn(adapter, xr, labels_for(xr)))
        if post_step is not None:
            post_step(model, opt)
        end = (t + 1) % (check_every or steps_per_epoch) == 0 or t + 1 == total
        if end and (target is not None or log is not None):
            if target is not None:
                cost.forward(len(c_ids))
            acc = _percent(exact_match(model, c_ids, c_t))
            if log is not None:
                log.append({"step": t + 1, "forget_acc": acc})
            if target is not None and acc <= target:
                break
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return model


# ----------------------------------------------------------------------------------------------------------------
# Losses and gradients
# ----------------------------------------------------------------------------------------------------------------

def nll(model: nn.Module, batch: tuple) -> torch.Tensor:
    """Batch-mean answer NLL; records the batch's forward pass (the caller records its backward)."""
    ids, tgt = batch
    cost.forward(len(ids))
    return answer_nll(model, ids, tgt).mean()


def _flat_grad(model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    params = list(trainable(model).values())
    g = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1) for gi, p in zip(g, params)])


def forget_retain_grads(model: nn.Module, fb: tuple, rb: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ``(g_f, g_r)``: gradients of L_f = −NLL on the forget batch and of L_r = NLL on the retain batch, in
    ``model.named_parameters()`` order (the flat convention of :mod:`unlearnlib.grads`). Two backward passes."""
    g_f = _flat_grad(model, -nll(model, fb))
    g_r = _flat_grad(model, nll(model, rb))
    cost.backward(len(fb[0]) + len(rb[0]))
    return g_f, g_r


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (arXiv 2404.05868): (2/β) · mean log(1 + (π_θ / π_ref)^β) = (2/β) · mean softplus(β (log π_θ − log
    π_ref)), from per-sample sequence log-probabilities (sums over the answer tokens) (chapter 15)."""
    return 2.0 / beta * nn.functional.softplus(beta * (logp - logp_ref)).mean()


def rmu_loss(h_forget: torch.Tensor, mask_forget: torch.Tensor, control: torch.Tensor, h_retain: torch.Tensor,
             h_retain_ref: torch.Tensor, mask_retain: torch.Tensor, alpha: float) -> torch.Tensor:
    """RMU (arXiv 2403.03218): mean over the forget tokens of ‖h − c·u‖² / d plus α times the mean over the retain
    tokens of ‖h − h_ref‖² / d (chapter 15). ``control`` is c·u [d]; masks [B, T] mark the tokens scored (the
    non-padding ones); hidden states [B, T, d]."""
    d = h_forget.shape[-1]
    f = ((h_forget - control) ** 2).sum(-1) / d
    r = ((h_retain - h_retain_ref) ** 2).sum(-1) / d
    mf, mr = mask_forget.to(f.dtype), mask_retain.to(r.dtype)
    return (f * mf).sum() / mf.sum().clamp_min(1) + alpha * (r * mr).sum() / mr.sum().clamp_min(1)


# ----------------------------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------------------------

def _language(fn):
    fn.modality = "language"
    return fn


def _opts(name: str, hp: dict) -> dict:
    """The method's defaults (:data:`DEFAULTS`) overridden by the caller's hyperparameters."""
    return {**DEFAULTS.get(name, {}), **hp}


def _retain_weight(w) -> float:
    if not _is_real(w) or not 0 <= w < math.inf:
        raise UnlearnError(f"retain_weight must be a non-negative finite number, got {w!r}")
    return float(w)


@_language
def ga(model: nn.Module, task, **hp) -> nn.Module:
    """Gradient ascent on the forget answers: minimise −NLL_f (chapter 15)."""
    hp = _opts("ga", hp)

    def step(m, fb, rb):
        (-nll(m, fb)).backward()
        cost.backward(len(fb[0]))
    return run_lm_unlearning(model, task, step, desc="ga", **hp)


@_language
def grad_diff(model: nn.Module, task, retain_weight: float | None = None, **hp) -> nn.Module:
    """Gradient difference: minimise −NLL_f + w · NLL_r (retain and general QAs) (chapter 15)."""
    hp = _opts("grad_diff", {"retain_weight": retain_weight, **hp} if retain_weight is not None else hp)
    w = _retain_weight(hp.pop("retain_weight"))

    def step(m, fb, rb):
        (-nll(m, fb) + w * nll(m, rb)).backward()
        cost.backward(len(fb[0]) + len(rb[0]))
    return run_lm_unlearning(model, task, step, desc="grad_diff", **hp)


def _sequence_logp(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from unlearnlib.transformer import answer_logprob

    return answer_logprob(model, ids, targets)


@_language
def npo(model: nn.Module, task, **hp) -> nn.Module:
    """Negative preference optimisation (Zhang et al., arXiv 2404.05868) with π_ref = the input model, plus
    ``retain_weight`` · NLL_r (chapter 15). ``beta`` is NPO's inverse temperature; as β → 0 the loss's gradient
    tends to GA's (each sample's weight 2π_θ^β / (π_θ^β + π_ref^β) tends to 1)."""
    hp = _opts("npo", hp)
    beta = hp.pop("beta")
    w = _retain_weight(hp.pop("retain_weight"))
    if not _is_real(beta) or not 0 < beta < math.inf:
        raise UnlearnError(f"beta must be a positive finite number, got {beta!r}")
    ref = fresh_copy(model).eval()   # π_ref: frozen; its log-probabilities are computed per batch

    def step(m, fb, rb):
        with torch.no_grad():
            logp_ref = _sequence_logp(ref, *fb)
        logp = _sequence_logp(m, *fb)
        loss = npo_loss(logp, logp_ref, beta)
        cost.forward(2 * len(fb[0]))
        n = len(fb[0])
        if w > 0:
            loss = loss + w * nll(m, rb)
            n += len(rb[0])
        loss.backward()
        cost.backward(n)
    return run_lm_unlearning(model, task, step, desc="npo", **hp)


def rmu_parameters(model: nn.Module, layer: int) -> list[str]:
    """The names of the parameters RMU updates: the MLPs of blocks ``layer − 2 .. layer`` (arXiv 2403.03218
    updates the MLPs of three layers ending at the steered one)."""
    names = [n for n, _ in model.named_parameters()
             if any(n.startswith(f"blocks.{i}.") for i in range(max(0, layer - 2), layer + 1)) and ".mlp" in n]
    if not names:
        raise UnlearnError(f"no MLP parameters found in blocks {max(0, layer - 2)}..{layer}; "
                           "RMU expects a TinyGPT (blocks.<i>.mlp...)")
    return names


def rmu_control(d_model: int, steering: float, seed: int = 0, device=None) -> torch.Tensor:
    """c·u: a random vector of U[0, 1) entries normalised to unit length (as RMU's code draws it), scaled by c."""
    g = torch.Generator().manual_seed(seed + 7)
    u = torch.rand(d_model, generator=g)  # host: seeded draw, moved below
    return (steering * u / u.norm()).to(device)


@_language
def rmu(model: nn.Module, task, **hp) -> nn.Module:
    """Representation misdirection for unlearning (Li et al., arXiv 2403.03218) (chapter 15).

    Minimise :func:`rmu_loss` with h the residual stream after block ``layer`` (default ``n_layers // 2 − 1``, the
    last block of the first half), on the forget and retain inputs (all non-padding tokens), h_ref the frozen
    input model's; only :func:`rmu_parameters` move. Hyperparameters ``steering`` (c) and ``alpha`` (α)."""
    hp = _opts("rmu", hp)
    steering, alpha, layer = hp.pop("steering"), hp.pop("alpha"), hp.pop("layer", None)
    with torch.no_grad():
        probe = model.hidden_states(torch.full((1, 1), task.tokenizer.bos_id, dtype=torch.long,
                                               device=next(model.parameters()).device))
    n_layers, d = len(probe), probe[0].shape[-1]
    layer = max(0, n_layers // 2 - 1) if layer is None else layer
    if not _is_int(layer) or not 0 <= layer < n_layers:
        raise UnlearnError(f"layer must be an integer in 0..{n_layers - 1}, got {layer!r}")
    control = rmu_control(d, steering, hp.get("seed", 0), next(model.parameters()).device)
    ref = fresh_copy(model).eval()
    pad = task.tokenizer.pad_id

    def step(m, fb, rb):
        h_f = m.hidden_states(fb[0])[layer]
        h_r = m.hidden_states(rb[0])[layer]
        with torch.no_grad():
            h_ref = ref.hidden_states(rb[0])[layer]
        loss = rmu_loss(h_f, fb[0] != pad, control, h_r, h_ref, rb[0] != pad, alpha)
        loss.backward()
        cost.forward(len(fb[0]) + 2 * len(rb[0]))
        cost.backward(len(fb[0]) + len(rb[0]))
    return run_lm_unlearning(model, task, step, desc="rmu", params=rmu_parameters(model, layer), **hp)


@_language
def idk(model: nn.Module, task, **hp) -> nn.Module:
    """"I don't know": fine-tune the forget questions towards :func:`idk_answer`, plus ``retain_weight`` · NLL_r
    (chapter 15); the forget batches are the forget questions with that answer (``forget_rows`` of the loop)."""
    hp = _opts("idk", hp)
    w = _retain_weight(hp.pop("retain_weight"))
    device = next(model.parameters()).device
    idk_rows = encode_training(task.tokenizer, task.forget, device, answers=[idk_answer()] * len(task.forget))

    def step(m, fb, rb):
        loss = nll(m, fb)
        n = len(fb[0])
        if w > 0:
            loss = loss + w * nll(m, rb)
            n += len(rb[0])
        loss.backward()
        cost.backward(n)
    return run_lm_unlearning(model, task, step, forget_rows=idk_rows, desc="idk", **hp)


@_language
def pcgrad(model: nn.Module, task, **hp) -> nn.Module:
    """PCGrad on (1 − β)·L_f and β·L_r with L_f = −NLL_f (:func:`unlearnlib.grads.pcgrad`) (chapter 15)."""
    hp = _opts("pcgrad", {"optimizer": "sgd", **hp})
    beta = hp.pop("beta")
    history = hp.pop("history", None)
    if not 0.0 <= beta <= 1.0:
        raise UnlearnError(f"beta must lie in [0, 1] (the retain task's weight), got {beta}")

    def step(m, fb, rb):
        g_f, g_r = forget_retain_grads(m, fb, rb)
        if history is not None:
            history.append(torch.dot(g_f, g_r).detach())
        set_grads(m, pcgrad_combine([(1 - beta) * g_f, beta * g_r]))
    out = run_lm_unlearning(model, task, step, desc="pcgrad", **hp)
    if history is not None:
        to_host(history)
    return out


@_language
def unilateral_surgery(model: nn.Module, task, **hp) -> nn.Module:
    """Unilateral surgery: d = g_f + λ* g_r with λ* = max(0, (−⟨g_r, g_f⟩ − ε) / ‖g_r‖²)
    (:func:`unlearnlib.grads.unilateral_surgery`) on L_f = −NLL_f, L_r = NLL_r (chapter 15)."""
    hp = _opts("unilateral_surgery", {"optimizer": "sgd", **hp})
    eps = hp.pop("eps")
    history = hp.pop("history", None)

    def step(m, fb, rb):
        g_f, g_r = forget_retain_grads(m, fb, rb)
        d, lam = unilateral_direction(g_f, g_r, eps)
        if history is not None:
            history.append(lam.detach())
        set_grads(m, d)
    out = run_lm_unlearning(model, task, step, desc="unilateral_surgery", **hp)
    if history is not None:
        to_host(history)
    return out


@_language
def implicit_surgery(model: nn.Module, task, **hp) -> nn.Module:
    """Implicit surgery: one backward of L_f + λ L_r per step, then the dual update λ ← max(0, λ − β δ) from the
    measured change of the retain loss (:func:`unlearnlib.methods.implicit.dual_step`) (chapter 15)."""
    hp = _opts("implicit_surgery", {"optimizer": "sgd", **hp})
    eps, dual_lr, lam0 = hp.pop("eps"), hp.pop("dual_lr"), hp.pop("lam0", 0.0)
    history = hp.pop("history", None)
    if dual_lr < 0 or lam0 < 0 or not math.isfinite(eps):
        raise UnlearnError(f"dual_lr and lam0 must be non-negative and eps finite (got {dual_lr}, {lam0}, {eps})")
    lam = torch.tensor(float(lam0), device=next(model.parameters()).device)
    probe: dict = {}

    def step(m, fb, rb):
        loss_r = nll(m, rb)
        (-nll(m, fb) + lam * loss_r).backward()
        cost.backward(len(fb[0]) + len(rb[0]))
        probe.update(batch=rb, before=loss_r.detach())

    def dual_update(m, opt):
        nonlocal lam
        with torch.no_grad():
            after = nll(m, probe["batch"])
        lam = dual_step(lam, probe["before"], after, opt.param_groups[0]["lr"], eps, dual_lr)
        if history is not None:
            history.append(lam.detach())
    out = run_lm_unlearning(model, task, step, post_step=dual_update, desc="implicit_surgery", **hp)
    if history is not None:
        to_host(history)
    return out


def retain_per_sample_grads(model: nn.Module, rb: tuple) -> torch.Tensor:
    """Per-sample gradients of the retain NLL as a matrix [B, P] (flat, ``named_parameters()`` order), through
    :func:`unlearnlib.grads.per_sample_grads` (:func:`unlearnlib.transformer.lm_per_sample_grads`)."""
    from unlearnlib.transformer import lm_per_sample_grads

    return flatten_batched(lm_per_sample_grads(model, *rb))


@_language
def orthograd(model: nn.Module, task, **hp) -> nn.Module:
    """OrthoGrad: θ ← θ − η [α ḡ_r − (1 − α) g_u^⊥], g_u = ∇NLL_f (the ascended loss) with the span of the
    batch's per-sample retain gradients removed (:func:`unlearnlib.grads.project_orthogonal`) (chapter 15).
    Plain SGD (momentum and weight decay would undo the orthogonality)."""
    hp = _opts("orthograd", {"optimizer": "sgd", "momentum": 0.0, **hp})
    alpha = hp.pop("alpha")
    history = hp.pop("history", None)
    if not 0 <= alpha < 1:
        raise UnlearnError(f"alpha must lie in [0, 1), got {alpha}")

    def step(m, fb, rb):
        g_u = _flat_grad(m, nll(m, fb))
        G = retain_per_sample_grads(m, rb)
        cost.forward_backward(len(rb[0]))
        cost.backward(len(fb[0]))
        g_perp = project_orthogonal(g_u, G)
        if history is not None:
            history.append((g_perp.norm() / g_u.norm().clamp_min(1e-20)).detach())
        set_grads(m, alpha * G.mean(0) - (1 - alpha) * g_perp)
    out = run_lm_unlearning(model, task, step, desc="orthograd", **hp)
    if history is not None:
        to_host(history)
    return out


def masked(base, name: str | None = None):
    """``masked:<base>``: the base method with the feasibility mask of :mod:`unlearnlib.methods.feasible` (chapter
    15). The mask tests, coordinate by coordinate, that the step agrees in sign with the per-sample retain
    gradients of an independent retain batch (level ``delta``); the loop runs plain SGD and the
    :class:`~unlearnlib.methods.feasible.FeasibilityMasker` applies the base's momentum itself (so the base runs
    with ``optimizer="sgd"``). Extra hyperparameters: ``delta``, ``test_batch``, ``kept``."""
    label = name or base.__name__

    def method(model: nn.Module, task, delta: float = 0.1, kept: list | None = None, test_batch: int | None = None,
               **hp) -> nn.Module:
        if base is rmu:
            raise UnlearnError("masked:rmu is not supported: RMU's loss is on hidden states, not on the answers")
        device = next(model.parameters()).device
        r_ids, r_t = encode_training(task.tokenizer, list(task.retain) + list(task.general), device)
        pool = pack(r_ids, r_t)
        hp = {**DEFAULTS.get(f"masked:{label}", {}), **hp}
        opts = _opts(label, hp)
        masker = FeasibilityMasker(delta, kept, retain=(pool, labels_for(pool)),
                                   test_batch=test_batch or opts.get("batch_size", 16),
                                   momentum=opts.get("momentum", 0.9), weight_decay=opts.get("weight_decay", 0.0),
                                   seed=opts.get("seed", 0), route="vmap")
        out = base(model, task, mask_fn=masker, **{**hp, "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0})
        masker.finish()
        return out
    method.__name__ = f"masked_{label}"
    method.__doc__ = f"``masked:{label}``: {label} with the feasibility mask (chapter 15)."
    method.modality = "language"
    return method


LANGUAGE_REGISTRY: dict[str, Callable] = {
    "ga": ga,
    "grad_diff": grad_diff,
    "npo": npo,
    "rmu": rmu,
    "idk": idk,
    "pcgrad": pcgrad,
    "unilateral_surgery": unilateral_surgery,
    "implicit_surgery": implicit_surgery,
    "orthograd": orthograd,
}
#: bases of the masked add-on (RMU's loss is not on the answers).
MASKABLE = ("ga", "grad_diff", "npo", "idk", "pcgrad", "unilateral_surgery", "implicit_surgery", "orthograd")
LANGUAGE_REGISTRY.update({f"masked:{b}": masked(LANGUAGE_REGISTRY[b], b) for b in ("ga", "npo")})


def get_language_method(name: str):
    """The language method registered under ``name``, or ``masked:<base>`` for any maskable base."""
    if name in LANGUAGE_REGISTRY:
        return LANGUAGE_REGISTRY[name]
    if name.startswith("masked:") and name[len("masked:"):] in MASKABLE:
        base = name[len("masked:"):]
        return masked(LANGUAGE_REGISTRY[base], base)
    raise UnlearnError(f"unknown language method {name!r}; known: {', '.join(LANGUAGE_REGISTRY)}")
