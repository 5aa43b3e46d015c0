"""Synthetic corpora with planted near-duplicates, and their exact ground truth, for the dedup
tests and benchmark (generated, never downloaded)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def dedup_corpus(
    n: int, seed: int, *, dup_frac: float = 0.3, min_words: int = 50, max_words: int = 300,
    ngram: int = 5, sim_range: tuple[float, float] = (0.5, 1.0),
) -> list[str]:  # fmt: skip
    """``n`` documents of ``min_words``-``max_words`` lowercase words (a Zipf vocabulary of
    pseudo-words), of which ``dup_frac`` are edited copies of other documents: each copy
    substitutes words at the rate that aims its word ``ngram`` Jaccard similarity at a value
    drawn uniformly from ``sim_range`` (the realised similarity is measured by
    :func:`jaccard_truth`). Shuffled, so copies may come before their source."""
    rng = np.random.default_rng(seed)
    syll = np.array(["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "do", "an", "el", "ur"])
    vocab = np.array(
        sorted({"".join(rng.choice(syll, rng.integers(2, 5))) for _ in range(30_000)}),
        dtype=object,
    )
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1) ** 0.9)
    cdf /= cdf[-1]

    def draw(k: int) -> np.ndarray:
        return vocab[np.minimum(np.searchsorted(cdf, rng.random(k)), len(vocab) - 1)]

    n_dup = round(n * dup_frac)
    n_base = n - n_dup
    docs = [draw(int(m)) for m in rng.integers(min_words, max_words + 1, n_base)]
    for _ in range(n_dup):
        base = docs[int(rng.integers(0, n_base))]
        j = rng.uniform(*sim_range)
        rate = 1.0 - (2.0 * j / (1.0 + j)) ** (1.0 / ngram)
        docs.append(np.where(rng.random(len(base)) < rate, draw(len(base)), base))
    order = rng.permutation(n)
    return [" ".join(docs[i]) for i in order]


def shingle_sets(texts: list[str], ngram: int = 5) -> list[set[str]]:
    """Word ``ngram`` shingle sets of whitespace-split texts (the corpus is already
    normalized)."""
    return [set(peer_shingles(t, ngram)) for t in texts]


def peer_shingles(text: str, ngram: int = 5) -> list[str]:
    """One text's word ``ngram`` shingles as the peers' users make them in Python (a text
    shorter than ``ngram`` words is one shingle)."""
    w = text.split()
    return list({" ".join(w[i : i + ngram]) for i in range(max(1, len(w) - ngram + 1))})


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


def datasketch_flags(texts: list[str], threshold: float = 0.8, num_perm: int = 128) -> np.ndarray:
    """Peer: "has a near-duplicate" flags as datasketch users compute them (Python shingles,
    ``MinHash.update_batch``, every text inserted into ``MinHashLSH`` and queried)."""
    import datasketch

    lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm)
    sigs = []
    for i, t in enumerate(texts):
        m = datasketch.MinHash(num_perm=num_perm)
        m.update_batch([s.encode() for s in peer_shingles(t)])
        lsh.insert(i, m)
        sigs.append(m)
    return np.array([len(lsh.query(m)) > 1 for m in sigs], dtype=bool)


def rensa_flags(texts: list[str], num_perm: int = 128, bands: int = 8) -> np.ndarray:
    """Peer: the same flags with rensa's batch API (Python shingles, digest matrix,
    ``RMinHashLSH``; its bands must divide ``num_perm``)."""
    import rensa

    mat = rensa.RMinHash.digest_matrix_from_token_sets(
        [peer_shingles(t) for t in texts], num_perm=num_perm, seed=42
    )
    lsh = rensa.RMinHashLSH(threshold=0.8, num_perm=num_perm, num_bands=bands)
    return np.array(lsh.insert_matrix_and_query_duplicate_flags(mat), dtype=bool)
