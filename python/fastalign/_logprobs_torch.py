"""The portable fused log-prob path: chunked over tokens, recompute backward.

Per chunk of ``rows`` tokens the ``[rows, V]`` logits are formed with one matmul into a
reused float32 buffer, transformed and reduced in place to (logsumexp, target logit[,
entropy]); the backward recomputes the chunk's logits and turns them into the chunk's
``G = dL/dlogits`` in place, then ``dX = G W`` and ``dW += G^T X`` (fp32 accumulation).
Live memory is a couple of chunk buffers (``chunk_bytes`` each) on top of inputs and
gradients; the work is the four ``N x V x H`` matmuls plus a few elementwise passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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


def _chunk_logits(
    h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, out: torch.Tensor
) -> torch.Tensor:
    """Raw logits of a chunk, in float32 (or float64 for float64 inputs), into ``out``."""
    if h.dtype == out.dtype:
        if b is None:
            torch.mm(h, w.t(), out=out)
        else:
            torch.addmm(b.to(out.dtype), h, w.t(), out=out)
    else:  # low precision: matmul in the input dtype (fp32 accumulation), then upcast
        z = torch.mm(h, w.t()) if b is None else torch.addmm(b, h, w.t())
        out.copy_(z)
    return out


def chunk_rows_for(vocab: int, chunk_bytes: int, itemsize: int = 4) -> int:
    return max(1, chunk_bytes // (itemsize * max(1, vocab)))


class FusedLogps(torch.autograd.Function):
    """token log-probs (and optionally entropies) of compacted, unmasked tokens."""

    @staticmethod
    def forward(ctx, h, w, b, labels, transform, want_entropy, chunk_rows, extras=()):
        n, vocab = h.shape[0], w.shape[0]
        compute = torch.float64 if h.dtype == torch.float64 else torch.float32
        logp = torch.empty(n, dtype=compute, device=h.device)
        lse = torch.empty(n, dtype=compute, device=h.device)
        ent = torch.empty(n, dtype=compute, device=h.device) if want_entropy else None
        stats = {k: _stat_buffer(k, n, compute, h.device) for k in extras}
        rows = min(chunk_rows, max(n, 1))
        buf = torch.empty(rows, vocab, dtype=compute, device=h.device)
        pbuf = torch.empty_like(buf) if want_entropy else None
        for s in range(0, n, rows):
            e = min(n, s + rows)
            z = transform.apply_(_chunk_logits(h[s:e], w, b, buf[: e - s]))
            # Shift by the row max first, as log_softmax does: logp = (z - m) - log(sum-exp)
            # is exact for the max logit where z - logsumexp(z) would cancel. Every step runs
            # in place on the one chunk buffer (no [rows, V] temporaries).
            if "mean_logits" in stats:
                stats["mean_logits"][s:e] = z.mean(1)
            if "is_top1" in stats:  # the first maximum is the label (argmax's convention)
                stats["is_top1"][s:e] = z.argmax(1) == labels[s:e]
            m = z.amax(dim=1, keepdim=True)
            z.sub_(m)
            target = z.gather(1, labels[s:e, None]).squeeze(1)
            if want_entropy:
                zs = pbuf[: e - s].copy_(z)
            sum_exp = z.exp_().sum(1)
            log_s = sum_exp.log()
            if "log_sum_sq_probs" in stats:  # log sum_v p_v^2 = 2 log ||exp(z - m)|| - 2 log_s
                norm = torch.linalg.vector_norm(z, dim=1)
                stats["log_sum_sq_probs"][s:e] = 2.0 * (norm.log() - log_s)
            lse[s:e] = m.squeeze(1) + log_s
            logp[s:e] = target - log_s
            if want_entropy:
                # H = log(sum-exp) - sum_v p_v (z_v - m), with p = exp(z - m) / sum-exp
                ent[s:e] = log_s - zs.mul_(z).sum(1) / sum_exp
        ctx.save_for_backward(h, w, b, labels, lse, ent, logp)
        ctx.transform, ctx.chunk_rows = transform, rows
        ctx.mark_non_differentiable(lse, *stats.values())
        ctx.set_materialize_grads(False)  # entropy often only feeds metrics: no zero gradient
        head = (logp, ent) if want_entropy else (logp,)
        return head + tuple(stats[k] for k in extras)

    @staticmethod
    def backward(ctx, grad_logp, *grads):
        grad_ent = grads[0] if ctx.saved_tensors[5] is not None and grads else None
        h, w, b, labels, lse, ent, logp = ctx.saved_tensors
        transform: Transform = ctx.transform
        n, vocab = h.shape[0], w.shape[0]
        compute = lse.dtype
        need_h, need_w, need_b = (
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
            (b is not None and ctx.needs_input_grad[2]),
        )
        dh = torch.empty_like(h) if need_h else None
        dw = torch.zeros(w.shape, dtype=compute, device=w.device) if need_w else None
        db = torch.zeros(vocab, dtype=compute, device=w.device) if need_b else None
        if n == 0 or not (need_h or need_w or need_b) or (grad_logp is None and grad_ent is None):
            if dh is not None:
                dh.zero_()
            return _grads(dh, dw, db, w, b)
        g_lp = grad_logp.to(compute) if grad_logp is not None else torch.zeros_like(lse)
        use_ent = ent is not None and grad_ent is not None
        g_ent = grad_ent.to(compute) if use_ent else None
        lab = label_grad(logp, g_lp, ent if use_ent else None, g_ent)
        need_z = use_ent or transform.softcap is not None
        rows = ctx.chunk_rows
        buf = torch.empty(rows, vocab, dtype=compute, device=h.device)
        zbuf = torch.empty_like(buf) if need_z else None
        arange = torch.arange(rows, device=h.device)
        for s in range(0, n, rows):
            e = min(n, s + rows)
            m = e - s
            z = transform.apply_(_chunk_logits(h[s:e], w, b, buf[:m]))
            if need_z:
                z = zbuf[:m].copy_(z)
            p = buf[:m].sub_(lse[s:e, None]).exp_()  # softmax, in place of the logits
            g = g_lp[s:e]
            if use_ent:
                # dH/dz = -p (z - lse + H); dlogp/dz = onehot - p
                coef = (lse[s:e] - ent[s:e])[:, None]
                grad = p.mul_(z.sub(coef).mul_(g_ent[s:e, None]).add_(g[:, None])).neg_()
            else:
                grad = p.mul_(g.neg()[:, None])
            grad[arange[:m], labels[s:e]] = lab[s:e]
            if need_z:
                transform.chain_(grad, z)
            elif transform.logit_scale / transform.temperature != 1.0:
                grad.mul_(transform.logit_scale / transform.temperature)
            gw = grad if grad.dtype == w.dtype else grad.to(w.dtype)
            if need_h:
                torch.mm(gw, w, out=dh[s:e]) if dh.dtype == gw.dtype else dh[s:e].copy_(gw @ w)
            if need_w:
                dw.addmm_(grad.t(), h[s:e].to(compute))
            if need_b:
                db += grad.sum(0)
        return _grads(dh, dw, db, w, b)


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


def _grads(dh, dw, db, w, b):
    if dw is not None and dw.dtype != w.dtype:
        dw = dw.to(w.dtype)
    if db is not None and b is not None and db.dtype != b.dtype:
        db = db.to(b.dtype)
    return dh, dw, db, None, None, None, None, None


STATS = ("log_sum_sq_probs", "mean_logits", "is_top1")


def _stat_buffer(name: str, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if name not in STATS:
        raise ValueError(f"unknown statistic {name!r}; expected one of {STATS}")
    return torch.empty(n, dtype=torch.bool if name == "is_top1" else dtype, device=device)


@torch.no_grad()
def logit_stats(h, w, b, labels, transform: Transform, extras, chunk_rows: int):
    """Forward-only statistics of the transformed logits, chunk by chunk (for paths whose
    kernel does not compute them): ``log_sum_sq_probs``, ``mean_logits``, ``is_top1``."""
    n, vocab = h.shape[0], w.shape[0]
    compute = torch.float64 if h.dtype == torch.float64 else torch.float32
    stats = {k: _stat_buffer(k, n, compute, h.device) for k in extras}
    rows = min(chunk_rows, max(n, 1))
    buf = torch.empty(rows, vocab, dtype=compute, device=h.device)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        z = transform.apply_(_chunk_logits(h[s:e], w, b, buf[: e - s]))
        if "mean_logits" in stats:
            stats["mean_logits"][s:e] = z.mean(1)
        if "is_top1" in stats:
            stats["is_top1"][s:e] = z.argmax(1) == labels[s:e]
        if "log_sum_sq_probs" in stats:
            z.sub_(z.amax(dim=1, keepdim=True)).exp_()
            norm = torch.linalg.vector_norm(z, dim=1)
            stats["log_sum_sq_probs"][s:e] = 2.0 * (norm.log() - z.sum(1).log())
    return tuple(stats[k] for k in extras)
