"""Distillation from a served teacher (top-k log-probs and ids, as an inference server returns
them) and the unlikelihood term, on the student's fused head.

The student's log-probs at ``k`` given ids per row, ``a[n, j] = z[n, id_nj] - logsumexp z[n]``,
come from one pass of the tiling driver for the log-normalizer (BLAS / cuBLAS GEMM tiles,
never ``[N, V]``) and a ``k``-long dot product per row for the logits at the ids. Their
backward: ``dz = scatter(g at the ids) - p sum_j g_j``, the dense part on recomputed tiles,
the sparse part by gathers and ``index_add``. The divergence itself is a ``[N, k + 1]``
problem, solved in float64 with autograd.
"""

from __future__ import annotations

import math

import torch

from fastalign.logprobs import _tiling

TAILS = ("renormalize", "bucket")


def _logits_at(h, w, b, ids, transform: _tiling.Transform, compute) -> torch.Tensor:
    """Transformed logits ``[n, k]`` of the rows of ``h`` at ``ids``."""
    z = torch.einsum("nh,nkh->nk", h.to(compute), w[ids].to(compute))
    if b is not None:
        z = z + b[ids].to(compute)
    return transform.apply_(z)


def _tiles(h, w, b, transform, tiles, compute):
    """``(r0, r1, v0, v1, z)`` for every tile: the transformed logits of rows ``[r0, r1)``
    over columns ``[v0, v1)`` (one buffer, reused)."""
    n, vocab = h.shape[0], w.shape[0]
    hh, ww, bb, cast = _tiling.upcast_operands(h, w, b)
    buf = torch.empty(min(tiles.rows, n) * min(tiles.vocab, vocab), dtype=compute,
                      device=h.device)  # fmt: skip
    for r0 in range(0, n, tiles.rows):
        r1 = min(n, r0 + tiles.rows)
        for v0 in range(0, vocab, tiles.vocab):
            v1 = min(vocab, v0 + tiles.vocab)
            z = _tiling.logits_tile(hh[r0:r1], cast(ww[v0:v1]),
                                    _tiling.tile(buf, r1 - r0, v1 - v0))  # fmt: skip
            if bb is not None:
                z.add_(bb[v0:v1])
            yield r0, r1, v0, v1, transform.apply_(z)


def _label_mask(y: torch.Tensor, v0: int, v1: int) -> torch.Tensor:
    """``[rows, v1 - v0]`` True at each row's label column (if in this slice)."""
    cols = torch.arange(v0, v1, device=y.device)
    return cols[None, :] == y[:, None]


def _norms(h, w, b, transform, tiles, compute, exclude=None):
    """Per row ``(max, log sum exp(z - max))`` of the transformed logits, by tiles; with
    ``exclude`` (labels), also the same over the vocabulary without each row's label."""
    n = h.shape[0]

    def fresh():
        return (torch.full((n,), -math.inf, dtype=compute, device=h.device),
                torch.zeros(n, dtype=compute, device=h.device))  # fmt: skip

    out = [fresh()] + ([fresh()] if exclude is not None else [])
    for r0, r1, v0, v1, z in _tiles(h, w, b, transform, tiles, compute):
        zs = [z]
        if exclude is not None:
            zs.append(z.masked_fill(_label_mask(exclude[r0:r1], v0, v1), -math.inf))
        for (m, s), t in zip(out, zs, strict=True):
            new = torch.maximum(m[r0:r1], t.amax(1))
            safe = torch.where(new > -math.inf, new, 0.0)  # a row of -inf so far
            s[r0:r1] = s[r0:r1] * torch.exp(m[r0:r1] - safe) + torch.exp(t - safe[:, None]).sum(1)
            m[r0:r1] = new
    return [(m, s.log()) for m, s in out]


class LogpsAt(torch.autograd.Function):
    """The student's log-probs ``[n, k]`` at ``ids [n, k]``, differentiable w.r.t. its hidden
    states, weight and bias."""

    @staticmethod
    def forward(ctx, h, w, b, ids, transform, tiles):  # type: ignore[override]
        compute = _tiling.compute_dtype(h.dtype)
        with torch.no_grad():
            ((m, log_s),) = _norms(h.detach(), w.detach(), None if b is None else b.detach(),
                                   transform, tiles, compute)  # fmt: skip
            z_ids = _logits_at(h.detach(), w.detach(), None if b is None else b.detach(), ids,
                               transform, compute)  # fmt: skip
        ctx.save_for_backward(h, w, b, ids, m, log_s, z_ids)
        ctx.transform, ctx.tiles = transform, tiles
        return (z_ids - m[:, None]) - log_s[:, None]

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        h, w, b, ids, m, log_s, z_ids = ctx.saved_tensors
        need = ctx.needs_input_grad[:3]
        if not any(need):
            return None, None, None, None, None, None
        transform = ctx.transform
        compute = _tiling.compute_dtype(h.dtype)
        g = g.to(compute)
        total = g.sum(1)

        def dense(rs: slice, v0: int, v1: int, z: torch.Tensor) -> torch.Tensor:  # -p sum_j g_j
            return torch.exp(z - m[rs, None] - log_s[rs, None]).mul_(-total[rs, None])

        with torch.no_grad():
            dh, dw, db = _head_backward(h, w, b, transform, ctx.tiles, compute, need, dense)
            # the sparse part: +g at the ids (through the transform at those logits)
            sparse = transform.chain_(g.clone(), z_ids.clone())
            hh = h.detach().to(compute)
            if dh is not None:
                dh += torch.einsum("nk,nkh->nh", sparse, w.detach()[ids].to(compute))
            if dw is not None:
                contrib = sparse[:, :, None] * hh[:, None, :]
                dw.index_add_(0, ids.reshape(-1), contrib.reshape(-1, hh.shape[1]))
            if db is not None:
                db.index_add_(0, ids.reshape(-1), sparse.reshape(-1))
        return (*_as_inputs((dh, dw, db), (h, w, b)), None, None, None)


def _head_backward(h, w, b, transform, tiles, compute, need, grad_of):
    """``(dh, dw, db)`` (compute dtype; None where not needed) of a head whose loss has the
    gradient ``grad_of(rows, v0, v1, z)`` w.r.t. the transformed logits tile ``z``: per
    tile, that gradient through the transform, then ``dX += G W``, ``dW += G^T X``,
    ``db += sum G``."""
    need_h, need_w, need_b = need
    need_b = need_b and b is not None
    hh, ww, _, cast = _tiling.upcast_operands(h.detach(), w.detach(), None)
    dh = torch.zeros(h.shape, dtype=compute, device=h.device) if need_h else None
    dw = torch.zeros(w.shape, dtype=compute, device=w.device) if need_w else None
    db = torch.zeros(w.shape[0], dtype=compute, device=w.device) if need_b else None
    for r0, r1, v0, v1, z in _tiles(h.detach(), w.detach(), None if b is None else b.detach(),
                                    transform, tiles, compute):  # fmt: skip
        rs = slice(r0, r1)
        grad = grad_of(rs, v0, v1, z)
        transform.chain_(grad, z)
        if need_h:
            w_c = cast(ww[v0:v1])
            _tiling.mm_acc(dh[rs], grad, w_c if w_c.dtype == compute else w_c.to(compute),
                           first=False)  # fmt: skip
        if need_w:
            x = hh[rs] if hh.dtype == compute else hh[rs].to(compute)
            _tiling.mm_acc(dw[v0:v1], grad.t(), x, first=False)
        if need_b:
            db[v0:v1] += grad.sum(0)
    return dh, dw, db


def _as_inputs(grads, inputs):
    """Each gradient in its input's dtype (None stays None)."""
    return tuple(None if g is None else g.to(x.dtype) for g, x in zip(grads, inputs, strict=True))


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate at both ends (Maechler 2012); ``-inf`` at
    ``x = 0``."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def outcomes(logp: torch.Tensor, tail: str, source: torch.dtype) -> torch.Tensor:
    """Log-probs over the top-k outcomes: renormalized over them, or with one more outcome,
    the rest of the vocabulary (its mass ``1 - sum``). A rest below ``8 k eps`` of the
    ``source`` dtype (the dtype the log-probs were computed in) is rounding: empty."""
    total = torch.logsumexp(logp, dim=1, keepdim=True)
    if tail == "renormalize":
        return logp - total
    tol = 8 * logp.shape[1] * torch.finfo(source).eps
    left = total < math.log1p(-min(tol, 0.5))  # else the tail is empty (-inf)
    rest = torch.where(left, log1mexp(torch.where(left, total, -1.0)), -math.inf)
    return torch.cat([logp, rest], dim=1)


def divergence(a: torch.Tensor, b: torch.Tensor, mode: str, beta: float) -> torch.Tensor:
    """Per-row divergence of log-prob rows ``a`` (student) and ``b`` (teacher), where an
    outcome of probability 0 (``-inf``) contributes 0 to the sums that weight by it."""

    def xlog(w_log: torch.Tensor, diff: torch.Tensor) -> torch.Tensor:
        # w * diff where w > 0, else 0 (also in the gradient: no 0 * inf through the masks)
        on = w_log > -math.inf
        return torch.where(on, torch.where(on, w_log, 0.0).exp() * torch.where(on, diff, 0.0),
                           0.0)  # fmt: skip

    p, q = a.exp(), b.exp()
    if mode == "forward":
        return xlog(b, b - a).sum(1)
    if mode == "reverse":
        return xlog(a, a - b).sum(1)
    if mode == "tvd":
        return 0.5 * (p - q).abs().sum(1)
    log_m = torch.logaddexp(a + math.log1p(-beta), b + math.log(beta))
    return beta * xlog(b, b - log_m).sum(1) + (1 - beta) * xlog(a, a - log_m).sum(1)


class Unlikelihood(torch.autograd.Function):
    """``-log(1 - p(label)) = logsumexp(z) - logsumexp(z without the label)`` per row, both
    log-normalizers folded over the tiles (no ``1 - p`` is ever formed: exact for ``p``
    near 1); gradient ``p - p'`` with ``p'`` the softmax without the label."""

    @staticmethod
    def forward(ctx, h, w, b, y, transform, tiles):  # type: ignore[override]
        compute = _tiling.compute_dtype(h.dtype)
        with torch.no_grad():
            (m, ls), (me, lse) = _norms(h.detach(), w.detach(),
                                        None if b is None else b.detach(), transform, tiles,
                                        compute, exclude=y)  # fmt: skip
        ctx.save_for_backward(h, w, b, y, m, ls, me, lse)
        ctx.transform, ctx.tiles = transform, tiles
        return (m - me) + (ls - lse)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        h, w, b, y, m, ls, me, lse = ctx.saved_tensors
        need = ctx.needs_input_grad[:3]
        if not any(need):
            return None, None, None, None, None, None
        compute = _tiling.compute_dtype(h.dtype)
        g = g.to(compute)

        def grad_of(rs: slice, v0: int, v1: int, z: torch.Tensor) -> torch.Tensor:  # p - p'
            p = torch.exp(z - m[rs, None] - ls[rs, None])
            pe = torch.exp(z - me[rs, None] - lse[rs, None])
            pe.masked_fill_(_label_mask(y[rs], v0, v1), 0.0)
            return p.sub_(pe).mul_(g[rs, None])

        with torch.no_grad():
            grads = _head_backward(h, w, b, ctx.transform, ctx.tiles, compute, need, grad_of)
        return (*_as_inputs(grads, (h, w, b)), None, None, None)
