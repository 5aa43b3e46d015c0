"""Token-level RL objectives: group-relative advantages and the GRPO family.

``grpo_loss`` is the clipped surrogate of GRPO / DAPO / Dr. GRPO / GSPO on per-token
log-probs ``[B, T]`` with a completion mask, with TRL's GRPOTrainer semantics (the tests run
TRL's own loss code for parity): ratio ``u = exp(lp - lp_old)`` (per token, or per sequence
for GSPO's ``importance_sampling_level="sequence"``), per-token loss
``-min(u A, clip(u, 1 - eps_low, 1 + eps_high) A) + beta * k3``,
``k3 = exp(lp_ref - lp) - (lp_ref - lp) - 1``, then one of four aggregations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fastalign._validate import (
    check_choice,
    check_finite_where,
    check_float_tensor,
    check_int,
    check_positive,
    check_range,
    check_tensor,
)
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses._common import LossOutput, loss_output

__all__ = [
    "GRPO_LOSS_TYPES",
    "group_advantages",
    "grpo_loss",
    "pama_loss",
    "rank_grpo_loss",
    "soft_overlong_penalty",
]

GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected standard deviation ignoring NaNs (NaN when fewer than 2 values)."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True).to(x.dtype)
    corr = torch.where(count > 1, count / (count - 1), torch.full_like(var, math.nan))
    out = torch.sqrt(var * corr)
    return out if dim is None else out.squeeze(dim)


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    *,
    scale: str = "group",
    eps: float = 1e-4,
    aggregation: str = "sum_then_normalize",
    reward_weights: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    """Group-relative advantages ``A_i = (r_i - mean_g r) / (std_g r + eps)`` (GRPO), with
    TRL 1.16's ``scale_rewards`` and ``multi_objective_aggregation``.

    Args:
        rewards: ``[B]``, or ``[B, K]`` with one column per reward function; ``group_size``
            consecutive completions per prompt (``B % group_size == 0``). NaN marks a reward a
            function could not give; a completion with no reward at all (every column NaN) is
            unscorable: it is left out of its group's mean and std and gets advantage 0. Every
            advantage that comes out NaN is 0, also in a group with a single scored completion
            (its std is undefined): TRL's rule. ``inf`` rewards are an error.
        group_size: completions per prompt (TRL's ``num_generations``).
        scale: ``"group"`` divides by the group's std (GRPO), ``"batch"`` by the batch std,
            ``"none"`` does not divide (Dr. GRPO). Stds are Bessel-corrected, NaN-aware.
        eps: added to the std.
        aggregation: with ``K`` columns, ``"sum_then_normalize"`` sums the weighted columns
            (``nansum``) and normalizes the sum as above; ``"normalize_then_sum"`` (GDPO)
            normalizes each column within its groups, sums the weighted results, and
            normalizes that over the batch (``scale`` does not apply: leave it "group").
        reward_weights: ``[K]`` weights of the columns (default: ones).

    Returns:
        ``[B]`` advantages (same dtype as ``rewards``).

    Example:
        >>> import torch
        >>> group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), 2, scale="none")
        tensor([ 0.5000, -0.5000,  0.0000,  0.0000])
        >>> r = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        >>> group_advantages(r, 2, reward_weights=[2.0, 1.0], scale="none")
        tensor([ 1.0000, -1.0000,  0.5000, -0.5000])
    """
    if not isinstance(rewards, torch.Tensor) or not rewards.is_floating_point():
        raise TypeError("rewards must be a floating-point torch.Tensor")
    if rewards.ndim not in (1, 2):
        raise ShapeError(f"rewards must be [B] or [B, K], got shape {tuple(rewards.shape)}")
    group_size = check_int(group_size, "group_size", 1)
    eps = check_range(eps, "eps", 0.0, math.inf)
    scale = check_choice(scale, "scale", ("group", "batch", "none"))
    aggregation = check_choice(aggregation, "aggregation",
                               ("sum_then_normalize", "normalize_then_sum"))  # fmt: skip
    if rewards.shape[0] % group_size:
        raise InvalidInputError(
            f"{rewards.shape[0]} rewards do not split into groups of {group_size}"
        )
    inf = torch.isinf(rewards)
    if bool(inf.any()):
        at = [int(i) for i in inf.nonzero()[0]]
        idx = ", ".join(map(str, at))
        raise InvalidInputError(
            f"rewards[{idx}] is {float(rewards[tuple(at)])}: rewards must be finite (NaN marks "
            "an unscorable completion)"
        )
    per_func = rewards if rewards.ndim == 2 else rewards[:, None]
    k = per_func.shape[1]
    if reward_weights is None:
        w = torch.ones(k, dtype=rewards.dtype, device=rewards.device)
    else:
        w = torch.as_tensor(reward_weights, dtype=rewards.dtype, device=rewards.device)
        check_tensor(w, "reward_weights", (k,), like="rewards' columns")
        check_finite_where(w, "reward_weights", None)
    unscorable = torch.isnan(per_func).all(dim=1)
    if aggregation == "normalize_then_sum":
        if scale != "group":
            raise InvalidInputError(
                "scale applies to aggregation='sum_then_normalize'; 'normalize_then_sum' "
                "normalizes each reward within its group, then the sum over the batch"
            )
        grouped = per_func.view(-1, group_size, k)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = _nanstd(grouped, dim=1)[:, None, :] if group_size > 1 else torch.zeros_like(mean_k)
        normed = ((grouped - mean_k) / (std_k + eps)).view(-1, k)
        total = (normed * w[None, :]).nansum(dim=1)
        total[unscorable] = math.nan
        std = _nanstd(total) if total.numel() > 1 else torch.zeros_like(total)
        return torch.nan_to_num((total - torch.nanmean(total)) / (std + eps), nan=0.0)
    total = (per_func * w[None, :]).nansum(dim=1) if rewards.ndim == 2 else rewards * w[0]
    if rewards.ndim == 2:
        total[unscorable] = math.nan
    grouped = total.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    adv = total - mean
    if scale == "group":
        std = (
            _nanstd(grouped, dim=1)
            if group_size > 1
            else torch.zeros(grouped.shape[0], dtype=total.dtype, device=total.device)
        )
        adv = adv / (std.repeat_interleave(group_size) + eps)
    elif scale == "batch":
        std = _nanstd(total) if total.numel() > 1 else torch.zeros_like(total)
        adv = adv / (std + eps)
    return torch.nan_to_num(adv, nan=0.0)


def soft_overlong_penalty(lengths: torch.Tensor, max_length: int, cache_length: int):
    """DAPO's soft overlong punishment: 0 up to ``max_length - cache_length`` tokens, then a
    linear ramp to -1 at ``max_length``, and -1 beyond.

    Example:
        >>> soft_overlong_penalty(torch.tensor([10, 90, 95, 100, 120]), 100, 10)
        tensor([ 0.0000,  0.0000, -0.5000, -1.0000, -1.0000])
    """
    max_length = check_int(max_length, "max_length", 1)
    cache_length = check_int(cache_length, "cache_length", 1, max_length)
    check_tensor(lengths, "lengths")
    lengths = lengths.to(torch.get_default_dtype()) if not lengths.is_floating_point() else lengths
    start = max_length - cache_length
    ramp = (start - lengths) / cache_length
    return torch.where(
        lengths <= start,
        torch.zeros_like(ramp),
        torch.where(lengths <= max_length, ramp, torch.full_like(ramp, -1.0)),
    )


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    loss_type: str = "grpo",
    importance_sampling_level: str = "token",
    max_completion_length: int | None = None,
    num_items_in_batch: float | torch.Tensor | None = None,
) -> LossOutput:
    """The GRPO-family clipped surrogate on per-token log-probs.

    Args:
        logps: ``[B, T]`` per-token log-probs under the current policy (differentiable).
        old_logps: ``[B, T]`` under the policy that sampled (``None``: on-policy, i.e.
            ``logps.detach()``).
        advantages: ``[B]`` (or ``[B, T]``) advantages, e.g. from :func:`group_advantages`.
        mask: ``[B, T]`` completion mask (1 for scored tokens).
        ref_logps: ``[B, T]`` reference log-probs, required when ``beta > 0``.
        beta: weight of the k3 KL estimator to the reference.
        epsilon_low, epsilon_high: clip range ``[1 - eps_low, 1 + eps_high]``
            (``epsilon_high`` defaults to ``epsilon_low``; DAPO's clip-higher uses 0.28).
        delta: optional upper clip of the unclipped ratio (two-sided clipping).
        loss_type: aggregation: ``"grpo"`` (mean over sequences of per-sequence token means),
            ``"bnpo"`` (token sum / token count), ``"dr_grpo"`` (token sum /
            (B * max_completion_length)), ``"dapo"`` (token sum / ``num_items_in_batch``,
            the global token count; defaults to the local count).
        importance_sampling_level: ``"token"`` (GRPO) or ``"sequence"`` (GSPO: the ratio is
            ``exp(mean_t(lp - lp_old))`` per sequence, broadcast to its tokens).

    Returns:
        :class:`LossOutput`: ``loss`` aggregated as ``loss_type`` says; ``losses`` the
        per-sequence token-mean loss ``[B]``; metrics ``clip_ratio/low_mean``,
        ``clip_ratio/high_mean``, ``clip_ratio/region_mean`` (token means, or sequence
        means for sequence-level ratios, as TRL logs them),
        ``ratio/mean``, ``ratio/min``, ``ratio/max`` and ``kl`` when ``beta > 0``.
    """
    if not isinstance(logps, torch.Tensor) or not logps.is_floating_point():
        raise TypeError("logps must be a floating-point torch.Tensor")
    if logps.ndim != 2:
        raise ShapeError(f"logps must be [B, T], got shape {tuple(logps.shape)}")
    shape = logps.shape
    for name, t in (("old_logps", old_logps), ("mask", mask), ("ref_logps", ref_logps)):
        if t is not None:
            check_tensor(t, name, shape, like="logps")
    if mask is None:
        raise TypeError("mask is required")
    if not isinstance(advantages, torch.Tensor):
        raise TypeError("advantages must be a torch.Tensor")
    if advantages.shape not in ((shape[0],), shape):
        raise ShapeError(
            f"advantages must be [{shape[0]}] or {list(shape)}, got {tuple(advantages.shape)}"
        )
    if loss_type not in GRPO_LOSS_TYPES:
        raise InvalidInputError(f"loss_type must be one of {GRPO_LOSS_TYPES}, got {loss_type!r}")
    if importance_sampling_level not in ("token", "sequence"):
        raise InvalidInputError("importance_sampling_level must be 'token' or 'sequence'")
    beta = check_range(beta, "beta", 0.0, math.inf)
    if beta > 0 and ref_logps is None:
        raise InvalidInputError("beta > 0 needs ref_logps")
    eps_low = check_positive(epsilon_low, "epsilon_low")
    eps_high = eps_low if epsilon_high is None else check_positive(epsilon_high, "epsilon_high")
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise InvalidInputError("loss_type='dr_grpo' needs max_completion_length")
    if max_completion_length is not None:
        max_completion_length = check_int(max_completion_length, "max_completion_length", 1)
    delta = check_positive(delta, "delta", allow_none=True)
    if num_items_in_batch is not None and not isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = check_positive(num_items_in_batch, "num_items_in_batch")

    mask = mask.to(logps.dtype)
    adv = advantages.unsqueeze(1) if advantages.ndim == 1 else advantages
    old = logps.detach() if old_logps is None else old_logps
    log_ratio = logps - old
    if importance_sampling_level == "sequence":
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_w = log_ratio
    coef_1 = torch.exp(log_w)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    unclipped = torch.clamp(coef_1, max=delta) if delta is not None else coef_1
    per_token = -torch.min(unclipped * adv, coef_2 * adv)
    kl = None
    if beta > 0:
        diff = ref_logps - logps
        kl = torch.exp(diff) - diff - 1
        per_token = per_token + beta * kl
    per_token = per_token.expand(shape)

    token_sum = (per_token * mask).sum(-1)
    count = mask.sum(-1).clamp(min=1.0)
    seq_mean = token_sum / count
    if loss_type == "grpo":
        loss = seq_mean.mean()
    elif loss_type == "bnpo":
        loss = token_sum.sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = token_sum.sum() / (shape[0] * max_completion_length)
    else:
        denom = (
            mask.sum()
            if num_items_in_batch is None
            else torch.as_tensor(num_items_in_batch, dtype=logps.dtype, device=logps.device)
        )
        loss = token_sum.sum() / denom.clamp(min=1.0)

    with torch.no_grad():
        total = mask.sum().clamp(min=1.0)

        def tok_mean(x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] == 1:  # sequence-level ratios: one value per sequence (as TRL)
                return x.to(logps.dtype).mean()
            return (x.to(logps.dtype) * mask).sum() / total

        low = (coef_1 < 1 - eps_low) & (adv < 0)
        high = (coef_1 > 1 + eps_high) & (adv > 0)
        ratio = coef_1.detach().expand(shape)
        sel = mask.bool()
        metrics = {
            "clip_ratio/low_mean": tok_mean(low),
            "clip_ratio/high_mean": tok_mean(high),
            "clip_ratio/region_mean": tok_mean(low | high),
            "ratio/mean": tok_mean(coef_1.detach()),
            "ratio/min": ratio[sel].min() if sel.any() else ratio.new_tensor(math.nan),
            "ratio/max": ratio[sel].max() if sel.any() else ratio.new_tensor(math.nan),
        }
        if kl is not None:
            metrics["kl"] = tok_mean(kl)
    return loss_output(loss, seq_mean, metrics)


def pama_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_advantages: bool = True,
    **grpo_options,
) -> LossOutput:
    """PAMA (Pareto multi-objective alignment): the clipped surrogate of :func:`grpo_loss`
    with the combined advantage ``s*`` of ``n`` objectives.

    ``advantages [B, n]`` holds one advantage per objective; with ``clip_advantages`` (Noon
    PPO) they are clipped to ``max(A, 0)`` first. ``s*`` is the projection of 0 onto
    ``[min_i a_i, max_i a_i]`` per sample, computed by the Rust core
    (:func:`fastalign.pareto.pama`). Other options go to :func:`grpo_loss`. Metrics add
    ``pama/advantage_mean`` and ``pama/zero_fraction`` (samples whose objectives disagree).
    """
    from fastalign.pareto import pama

    check_float_tensor(logps, "logps")
    check_tensor(advantages, "advantages")
    if advantages.ndim != 2:
        raise ShapeError(
            "advantages must be a [B, n] tensor (one column per objective), got "
            f"{list(advantages.shape)}"
        )
    a = advantages.detach()
    if clip_advantages:
        a = a.clamp(min=0)
    s_star = torch.from_numpy(pama(a.double().cpu().numpy())).to(
        device=logps.device, dtype=logps.dtype
    )
    out = grpo_loss(logps, old_logps, s_star, mask, **grpo_options)
    out.metrics["pama/advantage_mean"] = s_star.mean()
    out.metrics["pama/zero_fraction"] = (s_star == 0).to(logps.dtype).mean()
    return out


def rank_grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    item_ids: torch.Tensor,
    relevance: torch.Tensor,
    group_size: int,
    *,
    reward: str = "dcg",
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    eps: float = 1e-4,
) -> LossOutput:
    """Rank-GRPO for ranked-list outputs (e.g. LLM recommenders): the item, not the token or
    the sequence, is the unit of the importance ratio and of the advantage.

    Each completion lists ``K`` items; ``item_ids [B, T]`` says which item (0..K-1) each
    token belongs to (-1: no item). Per completion ``i`` and rank ``k``:

    - reward ``r_ik``: ``relevance[i, k]`` (``reward="relevance"``) or the causal DCG
      ``sum_{j >= k} rel_ij / log2(j + 2)`` (0-based ``j``; ``reward="dcg"``);
    - advantage: ``r_ik`` normalized per rank position across the ``group_size`` completions
      of the same prompt, ``(r_ik - mean) / (std + eps)`` (Bessel-corrected std);
    - ratio ``u_ik = exp(mean over item-k tokens of (lp - lp_old))``;
    - loss ``-min(u A, clip(u, 1 - eps_low, 1 + eps_high) A)``,

    averaged over the items that have at least one token. ``losses`` is the per-completion
    mean over its items.
    """
    if logps.ndim != 2:
        raise ShapeError(f"logps must be [B, T], got {list(logps.shape)}")
    shape = logps.shape
    for name, t in (("old_logps", old_logps), ("item_ids", item_ids)):
        if t is not None:
            check_tensor(t, name, shape, like="logps")
    if relevance.ndim != 2 or relevance.shape[0] != shape[0]:
        raise ShapeError(f"relevance must be [{shape[0]}, K], got {list(relevance.shape)}")
    b, k = relevance.shape
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise InvalidInputError(f"group_size must be an int >= 2, got {group_size!r}")
    if b % group_size:
        raise InvalidInputError(f"{b} completions do not split into groups of {group_size}")
    if bool(((item_ids < -1) | (item_ids >= k)).any()):
        raise InvalidInputError(f"item_ids must be in [-1, {k})")
    if reward not in ("dcg", "relevance"):
        raise InvalidInputError(f"reward must be 'dcg' or 'relevance', got {reward!r}")
    eps_low = check_positive(epsilon_low, "epsilon_low")
    eps_high = eps_low if epsilon_high is None else check_positive(epsilon_high, "epsilon_high")

    rel = relevance.to(logps.dtype)
    if reward == "dcg":
        disc = 1.0 / torch.log2(torch.arange(k, device=rel.device, dtype=rel.dtype) + 2.0)
        r = torch.flip(torch.cumsum(torch.flip(rel * disc, [1]), 1), [1])
    else:
        r = rel
    grouped = r.view(-1, group_size, k)
    mean = grouped.mean(1, keepdim=True)
    std = grouped.std(1, keepdim=True)
    adv = ((grouped - mean) / (std + eps)).view(b, k)

    old = logps.detach() if old_logps is None else old_logps
    onehot = (item_ids[:, :, None] == torch.arange(k, device=item_ids.device)).to(logps.dtype)
    count = onehot.sum(1)  # [B, K] tokens per item
    mean_lr = torch.einsum("bt,btk->bk", logps - old, onehot) / count.clamp(min=1.0)
    u = torch.exp(mean_lr)
    per_item = -torch.min(u * adv, u.clamp(1 - eps_low, 1 + eps_high) * adv)
    present = (count > 0).to(logps.dtype)
    loss = (per_item * present).sum() / present.sum().clamp(min=1.0)
    losses = (per_item * present).sum(1) / present.sum(1).clamp(min=1.0)
    with torch.no_grad():
        clipped = ((u < 1 - eps_low) & (adv < 0)) | ((u > 1 + eps_high) & (adv > 0))
        n = present.sum().clamp(min=1.0)
        metrics = {
            "clip_ratio/region_mean": (clipped.to(logps.dtype) * present).sum() / n,
            "reward/mean": r.mean(),
        }
    return loss_output(loss, losses, metrics)
