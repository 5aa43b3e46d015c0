"""The side terms of :func:`fastalign.losses.grpo_loss`, each a small function of detached
inputs: the rollout-engine correction, DeepSeek-V3.2's off-policy sequence mask, the
high-entropy token mask and VESPO's gamma weights. TRL 1.16's GRPOTrainer definitions
(``_generate_and_score_completions``, ``get_off_policy_mask``, ``get_high_entropy_mask``,
``get_gamma_weights``); the parity tests run TRL's own code."""

from __future__ import annotations

import math

import torch

SAMPLING_CORRECTIONS = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def rollout_ratio(
    old: torch.Tensor,
    sampling: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    clip_min: float | None,
    clip_max: float | None,
) -> torch.Tensor:
    """The importance ratio ``pi_old / pi_sampler`` that corrects for the rollout engine's
    numerics (truncated / masked importance sampling): ``[B, T]`` for ``token_*`` modes,
    ``[B, 1]`` (the product over the sequence's tokens) for ``sequence_*`` modes.

    ``*_truncate`` clamps it to ``[clip_min, clip_max]``; ``*_mask`` sets it to 0 outside.
    Tokens the sampler could not score (NaN) and masked tokens get ratio 1."""
    diff = torch.nan_to_num((old - sampling) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        return torch.clamp(ratio, min=clip_min, max=clip_max)
    lo = -math.inf if clip_min is None else clip_min
    hi = math.inf if clip_max is None else clip_max
    return ratio.masked_fill((ratio < lo) | (ratio > hi), 0.0)


def rollout_metrics(
    old: torch.Tensor,
    sampling: torch.Tensor,
    mask: torch.Tensor,
    ratio: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """TRL's mismatch metrics: ``|logp_old - logp_sampler|`` over the scored tokens (NaN
    left out; 0 when none) and the min / mean / max of the correction ratio (over the
    sequences, or the scored tokens for token modes). Masked reductions, no gathers."""
    delta = torch.abs(old - sampling)
    sel = mask.bool() & ~torch.isnan(delta)
    mean, _, high = masked_stats(delta, sel)
    out = {
        "sampling/sampling_logp_difference/mean": mean,
        "sampling/sampling_logp_difference/max": high,
    }
    if ratio is not None:
        where = torch.ones_like(ratio, dtype=torch.bool) if ratio.shape[1] == 1 else mask.bool()
        names = ("mean", "min", "max")
        for name, v in zip(names, masked_stats(ratio, where), strict=True):
            out[f"sampling/importance_sampling_ratio/{name}"] = v
    return out


def masked_stats(x: torch.Tensor, where: torch.Tensor, empty: float = 0.0):
    """Mean, min and max of ``x`` where ``where`` holds (``empty`` each when it holds
    nowhere), by masked reductions (no gather)."""
    count = where.sum()
    if not bool(count):
        none = x.new_full((), empty)
        return none, none, none
    mean = torch.where(where, x, 0.0).sum() / count
    low = torch.where(where, x, math.inf).min()
    high = torch.where(where, x, -math.inf).max()
    return mean, low, high


def off_policy_keep(
    advantages: torch.Tensor,
    logps: torch.Tensor,
    sampling: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
) -> torch.Tensor:
    """DeepSeek-V3.2's off-policy sequence mask (its Eq. 9): keep a sequence (1) when its
    advantage is >= 0 or its mean token KL ``mean_t(logp_sampler - logp)`` is <= the
    threshold; drop it (0) otherwise. Unscored (NaN) tokens count as 0 KL."""
    kl = torch.nan_to_num(sampling - logps.detach(), nan=0.0)
    avg = (kl * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    return ((advantages >= 0) | (avg <= threshold)).to(mask.dtype)


def quantile(values: torch.Tensor, q: float, n: int | None = None) -> torch.Tensor:
    """``torch.quantile(values[:n]-worth, q)`` (linear interpolation) by selection, in
    O(len) and for any length (``torch.quantile`` sorts, and refuses inputs above 2**24
    elements). ``values`` is 1-D; with ``n``, only its ``n`` smallest entries count (pad the
    others with +inf to leave them out)."""
    n = values.numel() if n is None else n
    pos = q * (n - 1)
    lo = min(math.floor(pos), n - 1)
    low = torch.kthvalue(values, lo + 1).values
    if pos == lo:
        return low
    # the next order statistic: ``low`` again when it repeats, else the next larger value
    repeats = int((values <= low).sum()) >= lo + 2
    high = low if repeats else torch.where(values > low, values, math.inf).min()
    return torch.lerp(low, high, torch.as_tensor(pos - lo, dtype=low.dtype, device=low.device))


def high_entropy_mask(entropies: torch.Tensor, mask: torch.Tensor, top: float) -> torch.Tensor:
    """The scored tokens whose entropy is at least the ``1 - top`` quantile of the scored
    tokens' entropies (the top ``top`` fraction: "Beyond the 80/20 rule", Wang et al.
    2025); all False when no token is scored."""
    sel = mask.bool()
    n = int(sel.sum())
    if n == 0:
        return torch.zeros_like(sel)
    ent = entropies.detach()
    threshold = quantile(torch.where(sel, ent, math.inf).reshape(-1), 1.0 - top, n)
    return ((ent * mask) >= threshold) & sel


@torch.no_grad()
def vespo_weights(
    advantages: torch.Tensor,
    log_ratio: torch.Tensor,
    mask: torch.Tensor,
    is_ratio: torch.Tensor | None,
    k_pos: float,
    lambda_pos: float,
    k_neg: float,
    lambda_neg: float,
) -> torch.Tensor:
    """VESPO's gamma weights ``phi(w) = exp(lam + k log w - lam w)`` of the sequence ratio
    ``w = prod_t pi / pi_old`` (times the rollout correction's token ratios when given),
    with ``(k, lam)`` by the sign of the advantage; ``log w`` clamped to ``[log 1e-8, 20]``
    (each token's log-ratio to ``[-20, 20]``), NaN / inf weights 0. Detached: it scales
    the gradient of ``-phi A log pi``."""
    lower = math.log(1e-8)
    seq = torch.sum(torch.clamp(log_ratio, -20.0, 20.0) * mask, dim=-1, keepdim=True)
    if is_ratio is not None:
        seq = seq + torch.sum(torch.clamp(torch.log(is_ratio), lower, 20.0), -1, keepdim=True)
    log_w = torch.clamp(seq, lower, 20.0)
    nonneg = advantages >= 0
    k = torch.where(nonneg, log_w.new_tensor(k_pos), log_w.new_tensor(k_neg))
    lam = torch.where(nonneg, log_w.new_tensor(lambda_pos), log_w.new_tensor(lambda_neg))
    lam = lam.clamp(min=1e-4)
    phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
    return phi.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
