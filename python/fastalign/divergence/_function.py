"""The two-head divergence on the head's tiling driver (:mod:`fastalign.logprobs._tiling`):
row blocks x vocabulary slices, both models' logits tiles by BLAS / cuBLAS GEMMs, the row
math in torch on the tiles (the torch twin; a Triton row kernel is the GPU issue's work).

Per row block, with ``a = log p`` (student) and ``b = log q`` (teacher) on a tile:

- forward: one slice over the whole vocabulary (the CPU plan): the divergence, the student's
  entropy and ``c = sum_v p_v g_v`` straight from the tile; several slices (the CUDA plan):
  a first pass folds both log-normalizers online, a second forms the sums from the
  normalized tiles (never the cancelling ``cross / s - lse`` form);
- backward (recompute): ``dD/dz_v = p_v g_v - p_v c`` with ``g = dD/dp`` per kind, times the
  upstream gradient, through the student's logit transform, then ``dX += G W_s``,
  ``dW_s += G^T X``, ``db_s += sum G``. The teacher gets no gradient.

``p g`` per kind: forward KL ``-q``; reverse KL ``p (a - b)``; generalized JSD
``(1 - beta) p (a - log m)``, ``m = (1 - beta) p + beta q``; TVD ``p sign(p - q) / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fastalign.logprobs import _tiling

KINDS = ("jsd", "forward_kl", "reverse_kl", "tvd")
# rows of the element-wise row math at a time (its temporaries: a few [rows, Vs] tiles)
_SUB_ROWS = 32


@dataclass(frozen=True)
class Spec:
    """What to compute: ``mode`` is forward / reverse / jsd / tvd (``kind="jsd"`` with
    ``beta`` 0 or 1 is TRL's forward / reverse KL), each model's logit transform, tiles."""

    mode: str
    beta: float
    student: _tiling.Transform
    teacher: _tiling.Transform
    tiles: _tiling.Tiles


def mode_of(kind: str, beta: float) -> str:
    if kind == "jsd":
        return "forward" if beta == 0.0 else "reverse" if beta == 1.0 else "jsd"
    return {"forward_kl": "forward", "reverse_kl": "reverse", "tvd": "tvd"}[kind]


class _Heads:
    """Both heads' GEMM operands (upcast where the device has no fp32-output GEMM), and
    their transformed logits tiles in the compute dtype."""

    def __init__(self, hs, ws, bs, ht, wt, bt, spec: Spec, compute: torch.dtype):
        self.hs, self.ws, self.bs, self.cast_s = _tiling.upcast_operands(hs, ws, bs)
        self.ht, self.wt, self.bt, self.cast_t = _tiling.upcast_operands(ht, wt, bt)
        self.spec, self.compute = spec, compute
        r, v = spec.tiles.rows, spec.tiles.vocab
        n, vocab = hs.shape[0], ws.shape[0]
        size = min(r, n) * min(v, vocab)
        self.buf_s = torch.empty(size, dtype=compute, device=hs.device)
        self.buf_t = torch.empty(size, dtype=compute, device=hs.device)

    def student(self, r0: int, r1: int, v0: int, v1: int) -> torch.Tensor:
        z = _tiling.logits_tile(self.hs[r0:r1], self.cast_s(self.ws[v0:v1]),
                                _tiling.tile(self.buf_s, r1 - r0, v1 - v0))  # fmt: skip
        if self.bs is not None:
            z.add_(self.bs[v0:v1])
        return self.spec.student.apply_(z)

    def teacher(self, r0: int, r1: int, v0: int, v1: int) -> torch.Tensor:
        x, w = self.ht[r0:r1], self.cast_t(self.wt[v0:v1])
        if x.dtype in (torch.float32, torch.float64) and x.dtype != self.compute:
            x, w = x.to(self.compute), w.to(self.compute)  # a float64 teacher, fp32 student
        z = _tiling.logits_tile(x, w, _tiling.tile(self.buf_t, r1 - r0, v1 - v0))
        if self.bt is not None:
            z.add_(self.bt[v0:v1])
        return self.spec.teacher.apply_(z)


def _p_g(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor, spec: Spec):
    """``(p g, the divergence's terms)`` on a normalized tile (``a = log p``, ``b = log q``)."""
    mode = spec.mode
    if mode == "forward":
        q = b.exp()
        return -q, q * (b - a)
    if mode == "reverse":
        pg = p * (a - b)
        return pg, pg
    if mode == "tvd":
        q = b.exp()
        return 0.5 * p * torch.sign(p - q), 0.5 * (p - q).abs()
    beta = spec.beta
    log_m = torch.logaddexp(a + math.log1p(-beta), b + math.log(beta))
    kl_p = p * (a - log_m)
    terms = beta * b.exp() * (b - log_m) + (1 - beta) * kl_p
    return (1 - beta) * kl_p, terms


def _normalize_(z: torch.Tensor, m: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    """``log softmax`` in place as ``(z - m) - log s``: the row max ``m`` subtracted exactly
    first (a single rounded ``logsumexp`` would cost ``ulp(max z)`` on every log-prob)."""
    return z.sub_(m[:, None]).sub_(log_s[:, None])


def _row_norm(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(max, log sum exp(z - max))`` of each row of a whole-vocabulary tile."""
    m = z.amax(1)
    return m, torch.exp(z - m[:, None]).sum(1).log()


def forward(heads: _Heads, n: int, vocab: int):
    """``(divergence, entropy, norms, c)``: ``[n]`` each in the compute dtype, ``norms`` the
    ``(max, log s)`` pairs of the student's and the teacher's rows."""
    spec, compute = heads.spec, heads.compute
    dev = heads.hs.device

    def e():
        return torch.zeros(n, dtype=compute, device=dev)

    div, ent, c = e(), e(), e()
    ms, ls, mt, lt = e(), e(), e(), e()
    r_max, v_max = spec.tiles.rows, spec.tiles.vocab
    for r0 in range(0, n, r_max):
        r1 = min(n, r0 + r_max)
        rs = slice(r0, r1)
        if v_max < vocab:  # pass 1: both normalizers, online over the slices
            for z_of, m_out, l_out in ((heads.student, ms, ls), (heads.teacher, mt, lt)):
                m = torch.full((r1 - r0,), -math.inf, dtype=compute, device=dev)
                s = torch.zeros(r1 - r0, dtype=compute, device=dev)
                for v0 in range(0, vocab, v_max):
                    z = z_of(r0, r1, v0, min(vocab, v0 + v_max))
                    new = torch.maximum(m, z.amax(1))
                    s.mul_(torch.exp(m - new)).add_(torch.exp(z - new[:, None]).sum(1))
                    m = new
                m_out[rs], l_out[rs] = m, s.log()
        for v0 in range(0, vocab, v_max):
            v1 = min(vocab, v0 + v_max)
            za, zb = heads.student(r0, r1, v0, v1), heads.teacher(r0, r1, v0, v1)
            # the row math in sub-blocks of rows: its temporaries stay small next to the tiles
            for i0 in range(0, r1 - r0, _SUB_ROWS):
                i1 = min(r1 - r0, i0 + _SUB_ROWS)
                a, b, rr = za[i0:i1], zb[i0:i1], slice(r0 + i0, r0 + i1)
                if v_max >= vocab:
                    (ms[rr], ls[rr]), (mt[rr], lt[rr]) = _row_norm(a), _row_norm(b)
                _normalize_(a, ms[rr], ls[rr])
                _normalize_(b, mt[rr], lt[rr])
                p = a.exp()
                ent[rr] -= (p * a).sum(1)
                pg, terms = _p_g(a, b, p, spec)
                div[rr] += terms.sum(1)
                c[rr] += pg.sum(1)
    return div, ent, (ms, ls, mt, lt), c


def backward(heads: _Heads, n: int, vocab: int, norms, c, g_div, need_h, need_w, need_b,
             dh_dtype, w_dtype, b_dtype):  # fmt: skip
    """``(dh, dw, db)`` of the student for the upstream gradient ``g_div [n]``."""
    spec, compute = heads.spec, heads.compute
    hs, ws = heads.hs, heads.ws
    ms, ls, mt, lt = norms
    r_max, v_max = spec.tiles.rows, spec.tiles.vocab
    dh = torch.zeros(hs.shape, dtype=compute, device=hs.device) if need_h else None
    dw = torch.zeros(ws.shape, dtype=compute, device=ws.device) if need_w else None
    db = torch.zeros(vocab, dtype=compute, device=ws.device) if need_b else None
    gbuf = torch.empty(min(r_max, n) * min(v_max, vocab), dtype=compute, device=hs.device)
    for r0 in range(0, n, r_max):
        r1 = min(n, r0 + r_max)
        rs = slice(r0, r1)
        x = hs[r0:r1]
        for v0 in range(0, vocab, v_max):
            v1 = min(vocab, v0 + v_max)
            zs = heads.student(r0, r1, v0, v1)  # transformed: the chain rule reads it
            zt = heads.teacher(r0, r1, v0, v1)
            grad = _tiling.tile(gbuf, r1 - r0, v1 - v0)
            for i0 in range(0, r1 - r0, _SUB_ROWS):
                i1 = min(r1 - r0, i0 + _SUB_ROWS)
                rr = slice(r0 + i0, r0 + i1)
                a = _normalize_(zs[i0:i1].clone(), ms[rr], ls[rr])
                b = _normalize_(zt[i0:i1], mt[rr], lt[rr])
                p = a.exp()
                pg, _ = _p_g(a, b, p, spec)
                g = grad[i0:i1]
                torch.sub(pg, p.mul_(c[rr, None]), out=g)
                g.mul_(g_div[rr, None].to(compute))
                spec.student.chain_(g, zs[i0:i1])
            w_s = heads.cast_s(ws[v0:v1])
            if grad.dtype != w_s.dtype:
                w_s = w_s.to(grad.dtype)
            if need_h:
                _tiling.mm_acc(dh[rs], grad, w_s, first=False)
            if need_w:
                xg = x if x.dtype == grad.dtype else x.to(grad.dtype)
                _tiling.mm_acc(dw[v0:v1], grad.t(), xg, first=False)
            if need_b:
                db[v0:v1] += grad.sum(0)
    return (
        None if dh is None else dh.to(dh_dtype),
        None if dw is None else dw.to(w_dtype),
        None if db is None else db.to(b_dtype),
    )


class TwoHead(torch.autograd.Function):
    """``(divergence [n], entropy [n])`` of the rows given; gradients to the student only;
    the entropy is not differentiable (a metric, as TRL's)."""

    @staticmethod
    def forward(ctx, hs, ws, bs, ht, wt, bt, spec: Spec):  # type: ignore[override]
        compute = _tiling.compute_dtype(hs.dtype)
        n, vocab = hs.shape[0], ws.shape[0]
        heads = _Heads(hs.detach(), ws.detach(), None if bs is None else bs.detach(),
                       ht.detach(), wt.detach(), None if bt is None else bt.detach(),
                       spec, compute)  # fmt: skip
        with torch.no_grad():
            div, ent, norms, c = forward(heads, n, vocab)
        ctx.save_for_backward(hs, ws, bs, ht, wt, bt, *norms, c)
        ctx.spec = spec
        ctx.mark_non_differentiable(ent)
        return div, ent

    @staticmethod
    def backward(ctx, g_div, _g_ent):  # type: ignore[override]
        hs, ws, bs, ht, wt, bt, ms, ls, mt, lt, c = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if g_div is None or not (need_h or need_w or need_b):
            return (None,) * 7
        compute = _tiling.compute_dtype(hs.dtype)
        heads = _Heads(hs, ws, bs, ht, wt, bt, ctx.spec, compute)
        with torch.no_grad():
            dh, dw, db = backward(
                heads, hs.shape[0], ws.shape[0], (ms, ls, mt, lt), c, g_div, need_h, need_w,
                need_b and bs is not None, hs.dtype, ws.dtype,
                None if bs is None else bs.dtype,
            )  # fmt: skip
        return dh, dw, db, None, None, None, None
