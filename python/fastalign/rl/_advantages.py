"""Advantage estimators over groups and batches: RLOO, REINFORCE++ (and its group baseline),
ReMax, and the whitening the frameworks apply (see :mod:`fastalign.rl` for the shared rules on
NaN rewards and groups of one)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fastalign._validate import (
    check_choice,
    check_finite_where,
    check_float_tensor,
    check_int,
    check_range,
    check_tensor,
)
from fastalign.errors import InvalidInputError, ShapeError

if TYPE_CHECKING:
    import torch

WHITEN_STYLES = ("verl", "openrlhf", "none")


def _outcome_rewards(rewards: torch.Tensor, name: str, b: int | None = None) -> torch.Tensor:
    """``rewards`` as a checked ``[B]`` float tensor: NaN allowed (an unscorable
    completion), inf refused."""
    import torch

    check_float_tensor(rewards, name)
    if rewards.ndim != 1 or (b is not None and rewards.shape[0] != b):
        want = "[B]" if b is None else f"[{b}]"
        raise ShapeError(f"{name} must be {want}, got shape {list(rewards.shape)}")
    inf = torch.isinf(rewards)
    if bool(inf.any()):
        i = int(inf.nonzero()[0, 0])
        raise InvalidInputError(
            f"{name}[{i}] is {float(rewards[i])}: rewards must be finite (NaN marks an "
            "unscorable completion)"
        )
    return rewards


def _groups(b: int, group_size: int) -> int:
    k = check_int(group_size, "group_size", 1, 2**31)
    if b % k:
        raise ShapeError(f"rewards has {b} rows, not a multiple of group_size={k}")
    return k


def rloo_advantages(
    rewards: torch.Tensor, group_size: int, *, normalize: bool = False
) -> torch.Tensor:
    """REINFORCE leave-one-out advantages (Ahmadian et al. 2024): groups of ``group_size``
    consecutive rows, ``A_i = r_i - mean of the other scorable rewards of its group``
    (``= k / (k - 1) * (r_i - group mean)`` with ``k`` scorable; TRL RLOOTrainer's baseline).

    ``normalize`` (TRL's ``normalize_advantages``): then ``(A - mean A) / (std A + 1e-4)``
    over the batch's scorable completions (Bessel-corrected std).

    NaN rewards mark unscorable completions: left out of their siblings' baselines, advantage
    0; a completion with no scorable sibling (``group_size=1``, or the only scorable one of its
    group) gets 0; inf is an error.

    Example:
        >>> import torch
        >>> rloo_advantages(torch.tensor([3.0, 1.0, 2.0, 2.0, 0.0, 4.0]), group_size=3)
        tensor([ 1.5000, -1.5000,  0.0000,  0.0000, -3.0000,  3.0000])
        >>> rloo_advantages(torch.tensor([3.0, 1.0, float("nan"), 2.0]), group_size=2)
        tensor([ 2., -2.,  0.,  0.])
    """
    import torch

    from fastalign.losses.grpo import _nanstd

    r = _outcome_rewards(rewards, "rewards")
    k = _groups(r.shape[0], group_size)
    if k == 1:
        return torch.zeros_like(r)
    g = r.view(-1, k)
    scorable = (~torch.isnan(g)).sum(dim=1, keepdim=True).to(r.dtype)
    baseline = (torch.nansum(g, dim=1, keepdim=True) - g) / (scorable - 1)
    adv = (g - baseline).reshape(-1)  # NaN: unscorable, or no scorable sibling (0 / 0)
    if normalize:
        std = _nanstd(adv) if adv.numel() > 1 else torch.zeros_like(adv)
        adv = (adv - torch.nanmean(adv)) / (std + 1e-4)
    return torch.nan_to_num(adv, nan=0.0)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, *, style: str = "verl") -> torch.Tensor:
    """``(x - mean) / std`` over the entries where ``mask`` is non-zero (all of them pooled),
    0 elsewhere, as the frameworks whiten REINFORCE++ advantages:

    - ``"verl"``: verl's ``masked_whiten``: ``mean = sum / (n + 1e-8)``, Bessel-corrected
      variance, ``(x - mean) * rsqrt(var + 1e-8)``; needs ``n >= 2``;
    - ``"openrlhf"``: OpenRLHF's: population variance, ``(x - mean) * rsqrt(max(var, 1e-8))``;
    - ``"none"``: no whitening (masked entries still 0).

    Example:
        >>> import torch
        >>> masked_whiten(torch.tensor([[1.0, 2.0, 3.0, 9.0]]), torch.tensor([[1, 1, 1, 0]]))
        tensor([[-1.,  0.,  1.,  0.]])
    """
    import torch

    check_float_tensor(values, "values")
    check_tensor(mask, "mask", values.shape, like="values")
    style = check_choice(style, "style", WHITEN_STYLES)
    valid = mask.bool()
    x = torch.where(valid, values, 0.0)  # masked entries may hold anything, NaN included
    if style == "none":
        return x
    m = valid.to(values.dtype)
    n = m.sum()
    if style == "verl":
        if float(n) < 2:
            raise InvalidInputError(
                f"whitening (style='verl') needs at least 2 valid tokens, got {int(n)}"
            )
        mean = x.sum() / (n + 1e-8)
        var = (torch.where(valid, x - mean, 0.0) ** 2).sum() / (n + 1e-8) * (n / (n - 1))
        scale = torch.rsqrt(var + 1e-8)
    else:
        n = n.clamp(min=1.0)
        mean = x.sum() / n
        var = (torch.where(valid, x - mean, 0.0) ** 2).sum() / n
        scale = var.clamp(min=1e-8).rsqrt()
    return torch.where(valid, (x - mean) * scale, 0.0)


def _token_rewards(
    rewards: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``[B, T]`` token rewards: ``[B, T]`` as given (finite where valid), or ``[B]`` outcome
    rewards placed at each row's last valid token; with the rows whose outcome reward is NaN
    (unscorable), or None."""
    import torch

    check_float_tensor(rewards, "rewards")
    if rewards.ndim == 2:
        check_tensor(rewards, "rewards", mask.shape, like="mask")
        check_float_tensor(rewards, "rewards")
        check_finite_where(rewards, "rewards", mask)
        return torch.where(mask.bool(), rewards, 0.0), None
    r = _outcome_rewards(rewards, "rewards", mask.shape[0])
    valid = mask.bool()
    t = mask.shape[1]
    last = t - 1 - valid.flip(1).to(torch.uint8).argmax(dim=1)
    has = valid.any(dim=1)
    unscorable = torch.isnan(r)
    out = torch.zeros(mask.shape, dtype=r.dtype, device=r.device)
    out[torch.arange(mask.shape[0], device=r.device), last] = torch.where(has & ~unscorable, r, 0.0)
    return out, unscorable


def reinforce_plus_plus(
    rewards: torch.Tensor,
    mask: torch.Tensor,
    *,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    gamma: float = 1.0,
    baseline: str | None = None,
    group_size: int | None = None,
    whiten: str = "verl",
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ advantages and returns (Hu et al. 2025, "REINFORCE++: stabilizing
    critic-free policy optimization with global advantage normalization").

    Token rewards ``r_t``: the outcome reward at each completion's last valid token (``[B]``
    rewards; or any ``[B, T]`` token rewards) minus ``kl_coef * kl_t`` (the KL folded into the
    reward, e.g. ``kl = fastalign.rl.kl(logps, ref_logps, kind="k1", where="reward")``).
    Returns: the discounted reward-to-go over the valid tokens (masked gaps are skipped, as
    :func:`discounted_returns`; verl's rule). Advantages: the returns whitened over every valid
    token of the batch (``whiten``: see :func:`masked_whiten`).

    ``baseline="group"`` is REINFORCE++-baseline: the outcome reward minus its group's mean
    (``group_size`` consecutive rows) is broadcast to every valid token (no discounting; the KL
    belongs in the loss, and ``kl`` / ``gamma`` must stay unset), then whitened.

    NaN outcome rewards mark unscorable completions: advantage and return 0, left out of the
    group means and the whitening statistics. A completion alone in its group (or the only
    scorable one) is centered on itself: 0 before whitening (verl subtracts 0 there instead).

    Returns:
        ``(advantages [B, T], returns [B, T])``, 0 where ``mask`` is 0; no graph.

    Example:
        >>> import torch
        >>> m = torch.tensor([[1, 1, 0], [1, 1, 1]])
        >>> adv, ret = reinforce_plus_plus(torch.tensor([1.0, 0.0]), m, whiten="none")
        >>> ret
        tensor([[1., 1., 0.],
                [0., 0., 0.]])
    """
    import torch

    from fastalign.rl._estimators import discounted_returns

    check_tensor(mask, "mask")
    if mask.ndim != 2:
        raise ShapeError(f"mask must be [B, T], got shape {list(mask.shape)}")
    whiten = check_choice(whiten, "whiten", WHITEN_STYLES)
    kl_coef = check_range(kl_coef, "kl_coef", 0.0, math.inf)
    g = check_range(gamma, "gamma", 0.0, math.inf)
    if baseline is not None:
        check_choice(baseline, "baseline", ("group",))
    with torch.no_grad():
        if baseline == "group":
            if group_size is None:
                raise InvalidInputError("baseline='group' needs group_size")
            if kl is not None or gamma != 1.0:
                raise InvalidInputError(
                    "baseline='group' takes no kl (put it in the loss) and no gamma"
                )
            r = _outcome_rewards(rewards, "rewards", mask.shape[0])
            k = _groups(r.shape[0], group_size)
            centered = (r.view(-1, k) - torch.nanmean(r.view(-1, k), 1, keepdim=True)).view(-1)
            unscorable = torch.isnan(centered)
            m = mask.to(r.dtype) * (~unscorable).to(r.dtype)[:, None]
            returns = torch.nan_to_num(centered, nan=0.0)[:, None] * m
        else:
            if group_size is not None:
                raise InvalidInputError("group_size applies to baseline='group'")
            tok, unscorable = _token_rewards(rewards, mask)
            if kl is not None:
                check_float_tensor(kl, "kl")
                check_tensor(kl, "kl", mask.shape, like="mask")
                check_finite_where(kl, "kl", mask)
                tok = tok - kl_coef * torch.where(mask.bool(), kl.detach().to(tok.dtype), 0.0)
            m = mask.to(tok.dtype)
            if unscorable is not None:
                m = m * (~unscorable).to(tok.dtype)[:, None]
            returns = discounted_returns(tok, m, gamma=g)
        advantages = masked_whiten(returns, m, style=whiten)
    return advantages, returns


def remax_advantages(
    rewards: torch.Tensor, baseline_rewards: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ReMax (Li et al. 2023): the reward of the sampled completion minus the reward of the
    greedy completion for the same prompt, on every valid token.

    ``rewards``: ``[B]`` outcome rewards (or ``[B, T]`` token rewards: the return is their
    undiscounted reward-to-go); ``baseline_rewards``: ``[B]`` rewards of the greedy
    completions. Returns ``(advantages, returns)`` ``[B, T]``, 0 where ``mask`` is 0 (verl
    leaves the reward-to-go on masked gaps); NaN rewards (either) give 0.

    Example:
        >>> import torch
        >>> adv, ret = remax_advantages(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]),
        ...                             torch.tensor([[1, 1], [1, 0]]))
        >>> adv
        tensor([[ 0.5000,  0.5000],
                [-0.5000,  0.0000]])
    """
    import torch

    from fastalign.rl._estimators import discounted_returns

    check_tensor(mask, "mask")
    if mask.ndim != 2:
        raise ShapeError(f"mask must be [B, T], got shape {list(mask.shape)}")
    base = _outcome_rewards(baseline_rewards, "baseline_rewards", mask.shape[0])
    with torch.no_grad():
        tok, unscorable = _token_rewards(rewards, mask)
        bad = torch.isnan(base) if unscorable is None else unscorable | torch.isnan(base)
        m = mask.to(tok.dtype) * (~bad).to(tok.dtype)[:, None]
        returns = discounted_returns(tok, m, gamma=1.0)
        adv = returns - torch.nan_to_num(base, nan=0.0).to(tok.dtype)[:, None]
    return torch.where(m.bool(), adv, 0.0), returns
