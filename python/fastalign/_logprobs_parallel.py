"""Vocab-parallel fused log-probs: each rank of a process group holds a contiguous slice
``weight[V_r, H]`` of the LM head (ranks in order), the hidden states and labels are
replicated, and no rank ever holds the full head or the logits.

Per chunk of tokens, forward: the local logits ``z`` (transformed), one all-reduce MAX of the
row maxima, then one all-reduce SUM of three floats per row (sum of ``exp(z - max)``, the
target logit from the rank that owns the label (0 elsewhere), and, for the entropy,
``sum exp(z - max) (z - max)``). Backward: each rank recomputes its slice's logits, forms its
part of ``dL/dz`` (the label entry on the owning rank, from the accurate log-prob), adds its
local ``dW`` and ``db``, and the partial ``dh = G W_r`` is all-reduced (SUM) so that every rank
gets the full gradient of the replicated hidden states.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from fastalign._logprobs_torch import Transform, _chunk_logits, label_grad


class VocabParallelLogps(torch.autograd.Function):
    """(logp[, entropy]) of compacted rows, the head sharded by vocabulary over ``group``."""

    @staticmethod
    def forward(ctx, h, w, b, labels, transform, want_entropy, chunk_rows, offset, group):
        n, v_local = h.shape[0], w.shape[0]
        compute = torch.float64 if h.dtype == torch.float64 else torch.float32
        local = labels - offset
        own = (local >= 0) & (local < v_local)
        local = torch.where(own, local, 0)
        logp = torch.empty(n, dtype=compute, device=h.device)
        lse = torch.empty(n, dtype=compute, device=h.device)
        ent = torch.empty(n, dtype=compute, device=h.device) if want_entropy else None
        rows = min(chunk_rows, max(n, 1))
        buf = torch.empty(rows, v_local, dtype=compute, device=h.device)
        for s in range(0, n, rows):
            e = min(n, s + rows)
            z = transform.apply_(_chunk_logits(h[s:e], w, b, buf[: e - s]))
            m = z.amax(dim=1)
            dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
            z.sub_(m[:, None])
            target = torch.where(own[s:e], z.gather(1, local[s:e, None]).squeeze(1), 0.0)
            zs = z.clone() if want_entropy else None
            z.exp_()
            parts = [z.sum(1), target]
            if want_entropy:
                parts.append(zs.mul_(z).sum(1))
            red = torch.stack(parts)
            dist.all_reduce(red, op=dist.ReduceOp.SUM, group=group)
            log_s = red[0].log()
            logp[s:e] = red[1] - log_s
            lse[s:e] = m + log_s
            if want_entropy:
                ent[s:e] = log_s - red[2] / red[0]
        ctx.save_for_backward(h, w, b, local, own, lse, ent, logp)
        ctx.transform, ctx.rows, ctx.group = transform, rows, group
        ctx.set_materialize_grads(False)
        return (logp, ent) if want_entropy else (logp,)

    @staticmethod
    def backward(ctx, grad_logp, *grads):
        h, w, b, local, own, lse, ent, logp = ctx.saved_tensors
        grad_ent = grads[0] if ent is not None and grads else None
        transform: Transform = ctx.transform
        n, v_local = h.shape[0], w.shape[0]
        compute = lse.dtype
        need_b = b is not None and ctx.needs_input_grad[2]
        # every rank runs the same collectives whatever it needs (no rank may skip one)
        g_lp = grad_logp.to(compute) if grad_logp is not None else torch.zeros_like(lse)
        use_ent = ent is not None and grad_ent is not None
        g_ent = grad_ent.to(compute) if use_ent else None
        lab = label_grad(logp, g_lp, ent if use_ent else None, g_ent)
        need_w = ctx.needs_input_grad[1]
        dh = torch.zeros(h.shape, dtype=compute, device=h.device)
        dw = torch.zeros(w.shape, dtype=compute, device=w.device) if need_w else None
        w_c = w.to(compute)  # once, not per chunk
        db = torch.zeros(v_local, dtype=compute, device=w.device) if need_b else None
        rows = ctx.rows
        buf = torch.empty(rows, v_local, dtype=compute, device=h.device)
        need_z = use_ent or transform.softcap is not None
        for s in range(0, n, rows):
            e = min(n, s + rows)
            z = transform.apply_(_chunk_logits(h[s:e], w, b, buf[: e - s]))
            zc = z.clone() if need_z else None
            p = z.sub_(lse[s:e, None]).exp_()
            if use_ent:
                # dH/dz = -p (z - lse + H); here z - lse = log p
                grad = p * (zc - (lse[s:e] - ent[s:e])[:, None]).mul_(g_ent[s:e, None])
                grad.add_(p * g_lp[s:e, None]).neg_()
            else:
                grad = p.mul_(-g_lp[s:e, None])
            mine = own[s:e].nonzero().squeeze(1)
            grad[mine, local[s:e][mine]] = lab[s:e][mine]
            if transform.softcap is not None:
                transform.chain_(grad, zc)
            elif transform.logit_scale / transform.temperature != 1.0:
                grad.mul_(transform.logit_scale / transform.temperature)
            dh[s:e] = grad @ w_c
            if dw is not None:
                dw.addmm_(grad.t(), h[s:e].to(compute))
            if db is not None:
                db += grad.sum(0)
        dist.all_reduce(dh, op=dist.ReduceOp.SUM, group=ctx.group)
        return (
            dh.to(h.dtype),
            None if dw is None else dw.to(w.dtype),
            None if db is None else db.to(b.dtype),
            None,
            None,
            None,
            None,
            None,
            None,
        )


class VocabParallelLogpsTriton(torch.autograd.Function):
    """The same with the Triton kernels: each rank's kernel gives its slice's (max, sum-exp,
    target logit, entropy sum) per row; the slices are merged across ranks with the same
    two all-reduces; the backward kernel forms the slice's logits gradient against the
    global log-sum-exp (a label on another rank is -1 locally: no column matches it)."""

    @staticmethod
    def forward(ctx, h, w, b, labels, transform, want_entropy, offset, group):
        from fastalign.kernels import fused_logprobs as k

        v_local = w.shape[0]
        local = labels - offset
        y = torch.where((local >= 0) & (local < v_local), local, -1).contiguous()
        m, s, t, a = k.forward_partials(
            h,
            w,
            b,
            y,
            temperature=transform.temperature,
            logit_scale=transform.logit_scale,
            softcap=transform.softcap,
            want_entropy=want_entropy,
        )
        big_m = m.clone()
        dist.all_reduce(big_m, op=dist.ReduceOp.MAX, group=group)
        scale = torch.exp(m - big_m)
        parts = [s * scale, t]
        if want_entropy:
            parts.append(scale * (a + torch.where(s > 0, (m - big_m) * s, 0.0)))
        red = torch.stack(parts)
        dist.all_reduce(red, op=dist.ReduceOp.SUM, group=group)
        log_s = red[0].log()
        logp = (red[1] - big_m) - log_s
        lse = big_m + log_s
        ent = log_s - red[2] / red[0] if want_entropy else None
        ctx.save_for_backward(h, w, b, y, lse, ent, logp)
        ctx.transform, ctx.group = transform, group
        ctx.set_materialize_grads(False)
        return (logp, ent) if want_entropy else (logp,)

    @staticmethod
    def backward(ctx, grad_logp, *grads):
        from fastalign.kernels import fused_logprobs as k

        h, w, b, y, lse, ent, logp = ctx.saved_tensors
        grad_ent = grads[0] if ent is not None and grads else None
        t: Transform = ctx.transform
        g_lp = grad_logp.float() if grad_logp is not None else torch.zeros_like(lse)
        use_ent = ent is not None and grad_ent is not None
        g_ent = grad_ent.float() if use_ent else None
        lab = label_grad(logp, g_lp, ent if use_ent else None, g_ent)
        need_b = b is not None and ctx.needs_input_grad[2]
        dh, dw, db = k.backward(
            h,
            w,
            b,
            y,
            lse,
            ent if use_ent else None,
            g_lp,
            g_ent,
            lab,
            temperature=t.temperature,
            logit_scale=t.logit_scale,
            softcap=t.softcap,
            need_x=True,  # every rank joins the all-reduce below
            need_w=ctx.needs_input_grad[1],
            need_b=need_b,
        )
        dh32 = dh.float()
        dist.all_reduce(dh32, op=dist.ReduceOp.SUM, group=ctx.group)
        return dh32.to(h.dtype), dw, db, None, None, None, None, None


def agree(
    group: object, n: int, h_dim: int, v_local: int, labels_key: int, problem: str | None
) -> tuple[int, int]:
    """The group's handshake before any work: every rank shares its shapes, a key of its
    labels and whether its own checks passed, so that an inconsistency raises the same error
    on every rank instead of leaving some waiting in a collective. Returns (this rank's
    vocabulary offset, the total vocabulary)."""
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    # the handshake tensor lives where the backend's collectives run, whatever the inputs
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend(group) == "nccl"
        else torch.device("cpu")
    )
    mine = torch.tensor(
        [int(problem is None), n, h_dim, v_local, labels_key], dtype=torch.int64, device=device
    )
    table = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(table, mine, group=group)
    rows = torch.stack(table)
    if problem is not None:
        raise_here = problem
    elif not bool(rows[:, 0].all()):
        bad = rows[:, 0].eq(0).nonzero().squeeze(1).tolist()
        raise_here = f"rank(s) {bad} of the process group rejected their inputs"
    elif rows[:, 1].unique().numel() > 1 or rows[:, 2].unique().numel() > 1:
        raise_here = (
            "the ranks disagree on the hidden states: [N, H] per rank = "
            f"{rows[:, 1:3].tolist()} (hidden and labels must be replicated)"
        )
    elif rows[:, 4].unique().numel() > 1:
        raise_here = (
            "the ranks hold different labels or options (labels must be replicated; dtype, "
            "return_entropy, backend, chunk_rows, ignore_index, bias and the logit transform "
            "must be the same on every rank)"
        )
    else:
        raise_here = None
    if raise_here is not None:
        from fastalign.errors import InvalidInputError

        raise InvalidInputError(f"token_logps(process_group=...): {raise_here}")
    sizes = rows[:, 3].tolist()  # the slices, in rank order
    return int(sum(sizes[:rank])), int(sum(sizes))


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finalizer on int64 tensors (wrapping arithmetic)."""
    x = x ^ (x >> 30)  # arithmetic shifts: fine for a fingerprint
    x = x * -4658895280553007687  # 0xBF58476D1CE4E5B9 as int64
    x = x ^ (x >> 27)
    x = x * -7723592293110705685  # 0x94D049BB133111EB as int64
    return x ^ (x >> 31)


def labels_key(labels: torch.Tensor) -> int:
    """A fingerprint of a label tensor: a sum of mixed (position, label) hashes, so equal
    labels give equal keys and different ones collide only by chance (2^-62)."""
    if labels.numel() == 0:
        return 0
    x = labels.reshape(-1).to(torch.int64)
    pos = torch.arange(x.numel(), device=x.device, dtype=torch.int64)
    h = _mix(_mix(pos * 0x9E3779B9 + 1) + x)
    return int(h.sum() & (2**62 - 1)) ^ x.numel()


def settings_key(settings: tuple) -> int:
    """A fingerprint of the options every rank must share (stable across processes)."""
    import hashlib

    digest = hashlib.blake2b(repr(settings).encode(), digest_size=7).digest()
    return int.from_bytes(digest, "little")
