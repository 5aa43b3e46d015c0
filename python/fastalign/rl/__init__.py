"""RL estimators: GAE and discounted returns (a scan, never a Python loop over time: Rust on
CPU, Triton on CUDA); group and batch advantages (GRPO's group normalization, RLOO,
REINFORCE++ and its group baseline, ReMax); the KL estimators k1 / k2 / k3 / abs with an
unbiased gradient option and the frameworks' clamps. Torch tensors in and out, on the
input's device and dtype.

One rule for rewards, in every estimator: NaN marks an unscorable completion (every reward
function failed): it is left out of its group's and batch's statistics and gets advantage 0;
inf is an error naming the entry. A completion with no scorable sibling (a group of one, or
the only scorable completion of its group) has nothing to be compared with: advantage 0
(before any batch whitening). A group whose rewards are all equal gets 0 advantages (its
numerator is 0; ``group_advantages`` divides by ``std + eps``, so no 1e6 blow-up).

Masks: ``mask[b, t]`` non-zero marks a valid token (the completion). Masked tokens (prompt,
padding, interior gaps such as tool output) are skipped by the recurrences: the next valid
token's value and advantage carry over them, and they get 0.

Example:
    >>> import torch
    >>> from fastalign import rl
    >>> r = torch.tensor([[0.0, 0.0, 1.0]]); v = torch.zeros(1, 3); m = torch.ones(1, 3)
    >>> adv, ret = rl.gae(r, v, m, gamma=0.5, lam=1.0)
    >>> adv
    tensor([[0.2500, 0.5000, 1.0000]])
    >>> rl.rloo_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), group_size=2)
    tensor([ 1., -1.,  0.,  0.])
"""

from __future__ import annotations

from fastalign.losses.grpo import group_advantages
from fastalign.rl._advantages import (
    masked_whiten,
    reinforce_plus_plus,
    remax_advantages,
    rloo_advantages,
)
from fastalign.rl._estimators import KL_CLAMPS, KL_KINDS, discounted_returns, gae, kl

__all__ = [
    "KL_CLAMPS",
    "KL_KINDS",
    "discounted_returns",
    "gae",
    "group_advantages",
    "kl",
    "masked_whiten",
    "reinforce_plus_plus",
    "remax_advantages",
    "rloo_advantages",
]
