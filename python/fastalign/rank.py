"""Ranking aggregation over preference data, in Rust: Bradley-Terry (with seeded, parallel
bootstrap intervals) and Plackett-Luce maximum likelihood, Elo, Borda, Copeland, Kemeny, Schulze,
maximal lotteries, cycle statistics of the majority graph, and preference-pair construction
for DPO-style datasets.

Items are integer ids ``0..n_items-1`` or labels (any strings or hashable values): labels are
mapped to ids once, sorted, and the result carries them in :attr:`RankResult.labels`.

Example:
    >>> from fastalign import rank
    >>> r = rank.bradley_terry(["a", "a", "b", "c", "c"], ["b", "c", "c", "a", "b"])
    >>> r.labels, r.ranks.tolist(), r.converged
    (['a', 'b', 'c'], [1, 3, 2], True)
    >>> rank.maximal_lottery([[0, 1, 0], [0, 0, 1], [1, 0, 0]]).round(6).tolist()
    [0.333333, 0.333333, 0.333333]
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fastalign import _core
from fastalign._validate import (
    as_bool_array,
    as_float_array,
    as_offsets,
    check_finite,
    check_int,
    check_open_unit,
    check_positive,
    check_range,
    check_threads,
    is_unordered,
)
from fastalign.errors import InvalidInputError, ShapeError

if TYPE_CHECKING:
    import numpy.typing as npt

# the most items a ranking accepts (the core's bound: beyond it an id is almost surely a
# mistake, and the per-item vectors would not fit)
MAX_ITEMS = 1 << 27

__all__ = [
    "Comparisons",
    "CycleStats",
    "KemenyResult",
    "Pairs",
    "RankResult",
    "borda",
    "bradley_terry",
    "copeland",
    "cycles",
    "elo",
    "kemeny",
    "maximal_lottery",
    "plackett_luce",
    "preference_matrix",
    "preference_pairs",
    "schulze",
    "score_comparisons",
]


@dataclasses.dataclass(frozen=True, eq=False)
class RankResult:
    """Scores and ranks of ``n`` items.

    Attributes:
        scores: float64 ``[n]``: natural-log strengths, mean 0 without a prior (with one,
            the maximum of the penalized likelihood, whose mean is 0 too).
        ranks: int64 ``[n]``: 1 for the highest score; equal scores share the best rank.
        converged: whether every item's gradient reached the tolerance.
        iterations: Newton iterations used.
        gradient: the largest gradient component relative to the item's comparison weight.
        labels: the item labels when labels were given, else None.
        ci: float64 ``[n, 2]`` bootstrap percentile interval of each score (when bootstrapped).
        tie_param: the fitted Davidson tie parameter ``nu`` (``tie_model="davidson"``).
    """

    scores: npt.NDArray[np.float64]
    ranks: npt.NDArray[np.int64]
    converged: bool
    iterations: int
    gradient: float
    labels: list[Any] | None = None
    ci: npt.NDArray[np.float64] | None = None
    tie_param: float | None = None

    def ratings(self, scale: float = 400.0, base: float = 10.0, init: float = 1000.0) -> Any:
        """The scores on an Elo-like rating scale (FastChat's leaderboard:
        ``scale / ln(base) * s + init``); with ``ci`` also the interval, same scale."""
        f = scale / np.log(base)
        r = f * self.scores + init
        return r if self.ci is None else (r, f * self.ci + init)

    @property
    def ranks_by_ci(self) -> npt.NDArray[np.int64]:
        """FastChat's leaderboard rank: 1 + the number of items whose interval lies entirely
        above this item's (needs ``ci``)."""
        if self.ci is None:
            raise InvalidInputError("ranks_by_ci needs a bootstrapped fit (bootstrap_rounds > 0)")
        lower, upper = self.ci[:, 0], self.ci[:, 1]
        return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)

    def top(self, k: int = 10) -> list[tuple[Any, float]]:
        """The ``k`` best items (label or id) with their scores."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        names = self.labels if self.labels is not None else list(range(len(self.scores)))
        return [(names[i], float(self.scores[i])) for i in order]


def _encode(**columns: Any) -> tuple[list[np.ndarray], list[Any] | None]:
    """Integer ids as C-contiguous int64 (no copy when they already are), or labels mapped to
    ids (sorted labels, one mapping across all columns)."""
    arrays = []
    for name, x in columns.items():
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be a sequence of item ids or labels, not a single str")
        if x is None or not hasattr(x, "__len__") or is_unordered(x):
            raise TypeError(
                f"{name} must be a sequence of item ids or labels, not {type(x).__name__}"
            )
        a = np.asarray(x)
        if not isinstance(x, np.ndarray) and (a.ndim != 1 or a.dtype.kind in "US"):
            # keep the caller's objects: NumPy would turn [1, "a"] into strings ("1" == 1)
            # and a list of tuples into a 2-D array
            a = np.empty(len(x), dtype=object)
            a[:] = list(x)
        if a.ndim != 1:
            raise ShapeError(f"{name} must be 1-D, got shape {a.shape}")
        arrays.append(a)
    kinds = {a.dtype.kind for a in arrays if len(a)}
    if kinds <= {"i", "u"}:
        out = [np.ascontiguousarray(a, dtype=np.int64) for a in arrays]
        for name, a in zip(columns, out, strict=True):
            if len(a) and (a.min() < 0 or a.max() >= MAX_ITEMS):
                k = int(np.flatnonzero((a < 0) | (a >= MAX_ITEMS))[0])
                why = (
                    "item ids must be >= 0"
                    if a[k] < 0
                    else f"at most {MAX_ITEMS} items are supported (ids 0..{MAX_ITEMS - 1}; map "
                    "sparse ids or labels to dense ids first)"
                )
                raise InvalidInputError(f"{name}[{k}] = {int(a[k])} is out of range: {why}")
        return out, None
    for name, a in zip(columns, arrays, strict=True):
        if len(a) and a.dtype.kind in "fbc":
            raise TypeError(f"{name} must hold integers or labels (item ids), got dtype {a.dtype}")
    values: list[Any] = [v for a in arrays for v in a.tolist()]
    if any(v is None for v in values):
        raise TypeError("an item label is None")
    try:
        labels = sorted(set(values))
    except TypeError:
        raise TypeError(
            "item labels must be mutually comparable (all str, or all int, ...): got "
            f"{sorted({type(v).__name__ for v in values})}"
        ) from None
    index = {v: i for i, v in enumerate(labels)}
    ids = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    cuts = np.cumsum([len(a) for a in arrays])[:-1]
    return list(np.split(ids, cuts)), labels


def _with_labels(call: Any, labels: list[Any] | None) -> Any:
    """Runs ``call()``; an error that names item ids names their labels instead."""
    try:
        return call()
    except InvalidInputError as e:
        if labels is None:
            raise
        msg = re.sub(
            r"items \[([0-9, ]*)\]",
            lambda m: "items " + repr([labels[int(i)] for i in m.group(1).split(",") if i.strip()]),
            str(e),
        )
        raise type(e)(msg) from None


def bradley_terry(
    winners: Sequence[Any] | npt.ArrayLike,
    losers: Sequence[Any] | npt.ArrayLike,
    *,
    n_items: int | None = None,
    weights: npt.ArrayLike | None = None,
    ties: npt.ArrayLike | None = None,
    prior: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    tie_model: str = "half",
    bootstrap_rounds: int = 0,
    ci_level: float = 0.95,
    seed: int = 0,
    threads: int | None = None,
) -> RankResult:
    """Bradley-Terry maximum likelihood: maximizes
    ``sum_k w_k log sigmoid(s[winner_k] - s[loser_k]) - prior/2 * ||s||^2`` (a tie counts as
    half a win each way) by Newton's method with conjugate-gradient steps over the summed
    comparison graph: a dense ``n x n`` table when there are at least ``n**2 / 2`` comparisons
    (the arena case; read in order, row by row: ~200x choix's I-LSR at 1000 items and 1M
    comparisons, see ``benches/results/``), a list of the compared pairs otherwise; either
    gives the same result on any number of threads.

    Without a prior the maximum exists only when every group of items both wins and loses
    against the rest (the "beat" graph is strongly connected); otherwise this raises
    :class:`~fastalign.errors.InvalidInputError` naming the group (pass ``prior > 0``).

    Args:
        winners, losers: item ids (int) or labels, one pair per comparison.
        n_items: the number of items (ids only; default ``max id + 1``; items never compared
            need a prior).
        weights: non-negative weight per comparison (default 1).
        ties: bool per comparison: a tie.
        tie_model: ``"half"`` (a tie is half a win each way, as FastChat counts them) or
            ``"davidson"`` (Davidson 1970: P(tie) = nu / (exp(d/2) + exp(-d/2) + nu); ``nu``
            is fitted by its profile likelihood and returned in ``tie_param``).
        prior: L2 penalty on the scores (0: plain maximum likelihood).
        tol: converged when every item's gradient is at most ``tol`` times the total weight
            of its comparisons (at least 1).
        max_iter: Newton iterations at most; a fit that stops short warns and says so in
            :attr:`RankResult.converged`.
        bootstrap_rounds: when > 0, refit on that many resamples (with replacement) of the
            comparisons, in parallel, and report percentile intervals at ``ci_level`` in
            :attr:`RankResult.ci`. Round ``b`` depends only on ``(seed, b)``: the same seed
            gives the same intervals on any number of threads. Resamples without a maximum
            (possible without a prior) are left out, with a warning.

    >>> r = bradley_terry([0, 0, 0, 1], [1, 1, 1, 0])
    >>> round(float(r.scores[0] - r.scores[1]), 9), round(float(np.log(3)), 9)
    (1.098612289, 1.098612289)
    """
    (w, lo), labels = _encode(winners=winners, losers=losers)
    if len(w) != len(lo):
        raise ShapeError(f"winners has {len(w)} entries, losers {len(lo)}")
    if labels is not None and n_items is not None:
        raise InvalidInputError("n_items applies to integer ids, not labels")
    wt = None if weights is None else as_float_array(weights, "weights", ndim=1)
    ti = as_bool_array(ties, "ties")
    prior, tol, max_iter = _fit_options(prior, tol, max_iter)
    bootstrap_rounds = check_int(bootstrap_rounds, "bootstrap_rounds", 0, 2**31)
    seed, threads = check_int(seed, "seed", 0), check_threads(threads)
    if tie_model not in ("half", "davidson"):
        raise InvalidInputError(f"tie_model must be 'half' or 'davidson', got {tie_model!r}")
    dav = tie_model == "davidson"
    n = None if labels is not None else n_items
    out, nu = _with_labels(
        lambda: _core.rank_bradley_terry(
            w, lo, wt, ti, n, float(prior), float(tol), int(max_iter), dav
        ),
        labels,
    )
    result = _result("bradley_terry", out, tol, labels)
    if dav:
        result = dataclasses.replace(result, tie_param=float(nu))
    if bootstrap_rounds:
        ci_level = check_open_unit(ci_level, "ci_level")
        n_all = len(result.scores)
        flat, failed = _core.rank_bootstrap_bt(
            w, lo, wt, ti, n_all, float(prior), float(tol), int(max_iter),
            int(bootstrap_rounds), int(seed), dav, threads,
        )  # fmt: skip
        boot = flat.reshape(int(bootstrap_rounds), n_all)
        boot = boot[~np.isnan(boot).any(axis=1)]
        if failed:
            warnings.warn(
                f"{failed} of {bootstrap_rounds} bootstrap resamples had no maximum (left out); "
                "a prior > 0 avoids this",
                RuntimeWarning,
                stacklevel=2,
            )
        if len(boot) == 0:
            raise InvalidInputError("no bootstrap resample had a maximum: pass prior > 0")
        alpha = (1.0 - ci_level) / 2.0
        ci = np.quantile(boot, [alpha, 1.0 - alpha], axis=0).T
        result = dataclasses.replace(result, ci=np.ascontiguousarray(ci))
    return result


def _flat_rankings(rankings: Any, offsets: Any) -> tuple[np.ndarray, np.ndarray, list[Any] | None]:
    """Rankings as flat int64 ids + offsets (from a list of rankings or flat + offsets)."""
    if isinstance(rankings, (str, bytes)):
        raise TypeError("rankings must be a sequence, not a single str")
    if offsets is None:
        if not isinstance(rankings, Sequence) or not all(
            isinstance(r, (Sequence, np.ndarray)) and not isinstance(r, str) for r in rankings
        ):
            raise TypeError("without offsets, rankings must be a list of rankings (sequences)")
        offs = np.zeros(len(rankings) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rankings], out=offs[1:])
        flat: Any = [x for r in rankings for x in r]
    else:
        flat = rankings
        offs = as_offsets(offsets)
    (items,), labels = _encode(rankings=flat)
    return np.ascontiguousarray(items), np.ascontiguousarray(offs), labels


def _fit_options(prior: Any, tol: Any, max_iter: Any) -> tuple[float, float, int]:
    """The options of a maximum-likelihood fit, checked: prior >= 0, tol > 0, max_iter >= 1."""
    return (
        check_range(prior, "prior", 0.0, math.inf),
        check_positive(tol, "tol"),  # type: ignore[return-value]
        check_int(max_iter, "max_iter", 1, 2**31),
    )


def _result(what: str, out: tuple, tol: float, labels: list[Any] | None) -> RankResult:
    scores, ranks, converged, iterations, gradient = out
    if not converged:
        warnings.warn(
            f"{what} stopped after {iterations} iterations with relative gradient "
            f"{gradient:.3g} > tol = {tol:g}",
            RuntimeWarning,
            stacklevel=3,
        )
    return RankResult(scores, ranks, converged, iterations, gradient, labels)


def plackett_luce(
    rankings: Sequence[Sequence[Any]] | npt.ArrayLike,
    offsets: npt.ArrayLike | None = None,
    *,
    n_items: int | None = None,
    prior: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> RankResult:
    """Plackett-Luce maximum likelihood over rankings (best first): maximizes
    ``sum over rankings, stages t: s[r_t] - log sum_{u >= t} exp(s[r_u]) - prior/2 ||s||^2``
    by Newton's method with conjugate-gradient steps. Rankings of one item carry no
    information and are skipped; rankings of two are Bradley-Terry comparisons.

    Args:
        rankings: flat item ids (or labels) with ``offsets`` (int64 ``[k + 1]``: ranking ``j``
            is ``rankings[offsets[j]:offsets[j + 1]]``), or a list of rankings (no offsets).
        n_items, prior, tol, max_iter: as :func:`bradley_terry` (``tol`` relative to the
            number of stages an item takes part in). Without a prior the items must not split
            into groups always ranked above one another.

    >>> r = plackett_luce([["a", "b", "c"], ["b", "a", "c"], ["c", "a"]])
    >>> r.labels, r.ranks.tolist()
    (['a', 'b', 'c'], [2, 1, 3])
    """
    items, offs, labels = _flat_rankings(rankings, offsets)
    if labels is not None and n_items is not None:
        raise InvalidInputError("n_items applies to integer ids, not labels")
    prior, tol, max_iter = _fit_options(prior, tol, max_iter)
    out = _with_labels(
        lambda: _core.rank_plackett_luce(
            items, offs, None if labels is not None else n_items, float(prior), float(tol),
            int(max_iter),
        ),
        labels,
    )  # fmt: skip
    return _result("plackett_luce", out, tol, labels)


def maximal_lottery(P: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The maximal lottery of a preference matrix: ``P[i, j]`` is the weight of "i preferred
    to j" (counts or probabilities, >= 0); the lottery ``p`` is an optimal strategy of the
    symmetric zero-sum game with payoffs ``M = P - P^T``, so no item beats it in expectation
    (``M @ p <= 0``, checked before returning). A Condorcet winner gets probability 1. When
    several lotteries are maximal (ties in the margins), the one returned is the vertex the
    simplex reaches (deterministic for a given ``P``).

    >>> maximal_lottery([[0, 3, 1], [2, 0, 1], [4, 5, 0]]).tolist()
    [0.0, 0.0, 1.0]
    """
    p = as_float_array(P, "P", ndim=2)
    return _core.rank_maximal_lottery(p)


# -- ratings and voting rules ---------------------------------------------------------------------


def elo(
    winners: Sequence[Any] | npt.ArrayLike,
    losers: Sequence[Any] | npt.ArrayLike,
    *,
    ties: npt.ArrayLike | None = None,
    n_items: int | None = None,
    k: float = 4.0,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
) -> RankResult:
    """Online Elo over the comparisons in order, FastChat's parameters by default (K=4,
    scale 400, base 10, init 1000); a tie scores 0.5. ``scores`` are the ratings.

    >>> elo(["a", "b", "a"], ["b", "c", "c"]).scores.round(3).tolist()
    [1003.977, 1000.012, 996.012]
    """
    (w, lo), labels = _encode(winners=winners, losers=losers)
    if len(w) != len(lo):
        raise ShapeError(f"winners has {len(w)} entries, losers {len(lo)}")
    if labels is not None and n_items is not None:
        raise InvalidInputError("n_items applies to integer ids, not labels")
    n = len(labels) if labels is not None else n_items
    if n is None:
        n = int(max(w.max(initial=-1), lo.max(initial=-1))) + 1
    t = as_bool_array(ties, "ties")
    k = check_range(k, "k", 0.0, math.inf)
    scale = check_positive(scale, "scale")
    base = check_range(base, "base", 1.0, math.inf)
    if base == 1.0:
        raise InvalidInputError("base must be > 1 (ratings are log-odds in that base)")
    init = check_finite(init, "init")
    r = _core.rank_elo(w, lo, t, int(n), k, scale, base, init)
    return _plain(r, labels)


def _plain(scores: np.ndarray, labels: list[Any] | None = None) -> RankResult:
    """A result for a method without an iteration: competition ranks ("1224")."""
    desc = np.sort(-scores)
    ranks = 1 + np.searchsorted(desc, -scores, side="left")
    return RankResult(scores, ranks.astype(np.int64), True, 0, 0.0, labels)


def borda(
    rankings: Sequence[Sequence[Any]] | npt.ArrayLike,
    offsets: npt.ArrayLike | None = None,
    *,
    n_items: int | None = None,
) -> RankResult:
    """Borda points: position ``p`` (0 = best) of a ranking of ``L`` items earns ``L - 1 - p``
    (rankings as in :func:`plackett_luce`).

    >>> borda([["a", "b", "c"], ["b", "a"]]).scores.tolist()
    [2.0, 2.0, 0.0]
    """
    items, offs, labels = _flat_rankings(rankings, offsets)
    if labels is not None and n_items is not None:
        raise InvalidInputError("n_items applies to integer ids, not labels")
    pts = _core.rank_borda(items, offs, None if labels is not None else n_items)
    return _plain(pts, labels)


def copeland(P: npt.ArrayLike) -> RankResult:
    """Copeland scores of a preference matrix (``P[i, j]``: weight of "i preferred to j"):
    pairwise-majority wins minus losses.

    >>> copeland([[0, 3, 2], [1, 0, 2], [2, 2, 0]]).scores.tolist()
    [1.0, -1.0, 0.0]
    """
    return _plain(_core.rank_copeland(as_float_array(P, "P", ndim=2)))


def schulze(P: npt.ArrayLike) -> tuple[RankResult, npt.NDArray[np.float64]]:
    """The Schulze method: strongest paths over pairwise wins; ``scores`` count the items each
    beats by path strength (the winners have the most). Returns the result and the
    strongest-path matrix.

    >>> r, paths = schulze([[0, 3, 2], [1, 0, 3], [2, 1, 0]])
    >>> r.scores.tolist(), r.ranks.tolist()
    ([2.0, 1.0, 0.0], [1, 2, 3])
    """
    p = as_float_array(P, "P", ndim=2)
    wins, paths = _core.rank_schulze(p)
    return _plain(wins), paths.reshape(p.shape)


@dataclasses.dataclass(frozen=True)
class CycleStats:
    """Cycles of the majority graph (edge i -> j when ``P[i, j] > P[j, i]``).

    Attributes:
        component: int64 ``[m]``: strongly connected component per item, numbered top first.
        n_components: components (``m`` means the majority graph has no cycle).
        three_cycles: directed 3-cycles (intransitive triples).
    """

    component: npt.NDArray[np.int64]
    n_components: int
    three_cycles: int


def cycles(P: npt.ArrayLike) -> CycleStats:
    """Cycle statistics of a preference matrix's majority graph.

    >>> c = cycles([[0, 1, 0], [0, 0, 1], [1, 0, 0]])  # rock, paper, scissors
    >>> c.n_components, c.three_cycles
    (1, 1)
    """
    comp, count, three = _core.rank_cycles(as_float_array(P, "P", ndim=2))
    return CycleStats(comp, int(count), int(three))


@dataclasses.dataclass(frozen=True)
class Comparisons:
    """Weighted pairwise comparisons, ready for :func:`bradley_terry` (``**vars(c)`` or by
    field) and :func:`preference_matrix`: item ids of winners and losers, a weight per row
    and a tie flag per row (a tied row's winner/loser order carries no meaning)."""

    winners: npt.NDArray[np.int64]
    losers: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
    ties: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.winners)


def score_comparisons(scores: npt.ArrayLike, *, margin: float = 0.0) -> Comparisons:
    """Pairwise comparisons from a score matrix ``[items x judges]`` (judges: raters, reward
    models, prompts, ...; NaN = that judge did not score that item): for each judge and each
    pair of items it scored, the higher score wins and scores within ``margin`` tie. Rows are
    aggregated per pair, weighted by the number of judges (8192 items at most: the counts
    are dense ``items x items`` tables).

    Bootstrapping a fit of these rows resamples pairs, not judges; to resample judges, draw
    columns of ``scores`` yourself.

    >>> c = score_comparisons([[3.0, 1.0], [1.0, 1.0], [2.0, float("nan")]])
    >>> c.winners.tolist(), c.losers.tolist(), c.weights.tolist(), c.ties.tolist()
    ([0, 0, 2, 0], [1, 2, 1, 1], [1.0, 1.0, 1.0, 1.0], [False, False, False, True])
    >>> bradley_terry(c.winners, c.losers, weights=c.weights, ties=c.ties, prior=0.1).ranks.tolist()
    [1, 3, 2]
    """
    s = as_float_array(scores, "scores", ndim=2)  # NaN: a judge that did not score an item
    if s.size == 0:
        raise InvalidInputError(f"scores is empty (shape {s.shape})")
    w, lo, wt, ti = _core.rank_score_comparisons(s, float(margin))
    return Comparisons(w, lo, wt, ti)


def preference_matrix(
    winners: Sequence[Any] | npt.ArrayLike,
    losers: Sequence[Any] | npt.ArrayLike,
    *,
    n_items: int | None = None,
    weights: npt.ArrayLike | None = None,
    ties: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """The preference matrix ``P[i, j]`` = total weight of comparisons ``i`` won against
    ``j`` (a tie adds half its weight each way), the input of :func:`maximal_lottery`,
    :func:`copeland`, :func:`schulze`, :func:`kemeny` and :func:`cycles`. With labels, rows
    and columns follow ``sorted(set(labels))`` (the order of :attr:`RankResult.labels`).

    >>> preference_matrix([0, 0, 1], [1, 1, 2], ties=[False, True, False]).tolist()
    [[0.0, 1.5, 0.0], [0.5, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    (w, lo), labels = _encode(winners=winners, losers=losers)
    if len(w) != len(lo):
        raise ShapeError(f"winners has {len(w)} entries, losers {len(lo)}")
    if labels is not None and n_items is not None:
        raise InvalidInputError("n_items applies to integer ids, not labels")
    if len(w) and min(w.min(), lo.min()) < 0:
        raise InvalidInputError("item ids must be >= 0")
    if (same := np.flatnonzero(w == lo)).size:
        raise InvalidInputError(
            f"comparison {int(same[0])}: item {int(w[same[0]])} compared with itself"
        )
    top = int(max(w.max(), lo.max())) + 1 if len(w) else 0
    if n_items is not None and (isinstance(n_items, bool) or int(n_items) < 0):
        raise InvalidInputError(f"n_items must be an int >= 0, got {n_items!r}")
    n = len(labels) if labels is not None else (top if n_items is None else int(n_items))
    if top > n:
        raise InvalidInputError(f"item id {top - 1} is out of range for n_items={n}")
    if n > 1 << 14:
        raise InvalidInputError(f"{n} items would make a {n} x {n} float64 matrix; too large")
    wt = np.ones(len(w)) if weights is None else as_float_array(weights, "weights", ndim=1)
    ti = as_bool_array(ties, "ties")
    for name, a in (("weights", wt), ("ties", ti)):
        if a is not None and len(a) != len(w):
            raise ShapeError(f"{name} has {len(a)} entries, winners {len(w)}")
    if not np.isfinite(wt).all() or (wt < 0).any():
        k = int(np.flatnonzero(~(np.isfinite(wt) & (wt >= 0)))[0])
        raise InvalidInputError(f"weights must be finite and >= 0: weights[{k}] = {wt[k]}")
    if ti is not None:
        half = np.where(ti, 0.5 * wt, 0.0)
        wt = wt - half
        back = np.bincount(lo * n + w, weights=half, minlength=n * n)
    else:
        back = 0.0
    P = np.bincount(w * n + lo, weights=wt, minlength=n * n) + back
    return P.reshape(n, n)


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Preference pairs: global row indices of the chosen and rejected responses and the score
    gap (chosen minus rejected; MaPPO's reward gap)."""

    chosen: npt.NDArray[np.int64]
    rejected: npt.NDArray[np.int64]
    gap: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.chosen)


def preference_pairs(
    scores: npt.ArrayLike,
    offsets: npt.ArrayLike,
    *,
    mode: str = "best_worst",
    margin: float = 0.0,
    k: int = 1,
) -> Pairs:
    """DPO pairs from per-response scores grouped by prompt (``offsets`` int64
    ``[groups + 1]``): ``"best_worst"`` (one pair per group), ``"all"`` (every pair), or
    ``"top_bottom"`` (each of the ``k`` best against each of the ``k`` worst); only pairs
    whose gap exceeds ``margin`` (and is positive) are kept. Equal scores keep row order.

    >>> p = preference_pairs([0.1, 0.9, 0.5, 2.0, 1.0], [0, 3, 5])
    >>> p.chosen.tolist(), p.rejected.tolist(), p.gap.round(2).tolist()
    ([1, 3], [0, 4], [0.8, 1.0])
    """
    if mode not in ("best_worst", "all", "top_bottom"):
        raise InvalidInputError(f"mode must be 'best_worst', 'all' or 'top_bottom', got {mode!r}")
    s = as_float_array(scores, "scores", ndim=1, finite=True)
    o = as_offsets(offsets)
    k = check_int(k, "k", 1)
    c, r, g = _core.rank_preference_pairs(s, o, mode, float(margin), int(k))
    return Pairs(c, r, g)


@dataclasses.dataclass(frozen=True)
class KemenyResult:
    """A Kemeny ranking.

    Attributes:
        order: int64 ``[m]``: item ids, first place first.
        ranks: int64 ``[m]``: each item's place (1 = first).
        objective: the total preference weight the order contradicts (lower is better).
        exact: whether the order is proven optimal (dynamic programming, up to 16 items);
            otherwise a local-search optimum.
    """

    order: npt.NDArray[np.int64]
    ranks: npt.NDArray[np.int64]
    objective: float
    exact: bool


def kemeny(P: npt.ArrayLike, *, exact: bool | None = None) -> KemenyResult:
    """The Kemeny ranking of a preference matrix: the order minimizing the preference weight
    it contradicts, ``sum over i placed before j of P[j, i]``. Exact (dynamic programming over
    subsets) for up to 16 items by default; beyond, single-item insertion local search from
    the net-wins order. ``exact=True`` / ``False`` forces the method.

    >>> k = kemeny([[0, 3, 4], [2, 0, 3], [1, 2, 0]])
    >>> k.order.tolist(), k.objective, k.exact
    ([0, 1, 2], 5.0, True)
    """
    order, obj, was_exact = _core.rank_kemeny(as_float_array(P, "P", ndim=2), exact)
    ranks = np.empty_like(order)
    ranks[order] = np.arange(1, len(order) + 1)
    return KemenyResult(order, ranks, float(obj), bool(was_exact))
