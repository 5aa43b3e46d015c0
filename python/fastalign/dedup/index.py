"""A streaming MinHash LSH index (:class:`MinHashIndex`) for data that arrives in pieces, and
train / eval :func:`contamination` on top of it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fastalign import _core
from fastalign._files import atomic_write_bytes
from fastalign._validate import as_texts, check_threads
from fastalign.dedup import settings
from fastalign.dedup.settings import Normalization, Verify
from fastalign.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy.typing as npt


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
        v = settings.verify_mode(verify)
        if v == "exact":
            raise InvalidInputError(
                "a MinHashIndex keeps signatures only: verify must be False or 'minhash'"
            )
        sh = settings.shingling(num_perm, ngram, unit, normalize, seed)
        bd = settings.banding(threshold, bands, v)
        self._core = _core.MinHashIndexCore(sh, bd, check_threads(threads))

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
        return self._core.add(as_texts(texts))

    def add_signatures(self, sigs: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Inserts precomputed :func:`signatures` (made with this index's parameters)."""
        return self._core.add_signatures(settings.signature_array(sigs))

    def query(self, texts: Sequence[str]) -> Matches:
        """Indexed texts sharing a band with each query (with ``verify="minhash"`` only those
        whose estimate reaches the threshold). The index is not changed."""
        return Matches(*self._core.query(as_texts(texts)))

    def query_signatures(self, sigs: npt.ArrayLike) -> Matches:
        return Matches(*self._core.query_signatures(settings.signature_array(sigs)))

    def clusters(self) -> npt.NDArray[np.int64]:
        """Per indexed text, the id of its cluster's first member."""
        return self._core.clusters()

    def signatures(self) -> npt.NDArray[np.uint32]:
        """The signatures held, ``[len(self), num_perm]``."""
        return self._core.signatures()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the index to ``path`` atomically (a temporary file renamed into place)."""
        atomic_write_bytes(os.fspath(path), self._core.to_bytes(), tag="index")

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, threads: int | None = None) -> MinHashIndex:
        """The index :meth:`save` wrote (buckets and clusters are rebuilt from signatures)."""
        with open(path, "rb") as f:
            data = f.read()
        return cls._wrap(_core.MinHashIndexCore.from_bytes(data, check_threads(threads)))


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
    v = settings.verify_mode(verify)
    train_l, eval_l = as_texts(train, "train"), as_texts(eval, "eval")
    index = MinHashIndex(
        threshold=threshold, num_perm=num_perm, ngram=ngram, unit=unit, normalize=normalize,
        seed=seed, verify="minhash" if v == "minhash" else "none", bands=bands, threads=threads,
    )  # fmt: skip
    index._core.add(train_l, "train")
    m = Matches(*index._core.query(eval_l, "eval"))
    sim = m.similarity
    if v == "exact" and len(m.ids):
        q = np.repeat(np.arange(len(m)), np.diff(m.offsets))
        pairs = np.ascontiguousarray(np.stack([m.ids, q], axis=1))
        sh = settings.shingling(num_perm, ngram, unit, normalize, seed)
        sim = _core.dedup_jaccard(
            train_l, eval_l, pairs, sh, check_threads(threads), ("train", "eval")
        )
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
