"""The ``pareto`` workload of ``fastalign bench`` (``fastalign bench --only pareto``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from fastalign.bench._harness import Row, have, time_median


def run(size: str) -> list[Row]:
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

    # -- hypervolume beyond 3 objectives: fronts of three shapes ---------------------------
    from fastalign.reference.pareto import front_points

    many = {"quick": [(4, 200), (5, 100), (6, 60), (8, 30)],
            "default": [(4, 1000), (5, 300), (6, 150), (8, 60)],
            "full": [(4, 3000), (5, 1000), (6, 300), (8, 100)]}[size]  # fmt: skip
    shapes = ["spherical"] if size == "quick" else ["spherical", "linear", "convex"]
    for shape in shapes:
        for m, n in many:
            front = front_points(shape, n, m, rng)
            ref_m = np.full(m, 1.1)
            wl = f"hypervolume {n:,} x {m} ({shape} front)"
            t_fast, hv = time_median(lambda f=front, r=ref_m: fp.hypervolume(f, r), repeat=repeat)
            peers = []
            if have("moocore"):
                peers.append(("moocore hypervolume",
                              lambda f=front, r=ref_m: moocore.hypervolume(f, ref=r)))  # fmt: skip
            if have("pymoo") and shape == "spherical":
                from pymoo.indicators.hv import HV

                ind = HV(ref_point=ref_m)
                peers.append(("pymoo HV", lambda f=front, ind=ind: ind(f)))
            for k, (name, fn) in enumerate(peers):
                t, val = time_median(fn, repeat=repeat)
                rows.append(Row("pareto", wl, name, t, baseline=k == 0,
                                max_err=abs(float(val) - hv) / hv, tol=1e-12))  # fmt: skip
            rows.append(Row("pareto", wl, "fastalign (rust)", t_fast, baseline=not peers))

    # -- batched: one hypervolume per group, vs a loop of single calls ---------------------
    batches = []
    if have("moocore"):
        data = moocore.get_dataset("ran.10pts.9d.10")  # moocore's own 9-D test sets
        batches.append(("moocore ran.10pts.9d.10", data[:, :-1], data[:, -1]))
    g4 = {"quick": 64, "default": 512, "full": 2048}[size]
    pts4 = np.concatenate([front_points("spherical", 64, 4, rng) for _ in range(g4)])
    batches.append((f"{g4} groups x 64 x 4 (spherical)", pts4, np.repeat(np.arange(g4), 64)))
    for label, pts_b, set_ids in batches:
        offsets = np.r_[0, np.flatnonzero(np.diff(set_ids)) + 1, len(set_ids)]
        ref_b = pts_b.max(axis=0) + 0.1
        wl = f"hypervolume batched, {label}"
        t_fast, hvs = time_median(
            lambda p=pts_b, r=ref_b, o=offsets: fp.hypervolume(p, r, offsets=o), repeat=repeat
        )
        spans = list(itertools.pairwise(offsets))
        if have("moocore"):
            t, vals = time_median(
                lambda p=pts_b, r=ref_b, sp=spans: [
                    moocore.hypervolume(p[s:e], ref=r) for s, e in sp
                ],
                repeat=repeat,
            )
            err = float(np.max(np.abs(np.asarray(vals) - hvs) / np.asarray(vals)))
            rows.append(Row("pareto", wl, "moocore hypervolume (loop)", t, baseline=True,
                            max_err=err, tol=1e-12))  # fmt: skip
        t, _ = time_median(
            lambda p=pts_b, r=ref_b, sp=spans: [fp.hypervolume(p[s:e], r) for s, e in sp],
            repeat=repeat,
        )
        rows.append(Row("pareto", wl, "fastalign (rust, loop)", t, baseline=not have("moocore")))
        rows.append(Row("pareto", wl, "fastalign (rust, batched)", t_fast))
    return rows
