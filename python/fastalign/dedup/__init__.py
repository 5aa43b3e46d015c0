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

The package: ``settings`` (the options, checked and named once), ``local`` (one machine),
``index`` (the streaming index, contamination), ``records`` (preference / SFT records),
``cli`` (``fastalign dedup``), ``ray`` (Ray Data); this module is their face.

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

from typing import Any

from fastalign.dedup.index import ContaminationResult, Matches, MinHashIndex, contamination
from fastalign.dedup.local import (
    DedupResult,
    dedup,
    dedup_signatures,
    exact,
    lsh_params,
    normalize_text,
    signatures,
)
from fastalign.dedup.records import dedup_records, record_texts
from fastalign.dedup.settings import MAX_NUM_PERM as MAX_NUM_PERM  # the longest signature
from fastalign.dedup.settings import Normalization

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


def __getattr__(name: str) -> Any:
    # ``fastalign.dedup.ray`` on first use: importing fastalign.dedup never imports Ray
    if name == "ray":
        import importlib

        return importlib.import_module("fastalign.dedup.ray")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
