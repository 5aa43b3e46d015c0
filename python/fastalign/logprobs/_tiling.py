"""The tiling driver of the fused LM head: row blocks x vocabulary slices, every GEMM a
BLAS / cuBLAS call, the per-row work in row passes (Triton kernels on CUDA, torch twins
elsewhere; ``rows`` below is either module, with one contract).

Forward, per row block of ``R`` tokens: for each vocabulary slice of ``Vs`` columns, the raw
logits tile ``Z = X_r W_s^T`` (fp32; on CUDA a bf16/fp16 GEMM with fp32 output) is folded into
the rows' running statistics (:class:`RowState`). Backward: per row block and slice the tile
is recomputed and turned into ``G = dL/d(raw logits)`` in place (or into a buffer of the GEMM
operand dtype), then ``dX_r += G W_s`` (fp32 accumulation across the slices, one rounding per
row block), ``dW_s += G^T X_r`` and ``db_s += sum G``.

dW accumulation (``accumulate``): ``"output"`` (default) adds each row block's product into
the weight gradient itself, in the weight's dtype: exact for fp32 weights (fp32 master
weights under autocast included), at most ``ceil(N / R)`` roundings for bf16/fp16 weights;
``"fp32"`` keeps an fp32 ``[V, H]`` buffer (``4 V H`` bytes) and rounds once at the end.

Live memory: the fp32 tile (``4 R Vs`` bytes), a gradient tile in the operand dtype for
bf16/fp16, an fp32 ``[R, H]`` dX accumulator for bf16/fp16, on top of inputs and gradients.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch

from fastalign.errors import InternalError

# fp32 logits tile of the torch path on CPU (a row block over the whole vocabulary): large
# enough for full-speed GEMMs (K = R in the dW product), small next to a real head's inputs
_CPU_TILE_BYTES = 128 * 2**20
# CUDA: 4096 x 4096 tiles (64 MiB fp32): every GEMM of the driver at [4096 x 4096 x H] shapes,
# which cuBLAS runs near peak, and K = 4096 rows per dW update (few bf16 roundings)
_CUDA_ROWS = 4096
_CUDA_TILE_BYTES = 64 * 2**20
ACCUMULATE = ("output", "fp32")
# the 3-pass fused losses: bytes of the exp-scaled tiles kept for one group of sequences
# (CUDA: one 4k-token pair at V=128k in bf16; CPU: the torch path's old fp32 chunk)
_CUDA_STORE_BYTES = 2**30
_CPU_STORE_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Transform:
    """``z = softcap * tanh(((h W^T + b) * logit_scale) / softcap) / temperature``."""

    temperature: float = 1.0
    logit_scale: float = 1.0
    softcap: float | None = None

    def apply_(self, z: torch.Tensor) -> torch.Tensor:
        """Applies the transform in place to raw logits ``z`` (float32/64)."""
        if self.softcap is not None:
            z.mul_(self.logit_scale / self.softcap).tanh_().mul_(self.softcap / self.temperature)
        else:
            scale = self.logit_scale / self.temperature
            if scale != 1.0:
                z.mul_(scale)
        return z

    def chain_(self, grad: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Turns ``dL/dz`` into ``dL/d(raw logits)`` in place, given the transformed ``z``."""
        if self.softcap is not None:
            # z = c tanh(s a / c) / T  ->  dz/da = s (1 - tanh^2) / T, tanh = z T / c
            t = z * (self.temperature / self.softcap)
            grad.mul_(t.mul_(t).neg_().add_(1.0))
        scale = self.logit_scale / self.temperature
        if scale != 1.0:
            grad.mul_(scale)
        return grad


def make_transform(temperature: float, logit_scale: float, softcap: float | None) -> Transform:
    """A :class:`Transform` from user options, each a finite number > 0 (softcap also None)."""
    from fastalign._validate import check_positive

    return Transform(
        temperature=check_positive(temperature, "temperature"),  # type: ignore[arg-type]
        logit_scale=check_positive(logit_scale, "logit_scale"),  # type: ignore[arg-type]
        softcap=check_positive(softcap, "softcap", allow_none=True),
    )


class HeadOutputs(NamedTuple):
    """Per-token outputs of :func:`fused_head`, ``[N]`` each (``None`` when not asked for);
    0 (False) at ignored positions. Only ``logps`` and ``entropy`` carry gradients."""

    logps: torch.Tensor
    entropy: torch.Tensor | None = None
    log_sum_sq_probs: torch.Tensor | None = None
    mean_logits: torch.Tensor | None = None
    is_top1: torch.Tensor | None = None


@dataclass(frozen=True)
class Tiles:
    """Row block ``rows`` x vocabulary slice ``vocab`` of the driver."""

    rows: int
    vocab: int


def plan(
    n: int,
    vocab: int,
    device: torch.device,
    *,
    chunk_rows: int | None = None,
    chunk_vocab: int | None = None,
    memory_budget: int | None = None,
) -> Tiles:
    """Tile sizes: given ones are kept; the others come from ``memory_budget`` (bytes of the
    fp32 logits tile). CUDA: ``R = 4096`` and ``Vs = budget / (4 R)`` (64 MiB: 4096 x 4096);
    elsewhere one slice over the whole vocabulary and ``R = budget / (4 V)`` (128 MiB)."""
    cuda = device.type == "cuda"
    budget = memory_budget or (_CUDA_TILE_BYTES if cuda else _CPU_TILE_BYTES)
    if cuda:
        rows = chunk_rows or _CUDA_ROWS
        vs = chunk_vocab or max(128, budget // (4 * rows) // 128 * 128)
    else:
        vs = chunk_vocab or vocab
        rows = chunk_rows or max(1, budget // (4 * max(1, min(vs, vocab))))
    return Tiles(rows=max(1, min(rows, max(n, 1))), vocab=max(1, min(vs, vocab)))


def chunk_rows_for(vocab: int, chunk_bytes: int, itemsize: int = 4) -> int:
    return max(1, chunk_bytes // (itemsize * max(1, vocab)))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.cache
def _f32_out_ok(device_type: str) -> bool:
    """Whether ``torch.mm(..., out_dtype=torch.float32)`` runs on this device (CUDA only)."""
    if device_type != "cuda":
        return False
    try:
        a = torch.ones(2, 2, dtype=torch.bfloat16, device=device_type)
        torch.mm(a, a, out_dtype=torch.float32)
        return True
    except (RuntimeError, TypeError, NotImplementedError):
        return False


def tile(buf: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A contiguous ``[rows, cols]`` view at the start of the flat buffer ``buf``."""
    return buf.view(-1)[: rows * cols].view(rows, cols)


def _same(w_s: torch.Tensor) -> torch.Tensor:
    return w_s


def upcast_operands(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
    """``(h, w, b, cast)``: the GEMM operands of a head call, with ``cast(w[v0:v1])`` a
    weight slice as the GEMM operand. bf16/fp16 heads on a device without fp32-output GEMMs
    (CPU): the operands in fp32 (one copy of the weight, ``4 V H`` bytes), so that no logit is
    rounded to bf16/fp16; the gradients still come back in the inputs' dtypes. Elsewhere the
    operands as they are. A float32 weight with bf16/fp16 ``h`` (autocast with fp32 master
    weights, ``HeadOptions(cast_weight=True)``): the head runs on the weight rounded to
    ``h``'s dtype one slice at a time (no whole copy); its gradient stays float32."""
    compute = compute_dtype(h.dtype)
    if w.dtype != h.dtype:  # mixed: h bf16/fp16, w fp32
        low = h.dtype
        if _f32_out_ok(h.device.type):
            return h, w, b, lambda w_s: w_s.to(low)
        return h.to(compute), w, b, lambda w_s: w_s.to(low).to(compute)
    if w.dtype == compute or _f32_out_ok(h.device.type):
        return h, w, b, _same
    return h.to(compute), w.to(compute), b, _same


def logits_tile(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = x @ w.T`` in ``out``'s dtype (fp32/64). bf16/fp16 operands: on CUDA one GEMM
    with fp32 output; elsewhere the operands upcast first (:func:`upcast_operands` does it
    once per call of the driver)."""
    if x.dtype == out.dtype:
        return torch.mm(x, w.t(), out=out)
    if _f32_out_ok(x.device.type):
        return torch.mm(x, w.t(), out_dtype=out.dtype, out=out)
    return torch.mm(x.to(out.dtype), w.to(out.dtype).t(), out=out)


def mm_acc(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, first: bool) -> None:
    """``acc (=|+=) a @ b`` with ``acc`` fp32/64 (or the operands' dtype)."""
    if a.dtype == acc.dtype:
        if first:
            torch.mm(a, b, out=acc)
        else:
            acc.addmm_(a, b)
    elif _f32_out_ok(a.device.type):
        if first:
            torch.mm(a, b, out_dtype=acc.dtype, out=acc)
        else:
            torch.addmm(acc, a, b, out_dtype=acc.dtype, out=acc)
    elif first:
        acc.copy_(a @ b)
    else:
        acc.add_(a @ b)


def store_budget(device: torch.device, budget: int | None = None) -> int:
    """Bytes of kept tiles for one group of the 3-pass fused losses: ``budget``, else the
    device's default (1 GiB on CUDA, 128 MiB elsewhere)."""
    return budget or (_CUDA_STORE_BYTES if device.type == "cuda" else _CPU_STORE_BYTES)


def store_dtype(head_dtype: torch.dtype) -> torch.dtype:
    """The kept tiles' dtype: bf16 for bf16/fp16 heads, the compute dtype otherwise."""
    compute = compute_dtype(head_dtype)
    return compute if head_dtype == compute else torch.bfloat16


def store_rows(vocab: int, budget: int, head_dtype: torch.dtype) -> int:
    """Tokens whose whole-vocabulary tiles fit ``budget`` (the group size of the fused DPO)."""
    return chunk_rows_for(
        vocab, budget, torch.empty((), dtype=store_dtype(head_dtype)).element_size()
    )


@dataclass
class Store:
    """What the 3-pass fused losses keep of the forward's tiles for their backward: for the
    first ``slices`` vocabulary slices of every row, ``e = exp(z - off)`` (columns
    ``[0, slices * Vs)`` of ``e``, transformed logits ``z``) and ``off[slice, row]``, the
    row's max over that slice (fp32/64). ``e`` is in the compute dtype for fp32/fp64 heads
    and bf16 for bf16/fp16 heads: values in (0, 1], so bf16 keeps each probability to a
    relative 2^-9 (a bf16 logit would cost ``|z| 2^-9``, i.e. 2^-4 at ``z = 30``), and tiny
    ones only lose digits below ~1e-38 of the row max. Slices past ``slices`` (the budget
    did not hold them) are recomputed in the backward: one more logits GEMM for them."""

    e: torch.Tensor
    off: torch.Tensor
    slices: int

    @classmethod
    def empty(cls, n: int, vocab: int, tiles: Tiles, head_dtype, device, budget: int) -> Store:
        compute = compute_dtype(head_dtype)
        dtype = store_dtype(head_dtype)
        item = torch.empty((), dtype=dtype).element_size()
        n_slices = -(-vocab // tiles.vocab)
        per_slice = max(1, n * tiles.vocab * item)
        k = max(0, min(n_slices, budget // per_slice))
        cols = min(vocab, k * tiles.vocab)
        e = torch.empty(n, cols, dtype=dtype, device=device)
        return cls(e, torch.empty(k, n, dtype=compute, device=device), k)

    def tile(self, si: int, r0: int, r1: int, v0: int, v1: int):
        """``(e, off)`` views of slice ``si`` for rows ``[r0, r1)``, or None if recomputed."""
        if si >= self.slices:
            return None
        return self.e[r0:r1, v0:v1], self.off[si, r0:r1]


@dataclass
class RowState:
    """Running per-row statistics over the vocabulary slices folded so far (see
    ``kernels/head_rows.py``): max ``m``, ``s = sum exp(z - m)``, label logit ``t``;
    entropy ``u = sum exp(z - m)(z - m)``; TRL's metrics ``q = sum exp(2(z - m))``, ``zsum``
    and the first arg-max ``arg``."""

    m: torch.Tensor
    s: torch.Tensor
    t: torch.Tensor
    u: torch.Tensor | None = None
    q: torch.Tensor | None = None
    zsum: torch.Tensor | None = None
    arg: torch.Tensor | None = None

    @classmethod
    def empty(cls, n: int, dtype, device, *, entropy: bool, stats: bool) -> RowState:
        def e():
            return torch.empty(n, dtype=dtype, device=device)

        return cls(
            m=e(),
            s=e(),
            t=e(),
            u=e() if entropy else None,
            q=e() if stats else None,
            zsum=e() if stats else None,
            arg=torch.empty(n, dtype=torch.int64, device=device) if stats else None,
        )

    def rows(self, a: int, b: int) -> RowState:
        def v(x):
            return None if x is None else x[a:b]

        return RowState(
            self.m[a:b],
            self.s[a:b],
            self.t[a:b],
            v(self.u),
            v(self.q),
            v(self.zsum),
            v(self.arg),
        )


def fold_head(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    y: torch.Tensor,
    transform: Transform,
    tiles: Tiles,
    rows,
    *,
    entropy: bool,
    stats: bool,
    offset: int = 0,
    store: Store | None = None,
) -> RowState:
    """The forward: the statistics of every row of ``h`` over this head's vocabulary
    ``[offset, offset + V)`` (``y``: global label ids, int64); with ``store``, the tiles it
    holds are written to it as well."""
    n, vocab = h.shape[0], w.shape[0]
    compute = compute_dtype(h.dtype)
    state = RowState.empty(n, compute, h.device, entropy=entropy, stats=stats)
    if n == 0:
        return state
    h, w, b, cast = upcast_operands(h, w, b)
    r_max, v_max = tiles.rows, tiles.vocab
    buf = torch.empty(min(r_max, n) * min(v_max, vocab), dtype=compute, device=h.device)
    for r0 in range(0, n, r_max):
        r1 = min(n, r0 + r_max)
        x, yr, st = h[r0:r1], y[r0:r1], state.rows(r0, r1)
        for v0 in range(0, vocab, v_max):
            v1 = min(vocab, v0 + v_max)
            kept = None if store is None else store.tile(v0 // v_max, r0, r1, v0, v1)
            out = tile(buf, r1 - r0, v1 - v0)
            if kept is not None and kept[0].dtype == compute and kept[0].is_contiguous():
                out = kept[0]  # the GEMM writes into the store; the fold leaves e there
            z = logits_tile(x, cast(w[v0:v1]), out)
            bias = None if b is None else b[v0:v1]
            if kept is None:
                rows.fold(z, bias, yr, offset + v0, transform, st, first=v0 == 0)
            else:
                rows.fold(z, bias, yr, offset + v0, transform, st, first=v0 == 0, store=kept)
    return state


@dataclass
class Finished:
    logp: torch.Tensor
    log_s: torch.Tensor  # the row max m is the state's
    ent: torch.Tensor | None
    log_sum_sq_probs: torch.Tensor | None
    mean_logits: torch.Tensor | None
    is_top1: torch.Tensor | None


def finish(state: RowState, y: torch.Tensor, vocab: int) -> Finished:
    """Log-probs (``(t - m) - log s``: exact 0 for a certain label), entropies
    (``log s - u / s``), TRL's metric statistics, from the merged statistics."""
    log_s = state.s.log()
    logp = (state.t - state.m) - log_s
    ent = None if state.u is None else log_s - state.u / state.s
    lssp = mean = top1 = None
    if state.q is not None:
        lssp = state.q.log() - 2.0 * log_s
        mean = state.zsum / vocab
        top1 = state.arg == y
    return Finished(logp, log_s, ent, lssp, mean, top1)


def label_grad(
    logp: torch.Tensor,
    g_lp: torch.Tensor,
    ent: torch.Tensor | None = None,
    g_ent: torch.Tensor | None = None,
) -> torch.Tensor:
    """``dL/dz`` at each row's label, formed from the accurate log-prob: ``g (1 - p_y)`` as
    ``-g expm1(logp)`` (``1 - p_y`` from a rounded ``p_y`` near 1 loses every digit), minus the
    entropy term ``g_ent p_y (logp + H)``."""
    out = -g_lp * torch.expm1(logp)
    if ent is not None and g_ent is not None:
        p = torch.exp(logp)
        out = out - torch.where(p > 0, g_ent * p * (logp + ent), 0.0)
    return out


def grad_head(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    y: torch.Tensor,
    transform: Transform,
    tiles: Tiles,
    rows,
    *,
    m: torch.Tensor,
    log_s: torch.Tensor,
    ent: torch.Tensor | None,
    g_lp: torch.Tensor,
    g_ent: torch.Tensor | None,
    lab: torch.Tensor,
    need_h: bool,
    need_w: bool,
    need_b: bool,
    accumulate: str = "output",
    offset: int = 0,
    dh_dtype: torch.dtype | None = None,
    store: Store | None = None,
    t: torch.Tensor | None = None,
    dw_into: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The backward: ``(dh, dw, db)`` of the rows of ``h`` for upstream gradients ``g_lp``
    (and ``g_ent``) on their log-probs (entropies), given the forward's ``m``, ``log s`` and
    ``lab`` (:func:`label_grad`); ``dh`` in ``dh_dtype`` (default ``h``'s), ``dw`` / ``db`` in
    the weight's / bias's dtype. With ``store`` (and the forward's label logits ``t``), the
    stored slices skip their logits GEMM (log-prob gradients only). ``dw_into``: add this
    call's weight gradient into it (the weight's dtype, or fp32 for ``accumulate="fp32"``)
    and return it as it is, for callers that run the driver over several groups of rows."""
    n, vocab = h.shape[0], w.shape[0]
    compute = compute_dtype(h.dtype)
    dh = torch.empty(h.shape, dtype=dh_dtype or h.dtype, device=h.device) if need_h else None
    wide_dw = accumulate == "fp32" and w.dtype != compute
    dw = dw_into
    if need_w and dw is None:
        dw = torch.empty(w.shape, dtype=compute if wide_dw else w.dtype, device=w.device)
    like_w, like_b = (None if dw_into is not None else w), b
    db = torch.zeros(vocab, dtype=compute, device=w.device) if need_b else None
    if n == 0 or not (need_h or need_w or need_b):
        if dh is not None:
            dh.zero_()
        if dw is not None and dw_into is None:
            dw.zero_()
        return dh, _cast(dw, like_w), _cast(db, like_b)
    h, w, b, cast = upcast_operands(h, w, b)
    r_max, v_max = tiles.rows, tiles.vocab
    r_cap, v_cap = min(r_max, n), min(v_max, vocab)
    zbuf = torch.empty(r_cap * v_cap, dtype=compute, device=h.device)
    low = h.dtype != compute  # bf16/fp16: the GEMM operands in that dtype
    gbuf = torch.empty(r_cap * v_cap, dtype=h.dtype, device=h.device) if low else None
    acc = None  # fp32 dX of a row block when dh is not in the compute dtype
    if need_h and dh.dtype != compute:
        acc = torch.empty(r_cap, h.shape[1], dtype=compute, device=h.device)
    use_ent = ent is not None and g_ent is not None
    if store is not None and (use_ent or t is None):
        raise InternalError("a stored forward gives log-prob gradients only, and needs t")
    for r0 in range(0, n, r_max):
        r1 = min(n, r0 + r_max)
        x, yr = h[r0:r1], y[r0:r1]
        rs = slice(r0, r1)
        for v0 in range(0, vocab, v_max):
            v1 = min(vocab, v0 + v_max)
            w_s = cast(w[v0:v1])
            dw_first = r0 == 0 and dw_into is None
            kept = None if store is None else store.tile(v0 // v_max, r0, r1, v0, v1)
            if kept is not None:
                e, off = kept
                out = e if e.dtype == h.dtype else tile(gbuf if low else zbuf, r1 - r0, v1 - v0)
                g = rows.grad_stored(
                    e, off, yr, offset + v0, transform, m[rs], log_s[rs], t[rs], g_lp[rs],
                    lab[rs], out,
                )  # fmt: skip
            else:
                z = logits_tile(x, w_s, tile(zbuf, r1 - r0, v1 - v0))
                out = z if gbuf is None else tile(gbuf, r1 - r0, v1 - v0)
                g = rows.grad(
                    z,
                    None if b is None else b[v0:v1],
                    yr,
                    offset + v0,
                    transform,
                    m[rs],
                    log_s[rs],
                    ent[rs] if use_ent else None,
                    g_lp[rs],
                    g_ent[rs] if use_ent else None,
                    lab[rs],
                    out,
                )
            if need_h:
                target = dh[rs] if acc is None else acc[: r1 - r0]
                mm_acc(target, g, w_s, first=v0 == 0)
            if need_w:
                dw_s = dw[v0:v1]
                if dw_s.dtype in (g.dtype, compute):  # fp32 dW (master weights, "fp32")
                    mm_acc(dw_s, g.t(), x, first=dw_first)
                elif dw_first:  # upcast operands, bf16/fp16 dW: one rounding per row block
                    dw_s.copy_(g.t() @ x)
                else:
                    dw_s.copy_(torch.addmm(dw_s.to(g.dtype), g.t(), x))
            if need_b:
                db[v0:v1] += g.sum(0, dtype=compute)
        if acc is not None:
            dh[rs].copy_(acc[: r1 - r0])
    return dh, _cast(dw, like_w), _cast(db, like_b)


def _cast(grad: torch.Tensor | None, like: torch.Tensor | None) -> torch.Tensor | None:
    if grad is None or like is None or grad.dtype == like.dtype:
        return grad
    return grad.to(like.dtype)
