"""Reference rankings: the Bradley-Terry and Plackett-Luce maximum-likelihood fits solved by
scipy's L-BFGS-B in float64 on the plain log-likelihood with its exact gradient.

They are what a user writes without fastalign (FastChat's arena scripts fit Bradley-Terry this
way), so the bench times them as baselines and the tests compare :mod:`fastalign.rank` against
them. scipy is imported when a function is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def bradley_terry(
    winners: npt.ArrayLike,
    losers: npt.ArrayLike,
    n_items: int,
    *,
    weights: npt.ArrayLike | None = None,
    ties: npt.ArrayLike | None = None,
    prior: float = 0.0,
    gtol: float = 1e-13,
    maxiter: int = 100_000,
) -> npt.NDArray[np.float64]:
    """Bradley-Terry scores maximizing ``sum_k w_k log sigmoid(s[winner_k] - s[loser_k]) -
    prior/2 |s|^2``, a tie counting as half a win each way. Outcomes are first summed per
    (winner, loser) pair, then L-BFGS-B runs on the pair totals. Scores are centred when
    ``prior`` is 0 (the likelihood does not fix their mean)."""
    from scipy.optimize import minimize

    winners = np.asarray(winners, dtype=np.int64)
    losers = np.asarray(losers, dtype=np.int64)
    wts = np.ones(len(winners)) if weights is None else np.asarray(weights, dtype=np.float64)
    if ties is not None:  # each tie: half its weight a win each way
        t = np.asarray(ties, dtype=bool)
        winners, losers, wts = (
            np.concatenate([winners[~t], winners[t], losers[t]]),
            np.concatenate([losers[~t], losers[t], winners[t]]),
            np.concatenate([wts[~t], wts[t] / 2, wts[t] / 2]),
        )
    pairs, inverse = np.unique(winners * n_items + losers, return_inverse=True)
    counts = np.bincount(inverse, weights=wts)
    w, lo = pairs // n_items, pairs % n_items

    def f(s: Any) -> tuple[float, Any]:
        d = s[w] - s[lo]
        q = counts / (1 + np.exp(d))  # counts * (1 - sigmoid(d))
        g = np.bincount(w, q, n_items) - np.bincount(lo, q, n_items) - prior * s
        return float(counts @ np.logaddexp(0, -d) + prior / 2 * (s @ s)), -g

    x = minimize(f, np.zeros(n_items), jac=True, method="L-BFGS-B",
                 options={"gtol": gtol, "ftol": 1e-15, "maxiter": maxiter}).x  # fmt: skip
    return x - x.mean() if prior == 0 else x


def plackett_luce(
    rankings: Sequence[Sequence[int]], n_items: int, *, prior: float = 0.0
) -> npt.NDArray[np.float64]:
    """Plackett-Luce scores maximizing the rankings' log-likelihood ``- prior/2 |s|^2`` (each
    ranking best first; rankings padded to one length and scored stage by stage in NumPy).
    Centred when ``prior`` is 0."""
    from scipy.optimize import minimize

    width = max(len(r) for r in rankings)
    R = np.full((len(rankings), width), -1)
    for k, r in enumerate(rankings):
        R[k, : len(r)] = r
    valid = R >= 0
    idx = np.where(valid, R, 0)

    def f(s: Any) -> tuple[float, Any]:
        val, g = -prior / 2 * (s @ s), -prior * s
        x = np.where(valid, s[idx], -np.inf)
        for t in range(width - 1):
            live = valid[:, t + 1]  # stage t exists when a position after t is filled
            rest = x[live, t:]
            mx = rest.max(axis=1, keepdims=True)
            e = np.exp(rest - mx)
            tot = e.sum(axis=1, keepdims=True)
            val += (rest[:, 0] - mx[:, 0] - np.log(tot[:, 0])).sum()
            np.add.at(g, idx[live, t], 1.0)
            np.add.at(g, idx[live, t:][valid[live, t:]], -(e / tot)[valid[live, t:]])
        return -val, -g

    res = minimize(f, np.zeros(n_items), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 100_000})  # fmt: skip
    return res.x - res.x.mean() if prior == 0 else res.x
