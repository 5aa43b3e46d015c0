"""The embedded default workloads of ``fastalign bench`` (synthetic, seeded).

Each workload is a function ``size -> list[Row]`` registered in :data:`WORKLOADS`. A workload
times fastalign and its baselines on the same inputs, in the same process, and computes each
row's error against a float64 / reference result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastalign.bench._harness import Row, have, time_median

Workload = Callable[[str], list[Row]]
WORKLOADS: dict[str, Workload] = {}


def workload(name: str) -> Callable[[Workload], Workload]:
    def register(fn: Workload) -> Workload:
        WORKLOADS[name] = fn
        return fn

    return register


@workload("pama")
def pama(size: str) -> list[Row]:
    """PAMA combined advantages for B samples x 3 objectives."""
    import numpy as np

    from fastalign.pareto import pama as fast

    b = {"quick": 100_000, "default": 1_000_000, "full": 10_000_000}[size]
    a = np.random.default_rng(0).normal(size=(b, 3))
    repeat = {"quick": 5, "default": 7, "full": 3}[size]

    def numpy_ref():
        return np.clip(0.0, a.min(axis=1), a.max(axis=1))

    t_ref, want = time_median(numpy_ref, repeat=repeat)
    t_fast, got = time_median(lambda: fast(a), repeat=repeat)
    err = float(np.abs(got - want).max())
    wl = f"B={b:,} n=3"
    return [
        Row("pama", wl, "numpy (vectorized)", t_ref, baseline=True, max_err=0.0, tol=0.0),
        Row("pama", wl, "fastalign (rust)", t_fast, max_err=err, tol=0.0),
    ]


@workload("logps_from_logits")
def logps_from_logits(size: str) -> list[Row]:
    """Selective log-softmax on materialized logits, forward + backward with an arbitrary
    upstream gradient; error = max normwise relative error of logps and dlogits vs float64."""
    import torch

    import fastalign
    from fastalign.reference.logprobs import logps_from_logits as ref_fn

    n, v = {"quick": (256, 8_000), "default": (2_048, 32_000), "full": (8_192, 128_256)}[size]
    repeat = {"quick": 3, "default": 5, "full": 3}[size]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(n, v, generator=gen) * 3).to(device)
    labels = torch.randint(0, v, (n,), generator=gen).to(device)
    labels[: n // 8] = -100
    grad = torch.randn(n, generator=gen).to(device)

    x64 = logits.double().requires_grad_(True)
    want = ref_fn(x64, labels)
    (dwant,) = torch.autograd.grad(want, x64, grad.double())
    want = want.detach()
    del x64

    def err_of(out: torch.Tensor, dx: torch.Tensor) -> float:
        def rel(a: torch.Tensor, b: torch.Tensor) -> float:
            return float((a.double() - b).abs().max() / b.abs().max())

        return max(rel(out, want), rel(dx, dwant))

    def make(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], tuple]:
        def step() -> tuple:
            x = logits.detach().requires_grad_(True)
            out = fn(x)
            (dx,) = torch.autograd.grad(out, x, grad.to(out.dtype))
            if device == "cuda":
                torch.cuda.synchronize()
            return out.detach(), dx

        return step

    impls: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], bool]] = [
        ("naive torch (log_softmax + gather)", lambda x: ref_fn(x, labels), True),
        (
            "fastalign torch (chunked)",
            lambda x: fastalign.logps_from_logits(x, labels, backend="torch"),
            False,
        ),
    ]
    if device == "cuda" and have("triton"):
        impls.append(
            (
                "fastalign triton",
                lambda x: fastalign.logps_from_logits(x, labels, backend="triton"),
                False,
            )
        )
    if have("trl"):
        try:
            from trl.trainer.utils import selective_log_softmax as trl_sls
        except ImportError:  # pragma: no cover - depends on the installed TRL
            trl_sls = None
        if trl_sls is not None:

            def trl_fn(x: torch.Tensor) -> torch.Tensor:
                safe = labels.clamp(min=0)
                return torch.where(labels != -100, trl_sls(x, safe), 0.0)

            impls.append(("TRL selective_log_softmax", trl_fn, False))

    rows = []
    wl = f"N={n:,} V={v:,} fp32 {device}"
    for name, fn, is_base in impls:
        try:
            t, (out, dx) = time_median(make(fn), repeat=repeat)
            rows.append(
                Row(
                    "logps_from_logits",
                    wl,
                    name,
                    t,
                    baseline=is_base,
                    max_err=err_of(out, dx),
                    tol=1e-4,
                )
            )
        except Exception as e:  # a peer that breaks is reported, not fatal
            rows.append(Row("logps_from_logits", wl, name, None, error=f"{type(e).__name__}: {e}"))
    return rows


@workload("token_logps")
def token_logps(size: str) -> list[Row]:
    """Fused LM-head log-probs fwd+bwd; every row in its own process (peak memory)."""
    from fastalign.bench import logprob_rows

    return logprob_rows.rows(size)


@workload("fused_dpo")
def fused_dpo(size: str) -> list[Row]:
    """A DPO step from hidden states and the LM head; every row in its own process."""
    from fastalign.bench import dpo_rows

    return dpo_rows.rows(size)


@workload("trl_dpo")
def trl_dpo(size: str) -> list[Row]:
    """One step of TRL's stock DPOTrainer, with and without fastalign.integrations.trl; every
    row in its own process."""
    from fastalign.bench import trainer_rows

    return trainer_rows.rows(size)


# Why the fastalign rows of dpo_loss trail the bare formula on CPU (tensors of a few hundred
# KB, so every row is ~25 torch calls of Python and dispatch, no arithmetic to speak of)
_DPO_LOSS_NOTES = {
    "fastalign preference_loss on the sums (+ checks, metrics)": "vs the metrics row: "
    "argument checks",
    "fastalign token_preference_loss": "its one-launch kernel is for CUDA; on CPU the torch "
    "composition behind the checks",
}


@workload("dpo_loss")
def dpo_loss(size: str) -> list[Row]:
    """DPO-family losses (sigmoid, IPO) from per-token policy log-probs of 2B rows x T with a
    completion mask and per-sequence reference log-probs: loss + gradient to the per-token
    log-probs. Baseline: the masked sums and TRL's formula written out in torch; error: the
    relative error of the loss and of the gradient (max entry) vs float64."""
    import torch
    import torch.nn.functional as F

    from fastalign.losses import preference_loss, token_preference_loss

    b, t = {"quick": (16, 256), "default": (64, 512), "full": (256, 1024)}[size]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(0)
    tok = (-torch.rand(2 * b, t, generator=g) * 5).to(device)
    lengths = torch.randint(t // 4, t, (2 * b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(device)
    mask[:, : t // 8] = False  # the prompt
    ref_c = (tok[:b] * mask[:b]).sum(1).detach() + torch.randn(b, generator=g).to(device)
    ref_r = (tok[b:] * mask[b:]).sum(1).detach() + torch.randn(b, generator=g).to(device)
    beta = 0.1

    def naive(x: Any, kind: str, metrics: bool = False) -> Any:
        s = (x * mask).sum(1)
        rho_c, rho_r = s[:b] - ref_c, s[b:] - ref_r
        if kind == "sigmoid":
            loss = -F.logsigmoid(beta * (rho_c - rho_r)).mean()
        else:
            n = mask.sum(1)  # IPO: log-ratios per token
            loss = ((rho_c / n[:b] - rho_r / n[b:] - 1 / (2 * beta)) ** 2).mean()
        if metrics:  # the six means TRL's DPOTrainer logs, which fastalign's losses return
            with torch.no_grad():
                rw, rl = beta * rho_c.detach(), beta * rho_r.detach()
                _ = [rw.mean(), rl.mean(), (rw > rl).float().mean(), (rw - rl).mean()]
                _ = [s[:b].detach().mean(), s[b:].detach().mean()]
        return loss

    def fa_sums(x: Any, kind: str) -> Any:
        s = (x * mask).sum(1)
        n = mask.sum(1) if kind == "ipo" else None
        return preference_loss(s[:b], s[b:], ref_c, ref_r, loss_type=kind, beta=beta,
                               chosen_lengths=None if n is None else n[:b],
                               rejected_lengths=None if n is None else n[b:]).loss  # fmt: skip

    impls = {
        "naive torch (masked sums + TRL's formula)": naive,
        "naive torch + TRL's logged metrics": lambda x, kind: naive(x, kind, metrics=True),
        "fastalign preference_loss on the sums (+ checks, metrics)": fa_sums,
        "fastalign token_preference_loss": lambda x, kind: (
            token_preference_loss(x, mask, ref_c, ref_r, loss_type=kind, beta=beta).loss
        ),
    }
    rows: list[Row] = []
    for kind in ("sigmoid", "ipo"):
        wl = f"{kind}, B={b} pairs, T={t}, {device}"
        x64 = tok.double().requires_grad_(True)
        want = naive(x64, kind)
        (want_g,) = torch.autograd.grad(want, x64)
        want_v = float(want.detach())
        for i, (name, fn) in enumerate(impls.items()):

            def step(fn: Any = fn, kind: str = kind) -> Any:
                x = tok.detach().requires_grad_(True)
                loss = fn(x, kind)
                (gx,) = torch.autograd.grad(loss, x)
                if device == "cuda":
                    torch.cuda.synchronize()
                return loss, gx

            tm, (loss, gx) = time_median(step, repeat=20)
            err = max(  # relative to the float64 loss and the largest gradient entry
                abs(float(loss.detach()) - want_v) / max(abs(want_v), 1e-30),
                float((gx.double() - want_g).abs().max() / want_g.abs().max()),
            )
            # fp32 sums of T log-probs: every row, the baseline too, is ~1e-5 off
            note = _DPO_LOSS_NOTES.get(name) if device == "cpu" else None
            rows.append(Row("dpo_loss", wl, name, tm, baseline=i == 0, max_err=err, tol=1e-4,
                            note=note))  # fmt: skip
    return rows


@workload("prefdata")
def prefdata(size: str) -> list[Row]:
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
        return _lbfgs_bt(np.concatenate(w), np.concatenate(lo), pdata.N_MODELS,
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
    from fastalign.bench.dedup_data import datasketch_flags

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


@workload("pareto")
def pareto(size: str) -> list[Row]:
    """Non-dominated sorting (one big set, and many small groups), hypervolume; pymoo and
    moocore rows when installed. Error: fraction of rows whose front differs from the peer's
    (0 required); relative hypervolume difference."""
    import numpy as np

    from fastalign import pareto as fp

    n_big = {"quick": 10_000, "default": 100_000, "full": 300_000}[size]
    n_hv = {"quick": 2_000, "default": 10_000, "full": 50_000}[size]
    groups = {"quick": 512, "default": 4096, "full": 16384}[size]
    repeat = {"quick": 3, "default": 5, "full": 3}[size]
    rng = np.random.default_rng(0)
    rows: list[Row] = []

    # -- all fronts of one big set ------------------------------------------------------
    big = rng.random((n_big, 3))
    wl = f"non-dominated sort {n_big:,} x 3"
    t_fast, fronts = time_median(lambda: fp.non_dominated_sort(big), repeat=repeat)
    peers: list[tuple[str, Callable[[], object]]] = []
    if have("pymoo"):
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

        nds = NonDominatedSorting()
        peers.append(("pymoo NonDominatedSorting", lambda: nds.do(big, return_rank=True)[1]))
    if have("moocore"):
        import moocore

        peers.append(("moocore pareto_rank", lambda: moocore.pareto_rank(big)))
    for k, (name, fn) in enumerate(peers):
        t, ranks = time_median(fn, repeat=max(1, repeat // 2))
        err = float(np.mean(np.asarray(ranks) != fronts))
        rows.append(Row("pareto", wl, name, t, baseline=k == 0, max_err=err, tol=0.0))
    rows.append(
        Row(
            "pareto",
            wl,
            "fastalign (rust)",
            t_fast,
            baseline=not peers,
            max_err=0.0 if not peers else None,
            tol=0.0 if not peers else None,
        )
    )

    # -- many small groups (the RL case) ------------------------------------------------------
    small = rng.integers(0, 8, size=(groups * 16, 3)).astype(np.float64)
    offsets = np.arange(0, groups * 16 + 1, 16, dtype=np.int64)
    wl = f"batched sort {groups:,} groups x 16 x 3"
    t_fast, got = time_median(lambda: fp.non_dominated_sort(small, offsets=offsets), repeat=repeat)
    loop_peers: list[tuple[str, Callable[[], np.ndarray]]] = []
    if have("pymoo"):
        loop_peers.append(
            (
                "python loop over pymoo",
                lambda: np.concatenate(
                    [
                        nds.do(small[s : s + 16], return_rank=True)[1]
                        for s in range(0, len(small), 16)
                    ]
                ),
            )
        )
    if have("moocore"):
        loop_peers.append(
            (
                "python loop over moocore",
                lambda: np.concatenate(
                    [moocore.pareto_rank(small[s : s + 16]) for s in range(0, len(small), 16)]
                ),
            )
        )
    for k, (name, fn) in enumerate(loop_peers):
        t, ranks = time_median(fn, repeat=1)
        rows.append(
            Row(
                "pareto",
                wl,
                name,
                t,
                baseline=k == 0,
                max_err=float(np.mean(ranks != got)),
                tol=0.0,
            )
        )
    rows.append(Row("pareto", wl, "fastalign (rust, batched)", t_fast, baseline=not loop_peers))

    # -- hypervolume ----------------------------------------------------------------------------
    pts = rng.random((n_hv, 3))
    ref = np.ones(3) * 1.1
    wl = f"hypervolume {len(pts):,} x 3"
    t_fast, hv = time_median(lambda: fp.hypervolume(pts, ref), repeat=repeat)
    hv_peers: list[tuple[str, Callable[[], float]]] = []
    if have("moocore"):
        hv_peers.append(("moocore hypervolume", lambda: moocore.hypervolume(pts, ref=ref)))
    if have("pymoo"):
        from pymoo.indicators.hv import HV

        ind = HV(ref_point=ref)
        hv_peers.append(("pymoo HV", lambda: ind(pts)))
    for k, (name, fn) in enumerate(hv_peers):
        t, val = time_median(fn, repeat=max(1, repeat // 2))
        rows.append(
            Row(
                "pareto", wl, name, t, baseline=k == 0, max_err=abs(float(val) - hv) / hv, tol=1e-12
            )
        )
    rows.append(Row("pareto", wl, "fastalign (rust)", t_fast, baseline=not hv_peers))

    # -- hypervolume beyond 3 objectives: points on the positive unit sphere's orthant ------
    many = {"quick": [(4, 200), (5, 100), (6, 60), (8, 30)],
            "default": [(4, 1000), (5, 300), (6, 150), (8, 60)],
            "full": [(4, 3000), (5, 1000), (6, 300), (8, 100)]}[size]  # fmt: skip
    for m, n in many:
        x = np.abs(rng.standard_normal((n, m)))
        front = x / np.linalg.norm(x, axis=1, keepdims=True)
        ref_m = np.full(m, 1.1)
        wl = f"hypervolume {n:,} x {m} (spherical front)"
        t_fast, hv = time_median(lambda f=front, r=ref_m: fp.hypervolume(f, r), repeat=repeat)
        peers: list[tuple[str, Callable[[], float]]] = []
        if have("moocore"):
            peers.append(("moocore hypervolume",
                          lambda f=front, r=ref_m: moocore.hypervolume(f, ref=r)))  # fmt: skip
        if have("pymoo"):
            from pymoo.indicators.hv import HV

            ind = HV(ref_point=ref_m)
            peers.append(("pymoo HV", lambda f=front, ind=ind: ind(f)))
        for k, (name, fn) in enumerate(peers):
            t, val = time_median(fn, repeat=repeat)
            rows.append(Row("pareto", wl, name, t, baseline=k == 0,
                            max_err=abs(float(val) - hv) / hv, tol=1e-12))  # fmt: skip
        rows.append(Row("pareto", wl, "fastalign (rust, WFG)", t_fast, baseline=not peers))
    return rows


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


@workload("bleu")
def bleu(size: str) -> list[Row]:
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


@workload("dedup")
def dedup(size: str) -> list[Row]:
    """Near-duplicate dedup end to end, Python strings in, duplicate flags / clusters out: 50-300
        word documents, 30% planted near-duplicates (similarities 0.5-1), threshold 0.8, 128
        permutations. Peers shingle in Python (word 5-grams, as their users do); datasketch uses
        ``MinHash.update_batch`` + ``MinHashLSH`` (its band choice, 9 x 13), rensa its digest
        matrix and ``RMinHashLSH`` (bands must divide 128: 8 x 16). Each row's note: docs/s, MB/s
        of text, and doc-level recall / precision of "has a
        near-duplicate" against exact Jaccard. A fastalign row fails when its recall or precision
        is below datasketch's by more than 3 standard errors of the difference. Peak memory, which
    needs fresh processes, is measured by ``benches/dedup_memory.py``."""
    import math
    import os
    import time

    import numpy as np

    from fastalign import dedup as fd
    from fastalign.bench.dedup_data import (
        datasketch_flags,
        dedup_corpus,
        doc_scores,
        jaccard_truth,
        rensa_flags,
    )

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


def _lbfgs_bt(winners: Any, losers: Any, n: int, ties: Any = None) -> Any:
    """Bradley-Terry the way FastChat's arena scripts fit it: outcomes counted per unique
    (winner, loser) pair, then L-BFGS-B on the logistic log-likelihood (exact gradient),
    centered. A tie counts as half a win each way."""
    import numpy as np
    from scipy.optimize import minimize

    if ties is not None:  # each tie: half a win each way
        t = np.asarray(ties, dtype=bool)
        winners, losers = (
            np.concatenate([winners[~t], winners[t], losers[t]]),
            np.concatenate([losers[~t], losers[t], winners[t]]),
        )
        wts = np.concatenate([np.ones((~t).sum()), np.full(2 * t.sum(), 0.5)])
    else:
        wts = np.ones(len(winners))
    pairs, inverse = np.unique(winners * n + losers, return_inverse=True)
    counts = np.bincount(inverse, weights=wts)
    w, lo = pairs // n, pairs % n

    def f(s: Any) -> tuple[float, Any]:
        d = s[w] - s[lo]
        p = 1 / (1 + np.exp(-d))
        g = np.bincount(w, counts * (1 - p), n) - np.bincount(lo, counts * (1 - p), n)
        return float(counts @ np.logaddexp(0, -d)), -g

    x = minimize(f, np.zeros(n), jac=True, method="L-BFGS-B",
                 options={"gtol": 1e-9, "ftol": 1e-15, "maxiter": 10_000}).x  # fmt: skip
    return x - x.mean()


@workload("rank")
def rank(size: str) -> list[Row]:
    """Bradley-Terry on 1000 items / 1M comparisons (win probabilities from true strengths)
    against choix's I-LSR (and a few of its MM updates: MM needs ~190 here) and evalica,
    Plackett-Luce on 200 items / 100k rankings against
    choix's I-LSR (errors: max |score difference| after centering, vs choix), and the maximal
    lottery of a random 500 x 500 preference matrix against scipy's ``linprog`` on the game's
    LP (error: how much the best item beats the lottery, 0 for an exact equilibrium)."""
    import numpy as np

    from fastalign import rank as fr

    n, m = {"quick": (300, 100_000), "default": (1000, 1_000_000), "full": (3000, 5_000_000)}[size]
    k = {"quick": 100, "default": 500, "full": 800}[size]
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    win = rng.random(m) < 1 / (1 + np.exp(-(true[a] - true[b])))
    winners, losers = np.where(win, a, b), np.where(win, b, a)
    rows: list[Row] = []
    wl = f"Bradley-Terry {n:,} items, {m:,} comparisons"
    t_fast, fit = time_median(lambda: fr.bradley_terry(winners, losers, n_items=n), repeat=5)
    ref = None
    if have("choix"):
        import choix

        data = list(zip(winners.tolist(), losers.tolist(), strict=True))
        t, est = time_median(lambda: choix.ilsr_pairwise(n, data, tol=1e-10), repeat=1, warmup=0)
        ref = est - est.mean()
        rows.append(Row("rank", wl, "choix ilsr_pairwise (1 run)", t, baseline=True))
        # choix's MM takes about 190 iterations of ~1 s each here to reach its own default
        # tol (206 s, measured once): a few of its updates, timed, with how far they still are
        from choix.mm import _mm_pairwise
        from choix.utils import log_transform

        mm_iters = {"quick": 2, "default": 5, "full": 5}[size]

        def mm() -> np.ndarray:
            p = np.zeros(n)
            for _ in range(mm_iters):
                nums, denoms = _mm_pairwise(n, data, p)
                p = log_transform(nums / denoms)
            return p

        t, est = time_median(mm, repeat=1, warmup=0)
        rows.append(Row("rank", wl, f"choix MM, {mm_iters} of its updates (1 run)", t,
                        max_err=float(np.abs(est - est.mean() - ref).max()),
                        note="error: vs I-LSR; ~190 updates reach tol 1e-8"))  # fmt: skip
    if have("evalica"):
        import evalica

        xs, ys = winners.tolist(), losers.tolist()
        outcome = [evalica.Winner.X] * m
        t, _ = time_median(lambda: evalica.bradley_terry(xs, ys, outcome), repeat=3)
        rows.append(Row("rank", wl, "evalica bradley_terry", t, baseline=ref is None))
    peer_base = ref is None and not have("evalica")
    if have("scipy"):
        t, est = time_median(lambda: _lbfgs_bt(winners, losers, n), repeat=3)
        rows.append(Row("rank", wl, "FastChat-style L-BFGS-B on unique pairs", t,
                        baseline=peer_base, max_err=float(np.abs(fit.scores - est).max()),
                        tol=1e-4, note="error: vs fastalign"))  # fmt: skip
    err = None if ref is None else float(np.abs(fit.scores - ref).max())
    rows.append(Row("rank", wl, "fastalign bradley_terry", t_fast, baseline=not rows,
                    max_err=err, tol=None if err is None else 1e-6,
                    note=f"{fit.iterations} Newton iterations"))  # fmt: skip

    # bootstrap intervals, arena-sized: 100 models, 100k battles
    n_b, m_b = 100, 100_000
    rounds = {"quick": 100, "default": 1000, "full": 1000}[size]
    wl = f"BT bootstrap {rounds} rounds, {n_b} items, {m_b:,} comparisons"
    true = rng.normal(0, 1, n_b)
    a = rng.integers(0, n_b, m_b)
    b = (a + rng.integers(1, n_b, m_b)) % n_b
    win = rng.random(m_b) < 1 / (1 + np.exp(-(true[a] - true[b])))
    bw, bl = np.where(win, a, b), np.where(win, b, a)
    if have("scipy"):
        peer_rounds = {"quick": 5, "default": 20, "full": 50}[size]

        def loop() -> np.ndarray:  # FastChat's get_bootstrap_result: resample, refit, repeat
            r = np.random.default_rng(1)
            out = []
            for _ in range(peer_rounds):
                idx = r.integers(0, m_b, m_b)
                out.append(_lbfgs_bt(bw[idx], bl[idx], n_b))
            return np.quantile(np.array(out), [0.025, 0.975], axis=0)

        t, _ = time_median(loop, repeat=1, warmup=0)
        rows.append(Row("rank", wl, f"Python loop of L-BFGS-B fits ({peer_rounds} rounds, scaled)",
                        t * rounds / peer_rounds, baseline=True,
                        note=f"measured {t:.2f} s for {peer_rounds} rounds"))  # fmt: skip
    t, fit = time_median(
        lambda: fr.bradley_terry(bw, bl, n_items=n_b, bootstrap_rounds=rounds, seed=0), repeat=1
    )
    same = fr.bradley_terry(bw, bl, n_items=n_b, bootstrap_rounds=rounds, seed=0, threads=1)
    err = float(np.abs(fit.ci - same.ci).max())  # the same intervals on any thread count
    rows.append(Row("rank", wl, "fastalign bradley_terry(bootstrap_rounds=...)", t,
                    baseline=not have("scipy"), max_err=err, tol=0.0,
                    note="error: 2 threads vs 1 thread"))  # fmt: skip

    n_pl, k_pl = {"quick": (50, 10_000), "default": (200, 100_000), "full": (500, 500_000)}[size]
    wl = f"Plackett-Luce {n_pl} items, {k_pl:,} rankings of 4-8"
    true = rng.normal(0, 1, n_pl)
    data = []
    for _ in range(k_pl):  # Gumbel trick: sorted noisy strengths are PL rankings
        items = rng.choice(n_pl, rng.integers(4, 9), replace=False)
        data.append(items[np.argsort(-(true[items] + rng.gumbel(size=len(items))))])
    flat = np.concatenate(data)
    offsets = np.r_[0, np.cumsum([len(r) for r in data])]
    t_fast, fit = time_median(lambda: fr.plackett_luce(flat, offsets, n_items=n_pl), repeat=3)
    ref = None
    if have("choix"):
        lists = [r.tolist() for r in data]
        t, est = time_median(lambda: choix.ilsr_rankings(n_pl, lists, tol=1e-10), repeat=1,
                             warmup=0)  # fmt: skip
        ref = est - est.mean()
        rows.append(Row("rank", wl, "choix ilsr_rankings (1 run)", t, baseline=True))
    err = None if ref is None else float(np.abs(fit.scores - ref).max())
    rows.append(Row("rank", wl, "fastalign plackett_luce", t_fast, baseline=ref is None,
                    max_err=err, tol=None if err is None else 1e-6,
                    note=f"{fit.iterations} Newton iterations"))  # fmt: skip

    wl = f"maximal lottery {k} x {k}"
    P = rng.random((k, k))
    np.fill_diagonal(P, 0)
    M = P - P.T
    if have("scipy"):
        from scipy.optimize import linprog

        def lp() -> np.ndarray:
            c = np.r_[np.zeros(k), -1.0]
            res = linprog(c, A_ub=np.c_[-M.T, np.ones(k)], b_ub=np.zeros(k),
                          A_eq=[np.r_[np.ones(k), 0]], b_eq=[1],
                          bounds=[(0, None)] * k + [(None, None)])  # fmt: skip
            return res.x[:-1]

        t, q = time_median(lp, repeat=3)
        rows.append(Row("rank", wl, "scipy linprog (HiGHS)", t, baseline=True,
                        max_err=max(float((M @ q).max()), 0.0), tol=1e-9))  # fmt: skip
    t, p = time_median(lambda: fr.maximal_lottery(P), repeat=3)
    rows.append(Row("rank", wl, "fastalign maximal_lottery", t, baseline=not have("scipy"),
                    max_err=max(float((M @ p).max()), 0.0), tol=1e-9))  # fmt: skip
    return rows
