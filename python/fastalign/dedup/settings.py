"""The settings of a MinHash dedup, checked once and named: how texts are normalized
(:class:`Normalization`), shingled and signed (:class:`Shingling`), and banded and verified
(:class:`Banding`). The local functions, the index, the Ray engine and the CLI all build them
here, so an option means the same everywhere and is refused with the same message."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import numpy as np

from fastalign._validate import check_choice, check_int, check_open_unit
from fastalign.errors import InvalidInputError, ShapeError

Verify = bool | Literal["none", "minhash", "exact"]

# The longest MinHash signature (the band search and the index format's bound).
MAX_NUM_PERM = 4096


@dataclasses.dataclass(frozen=True)
class Normalization:
    """The normalization steps applied before shingling or exact hashing (``normalize=True``
    is all of them, ``False`` none).

    Attributes:
        nfkc: Unicode NFKC (full-width forms, ligatures, compatibility characters).
        lowercase: Unicode lowercase, final sigma folded to sigma (so case never matters).
        punctuation: characters of Unicode category P* (punctuation) or S* (symbols) become
            word boundaries (``"it's"`` -> ``"it s"``, ``"$5"`` -> ``"5"``).
        whitespace: whitespace runs (Python's ``str.isspace``) collapse to one space, ends
            trimmed. Words are always split at whitespace; this matters for ``unit="char"``
            shingles and for :func:`exact`.
    """

    nfkc: bool = True
    lowercase: bool = True
    punctuation: bool = True
    whitespace: bool = True


class Shingling(NamedTuple):
    """How texts become signatures (the core's shingling settings, by name)."""

    num_perm: int
    ngram: int
    unit: str
    normalize: Normalization
    seed: int


class Banding(NamedTuple):
    """How signatures become clusters: the threshold, an explicit ``(bands, rows)`` or None
    (the choice made for the threshold), and the verification rule."""

    threshold: float
    bands: tuple[int, int] | None
    verify: str


def normalization(normalize: Any) -> Normalization:
    """``normalize`` (a bool: every step or none, or a :class:`Normalization`) as a
    :class:`Normalization`."""
    if isinstance(normalize, Normalization):
        return normalize
    if isinstance(normalize, (bool, np.bool_)):
        return Normalization(*(bool(normalize),) * 4)
    raise TypeError(f"normalize must be a bool or a Normalization, not {type(normalize).__name__}")


def verify_mode(verify: Any) -> str:
    """``verify`` as one of ``"none"``, ``"minhash"``, ``"exact"``."""
    if verify is True:
        return "exact"
    if verify is False or verify is None:
        return "none"
    if isinstance(verify, str) and verify in ("none", "minhash", "exact"):
        return verify
    raise InvalidInputError(f"verify must be False, True, 'minhash' or 'exact', got {verify!r}")


def shingling(num_perm: Any, ngram: Any, unit: Any, normalize: Any, seed: Any) -> Shingling:
    """Checked :class:`Shingling` settings (every int within the core's types, by name)."""
    unit = check_choice(unit, "unit", ("word", "char"))
    seed = check_int(seed, "seed", 0)  # < 2**64 by check_int's default bound
    num_perm = check_int(num_perm, "num_perm", 2, MAX_NUM_PERM)
    return Shingling(num_perm, check_int(ngram, "ngram", 1), unit, normalization(normalize), seed)


def banding(threshold: Any, bands: Any, verify: Any) -> Banding:
    """Checked :class:`Banding` settings."""
    return Banding(check_open_unit(threshold, "threshold"), band_rows(bands), verify_mode(verify))


def band_rows(bands: Any) -> tuple[int, int] | None:
    """An explicit ``(bands, rows)`` pair, or None."""
    if bands is None:
        return None
    if isinstance(bands, (str, bytes)) or not hasattr(bands, "__len__") or len(bands) != 2:
        raise TypeError(f"bands must be a (bands, rows) pair, got {bands!r}")
    return (check_int(bands[0], "bands[0]", 1), check_int(bands[1], "bands[1]", 1))


def signature_array(sigs: Any, name: str = "signatures") -> np.ndarray:
    """MinHash signatures as a C-contiguous uint32 ``[n, num_perm]`` array."""
    arr = np.asarray(sigs)
    if arr.dtype != np.uint32:
        raise TypeError(f"{name} must be uint32 (from fastalign.dedup.signatures), got {arr.dtype}")
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be [n, num_perm], got shape {arr.shape}")
    return np.ascontiguousarray(arr)
