"""``logps_from_logits``: the selective log-softmax on logits a model already produced,
chunked over rows on the torch path, one program per row on the Triton path; neither holds a
second ``[..., V]`` float32 tensor in the forward or the backward."""

from __future__ import annotations

import torch

from fastalign import _backend
from fastalign._validate import check_float_tensor, check_labels, check_positive
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.logprobs._tiling import chunk_rows_for, compute_dtype
from fastalign.reference import logprobs as _ref

# Live temporary of the chunked torch path off CPU, in bytes of float32 per chunk of rows
_CHUNK_BYTES = 128 * 2**20


class _SelectiveLogSoftmaxTorch(torch.autograd.Function):
    """Chunked over rows. Each chunk is read from memory once per pass direction and worked
    on in a reused float32 buffer that stays in cache (see ``_selective_chunk_rows``); the
    backward forms ``g / T * (onehot - softmax)`` chunk by chunk straight in the gradient."""

    @staticmethod
    def forward(ctx, logits, labels, temperature, ignore_index, chunk_rows):
        n, vocab = logits.shape
        compute = compute_dtype(logits.dtype)
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
    check_float_tensor(logits, "logits")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, not {type(labels).__name__}")
    if logits.ndim < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ShapeError(
            f"labels.shape must equal logits.shape[:-1]; got labels {tuple(labels.shape)} "
            f"and logits {tuple(logits.shape)}"
        )
    if labels.device != logits.device:
        raise ShapeError(f"labels are on {labels.device} but logits on {logits.device}")
    temperature = check_positive(temperature, "temperature")  # type: ignore[assignment]
    vocab = logits.shape[-1]
    if vocab == 0:
        raise ShapeError("logits must have a non-empty last dimension (the vocabulary)")
    check_labels(labels, vocab, ignore_index)
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
