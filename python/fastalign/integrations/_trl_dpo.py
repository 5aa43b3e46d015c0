"""Stock TRL ``DPOTrainer``'s loss on fastalign's 3-pass fused path (installed by
:func:`fastalign.integrations.trl.enable`).

TRL's ``DPOTrainer._compute_loss`` asks the model for per-token log-probs
(``fused_lm_head=True``), sums them, and forms the loss from the sums: the log-probs are
computed in the forward without knowing the loss, so their backward recomputes every logits
tile (four matmul passes over the scored tokens). This replacement runs the same forward
with the LM-head call captured (the backbone's last hidden states and the head, exactly as
TRL hands them over), computes the reference log-probs as TRL does, and gives the captured
head to the fused DPO step (:class:`fastalign.losses.FusedLinearPreferenceLoss`'s), which
forms the gradient in its forward, one group of pairs at a time: three matmul passes, the
tiles kept as bf16 ``exp(z - off)`` within a memory budget. TRL's metrics (entropy,
``logits/*``, ``mean_token_accuracy``, ``rewards/*``, ``logps/*``, ``num_tokens``) come from
the same forward's row kernel.

Covered: every ``loss_type`` of TRL 1.16's DPOTrainer that is separable per pair, with
``loss_weights``, ``f_divergence_type`` (and its alpha), ``label_smoothing``,
``discopop_tau``, ``ld_alpha`` (LD-DPO: tail tokens weighted in the sums) and
``use_weighting`` (WPO's detached pair weights), given or computed reference log-probs.
Falls back to TRL's own loss (on fastalign's log-probs), logged once per reason: ``aot``,
``aot_unpaired`` and ``sft`` (batch-coupled losses), ``return_outputs=True``, MoE auxiliary
losses, fp16 compute (its loss scaling must reach the gradient tiles), and models whose
outputs carry extra positions (prompt-learning PEFT); evaluation (no gradient) runs TRL's
forward-only loss.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch

_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}
_NOT_SEPARABLE = {"aot", "aot_unpaired", "sft"}
_log = logging.getLogger("fastalign.integrations.trl")
_said: set[str] = set()
# the LM-head calls captured while the policy's forward runs (see capture())
_captured: list[dict[str, Any]] | None = None


def _once(reason: str) -> None:
    if reason not in _said:
        _said.add(reason)
        _log.warning(
            "fastalign: DPOTrainer loss on TRL's own path (log-probs still fastalign's): %s",
            reason,
        )


@contextlib.contextmanager
def capture():
    """While active, the fused-head log-prob function records its inputs instead of
    computing (and returns zeros of the right shapes)."""
    global _captured
    previous, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = previous


def capturing() -> list[dict[str, Any]] | None:
    return _captured


def _unsupported(trainer: Any, return_outputs: bool) -> str | None:
    if not torch.is_grad_enabled():
        return None  # evaluation: TRL's forward-only loss costs no recompute (not logged)
    if return_outputs:
        return "return_outputs=True"
    if getattr(trainer, "aux_loss_enabled", False):
        return "MoE auxiliary loss"
    bad = set(trainer.loss_types) & _NOT_SEPARABLE
    if bad:
        return f"loss_type {sorted(bad)} couples the batch"
    return None


def _token_weights(shift_mask: torch.Tensor, ld_alpha: float | None) -> torch.Tensor | None:
    """LD-DPO's per-position weights: 1 on the first ``min(len_chosen, len_rejected)``
    completion tokens of a pair's sequences, ``ld_alpha`` after them (TRL's definition)."""
    if ld_alpha is None:
        return None
    pos = shift_mask.cumsum(1)
    lens = shift_mask.sum(1)
    chosen, rejected = lens.chunk(2)
    shared = torch.minimum(chosen, rejected).repeat(2)[:, None]
    w = torch.where(pos <= shared, 1.0, float(ld_alpha)).to(torch.float64)
    return w * shift_mask


def compute_loss(
    original, trainer: Any, model: Any, inputs: dict, return_outputs: bool, settings: Any
):
    """The replacement of ``DPOTrainer._compute_loss`` (``original`` is TRL's; ``settings``
    holds ``enable()``'s ``backend``, ``chunk_rows`` and ``memory_budget``)."""
    why = _unsupported(trainer, return_outputs)
    if why is not None or not torch.is_grad_enabled():
        if why is not None:
            _once(why)
        return original(trainer, model, inputs, return_outputs)
    from fastalign import _backend
    from fastalign.logprobs import _tiling
    from fastalign.logprobs._rows import row_passes
    from fastalign.losses.fused_linear import _pair_groups, _PairwiseFused
    from fastalign.losses.preference import preference_loss

    mode = "train" if trainer.model.training else "eval"
    completion_mask = inputs["completion_mask"]
    shift = completion_mask[..., 1:]
    labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
    model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
    model_kwargs["use_cache"] = False
    with capture() as calls:
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
    mask = getattr(outputs, "label_mask", None)
    if len(calls) != 1 or mask is None or mask.shape != shift.shape:
        _once("the model's outputs do not line up with the completion mask")
        return original(trainer, model, inputs, return_outputs)
    call = calls[0]
    from fastalign._validate import check_label_values

    check_label_values(call["targets"], call["weight"].shape[0], -100)
    if call["compute"] == torch.float16:
        # the gradient is formed before the GradScaler's scale is known: fp16 tiles would
        # flush what the scale exists to keep
        _once("fp16 (loss scaling) keeps TRL's loss")
        return original(trainer, model, inputs, return_outputs)
    two_b = shift.shape[0]
    batch = two_b // 2
    ref_call = None
    if trainer.precompute_ref_logps:
        ref_w, ref_l = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
    else:  # TRL's reference forward (adapters, autocast, no grad), its head captured too
        with capture() as ref_calls:
            trainer.compute_ref_log_probs(trainer.ref_model or trainer.model, inputs)
        if len(ref_calls) != 1 or ref_calls[0]["targets"].shape != call["targets"].shape:
            _once("the reference model's outputs do not line up with the policy's")
            return original(trainer, model, inputs, return_outputs)
        ref_call = ref_calls[0]
    mask = mask.to(call["targets"].device)
    tok_seq = mask.nonzero()[:, 0]
    lengths = completion_mask.sum(1).to(tok_seq.device)
    weights = _token_weights(shift.to(tok_seq.device), trainer.ld_alpha)
    kw = dict(
        loss_type=list(trainer.loss_types),
        loss_weights=list(trainer.loss_weights),
        beta=trainer.beta,
        label_smoothing=trainer.label_smoothing,
        f_divergence=trainer.f_divergence_type,
        f_alpha=trainer.f_alpha_divergence_coef,
        discopop_tau=trainer.args.discopop_tau,
    )
    lw, ll = lengths[:batch], lengths[batch:]

    def loss_fn(s_w, s_l, pairs):
        return preference_loss(s_w, s_l, ref_w64[pairs], ref_l64[pairs], chosen_lengths=lw[pairs],
                               rejected_lengths=ll[pairs], **kw).losses  # fmt: skip

    compute = call["compute"]
    device = call["hidden"].device
    with torch.autocast(device.type, enabled=False):
        hidden, weight, bias = _operands(call)
        which = _backend.resolve(settings.backend, device.type,
                                 triton_ok=compute != torch.float64)  # fmt: skip
        if which == "reference":
            which = "torch"
        budget = _tiling.store_budget(device, settings.memory_budget)
        rows_budget = _tiling.store_rows(weight.shape[0], budget, compute)
        groups = _pair_groups(mask.sum(1).tolist(), batch, rows_budget, tok_seq)
        tok_w = None if weights is None else weights[mask]
        rows = row_passes(which)
        if ref_call is not None:
            # the reference sums by the policy's very code path (tiles, groups, float64 sums):
            # at a policy equal to its reference the log-ratios are exactly 0, as in TRL
            ref = _sums(ref_call, groups, tok_seq, two_b, tok_w, rows, settings.chunk_rows)
            ref_w, ref_l = ref[:batch], ref[batch:]
        ref_w64, ref_l64 = ref_w.detach().double(), ref_l.detach().double()
        meta = dict(
            tok_h=hidden.detach(), tok_y=call["targets"].long(), tok_seq=tok_seq, groups=groups,
            n_seq=two_b, batch=batch, loss_fn=loss_fn, transform=call["transform"],
            rows_of=torch.arange(hidden.shape[0], device=device), rows=rows,
            memory_budget=budget, chunk_rows=settings.chunk_rows,
            chunk_vocab=None, accumulate="output", stats=True, wpo=bool(trainer.use_weighting),
            token_weights=tok_w,
        )  # fmt: skip
        loss, _losses, seq_logps = _PairwiseFused.apply(hidden, weight, bias, meta)
    _log_metrics(trainer, mode, inputs, meta["stats_out"], tok_seq, batch, seq_logps,
                 ref_w64.to(seq_logps.dtype), ref_l64.to(seq_logps.dtype))  # fmt: skip
    return loss


def _operands(call: dict[str, Any]):
    """A captured head's (hidden, weight, bias) in its compute dtype, as the fused head runs
    them: an fp32 master weight stays fp32 on CUDA (cast per vocabulary slice there)."""
    compute = call["compute"]
    hidden, weight, bias = call["hidden"].to(compute), call["weight"], call["bias"]
    cuda = hidden.device.type == "cuda"
    if weight.dtype != compute and not (cuda and weight.dtype == torch.float32):
        weight = weight.to(compute)
    return hidden, weight, None if bias is None else bias.to(compute)


@torch.no_grad()
def _sums(call, groups, tok_seq, n_seq, tok_w, rows, chunk_rows) -> torch.Tensor:
    """Sequence sums of a captured head's log-probs (no gradient), group by group as the
    fused step folds them: float64 ``[n_seq]``."""
    from fastalign.logprobs import _tiling
    from fastalign.losses.fused_linear import _sequence_sums

    hidden, weight, bias = _operands(call)
    y = call["targets"].long()
    h_all, w, b, _ = _tiling.upcast_operands(hidden, weight, bias)
    out = torch.zeros(n_seq, dtype=torch.float64, device=hidden.device)
    for _pairs, idx in groups:
        h = h_all.index_select(0, idx)
        yy = y.index_select(0, idx)
        tiles = _tiling.plan(idx.numel(), w.shape[0], h.device,
                             chunk_rows=chunk_rows)  # fmt: skip
        state = _tiling.fold_head(h, w, b, yy, call["transform"], tiles, rows, entropy=False,
                                  stats=False)  # fmt: skip
        logp = _tiling.finish(state, yy, w.shape[0]).logp
        contrib = logp if tok_w is None else logp.double() * tok_w.index_select(0, idx).double()
        out += _sequence_sums(contrib, tok_seq.index_select(0, idx), n_seq)
    return out


def _log_metrics(trainer, mode, inputs, stats, tok_seq, batch, seq_logps, ref_w, ref_l):
    """TRL's DPOTrainer metrics, from the fused forward's statistics (same names, same
    reductions: token means over the completion tokens, pair means gathered across ranks)."""
    acc = trainer.accelerator
    metrics = trainer._metrics[mode]
    chosen = tok_seq < batch

    def token_mean(values, where):
        total = acc.gather_for_metrics(values[where].sum()).sum()
        count = acc.gather_for_metrics(where.sum()).sum()
        return (total / count).item() if count > 0 else 0.0

    everything = torch.ones_like(chosen)
    metrics["entropy"].append(token_mean(stats["entropy"].double(), everything))
    if mode == "train":
        n = acc.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
        trainer._total_train_tokens += n // trainer._tp_size
    metrics["num_tokens"] = [trainer._total_train_tokens]
    metrics["logits/chosen"].append(token_mean(stats["mean_logits"].double(), chosen))
    metrics["logits/rejected"].append(token_mean(stats["mean_logits"].double(), ~chosen))
    metrics["mean_token_accuracy"].append(token_mean(stats["is_top1"].double(), chosen))
    logps = seq_logps.to(ref_w.dtype)
    chosen_rewards = trainer.beta * (logps[:batch] - ref_w).detach()
    rejected_rewards = trainer.beta * (logps[batch:] - ref_l).detach()

    def mean(x):
        return acc.gather(x).mean().item()

    metrics["rewards/chosen"].append(mean(chosen_rewards))
    metrics["rewards/rejected"].append(mean(rejected_rewards))
    metrics["rewards/accuracies"].append(mean((chosen_rewards > rejected_rewards).float()))
    metrics["rewards/margins"].append(mean(chosen_rewards - rejected_rewards))
    metrics["logps/chosen"].append(mean(logps[:batch]))
    metrics["logps/rejected"].append(mean(logps[batch:]))
