"""The ``bleu`` workload of ``fastalign bench`` (``fastalign bench --only bleu``)."""

from __future__ import annotations

from collections.abc import Callable

from fastalign.bench._harness import Row, have


def bleu_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` synthetic hypothesis/reference pairs of 10-60 words (Zipf vocabulary, some
    punctuation and numbers), each reference a perturbed copy of its hypothesis so that every
    n-gram order matches partly. A new ``seed`` gives new texts (cold tokenizer caches)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    syll = np.array(["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "do", "an", "el"])
    vocab = ["".join(rng.choice(syll, rng.integers(1, 4))) for _ in range(5000)]
    vocab += [",", ".", "!", "?", "3.14", "1,000", "(", ")", "e.g.", "don't", "$5", "2020-21"]
    words_all = np.array(vocab, dtype=object)
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1))
    cdf /= cdf[-1]

    def draw(k: int) -> np.ndarray:
        return words_all[np.minimum(np.searchsorted(cdf, rng.random(k)), len(vocab) - 1)]

    lengths = rng.integers(10, 61, n)
    hyps, refs = [], []
    for m in lengths:
        words = draw(int(m))
        ref = np.where(rng.random(m) > 0.25, words, draw(int(m)))
        if rng.random() < 0.5:
            ref = ref[: max(1, m - int(rng.integers(0, 6)))]
        hyps.append(" ".join(words).capitalize())
        refs.append(" ".join(ref).capitalize())
    return hyps, refs


def run(size: str) -> list[Row]:
    """Sentence BLEU of new pairs (the RL reward case: every completion new, so every timed
    repeat scores a fresh set), sacrebleu-flavoured, against sacrebleu's ``sentence_bleu``
    loop and a reused ``BLEU(effective_order=True)``; corpus BLEU in evaluate's flavour
    against bleuscore and in sacrebleu's against sacrebleu. Errors: max |score - peer score|
    (sacrebleu scale 0-100, evaluate 0-1)."""
    import os
    import time

    import numpy as np

    from fastalign import bleu as fb

    n = {"quick": 2_000, "default": 10_000, "full": 50_000}[size]
    repeat = {"quick": 3, "default": 3, "full": 3}[size]
    sets = [bleu_pairs(n, seed) for seed in range(repeat + 1)]  # one per run, warm-up too
    mb = sum(len(h.encode()) + len(r.encode()) for h, r in zip(*sets[0], strict=True)) / 1e6
    rows: list[Row] = []
    threads = os.cpu_count() or 1

    def timed(fn: Callable[[list[str], list[str]], object]) -> tuple[float, object]:
        """Median over fresh pair sets; the result of the first (un-timed) set."""
        result = fn(*sets[0])
        times = []
        for hyps, refs in sets[1:]:
            t0 = time.perf_counter()
            fn(hyps, refs)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), result

    def rate(t: float) -> str:
        return f"{n / t:,.0f} pairs/s, {mb / t:.1f} MB/s"

    # -- sentence BLEU, sacrebleu flavour -----------------------------------------------------
    wl = f"sentence BLEU {n:,} new pairs of 10-60 words"
    ref_scores = None
    if have("sacrebleu"):
        import sacrebleu

        def sb_loop(hyps, refs):
            pairs = zip(hyps, refs, strict=True)
            return np.array([sacrebleu.sentence_bleu(h, [r]).score for h, r in pairs])

        def sb_metric(hyps, refs):
            m = sacrebleu.metrics.BLEU(effective_order=True)
            pairs = zip(hyps, refs, strict=True)
            return np.array([m.sentence_score(h, [r]).score for h, r in pairs])

        t, ref_scores = timed(sb_loop)
        rows.append(Row("bleu", wl, "sacrebleu sentence_bleu loop", t, baseline=True, note=rate(t)))
        t, got = timed(sb_metric)
        err = float(np.max(np.abs(np.asarray(got) - ref_scores)))
        rows.append(
            Row("bleu", wl, "sacrebleu BLEU.sentence_score loop", t, max_err=err, tol=1e-9,
                note=rate(t))
        )  # fmt: skip
    for k in sorted({1, threads}):
        t, got = timed(lambda h, r, k=k: fb.sentence_scores(h, [[x] for x in r], threads=k))
        err = None if ref_scores is None else float(np.max(np.abs(got - ref_scores)))
        rows.append(
            Row("bleu", wl, f"fastalign sentence_scores ({k} thread{'s' * (k > 1)})", t,
                baseline=ref_scores is None and k == 1, max_err=err,
                tol=None if err is None else 1e-9, note=rate(t))
        )  # fmt: skip

    # -- corpus BLEU ----------------------------------------------------------------------------
    wl = f"corpus BLEU {n:,} pairs, evaluate flavour (smooth)"
    want = None
    if have("bleuscore"):
        import bleuscore

        t, res = timed(lambda h, r: bleuscore.compute([[x] for x in r], h, 4, True))
        want = res["bleu"]  # type: ignore[index]
        rows.append(Row("bleu", wl, "bleuscore compute", t, baseline=True, note=rate(t)))
    t, res = timed(lambda h, r: fb.corpus_bleu(h, [r], flavor="evaluate").score)
    err = None if want is None else abs(float(res) - float(want))  # type: ignore[arg-type]
    rows.append(
        Row("bleu", wl, "fastalign corpus_bleu(flavor='evaluate')", t, baseline=want is None,
            max_err=err, tol=None if err is None else 1e-12, note=rate(t))
    )  # fmt: skip
    wl = f"corpus BLEU {n:,} pairs, sacrebleu flavour"
    want = None
    if have("sacrebleu"):
        t, res = timed(lambda h, r: sacrebleu.corpus_bleu(h, [r]).score)
        want = res
        rows.append(Row("bleu", wl, "sacrebleu corpus_bleu", t, baseline=True, note=rate(t)))
    t, res = timed(lambda h, r: fb.corpus_bleu(h, [r]).score)
    err = None if want is None else abs(float(res) - float(want))  # type: ignore[arg-type]
    rows.append(
        Row("bleu", wl, "fastalign corpus_bleu", t, baseline=want is None, max_err=err,
            tol=None if err is None else 1e-9, note=rate(t))
    )  # fmt: skip
    return rows
