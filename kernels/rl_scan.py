"""GAE / discounted reward-to-go on CUDA: one program per row, a reverse parallel scan over
``BLOCK_T`` tokens at a time, float64 arithmetic whatever the storage type.

Both recurrences of :func:`fastalign.rl.gae` are affine maps applied right to left, so each
block is one ``tl.associative_scan`` (``reverse=True``) of (a, b) pairs, ``x -> a + b * x``,
composed ``f_t o f_{t+1} o ...``, then applied to the carry from the block to its right:

- the next valid value: ``N_t = m_t * V_t + (1 - m_t) * N_{t+1}`` (``N`` past the row: the
  bootstrap value or 0); token t reads ``N_{t+1}``, so its map is built from token t + 1;
- the carried advantage: ``C_t = m_t * delta_t + (m_t * gamma * lam + 1 - m_t) * C_{t+1}``
  with ``delta_t = r_t + gamma * N_{t+1} - V_t``; the advantage is ``m_t * C_t``.

Masked tokens are identities (a = 0, b = 1): the value and advantage carry over gaps, as the
CPU scan (``fastalign-core``'s ``rl::gae``) and verl's loop do. Outputs are 0 on masked tokens.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _compose(a_right, b_right, a_left, b_left):
    # a reverse scan hands the combine (what has been combined to the right, the element to
    # its left); the result is left o right: x -> a_left + b_left * (a_right + b_right * x)
    return a_left + b_left * a_right, b_left * b_right


@triton.jit
def _gae_kernel(
    r_ptr,
    v_ptr,
    m_ptr,
    last_ptr,
    adv_ptr,
    ret_ptr,
    T,
    gamma,
    gl,
    HAS_VALUES: tl.constexpr,
    HAS_LAST: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = row * T
    carry_n = tl.zeros((), dtype=tl.float64)
    if HAS_LAST:
        carry_n = tl.load(last_ptr + row).to(tl.float64)
    carry_c = tl.zeros((), dtype=tl.float64)
    n_blocks = tl.cdiv(T, BLOCK_T)
    for k in range(0, n_blocks):
        t0 = (n_blocks - 1 - k) * BLOCK_T
        offs = t0 + tl.arange(0, BLOCK_T)
        inside = offs < T
        m = tl.load(m_ptr + base + offs, mask=inside, other=0).to(tl.float64)
        r = tl.load(r_ptr + base + offs, mask=inside, other=0.0).to(tl.float64)
        if HAS_VALUES:
            v = tl.load(v_ptr + base + offs, mask=inside, other=0.0).to(tl.float64)
        else:
            v = tl.zeros((BLOCK_T,), dtype=tl.float64)
        # the next token's map for N (identity past the row and on masked tokens)
        nxt = offs + 1
        nxt_in = nxt < T
        m1 = tl.load(m_ptr + base + nxt, mask=nxt_in, other=0).to(tl.float64)
        if HAS_VALUES:
            v1 = tl.load(v_ptr + base + nxt, mask=nxt_in, other=0.0).to(tl.float64)
        else:
            v1 = tl.zeros((BLOCK_T,), dtype=tl.float64)
        a_n, b_n = tl.associative_scan((m1 * v1, 1.0 - m1), 0, _compose, reverse=True)
        # the block's last token reads N at the next block's first token: carry_n
        next_v = a_n + b_n * carry_n
        delta = r + gamma * next_v - v
        a_c, b_c = tl.associative_scan((m * delta, m * gl + 1.0 - m), 0, _compose, reverse=True)
        c = a_c + b_c * carry_c
        adv = m * c
        tl.store(adv_ptr + base + offs, adv.to(adv_ptr.dtype.element_ty), mask=inside)
        tl.store(ret_ptr + base + offs, (adv + m * v).to(ret_ptr.dtype.element_ty), mask=inside)
        # carries for the block to the left: C and N at this block's first token
        first = offs == t0
        carry_c = tl.sum(tl.where(first, c, 0.0), axis=0)
        n_first = m * v + (1.0 - m) * next_v
        carry_n = tl.sum(tl.where(first, n_first, 0.0), axis=0)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor | None,
    mask: torch.Tensor,
    last_values: torch.Tensor | None,
    gamma: float,
    lam: float,
    block_t: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of contiguous ``[B, T]`` tensors on one device (``values`` /
    ``last_values`` None: zeros): float64 for float64 inputs, else float32 (the caller casts).
    ``mask``: uint8, 1 where valid."""
    b, t = rewards.shape
    out_dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
    adv = torch.empty((b, t), dtype=out_dtype, device=rewards.device)
    ret = torch.empty_like(adv)
    if b == 0 or t == 0:
        return adv, ret
    block = min(block_t, triton.next_power_of_2(t))
    _gae_kernel[(b,)](
        rewards,
        values if values is not None else rewards,
        mask,
        last_values if last_values is not None else rewards,
        adv,
        ret,
        t,
        float(gamma),
        float(gamma * lam),
        HAS_VALUES=values is not None,
        HAS_LAST=last_values is not None,
        BLOCK_T=block,
    )
    return adv, ret
