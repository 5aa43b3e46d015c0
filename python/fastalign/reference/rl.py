"""RL references: the GAE recurrence as the frameworks write it, a Python loop over time
steps (verl's ``compute_gae_advantage_return`` before its whitening: masked tokens carry the
next value and advantage), and RLOO by an explicit leave-one-out mean per row."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def gae_loop(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
    last_values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns by a loop over T in the inputs' dtype, 0 on masked tokens."""
    import torch

    m = (mask != 0).to(rewards.dtype)
    nextvalues = (
        torch.zeros_like(rewards[:, 0]) if last_values is None else last_values.to(rewards.dtype)
    )
    lastgaelam = torch.zeros_like(rewards[:, 0])
    out = []
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        new = delta + gamma * lam * lastgaelam
        nextvalues = values[:, t] * m[:, t] + (1 - m[:, t]) * nextvalues
        lastgaelam = new * m[:, t] + (1 - m[:, t]) * lastgaelam
        out.append(lastgaelam)
    adv = torch.stack(out[::-1], dim=1) * m
    return adv, (adv + values) * m


def rloo_loop(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each reward minus the plain mean of the other rewards of its group."""
    import torch

    out = torch.empty_like(rewards)
    for i in range(rewards.shape[0]):
        g = i // group_size
        others = [rewards[j] for j in range(g * group_size, (g + 1) * group_size) if j != i]
        out[i] = rewards[i] - sum(others) / len(others)
    return out


# -- the frameworks' estimators, transcribed (verl 0.9.1 ``verl/trainer/ppo/core_algos.py`` and
# ``verl/utils/torch_functional.py``; OpenRLHF 0.11.2 ``openrlhf/models/utils.py``).
# Neither package installs beside fastalign's test environment (verl needs tensordict and ray,
# OpenRLHF flash-attn and deepspeed); tests/peers/check_rl_transcriptions.py runs these
# against the packages themselves where they import (run once for these versions: equal to
# the package in float64, max |difference| 0).


def verl_masked_whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """verl's ``masked_whiten`` (Bessel-corrected, its 1e-8 guards)."""
    import torch

    n = mask.sum()
    mean = torch.where(mask.bool(), values, 0.0).sum() / (n + 1e-8)
    c = values - mean
    var = torch.where(mask.bool(), c * c, 0.0).sum() / (n + 1e-8) * (n / (n - 1))
    return (values - mean) * torch.rsqrt(var + 1e-8)


def verl_reinforce_pp(
    token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's ``compute_reinforce_plus_plus_outcome_advantage``: a loop over T whose running
    return skips masked tokens, then whitening."""
    import torch

    m = mask.to(token_rewards.dtype)
    returns = torch.zeros_like(token_rewards)
    running = torch.zeros_like(token_rewards[:, 0])
    for t in reversed(range(token_rewards.shape[1])):
        new = token_rewards[:, t] + gamma * running
        returns[:, t] = new * m[:, t]
        running = new * m[:, t] + running * (1 - m[:, t])
    return verl_masked_whiten(returns, m) * m, returns


def verl_reinforce_pp_baseline(
    scores: torch.Tensor, mask: torch.Tensor, group_size: int
) -> torch.Tensor:
    """verl's ``compute_reinforce_plus_plus_baseline_outcome_advantage`` for consecutive
    groups of ``group_size`` (a group of one: baseline 0), per prompt in a Python loop."""

    s = scores.clone()
    for i in range(0, s.shape[0], group_size):
        group = scores[i : i + group_size]
        s[i : i + group_size] = group - (group.mean() if group_size > 1 else 0.0)
    m = mask.to(scores.dtype)
    tiled = s[:, None].expand_as(m) * m
    return verl_masked_whiten(tiled, m) * m


def verl_remax(
    token_rewards: torch.Tensor, baselines: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's ``compute_remax_outcome_advantage``: reverse cumulative sum, minus the greedy
    baseline on the valid tokens."""
    m = mask.to(token_rewards.dtype)
    returns = (token_rewards * m).flip(dims=[-1]).cumsum(dim=-1).flip(dims=[-1])
    return returns - baselines[:, None] * m, returns


def verl_kl_penalty(logp: torch.Tensor, ref: torch.Tensor, kind: str) -> torch.Tensor:
    """verl's ``kl_penalty`` (``kind`` k1, k2, k3, abs; a trailing "+" for the k2
    straight-through gradient)."""
    import torch

    base = kind.rstrip("+")
    if base == "k1":
        value = logp - ref
    elif base == "abs":
        value = (logp - ref).abs()
    elif base == "k2":
        value = 0.5 * (logp - ref).square()
    else:
        d = torch.clamp(ref - logp, min=-20, max=20)
        value = torch.clamp(torch.exp(d) - d - 1, min=-10, max=10)
    if not kind.endswith("+") or base == "k2":
        return value
    k2 = 0.5 * (logp - ref).square()
    return k2 - k2.detach() + value.detach()


def openrlhf_approx_kl(
    logp: torch.Tensor,
    ref: torch.Tensor,
    old: torch.Tensor | None = None,
    kind: str = "k1",
    unbiased_gradient: bool = False,
) -> torch.Tensor:
    """OpenRLHF's ``compute_approx_kl``, in the inputs' dtype (OpenRLHF casts to float32)."""

    lr = logp - ref
    if kind == "k1":
        value = lr
    elif kind == "k2":
        value = lr**2 / 2.0
    else:
        k = lr.clamp(min=-10)
        value = (-k).exp() - 1 + k
    value = value.clamp(min=-10, max=10)
    if not unbiased_gradient:
        return value
    w = 1.0 if old is None else (logp - old).exp().clamp(max=10.0).detach()
    surrogate = w * (lr**2 / 2.0)
    return value.detach() + surrogate - surrogate.detach()
