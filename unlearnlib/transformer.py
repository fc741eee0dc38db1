"""A tiny decoder-only transformer, its training on the facts, and the cached original and oracle (chapter 14).

:class:`TinyGPT` is written out with matrix products: token and learned position embeddings, pre-norm blocks
(LayerNorm, causal multi-head self-attention, LayerNorm, a GELU MLP), a final LayerNorm and a linear head.
LayerNorm acts on each token alone and there is no dropout or BatchNorm, so every per-sample quantity is well
defined and ``torch.func.vmap`` (hence :func:`unlearnlib.grads.per_sample_grads`, through
:func:`lm_per_sample_grads`) applies.

Sizes and the training recipe per profile are in :data:`LM_SIZES`; the ``ci`` sizes train a model in well under
a minute on one CPU core and memorise every trained fact. The original (retain + forget + general facts) and the
retrain oracle (retain + general) are cached like the vision models (:mod:`unlearnlib.train`): under a hash of
the task, the recipe, the seed and the replica, written atomically, loaded with ``weights_only=True`` and a
SHA-256 check.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from tqdm import tqdm

from unlearnlib import config
from unlearnlib.errors import UnlearnError
from unlearnlib.facts import IGNORE, QA, FactsTask, encode_qa, n_train_paraphrases
from unlearnlib.train import _cache_folder, _key, has_nonfinite, load_checked, save_atomic, state_digest

#: Model sizes and training recipe per profile. ``ci``: about 10 s of CPU time per model on one core.
LM_SIZES: dict[str, dict] = {
    "ci": dict(d_model=64, n_layers=2, n_heads=4, d_ff=256, max_len=24, epochs=40, batch_size=32, lr=3e-3,
               weight_decay=0.01, warmup_frac=0.05),
    "full": dict(d_model=128, n_layers=4, n_heads=4, d_ff=512, max_len=24, epochs=80, batch_size=32, lr=2e-3,
                 weight_decay=0.01, warmup_frac=0.05),
}


# --- the model --------------------------------------------------------------------------------------------------

def causal_mask(T: int, device=None) -> torch.Tensor:
    """``[T, T]`` bool, True where position i may attend to position j, i.e. j <= i (chapter 14)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position attends to itself and earlier positions only (chapter 14)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(D, dim=-1)
        # [B, T, D] -> [B, h, T, D/h]: each head attends in its own subspace
        q, k, v = (t.reshape(B, T, h, D // h).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // h)
        scores = scores.masked_fill(~causal_mask(T, device=x.device), float("-inf"))
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))`` (chapter 14)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer: ``forward(ids [B, T]) -> logits [B, T, V]`` (chapter 14)."""

    def __init__(self, vocab_size: int, d_model: int = 128, n_layers: int = 4, n_heads: int = 4,
                 max_len: int = 32, d_ff: int | None = None, tied: bool = False):
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("d_model", d_model), ("n_layers", n_layers),
                        ("n_heads", n_heads), ("max_len", max_len)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise UnlearnError(f"TinyGPT {name} must be a positive integer, got {v!r}")
        if d_model % n_heads:
            raise UnlearnError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.vocab_size, self.max_len = int(vocab_size), int(max_len)
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.apply(self._init)
        if tied:
            self.head.weight = self.tok.weight

    @staticmethod
    def _init(m: nn.Module) -> None:
        # GPT-2's initialisation: small normal weights, zero biases (LayerNorm keeps its ones and zeros)
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def _check(self, ids: torch.Tensor) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
            shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise UnlearnError(f"TinyGPT needs token ids [B, T] of dtype torch.long, got {shape}; "
                               "use unlearnlib.facts.encode_qa")
        if ids.shape[1] > self.max_len:
            raise UnlearnError(f"sequence of {ids.shape[1]} tokens exceeds the model's max_len={self.max_len}")

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        self._check(ids)
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.tok(ids) + self.pos(pos)[None]

    def hidden_states(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream ``[B, T, d]`` after each block (for RMU and probing, chapter 15)."""
        x, out = self.embed(ids), []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


# --- configuration ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LMConfig:
    """Model sizes and the training recipe of the original and the oracle (chapter 14)."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    max_len: int = 24
    epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "d_ff", "max_len", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise UnlearnError(f"LMConfig.{name} must be a positive integer, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, numbers.Real) or not 0 < self.lr < math.inf:
            raise UnlearnError(f"LMConfig.lr must be a positive finite number, got {self.lr!r}")
        if not isinstance(self.weight_decay, numbers.Real) or not 0 <= self.weight_decay < math.inf:
            raise UnlearnError(f"LMConfig.weight_decay must be a non-negative finite number, got "
                               f"{self.weight_decay!r}")
        if not isinstance(self.warmup_frac, numbers.Real) or not 0 <= self.warmup_frac < 1:
            raise UnlearnError(f"LMConfig.warmup_frac must lie in [0, 1), got {self.warmup_frac!r}")
        if self.d_model % self.n_heads:
            raise UnlearnError(f"LMConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads}")

    @classmethod
    def from_profile(cls, profile=None, **overrides) -> "LMConfig":
        """The sizes of ``profile`` (a :class:`unlearnlib.config.Profile`, a name, or None: UNLEARN_PROFILE)."""
        if profile is None or isinstance(profile, str):
            profile = config.get_profile(profile)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise UnlearnError(f"unknown LMConfig field(s) {sorted(unknown)}")
        return cls(**{**LM_SIZES[profile.name], **overrides})

    def make_model(self, vocab_size: int) -> TinyGPT:
        return TinyGPT(vocab_size, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                       max_len=self.max_len, d_ff=self.d_ff)


# --- answer likelihoods -----------------------------------------------------------------------------------------

def _check_pair(ids, targets) -> None:
    if not isinstance(ids, torch.Tensor) or not isinstance(targets, torch.Tensor) or ids.shape != targets.shape \
            or ids.dim() != 2:
        raise UnlearnError("ids and targets must be tensors of the same shape [B, T] (from encode_qa)")


def token_logprobs(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp [B, T], scored [B, T] bool)``: log p(target_t | ids_<=t) at every scored position, 0 elsewhere."""
    _check_pair(ids, targets)
    logp = model(ids).log_softmax(dim=-1)
    scored = targets != IGNORE
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return picked * scored, scored


def answer_logprob(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample SUM of the log-probabilities of the scored tokens (answer and ``<eos>``): ``log P(a|q)`` [B]."""
    logp, _ = token_logprobs(model, ids, targets)
    return logp.sum(dim=1)


def answer_nll(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample MEAN negative log-likelihood over the scored tokens [B] (the training loss of one sample)."""
    logp, scored = token_logprobs(model, ids, targets)
    return -logp.sum(dim=1) / scored.sum(dim=1).clamp_min(1)


class _PackedLoss(nn.Module):
    """``x = [ids; targets]`` stacked ``[B, 2, T]`` -> per-sample answer NLL ``[B, 1]``: the form
    :func:`unlearnlib.grads.per_sample_grads` expects (one input tensor, one label per sample, outputs [B, C])."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, x):
        return answer_nll(self.lm, x[:, 0], x[:, 1]).unsqueeze(1)


def lm_per_sample_grads(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor,
                        chunk_size: int | None = None) -> dict[str, torch.Tensor]:
    """Per-sample gradients of each sample's answer NLL, through :func:`unlearnlib.grads.per_sample_grads`.

    Returns ``{name: [B, *param.shape]}`` in ``model.named_parameters()`` order (chapter 14).
    """
    from unlearnlib.grads import per_sample_grads

    _check_pair(ids, targets)
    x = torch.stack([ids, targets], dim=1)
    dummy = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
    g = per_sample_grads(_PackedLoss(model), x, dummy, loss_fn=lambda out, _y: out.mean(), chunk_size=chunk_size)
    return {k.removeprefix("lm."): v for k, v in g.items()}


# --- training ---------------------------------------------------------------------------------------------------

def training_tensors(qas: list[QA], task: FactsTask, cfg: LMConfig, device=None):
    """Every QA in each training paraphrase (never the held-out one), padded to one length: ``(ids, targets)``."""
    pairs = [encode_qa(task.tokenizer, qas, paraphrase=p, max_len=cfg.max_len, device="cpu")
             for p in range(n_train_paraphrases())]
    T = max(ids.shape[1] for ids, _ in pairs)
    pad = task.tokenizer.pad_id
    ids = torch.cat([nn.functional.pad(i, (0, T - i.shape[1]), value=pad) for i, _ in pairs])
    targets = torch.cat([nn.functional.pad(t, (0, T - t.shape[1]), value=IGNORE) for _, t in pairs])
    device = config.get_device(device)
    return ids.to(device), targets.to(device)


def _build(cfg: LMConfig, vocab_size: int, seed: int, device) -> TinyGPT:
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        model = cfg.make_model(vocab_size)
    return model.to(device)


def train_lm(qas: list[QA], task: FactsTask, cfg: LMConfig | None = None, seed: int = 0, device=None,
             progress: bool = False, model: TinyGPT | None = None) -> TinyGPT:
    """Train a fresh :class:`TinyGPT` (or ``model``, in place) on ``qas`` with AdamW (chapter 14).

    Minibatches of the per-sample mean answer NLL; linear warm-up then cosine decay of the learning rate; batch
    order from ``seed``. Returns the model in eval mode with ``train_time_s``.
    """
    if not qas:
        raise UnlearnError("train_lm needs at least one QA to train on")
    cfg = cfg or LMConfig.from_profile()
    device = config.get_device(device)
    ids, targets = training_tensors(qas, task, cfg, device)
    if model is None:
        model = _build(cfg, task.tokenizer.vocab_size, seed, device)
    g = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]  # biases and LayerNorm gains
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s, total) / total))))
    start = time.perf_counter()
    model.train()
    for _ in tqdm(range(cfg.epochs), desc="train LM", disable=not progress, leave=False, delay=5):
        order = torch.randperm(len(ids), generator=g).to(device)
        for b in range(0, len(ids), cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            loss = answer_nll(model, ids[idx], targets[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    config.synchronize(device)
    model.train_time_s = time.perf_counter() - start
    if bool(has_nonfinite(model)):
        raise UnlearnError(f"LM training diverged (NaN or infinite weights) at lr {cfg.lr}; lower the learning rate")
    return model


def _cached_lm(parts: dict, name: str, qas, task, cfg, seed, device, progress, use_cache) -> TinyGPT:
    device = config.get_device(device)
    key = _key(**parts)
    path = _cache_folder() / f"{name}-{key}.pt" if use_cache else None
    model = _build(cfg, task.tokenizer.vocab_size, seed, device)
    meta = load_checked(path, key, model) if use_cache else None
    if meta is not None:
        model.eval()
        model.train_time_s = float(meta.get("train_time_s", float("nan")))
        return model
    model = train_lm(qas, task, cfg, seed=seed, device=device, progress=progress, model=model)
    if use_cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_atomic({"key": key, "state_dict": state, "sha256": state_digest(state),
                     "meta": {"train_time_s": model.train_time_s}}, path)
    return model


def _check_task(task) -> None:
    if not isinstance(task, FactsTask):
        raise UnlearnError(f"expected a FactsTask from unlearnlib.facts.make_facts_task, got {type(task).__name__}")


def original_lm(task: FactsTask, cfg: LMConfig | None = None, seed: int = 0, device=None, progress: bool = False,
                use_cache: bool = True) -> TinyGPT:
    """The model trained on retain + forget + general facts (chapter 14); cached. ``.train_time_s``: its cost."""
    _check_task(task)
    cfg = cfg or LMConfig.from_profile()
    parts = dict(kind="lm-original", task=task.fingerprint(), cfg=asdict(cfg), seed=seed)
    return _cached_lm(parts, "lm-original", task.retain + task.forget + task.general, task, cfg, seed, device,
                      progress, use_cache)


def retrained_lm(task: FactsTask, cfg: LMConfig | None = None, seed: int = 0, device=None, progress: bool = False,
                 replica: int = 0, use_cache: bool = True) -> TinyGPT:
    """The oracle: the same recipe on retain + general facts only (chapter 14); cached.

    The seed is offset from the original's (an independent run, as retraining from scratch is); ``replica``
    j > 0 is another independent retraining (another initialisation and batch order), for the noise floor.
    """
    _check_task(task)
    if isinstance(replica, bool) or not isinstance(replica, numbers.Integral) or replica < 0:
        raise UnlearnError(f"replica must be a non-negative integer, got {replica!r}")
    cfg = cfg or LMConfig.from_profile()
    parts = dict(kind="lm-retrain", task=task.fingerprint(), cfg=asdict(cfg), seed=seed, replica=int(replica))
    train_seed = seed + 10_000 + 100_003 * int(replica)
    return _cached_lm(parts, "lm-retrain", task.retain + task.general, task, cfg, train_seed, device, progress,
                      use_cache)
