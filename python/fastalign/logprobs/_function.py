"""The fused head as two torch custom ops (forward and backward), so that code calling
:func:`fastalign.token_logps` compiles with ``torch.compile(fullgraph=True)``: the compiler
sees one opaque op with static output shapes; the data-dependent parts (dropping the
``ignore_index`` rows, the label range check, the tile loops) run inside it.

``fastalign::head_logps(hidden, weight, bias, labels, ...)`` returns, each ``[N]`` (empty
when not asked for): log-probs, entropies, the row max ``m`` and ``log s`` (kept for the
backward), TRL's ``log_sum_sq_probs``, ``mean_logits`` and ``is_top1``. Ignored rows give 0
(False) everywhere and no work. ``fastalign::head_logps_backward`` gives ``(dh, dw, db)``.
"""

from __future__ import annotations

import torch
from torch.library import custom_op

from fastalign._validate import check_label_values
from fastalign.logprobs import _tiling
from fastalign.logprobs._rows import row_passes
from fastalign.logprobs._tiling import (
    Transform,
    fold_head,
    grad_head,
    label_grad,
    plan,
)


def _transform(temperature: float, logit_scale: float, softcap: float) -> Transform:
    return Transform(temperature, logit_scale, softcap if softcap > 0 else None)


def _compact(hidden: torch.Tensor, labels: torch.Tensor, ignore_index: int):
    """(kept row ids or None when every row is kept, their hidden states, labels int64)."""
    keep = (labels != ignore_index).nonzero().squeeze(1)
    if keep.numel() == labels.numel():
        h = hidden if hidden.is_contiguous() else hidden.contiguous()
        return None, h, labels.long()
    return keep, hidden.index_select(0, keep), labels.index_select(0, keep).long()


def _spread(x: torch.Tensor, keep: torch.Tensor | None, n: int) -> torch.Tensor:
    """Per-kept-row values back to all ``n`` rows (0 / False at the ignored ones)."""
    if keep is None:
        return x
    return torch.zeros((n, *x.shape[1:]), dtype=x.dtype, device=x.device).index_copy(0, keep, x)


@custom_op("fastalign::head_logps", mutates_args=())
def head_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    labels: torch.Tensor,
    ignore_index: int,
    temperature: float,
    logit_scale: float,
    softcap: float,
    entropy: bool,
    stats: bool,
    chunk_rows: int,
    chunk_vocab: int,
    rows: str,
    accumulate: str,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor
]:
    del accumulate  # the backward's
    n, vocab = hidden.shape[0], weight.shape[0]
    check_label_values(labels, vocab, ignore_index)
    keep, h, y = _compact(hidden, labels, ignore_index)
    tiles = plan(
        h.shape[0], vocab, h.device, chunk_rows=chunk_rows or None, chunk_vocab=chunk_vocab or None
    )
    transform = _transform(temperature, logit_scale, softcap)
    state = fold_head(
        h, weight, bias, y, transform, tiles, row_passes(rows), entropy=entropy, stats=stats
    )
    fin = _tiling.finish(state, y, vocab)

    def out(x):  # a fresh empty tensor each: outputs may not alias each other
        return hidden.new_empty(0, dtype=fin.logp.dtype) if x is None else _spread(x, keep, n)

    top1 = torch.zeros(0, dtype=torch.bool, device=hidden.device)
    return (
        out(fin.logp),
        out(fin.ent),
        out(state.m),
        out(fin.log_s),
        out(fin.log_sum_sq_probs),
        out(fin.mean_logits),
        top1 if fin.is_top1 is None else _spread(fin.is_top1, keep, n),
    )


@head_logps.register_fake
def _(hidden, weight, bias, labels, ignore_index, temperature, logit_scale, softcap, entropy,
      stats, chunk_rows, chunk_vocab, rows, accumulate):  # fmt: skip
    n = hidden.shape[0]
    dt = _tiling.compute_dtype(hidden.dtype)

    def e(want, dtype=dt):
        return hidden.new_empty(n if want else 0, dtype=dtype)

    return e(True), e(entropy), e(True), e(True), e(stats), e(stats), e(stats, torch.bool)


@custom_op("fastalign::head_logps_backward", mutates_args=())
def head_logps_backward(
    grad_logp: torch.Tensor | None,
    grad_ent: torch.Tensor | None,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    labels: torch.Tensor,
    logp: torch.Tensor,
    ent: torch.Tensor,
    m: torch.Tensor,
    log_s: torch.Tensor,
    ignore_index: int,
    temperature: float,
    logit_scale: float,
    softcap: float,
    chunk_rows: int,
    chunk_vocab: int,
    rows: str,
    accumulate: str,
    need_h: bool,
    need_w: bool,
    need_b: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, vocab = hidden.shape[0], weight.shape[0]
    need_b = need_b and bias is not None

    def empty():  # a fresh one each: outputs may not alias each other
        return hidden.new_empty(0)

    if grad_logp is None and grad_ent is None:
        dh = torch.zeros_like(hidden) if need_h else empty()
        dw = torch.zeros_like(weight) if need_w else empty()
        db = torch.zeros_like(bias) if need_b else empty()
        return dh, dw, db
    keep, h, y = _compact(hidden, labels, ignore_index)

    def pick(x):
        return x if keep is None else x.index_select(0, keep)

    compute = m.dtype
    g_lp = pick(grad_logp.to(compute)) if grad_logp is not None else torch.zeros_like(pick(m))
    use_ent = grad_ent is not None and ent.numel() > 0
    g_ent = pick(grad_ent.to(compute)) if use_ent else None
    ent_c = pick(ent) if use_ent else None
    lp_c = pick(logp)
    lab = label_grad(lp_c, g_lp, ent_c, g_ent)
    tiles = plan(
        h.shape[0], vocab, h.device, chunk_rows=chunk_rows or None, chunk_vocab=chunk_vocab or None
    )
    dh, dw, db = grad_head(
        h,
        weight,
        bias,
        y,
        _transform(temperature, logit_scale, softcap),
        tiles,
        row_passes(rows),
        m=pick(m),
        log_s=pick(log_s),
        ent=ent_c,
        g_lp=g_lp,
        g_ent=g_ent,
        lab=lab,
        need_h=need_h,
        need_w=need_w,
        need_b=need_b,
        accumulate=accumulate,
    )
    dh = _spread(dh, keep, n) if dh is not None else empty()
    return dh, empty() if dw is None else dw, empty() if db is None else db


@head_logps_backward.register_fake
def _(grad_logp, grad_ent, hidden, weight, bias, labels, logp, ent, m, log_s, ignore_index,
      temperature, logit_scale, softcap, chunk_rows, chunk_vocab, rows, accumulate, need_h,
      need_w, need_b):  # fmt: skip
    return (
        torch.empty_like(hidden) if need_h else hidden.new_empty(0),
        torch.empty_like(weight) if need_w else hidden.new_empty(0),
        torch.empty_like(bias) if need_b and bias is not None else hidden.new_empty(0),
    )


_SETTINGS = (
    "ignore_index",
    "temperature",
    "logit_scale",
    "softcap",
    "entropy",
    "stats",
    "chunk_rows",
    "chunk_vocab",
    "rows",
    "accumulate",
)


def _setup(ctx, inputs, output):
    hidden, weight, bias, labels = inputs[:4]
    ctx.settings = dict(zip(_SETTINGS, inputs[4:], strict=True))
    logp, ent, m, log_s = output[:4]
    ctx.save_for_backward(hidden, weight, bias, labels, logp, ent, m, log_s)
    ctx.set_materialize_grads(False)  # entropy often only feeds metrics: no zero gradient


def _backward(ctx, grad_logp, grad_ent, *unused):
    hidden, weight, bias, labels, logp, ent, m, log_s = ctx.saved_tensors
    s = ctx.settings
    need_h, need_w, need_b = ctx.needs_input_grad[:3]
    dh, dw, db = head_logps_backward(
        grad_logp,
        grad_ent if s["entropy"] else None,
        hidden,
        weight,
        bias,
        labels,
        logp,
        ent,
        m,
        log_s,
        s["ignore_index"],
        s["temperature"],
        s["logit_scale"],
        s["softcap"],
        s["chunk_rows"],
        s["chunk_vocab"],
        s["rows"],
        s["accumulate"],
        need_h,
        need_w,
        bool(need_b and bias is not None),
    )
    return (
        dh if need_h else None,
        dw if need_w else None,
        db if need_b and bias is not None else None,
    ) + (None,) * (len(_SETTINGS) + 1)


head_logps.register_autograd(_backward, setup_context=_setup)
