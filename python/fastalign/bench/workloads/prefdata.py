"""The ``prefdata`` workload of ``fastalign bench`` (``fastalign bench --only prefdata``)."""

from __future__ import annotations

from typing import Any

from fastalign.bench._harness import Row, have, time_median
from fastalign.bench.workloads.rank import fastchat_bt


def run(size: str) -> list[Row]:
    """The shipped preference dataset (``fastalign.bench.prefdata``: 1500 prompts x 4
    responses from 12 models x 3 judges, 10% reworded duplicate prompts): best-vs-worst DPO
    pairs per prompt, a Bradley-Terry leaderboard of the models from the judges' scores, and
    near-duplicate prompts, each against what a user writes without fastalign."""
    import numpy as np

    from fastalign import dedup as fd
    from fastalign import rank as fr
    from fastalign.bench import prefdata as pdata

    records = pdata.load()
    if size == "quick":
        records = records[:500]
    n = len(records)
    rows: list[Row] = []

    # 1. pairs: the best and the worst response of each prompt by mean judge score (the
    # scores as one [prompts, 4, judges] array, as a columnar dataset gives them)
    wl = f"DPO pairs (best vs worst of 4, mean of 3 judges), {n} prompts"
    judged = np.array([r["scores"] for r in records])
    offsets = np.arange(0, 4 * n + 1, 4)

    def numpy_pairs() -> Any:  # best = first maximum, worst = last minimum, as documented
        m = judged.mean(axis=2)
        best = m.argmax(axis=1)
        worst = 3 - m[:, ::-1].argmin(axis=1)
        keep = m[np.arange(n), best] > m[np.arange(n), worst]
        base = 4 * np.arange(n)
        return (base + best)[keep], (base + worst)[keep]

    t, want = time_median(numpy_pairs, repeat=5)
    rows.append(Row("prefdata", wl, "NumPy (vectorized)", t, baseline=True))
    t, got = time_median(
        lambda: fr.preference_pairs(judged.mean(axis=2).reshape(-1), offsets), repeat=5
    )
    same = np.array_equal(got.chosen, want[0]) and np.array_equal(got.rejected, want[1])
    rows.append(Row("prefdata", wl, "fastalign rank.preference_pairs", t, max_err=float(not same),
                    tol=0.0, note="error: 1 if the pairs differ"))  # fmt: skip

    # 2. leaderboard: models x (prompt, judge) score matrix -> comparisons -> Bradley-Terry
    wl = f"BT leaderboard of {pdata.N_MODELS} models from {n} prompts x {pdata.N_JUDGES} judges"
    scores = np.full((pdata.N_MODELS, n * pdata.N_JUDGES), np.nan)
    for i, r in enumerate(records):
        for k, m in enumerate(r["models"]):
            scores[m, i * pdata.N_JUDGES : (i + 1) * pdata.N_JUDGES] = r["scores"][k]

    def numpy_scipy() -> Any:  # comparisons by broadcasting, then L-BFGS-B with ties as halves
        w, lo, ti = [], [], []
        for c in scores.T:
            idx = np.flatnonzero(~np.isnan(c))
            a, b = np.triu_indices(len(idx), 1)
            sa, sb = c[idx[a]], c[idx[b]]
            w.append(np.where(sa >= sb, idx[a], idx[b]))
            lo.append(np.where(sa >= sb, idx[b], idx[a]))
            ti.append(sa == sb)
        return fastchat_bt(np.concatenate(w), np.concatenate(lo), pdata.N_MODELS,
                           ties=np.concatenate(ti))  # fmt: skip

    if have("scipy"):
        t, ref = time_median(numpy_scipy, repeat=3)
        rows.append(Row("prefdata", wl, "NumPy comparisons + scipy L-BFGS-B", t, baseline=True))

    def fast() -> Any:
        c = fr.score_comparisons(scores)
        return fr.bradley_terry(c.winners, c.losers, weights=c.weights, ties=c.ties)

    t, fit = time_median(fast, repeat=5)
    err = None if not have("scipy") else float(np.abs(fit.scores - ref).max())
    order_ok = list(np.argsort(-fit.scores)[:3]) == pdata.true_order()[:3]
    rows.append(Row("prefdata", wl, "fastalign score_comparisons + bradley_terry", t,
                    baseline=not have("scipy"), max_err=err, tol=None if err is None else 1e-5,
                    note="top 3 = generating order" if order_ok else "top 3 differs from "
                    "the generating order (judge noise)"))  # fmt: skip

    # 3. near-duplicate prompts (reworded: 1 word in 20 replaced, case and punctuation)
    from fastalign.bench.workloads.dedup import datasketch_flags

    wl = f"near-duplicate prompts, {n} prompts, threshold 0.5"
    texts = [r["prompt"] for r in records]
    truth = np.zeros(n, dtype=bool)
    for i, r in enumerate(records):
        if r["duplicate_of"] is not None and r["duplicate_of"] < n:
            truth[i] = truth[r["duplicate_of"]] = True

    def quality(flags: Any) -> str:
        tp = int((flags & truth).sum())
        return f"recall {tp / max(truth.sum(), 1):.3f}, precision {tp / max(flags.sum(), 1):.3f}"

    if have("datasketch"):
        t, flags = time_median(lambda: datasketch_flags(texts, threshold=0.5), repeat=1)
        rows.append(Row("prefdata", wl, "datasketch MinHash + MinHashLSH", t, baseline=True,
                        note=quality(flags)))  # fmt: skip

    def fast_flags() -> Any:
        r = fd.dedup(texts, threshold=0.5)
        return np.bincount(r.cluster, minlength=n)[r.cluster] > 1

    t, flags = time_median(fast_flags, repeat=5)
    rows.append(Row("prefdata", wl, "fastalign dedup.dedup", t, baseline=not have("datasketch"),
                    note=quality(flags)))  # fmt: skip
    return rows
