"""Dedup on one machine: near-duplicate clusters (:func:`dedup`), exact-duplicate groups
(:func:`exact`), MinHash :func:`signatures` and clusters from them (:func:`dedup_signatures`),
the band choice (:func:`lsh_params`) and the normalization itself (:func:`normalize_text`).
See :mod:`fastalign.dedup` for the method."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from fastalign import _core
from fastalign._validate import as_texts, check_int, check_open_unit, check_threads
from fastalign.dedup import settings
from fastalign.dedup.settings import MAX_NUM_PERM, Normalization, Verify
from fastalign.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy.typing as npt


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


def result_of(out: tuple, empty: np.ndarray, bands: tuple[int, int] | None) -> DedupResult:
    cluster, pairs, similarity, jaccard = out
    keep = cluster == np.arange(len(cluster))
    return DedupResult(keep, cluster, pairs, similarity, jaccard, empty, bands)


def normalize_text(texts: Sequence[str], normalize: bool | Normalization = True) -> list[str]:
    """Each text as the normalization leaves it: what shingles and exact hashes are made of.

    >>> normalize_text(["  Ｆｕｌｌ-width,  ﬁne TEXT! "])
    ['full width fine text']
    """
    return _core.dedup_normalize(as_texts(texts), settings.normalization(normalize))


def lsh_params(threshold: float, num_perm: int = 128) -> tuple[int, int]:
    """The (bands, rows) minimising the equally weighted false-positive and false-negative
    areas for ``threshold`` (datasketch's ``MinHashLSH`` choice).

    >>> lsh_params(0.5, 128), lsh_params(0.9, 128)
    ((25, 5), (5, 25))
    """
    return _core.dedup_lsh_params(
        check_open_unit(threshold, "threshold"), check_int(num_perm, "num_perm", 2, MAX_NUM_PERM)
    )


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
    sh = settings.shingling(num_perm, ngram, unit, normalize, seed)
    bd = settings.banding(threshold, bands, verify)
    out, empty = _core.dedup_cluster(as_texts(texts), sh, bd, check_threads(threads))
    b = bd.bands or _core.dedup_lsh_params(bd.threshold, sh.num_perm)
    return result_of(out, empty, b)


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
    norm, threads = settings.normalization(normalize), check_threads(threads)
    out, empty = _core.dedup_exact(as_texts(texts), norm, threads)
    return result_of(out, empty, None)


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
    sh = settings.shingling(num_perm, ngram, unit, normalize, seed)
    sigs, _empty = _core.dedup_signatures(as_texts(texts), sh, check_threads(threads))
    return sigs


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
    v = settings.verify_mode(verify)
    if v == "exact":
        raise InvalidInputError("exact verification needs the texts: use dedup(texts, ...)")
    arr = settings.signature_array(sigs)
    bd = settings.banding(threshold, bands, v)
    out, empty = _core.dedup_cluster_signatures(arr, bd, check_threads(threads))
    return result_of(out, empty, bd.bands or _core.dedup_lsh_params(bd.threshold, arr.shape[1]))
