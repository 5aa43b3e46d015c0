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
