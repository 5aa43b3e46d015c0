"""Fused-linear losses: from the policy's last hidden states and LM head straight to the
loss, without ever holding the ``[tokens, vocab]`` logits.

``FusedLinearPreferenceLoss`` computes the DPO family on the head's tiling driver
(:mod:`fastalign.logprobs._tiling`). For loss types that are separable per pair (every type
but ``aot``, ``aot_unpaired`` and ``sft``) it forms the gradient in the forward, one group of
whole pairs at a time, in three matmul passes over the unmasked tokens:

1. per row block and vocabulary slice, the logits GEMM; the row kernel folds the tile into
   the rows' statistics and keeps it as ``e = exp(z - off)`` with ``off`` the tile's row max
   (fp32): in bf16 for bf16/fp16 heads (each probability to 2^-9 relative, half the bytes of
   fp32 logits), in the compute dtype for fp32/fp64 heads;
2. the pairs' sequence log-probs (float64 sums), their loss and ``d loss / d sum`` by
   autograd on the small per-pair problem with :func:`~fastalign.losses.preference_loss`;
3. per tile, ``G = g (onehot - p)`` from ``e`` (``p = e exp((off - m) - log s)``), then the
   dX and dW GEMMs (dW accumulated as the driver's ``accumulate`` says).

``memory_budget`` bounds the kept tiles of one group (bytes; 1 GiB on CUDA, 128 MiB
elsewhere): pairs are grouped up to it; a pair larger than the budget keeps the slices that
fit and recomputes the others in the backward (one more logits GEMM each: the 4-pass cost
for those slices, never worse). Keeping a tile costs a write and a read of 2 bytes per
logit (bf16) against ``2 H`` FLOPs to recompute it: from an H100's peak numbers (~3.3 TB/s,
~990 TFLOP/s dense bf16) keeping should win above H ~ 600, i.e. for every real head (an
estimate: the device run, ``benches/gpu_head.py``, has not measured it yet); below it the
budget can be set to 1 to recompute everything.

The other loss types run as the composition ``token_logps -> sums -> preference_loss``
(recompute backward: four passes), as does ``backend="reference"``. Either way the result
equals the materialized computation.

``FusedLinearGRPOLoss`` and ``FusedLinearKTOLoss`` take the same three passes over the whole
batch (their losses are functions of the token log-probs given detached side inputs):
the batch's tiles are kept up to ``memory_budget`` and the rest recomputed.
"""

from __future__ import annotations

from typing import Any

import torch

from fastalign import _backend
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.logprobs import _tiling
from fastalign.logprobs._rows import row_passes
from fastalign.losses._common import LossOutput
from fastalign.losses.preference import PREFERENCE_LOSS_TYPES, preference_loss

__all__ = ["FusedLinearGRPOLoss", "FusedLinearKTOLoss", "FusedLinearPreferenceLoss"]

_NOT_SEPARABLE = {"aot", "aot_unpaired", "sft"}


def _sequence_sums(values: torch.Tensor, seq: torch.Tensor, n_seq: int) -> torch.Tensor:
    """Per-sequence sums of per-token values in float64 (one add per token), kept in float64.

    A float32 ``index_add_`` adds one token at a time into a running sum: over T tokens of
    log-prob ~ -10 its rounding grows like sqrt(T) ulps of the sum (17x the error of the
    materialized path on 448-token sequences). Even one rounding of a sum of ~-4000 to float32
    is 2.4e-4, which the pair loss sees (beta times it); the sums and the small pair-loss
    problem stay in float64, so only the per-token errors remain.
    """
    acc = torch.zeros(n_seq, dtype=torch.float64, device=values.device)
    return acc.index_add_(0, seq, values.double())


def _scaled_grads(ctx, grad_loss):
    """The backward of a loss whose gradients were formed in its forward: those gradients
    (saved as ``dh, dw, db``) times the upstream gradient of the loss."""
    dh, dw, db = ctx.saved_tensors
    need_h, need_w, need_b = ctx.flags
    out_dtypes = ctx.out_dtypes

    def scaled(g, dtype):
        # in the saved (wide) dtype, then rounded once: an fp16 GradScaler's 2^16 would
        # overflow in fp16, and fp16 gradients formed before the scale would flush
        g = g.to(_wide(g.dtype))
        return (g * grad_loss.to(g.dtype)).to(dtype)

    return (
        scaled(dh, out_dtypes[0]) if need_h else None,
        scaled(dw, out_dtypes[1]) if need_w else None,
        scaled(db, out_dtypes[2]) if need_b else None,
        None,
    )


def _grad_dtypes(hidden, weight, bias) -> tuple[torch.dtype, torch.dtype, torch.dtype | None]:
    return hidden.dtype, weight.dtype, None if bias is None else bias.dtype


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss-in-forward gradient is kept in until the loss's upstream gradient
    scales it: fp32 for fp16 (narrow range: loss scaling), the dtype itself otherwise."""
    return torch.float32 if dtype == torch.float16 else dtype


def _in_dtype(out: LossOutput, dtype: torch.dtype) -> LossOutput:
    """``out`` with its floating-point loss, losses and metrics in ``dtype``."""

    def cast(v):
        return v.to(dtype) if v.is_floating_point() else v

    return LossOutput(cast(out.loss), cast(out.losses),
                      {k: cast(v) for k, v in out.metrics.items()})  # fmt: skip


def _pair_groups(
    counts: list[int], batch: int, rows_budget: int, tok_seq: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Whole pairs grouped so that a group's scored tokens fit ``rows_budget`` (a larger
    pair forms a group of its own): ``(pair ids, token positions)`` per group, for tokens
    of sequences ``tok_seq`` (chosen ``i``, rejected ``batch + i``; ``counts`` per sequence)."""
    groups, cur, cur_tok = [], [], 0
    for i in range(batch):
        n_i = counts[i] + counts[batch + i]
        if cur and cur_tok + n_i > rows_budget:
            groups.append(cur)
            cur, cur_tok = [], 0
        cur.append(i)
        cur_tok += n_i
    if cur:
        groups.append(cur)
    pos = torch.arange(tok_seq.numel(), device=tok_seq.device)
    out = []
    for g in groups:
        pairs = torch.tensor(g, device=tok_seq.device)
        in_group = torch.isin(tok_seq, torch.cat([pairs, pairs + batch]))
        out.append((pairs, pos[in_group]))
    return out


class _PairwiseFused(torch.autograd.Function):
    """Loss value and its gradients in one sweep over pair groups (see the module doc)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, meta):  # type: ignore[override]
        tok_h, tok_y, tok_seq = meta["tok_h"], meta["tok_y"], meta["tok_seq"]
        groups, n_seq, batch = meta["groups"], meta["n_seq"], meta["batch"]
        loss_fn, transform, rows_of = meta["loss_fn"], meta["transform"], meta["rows_of"]
        rows, budget, accumulate = meta["rows"], meta["memory_budget"], meta["accumulate"]
        compute = _tiling.compute_dtype(hidden.dtype)
        vocab = weight.shape[0]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        dh = torch.zeros_like(hidden, dtype=_wide(hidden.dtype)) if need_h else None
        dh_flat = dh.view(-1, hidden.shape[-1]) if need_h else None
        dw = None
        if need_w:
            wide = (accumulate == "fp32" and weight.dtype != compute) or (
                weight.dtype == torch.float16
            )
            dw = torch.zeros(
                weight.shape, dtype=compute if wide else weight.dtype, device=weight.device
            )
        db = torch.zeros(vocab, dtype=compute, device=weight.device) if need_b else None
        seq_logps = torch.zeros(n_seq, dtype=compute, device=hidden.device)
        # the per-pair problem (sums, losses, d loss / d sum) in float64: [B]-sized
        losses = torch.zeros(batch, dtype=torch.float64, device=hidden.device)
        # optional: per-token weights of the sequence sums (LD-DPO), per-token metric
        # statistics from the forward fold (TRL's logging), WPO's detached pair weights
        tok_w = meta.get("token_weights")
        want_stats = meta.get("stats", False) or meta.get("wpo", False)
        n_tok = tok_y.numel()
        stats = {}
        if want_stats:
            stats = {k: torch.zeros(n_tok, dtype=compute, device=hidden.device)
                     for k in ("logps", "entropy", "log_sum_sq_probs", "mean_logits")}  # fmt: skip
            stats["is_top1"] = torch.zeros(n_tok, dtype=torch.bool, device=hidden.device)
        h_all, w, b, _ = _tiling.upcast_operands(tok_h, weight, bias)
        for pairs, idx in groups:
            m = int(idx.numel())
            h = h_all.index_select(0, idx)
            y = tok_y.index_select(0, idx)
            seq = tok_seq.index_select(0, idx)
            tiles = _tiling.plan(m, vocab, h.device, chunk_rows=meta["chunk_rows"],
                                 chunk_vocab=meta["chunk_vocab"])  # fmt: skip
            store = _tiling.Store.empty(m, vocab, tiles, tok_h.dtype, h.device, budget)
            state = _tiling.fold_head(h, w, b, y, transform, tiles, rows, entropy=want_stats,
                                      stats=want_stats, store=store)  # fmt: skip
            fin = _tiling.finish(state, y, vocab)
            if want_stats:
                found = {
                    "logps": fin.logp,
                    "entropy": fin.ent,
                    "is_top1": fin.is_top1,
                    "log_sum_sq_probs": fin.log_sum_sq_probs,
                    "mean_logits": fin.mean_logits,
                }
                for k, value in found.items():
                    stats[k].index_copy_(0, idx, value.detach())
            # the pairs' losses and d(loss)/d(sequence log-prob), by autograd on [pairs]
            seqs = torch.cat([pairs, pairs + batch])
            wt = None if tok_w is None else tok_w.index_select(0, idx).double()
            contrib = fin.logp if wt is None else fin.logp.double() * wt
            s = _sequence_sums(contrib, seq, n_seq)[seqs].detach().requires_grad_(True)
            seq_logps[seqs] = s.detach().to(compute)
            k = pairs.numel()
            with torch.enable_grad():
                out = loss_fn(s[:k], s[k:], pairs)
                if meta.get("wpo", False):  # WPO: exp(mean(log p - log sum p^2)), detached
                    lens = torch.zeros(n_seq, dtype=torch.float64, device=hidden.device)
                    lens.index_add_(0, seq, torch.ones_like(seq, dtype=torch.float64))
                    aligned = _sequence_sums(fin.logp - fin.log_sum_sq_probs, seq, n_seq)
                    pw = torch.exp(aligned[seqs] / lens[seqs].clamp_min(1))
                    out = out * (pw[:k] * pw[k:])
                (ds,) = torch.autograd.grad(out.sum() / batch, s)
            losses[pairs] = out.detach()
            if not (need_h or need_w or need_b):
                continue
            g_seq = torch.zeros(n_seq, dtype=torch.float64, device=hidden.device)
            g_seq[seqs] = ds
            g = g_seq.index_select(0, seq)
            g = (g if wt is None else g * wt).to(compute)
            dh_g, dw, db_g = _tiling.grad_head(
                h, w, b, y, transform, tiles, rows, m=state.m, log_s=fin.log_s, ent=None,
                g_lp=g, g_ent=None, lab=_tiling.label_grad(fin.logp, g), need_h=need_h,
                need_w=need_w, need_b=need_b, accumulate=accumulate,
                dh_dtype=_wide(hidden.dtype), store=store, t=state.t, dw_into=dw,
            )  # fmt: skip
            del store
            if need_h:
                dh_flat.index_copy_(0, rows_of.index_select(0, idx), dh_g)
            if need_b:
                db += db_g.to(compute)
        ctx.save_for_backward(
            dh if dh is not None else torch.empty(0),
            dw.to(_wide(weight.dtype)) if dw is not None else torch.empty(0),
            db.to(_wide(bias.dtype)) if db is not None else torch.empty(0),
        )
        ctx.flags = (need_h, need_w, need_b)
        ctx.out_dtypes = _grad_dtypes(hidden, weight, bias)
        loss = (losses.sum() / batch).to(compute)
        losses = losses.to(compute)
        meta["stats_out"] = stats
        ctx.mark_non_differentiable(losses, seq_logps)
        return loss, losses, seq_logps

    @staticmethod
    def backward(ctx, grad_loss, _grad_losses=None, _grad_seq=None):  # type: ignore[override]
        return _scaled_grads(ctx, grad_loss)


class _TokenLossFused(torch.autograd.Function):
    """A loss that is a function of the per-token log-probs ``[B, T]`` only (given detached
    side inputs: advantages, old / reference log-probs, a KL point), with its gradient formed
    in the forward on the driver: fold (keeping the tiles the budget holds, see
    :class:`~fastalign.logprobs._tiling.Store`), the loss and ``d loss / d logp`` by autograd
    on ``[B, T]``, then the stored backward (recomputing the tiles not kept). The loss's
    other outputs (per-example losses, metrics) go to ``meta["out"]``, detached."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, meta):  # type: ignore[override]
        labels, loss_fn, transform, rows = (
            meta["labels"],
            meta["loss_fn"],
            meta["transform"],
            meta["rows"],
        )
        b_, t_, h_dim = hidden.shape
        vocab = weight.shape[0]
        compute = _tiling.compute_dtype(hidden.dtype)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        keep = (labels.reshape(-1) != meta["ignore_index"]).nonzero().squeeze(1)
        y = labels.reshape(-1).index_select(0, keep).long()
        h, w, b, _ = _tiling.upcast_operands(
            hidden.detach().reshape(-1, h_dim).index_select(0, keep), weight.detach(),
            None if bias is None else bias.detach(),
        )  # fmt: skip
        n = int(keep.numel())
        tiles = _tiling.plan(n, vocab, h.device, chunk_rows=meta["chunk_rows"],
                             chunk_vocab=meta["chunk_vocab"])  # fmt: skip
        store = _tiling.Store.empty(n, vocab, tiles, hidden.dtype, h.device, meta["memory_budget"])
        want_ent = meta["entropy"]
        state = _tiling.fold_head(
            h, w, b, y, transform, tiles, rows, entropy=want_ent, stats=False, store=store
        )
        fin = _tiling.finish(state, y, vocab)

        def scatter(v: torch.Tensor) -> torch.Tensor:
            flat = torch.zeros(b_ * t_, dtype=compute, device=hidden.device)
            return flat.index_copy_(0, keep, v.detach()).view(b_, t_)

        lp = scatter(fin.logp).requires_grad_(True)
        ent = scatter(fin.ent) if want_ent else None
        with torch.enable_grad():
            out = loss_fn(lp, ent)
            (g_lp,) = torch.autograd.grad(out.loss, lp, allow_unused=True, materialize_grads=True)
        meta["out"] = LossOutput(
            out.loss.detach(), out.losses.detach(), {k: v.detach() for k, v in out.metrics.items()}
        )
        dh = dw = db = None
        if need_h or need_w or need_b:
            g = g_lp.reshape(-1).index_select(0, keep).to(compute)
            dh_tok, dw, db = _tiling.grad_head(
                h, w, b, y, transform, tiles, rows, m=state.m, log_s=fin.log_s, ent=None,
                g_lp=g, g_ent=None, lab=_tiling.label_grad(fin.logp, g), need_h=need_h,
                need_w=need_w, need_b=need_b, accumulate=meta["accumulate"],
                dh_dtype=_wide(hidden.dtype), store=store, t=state.t,
                dw_into=torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
                if need_w and weight.dtype == torch.float16 else None,
            )  # fmt: skip
            if need_h:
                dh = torch.zeros_like(hidden, dtype=_wide(hidden.dtype))
                dh.view(-1, h_dim).index_copy_(0, keep, dh_tok)
        del store
        ctx.save_for_backward(
            dh if dh is not None else torch.empty(0),
            dw if dw is not None else torch.empty(0),
            db if db is not None else torch.empty(0),
        )
        ctx.flags = (need_h, need_w, need_b)
        ctx.out_dtypes = _grad_dtypes(hidden, weight, bias)
        return out.loss.detach().to(compute)

    @staticmethod
    def backward(ctx, grad_loss):  # type: ignore[override]
        return _scaled_grads(ctx, grad_loss)


class _FusedLinearBase(torch.nn.Module):
    """Shared option handling of the fused-linear modules, and their one fused path."""

    def __init__(
        self,
        *,
        ignore_index: int,
        temperature: float,
        logit_scale: float,
        softcap: float | None,
        backend: str = "auto",
        memory_budget: int | None = None,
        chunk_rows: int | None = None,
        chunk_vocab: int | None = None,
        accumulate: str = "output",
    ) -> None:
        super().__init__()
        from fastalign._validate import check_count
        from fastalign.logprobs._api import HeadOptions  # the checks of token_logps

        self.head = HeadOptions(
            temperature=temperature, logit_scale=logit_scale, softcap=softcap,
            ignore_index=ignore_index, backend=backend, chunk_rows=chunk_rows,
            chunk_vocab=chunk_vocab, accumulate=accumulate,
        ).checked()  # fmt: skip
        self.memory_budget = check_count(memory_budget, "memory_budget")

    @property
    def ignore_index(self) -> int:
        return self.head.ignore_index

    @property
    def backend(self) -> str:
        return self.head.backend

    @property
    def transform(self) -> _tiling.Transform:
        h = self.head
        return _tiling.Transform(h.temperature, h.logit_scale, h.softcap)

    def _opts(self) -> dict[str, Any]:
        h = self.head
        return dict(
            temperature=h.temperature,
            logit_scale=h.logit_scale,
            softcap=h.softcap,
            ignore_index=h.ignore_index,
            backend=h.backend,
        )

    def _rows(self, hidden: torch.Tensor) -> Any:
        """The row passes of the backend these inputs resolve to (None: ``"reference"``,
        the materialized composition)."""
        which = _backend.resolve(
            self.backend, hidden.device.type, triton_ok=hidden.dtype != torch.float64
        )
        return None if which == "reference" else row_passes(which)

    def _logps(self, hidden, weight, labels, bias, reduction, entropy=False):
        from fastalign.logprobs import sequence_logps

        return sequence_logps(
            hidden, weight, labels, bias=bias, reduction=reduction, return_entropy=entropy,
            **self._opts(),
        )  # fmt: skip

    def _fused(self, hidden, weight, labels, bias, loss_fn, entropy=False) -> LossOutput:
        """``loss_fn(token log-probs [B, T], entropies [B, T] or None)`` with its gradient
        formed in the forward (:class:`_TokenLossFused`); without gradients, or with
        ``backend="reference"``, the plain composition. The entropies (computed only when
        ``entropy``) are detached: a mask or a metric, not a term of the loss."""
        if not isinstance(hidden, torch.Tensor) or hidden.ndim != 3:
            raise ShapeError("hidden must be a [B, T, H] tensor")
        rows = self._rows(hidden)
        wants = any(x is not None and x.requires_grad for x in (hidden, weight, bias))
        if rows is None or not torch.is_grad_enabled() or not wants:
            got = self._logps(hidden, weight, labels, bias, "none", entropy=entropy)
            lp, ent = got if entropy else (got, None)
            out = loss_fn(lp, None if ent is None else ent.detach())
            return _in_dtype(out, _tiling.compute_dtype(hidden.dtype))
        from fastalign._validate import check_head, check_labels

        check_head(hidden.reshape(-1, hidden.shape[-1]), weight, labels.reshape(-1), bias)
        check_labels(labels, weight.shape[0], self.ignore_index)
        meta = dict(
            labels=labels, loss_fn=loss_fn, transform=self.transform, rows=rows,
            ignore_index=self.ignore_index,
            memory_budget=_tiling.store_budget(hidden.device, self.memory_budget),
            chunk_rows=self.head.chunk_rows, chunk_vocab=self.head.chunk_vocab,
            accumulate=self.head.accumulate, entropy=bool(entropy),
        )  # fmt: skip
        loss = _TokenLossFused.apply(hidden, weight, bias, meta)
        out = meta["out"]
        return LossOutput(loss, *_in_dtype(out, loss.dtype)[1:])

    def _ref(self, given, ref_hidden, ref_weight, ref_bias, labels, reduction, what):
        if given is not None:
            return given.detach()
        if ref_hidden is None or ref_weight is None:
            raise InvalidInputError(f"pass {what}, or ref_hidden and ref_weight")
        with torch.no_grad():
            return self._logps(ref_hidden, ref_weight, labels, ref_bias, reduction)


class FusedLinearPreferenceLoss(_FusedLinearBase):
    """DPO-family loss straight from hidden states and the LM head (no ``[N, V]`` logits).

    Args:
        loss_type, beta, **preference_options: as :func:`~fastalign.losses.preference_loss`
            (``label_smoothing``, ``f_divergence``, ``loss_weights``...).
        ignore_index: label of prompt and padding positions.
        temperature, logit_scale, softcap: the logit transform of
            :func:`fastalign.token_logps`.
        backend: ``"auto"`` (Triton row kernels on CUDA, torch row passes elsewhere),
            ``"triton"``, ``"torch"``, or ``"reference"`` (the materialized composition).
            Reference log-probs computed here use it too.
        memory_budget: bytes of the exp-scaled logits kept between the forward and the
            backward of one group of pairs (default 1 GiB on CUDA, 128 MiB elsewhere). Whole
            pairs are grouped up to it; a pair larger than it keeps as many vocabulary slices
            as fit and recomputes the others in the backward (see the module doc).
        chunk_rows, chunk_vocab: the driver's tiles (tokens x vocabulary columns), as
            :func:`fastalign.token_logps`.
        accumulate: dW accumulation, ``"output"`` or ``"fp32"``, as
            :func:`fastalign.token_logps`.

    ``forward(hidden [2B, T, H], weight [V, H], labels [2B, T], ref_chosen_logps=None,
    ref_rejected_logps=None, *, bias=None, ref_hidden=None, ref_weight=None, ref_bias=None)``:
    chosen rows first, then rejected rows (TRL's concatenated layout); labels aligned with
    hidden (label t scored from hidden t). Reference log-probs are either given (``[B]`` each)
    or computed from ``ref_hidden`` / ``ref_weight`` without gradient. Returns
    :class:`LossOutput`; backpropagate through ``loss`` (``losses`` and ``metrics`` are
    detached).

    Example:
        >>> import torch
        >>> from fastalign.losses import FusedLinearPreferenceLoss
        >>> h = torch.randn(4, 6, 8, requires_grad=True); w = torch.randn(50, 8)
        >>> y = torch.randint(0, 50, (4, 6)); y[:, :2] = -100
        >>> out = FusedLinearPreferenceLoss(beta=0.1)(h, w, y, torch.zeros(2), torch.zeros(2))
        >>> out.loss.backward(); h.grad.shape
        torch.Size([4, 6, 8])
    """

    def __init__(
        self,
        loss_type: str | list[str] = "sigmoid",
        beta: float = 0.1,
        *,
        ignore_index: int = -100,
        temperature: float = 1.0,
        logit_scale: float = 1.0,
        softcap: float | None = None,
        backend: str = "auto",
        memory_budget: int | None = None,
        chunk_rows: int | None = None,
        chunk_vocab: int | None = None,
        accumulate: str = "output",
        **preference_options: Any,
    ) -> None:
        super().__init__(
            ignore_index=ignore_index,
            temperature=temperature,
            logit_scale=logit_scale,
            softcap=softcap,
            backend=backend,
            memory_budget=memory_budget,
            chunk_rows=chunk_rows,
            chunk_vocab=chunk_vocab,
            accumulate=accumulate,
        )
        types_ = [loss_type] if isinstance(loss_type, str) else list(loss_type)
        for t in types_:
            if t not in PREFERENCE_LOSS_TYPES:
                raise InvalidInputError(f"unknown loss_type {t!r}")
        self.loss_type = loss_type
        self.beta = beta
        self.preference_options = preference_options
        self.separable = not (set(types_) & _NOT_SEPARABLE)

    def extra_repr(self) -> str:
        return f"loss_type={self.loss_type!r}, beta={self.beta}"

    def _check(self, hidden, weight, labels):
        if not isinstance(hidden, torch.Tensor) or hidden.ndim != 3:
            raise ShapeError("hidden must be a [2B, T, H] tensor")
        if hidden.shape[0] % 2:
            raise ShapeError(f"hidden has {hidden.shape[0]} rows: need chosen then rejected (2B)")
        if not isinstance(labels, torch.Tensor) or labels.shape != hidden.shape[:2]:
            raise ShapeError(
                f"labels must be {list(hidden.shape[:2])}, got "
                f"{None if not isinstance(labels, torch.Tensor) else list(labels.shape)}"
            )
        if weight.ndim != 2 or weight.shape[1] != hidden.shape[2]:
            raise ShapeError(f"weight must be [V, {hidden.shape[2]}], got {list(weight.shape)}")
        if hidden.dtype != weight.dtype:
            raise TypeError(
                f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share a dtype"
            )

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        labels: torch.Tensor,
        ref_chosen_logps: torch.Tensor | None = None,
        ref_rejected_logps: torch.Tensor | None = None,
        *,
        bias: torch.Tensor | None = None,
        ref_hidden: torch.Tensor | None = None,
        ref_weight: torch.Tensor | None = None,
        ref_bias: torch.Tensor | None = None,
    ) -> LossOutput:
        from fastalign._validate import check_labels
        from fastalign.logprobs import sequence_logps

        self._check(hidden, weight, labels)
        two_b, t, h_dim = hidden.shape
        batch = two_b // 2
        vocab = weight.shape[0]
        check_labels(labels, vocab, self.ignore_index)
        opts = self._opts()
        if ref_chosen_logps is None or ref_rejected_logps is None:
            if ref_hidden is None or ref_weight is None:
                raise InvalidInputError(
                    "pass ref_chosen_logps and ref_rejected_logps, or ref_hidden and ref_weight"
                )
            with torch.no_grad():
                ref_tok = sequence_logps(
                    ref_hidden, ref_weight, labels, bias=ref_bias, reduction="none", **opts
                )
            ref = ref_tok.double().sum(1)
            ref_chosen_logps, ref_rejected_logps = ref[:batch], ref[batch:]
        mask = labels != self.ignore_index
        lengths = mask.sum(1)
        kw = dict(
            loss_type=self.loss_type,
            beta=self.beta,
            chosen_lengths=lengths[:batch],
            rejected_lengths=lengths[batch:],
            **self.preference_options,
        )
        compute = _tiling.compute_dtype(hidden.dtype)
        # sequence sums and the pair losses in float64 on every path (see _sequence_sums);
        # the results in the compute dtype
        ref_w = ref_chosen_logps.detach().double()
        ref_l = ref_rejected_logps.detach().double()

        def result(out: Any) -> LossOutput:
            metrics = {k: v.to(compute) for k, v in out.metrics.items()}
            return LossOutput(out.loss.to(compute), out.losses.detach().to(compute), metrics)

        rows = self._rows(hidden)
        if not self.separable or not torch.is_grad_enabled() or rows is None:
            seq = sequence_logps(hidden, weight, labels, bias=bias, reduction="none", **opts)
            seq = seq.double().sum(1)
            return result(preference_loss(seq[:batch], seq[batch:], ref_w, ref_l, **kw))

        keep = mask.reshape(-1).nonzero().squeeze(1)
        flat_h = hidden.detach().reshape(two_b * t, h_dim)
        tok_h = flat_h.index_select(0, keep)
        tok_y = labels.reshape(-1).index_select(0, keep).long()
        tok_seq = keep // t
        budget = _tiling.store_budget(hidden.device, self.memory_budget)
        rows_budget = _tiling.store_rows(vocab, budget, hidden.dtype)
        group_idx = _pair_groups(lengths.tolist(), batch, rows_budget, tok_seq)

        lw_all, ll_all = kw.pop("chosen_lengths"), kw.pop("rejected_lengths")

        def loss_fn(s_w, s_l, pairs):
            return preference_loss(
                s_w,
                s_l,
                ref_w[pairs],
                ref_l[pairs],
                chosen_lengths=lw_all[pairs],
                rejected_lengths=ll_all[pairs],
                **kw,
            ).losses

        meta = dict(
            tok_h=tok_h,
            tok_y=tok_y,
            tok_seq=tok_seq,
            groups=group_idx,
            n_seq=two_b,
            batch=batch,
            loss_fn=loss_fn,
            transform=self.transform,
            rows_of=keep,
            rows=rows,
            memory_budget=budget,
            chunk_rows=self.head.chunk_rows,
            chunk_vocab=self.head.chunk_vocab,
            accumulate=self.head.accumulate,
        )
        loss, losses, seq_logps = _PairwiseFused.apply(hidden, weight, bias, meta)
        seq64 = seq_logps.double()
        metrics = preference_loss(
            seq64[:batch],
            seq64[batch:],
            ref_w,
            ref_l,
            chosen_lengths=lw_all,
            rejected_lengths=ll_all,
            **kw,
        ).metrics
        return LossOutput(loss, losses, {k: v.to(compute) for k, v in metrics.items()})


class FusedLinearGRPOLoss(_FusedLinearBase):
    """GRPO-family loss (:func:`~fastalign.losses.grpo_loss`) from hidden states and the LM
    head: per-token log-probs through :func:`fastalign.token_logps` (no ``[N, V]`` logits;
    prompt and padding positions, ``labels == ignore_index``, are skipped before any matmul).

    ``forward(hidden [B, T, H], weight [V, H], labels [B, T], advantages [B],
    old_logps=None [B, T], ref_logps=None [B, T], *, bias=None, ref_hidden=None,
    ref_weight=None, ref_bias=None, num_items_in_batch=None, sampling_logps=None)``; the
    completion mask is ``labels != ignore_index``; reference log-probs (needed when
    ``beta > 0``) are given or computed from ``ref_hidden`` / ``ref_weight`` without
    gradient. Every option of :func:`~fastalign.losses.grpo_loss` is a keyword of the
    constructor (``loss_type``, ``epsilon_high``, ``top_entropy_quantile``,
    ``sampling_correction``...); the per-token entropies that ``top_entropy_quantile < 1``
    needs come from the same fold as the log-probs (``log_entropy=True`` computes them for
    the ``entropy`` metric alone).

    With gradients, the loss's gradient is formed in the forward on the tiling driver (three
    matmul passes when ``memory_budget`` holds the batch's kept tiles, bf16 ``exp(z - off)``
    for bf16/fp16 heads; the slices past it are recomputed: see
    :class:`FusedLinearPreferenceLoss`). ``backend``, ``memory_budget``, ``chunk_rows``,
    ``chunk_vocab``, ``accumulate``: as :class:`FusedLinearPreferenceLoss`.
    """

    def __init__(
        self,
        loss_type: str = "grpo",
        beta: float = 0.0,
        *,
        ignore_index: int = -100,
        temperature: float = 1.0,
        logit_scale: float = 1.0,
        softcap: float | None = None,
        backend: str = "auto",
        memory_budget: int | None = None,
        chunk_rows: int | None = None,
        chunk_vocab: int | None = None,
        accumulate: str = "output",
        log_entropy: bool = False,
        **grpo_options: Any,
    ) -> None:
        super().__init__(
            ignore_index=ignore_index,
            temperature=temperature,
            logit_scale=logit_scale,
            softcap=softcap,
            backend=backend,
            memory_budget=memory_budget,
            chunk_rows=chunk_rows,
            chunk_vocab=chunk_vocab,
            accumulate=accumulate,
        )
        self.loss_type, self.beta, self.grpo_options = loss_type, beta, grpo_options
        for name in ("entropies", "sampling_logps", "num_items_in_batch"):
            if name in grpo_options:
                raise InvalidInputError(f"{name} is an argument of forward, not an option")
        from fastalign._validate import check_bool, check_range

        top = check_range(grpo_options.get("top_entropy_quantile", 1.0), "top_entropy_quantile",
                          0.0, 1.0, hi_open=False)  # fmt: skip
        self.entropy = check_bool(log_entropy, "log_entropy") or top < 1.0

    def forward(
        self,
        hidden,
        weight,
        labels,
        advantages,
        old_logps=None,
        ref_logps=None,
        *,
        bias=None,
        ref_hidden=None,
        ref_weight=None,
        ref_bias=None,
        num_items_in_batch=None,
        sampling_logps=None,
    ) -> LossOutput:
        from fastalign.losses.grpo import grpo_loss

        if self.beta > 0:
            ref_logps = self._ref(
                ref_logps, ref_hidden, ref_weight, ref_bias, labels, "none", "ref_logps"
            )
        mask = labels != self.ignore_index

        def loss_fn(logps, entropies):
            return grpo_loss(
                logps,
                old_logps,
                advantages,
                mask,
                ref_logps=ref_logps,
                beta=self.beta,
                loss_type=self.loss_type,
                num_items_in_batch=num_items_in_batch,
                entropies=entropies,
                sampling_logps=sampling_logps,
                **self.grpo_options,
            )

        return self._fused(hidden, weight, labels, bias, loss_fn, entropy=self.entropy)


class FusedLinearKTOLoss(_FusedLinearBase):
    """KTO (:func:`~fastalign.losses.kto`) from hidden states and the LM head.

    ``forward(hidden [B, T, H], weight, labels [B, T], desirable [B], ref_logps=None [B], *,
    z0=None, kl_hidden=None [M, T', H], kl_labels=None [M, T'], kl_ref_logps=None [M],
    bias=None, ref_hidden=None, ref_weight=None, ref_bias=None)``. The reference point is
    ``z0``, or comes from the mismatched sequences ``kl_hidden`` / ``kl_labels`` (policy,
    without gradient, as TRL) and their reference log-probs ``kl_ref_logps``. The fused path
    and its options as :class:`FusedLinearGRPOLoss`; the sequence sums and the KTO problem
    in float64.
    """

    def __init__(
        self,
        beta: float = 0.1,
        *,
        desirable_weight: float = 1.0,
        undesirable_weight: float = 1.0,
        loss_type: str = "kto",
        ignore_index: int = -100,
        temperature: float = 1.0,
        logit_scale: float = 1.0,
        softcap: float | None = None,
        backend: str = "auto",
        memory_budget: int | None = None,
        chunk_rows: int | None = None,
        chunk_vocab: int | None = None,
        accumulate: str = "output",
    ) -> None:
        super().__init__(
            ignore_index=ignore_index,
            temperature=temperature,
            logit_scale=logit_scale,
            softcap=softcap,
            backend=backend,
            memory_budget=memory_budget,
            chunk_rows=chunk_rows,
            chunk_vocab=chunk_vocab,
            accumulate=accumulate,
        )
        self.kto_options = dict(
            beta=beta,
            desirable_weight=desirable_weight,
            undesirable_weight=undesirable_weight,
            loss_type=loss_type,
        )

    def forward(
        self,
        hidden,
        weight,
        labels,
        desirable,
        ref_logps=None,
        *,
        z0=None,
        kl_hidden=None,
        kl_labels=None,
        kl_ref_logps=None,
        bias=None,
        ref_hidden=None,
        ref_weight=None,
        ref_bias=None,
    ) -> LossOutput:
        from fastalign.losses.kto import kto

        ref = self._ref(ref_logps, ref_hidden, ref_weight, ref_bias, labels, "sum", "ref_logps")
        kl_policy = None
        if z0 is None and self.kto_options["loss_type"] == "kto":
            if kl_hidden is None or kl_labels is None or kl_ref_logps is None:
                raise InvalidInputError(
                    "pass z0, or kl_hidden, kl_labels and kl_ref_logps (mismatched pairs)"
                )
            with torch.no_grad():
                kl_policy = self._logps(kl_hidden, weight, kl_labels, bias, "sum")

        def loss_fn(logps, _entropies):
            # the sequence sums and the small KTO problem in float64 (see _sequence_sums)
            return kto(
                logps.double().sum(1),
                ref.double(),
                desirable,
                kl_policy_logps=None if kl_policy is None else kl_policy.double(),
                kl_ref_logps=None if kl_ref_logps is None else kl_ref_logps.double(),
                z0=z0,
                **self.kto_options,
            )

        return self._fused(hidden, weight, labels, bias, loss_fn)
