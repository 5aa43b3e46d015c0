"""RL estimators: GAE and discounted returns (a scan, never a Python loop over time: Rust on
CPU, Triton on CUDA), RLOO leave-one-out advantages, and the KL estimators k1 / k2 / k3 / abs
with an unbiased gradient option. Torch tensors in and out, on the input's device and dtype.

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

from fastalign.rl._estimators import KL_KINDS, discounted_returns, gae, kl, rloo_advantages

__all__ = ["KL_KINDS", "discounted_returns", "gae", "kl", "rloo_advantages"]
