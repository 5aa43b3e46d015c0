"""Argument checks of the log-prob API (types, shapes, dtypes, devices, label values,
transform parameters, tile options), shared by every entry of the package."""

from __future__ import annotations

import torch

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.logprobs._tiling import ACCUMULATE, Transform

_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8)
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_label_dtype(labels: torch.Tensor, ignore_index: int, name: str = "labels") -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(labels).__name__}")
    if labels.dtype not in _INT_DTYPES:
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


def check_label_values(
    labels: torch.Tensor, vocab: int, ignore_index: int, name: str = "labels"
) -> None:
    """Out-of-range labels (other than ignore_index) raise; costs one reduction and, on an
    accelerator, one scalar device-to-host read."""
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


def check_labels(labels: torch.Tensor, vocab: int, ignore_index: int, name: str = "labels"):
    check_label_dtype(labels, ignore_index, name)
    check_label_values(labels, vocab, ignore_index, name)


def check_float(t: torch.Tensor, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32/bfloat16/float16/float64, got {t.dtype}")


def check_positive(value: float | None, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}") from None
    if not (v > 0.0 and v < float("inf")):
        raise InvalidInputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def make_transform(temperature: float, logit_scale: float, softcap: float | None) -> Transform:
    return Transform(
        temperature=check_positive(temperature, "temperature"),  # type: ignore[arg-type]
        logit_scale=check_positive(logit_scale, "logit_scale"),  # type: ignore[arg-type]
        softcap=check_positive(softcap, "softcap", allow_none=True),
    )


def check_count(value: int | None, name: str) -> int | None:
    """An optional int >= 1 (tile sizes, budgets)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_accumulate(accumulate: str) -> str:
    if not isinstance(accumulate, str):
        raise TypeError(f"accumulate must be a str, not {type(accumulate).__name__}")
    if accumulate not in ACCUMULATE:
        raise InvalidInputError(f"accumulate must be one of {ACCUMULATE}, got {accumulate!r}")
    return accumulate


LOW = (torch.bfloat16, torch.float16)


def check_head(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    cast_weight: bool = False,
) -> tuple[int, int]:
    """Types, shapes, dtypes and devices of a head call (not the label values): (N, V).
    ``cast_weight``: a float32 weight may go with bf16/fp16 hidden states."""
    check_float(hidden, "hidden")
    check_float(weight, "weight")
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
    mixed_ok = cast_weight and weight.dtype == torch.float32 and hidden.dtype in LOW
    if hidden.dtype != weight.dtype and not mixed_ok:
        raise TypeError(
            f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share a dtype (or, with "
            "HeadOptions(cast_weight=True), a float32 weight with bf16/fp16 hidden states)"
        )
    for name, t in (("weight", weight), ("labels", labels)):
        if t.device != hidden.device:
            raise ShapeError(f"{name} is on {t.device} but hidden on {hidden.device}")
    if bias is not None:
        check_float(bias, "bias")
        if tuple(bias.shape) != (vocab,):
            raise ShapeError(f"bias must be [{vocab}], got {tuple(bias.shape)}")
        if bias.device != hidden.device:
            raise ShapeError(f"bias is on {bias.device} but hidden on {hidden.device}")
    return n, vocab
