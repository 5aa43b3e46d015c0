"""Fused LM-head log-probs: ``logp = z[label] - logsumexp(z)`` with ``z = f(h W^T + b)``.

Forward (`_fwd_kernel`): a tiled GEMM whose epilogue folds each ``[BLOCK_N, BLOCK_V]`` logits
tile into per-row running statistics held in registers — max, sum-exp, target logit and, for
the entropy, sum of ``exp(z - max) * z`` — so no logits tile ever reaches global memory. The
vocabulary is split across ``SPLIT_V`` programs when there are too few row blocks to fill the
GPU; the per-split partials (4 floats per row and split) are merged on the host side. Log-probs
are formed as ``(z_label - max) - log(sum-exp)`` and the entropy from sums taken relative to
the running max, so neither suffers cancellation when a token is near-certain.

Backward, per chunk of rows (bounded memory): `_bwd_grad_kernel` recomputes the logits tiles
and writes ``G = dL/d(h W^T + b)`` for an arbitrary upstream gradient on logps (and entropy);
``dX = G W`` is one GEMM; `_dw_kernel` accumulates ``dW += G^T X`` into a float32 buffer
(fp32 accumulation across chunks, cast once at the end). Offsets are 64-bit throughout.

Logit transform (matching ``fastalign.token_logps``): ``a = (h W^T + b) * logit_scale``;
``a = softcap * tanh(a / softcap)`` if softcap; ``z = a / temperature``.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _tuned(configs: list[tuple[dict[str, int], int, int]], key: list[str], **kw):
    """``triton.autotune`` over a short config list on a GPU; in the interpreter (CPU tests)
    the kernel runs with the small fixed tiles that the launchers pass explicitly."""
    if _INTERPRET:
        return lambda fn: fn
    return triton.autotune(
        [triton.Config(c, num_warps=w, num_stages=st) for c, w, st in configs], key=key, **kw
    )


# (tiles, num_warps, num_stages): a short list around the tile shapes that suit Hopper and
# Ampere tensor cores for an [N, H] x [H, V] GEMM with a reduction epilogue.
_GEMM_CONFIGS = [
    ({"BLOCK_N": 128, "BLOCK_V": 128, "BLOCK_K": 64}, 8, 3),
    ({"BLOCK_N": 128, "BLOCK_V": 256, "BLOCK_K": 64}, 8, 3),
    ({"BLOCK_N": 64, "BLOCK_V": 256, "BLOCK_K": 64}, 4, 4),
    ({"BLOCK_N": 128, "BLOCK_V": 128, "BLOCK_K": 32}, 4, 4),
]
_DW_CONFIGS = [
    ({"BLOCK_V": 128, "BLOCK_H": 128, "BLOCK_M": 32}, 8, 3),
    ({"BLOCK_V": 128, "BLOCK_H": 64, "BLOCK_M": 64}, 4, 4),
    ({"BLOCK_V": 64, "BLOCK_H": 128, "BLOCK_M": 64}, 4, 4),
]
_INTERPRET_GEMM = {"BLOCK_N": 16, "BLOCK_V": 32, "BLOCK_K": 16}
_INTERPRET_DW = {"BLOCK_V": 32, "BLOCK_H": 16, "BLOCK_M": 16}


@triton.jit
def _logits_tile(
    X,
    W,
    B,
    rows64,
    row_ok,
    cols,
    col_ok,
    H,
    stride_x,
    stride_w,
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    acc = tl.zeros([BLOCK_N, BLOCK_V], dtype=tl.float32)
    cols64 = cols.to(tl.int64)
    for k0 in range(0, H, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < H
        x = tl.load(
            X + rows64[:, None] * stride_x + ks[None, :],
            mask=row_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        w = tl.load(
            W + cols64[:, None] * stride_w + ks[None, :],
            mask=col_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        acc = tl.dot(x, tl.trans(w), acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(B + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    return acc


@triton.jit
def _transform(a, logit_scale, inv_softcap, softcap_over_t, inv_t, HAS_SOFTCAP: tl.constexpr):
    a = a * logit_scale
    if HAS_SOFTCAP:
        # tanh(x) = 2 sigmoid(2x) - 1 (tl has no tanh in every build and interpreter)
        a = (2.0 * tl.sigmoid(2.0 * a * inv_softcap) - 1.0) * softcap_over_t
    else:
        a = a * inv_t
    return a


@_tuned(_GEMM_CONFIGS, key=["H", "V"])
@triton.jit
def _fwd_kernel(
    X,
    W,
    B,
    Y,
    M_part,
    S_part,
    T_part,
    SZ_part,
    N,
    V,
    H,
    stride_x,
    stride_w,
    num_splits,
    logit_scale,
    inv_softcap,
    softcap_over_t,
    inv_t,
    HAS_BIAS: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    WANT_ENTROPY: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_v = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    rows64 = rows.to(tl.int64)
    y = tl.load(Y + rows64, mask=row_ok, other=-1)
    m = tl.full([BLOCK_N], -float("inf"), dtype=tl.float32)
    s = tl.zeros([BLOCK_N], dtype=tl.float32)
    t = tl.zeros([BLOCK_N], dtype=tl.float32)
    sz = tl.zeros([BLOCK_N], dtype=tl.float32)
    # each split takes a whole number of vocab tiles; trailing splits may be empty
    v_per_split = tl.cdiv(tl.cdiv(V, num_splits), BLOCK_V) * BLOCK_V
    v_start = pid_v * v_per_split
    v_end = tl.minimum(v_start + v_per_split, V)
    for v0 in range(v_start, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_ok = cols < v_end
        a = _logits_tile(
            X,
            W,
            B,
            rows64,
            row_ok,
            cols,
            col_ok,
            H,
            stride_x,
            stride_w,
            HAS_BIAS,
            BLOCK_N,
            BLOCK_V,
            BLOCK_K,
            DOT_PRECISION,
        )
        z = _transform(a, logit_scale, inv_softcap, softcap_over_t, inv_t, HAS_SOFTCAP)
        # z stays finite (padding columns hold 0); zm sends them to -inf for max / sum-exp
        z = tl.where(col_ok[None, :], z, 0.0)
        zm = tl.where(col_ok[None, :], z, -float("inf"))
        m_new = tl.maximum(m, tl.max(zm, axis=1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(zm - m_new[:, None])
        if WANT_ENTROPY:
            # sz = sum exp(z - m) (z - m), kept relative to the running max
            dm = tl.where(m == -float("inf"), 0.0, m - m_new)
            sz = alpha * (sz + dm * s) + tl.sum(p * (z - m_new[:, None]), axis=1)
        s = s * alpha + tl.sum(p, axis=1)
        t += tl.sum(tl.where(cols[None, :] == y[:, None], z, 0.0), axis=1)
        m = m_new
    out = pid_v.to(tl.int64) * N + rows64
    tl.store(M_part + out, m, mask=row_ok)
    tl.store(S_part + out, s, mask=row_ok)
    tl.store(T_part + out, t, mask=row_ok)
    if WANT_ENTROPY:
        tl.store(SZ_part + out, sz, mask=row_ok)


@_tuned(_GEMM_CONFIGS, key=["H", "V"])
@triton.jit
def _bwd_grad_kernel(
    X,
    W,
    B,
    Y,
    LSE,
    ENT,
    G_LOGP,
    G_ENT,
    LABEL_G,
    G,
    N,
    V,
    H,
    stride_x,
    stride_w,
    stride_g,
    logit_scale,
    inv_softcap,
    softcap_over_t,
    inv_t,
    chain_scale,
    t_over_softcap,
    HAS_BIAS: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_ENT_GRAD: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_v = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    rows64 = rows.to(tl.int64)
    cols = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    col_ok = cols < V
    a = _logits_tile(
        X,
        W,
        B,
        rows64,
        row_ok,
        cols,
        col_ok,
        H,
        stride_x,
        stride_w,
        HAS_BIAS,
        BLOCK_N,
        BLOCK_V,
        BLOCK_K,
        DOT_PRECISION,
    )
    z = _transform(a, logit_scale, inv_softcap, softcap_over_t, inv_t, HAS_SOFTCAP)
    y = tl.load(Y + rows64, mask=row_ok, other=-1)
    lse = tl.load(LSE + rows64, mask=row_ok, other=0.0)
    g = tl.load(G_LOGP + rows64, mask=row_ok, other=0.0)
    p = tl.exp(z - lse[:, None])
    # d logp / dz = onehot - p
    grad = -p * g[:, None]
    if HAS_ENT_GRAD:
        # d H / dz = -p (z - lse + H)
        ent = tl.load(ENT + rows64, mask=row_ok, other=0.0)
        ge = tl.load(G_ENT + rows64, mask=row_ok, other=0.0)
        grad -= ge[:, None] * p * (z - (lse - ent)[:, None])
    # the label's entry from the accurate log-prob (1 - p_y cancels when p_y is near 1)
    lab = tl.load(LABEL_G + rows64, mask=row_ok, other=0.0)
    grad = tl.where(cols[None, :] == y[:, None], lab[:, None], grad)
    if HAS_SOFTCAP:
        th = z * t_over_softcap
        grad = grad * (1.0 - th * th)
    grad = grad * chain_scale
    grad = tl.where(row_ok[:, None] & col_ok[None, :], grad, 0.0)
    tl.store(
        G + rows64[:, None] * stride_g + cols.to(tl.int64)[None, :],
        grad.to(G.dtype.element_ty),
        mask=row_ok[:, None] & col_ok[None, :],
    )


@_tuned(_DW_CONFIGS, key=["V", "H"], restore_value=["DW"])
@triton.jit
def _dw_kernel(
    G,
    X,
    DW,
    M,
    V,
    H,
    stride_g,
    stride_x,
    stride_dw,
    BLOCK_V: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_M: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """DW[V, H] (fp32) += G[M, V]^T @ X[M, H]; each program owns one output tile."""
    pid_v = tl.program_id(0)
    pid_h = tl.program_id(1)
    cols = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    hs = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    col_ok = cols < V
    h_ok = hs < H
    acc = tl.zeros([BLOCK_V, BLOCK_H], dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        ms = (m0 + tl.arange(0, BLOCK_M)).to(tl.int64)
        m_ok = ms < M
        g = tl.load(
            G + ms[:, None] * stride_g + cols[None, :],
            mask=m_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        x = tl.load(
            X + ms[:, None] * stride_x + hs[None, :], mask=m_ok[:, None] & h_ok[None, :], other=0.0
        )
        acc = tl.dot(tl.trans(g), x.to(g.dtype), acc, input_precision=DOT_PRECISION)
    out = DW + cols.to(tl.int64)[:, None] * stride_dw + hs[None, :]
    ok = col_ok[:, None] & h_ok[None, :]
    tl.store(out, tl.load(out, mask=ok, other=0.0) + acc, mask=ok)


# ---------------------------------------------------------------------------------------------
# launchers


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs keep full fp32 products (tf32 would break the 1e-5 accuracy contract)
    return "ieee" if dtype == torch.float32 else "tf32"


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _params(softcap: float | None, temperature: float) -> tuple[float, float, float]:
    if softcap is None:
        return 1.0, 1.0, 1.0 / temperature
    return 1.0 / softcap, softcap / temperature, 1.0 / temperature


def forward(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    y: torch.Tensor,
    *,
    temperature: float,
    logit_scale: float,
    softcap: float | None,
    want_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(logp [N], lse [N], entropy [N] or None), float32, for unmasked rows x [N, H]."""
    m, s, t, a = forward_partials(
        x,
        w,
        b,
        y,
        temperature=temperature,
        logit_scale=logit_scale,
        softcap=softcap,
        want_entropy=want_entropy,
    )
    # log-probs as (target - M) - log S and entropy as log S - A / S: no cancellation
    log_s = torch.log(s)
    logp = (t - m) - log_s
    ent = log_s - a / s if a is not None else None
    return logp, m + log_s, ent


def forward_partials(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    y: torch.Tensor,
    *,
    temperature: float,
    logit_scale: float,
    softcap: float | None,
    want_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-row statistics of this head (or vocabulary slice), float32 ``[N]`` each: the max
    logit ``M``, ``S = sum exp(z - M)``, the label's logit (0 where ``y`` is outside
    ``[0, V)``, e.g. -1 for a label on another rank's slice) and, with ``want_entropy``,
    ``A = sum exp(z - M) (z - M)``."""
    n, h = x.shape
    v = w.shape[0]
    # Split the vocabulary across programs when the row blocks alone (counted with the
    # largest BLOCK_N of the configs) cannot fill the GPU twice over.
    n_blocks = triton.cdiv(n, 128 if not _INTERPRET else _INTERPRET_GEMM["BLOCK_N"])
    split = max(1, min(triton.cdiv(v, 128), triton.cdiv(2 * _num_sms(x.device), max(n_blocks, 1))))
    f32 = dict(dtype=torch.float32, device=x.device)
    m_p, s_p, t_p = (torch.empty(split, n, **f32) for _ in range(3))
    sz_p = torch.empty(split, n, **f32) if want_entropy else s_p
    inv_c, c_over_t, inv_t = _params(softcap, temperature)
    if n:
        meta = _INTERPRET_GEMM if _INTERPRET else {}
        _fwd_kernel[lambda m: (triton.cdiv(n, m["BLOCK_N"]), split)](
            x,
            w,
            b if b is not None else x,
            y,
            m_p,
            s_p,
            t_p,
            sz_p,
            n,
            v,
            h,
            x.stride(0),
            w.stride(0),
            split,
            logit_scale,
            inv_c,
            c_over_t,
            inv_t,
            HAS_BIAS=b is not None,
            HAS_SOFTCAP=softcap is not None,
            WANT_ENTROPY=want_entropy,
            DOT_PRECISION=_precision(x.dtype),
            **meta,
        )
    return merge_partials(m_p, s_p, t_p, sz_p if want_entropy else None)


def merge_partials(
    m_p: torch.Tensor, s_p: torch.Tensor, t_p: torch.Tensor, a_p: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Merges statistics ``[K, N]`` of K vocabulary parts into one ``(M, S, T, A)``:
    ``M = max m_i``, ``S = sum e^(m_i - M) s_i``, ``T = sum t_i`` (one part holds the label),
    ``A = sum e^(m_i - M) (a_i + (m_i - M) s_i)``."""
    m = m_p.max(dim=0).values
    scale = torch.exp(m_p - m)
    s = (s_p * scale).sum(0)
    a = None
    if a_p is not None:
        shift = torch.where(s_p > 0, (m_p - m) * s_p, torch.zeros_like(s_p))
        a = (scale * (a_p + shift)).sum(0)
    return m, s, t_p.sum(0), a


def backward(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    y: torch.Tensor,
    lse: torch.Tensor,
    ent: torch.Tensor | None,
    grad_logp: torch.Tensor,
    grad_ent: torch.Tensor | None,
    label_g: torch.Tensor,
    *,
    temperature: float,
    logit_scale: float,
    softcap: float | None,
    need_x: bool,
    need_w: bool,
    need_b: bool,
    chunk_bytes: int = 256 * 2**20,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(dx, dw, db) for the unmasked rows; dw and db accumulate in float32. ``label_g`` is
    ``dL/dz`` at each row's label (:func:`fastalign.logprobs._tiling.label_grad`)."""
    n, h = x.shape
    v = w.shape[0]
    dx = torch.empty_like(x) if need_x else None
    dw32 = torch.zeros(v, h, dtype=torch.float32, device=x.device) if need_w else None
    db32 = torch.zeros(v, dtype=torch.float32, device=x.device) if need_b else None
    rows = max(128, (chunk_bytes // (x.element_size() * v)) // 128 * 128)
    inv_c, c_over_t, inv_t = _params(softcap, temperature)
    chain = logit_scale / temperature
    t_over_c = 0.0 if softcap is None else temperature / softcap
    has_ent = ent is not None and grad_ent is not None
    g_logp = grad_logp.float().contiguous()
    g_ent = grad_ent.float().contiguous() if has_ent else g_logp
    gbuf = torch.empty(min(rows, max(n, 1)), v, dtype=x.dtype, device=x.device)
    gemm_meta = _INTERPRET_GEMM if _INTERPRET else {}
    dw_meta = _INTERPRET_DW if _INTERPRET else {}
    for s in range(0, n, rows):
        e = min(n, s + rows)
        mrows = e - s
        g = gbuf[:mrows]
        _bwd_grad_kernel[
            lambda m, mrows=mrows: (triton.cdiv(mrows, m["BLOCK_N"]), triton.cdiv(v, m["BLOCK_V"]))
        ](
            x[s:e],
            w,
            b if b is not None else x,
            y[s:e],
            lse[s:e],
            ent[s:e] if has_ent else lse[s:e],
            g_logp[s:e],
            g_ent[s:e],
            label_g[s:e],
            g,
            mrows,
            v,
            h,
            x.stride(0),
            w.stride(0),
            g.stride(0),
            logit_scale,
            inv_c,
            c_over_t,
            inv_t,
            chain,
            t_over_c,
            HAS_BIAS=b is not None,
            HAS_SOFTCAP=softcap is not None,
            HAS_ENT_GRAD=has_ent,
            DOT_PRECISION=_precision(x.dtype),
            **gemm_meta,
        )
        if need_x:
            torch.mm(g, w, out=dx[s:e])
        if need_w:
            _dw_kernel[lambda m: (triton.cdiv(v, m["BLOCK_V"]), triton.cdiv(h, m["BLOCK_H"]))](
                g,
                x[s:e],
                dw32,
                mrows,
                v,
                h,
                g.stride(0),
                x.stride(0),
                dw32.stride(0),
                DOT_PRECISION=_precision(x.dtype),
                **dw_meta,
            )
        if need_b:
            db32 += g.float().sum(0)
    dw = None if dw32 is None else (dw32 if w.dtype == torch.float32 else dw32.to(w.dtype))
    db = None
    if db32 is not None and b is not None:
        db = db32 if b.dtype == torch.float32 else db32.to(b.dtype)
    return dx, dw, db
