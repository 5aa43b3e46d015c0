"""Reference near-duplicate truth: exact Jaccard similarity of word n-gram shingle sets for
every pair that shares a shingle (found through an inverted index, so no such pair is missed),
and the recall / precision of duplicate flags against it. Shingles are made as the peers' users
make them in Python. The tests and the bench measure MinHash dedup against this truth."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def peer_shingles(text: str, ngram: int = 5) -> list[str]:
    """One text's word ``ngram`` shingles as the peers' users make them in Python (a text
    shorter than ``ngram`` words is one shingle)."""
    w = text.split()
    return list({" ".join(w[i : i + ngram]) for i in range(max(1, len(w) - ngram + 1))})


def shingle_sets(texts: list[str], ngram: int = 5) -> list[set[str]]:
    """Word ``ngram`` shingle sets of whitespace-split texts (the corpus is already
    normalized)."""
    return [set(peer_shingles(t, ngram)) for t in texts]


def jaccard_truth(
    texts: list[str], threshold: float, ngram: int = 5
) -> tuple[dict[tuple[int, int], float], np.ndarray]:
    """Every pair with exact Jaccard similarity >= ``threshold`` (found through an inverted
    index of shingles, so no pair sharing a shingle is missed), and per text whether it has
    such a partner."""
    sets = shingle_sets(texts, ngram)
    postings: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for sh in s:
            postings[sh].append(i)
    shared: dict[tuple[int, int], int] = defaultdict(int)
    for ids in postings.values():
        if len(ids) > 1:
            for a in range(len(ids)):
                for b in range(a + 1, len(ids)):
                    shared[ids[a], ids[b]] += 1
    pairs = {}
    for (i, j), common in shared.items():
        jac = common / (len(sets[i]) + len(sets[j]) - common)
        if jac >= threshold:
            pairs[i, j] = jac
    flagged = np.zeros(len(texts), dtype=bool)
    for i, j in pairs:
        flagged[i] = flagged[j] = True
    return pairs, flagged


def doc_scores(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Recall and precision of "this text has a near-duplicate" flags against the truth."""
    tp = int((flagged & truth).sum())
    recall = tp / max(1, int(truth.sum()))
    precision = tp / max(1, int(flagged.sum()))
    return recall, precision
