"""The ``dedup`` workload of ``fastalign bench`` (``fastalign bench --only dedup``), and the
synthetic corpora with planted near-duplicates that it, the dedup tests and ``benches/`` share
(generated, never downloaded), with the peers' flags (datasketch, rensa) as their users compute
them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fastalign.bench._harness import Row, have
from fastalign.reference.dedup import peer_shingles


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


def run(size: str) -> list[Row]:
    """Near-duplicate dedup end to end, Python strings in, duplicate flags / clusters out: 50-300
    word documents, 30% planted near-duplicates (similarities 0.5-1), threshold 0.8, 128
    permutations. Peers shingle in Python (word 5-grams, as their users do); datasketch uses
    ``MinHash.update_batch`` + ``MinHashLSH`` (its band choice, 9 x 13), rensa its digest matrix
    and ``RMinHashLSH`` (bands must divide 128: 8 x 16). Each row's note: docs/s, MB/s of text,
    and doc-level recall / precision of "has a near-duplicate" against exact Jaccard. A fastalign
    row fails when its recall or precision is below datasketch's by more than 3 standard errors
    of the difference. Peak memory, which needs fresh processes, is measured by
    ``benches/dedup_memory.py``."""
    import math
    import os
    import time

    import numpy as np

    from fastalign import dedup as fd
    from fastalign.reference.dedup import doc_scores, jaccard_truth

    n = {"quick": 5_000, "default": 20_000, "full": 100_000}[size]
    texts = dedup_corpus(n, seed=0)
    _, truth = jaccard_truth(texts, 0.8)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    wl = f"dedup {n:,} docs of 50-300 words, 30% near-dups, t=0.8, P=128"
    threads = os.cpu_count() or 1

    def measure(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
        """Median time over ``repeat`` runs and the duplicate flags."""
        times, flags = [], None
        for _ in range(repeat):
            t0 = time.perf_counter()
            flags = fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), np.asarray(flags, dtype=bool)

    def note(t: float, flags: np.ndarray) -> tuple[str, float, float]:
        recall, precision = doc_scores(flags, truth)
        text = f"{n / t:,.0f} docs/s, {mb / t:.0f} MB/s, recall {recall:.3f}"
        text += f" precision {precision:.3f}"
        return text, recall, precision

    rows: list[Row] = []
    ref: tuple[float, float] | None = None
    ref_counts = (1, 1)
    if have("datasketch"):
        t, flags = measure(lambda: datasketch_flags(texts), 1)
        text, r, p = note(t, flags)
        ref = (r, p)
        ref_counts = (int(truth.sum()), int(flags.sum()))
        rows.append(Row("dedup", wl, "datasketch MinHash + MinHashLSH (1 run)", t,
                        baseline=True, note=text))  # fmt: skip
    if have("rensa"):
        t, flags = measure(lambda: rensa_flags(texts), 3)
        rows.append(Row("dedup", wl, "rensa digest matrix + RMinHashLSH 8x16", t,
                        note=note(t, flags)[0]))  # fmt: skip

    def fast(k: int, verify: str) -> Callable[[], np.ndarray]:
        return lambda: fd.dedup(texts, threshold=0.8, verify=verify, threads=k).cluster_sizes() > 1

    configs = [(k, "none") for k in sorted({1, threads})] + [(threads, "exact")]
    for k, verify in configs:
        t, flags = measure(fast(k, verify), 5)
        text, r, p = note(t, flags)
        err = tol = None
        if ref is not None:
            se = [math.sqrt(max(x * (1 - x), 0.01) / max(c, 1))
                  for x, c in ((ref[0], ref_counts[0]), (ref[1], ref_counts[1]))]  # fmt: skip
            err = max(ref[0] - r, ref[1] - p, 0.0)
            tol = 3 * math.sqrt(2) * max(se)
        v = "" if verify == "none" else f", verify='{verify}'"
        rows.append(Row("dedup", wl, f"fastalign dedup ({k} thread{'s' * (k > 1)}{v})", t,
                        baseline=ref is None and k == 1 and verify == "none", max_err=err,
                        tol=tol, note=text))  # fmt: skip
    return rows
