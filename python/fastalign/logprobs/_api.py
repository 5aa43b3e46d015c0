"""``token_logps`` / ``sequence_logps`` and the internal entry :func:`fused_head` that the
integrations call with a :class:`HeadOptions` (checked once, not per call)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastalign import _backend
from fastalign._validate import (
    check_choice,
    check_count,
    check_float_tensor,
    check_head,
    check_label_dtype,
    check_labels,
)
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.logprobs._tiling import ACCUMULATE, HeadOutputs, make_transform
from fastalign.reference import logprobs as _ref


@dataclass(frozen=True)
class HeadOptions:
    """Every option of the fused head but the tensors: the logit transform, the ignored
    label, the backend, the tiles (``chunk_rows`` tokens x ``chunk_vocab`` vocabulary
    columns; default from a memory budget, see :func:`fastalign.logprobs._tiling.plan`), the
    dW accumulation (``"output"`` or ``"fp32"``), a vocab-parallel ``process_group``, and
    ``cast_weight``: accept a float32 weight with bf16/fp16 hidden states (autocast with fp32
    master weights) and run the head on the weight rounded to the hidden states' dtype, one
    vocabulary slice at a time, with dW accumulated in float32 against the weight itself (no
    whole bf16 copy of the weight, no extra rounding of its gradient).
    Every option is checked when the object is made."""

    temperature: float = 1.0
    logit_scale: float = 1.0
    softcap: float | None = None
    ignore_index: int = -100
    backend: str = "auto"
    chunk_rows: int | None = None
    chunk_vocab: int | None = None
    accumulate: str = "output"
    process_group: object | None = None
    cast_weight: bool = False

    def __post_init__(self) -> None:
        # checked at construction, so a bad option fails where it was written; the checked
        # values (floats for the transform) replace the given ones
        t = make_transform(self.temperature, self.logit_scale, self.softcap)
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, int):
            raise TypeError(f"ignore_index must be an int, not {type(self.ignore_index).__name__}")
        if not isinstance(self.cast_weight, bool):
            raise TypeError(f"cast_weight must be a bool, not {type(self.cast_weight).__name__}")
        checked = {
            "temperature": t.temperature,
            "logit_scale": t.logit_scale,
            "softcap": t.softcap,
            "backend": check_choice(self.backend, "backend", _backend.BACKENDS),
            "chunk_rows": check_count(self.chunk_rows, "chunk_rows"),
            "chunk_vocab": check_count(self.chunk_vocab, "chunk_vocab"),
            "accumulate": check_choice(self.accumulate, "accumulate", ACCUMULATE),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def checked(self) -> HeadOptions:
        """The options, checked (construction checks them: this is ``self``)."""
        return self


def fused_head(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    options: HeadOptions = HeadOptions(),
    entropy: bool = False,
    stats: bool = False,
    checked: bool = False,
) -> HeadOutputs:
    """The fused head's one entry (what :func:`token_logps` calls; for integrations).

    ``stats`` adds TRL's forward-only metric statistics, computed in the same forward pass:
    ``log_sum_sq_probs = log sum_v p_v^2``, ``mean_logits`` (of the transformed logits) and
    ``is_top1`` (the label is the first arg-max). ``checked=True`` skips re-validating
    ``options`` (pass options from :meth:`HeadOptions.checked`).
    """
    opts = options if checked else options.checked()
    if opts.process_group is not None:
        if stats:
            raise NotImplementedError("stats=True with a process group")
        from fastalign.logprobs._parallel import parallel_head

        return parallel_head(hidden, weight, labels, bias, opts, bool(entropy))
    _n, vocab = check_head(hidden, weight, labels, bias, cast_weight=opts.cast_weight)
    check_label_dtype(labels, opts.ignore_index)
    which = _backend.resolve(
        opts.backend, hidden.device.type, triton_ok=hidden.dtype != torch.float64
    )
    if which == "reference":
        check_labels(labels, vocab, opts.ignore_index)
        if weight.dtype != hidden.dtype:  # cast_weight: autocast's semantics, materialized
            weight = weight.to(hidden.dtype)
        head = _ref.token_logps(
            hidden,
            weight,
            labels,
            bias=bias,
            temperature=opts.temperature,
            logit_scale=opts.logit_scale,
            softcap=opts.softcap,
            ignore_index=opts.ignore_index,
            return_entropy=entropy,
        )
        logp, ent = head if isinstance(head, tuple) else (head, None)
        if not stats:
            return HeadOutputs(logp, ent)
        with torch.no_grad():
            more = _run(hidden, weight, bias, labels, opts, "torch", False, True)
        return HeadOutputs(logp, ent, more.log_sum_sq_probs, more.mean_logits, more.is_top1)
    return _run(hidden, weight, bias, labels, opts, which, bool(entropy), bool(stats))


def _run(hidden, weight, bias, labels, opts: HeadOptions, rows: str, entropy, stats):
    from fastalign.logprobs._function import head_logps

    logp, ent, _m, _log_s, lssp, mean, top1 = head_logps(
        hidden,
        weight,
        bias,
        labels,
        opts.ignore_index,
        opts.temperature,
        opts.logit_scale,
        opts.softcap or 0.0,
        entropy,
        stats,
        opts.chunk_rows or 0,
        opts.chunk_vocab or 0,
        rows,
        opts.accumulate,
    )
    if not stats:
        return HeadOutputs(logp, ent if entropy else None)
    return HeadOutputs(logp, ent if entropy else None, lssp.detach(), mean.detach(), top1)


def token_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    logit_scale: float = 1.0,
    softcap: float | None = None,
    ignore_index: int = -100,
    return_entropy: bool = False,
    backend: str = "auto",
    process_group: object | None = None,
    chunk_rows: int | None = None,
    chunk_vocab: int | None = None,
    accumulate: str = "output",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each label under the LM head, without materializing the logits.

    For token ``i``: ``z = (hidden[i] @ weight.T + bias) * logit_scale``; if ``softcap``,
    ``z = softcap * tanh(z / softcap)``; ``z = z / temperature``;
    ``logp[i] = z[labels[i]] - logsumexp(z)``; entropy ``-sum_v p_v log p_v``.

    Tokens whose label is ``ignore_index`` are dropped before any matmul (no work for prompt
    and padding positions); they get logp 0 (entropy 0) and zero gradient. Gradients flow to
    ``hidden``, ``weight`` (which may be tied to the input embedding) and ``bias`` for an
    arbitrary upstream gradient; the backward recomputes the logits tile by tile.

    How: row blocks of ``chunk_rows`` tokens x vocabulary slices of ``chunk_vocab``
    columns; each logits tile is one BLAS / cuBLAS GEMM (fp32 output), the per-row work
    (online max / sum-exp / label / entropy forward, the gradient tile backward) a Triton
    row kernel on CUDA or its torch twin elsewhere. The op is a torch custom op
    (``fastalign::head_logps``): ``torch.compile(fullgraph=True)`` of code calling it works.

    Args:
        hidden: ``[N, H]`` last hidden states (fp32, bf16, fp16 or fp64).
        weight: ``[V, H]`` LM head, same dtype and device.
        labels: ``[N]`` integer token ids in ``[0, V)`` or ``ignore_index``.
        bias: optional ``[V]`` head bias.
        temperature, logit_scale, softcap: the logit transform above (finite, > 0).
        ignore_index: label value of positions to skip.
        return_entropy: also return the per-token entropy (differentiable).
        backend: ``"auto"`` (Triton row kernels on CUDA, torch row passes elsewhere),
            ``"triton"``, ``"torch"`` or ``"reference"`` (materialized logits).
        process_group: a ``torch.distributed`` group over which the head is sharded by
            vocabulary (vocab / tensor parallelism): each rank passes its contiguous slice
            ``weight[V_r, H]`` (slices in rank order; they may differ in size) and the same
            ``hidden``, ``labels`` (global ids) on every rank. Results equal the unsharded
            op's on every rank; gradients go to the local slice (and bias) and, in full, to
            ``hidden``. Communication per row block: one all-reduce of 1 float per token
            (max) and one of 2-3 (sum-exp, label logit, entropy term) forward, the block's
            ``[R, H]`` hidden gradient backward. Inconsistent ranks (shapes, labels, a
            rejected input on any rank) raise the same error on every rank.
        chunk_rows: tokens per row block (default: 4096 on CUDA; elsewhere about 128 MB of
            float32 logits over the whole vocabulary). Results do not depend on it (beyond
            rounding).
        chunk_vocab: vocabulary columns per slice (default: 4096 on CUDA, the whole
            vocabulary elsewhere).
        accumulate: the weight gradient's accumulation over row blocks: ``"output"``
            (default) adds each block's product into the gradient in the weight's dtype
            (exact for fp32 weights; at most ``ceil(N / chunk_rows)`` roundings for bf16 /
            fp16), ``"fp32"`` accumulates in an fp32 ``[V, H]`` buffer (``4 V H`` bytes more)
            and rounds once.

    Returns:
        ``[N]`` float32 log-probs (float64 for float64 inputs), or ``(logps, entropy)``.

    Raises:
        TypeError: non-tensors, wrong dtypes, dtype mismatch between hidden and weight.
        ShapeError: inconsistent shapes or devices.
        InvalidInputError: a label outside ``[0, V)`` other than ``ignore_index``, or a
            transform parameter that is not finite and > 0.

    NaN or Inf in ``hidden`` / ``weight`` give NaN in the affected rows; nothing is hidden.

    Example:
        >>> import torch, fastalign
        >>> h = torch.zeros(3, 4); w = torch.zeros(10, 4)
        >>> fastalign.token_logps(h, w, torch.tensor([1, 2, -100]))
        tensor([-2.3026, -2.3026,  0.0000])
    """
    opts = HeadOptions(
        temperature=temperature,
        logit_scale=logit_scale,
        softcap=softcap,
        ignore_index=ignore_index,
        backend=backend,
        chunk_rows=chunk_rows,
        chunk_vocab=chunk_vocab,
        accumulate=accumulate,
        process_group=process_group,
    )
    out = fused_head(hidden, weight, labels, bias, options=opts, entropy=return_entropy)
    return (out.logps, out.entropy) if return_entropy else out.logps


def sequence_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    reduction: str = "sum",
    ignore_index: int = -100,
    return_entropy: bool = False,
    **options,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence log-probs: :func:`token_logps` over ``[B, T]`` positions, reduced.

    ``labels`` must already be aligned with ``hidden`` (label ``t`` is scored from hidden
    state ``t``; shift them yourself for next-token prediction). ``reduction="sum"`` gives
    the summed log-prob of the unmasked tokens of each row, ``"mean"`` their mean (0 for a
    row with no unmasked token), ``"none"`` the ``[B, T]`` token log-probs. Entropies, when
    requested, are reduced the same way. Other keyword options are those of
    :func:`token_logps`.

    Example:
        >>> import torch, fastalign
        >>> h = torch.zeros(2, 3, 4); w = torch.zeros(10, 4)
        >>> y = torch.tensor([[1, 2, -100], [-100, -100, 3]])
        >>> fastalign.sequence_logps(h, w, y)
        tensor([-4.6052, -2.3026])
    """
    if reduction not in ("sum", "mean", "none"):
        raise InvalidInputError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    check_float_tensor(hidden, "hidden")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, not {type(labels).__name__}")
    if hidden.ndim != 3 or tuple(labels.shape) != tuple(hidden.shape[:2]):
        raise ShapeError(
            f"hidden must be [B, T, H] and labels [B, T]; got {tuple(hidden.shape)} and "
            f"{tuple(labels.shape)}"
        )
    b, t, h_dim = hidden.shape
    out = token_logps(
        hidden.reshape(b * t, h_dim),
        weight,
        labels.reshape(b * t),
        ignore_index=ignore_index,
        return_entropy=return_entropy,
        **options,
    )
    outs = out if isinstance(out, tuple) else (out,)
    mask = labels != ignore_index
    reduced = []
    for o in outs:
        o = o.reshape(b, t)
        if reduction == "sum":
            o = o.sum(1)
        elif reduction == "mean":
            o = o.sum(1) / mask.sum(1).clamp(min=1).to(o.dtype)
        reduced.append(o)
    return (reduced[0], reduced[1]) if return_entropy else reduced[0]
