"""Dataset dedup in Rust: exact duplicates and MinHash-LSH near-duplicates, text in, clusters
out, for preference and SFT data.

Near-duplicates (:func:`dedup`): each text is normalized (NFKC, lowercase, punctuation and
symbols to word boundaries, whitespace collapsed; see :class:`Normalization`), cut into word
(or character) n-gram shingles, hashed to 64 bits, and signed with ``num_perm`` MinHash
permutations (``a * h + b mod 2**32``, ``a`` odd: true permutations, no overflow). Signatures
are cut into ``bands`` of ``rows`` (by default the pair datasketch's ``MinHashLSH`` picks for
the threshold: 128 permutations at 0.8 -> 9 x 13); texts sharing a band are candidates, and
candidates are joined into clusters by union-find. ``verify`` decides which candidates count:

* ``False`` / ``"none"``: all of them (plain MinHash LSH, as a datasketch ``MinHashLSH`` query);
* ``"minhash"``: those whose signature estimate of the Jaccard similarity reaches ``threshold``;
* ``True`` / ``"exact"``: those whose exact Jaccard similarity of shingle sets reaches it.

A cluster's id is the index of its first member, and that member is the one kept. Results do
not depend on the number of threads. Empty documents (no shingle: no word left after
normalization, or no character for ``unit="char"``) are never near-duplicates (each is its own
cluster, kept) and are flagged in :attr:`DedupResult.empty`; :func:`exact` groups them like any
other text.

Corpora beyond one machine: :mod:`fastalign.dedup.ray` runs the same clustering on Ray Data
(the ``ray`` extra), imported on first use of ``fastalign.dedup.ray``.

Example:
    >>> from fastalign import dedup
    >>> texts = ["The cat sat on the mat today.", "the cat sat on the mat today",
    ...          "A completely different sentence here.", ""]
    >>> r = dedup.dedup(texts, threshold=0.8)
    >>> r.keep.tolist(), r.cluster.tolist()
    ([True, False, True, True], [0, 0, 2, 3])
    >>> r.pairs.tolist(), r.similarity.tolist()
    ([[0, 1]], [1.0])
    >>> dedup.exact(["a  b", "A b", "a, b"]).cluster.tolist()   # normalization on by default
    [0, 0, 0]
    >>> dedup.lsh_params(0.8, 128)
    (9, 13)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fastalign import _core
from fastalign._validate import check_threads
from fastalign.errors import InvalidInputError, ShapeError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "ContaminationResult",
    "DedupResult",
    "Matches",
    "MinHashIndex",
    "Normalization",
    "contamination",
    "dedup",
    "dedup_records",
    "dedup_signatures",
    "exact",
    "lsh_params",
    "normalize_text",
    "record_texts",
    "signatures",
]

Verify = bool | Literal["none", "minhash", "exact"]


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

    def _args(self) -> tuple[bool, bool, bool, bool]:
        return (self.nfkc, self.lowercase, self.punctuation, self.whitespace)


def _norm(normalize: bool | Normalization) -> tuple[bool, bool, bool, bool]:
    if isinstance(normalize, Normalization):
        return normalize._args()
    if isinstance(normalize, (bool, np.bool_)):
        return (bool(normalize),) * 4
    raise TypeError(f"normalize must be a bool or a Normalization, not {type(normalize).__name__}")


def _verify(verify: Verify) -> str:
    if verify is True:
        return "exact"
    if verify is False or verify is None:
        return "none"
    if verify in ("none", "minhash", "exact"):
        return str(verify)
    raise InvalidInputError(f"verify must be False, True, 'minhash' or 'exact', got {verify!r}")


# The longest MinHash signature (the band search and the index format's bound).
MAX_NUM_PERM = 4096


def _int(value: Any, name: str, low: int, high: int = 2**64 - 1) -> int:
    """``value`` as an int in ``[low, high]`` (the default bound keeps every int option
    within the native types: a larger one is an error naming it, not an OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low:
        raise InvalidInputError(f"{name} must be >= {low}, got {value}")
    if value > high:
        raise InvalidInputError(f"{name} must be <= {high}, got {value}")
    return int(value)


def _threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise TypeError(f"threshold must be a float, not {type(threshold).__name__}")
    t = float(threshold)
    if not 0.0 < t < 1.0:
        raise InvalidInputError(f"threshold must be in (0, 1), got {threshold!r}")
    return t


def _shingling(num_perm: int, ngram: int, unit: str, normalize: Any, seed: int) -> tuple:
    if unit not in ("word", "char"):
        raise InvalidInputError(f"unit must be 'word' or 'char', got {unit!r}")
    seed = _int(seed, "seed", 0)  # < 2**64 by _int's default bound
    num_perm = _int(num_perm, "num_perm", 2, MAX_NUM_PERM)
    return (num_perm, _int(ngram, "ngram", 1), unit, _norm(normalize), seed)


def _bands(bands: tuple[int, int] | None) -> tuple[int, int] | None:
    if bands is None:
        return None
    if isinstance(bands, (str, bytes)) or len(bands) != 2:
        raise TypeError(f"bands must be a (bands, rows) pair, got {bands!r}")
    return (_int(bands[0], "bands[0]", 1), _int(bands[1], "bands[1]", 1))


def _texts(texts: Any, name: str = "texts") -> list[str] | tuple[str, ...]:
    """A list (or tuple) the core can borrow strings from: str items are checked there, with
    their position in the error."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of str, not a single {type(texts).__name__}")
    if isinstance(texts, (list, tuple)):
        return texts
    if isinstance(texts, np.ndarray):
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


@dataclasses.dataclass(frozen=True, eq=False)
class DedupResult:
    """The outcome of a dedup call over ``n`` texts.

    Attributes:
        keep: bool ``[n]``: True for the first member of each cluster (the texts to keep).
        cluster: int64 ``[n]``: the index of each text's cluster's first member.
        pairs: int64 ``[m, 2]``: the duplicate pairs ``(i, j)``, ``i < j``, that joined the
            clusters (candidates that passed verification), sorted.
        similarity: float64 ``[m]``: each pair's MinHash estimate of its Jaccard similarity
            (1.0 for exact duplicates).
        jaccard: float64 ``[m]``: each pair's exact Jaccard similarity (``verify="exact"``
            only, else None).
        empty: bool ``[n]``: texts with no shingle after normalization (never near-duplicates);
            for :func:`exact`, texts whose normalized form is empty (one group).
        bands: the (bands, rows) used (None for exact dedup).
    """

    keep: npt.NDArray[np.bool_]
    cluster: npt.NDArray[np.int64]
    pairs: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float64]
    jaccard: npt.NDArray[np.float64] | None
    empty: npt.NDArray[np.bool_]
    bands: tuple[int, int] | None = None

    @property
    def n_removed(self) -> int:
        return int(len(self.keep) - self.keep.sum())

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    def cluster_sizes(self) -> npt.NDArray[np.int64]:
        """The size of each text's cluster."""
        return np.bincount(self.cluster, minlength=len(self.cluster))[self.cluster]

    def clusters(self) -> list[npt.NDArray[np.int64]]:
        """The members of every cluster with more than one member, each sorted, by first
        member."""
        order = np.argsort(self.cluster, kind="stable")
        ids = self.cluster[order]
        cuts = np.flatnonzero(np.diff(ids)) + 1
        return [g for g in np.split(order, cuts) if len(g) > 1]

    def summary(self) -> dict[str, int]:
        """Counts for a report: texts, kept, removed, duplicate clusters, largest cluster,
        empty texts."""
        n = len(self.keep)
        sizes = np.bincount(self.cluster, minlength=n) if n else np.zeros(0, np.int64)
        return {
            "texts": n,
            "kept": self.n_kept,
            "removed": self.n_removed,
            "clusters": int((sizes > 1).sum()),
            "largest_cluster": int(sizes.max()) if n else 0,
            "empty": int(self.empty.sum()),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"DedupResult(texts={s['texts']}, kept={s['kept']}, removed={s['removed']}, "
            f"clusters={s['clusters']}, largest_cluster={s['largest_cluster']}, "
            f"pairs={len(self.pairs)})"
        )


def _result(out: tuple, empty: np.ndarray, bands: tuple[int, int] | None) -> DedupResult:
    cluster, pairs, similarity, jaccard = out
    keep = cluster == np.arange(len(cluster))
    return DedupResult(keep, cluster, pairs, similarity, jaccard, empty, bands)


def normalize_text(texts: Sequence[str], normalize: bool | Normalization = True) -> list[str]:
    """Each text as the normalization leaves it: what shingles and exact hashes are made of.

    >>> normalize_text(["  Ｆｕｌｌ-width,  ﬁne TEXT! "])
    ['full width fine text']
    """
    return _core.dedup_normalize(_texts(texts), _norm(normalize))


def lsh_params(threshold: float, num_perm: int = 128) -> tuple[int, int]:
    """The (bands, rows) minimising the equally weighted false-positive and false-negative
    areas for ``threshold`` (datasketch's ``MinHashLSH`` choice).

    >>> lsh_params(0.5, 128), lsh_params(0.9, 128)
    ((25, 5), (5, 25))
    """
    return _core.lsh_params(_threshold(threshold), _int(num_perm, "num_perm", 2, MAX_NUM_PERM))


def dedup(
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    unit: str = "word",
    normalize: bool | Normalization = True,
    seed: int = 0,
    verify: Verify = False,
    bands: tuple[int, int] | None = None,
    threads: int | None = None,
) -> DedupResult:
    """Near-duplicate clusters of ``texts`` by MinHash LSH (see the module docs).

    Args:
        texts: a sequence of ``str`` (list, tuple, NumPy/pyarrow string array, pandas Series).
            ``None`` or any non-string item is a ``TypeError`` naming its index.
        threshold: the Jaccard similarity that makes a near-duplicate, in (0, 1).
        num_perm: MinHash permutations (signature length).
        ngram: shingle length in units.
        unit: ``"word"`` or ``"char"`` shingles. A text shorter than ``ngram`` units is one
            shingle.
        normalize: True (every step), False (none) or a :class:`Normalization`.
        seed: the permutation family's seed.
        verify: which LSH candidates count (False, ``"minhash"``, True / ``"exact"``).
        bands: ``(bands, rows)`` to override the choice made for ``threshold``.
        threads: worker threads (default: all cores).

    Returns:
        A :class:`DedupResult`.
    """
    sh = _shingling(num_perm, ngram, unit, normalize, seed)
    bd = (_threshold(threshold), _bands(bands), _verify(verify))
    out, empty = _core.dedup_cluster(_texts(texts), sh, bd, check_threads(threads))
    b = bd[1] or _core.lsh_params(bd[0], sh[0])
    return _result(out, empty, b)


def exact(
    texts: Sequence[str],
    *,
    normalize: bool | Normalization = True,
    threads: int | None = None,
) -> DedupResult:
    """Exact-duplicate groups: texts whose normalized forms are equal (compared by 128-bit
    xxh3 hashes; a false match would need a hash collision, probability ~n^2 / 2^129).

    >>> exact(["x", "y", "X!", "x"]).cluster.tolist()
    [0, 1, 0, 0]
    """
    out, empty = _core.dedup_exact(_texts(texts), _norm(normalize), check_threads(threads))
    return _result(out, empty, None)


def signatures(
    texts: Sequence[str],
    *,
    num_perm: int = 128,
    ngram: int = 5,
    unit: str = "word",
    normalize: bool | Normalization = True,
    seed: int = 0,
    threads: int | None = None,
) -> npt.NDArray[np.uint32]:
    """MinHash signatures, uint32 ``[n, num_perm]`` (an empty text's row is all ``2**32 - 1``).

    Signatures made with the same parameters can be computed on many processes or machines,
    stacked with ``np.concatenate`` and clustered by :func:`dedup_signatures`, or inserted into
    a :class:`MinHashIndex`.

    >>> s = signatures(["a b c d e f", "a b c d e f"], num_perm=16)
    >>> s.shape, s.dtype.name, bool((s[0] == s[1]).all())
    ((2, 16), 'uint32', True)
    """
    sh = _shingling(num_perm, ngram, unit, normalize, seed)
    sigs, _empty = _core.dedup_signatures(_texts(texts), sh, check_threads(threads))
    return sigs


def _sig_array(sigs: Any, name: str = "signatures") -> np.ndarray:
    arr = np.asarray(sigs)
    if arr.dtype != np.uint32:
        raise TypeError(f"{name} must be uint32 (from fastalign.dedup.signatures), got {arr.dtype}")
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be [n, num_perm], got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def dedup_signatures(
    sigs: npt.ArrayLike,
    *,
    threshold: float = 0.8,
    verify: Literal[False, "none", "minhash"] = False,
    bands: tuple[int, int] | None = None,
    threads: int | None = None,
) -> DedupResult:
    """Near-duplicate clusters from precomputed :func:`signatures` (no texts, so ``verify`` is
    False or ``"minhash"``): ``dedup_signatures(signatures(texts, ...))`` equals
    ``dedup(texts, ...)``."""
    v = _verify(verify)
    if v == "exact":
        raise InvalidInputError("exact verification needs the texts: use dedup(texts, ...)")
    arr = _sig_array(sigs)
    bd = (_threshold(threshold), _bands(bands), v)
    out, empty = _core.dedup_cluster_signatures(arr, bd, check_threads(threads))
    return _result(out, empty, bd[1] or _core.lsh_params(bd[0], arr.shape[1]))


@dataclasses.dataclass(frozen=True, eq=False)
class Matches:
    """Candidates per query: ``ids[offsets[q]:offsets[q + 1]]`` (sorted) and their MinHash
    estimates; ``matches[q]`` gives ``(ids, similarity)`` of query ``q``."""

    offsets: npt.NDArray[np.int64]
    ids: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, q: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        if not -len(self) <= q < len(self):
            raise IndexError(f"query {q} out of range for {len(self)} queries")
        q %= len(self)
        a, b = self.offsets[q], self.offsets[q + 1]
        return self.ids[a:b], self.similarity[a:b]

    def __iter__(self) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        return (self[q] for q in range(len(self)))


class MinHashIndex:
    """A streaming MinHash LSH index for data that arrives in pieces. It holds signatures and
    band buckets only (never the texts): about ``4 * num_perm`` bytes per text plus the
    buckets.

    ``add`` returns, per text, whether no earlier text (in the index or earlier in the batch)
    is its near-duplicate; :meth:`clusters` gives the same clusters as :func:`dedup` on
    everything added so far, however the stream was split. The two "keep" answers can differ:
    when a later text C joins two earlier, unrelated texts A and B, ``add`` has kept both A
    and B (nothing linked them yet), while :func:`dedup` on A, B, C keeps only A (one
    cluster). Copies with identical signatures join their original directly (no pairwise
    checks through their buckets).

    Example:
        >>> index = MinHashIndex(threshold=0.7)
        >>> index.add(["one two three four five six", "seven eight nine ten eleven"]).tolist()
        [True, True]
        >>> index.add(["One two three four five six!"]).tolist()
        [False]
        >>> index.clusters().tolist()
        [0, 1, 0]
        >>> ids, sim = index.query(["seven eight nine ten eleven"])[0]
        >>> ids.tolist(), sim.tolist()
        ([1], [1.0])
    """

    def __init__(
        self,
        *,
        threshold: float = 0.8,
        num_perm: int = 128,
        ngram: int = 5,
        unit: str = "word",
        normalize: bool | Normalization = True,
        seed: int = 0,
        verify: Literal[False, "none", "minhash"] = False,
        bands: tuple[int, int] | None = None,
        threads: int | None = None,
    ) -> None:
        v = _verify(verify)
        if v == "exact":
            raise InvalidInputError(
                "a MinHashIndex keeps signatures only: verify must be False or 'minhash'"
            )
        sh = _shingling(num_perm, ngram, unit, normalize, seed)
        self._core = _core.MinHashIndexCore(sh, (_threshold(threshold), _bands(bands), v), threads)

    @classmethod
    def _wrap(cls, core: Any) -> MinHashIndex:
        self = cls.__new__(cls)
        self._core = core
        return self

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        t, b, r, v = self._core.banding
        p = self._core.shingling[0]
        return (
            f"MinHashIndex(texts={len(self)}, threshold={t}, num_perm={p}, bands={b}x{r}, "
            f"verify={v!r})"
        )

    @property
    def params(self) -> dict[str, Any]:
        """The shingling and banding parameters."""
        num_perm, ngram, unit, norm, seed = self._core.shingling
        t, b, r, v = self._core.banding
        return {
            "threshold": t,
            "num_perm": num_perm,
            "ngram": ngram,
            "unit": unit,
            "normalize": Normalization(*norm),
            "seed": seed,
            "bands": (b, r),
            "verify": v,
        }

    def add(self, texts: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Inserts texts (ids continue from ``len(self)``); per text, True when no earlier text
        is its near-duplicate."""
        return self._core.add(_texts(texts))

    def add_signatures(self, sigs: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Inserts precomputed :func:`signatures` (made with this index's parameters)."""
        return self._core.add_signatures(_sig_array(sigs))

    def query(self, texts: Sequence[str]) -> Matches:
        """Indexed texts sharing a band with each query (with ``verify="minhash"`` only those
        whose estimate reaches the threshold). The index is not changed."""
        return Matches(*self._core.query(_texts(texts)))

    def query_signatures(self, sigs: npt.ArrayLike) -> Matches:
        return Matches(*self._core.query_signatures(_sig_array(sigs)))

    def clusters(self) -> npt.NDArray[np.int64]:
        """Per indexed text, the id of its cluster's first member."""
        return self._core.clusters()

    def signatures(self) -> npt.NDArray[np.uint32]:
        """The signatures held, ``[len(self), num_perm]``."""
        return self._core.signatures()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the index to ``path`` atomically (a temporary file renamed into place)."""
        _atomic_write_bytes(os.fspath(path), self._core.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, threads: int | None = None) -> MinHashIndex:
        """The index :meth:`save` wrote (buckets and clusters are rebuilt from signatures)."""
        with open(path, "rb") as f:
            data = f.read()
        return cls._wrap(_core.MinHashIndexCore.from_bytes(data, threads))


def _default_mode(fd: int) -> None:
    """Give a file from ``mkstemp`` (mode 0600) the mode a plain ``open`` would."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def _atomic_write_bytes(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fastalign-", suffix=".tmp")
    _default_mode(fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclasses.dataclass(frozen=True, eq=False)
class ContaminationResult:
    """Which eval texts have a near-duplicate in train.

    Attributes:
        contaminated: bool ``[n_eval]``.
        match: int64 ``[n_eval]``: the most similar train text among the candidates (-1 when
            none).
        similarity: float64 ``[n_eval]``: that match's similarity (exact Jaccard with
            ``verify="exact"``, else the MinHash estimate; 0 when none).
    """

    contaminated: npt.NDArray[np.bool_]
    match: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float64]

    @property
    def rate(self) -> float:
        """The contaminated fraction of the eval set."""
        return float(self.contaminated.mean()) if len(self.contaminated) else 0.0


def contamination(
    train: Sequence[str],
    eval: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    unit: str = "word",
    normalize: bool | Normalization = True,
    seed: int = 0,
    verify: Verify = "minhash",
    bands: tuple[int, int] | None = None,
    threads: int | None = None,
) -> ContaminationResult:
    """Eval texts with a near-duplicate in ``train`` (Jaccard >= ``threshold`` by the
    ``verify`` rule; the default ``"minhash"`` keeps LSH candidates whose estimate reaches it).

    >>> train = ["the quick brown fox jumps over it"]
    >>> r = contamination(train, ["The quick brown fox jumps over it.", "no"], verify="exact")
    >>> r.contaminated.tolist(), r.match.tolist(), r.similarity.tolist()
    ([True, False], [0, -1], [1.0, 0.0])
    """
    v = _verify(verify)
    train_l, eval_l = _texts(train, "train"), _texts(eval, "eval")
    index = MinHashIndex(
        threshold=threshold, num_perm=num_perm, ngram=ngram, unit=unit, normalize=normalize,
        seed=seed, verify="minhash" if v == "minhash" else "none", bands=bands, threads=threads,
    )  # fmt: skip
    index.add(train_l)
    m = index.query(eval_l)
    sim = m.similarity
    if v == "exact" and len(m.ids):
        q = np.repeat(np.arange(len(m)), np.diff(m.offsets))
        pairs = np.ascontiguousarray(np.stack([m.ids, q], axis=1))
        sh = _shingling(num_perm, ngram, unit, normalize, seed)
        sim = _core.dedup_jaccard(train_l, eval_l, pairs, sh, threads)
    n = len(m)
    match = np.full(n, -1, dtype=np.int64)
    best = np.zeros(n, dtype=np.float64)
    for q in range(n):
        a, b = m.offsets[q], m.offsets[q + 1]
        if b > a:
            k = a + int(np.argmax(sim[a:b]))  # first best: the lowest train id
            match[q], best[q] = m.ids[k], sim[k]
    ok = best >= threshold if v != "none" else match >= 0
    match = np.where(ok, match, -1)
    best = np.where(ok, best, 0.0)
    return ContaminationResult(ok, match, best)


# -- preference and SFT records ------------------------------------------------------------------


def _field_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise TypeError(f"{where} is None (drop or fill missing rows first)")
    if isinstance(value, (Sequence, np.ndarray)) and all(isinstance(m, dict) for m in value):
        # a chat: one "role: content" line per message
        lines = []
        for k, msg in enumerate(value):
            content = msg.get("content")
            if not isinstance(content, str):
                raise TypeError(
                    f"{where}[{k}]['content'] must be a str, not {type(content).__name__}"
                )
            lines.append(f"{msg.get('role', '')}: {content}")
        return "\n".join(lines)
    raise TypeError(f"{where} must be a str or a list of chat messages, not {type(value).__name__}")


def _key_text(parts: list[str]) -> str:
    """The dedup key of one record from its fields' texts: a lone field as is, several joined
    by a record-separator line (every path, local or Ray, must build keys the same way)."""
    return parts[0] if len(parts) == 1 else "\n\x1e\n".join(parts)


def record_texts(records: Any, key: str | Sequence[str] = "prompt") -> list[str]:
    """The dedup key text of each record: the ``key`` field, or several fields joined by a
    separator line. Records may be a list of dicts, a Hugging Face ``datasets.Dataset``, a
    pyarrow ``Table`` or a pandas ``DataFrame``; a field may be a string or a chat (a list of
    ``{"role", "content"}`` messages, one ``role: content`` line each).

    >>> record_texts([{"prompt": "Hi", "chosen": "A", "rejected": "B"}], ["prompt", "chosen"])
    ['Hi\\n\\x1e\\nA']
    """
    keys = [key] if isinstance(key, str) else list(key)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"key must be a column name or a list of them, got {key!r}")
    columns = _columns(records, keys)
    n = len(columns[0])
    out = []
    for i in range(n):
        parts = [
            _field_text(col[i], f"row {i}: {k!r}") for k, col in zip(keys, columns, strict=True)
        ]
        out.append(_key_text(parts))
    return out


def _columns(records: Any, keys: list[str]) -> list[Sequence[Any]]:
    names = getattr(records, "column_names", None)
    if names is None and hasattr(records, "columns") and hasattr(records, "iloc"):
        names = list(records.columns)  # pandas
    if names is not None:
        missing = [k for k in keys if k not in names]
        if missing:
            raise KeyError(f"no column {missing[0]!r} (columns: {list(names)})")
        cols = []
        for k in keys:
            col = records[k]
            if hasattr(col, "to_pylist"):
                col = col.to_pylist()
            elif hasattr(col, "tolist"):
                col = col.tolist()
            cols.append(list(col))
        return cols
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise TypeError(
            "records must be a list of dicts, a datasets.Dataset, a pyarrow Table or a "
            f"pandas DataFrame, not {type(records).__name__}"
        )
    cols = [[] for _ in keys]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise TypeError(f"row {i} is {type(rec).__name__}, not a dict")
        for c, k in zip(cols, keys, strict=True):
            if k not in rec:
                raise KeyError(f"row {i} has no field {k!r}")
            c.append(rec[k])
    return cols


def dedup_records(
    records: Any,
    key: str | Sequence[str] = "prompt",
    *,
    exact_only: bool = False,
    **kwargs: Any,
) -> tuple[Any, DedupResult]:
    """Deduplicates preference or SFT records by ``key`` (``"prompt"``, or e.g.
    ``["prompt", "chosen", "rejected"]``) and returns ``(kept records, result)``: the kept
    records have the input's type (a list, ``datasets.Dataset`` via ``select``, pyarrow
    ``Table`` via ``take``, pandas ``DataFrame`` via ``iloc``). ``exact_only=True`` uses
    :func:`exact`; other keyword arguments go to :func:`dedup`.

    >>> rows = [{"prompt": "Say hi to Bob"}, {"prompt": "say hi to bob!"}, {"prompt": "Other"}]
    >>> kept, r = dedup_records(rows, exact_only=True)
    >>> [x["prompt"] for x in kept], r.n_removed
    (['Say hi to Bob', 'Other'], 1)
    """
    texts = record_texts(records, key)
    result = exact(texts, **kwargs) if exact_only else dedup(texts, **kwargs)
    idx = np.flatnonzero(result.keep)
    if type(records).__module__.startswith("pyarrow"):
        kept = records.take(idx)  # pyarrow.Table
    elif hasattr(records, "select") and hasattr(records, "column_names"):
        kept = records.select(idx)  # datasets.Dataset
    elif hasattr(records, "iloc"):
        kept = records.iloc[idx]
    else:
        kept = [records[i] for i in idx]
    return kept, result


def __getattr__(name: str) -> Any:
    # ``fastalign.dedup.ray`` on first use: importing fastalign.dedup never imports Ray
    if name == "ray":
        import importlib

        return importlib.import_module("fastalign.dedup.ray")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
