"""The ``rank`` workload of ``fastalign bench`` (``fastalign bench --only rank``)."""

from __future__ import annotations

from typing import Any

from fastalign.bench._harness import Row, have, time_median
from fastalign.reference.rank import bradley_terry


def fastchat_bt(winners: Any, losers: Any, n: int, ties: Any = None) -> Any:
    """Bradley-Terry the way FastChat's arena scripts fit it (outcomes counted per unique
    (winner, loser) pair, L-BFGS-B to FastChat's tolerance): the reference fit at ``gtol`` 1e-9."""
    return bradley_terry(winners, losers, n, ties=ties, gtol=1e-9, maxiter=10_000)


def run(size: str) -> list[Row]:
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
        t, est = time_median(lambda: fastchat_bt(winners, losers, n), repeat=3)
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
                out.append(fastchat_bt(bw[idx], bl[idx], n_b))
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
