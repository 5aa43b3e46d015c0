"""The one home of argument checks: every public function of fastalign checks its arguments
with these, so the same mistake gets the same message everywhere.

The rule: a wrong *type* is a ``TypeError``, a wrong *value or shape* is an
:class:`~fastalign.errors.InvalidInputError` / :class:`~fastalign.errors.ShapeError` (both
``ValueError``), and every message names the argument. Each check returns the value it
accepted, converted where that is its job (``check_int`` gives an ``int``, ``as_float_array`` a
C-contiguous array), so a call site reads ``x = check_...(x, "x")``.

Sections: numbers and options; strings and texts; NumPy arrays; torch tensors. This module
imports neither NumPy nor torch: the checks that need them import them when called (or receive
their objects), so ``fastalign.bleu`` can check its options without loading either.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastalign.errors import InvalidInputError, ShapeError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import torch

# ---------------------------------------------------------------------------------------------
# numbers and options


def _is_bool(value: Any) -> bool:
    """A Python or NumPy bool (``np.True_``'s type is ``numpy.bool``, ``numpy.bool_`` before
    NumPy 2)."""
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")
    )


def check_real(value: Any, name: str, what: str = "a number") -> float:
    """``value`` as a float: ints, floats, NumPy scalars and one-element tensors, never a bool
    or a str (``float("2")`` would accept a string)."""
    if _is_bool(value) or isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}") from None


def check_number(value: Any, name: str) -> float:
    """A real number that is not NaN (infinities allowed)."""
    v = check_real(value, name)
    if math.isnan(v):
        raise InvalidInputError(f"{name} must not be NaN")
    return v


def check_finite(value: Any, name: str) -> float:
    """A finite real number."""
    v = check_number(value, name)
    if not math.isfinite(v):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    return v


def check_positive(value: Any, name: str, *, allow_none: bool = False) -> float | None:
    """A finite number > 0 (``None`` too when ``allow_none``)."""
    if value is None and allow_none:
        return None
    v = check_real(value, name)
    if not (v > 0.0 and v < math.inf):
        raise InvalidInputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_range(value: Any, name: str, lo: float, hi: float, *, hi_open: bool = True) -> float:
    """A number in ``[lo, hi)`` (``[lo, hi]`` when not ``hi_open``)."""
    v = check_number(value, name)
    ok = lo <= v < hi if hi_open else lo <= v <= hi
    if not ok:
        bracket = ")" if hi_open else "]"
        raise InvalidInputError(f"{name} must be in [{lo}, {hi}{bracket}, got {value!r}")
    return v


def check_open_unit(value: Any, name: str) -> float:
    """A number strictly between 0 and 1 (a similarity threshold)."""
    v = check_real(value, name, "a float")
    if not 0.0 < v < 1.0:
        raise InvalidInputError(f"{name} must be in (0, 1), got {value!r}")
    return v


def check_int(value: Any, name: str, low: int, high: int = 2**64 - 1) -> int:
    """An int (Python or NumPy, never a bool) in ``[low, high]``. The default bound keeps every
    int option within the native types, so a larger one is an error naming it, not an
    ``OverflowError`` from the boundary."""
    if _is_bool(value) or not hasattr(value, "__index__") or isinstance(value, str):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    v = operator.index(value)
    if v < low:
        raise InvalidInputError(f"{name} must be >= {low}, got {v}")
    if v > high:
        raise InvalidInputError(f"{name} must be <= {high}, got {v}")
    return v


def check_bool(value: Any, name: str) -> bool:
    """A bool (Python or NumPy); a string such as ``"no"`` or ``"false"`` is a ``TypeError``,
    not a truthy True."""
    if _is_bool(value):
        return bool(value)
    raise TypeError(f"{name} must be a bool, not {type(value).__name__} ({value!r})")


def check_count(value: Any, name: str) -> int | None:
    """An optional int >= 1 (tile sizes, budgets)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Collection[str]) -> str:
    """One of the strings ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_threads(threads: Any) -> int | None:
    """``threads`` of a parallel call: ``None`` (the shared pool: all cores) or an int >= 1.
    The core refuses more than ``4x`` the machine's cores (at least 64), by name."""
    if threads is None:
        return None
    if _is_bool(threads) or not hasattr(threads, "__index__"):  # int, NumPy ints
        raise TypeError(f"threads must be an int or None, not {type(threads).__name__}")
    threads = operator.index(threads)
    if not 1 <= threads <= 2**31:
        raise InvalidInputError(f"threads must be >= 1 (and a few times the cores), got {threads}")
    return threads


# ---------------------------------------------------------------------------------------------
# strings and texts


def is_unordered(x: Any) -> bool:
    """Sets and mappings: their order depends on the hash seed (or they hold keys, not
    texts), so a result indexed by position would be meaningless."""
    return isinstance(x, (set, frozenset, Mapping)) or (
        hasattr(x, "keys") and hasattr(x, "values") and not hasattr(x, "__array__")
    )


def check_strings(values: Any, name: str, *, allow_none: bool = False) -> list[Any]:
    """A list of ``str`` from a sequence of them (``None`` items too when ``allow_none``:
    references may be missing). A lone ``str`` is refused: it is a sequence of characters, and
    scoring it as such would be silently wrong."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of str, got {type(values).__name__}")
    out = list(values)
    for i, v in enumerate(out):
        if not isinstance(v, str):
            if v is None and allow_none:
                continue
            raise TypeError(f"{name}[{i}] must be a str, got {type(v).__name__}")
    return out


def as_texts(texts: Any, name: str = "texts") -> list[Any] | tuple[Any, ...]:
    """A list or tuple the core can borrow strings from, from a list, tuple, 1-D NumPy array,
    Arrow array, pandas Series or other ordered iterable. The items' types are checked by the
    core, which names the first bad position. Sets and mappings are a ``TypeError``."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of str, not a single {type(texts).__name__}")
    if isinstance(texts, (list, tuple)):
        return texts
    if is_unordered(texts):
        raise TypeError(
            f"{name} must be an ordered sequence of str (a list, a tuple, an array), not a "
            f"{type(texts).__name__}: results are indexed by position"
        )
    if hasattr(texts, "ndim") and hasattr(texts, "tolist"):  # NumPy arrays
        if texts.ndim != 1:
            raise ShapeError(f"{name} must be 1-dimensional, got shape {texts.shape}")
        return texts.tolist()
    if hasattr(texts, "to_pylist"):  # pyarrow Array / ChunkedArray
        return texts.to_pylist()
    if hasattr(texts, "tolist"):  # pandas Series and friends
        return list(texts.tolist())
    if isinstance(texts, Iterable):
        return list(texts)
    raise TypeError(f"{name} must be a sequence of str, not {type(texts).__name__}")


# ---------------------------------------------------------------------------------------------
# NumPy arrays


def as_float_array(
    x: Any,
    name: str,
    *,
    ndim: int | None,
    dtype: type[np.floating[Any]] | None = None,
    finite: bool = False,
) -> npt.NDArray[Any]:
    """``x`` as a C-contiguous array of ``dtype`` (default float64) with ``ndim`` dimensions
    (any number, at least one, when None), copying only when ``x`` is not already one. Complex
    numbers, booleans' look-alikes and objects are a ``TypeError`` (a complex array would
    silently lose its imaginary part); ``finite``: NaN or infinity is an error naming the
    first bad entry."""
    import numpy as np

    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, not {type(x).__name__}")
    if x is None:
        raise TypeError(f"{name} must be an array of numbers, not None")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if (ndim is not None and arr.ndim != ndim) or (ndim is None and arr.ndim == 0):
        want = f"{ndim}-dimensional" if ndim is not None else "an array (at least 1-D)"
        raise ShapeError(f"{name} must be {want}, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float64 if dtype is None else dtype)
    if finite and not np.isfinite(out).all():
        at = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise InvalidInputError(f"{name} must be finite: {name}{list(at)} = {out[at]}")
    return out


def as_bool_array(x: Any, name: str) -> npt.NDArray[np.bool_] | None:
    """An optional array of booleans, C-contiguous."""
    import numpy as np

    if x is None:
        return None
    a = np.asarray(x)
    if a.dtype != np.bool_:
        raise TypeError(f"{name} must be booleans, got dtype {a.dtype}")
    return np.ascontiguousarray(a)


def as_offsets(offsets: Any, name: str = "offsets") -> npt.NDArray[np.int64]:
    """Group boundaries: a 1-D integer array (``[groups + 1]``), as C-contiguous int64."""
    import numpy as np

    if isinstance(offsets, (str, bytes)) or offsets is None:
        raise TypeError(f"{name} must be a 1-D array of integers, not {type(offsets).__name__}")
    o = np.asarray(offsets)
    if o.ndim != 1 or o.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be a 1-D integer array (int64 [groups + 1]), got {o.dtype} {o.shape}"
        )
    return np.ascontiguousarray(o, dtype=np.int64)


def check_gram(g: npt.NDArray[np.float64]) -> None:
    """``g`` (``[B, n, n]``) holds Gram matrices of gradients: positive semidefinite (an
    indefinite one, with a negative eigenvalue beyond rounding, is no Gram matrix and has no
    min-norm point to speak of). Symmetry and finiteness are the core's checks (it names the
    entry), so only symmetric, finite input is looked at here."""
    import numpy as np

    if not np.isfinite(g).all() or not np.array_equal(g, g.transpose(0, 2, 1)) or not g.size:
        return
    eig = np.linalg.eigvalsh(g)
    scale = np.abs(g).max(axis=(1, 2))
    # rounding: a Gram matrix of rank-deficient gradients formed in float32 has eigenvalues
    # down to about -n * 2^-23 * max|G| (measured: -3e-8 relative for n = 3, H = 4096); an
    # indefinite matrix's negative eigenvalue is a fair fraction of its scale
    bad = np.flatnonzero(eig[:, 0] < -1e-6 * g.shape[1] * np.maximum(scale, 1e-300))
    if bad.size:
        b = int(bad[0])
        where = "gram" if g.shape[0] == 1 else f"gram[{b}]"
        raise InvalidInputError(
            f"{where} is not positive semidefinite (smallest eigenvalue {eig[b, 0]:.6g}): "
            "not a Gram matrix of gradients"
        )


# ---------------------------------------------------------------------------------------------
# torch tensors


def check_tensor(
    t: Any, name: str, shape: Sequence[int] | None = None, *, like: str | None = None
) -> None:
    """A ``torch.Tensor`` (of ``shape`` when given: the shape of the argument ``like``)."""
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        as_ = f" (as {like})" if like else ""
        raise ShapeError(f"{name} must have shape {list(shape)}{as_}, got {list(t.shape)}")


def check_finite_where(t: Any, name: str, where: Any) -> None:
    """Every entry of the tensor ``t`` finite (only where the tensor ``where`` is non-zero,
    when given); else an error naming the first bad entry, e.g. ``rewards[1, 7] = nan``."""
    import torch

    finite = torch.isfinite(t)
    if bool(finite.all()):  # the common case: one pass, no mask needed
        return
    bad = ~finite
    if where is not None:
        bad &= where != 0
    if bool(bad.any()):
        at = [int(i) for i in torch.nonzero(bad)[0]]
        idx = ", ".join(map(str, at))
        raise InvalidInputError(f"{name} must be finite: {name}[{idx}] = {t[tuple(at)].item()}")


def check_float_tensor(t: Any, name: str) -> None:
    """A float32 / bfloat16 / float16 / float64 tensor."""
    import torch

    check_tensor(t, name)
    if t.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise TypeError(f"{name} must be float32/bfloat16/float16/float64, got {t.dtype}")


def check_scan(rewards: Any, values: Any, mask: Any, last_values: Any) -> None:
    """The ``[B, T]`` inputs of the RL scans: float tensors of one shape, finite on the
    valid tokens (non-zero ``mask``); ``last_values`` ``[B]`` and finite."""
    check_float_tensor(rewards, "rewards")
    if rewards.dim() != 2:
        raise ShapeError(f"rewards must be [B, T], got shape {list(rewards.shape)}")
    check_tensor(mask, "mask", rewards.shape, like="rewards")
    check_finite_where(rewards, "rewards", mask)
    if values is not None:
        check_float_tensor(values, "values")
        check_tensor(values, "values", rewards.shape, like="rewards")
        check_finite_where(values, "values", mask)
    if last_values is not None:
        check_float_tensor(last_values, "last_values")
        check_tensor(last_values, "last_values", rewards.shape[:1], like="rewards' rows")
        check_finite_where(last_values, "last_values", None)


def check_label_dtype(labels: Any, ignore_index: Any, name: str = "labels") -> None:
    """An integer tensor whose dtype can hold ``ignore_index`` (an int)."""
    import torch

    check_tensor(labels, name)
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


def check_label_values(
    labels: torch.Tensor, vocab: int, ignore_index: int, name: str = "labels"
) -> None:
    """Out-of-range labels (other than ignore_index) raise; costs one reduction and, on an
    accelerator, one scalar device-to-host read."""
    import torch

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


def check_labels(labels: Any, vocab: int, ignore_index: Any, name: str = "labels") -> None:
    """Both label checks: the dtype, then the values."""
    check_label_dtype(labels, ignore_index, name)
    check_label_values(labels, vocab, ignore_index, name)


def check_head(
    hidden: Any,
    weight: Any,
    labels: Any,
    bias: Any,
    *,
    cast_weight: bool = False,
) -> tuple[int, int]:
    """Types, shapes, dtypes and devices of an LM-head call (not the label values): (N, V).
    ``cast_weight``: a float32 weight may go with bf16/fp16 hidden states."""
    import torch

    check_float_tensor(hidden, "hidden")
    check_float_tensor(weight, "weight")
    check_tensor(labels, "labels")
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
    low = (torch.bfloat16, torch.float16)
    mixed_ok = cast_weight and weight.dtype == torch.float32 and hidden.dtype in low
    if hidden.dtype != weight.dtype and not mixed_ok:
        raise TypeError(
            f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share a dtype (or, with "
            "HeadOptions(cast_weight=True), a float32 weight with bf16/fp16 hidden states)"
        )
    for name, t in (("weight", weight), ("labels", labels)):
        if t.device != hidden.device:
            raise ShapeError(f"{name} is on {t.device} but hidden on {hidden.device}")
    if bias is not None:
        check_float_tensor(bias, "bias")
        if tuple(bias.shape) != (vocab,):
            raise ShapeError(f"bias must be [{vocab}], got {tuple(bias.shape)}")
        if bias.device != hidden.device:
            raise ShapeError(f"bias is on {bias.device} but hidden on {hidden.device}")
    return n, vocab


def check_model_head(hidden: Any, weight: Any, bias: Any, who: str) -> None:
    """One model's head of a two-head call: ``{who}_hidden [N, H]``, ``{who}_weight [V, H]``
    and the optional ``{who}_bias [V]``, float tensors on one device."""
    check_float_tensor(hidden, f"{who}_hidden")
    check_float_tensor(weight, f"{who}_weight")
    if hidden.ndim != 2 or weight.ndim != 2:
        raise ShapeError(
            f"{who}_hidden must be [N, H] and {who}_weight [V, H]; got "
            f"{tuple(hidden.shape)} and {tuple(weight.shape)}"
        )
    if weight.shape[1] != hidden.shape[1]:
        raise ShapeError(
            f"{who}_weight must be [V, {hidden.shape[1]}] to match {who}_hidden, got "
            f"{tuple(weight.shape)}"
        )
    if weight.device != hidden.device:
        raise ShapeError(f"{who}_weight is on {weight.device} but {who}_hidden on {hidden.device}")
    if bias is not None:
        check_float_tensor(bias, f"{who}_bias")
        check_tensor(bias, f"{who}_bias", (weight.shape[0],), like=f"{who}_weight's rows")
        if bias.device != hidden.device:
            raise ShapeError(f"{who}_bias is on {bias.device} but {who}_hidden on {hidden.device}")


def check_batch(
    optional: dict[str, Any] | None = None, /, **tensors: Any
) -> tuple[int, torch.device, torch.dtype]:
    """The ``tensors`` (and those of ``optional`` that are not None) are floating ``[B]``
    tensors with the same B, device and dtype: (B, device, dtype)."""
    given = dict(tensors)
    given.update({k: v for k, v in (optional or {}).items() if v is not None})
    ref_name, ref = None, None
    for name, t in given.items():
        check_tensor(t, name)
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.ndim != 1:
            raise ShapeError(f"{name} must be 1-D [B], got shape {tuple(t.shape)}")
        if ref is None:
            ref_name, ref = name, t
            continue
        if t.shape != ref.shape:
            raise ShapeError(
                f"{name} has {t.shape[0]} rows but {ref_name} has {ref.shape[0]}: every "
                "per-example tensor must have the same batch size"
            )
        if t.device != ref.device:
            raise ShapeError(f"{name} is on {t.device} but {ref_name} on {ref.device}")
        if t.dtype != ref.dtype:
            raise TypeError(f"{name} is {t.dtype} but {ref_name} is {ref.dtype}")
    if ref is None:
        raise TypeError("no input tensors")
    return ref.shape[0], ref.device, ref.dtype


def check_pairs(
    policy_chosen_logps: Any,
    policy_rejected_logps: Any,
    ref_chosen_logps: Any,
    ref_rejected_logps: Any,
    **more: Any,
) -> tuple[int, torch.device, torch.dtype]:
    """:func:`check_batch` of a pairwise loss's four ``[B]`` log-prob sums (and ``more``)."""
    return check_batch(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
        **more,
    )


def check_lengths(lengths: Any, name: str, batch: int) -> torch.Tensor | None:
    """Optional per-example token counts: a ``[batch]`` tensor of values >= 0."""
    if lengths is None:
        return None
    import torch

    if not isinstance(lengths, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of token counts, not {type(lengths).__name__}"
        )
    if lengths.shape != (batch,):
        raise ShapeError(f"{name} must be [{batch}], got shape {tuple(lengths.shape)}")
    if bool((lengths < 0).any()):
        raise InvalidInputError(f"{name} must be non-negative token counts")
    return lengths
