"""Vocab-parallel fused log-probs: each rank of a process group holds a contiguous slice
``weight[V_r, H]`` of the LM head (ranks in order), the hidden states and labels are
replicated, and no rank ever holds the full head or the logits.

Forward: the tiling driver folds the local slice into per-row statistics (max, sum-exp, the
label's logit from the rank that owns it (0 elsewhere), the entropy term); one all-reduce
MAX of the row maxima and one all-reduce SUM of the rescaled statistics merge the ranks.
Backward: each rank runs the driver's backward on its slice against the global statistics
(the label entry on the owning rank, from the accurate log-prob), keeps its ``dW`` / ``db``,
and the partial ``dh = G W_r`` is all-reduced (SUM) so that every rank gets the full
gradient of the replicated hidden states.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from fastalign import _backend
from fastalign._validate import check_head, check_label_dtype, check_labels
from fastalign.logprobs._rows import row_passes
from fastalign.logprobs._tiling import (
    HeadOutputs,
    RowState,
    Tiles,
    Transform,
    finish,
    fold_head,
    grad_head,
    label_grad,
    plan,
)


class VocabParallelLogps(torch.autograd.Function):
    """(logp, entropy or None) of compacted rows, the head sharded by vocabulary."""

    @staticmethod
    def forward(ctx, h, w, b, y, transform, entropy, tiles, which, accumulate, offset, group):
        rows = row_passes(which)
        st = fold_head(h, w, b, y, transform, tiles, rows, entropy=entropy, stats=False,
                       offset=offset)  # fmt: skip
        big = st.m.clone()
        dist.all_reduce(big, op=dist.ReduceOp.MAX, group=group)
        scale = torch.exp(st.m - big)
        parts = [st.s * scale, st.t]
        if entropy:
            shift = torch.where(st.s > 0, (st.m - big) * st.s, torch.zeros_like(st.s))
            parts.append(scale * (st.u + shift))
        red = torch.stack(parts)
        dist.all_reduce(red, op=dist.ReduceOp.SUM, group=group)
        merged = RowState(m=big, s=red[0], t=red[1], u=red[2] if entropy else None)
        fin = finish(merged, y, w.shape[0])
        ctx.save_for_backward(h, w, b, y, big, fin.log_s, fin.ent, fin.logp)
        ctx.settings = (transform, tiles, which, accumulate, offset, group)
        ctx.set_materialize_grads(False)
        return fin.logp, fin.ent

    @staticmethod
    def backward(ctx, grad_logp, grad_ent):
        h, w, b, y, m, log_s, ent, logp = ctx.saved_tensors
        transform, tiles, which, accumulate, offset, group = ctx.settings
        compute = m.dtype
        # every rank runs the same collectives whatever it needs (no rank may skip one)
        g_lp = grad_logp.to(compute) if grad_logp is not None else torch.zeros_like(m)
        use_ent = ent is not None and grad_ent is not None
        g_ent = grad_ent.to(compute) if use_ent else None
        lab = label_grad(logp, g_lp, ent if use_ent else None, g_ent)
        need_b = b is not None and ctx.needs_input_grad[2]
        dh, dw, db = grad_head(
            h,
            w,
            b,
            y,
            transform,
            tiles,
            row_passes(which),
            m=m,
            log_s=log_s,
            ent=ent if use_ent else None,
            g_lp=g_lp,
            g_ent=g_ent,
            lab=lab,
            need_h=True,
            need_w=ctx.needs_input_grad[1],
            need_b=need_b,
            accumulate=accumulate,
            offset=offset,
            dh_dtype=compute,
        )
        dist.all_reduce(dh, op=dist.ReduceOp.SUM, group=group)
        return (dh.to(h.dtype), dw, db) + (None,) * 8


def parallel_head(hidden, weight, labels, bias, opts, entropy: bool):
    """The vocab-parallel path: local checks, then a handshake of the whole group (so that
    any rank's error or any disagreement is raised on every rank), then the sharded
    computation with the same collectives, in the same order and sizes, on every rank."""

    group = opts.process_group
    if not dist.is_available() or not isinstance(group, dist.ProcessGroup):
        raise TypeError(
            "process_group must be a torch.distributed ProcessGroup (e.g. dist.group.WORLD "
            f"or mesh.get_group()), not {type(group).__name__}"
        )
    problem = None
    n = h_dim = v_local = key = 0
    which = "torch"
    try:
        n, v_local = check_head(hidden, weight, labels, bias)
        h_dim = hidden.shape[1]
        which = _backend.resolve(
            opts.backend, hidden.device.type, triton_ok=hidden.dtype != torch.float64
        )
        if which == "reference":
            raise NotImplementedError(
                "backend='reference' with a process group (the reference materializes the "
                "whole head); use 'auto', 'torch' or 'triton'"
            )
        check_label_dtype(labels, opts.ignore_index)
        key = labels_key(labels)
        # everything that decides the collectives' sizes, count and meaning must agree
        settings = (
            str(hidden.dtype),
            bool(entropy),
            which,
            int(opts.ignore_index),
            bias is not None,
            (opts.temperature, opts.logit_scale, opts.softcap),
        )
        key ^= settings_key(settings)
    except Exception as e:
        problem = f"{type(e).__name__}: {e}"
    offset, vocab = agree(group, n, h_dim, v_local, key, problem)
    check_labels(labels, vocab, opts.ignore_index)  # the same labels: the same error everywhere
    keep = (labels != opts.ignore_index).nonzero().squeeze(1)
    h_c = hidden.index_select(0, keep).contiguous()
    y_c = labels.index_select(0, keep).long()
    w = weight if weight.stride(-1) == 1 else weight.contiguous()
    tiles: Tiles = plan(
        h_c.shape[0], v_local, h_c.device, chunk_rows=opts.chunk_rows,
        chunk_vocab=opts.chunk_vocab,
    )  # fmt: skip
    transform = Transform(opts.temperature, opts.logit_scale, opts.softcap)
    logp, ent = VocabParallelLogps.apply(
        h_c, w, bias, y_c, transform, bool(entropy), tiles, which, opts.accumulate, offset, group
    )

    def spread(x):
        return torch.zeros(n, dtype=x.dtype, device=x.device).index_copy(0, keep, x)

    return HeadOutputs(spread(logp), spread(ent) if entropy else None)


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
