"""Fused-linear losses: from the policy's last hidden states and LM head straight to the
loss, without ever holding the ``[tokens, vocab]`` logits.

``FusedLinearPreferenceLoss`` computes the DPO family. For loss types that are separable per
pair (every type but ``aot``, ``aot_unpaired`` and ``sft``), it forms the gradient during the
forward pass, one group of pairs at a time: the group's logits are computed once (into a
bounded buffer), reduced to the pairs' sequence log-probs, the pairs' loss gradient is taken
with :func:`~fastalign.losses.preference_loss` itself (autograd on the small per-pair
problem), and the same buffer is turned into ``dL/dlogits`` for ``dX = G W`` and
``dW += G^T X``: three matmul passes over the unmasked tokens and no recompute. The other
loss types run as the composition ``token_logps -> sums -> preference_loss`` (recompute
backward: four passes). Either way the result equals the materialized computation.
"""

from __future__ import annotations

from typing import Any

import torch

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.logprobs._tiling import chunk_rows_for, label_grad, logits_tile
from fastalign.losses._common import LossOutput
from fastalign.losses.preference import PREFERENCE_LOSS_TYPES, preference_loss

__all__ = ["FusedLinearGRPOLoss", "FusedLinearKTOLoss", "FusedLinearPreferenceLoss"]

_NOT_SEPARABLE = {"aot", "aot_unpaired", "sft"}
_CHUNK_BYTES = 128 * 2**20


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


class _PairwiseFused(torch.autograd.Function):
    """Loss value and its gradients in one pass over pair groups (see the module doc)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, meta):  # type: ignore[override]
        tok_h, tok_y, tok_seq, groups, n_seq, batch = (
            meta["tok_h"],
            meta["tok_y"],
            meta["tok_seq"],
            meta["groups"],
            meta["n_seq"],
            meta["batch"],
        )
        loss_fn, transform, rows_of = meta["loss_fn"], meta["transform"], meta["rows_of"]
        compute = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        vocab = weight.shape[0]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        dh = torch.zeros_like(hidden) if need_h else None
        dw = torch.zeros(weight.shape, dtype=compute, device=weight.device) if need_w else None
        db = torch.zeros(vocab, dtype=compute, device=weight.device) if need_b else None
        seq_logps = torch.zeros(n_seq, dtype=compute, device=hidden.device)
        # the per-pair problem (sums, losses, d loss / d sum) in float64: [B]-sized
        losses = torch.zeros(batch, dtype=torch.float64, device=hidden.device)
        max_tokens = max((int(idx.numel()) for _, idx in groups), default=0)
        buf = torch.empty(max(max_tokens, 1), vocab, dtype=compute, device=hidden.device)
        zbuf = torch.empty_like(buf) if transform.softcap is not None else None
        for pairs, idx in groups:
            m = int(idx.numel())
            h = tok_h.index_select(0, idx)
            y = tok_y.index_select(0, idx)
            seq = tok_seq.index_select(0, idx)
            rows = rows_of.index_select(0, idx)
            z = logits_tile(h, weight, buf[:m])
            if bias is not None:
                z.add_(bias)
            transform.apply_(z)
            if zbuf is not None:
                zbuf[:m].copy_(z)
            zmax = z.amax(dim=1, keepdim=True)
            z.sub_(zmax)
            target = z.gather(1, y[:, None]).squeeze(1)
            sum_exp = z.exp_().sum(1)  # z now holds exp(z - max): softmax * sum_exp
            logp = target - sum_exp.log()
            # the pairs' losses and d(loss)/d(sequence log-prob), by autograd on [pairs]
            seqs = torch.cat([pairs, pairs + batch])
            s = _sequence_sums(logp, seq, n_seq)[seqs].detach().requires_grad_(True)
            seq_logps[seqs] = s.detach().to(compute)
            k = pairs.numel()
            with torch.enable_grad():
                out = loss_fn(s[:k], s[k:], pairs)
                (ds,) = torch.autograd.grad(out.sum() / batch, s)
            losses[pairs] = out.detach()
            g_seq = torch.zeros(n_seq, dtype=torch.float64, device=hidden.device)
            g_seq[seqs] = ds
            g = g_seq.index_select(0, seq).to(compute)
            # dL/dz = g (onehot - softmax), with softmax = exp(z - max) / sum_exp: one pass
            grad = z.mul_((-g / sum_exp)[:, None])
            # the label's entry from the log-prob: g (1 - p_y) cancels when p_y is near 1
            grad[torch.arange(m, device=grad.device), y] = label_grad(logp, g)
            if zbuf is not None:
                transform.chain_(grad, zbuf[:m])
            elif transform.logit_scale / transform.temperature != 1.0:
                grad.mul_(transform.logit_scale / transform.temperature)
            # both gradient GEMMs in the inputs' dtype, as autograd on the materialized logits
            # does (bf16/fp16 tensor cores, fp32 accumulation inside each product); only the
            # sum of the groups' dW products is kept in fp32
            gw = grad if grad.dtype == weight.dtype else grad.to(weight.dtype)
            if need_h:
                dh.view(-1, dh.shape[-1]).index_add_(0, rows, (gw @ weight).to(dh.dtype))
            if need_w:
                if gw.dtype == compute:
                    dw.addmm_(gw.t(), h)
                else:
                    dw.add_(gw.t() @ h)
            if need_b:
                db += grad.sum(0)
        ctx.save_for_backward(
            dh if dh is not None else torch.empty(0),
            dw.to(weight.dtype) if dw is not None else torch.empty(0),
            db.to(bias.dtype) if db is not None else torch.empty(0),
        )
        ctx.flags = (need_h, need_w, need_b)
        loss = (losses.sum() / batch).to(compute)
        losses = losses.to(compute)
        ctx.mark_non_differentiable(losses, seq_logps)
        return loss, losses, seq_logps

    @staticmethod
    def backward(ctx, grad_loss, _grad_losses=None, _grad_seq=None):  # type: ignore[override]
        dh, dw, db = ctx.saved_tensors
        need_h, need_w, need_b = ctx.flags
        return (
            dh * grad_loss.to(dh.dtype) if need_h else None,
            dw * grad_loss.to(dw.dtype) if need_w else None,
            db * grad_loss.to(db.dtype) if need_b else None,
            None,
        )


class FusedLinearPreferenceLoss(torch.nn.Module):
    """DPO-family loss straight from hidden states and the LM head (no ``[N, V]`` logits).

    Args:
        loss_type, beta, **preference_options: as :func:`~fastalign.losses.preference_loss`
            (``label_smoothing``, ``f_divergence``, ``loss_weights``...).
        ignore_index: label of prompt and padding positions.
        temperature, logit_scale, softcap: the logit transform of
            :func:`fastalign.token_logps`.
        backend: log-prob backend of the recompute path (and of reference log-probs computed
            here): ``"auto"``, ``"triton"``, ``"torch"`` or ``"reference"``.
        chunk_bytes: bound on the float32 logits buffer of one group of pairs.

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
        chunk_bytes: int = _CHUNK_BYTES,
        **preference_options: Any,
    ) -> None:
        super().__init__()
        types_ = [loss_type] if isinstance(loss_type, str) else list(loss_type)
        for t in types_:
            if t not in PREFERENCE_LOSS_TYPES:
                raise InvalidInputError(f"unknown loss_type {t!r}")
        self.loss_type = loss_type
        self.beta = beta
        self.ignore_index = ignore_index
        from fastalign.logprobs._checks import make_transform  # the checks of token_logps

        self.transform = make_transform(temperature, logit_scale, softcap)
        self.backend = backend
        self.chunk_bytes = int(chunk_bytes)
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
        from fastalign.logprobs import sequence_logps
        from fastalign.logprobs._checks import check_labels

        self._check(hidden, weight, labels)
        two_b, t, h_dim = hidden.shape
        batch = two_b // 2
        vocab = weight.shape[0]
        check_labels(labels, vocab, self.ignore_index)
        tf = self.transform
        opts = dict(
            temperature=tf.temperature,
            logit_scale=tf.logit_scale,
            softcap=tf.softcap,
            ignore_index=self.ignore_index,
            backend=self.backend,
        )
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
        compute = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        # sequence sums and the pair losses in float64 on every path (see _sequence_sums);
        # the results in the compute dtype
        ref_w = ref_chosen_logps.detach().double()
        ref_l = ref_rejected_logps.detach().double()

        def result(out: Any) -> LossOutput:
            metrics = {k: v.to(compute) for k, v in out.metrics.items()}
            return LossOutput(out.loss.to(compute), out.losses.detach().to(compute), metrics)

        if not self.separable or not torch.is_grad_enabled():
            seq = sequence_logps(hidden, weight, labels, bias=bias, reduction="none", **opts)
            seq = seq.double().sum(1)
            return result(preference_loss(seq[:batch], seq[batch:], ref_w, ref_l, **kw))

        keep = mask.reshape(-1).nonzero().squeeze(1)
        flat_h = hidden.detach().reshape(two_b * t, h_dim)
        tok_h = flat_h.index_select(0, keep)
        tok_y = labels.reshape(-1).index_select(0, keep).long()
        tok_seq = keep // t
        rows_budget = chunk_rows_for(vocab, self.chunk_bytes)
        # group whole pairs so that a group's tokens fit the buffer (a pair larger than the
        # buffer forms a group of its own: the buffer then grows to hold it)
        counts = lengths.tolist()
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
        pos = torch.arange(keep.numel(), device=hidden.device)
        group_idx = []
        for g in groups:
            pairs = torch.tensor(g, device=hidden.device)
            in_group = torch.isin(tok_seq, torch.cat([pairs, pairs + batch]))
            group_idx.append((pairs, pos[in_group]))

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
            transform=tf,
            rows_of=keep,
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


class _FusedLinearBase(torch.nn.Module):
    """Shared option handling of the fused-linear modules."""

    def __init__(
        self,
        *,
        ignore_index: int,
        temperature: float,
        logit_scale: float,
        softcap: float | None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        from fastalign.logprobs._checks import make_transform  # the checks of token_logps

        self.transform = make_transform(temperature, logit_scale, softcap)
        self.backend = backend

    def _opts(self) -> dict[str, Any]:
        tf = self.transform
        return dict(
            temperature=tf.temperature,
            logit_scale=tf.logit_scale,
            softcap=tf.softcap,
            ignore_index=self.ignore_index,
            backend=self.backend,
        )

    def _logps(self, hidden, weight, labels, bias, reduction):
        from fastalign.logprobs import sequence_logps

        return sequence_logps(
            hidden, weight, labels, bias=bias, reduction=reduction, **self._opts()
        )

    def _ref(self, given, ref_hidden, ref_weight, ref_bias, labels, reduction, what):
        if given is not None:
            return given.detach()
        if ref_hidden is None or ref_weight is None:
            raise InvalidInputError(f"pass {what}, or ref_hidden and ref_weight")
        with torch.no_grad():
            return self._logps(ref_hidden, ref_weight, labels, ref_bias, reduction)


class FusedLinearGRPOLoss(_FusedLinearBase):
    """GRPO-family loss (:func:`~fastalign.losses.grpo_loss`) from hidden states and the LM
    head: per-token log-probs through :func:`fastalign.token_logps` (no ``[N, V]`` logits;
    prompt and padding positions, ``labels == ignore_index``, are skipped before any matmul).

    ``forward(hidden [B, T, H], weight [V, H], labels [B, T], advantages [B],
    old_logps=None [B, T], ref_logps=None [B, T], *, bias=None, ref_hidden=None,
    ref_weight=None, ref_bias=None, num_items_in_batch=None)``; the completion mask is
    ``labels != ignore_index``; reference log-probs (needed when ``beta > 0``) are given or
    computed from ``ref_hidden`` / ``ref_weight`` without gradient. ``backend`` picks the
    log-prob backend (``"auto"``: Triton on CUDA, the chunked torch path elsewhere).
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
        **grpo_options: Any,
    ) -> None:
        super().__init__(
            ignore_index=ignore_index,
            temperature=temperature,
            logit_scale=logit_scale,
            softcap=softcap,
            backend=backend,
        )
        self.loss_type, self.beta, self.grpo_options = loss_type, beta, grpo_options

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
    ) -> LossOutput:
        from fastalign.losses.grpo import grpo_loss

        logps = self._logps(hidden, weight, labels, bias, "none")
        if self.beta > 0:
            ref_logps = self._ref(
                ref_logps, ref_hidden, ref_weight, ref_bias, labels, "none", "ref_logps"
            )
        mask = labels != self.ignore_index
        return grpo_loss(
            logps,
            old_logps,
            advantages,
            mask,
            ref_logps=ref_logps,
            beta=self.beta,
            loss_type=self.loss_type,
            num_items_in_batch=num_items_in_batch,
            **self.grpo_options,
        )


class FusedLinearKTOLoss(_FusedLinearBase):
    """KTO (:func:`~fastalign.losses.kto`) from hidden states and the LM head.

    ``forward(hidden [B, T, H], weight, labels [B, T], desirable [B], ref_logps=None [B], *,
    z0=None, kl_hidden=None [M, T', H], kl_labels=None [M, T'], kl_ref_logps=None [M],
    bias=None, ref_hidden=None, ref_weight=None, ref_bias=None)``. The reference point is
    ``z0``, or comes from the mismatched sequences ``kl_hidden`` / ``kl_labels`` (policy,
    without gradient, as TRL) and their reference log-probs ``kl_ref_logps``. ``backend``
    picks the log-prob backend, as for :class:`FusedLinearGRPOLoss`.
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
    ) -> None:
        super().__init__(
            ignore_index=ignore_index,
            temperature=temperature,
            logit_scale=logit_scale,
            softcap=softcap,
            backend=backend,
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

        logps = self._logps(hidden, weight, labels, bias, "sum")
        ref = self._ref(ref_logps, ref_hidden, ref_weight, ref_bias, labels, "sum", "ref_logps")
        kl_policy = None
        if z0 is None and self.kto_options["loss_type"] == "kto":
            if kl_hidden is None or kl_labels is None or kl_ref_logps is None:
                raise InvalidInputError(
                    "pass z0, or kl_hidden, kl_labels and kl_ref_logps (mismatched pairs)"
                )
            with torch.no_grad():
                kl_policy = self._logps(kl_hidden, weight, kl_labels, bias, "sum")
        return kto(
            logps,
            ref.to(logps.dtype),
            desirable,
            kl_policy_logps=kl_policy,
            kl_ref_logps=None if kl_ref_logps is None else kl_ref_logps.to(logps.dtype),
            z0=z0,
            **self.kto_options,
        )
