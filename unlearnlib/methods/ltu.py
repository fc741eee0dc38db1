"""LTU, learning to unlearn: meta-learning with a small retain subset, a differentiable membership-inference
forgetting signal and Gradient Harmonization (Huang, Foo & Liu, arXiv 2407.10494), as we reconstruct it
(chapter 08). The look-ahead primitives it shares with LUR are in :mod:`unlearnlib.methods.lookahead`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad

from unlearnlib.data import UnlearningTask, cycle_batches
from unlearnlib.errors import UnlearnError
from unlearnlib.grads import flatten, harmonize, trainable
from unlearnlib.methods._loop import run_unlearning, set_grads
from unlearnlib.methods.lookahead import functional_loss, lookahead_grads


def retain_subset(task: UnlearningTask, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small retain subset D̂_r (a ``fraction`` of D_r), split into disjoint support and query halves, as
    positions into ``task.x_retain`` (chapter 08)."""
    if not 0 < fraction <= 1:
        raise UnlearnError(f"the retain fraction must lie in (0, 1], got {fraction}")
    n = len(task.retain_idx)
    k = max(4, int(round(fraction * n)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7))[:min(k, n)]
    half = len(perm) // 2
    return perm[:half], perm[half:]


class MembershipModel(nn.Module):
    """A differentiable membership-inference attack on output statistics (chapter 08).

    Features of a sample: log p_y (true-class log-probability), the entropy of p, and the margin between the
    true-class logit and the largest other logit; a logistic regression on them gives P(member).
    """

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("scale", torch.ones(3))

    @staticmethod
    def features(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logp = logits.log_softmax(1)
        true = logp.gather(1, y[:, None]).squeeze(1)
        entropy = -(logp.exp() * logp).sum(1)
        others = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf"))
        margin = logits.gather(1, y[:, None]).squeeze(1) - others.max(1).values
        return torch.stack([true, entropy, margin], 1)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logit of P(member)."""
        return self.linear((self.features(logits, y) - self.mean) / self.scale).squeeze(1)


def train_membership_model(model: nn.Module, x_in, y_in, x_out, y_out, steps: int = 300, seed: int = 0) -> MembershipModel:
    """Fit a :class:`MembershipModel` on the outputs of ``model``: members ``(x_in, y_in)`` vs non-members (chapter 08)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        f = torch.cat([MembershipModel.features(model(x_in), y_in), MembershipModel.features(model(x_out), y_out)])
    target = torch.cat([torch.ones(len(y_in)), torch.zeros(len(y_out))]).to(f.device)
    attack = MembershipModel().to(f.device)
    attack.mean.copy_(f.mean(0))
    attack.scale.copy_(f.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(attack.linear.parameters(), lr=0.05)
    weight = torch.where(target == 1, len(target) / (2 * len(y_in)), len(target) / (2 * len(y_out)))
    for _ in range(steps):
        logits = attack.linear((f - attack.mean) / attack.scale).squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in attack.parameters():
        p.requires_grad_(False)
    return attack.eval()


def ltu(model: nn.Module, task: UnlearningTask, retain_fraction: float = 0.05, epochs: float = 40, lr: float = 1e-3,
        alpha: float = 0.1, w_f: float = 1.0, forget_signal: str = "mia", harmonize_grads: bool = True,
        second_order: bool = False, batch_size: int = 32, seed: int = 0, stop_at: float | str | None = "auto",
        history: list | None = None, **kw) -> nn.Module:
    """LTU, learning to unlearn (Huang, Foo & Liu, arXiv 2407.10494), as we reconstruct it (chapter 08).

    Only a small retain subset D̂_r (``retain_fraction`` of D_r) is used, split into a support and a disjoint
    query set. Each step: *meta-tune* θ' = θ − α ∇CE(support batch); *meta-test* at θ' on a query batch
    (remembering) and on a forget batch (forgetting: ``forget_signal="mia"`` pushes a differentiable
    membership-inference model's P(member) down, ``"ascent"`` is −CE); *Gradient Harmonization* of the two
    meta-gradients (:func:`~unlearnlib.grads.harmonize`); *meta-update* with their sum. The attack model is fitted
    once at θ0 on members from the support set and non-members from the first half of the test set, so it never
    sees the forget set it audits. ``history``, if a list, receives the cosine of the two meta-gradients per step.
    """
    if forget_signal not in ("mia", "ascent"):
        raise UnlearnError(f"unknown LTU forget signal {forget_signal!r}; use 'mia' or 'ascent'")
    device = next(model.parameters()).device
    support, query = (i.to(device) for i in retain_subset(task, retain_fraction, seed))
    xr_all, yr_all = task.x_retain.to(device), task.y_retain.to(device)
    xs, ys, xq, yq = xr_all[support], yr_all[support], xr_all[query], yr_all[query]
    attack = None
    if forget_signal == "mia":
        half = len(task.y_test) // 2
        attack = train_membership_model(model.eval(), xs, ys, task.x_test[:half].to(device),
                                        task.y_test[:half].to(device), seed=seed)
    g = torch.Generator().manual_seed(seed + 3)
    s_stream = cycle_batches(len(ys), batch_size, g, device)
    q_stream = cycle_batches(len(yq), batch_size, g, device)

    def step(m, xf, yf, xr, yr):
        si, qi = next(s_stream), next(q_stream)
        params = {k: v.detach() for k, v in trainable(m).items()}
        L_sup = functional_loss(m, xs[si], ys[si])
        L_rem = functional_loss(m, xq[qi], yq[qi])
        if attack is None:
            L_fgt = functional_loss(m, xf, yf, sign=-1.0)
        else:
            buffers = {k: v.detach().clone() for k, v in m.named_buffers()}
            # −log(1 − P(member)) on the forget batch: small when the attack calls the samples non-members.
            L_fgt = lambda p: nn.functional.softplus(attack(functional_call(m, (p, buffers), (xf,)), yf)).mean()
        _, meta = lookahead_grads(params, L_sup, {"rem": L_rem, "fgt": L_fgt}, alpha, second_order)
        g_sup = grad(L_sup)(params)
        G_rem = flatten({k: g_sup[k] + meta["rem"][k] for k in params})
        G_fgt = w_f * flatten(meta["fgt"])
        if history is not None:
            history.append(torch.nn.functional.cosine_similarity(G_rem, G_fgt, dim=0).item())
        if harmonize_grads:
            G_rem, G_fgt = harmonize(G_rem, G_fgt)
        set_grads(m, G_rem + G_fgt)
    return run_unlearning(model, task, step, epochs=epochs, lr=lr, batch_size=batch_size, over="forget", seed=seed,
                          stop_at=stop_at, desc="ltu", **kw)
