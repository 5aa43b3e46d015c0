"""Per-token log-probabilities of selected tokens.

``logps_from_logits`` works on logits a model already produced. All functions take
``backend="auto" | "triton" | "torch" | "reference"`` (see :mod:`fastalign._backend`).

Numerics: reductions run in float32 (float64 for float64 inputs); the result is float32, or
float64 for float64 inputs. NaN or Inf in the inputs propagate to NaN in the affected rows:
they are never hidden.
"""

from __future__ import annotations

import torch

from fastalign import _backend
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference import logprobs as _ref

__all__ = ["logps_from_logits"]

# Live temporary of the chunked torch path, in bytes of float32 (per chunk of rows).
_CHUNK_BYTES = 32 * 2**20


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (t > 0.0 and t < float("inf")):
        raise InvalidInputError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def _check_labels(labels: torch.Tensor, vocab: int, ignore_index: int, name: str = "labels"):
    """Out-of-range labels (other than ignore_index) raise; costs one reduction and, on an
    accelerator, one scalar device-to-host read."""
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.numel() == 0:
        return
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= vocab))
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
    """Chunked over rows: one float32 chunk of ``[rows, V]`` is live at a time, and the
    backward writes ``g / T * (onehot - softmax)`` chunk by chunk into the gradient."""

    @staticmethod
    def forward(ctx, logits, labels, temperature, ignore_index, chunk_rows):
        n = logits.shape[0]
        compute = _out_dtype(logits.dtype)
        logp = torch.zeros(n, dtype=compute, device=logits.device)
        lse = torch.zeros(n, dtype=compute, device=logits.device)
        mask = labels != ignore_index
        safe = torch.where(mask, labels, torch.zeros_like(labels)).long()
        for s in range(0, n, chunk_rows):
            e = min(n, s + chunk_rows)
            z = logits[s:e].to(compute) / temperature
            lse_c = torch.logsumexp(z, dim=-1)
            lse[s:e] = lse_c
            logp[s:e] = z.gather(1, safe[s:e, None]).squeeze(1) - lse_c
        logp = torch.where(mask, logp, torch.zeros_like(logp))
        ctx.save_for_backward(logits, safe, mask, lse)
        ctx.temperature, ctx.chunk_rows = temperature, chunk_rows
        return logp

    @staticmethod
    def backward(ctx, grad_logp):
        logits, safe, mask, lse = ctx.saved_tensors
        t, chunk_rows = ctx.temperature, ctx.chunk_rows
        n = logits.shape[0]
        grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
        g_all = torch.where(mask, grad_logp.to(lse.dtype), torch.zeros_like(lse)) / t
        for s in range(0, n, chunk_rows):
            e = min(n, s + chunk_rows)
            g = g_all[s:e, None]
            p = torch.exp(logits[s:e].to(lse.dtype) / t - lse[s:e, None])
            chunk = p.mul_(-g)
            chunk.scatter_add_(1, safe[s:e, None], g)
            grad[s:e] = chunk
        return grad, None, None, None, None


class _SelectiveLogSoftmaxTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, temperature, ignore_index):
        from fastalign.kernels import selective_log_softmax as k

        logp, lse = k.forward(logits, labels, temperature, ignore_index)
        ctx.save_for_backward(logits, labels, lse)
        ctx.temperature, ctx.ignore_index = temperature, ignore_index
        return logp

    @staticmethod
    def backward(ctx, grad_logp):
        from fastalign.kernels import selective_log_softmax as k

        logits, labels, lse = ctx.saved_tensors
        grad = k.backward(logits, labels, lse, grad_logp, ctx.temperature, ctx.ignore_index)
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
        chunk_rows: rows per chunk of the torch path (default: about 32 MB of float32).

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
    temperature = _check_temperature(temperature)
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
            chunk_rows = max(1, _CHUNK_BYTES // (4 * vocab))
        elif int(chunk_rows) < 1:
            raise InvalidInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
        out = _SelectiveLogSoftmaxTorch.apply(x, y, temperature, ignore_index, int(chunk_rows))
    return out.reshape(lead)
