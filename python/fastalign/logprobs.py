"""Per-token log-probabilities of selected tokens.

``token_logps`` / ``sequence_logps`` go from the last hidden states and the LM head straight
to log-probs without ever holding the ``[tokens, vocab]`` logits (chunked or fused, with a
backward that recomputes logit tiles); ``logps_from_logits`` works on logits a model already
produced. All take ``backend="auto" | "triton" | "torch" | "reference"`` (see
:mod:`fastalign._backend`).

Numerics: reductions run in float32 (float64 for float64 inputs); the result is float32, or
float64 for float64 inputs. NaN or Inf in the inputs propagate to NaN in the affected rows:
they are never hidden.
"""

from __future__ import annotations

import torch

from fastalign import _backend
from fastalign._logprobs_torch import FusedLogps, Transform, chunk_rows_for, logit_stats
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference import logprobs as _ref

__all__ = ["logps_from_logits", "sequence_logps", "token_logps"]

# Live temporary of the chunked torch paths, in bytes of float32 (per chunk of rows). Large
# enough that the chunk GEMMs run at full speed (K = rows for the dW update), small next to
# the inputs and gradients of a real LM head.
_CHUNK_BYTES = 128 * 2**20


def _check_labels(labels: torch.Tensor, vocab: int, ignore_index: int, name: str = "labels"):
    """Out-of-range labels (other than ignore_index) raise; costs one reduction and, on an
    accelerator, one scalar device-to-host read."""
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, not {type(ignore_index).__name__}")
    info = torch.iinfo(labels.dtype)
    if not info.min <= ignore_index <= info.max:
        # `labels != ignore_index` would compare in the labels' dtype, where -100 wraps to 156
        # in uint8: real tokens would be skipped as prompt positions
        raise TypeError(
            f"{name} are {labels.dtype}, which cannot hold ignore_index={ignore_index}: pass "
            "int64 or int32 labels"
        )
    if labels.numel() == 0:
        return
    wide = labels if labels.dtype == torch.int64 else labels.long()  # vocab may not fit
    bad = (wide != ignore_index) & ((wide < 0) | (wide >= vocab))
    if bool(bad.any()):
        flat = bad.reshape(-1).nonzero()
        first = int(flat[0, 0])
        raise InvalidInputError(
            f"{name}: {int(flat.shape[0])} value(s) outside [0, {vocab}) other than "
            f"ignore_index={ignore_index}; first at flat index {first}: "
            f"{int(labels.reshape(-1)[first])}"
        )


def _check_float(t: torch.Tensor, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise TypeError(f"{name} must be float32/bfloat16/float16/float64, got {t.dtype}")


def _out_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class _SelectiveLogSoftmaxTorch(torch.autograd.Function):
    """Chunked over rows. Each chunk is read from memory once per pass direction and worked
    on in a reused float32 buffer that stays in cache (see ``_selective_chunk_rows``); the
    backward forms ``g / T * (onehot - softmax)`` chunk by chunk straight in the gradient."""

    @staticmethod
    def forward(ctx, logits, labels, temperature, ignore_index, chunk_rows):
        n, vocab = logits.shape
        compute = _out_dtype(logits.dtype)
        logp = torch.zeros(n, dtype=compute, device=logits.device)
        # per row (max, log sum exp(z - max)), kept apart: the backward forms
        # softmax = exp((z - max) - log_s), which loses nothing to the rounding of a large lse
        stats = torch.zeros(n, 2, dtype=compute, device=logits.device)
        mask = labels != ignore_index
        safe = torch.where(mask, labels, torch.zeros_like(labels)).long()
        buf = torch.empty(min(n, chunk_rows), vocab, dtype=compute, device=logits.device)
        for s in range(0, n, chunk_rows):
            e = min(n, s + chunk_rows)
            z = _shifted(logits[s:e], temperature, buf[: e - s], stats[s:e, 0])
            # (z - m) - log(sum-exp): no cancellation for a near-certain label
            target = z.gather(1, safe[s:e, None]).squeeze(1)
            log_s = stats[s:e, 1]
            torch.sum(z.exp_(), dim=1, out=log_s).log_()
            torch.sub(target, log_s, out=logp[s:e])
        logp = torch.where(mask, logp, torch.zeros_like(logp))
        ctx.save_for_backward(logits, safe, mask, stats)
        ctx.temperature, ctx.chunk_rows = temperature, chunk_rows
        return logp

    @staticmethod
    def backward(ctx, grad_logp):
        logits, safe, mask, stats = ctx.saved_tensors
        t, chunk_rows = ctx.temperature, ctx.chunk_rows
        n = logits.shape[0]
        grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
        buf = None  # bf16/fp16 logits: work in a float32 buffer, then cast into the gradient
        if grad.dtype != stats.dtype:
            shape = (min(n, chunk_rows), logits.shape[1])
            buf = torch.empty(shape, dtype=stats.dtype, device=logits.device)
        zero = torch.zeros(n, dtype=stats.dtype, device=stats.device)
        g_all = torch.where(mask, grad_logp.to(stats.dtype), zero) / t
        for s in range(0, n, chunk_rows):
            e = min(n, s + chunk_rows)
            g = g_all[s:e, None]
            out = grad[s:e] if buf is None else buf[: e - s]
            chunk = _shifted(logits[s:e], t, out, stats[s:e, 0], recompute_max=False)
            chunk.sub_(stats[s:e, 1:2]).exp_().mul_(-g)
            chunk.scatter_add_(1, safe[s:e, None], g)
            if buf is not None:
                grad[s:e] = chunk
        return grad, None, None, None, None


def _shifted(
    x: torch.Tensor,
    temperature: float,
    out: torch.Tensor,
    row_max: torch.Tensor,
    *,
    recompute_max: bool = True,
) -> torch.Tensor:
    """``out = x / temperature - max_row`` in the compute dtype, reading ``x`` once. With
    ``recompute_max`` the row maxima are computed into ``row_max``, else read from it."""
    if temperature == 1.0 and x.dtype == out.dtype:
        if recompute_max:
            torch.amax(x, dim=1, out=row_max)
        return torch.sub(x, row_max[:, None], out=out)
    if x.dtype == out.dtype:
        torch.div(x, temperature, out=out)
    else:  # upcast first: a division in bf16/fp16 would round z in that dtype
        out.copy_(x)
        if temperature != 1.0:
            out.div_(temperature)
    if recompute_max:
        torch.amax(out, dim=1, out=row_max)
    return out.sub_(row_max[:, None])


def _selective_chunk_rows(vocab: int, device: torch.device) -> int:
    """Rows per chunk of the torch selective log-softmax: on CPU a float32 chunk of ~4 MB,
    which stays in the last-level cache across the chunk's passes (the 128 MB chunks of the
    GPU default streamed every pass from DRAM: 0.63x naive torch, whose fused log_softmax
    reads the logits fewer times); on other devices ~128 MB."""
    budget = 4 * 2**20 if device.type == "cpu" else _CHUNK_BYTES
    return chunk_rows_for(vocab, budget)


class _SelectiveLogSoftmaxTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, temperature, ignore_index):
        from fastalign.kernels import selective_log_softmax as k

        logp, stats = k.forward(logits, labels, temperature, ignore_index)
        ctx.save_for_backward(logits, labels, stats)
        ctx.temperature, ctx.ignore_index = temperature, ignore_index
        return logp

    @staticmethod
    def backward(ctx, grad_logp):
        from fastalign.kernels import selective_log_softmax as k

        logits, labels, stats = ctx.saved_tensors
        grad = k.backward(logits, labels, stats, grad_logp, ctx.temperature, ctx.ignore_index)
        return grad, None, None, None


def logps_from_logits(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    ignore_index: int = -100,
    backend: str = "auto",
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Log-probability of each label under ``softmax(logits / temperature)``.

    The selective log-softmax every trainer needs once it holds logits: equal to
    ``log_softmax(logits / T, -1).gather(-1, labels[..., None])[..., 0]`` but without a second
    ``[..., V]`` float32 tensor in the forward or the backward pass.

    Args:
        logits: ``[..., V]`` float tensor (fp32, bf16, fp16 or fp64).
        labels: ``[...]`` integer tensor, the same leading shape; values in ``[0, V)`` or
            ``ignore_index``.
        temperature: divides the logits; finite and > 0.
        ignore_index: label value whose positions give logp 0 and receive zero gradient.
        backend: ``"auto"`` (Triton on CUDA, else chunked torch), ``"triton"``, ``"torch"``,
            or ``"reference"``.
        chunk_rows: rows per chunk of the torch path (default: about 4 MB of float32 on
            CPU, which stays in cache, 128 MB elsewhere). Results do not depend on it.

    Returns:
        ``[...]`` float32 log-probs (float64 for float64 logits).

    Raises:
        TypeError: non-tensor or wrong dtype.
        ShapeError: ``labels.shape != logits.shape[:-1]`` or devices differ.
        InvalidInputError: a label outside ``[0, V)`` other than ``ignore_index``, or a
            temperature that is not finite and > 0.

    Example:
        >>> import torch, fastalign
        >>> logits = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
        >>> fastalign.logps_from_logits(logits, torch.tensor([1, -100]))
        tensor([-0.6931,  0.0000])
    """
    _check_float(logits, "logits")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, not {type(labels).__name__}")
    if logits.ndim < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ShapeError(
            f"labels.shape must equal logits.shape[:-1]; got labels {tuple(labels.shape)} "
            f"and logits {tuple(logits.shape)}"
        )
    if labels.device != logits.device:
        raise ShapeError(f"labels are on {labels.device} but logits on {logits.device}")
    temperature = _check_positive(temperature, "temperature")  # type: ignore[assignment]
    vocab = logits.shape[-1]
    if vocab == 0:
        raise ShapeError("logits must have a non-empty last dimension (the vocabulary)")
    _check_labels(labels, vocab, ignore_index)
    which = _backend.resolve(backend, logits.device.type, triton_ok=logits.dtype != torch.float64)
    lead = labels.shape
    if which == "reference":
        return _ref.logps_from_logits(
            logits, labels, temperature=temperature, ignore_index=ignore_index
        )
    x = logits.reshape(-1, vocab)
    if x.stride(-1) != 1:
        x = x.contiguous()
    y = labels.reshape(-1)
    if which == "triton":
        out = _SelectiveLogSoftmaxTriton.apply(x, y.contiguous(), temperature, ignore_index)
    else:
        if chunk_rows is None:
            chunk_rows = _selective_chunk_rows(vocab, x.device)
        elif int(chunk_rows) < 1:
            raise InvalidInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
        out = _SelectiveLogSoftmaxTorch.apply(x, y, temperature, ignore_index, int(chunk_rows))
    return out.reshape(lead)


def _check_positive(value: float | None, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}") from None
    if not (v > 0.0 and v < float("inf")):
        raise InvalidInputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


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
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each label under the LM head, without materializing the logits.

    For token ``i``: ``z = (hidden[i] @ weight.T + bias) * logit_scale``; if ``softcap``,
    ``z = softcap * tanh(z / softcap)``; ``z = z / temperature``;
    ``logp[i] = z[labels[i]] - logsumexp(z)``; entropy ``-sum_v p_v log p_v``.

    Tokens whose label is ``ignore_index`` are dropped before any matmul (no work for prompt
    and padding positions); they get logp 0 (entropy 0) and zero gradient. Gradients flow to
    ``hidden``, ``weight`` (which may be tied to the input embedding) and ``bias`` for an
    arbitrary upstream gradient; the backward recomputes logits chunk by chunk.

    Args:
        hidden: ``[N, H]`` last hidden states (fp32, bf16, fp16 or fp64).
        weight: ``[V, H]`` LM head, same dtype and device.
        labels: ``[N]`` integer token ids in ``[0, V)`` or ``ignore_index``.
        bias: optional ``[V]`` head bias.
        temperature, logit_scale, softcap: the logit transform above (finite, > 0).
        ignore_index: label value of positions to skip.
        return_entropy: also return the per-token entropy (differentiable).
        backend: ``"auto"`` (Triton on CUDA, chunked torch elsewhere), ``"triton"``,
            ``"torch"`` or ``"reference"`` (materialized logits).
        process_group: a ``torch.distributed`` group over which the head is sharded by
            vocabulary (vocab / tensor parallelism): each rank passes its contiguous slice
            ``weight[V_r, H]`` (slices in rank order; they may differ in size) and the same
            ``hidden``, ``labels`` (global ids) on every rank. Results equal the unsharded
            op's on every rank; gradients go to the local slice (and bias) and, in full, to
            ``hidden``. Communication per token: one all-reduce of 1 float (max) and one of
            2-3 floats (sum-exp, target logit, entropy term) forward, the ``[N, H]`` hidden
            gradient backward. Inconsistent ranks (shapes, labels, a rejected input on any
            rank) raise the same error on every rank. The torch and Triton backends run it.
        chunk_rows: tokens per chunk of the torch path (default: about 128 MB of float32
            logits per chunk). Results do not depend on it.

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
    outs = _token_logps(
        hidden,
        weight,
        labels,
        bias=bias,
        temperature=temperature,
        logit_scale=logit_scale,
        softcap=softcap,
        ignore_index=ignore_index,
        return_entropy=return_entropy,
        backend=backend,
        process_group=process_group,
        chunk_rows=chunk_rows,
    )
    return (outs[0], outs[1]) if return_entropy else outs[0]


def _token_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None,
    temperature: float,
    logit_scale: float,
    softcap: float | None,
    ignore_index: int,
    return_entropy: bool,
    backend: str,
    process_group: object | None,
    chunk_rows: int | None,
    extras: tuple[str, ...] = (),
) -> tuple[torch.Tensor, ...]:
    """:func:`token_logps`'s work: ``(logps[, entropy], *extras)``, each ``[N]``; ``extras``
    are forward-only statistics (``log_sum_sq_probs``, ``mean_logits``, ``is_top1``; see
    :func:`fastalign._logprobs_torch.logit_stats`), 0 / False at ignored positions."""
    if process_group is not None:
        return _parallel_token_logps(
            hidden,
            weight,
            labels,
            bias=bias,
            temperature=temperature,
            logit_scale=logit_scale,
            softcap=softcap,
            ignore_index=ignore_index,
            return_entropy=return_entropy,
            backend=backend,
            group=process_group,
            chunk_rows=chunk_rows,
            extras=extras,
        )
    n, vocab = _check_inputs(hidden, weight, labels, bias)
    transform = _make_transform(temperature, logit_scale, softcap)
    _check_labels(labels, vocab, ignore_index)
    which = _backend.resolve(backend, hidden.device.type, triton_ok=hidden.dtype != torch.float64)
    rows = _chunk_rows(chunk_rows, vocab)
    keep = (labels != ignore_index).nonzero().squeeze(1)
    h_c = hidden.index_select(0, keep)
    y_c = labels.index_select(0, keep).long()
    if which == "reference":
        head = _ref.token_logps(
            hidden,
            weight,
            labels,
            bias=bias,
            temperature=transform.temperature,
            logit_scale=transform.logit_scale,
            softcap=transform.softcap,
            ignore_index=ignore_index,
            return_entropy=return_entropy,
        )
        head = head if isinstance(head, tuple) else (head,)
        if not extras:
            return head
        outs = logit_stats(h_c, weight, bias, y_c, transform, extras, rows)
        return head + _scatter(outs, keep, n)
    if which == "triton":
        from fastalign._logprobs_triton import fused_logps

        outs = tuple(fused_logps(h_c, weight, bias, y_c, transform, return_entropy))
        if extras:
            outs += logit_stats(h_c, weight, bias, y_c, transform, extras, rows)
    else:
        outs = FusedLogps.apply(
            h_c.contiguous(), weight, bias, y_c, transform, bool(return_entropy), rows, extras
        )
    return _scatter(outs, keep, n)


def _check_inputs(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor | None
) -> tuple[int, int]:
    """Types, shapes, dtypes and devices of a head call (not the label values): (N, V)."""
    _check_float(hidden, "hidden")
    _check_float(weight, "weight")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, not {type(labels).__name__}")
    if hidden.ndim != 2 or weight.ndim != 2:
        raise ShapeError(
            f"hidden must be [N, H] and weight [V, H]; got {tuple(hidden.shape)} and "
            f"{tuple(weight.shape)}"
        )
    n, h_dim = hidden.shape
    vocab = weight.shape[0]
    if weight.shape[1] != h_dim:
        raise ShapeError(f"weight must be [V, {h_dim}] to match hidden, got {tuple(weight.shape)}")
    if vocab == 0:
        raise ShapeError("weight must have at least one row (the vocabulary is empty)")
    if tuple(labels.shape) != (n,):
        raise ShapeError(f"labels must be [{n}] to match hidden, got {tuple(labels.shape)}")
    if hidden.dtype != weight.dtype:
        raise TypeError(f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share a dtype")
    for name, t in (("weight", weight), ("labels", labels)):
        if t.device != hidden.device:
            raise ShapeError(f"{name} is on {t.device} but hidden on {hidden.device}")
    if bias is not None:
        _check_float(bias, "bias")
        if tuple(bias.shape) != (vocab,):
            raise ShapeError(f"bias must be [{vocab}], got {tuple(bias.shape)}")
        if bias.device != hidden.device:
            raise ShapeError(f"bias is on {bias.device} but hidden on {hidden.device}")
    return n, vocab


def _make_transform(temperature: float, logit_scale: float, softcap: float | None) -> Transform:
    return Transform(
        temperature=_check_positive(temperature, "temperature"),  # type: ignore[arg-type]
        logit_scale=_check_positive(logit_scale, "logit_scale"),  # type: ignore[arg-type]
        softcap=_check_positive(softcap, "softcap", allow_none=True),
    )


def _chunk_rows(chunk_rows: int | None, vocab: int) -> int:
    if chunk_rows is None:
        return chunk_rows_for(vocab, _CHUNK_BYTES)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be an int >= 1, got {chunk_rows!r}")
    return chunk_rows


def _parallel_token_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None,
    temperature: float,
    logit_scale: float,
    softcap: float | None,
    ignore_index: int,
    return_entropy: bool,
    backend: str,
    group: object,
    chunk_rows: int | None,
    extras: tuple[str, ...],
) -> tuple[torch.Tensor, ...]:
    """The vocab-parallel path: local checks, then a handshake of the whole group (so that
    any rank's error or any disagreement is raised on every rank), then the sharded
    computation with the same collectives, in the same order and sizes, on every rank."""
    import torch.distributed as dist

    from fastalign import _logprobs_parallel as par

    if not dist.is_available() or not isinstance(group, dist.ProcessGroup):
        raise TypeError(
            "process_group must be a torch.distributed ProcessGroup (e.g. dist.group.WORLD "
            f"or mesh.get_group()), not {type(group).__name__}"
        )
    problem = None
    n = h_dim = v_local = key = 0
    which = "torch"
    settings: tuple = ()
    try:
        n, v_local = _check_inputs(hidden, weight, labels, bias)
        h_dim = hidden.shape[1]
        transform = _make_transform(temperature, logit_scale, softcap)
        if chunk_rows is not None:
            _chunk_rows(chunk_rows, 1)
        which = _backend.resolve(
            backend, hidden.device.type, triton_ok=hidden.dtype != torch.float64
        )
        if which == "reference":
            raise NotImplementedError(
                "backend='reference' with a process group (the reference materializes the "
                "whole head); use 'auto', 'torch' or 'triton'"
            )
        if extras:
            raise NotImplementedError(f"statistics {extras} with a process group")
        if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
        key = par.labels_key(labels)
        # everything that decides the collectives' sizes, count and meaning must agree
        settings = (
            str(hidden.dtype),
            bool(return_entropy),
            which,
            chunk_rows,
            int(ignore_index),
            bias is not None,
            transform,
        )
    except Exception as e:
        problem = f"{type(e).__name__}: {e}"
    offset, vocab = par.agree(group, n, h_dim, v_local, key ^ par.settings_key(settings), problem)
    _check_labels(labels, vocab, ignore_index)  # the same labels, so the same error everywhere
    keep = (labels != ignore_index).nonzero().squeeze(1)
    h_c = hidden.index_select(0, keep).contiguous()
    y_c = labels.index_select(0, keep).long()
    if which == "triton":
        w = weight if weight.stride(-1) == 1 else weight.contiguous()
        outs = par.VocabParallelLogpsTriton.apply(
            h_c, w, bias, y_c, transform, bool(return_entropy), offset, group
        )
    else:
        # chunks sized by the whole vocabulary: every rank runs the same number of
        # same-sized all-reduces (slices may differ in size)
        rows = _chunk_rows(chunk_rows, vocab)
        outs = par.VocabParallelLogps.apply(
            h_c, weight, bias, y_c, transform, bool(return_entropy), rows, offset, group
        )
    return _scatter(outs, keep, n)


def _scatter(
    outs: tuple[torch.Tensor, ...], keep: torch.Tensor, n: int
) -> tuple[torch.Tensor, ...]:
    """Compacted per-token outputs back to all ``n`` positions (0 / False elsewhere)."""
    return tuple(
        torch.zeros(n, dtype=o.dtype, device=o.device).index_copy(0, keep, o) for o in outs
    )


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
    _check_float(hidden, "hidden")
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
