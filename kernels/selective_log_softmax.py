"""Selective log-softmax on materialized logits: ``log_softmax(logits / T)[label]`` per row.

Forward: one program per row streams the row once in ``BLOCK_V`` tiles, keeping a running
(max, sum-exp) in fp32, and writes the log-prob and the row's (max, log sum-exp) pair, saved
for backward. Backward: one program per row recomputes ``p = exp((z - max) - log_s)`` tile by
tile (never ``exp(z - lse)``: rounding a large ``lse = max + log_s`` to fp32 costs up to
half an ulp of the max logit in every probability) and writes
``dlogits = g / T * (onehot - p)`` straight into the gradient tensor in the logits' dtype, so
no second ``[N, V]`` float32 tensor is ever allocated. Rows whose label is ``ignore_index``
get logp 0 and a zero gradient. Offsets are 64-bit (N * V may exceed 2**31).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _fwd_kernel(
    logits_ptr,
    labels_ptr,
    logp_ptr,
    stats_ptr,
    V,
    stride_row,
    inv_temperature,
    ignore_index,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    label = tl.load(labels_ptr + row).to(tl.int64)
    if label == ignore_index:
        tl.store(logp_ptr + row, 0.0)
        tl.store(stats_ptr + 2 * row, 0.0)
        tl.store(stats_ptr + 2 * row + 1, 0.0)
    else:
        base = logits_ptr + row * stride_row
        m = -float("inf")
        s = 0.0
        for v0 in range(0, V, BLOCK_V):
            offs = v0 + tl.arange(0, BLOCK_V)
            z = tl.load(base + offs, mask=offs < V, other=-float("inf")).to(tl.float32)
            z = z * inv_temperature
            m_new = tl.maximum(m, tl.max(z, axis=0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new), axis=0)
            m = m_new
        log_s = tl.log(s)
        z_label = tl.load(base + label).to(tl.float32) * inv_temperature
        # (z - m) - log(s), not z - (m + log s): exact 0 for the max logit, no cancellation
        tl.store(logp_ptr + row, (z_label - m) - log_s)
        tl.store(stats_ptr + 2 * row, m)
        tl.store(stats_ptr + 2 * row + 1, log_s)


@triton.jit
def _bwd_kernel(
    logits_ptr,
    labels_ptr,
    stats_ptr,
    grad_out_ptr,
    grad_logits_ptr,
    V,
    stride_row,
    stride_grad_row,
    inv_temperature,
    ignore_index,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    label = tl.load(labels_ptr + row).to(tl.int64)
    base = logits_ptr + row * stride_row
    gbase = grad_logits_ptr + row * stride_grad_row
    if label == ignore_index:
        for v0 in range(0, V, BLOCK_V):
            offs = v0 + tl.arange(0, BLOCK_V)
            zero = tl.zeros([BLOCK_V], dtype=tl.float32)
            tl.store(gbase + offs, zero.to(grad_logits_ptr.dtype.element_ty), mask=offs < V)
    else:
        m = tl.load(stats_ptr + 2 * row)
        log_s = tl.load(stats_ptr + 2 * row + 1)
        g = tl.load(grad_out_ptr + row).to(tl.float32) * inv_temperature
        for v0 in range(0, V, BLOCK_V):
            offs = v0 + tl.arange(0, BLOCK_V)
            mask = offs < V
            z = tl.load(base + offs, mask=mask, other=0.0).to(tl.float32) * inv_temperature
            p = tl.exp((z - m) - log_s)
            grad = tl.where(offs == label, g - g * p, -g * p)
            tl.store(gbase + offs, grad.to(grad_logits_ptr.dtype.element_ty), mask=mask)


def _block_v(V: int) -> int:
    return min(4096, triton.next_power_of_2(V))


def forward(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """logp [N] and per-row (max, log sum-exp) stats [N, 2], float32, for logits [N, V]
    (unit stride along V)."""
    N, V = logits.shape
    logp = torch.empty(N, dtype=torch.float32, device=logits.device)
    stats = torch.empty(N, 2, dtype=torch.float32, device=logits.device)
    if N:
        _fwd_kernel[(N,)](
            logits,
            labels,
            logp,
            stats,
            V,
            logits.stride(0),
            1.0 / temperature,
            ignore_index,
            BLOCK_V=_block_v(V),
        )
    return logp, stats


def backward(
    logits: torch.Tensor,
    labels: torch.Tensor,
    stats: torch.Tensor,
    grad_logp: torch.Tensor,
    temperature: float,
    ignore_index: int,
) -> torch.Tensor:
    """d(sum g * logp) / d logits, in the logits' dtype."""
    N, V = logits.shape
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    if N:
        _bwd_kernel[(N,)](
            logits,
            labels,
            stats,
            grad_logp.contiguous(),
            grad,
            V,
            logits.stride(0),
            grad.stride(0),
            1.0 / temperature,
            ignore_index,
            BLOCK_V=_block_v(V),
        )
    return grad
