"""Row kernels of the fused LM head's tiling driver (``fastalign.logprobs._tiling``).

The driver forms each ``[R, Vs]`` logits tile with one cuBLAS GEMM (fp32 output) and hands it
to these kernels, one program per row, which do only the per-row work:

- ``fold``: applies bias and the logit transform and folds the tile into each row's running
  statistics, kept relative to the running max so that nothing cancels: max ``m``,
  ``s = sum exp(z - m)``, the label's logit ``t`` (added by the slice that holds it),
  ``u = sum exp(z - m) (z - m)`` for the entropy, and for TRL's metrics ``q = sum exp(2 (z - m))``,
  ``sum z`` and the first arg-max.
- ``grad``: forms ``dL/d(raw logits)`` for an arbitrary upstream gradient on the log-probs
  (and entropies), ``-p (g + g_ent (log p + H))`` with the label's entry given by the caller
  (formed from the accurate log-prob), times the transform's chain factor, and writes it in
  the GEMM operand dtype (in place of the tile when that is fp32).
- ``fold`` with a store, and ``grad_stored``: the 3-pass fused losses keep each tile between
  their forward and backward as ``e = exp(z - off)`` (bf16 for bf16/fp16 heads: values in
  (0, 1], relative error 2^-9, no overflow or cancellation) with ``off`` the tile's row max in
  fp32; ``grad_stored`` forms the gradient tile from it without the logits GEMM.

``p = exp((z - m) - log s)``: never ``exp(z - lse)``, whose rounded ``lse`` would cost up to
half an ulp of the max logit in every probability. Transform, as ``fastalign.token_logps``:
``a = (h W^T + b) * logit_scale``; ``a = softcap * tanh(a / softcap)`` if softcap;
``z = a / temperature``. The torch twins with the same contract are in
``fastalign.logprobs._rows_torch``; the tests run both against float64.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _transform(a, logit_scale, inv_softcap, softcap_over_t, inv_t, HAS_SOFTCAP: tl.constexpr):
    """(z, dz/da) for raw logits ``a``."""
    a = a * logit_scale
    if HAS_SOFTCAP:
        # tanh(x) = 2 sigmoid(2x) - 1 (tl has no tanh in every build and in the interpreter)
        th = 2.0 * tl.sigmoid(2.0 * a * inv_softcap) - 1.0
        return th * softcap_over_t, logit_scale * (1.0 - th * th) * inv_t
    return a * inv_t, logit_scale * inv_t


@triton.jit
def _load_z(base, B, cols, ok, logit_scale, inv_softcap, softcap_over_t, inv_t,
            HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr):  # fmt: skip
    """(z, dz/da) of the raw logits at ``base + cols`` (plus the bias)."""
    a = tl.load(base + cols, mask=ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        a += tl.load(B + cols, mask=ok, other=0.0).to(tl.float32)
    return _transform(a, logit_scale, inv_softcap, softcap_over_t, inv_t, HAS_SOFTCAP)


@triton.jit
def _fold_kernel(
    Z,
    stride_z,
    B,
    Y,
    M,
    S,
    T,
    U,
    Q,
    ZSUM,
    ARG,
    E,
    stride_e,
    OFF,
    v0,
    VS,
    logit_scale,
    inv_softcap,
    softcap_over_t,
    inv_t,
    HAS_BIAS: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    WANT_ENT: tl.constexpr,
    WANT_STATS: tl.constexpr,
    FIRST: tl.constexpr,
    STORE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = Z + row * stride_z
    y = tl.load(Y + row).to(tl.int64) - v0  # the label's column in this slice (maybe outside)
    m = -float("inf")
    s = 0.0
    u = 0.0
    q = 0.0
    zsum = 0.0
    arg = 0
    t = 0.0
    for c0 in range(0, VS, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        ok = cols < VS
        z, _ = _load_z(
            base,
            B,
            cols,
            ok,
            logit_scale,
            inv_softcap,
            softcap_over_t,
            inv_t,
            HAS_BIAS,
            HAS_SOFTCAP,
        )
        z = tl.where(ok, z, 0.0)
        t += tl.sum(tl.where(cols == y, z, 0.0), axis=0)
        zm = tl.where(ok, z, -float("inf"))
        bmax = tl.max(zm, axis=0)
        if WANT_STATS:
            zsum += tl.sum(z, axis=0)
            barg = tl.min(tl.where(zm == bmax, cols, VS), axis=0)
            arg = tl.where(bmax > m, barg, arg)
        m_new = tl.maximum(m, bmax)
        scale = tl.exp(m - m_new)
        e = tl.exp(zm - m_new)
        if WANT_ENT:
            dm = tl.where(m == -float("inf"), 0.0, m - m_new)  # no -inf * 0 on the first block
            u = scale * (u + dm * s) + tl.sum(e * (z - m_new), axis=0)
        if WANT_STATS:
            q = q * scale * scale + tl.sum(e * e, axis=0)
        s = s * scale + tl.sum(e, axis=0)
        m = m_new
    if STORE:  # the exp-scaled tile against this slice's max (a second, cache-hot read)
        ebase = E + row * stride_e
        tl.store(OFF + row, m)
        for c0 in range(0, VS, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            ok = cols < VS
            z, _ = _load_z(
                base,
                B,
                cols,
                ok,
                logit_scale,
                inv_softcap,
                softcap_over_t,
                inv_t,
                HAS_BIAS,
                HAS_SOFTCAP,
            )
            tl.store(ebase + cols, tl.exp(z - m).to(E.dtype.element_ty), mask=ok)
    if FIRST:
        tl.store(M + row, m)
        tl.store(S + row, s)
        tl.store(T + row, t)
        if WANT_ENT:
            tl.store(U + row, u)
        if WANT_STATS:
            tl.store(Q + row, q)
            tl.store(ZSUM + row, zsum)
            tl.store(ARG + row, arg.to(tl.int64) + v0)
    else:
        m0 = tl.load(M + row)
        s0 = tl.load(S + row)
        big = tl.maximum(m0, m)
        a0 = tl.exp(m0 - big)
        a1 = tl.exp(m - big)
        tl.store(M + row, big)
        tl.store(S + row, s0 * a0 + s * a1)
        tl.store(T + row, tl.load(T + row) + t)
        if WANT_ENT:
            u0 = tl.load(U + row)
            tl.store(U + row, a0 * (u0 + (m0 - big) * s0) + a1 * (u + (m - big) * s))
        if WANT_STATS:
            tl.store(Q + row, tl.load(Q + row) * a0 * a0 + q * a1 * a1)
            tl.store(ZSUM + row, tl.load(ZSUM + row) + zsum)
            arg0 = tl.load(ARG + row)
            tl.store(ARG + row, tl.where(m > m0, arg.to(tl.int64) + v0, arg0))


@triton.jit
def _grad_kernel(
    Z,
    stride_z,
    B,
    Y,
    M,
    LOG_S,
    ENT,
    G_LP,
    G_ENT,
    LAB,
    OUT,
    stride_out,
    v0,
    VS,
    logit_scale,
    inv_softcap,
    softcap_over_t,
    inv_t,
    HAS_BIAS: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    USE_ENT: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = Z + row * stride_z
    obase = OUT + row * stride_out
    y = tl.load(Y + row).to(tl.int64) - v0
    m = tl.load(M + row)
    log_s = tl.load(LOG_S + row)
    g = tl.load(G_LP + row)
    lab = tl.load(LAB + row)
    if USE_ENT:
        ge = tl.load(G_ENT + row)
        h = tl.load(ENT + row)
    for c0 in range(0, VS, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        ok = cols < VS
        z, chain = _load_z(
            base,
            B,
            cols,
            ok,
            logit_scale,
            inv_softcap,
            softcap_over_t,
            inv_t,
            HAS_BIAS,
            HAS_SOFTCAP,
        )
        log_p = (z - m) - log_s
        p = tl.exp(log_p)
        gz = -p * (g + ge * (log_p + h)) if USE_ENT else -p * g
        gz = tl.where(cols == y, lab, gz) * chain
        tl.store(obase + cols, gz.to(OUT.dtype.element_ty), mask=ok)


@triton.jit
def _grad_stored_kernel(
    E,
    stride_e,
    OFF,
    Y,
    M,
    LOG_S,
    T,
    G_LP,
    LAB,
    OUT,
    stride_out,
    v0,
    VS,
    logit_scale,
    softcap_over_t,
    inv_t,
    HAS_SOFTCAP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    ebase = E + row * stride_e
    obase = OUT + row * stride_out
    y = tl.load(Y + row).to(tl.int64) - v0
    off = tl.load(OFF + row)
    k = tl.exp((off - tl.load(M + row)) - tl.load(LOG_S + row))  # p = e * k
    coef = -tl.load(G_LP + row) * k
    lab = tl.load(LAB + row)
    t = tl.load(T + row)
    for c0 in range(0, VS, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        ok = cols < VS
        e = tl.load(ebase + cols, mask=ok, other=1.0).to(tl.float32)
        gz = tl.where(cols == y, lab, e * coef)
        if HAS_SOFTCAP:  # z = off + log e (the label's own logit where its e may underflow;
            # an underflowed e has gz = 0, and the clamp keeps its chain factor finite)
            z = tl.where(cols == y, t, off + tl.log(tl.maximum(e, 1.1754944e-38)))
            th = z / softcap_over_t
            gz = gz * (logit_scale * (1.0 - th * th) * inv_t)
        else:
            gz = gz * (logit_scale * inv_t)
        tl.store(obase + cols, gz.to(OUT.dtype.element_ty), mask=ok)


def _params(transform) -> tuple[float, float, float, float]:
    inv_t = 1.0 / transform.temperature
    if transform.softcap is None:
        return transform.logit_scale, 1.0, 1.0, inv_t
    return transform.logit_scale, 1.0 / transform.softcap, transform.softcap * inv_t, inv_t


def _block(vs: int) -> tuple[int, int]:
    block = min(triton.next_power_of_2(max(vs, 16)), 2048)
    return block, 8 if block >= 2048 else 4


def fold(z, bias, y, v0, transform, state, *, first: bool, store=None) -> None:
    """Folds the raw logits tile ``z`` (fp32 ``[r, vs]``, row stride free) of vocabulary
    columns ``[v0, v0 + vs)`` into ``state`` (:class:`fastalign.logprobs._tiling.RowState`
    views of these ``r`` rows; ``first``: the row block's first slice, which overwrites).
    ``store = (e, off)``: also writes ``e = exp(z - off)`` (any float dtype, row stride free;
    may be ``z`` itself) and ``off`` = each row's max over the tile."""
    r, vs = z.shape
    if r == 0:
        return
    block, warps = _block(vs)
    ls, inv_c, c_over_t, inv_t = _params(transform)
    dummy = state.m
    _fold_kernel[(r,)](
        z,
        z.stride(0),
        bias if bias is not None else z,
        y,
        state.m,
        state.s,
        state.t,
        state.u if state.u is not None else dummy,
        state.q if state.q is not None else dummy,
        state.zsum if state.zsum is not None else dummy,
        state.arg if state.arg is not None else y,
        store[0] if store is not None else z,
        store[0].stride(0) if store is not None else 0,
        store[1] if store is not None else dummy,
        v0,
        vs,
        ls,
        inv_c,
        c_over_t,
        inv_t,
        HAS_BIAS=bias is not None,
        HAS_SOFTCAP=transform.softcap is not None,
        WANT_ENT=state.u is not None,
        WANT_STATS=state.q is not None,
        FIRST=first,
        STORE=store is not None,
        BLOCK=block,
        num_warps=warps,
    )


def grad(z, bias, y, v0, transform, m, log_s, ent, g_lp, g_ent, lab, out: torch.Tensor):
    """Writes ``dL/d(raw logits)`` of the tile ``z`` into ``out`` (the GEMM operand dtype;
    ``out`` may be ``z`` itself). ``ent`` / ``g_ent`` are ``None`` without an entropy
    gradient; every per-row input is fp32 ``[r]``."""
    r, vs = z.shape
    if r == 0:
        return out
    block, warps = _block(vs)
    ls, inv_c, c_over_t, inv_t = _params(transform)
    use_ent = ent is not None and g_ent is not None
    _grad_kernel[(r,)](
        z,
        z.stride(0),
        bias if bias is not None else z,
        y,
        m,
        log_s,
        ent if use_ent else m,
        g_lp,
        g_ent if use_ent else m,
        lab,
        out,
        out.stride(0),
        v0,
        vs,
        ls,
        inv_c,
        c_over_t,
        inv_t,
        HAS_BIAS=bias is not None,
        HAS_SOFTCAP=transform.softcap is not None,
        USE_ENT=use_ent,
        BLOCK=block,
        num_warps=warps,
    )
    return out


def grad_stored(e, off, y, v0, transform, m, log_s, t, g_lp, lab, out: torch.Tensor):
    """``dL/d(raw logits)`` of a stored tile ``e = exp(z - off)`` (see :func:`fold`) into
    ``out`` (may be ``e`` itself): ``p = e exp((off - m) - log s)``; ``t`` is each row's
    transformed label logit (for the softcap chain factor at the label)."""
    r, vs = e.shape
    if r == 0:
        return out
    block, warps = _block(vs)
    ls, _inv_c, c_over_t, inv_t = _params(transform)
    _grad_stored_kernel[(r,)](
        e,
        e.stride(0),
        off,
        y,
        m,
        log_s,
        t,
        g_lp,
        lab,
        out,
        out.stride(0),
        v0,
        vs,
        ls,
        c_over_t,
        inv_t,
        HAS_SOFTCAP=transform.softcap is not None,
        BLOCK=block,
        num_warps=warps,
    )
    return out
