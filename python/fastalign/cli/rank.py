"""``fastalign rank BATTLES``: a leaderboard from pairwise battles, with bootstrap intervals.

BATTLES is a JSONL, CSV / TSV or Parquet file (``-``: JSONL on standard input) with one battle
per row: ``model_a``, ``model_b`` and ``winner``, and optionally ``judge``. ``winner`` is
``model_a`` / ``a``, ``model_b`` / ``b``, ``tie`` / ``tie (bothbad)`` / ``both_bad`` (as in the
LMSYS arena dumps), or the name of one of the two models. ``--judge NAME`` keeps the battles of
one judge (repeat for several).

Methods (``--method``):

* ``bt`` (default): Bradley-Terry maximum likelihood (a tie is half a win each way), on the Elo
  scale: ``rating = 1000 + 400 * log10(e) * score``; intervals from the fit's own parallel
  bootstrap (seeded: the same numbers on any number of threads).
* ``elo``: online Elo over the battles in file order (FastChat's K=4, scale 400, init 1000);
  intervals from refits on resampled battles, each resample in its drawn order.
* ``pl``: Plackett-Luce; each decided battle is a ranking of two (ties are left out and
  counted), so this is Bradley-Terry without ties; intervals as for ``elo``.
* ``lottery``: the maximal lottery of the battles' preference matrix (a probability per
  model); intervals as for ``elo``.

Intervals are percentile intervals at ``--ci`` (0.95) over ``--bootstrap`` resamples (1000;
0 for none; for elo, pl and lottery a resample in which some model has no battle, or whose fit
has no maximum, is left out, and ``bootstrap_used`` counts the others). The table is sorted
by rating (or probability); ``--json`` prints the same as JSON, ``-o`` writes it to a file as
well.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from fastalign._files import (
    FileInputError,
    Table,
    atomic_write_text,
    read_columns,
    refuse_overwriting,
)
from fastalign.cli._common import table_command
from fastalign.errors import ConvergenceError, InvalidInputError

METHODS = ("bt", "elo", "pl", "lottery")
ELO_SCALE = 400.0 / math.log(10.0)
_A = {"model_a", "a"}
_B = {"model_b", "b"}
_TIE = {"tie", "tie (bothbad)", "both_bad", "tie(bothbad)"}


def battles(table: Table, judges: list[str] | None) -> dict[str, Any]:
    """Winners, losers and ties of the battles in ``table`` (after the judge filter), with each
    bad row named by its file and line."""
    cols = table.columns
    keep = range(len(table))
    if judges:
        if "judge" not in cols:
            raise FileInputError(f"{table.path}: --judge given, but the file has no judge column")
        wanted = set(judges)
        keep = [i for i in keep if cols["judge"][i] in wanted]
        if not keep:
            raise FileInputError(f"{table.path}: no battle judged by {sorted(wanted)}")
    winners, losers, ties = [], [], []
    for i in keep:
        a, b, w = cols["model_a"][i], cols["model_b"][i], cols["winner"][i]
        for name, v in (("model_a", a), ("model_b", b), ("winner", w)):
            if not isinstance(v, str) or not v:
                raise FileInputError(
                    f"{table.where(i)}: {name} must be a non-empty string, got {v!r}"
                )
        if a == b:
            raise FileInputError(f"{table.where(i)}: a battle of {a!r} with itself")
        key = w.strip().lower()
        if key in _A or w == a:
            outcome = (a, b, False)
        elif key in _B or w == b:
            outcome = (b, a, False)
        elif key in _TIE:
            outcome = (a, b, True)
        else:
            raise FileInputError(
                f"{table.where(i)}: winner {w!r} is none of model_a, model_b, tie, "
                f"tie (bothbad), {a!r}, {b!r}"
            )
        winners.append(outcome[0])
        losers.append(outcome[1])
        ties.append(outcome[2])
    if not winners:
        raise FileInputError(f"{table.path}: no battles")
    return {"winners": winners, "losers": losers, "ties": np.array(ties, dtype=bool)}


def _fit(
    method: str, wi: np.ndarray, li: np.ndarray, ties: np.ndarray, n: int, prior: float
) -> np.ndarray:
    """The method's value per model id ``0..n-1`` (ratings, or lottery probabilities)."""
    from fastalign import rank

    if method == "elo":
        return rank.elo(wi, li, ties=ties, n_items=n).scores
    if method == "pl":
        decided = ~ties
        rankings = np.stack([wi[decided], li[decided]], axis=1).reshape(-1)
        offsets = np.arange(0, 2 * int(decided.sum()) + 1, 2)
        scores = rank.plackett_luce(rankings, offsets, n_items=n, prior=prior).scores
        return 1000.0 + ELO_SCALE * (scores - scores.mean())
    if method == "lottery":
        return rank.maximal_lottery(rank.preference_matrix(wi, li, ties=ties, n_items=n))
    raise AssertionError(method)


def leaderboard(
    data: dict[str, Any], method: str, *, rounds: int, ci: float, seed: int, prior: float
) -> dict[str, Any]:
    """The leaderboard as a dict (what ``--json`` prints)."""
    from fastalign import rank

    w, lo, ties = data["winners"], data["losers"], data["ties"]
    labels = sorted(set(w) | set(lo))
    n_b = len(w)
    used = 0
    if method == "bt":
        r = rank.bradley_terry(
            w, lo, ties=ties, prior=prior, bootstrap_rounds=rounds, ci_level=ci, seed=seed
        )
        labels = r.labels
        value = 1000.0 + ELO_SCALE * r.scores
        interval = None if r.ci is None else 1000.0 + ELO_SCALE * r.ci
        used = None  # the fit leaves out resamples without a maximum, with a warning
    else:
        index = {m: k for k, m in enumerate(labels)}
        wi = np.fromiter((index[m] for m in w), np.int64, n_b)
        li = np.fromiter((index[m] for m in lo), np.int64, n_b)
        n = len(labels)
        value = _fit(method, wi, li, ties, n, prior)
        interval = None
        if rounds:
            gen = np.random.default_rng(seed)
            draws = []
            for _ in range(rounds):
                idx = gen.integers(0, n_b, n_b)
                seen = np.bincount(wi[idx], minlength=n) + np.bincount(li[idx], minlength=n)
                if not seen.all():
                    continue  # a model without battles in the resample: no value for it
                try:
                    draws.append(_fit(method, wi[idx], li[idx], ties[idx], n, prior))
                except (InvalidInputError, ConvergenceError):
                    continue  # no maximum in this resample (say a model that never wins)
            used = len(draws)
            if draws:
                alpha = (1.0 - ci) / 2.0
                interval = np.quantile(np.array(draws), [alpha, 1.0 - alpha], axis=0).T
    counts = {m: {"battles": 0, "wins": 0, "losses": 0, "ties": 0} for m in labels}
    for a, b, t in zip(w, lo, ties, strict=True):
        counts[a]["battles"] += 1
        counts[b]["battles"] += 1
        if t:
            counts[a]["ties"] += 1
            counts[b]["ties"] += 1
        else:
            counts[a]["wins"] += 1
            counts[b]["losses"] += 1
    order = sorted(range(len(labels)), key=lambda k: (-value[k], labels[k]))
    key = "probability" if method == "lottery" else "rating"
    models = []
    for pos, k in enumerate(order):
        rank_k = pos + 1
        if pos and value[k] == value[order[pos - 1]]:
            rank_k = models[-1]["rank"]  # equal values share the better rank
        row = {"rank": rank_k, "model": labels[k], key: float(value[k])}
        row["ci"] = None if interval is None else [float(x) for x in interval[k]]
        row.update(counts[labels[k]])
        models.append(row)
    return {
        "method": method,
        "battles": n_b,
        "ties": int(ties.sum()),
        "models_count": len(labels),
        "bootstrap_rounds": rounds,
        "bootstrap_used": used,
        "ci_level": ci,
        "seed": seed,
        "models": models,
    }


def format_leaderboard(board: dict[str, Any], source: str) -> str:
    """The leaderboard as a text table."""
    names = {"bt": "Bradley-Terry", "elo": "online Elo", "pl": "Plackett-Luce",
             "lottery": "maximal lottery"}  # fmt: skip
    key = "probability" if board["method"] == "lottery" else "rating"
    head = (
        f"{names[board['method']]} leaderboard of {board['models_count']} models from "
        f"{board['battles']:,} battles ({board['ties']:,} ties) in {source}"
    )
    if board["bootstrap_rounds"]:
        head += (
            f"; {board['ci_level']:.0%} intervals from {board['bootstrap_rounds']} "
            "bootstrap resamples"
        )
    fmt = (lambda x: f"{x:.4f}") if key == "probability" else (lambda x: f"{x:.1f}")
    rows = [("rank", "model", key, "interval", "battles", "wins", "losses", "ties")]
    for m in board["models"]:
        ci = "-" if m["ci"] is None else f"[{fmt(m['ci'][0])}, {fmt(m['ci'][1])}]"
        rows.append((str(m["rank"]), m["model"], fmt(m[key]), ci, f"{m['battles']:,}",
                     f"{m['wins']:,}", f"{m['losses']:,}", f"{m['ties']:,}"))  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [head, ""]
    for r in rows:
        cells = [r[c].rjust(widths[c]) if c != 1 else r[c].ljust(widths[c]) for c in range(8)]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.ci < 1.0:
        raise FileInputError(f"--ci must be in (0, 1), got {args.ci}")
    if args.bootstrap < 0:
        raise FileInputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.output:
        refuse_overwriting([args.battles], {"-o": args.output})
    table = read_columns(
        args.battles, ("model_a", "model_b", "winner"), optional=("judge",), fmt=args.format
    )
    data = battles(table, args.judge)
    board = leaderboard(data, args.method, rounds=args.bootstrap, ci=args.ci, seed=args.seed,
                        prior=args.prior)  # fmt: skip
    text = json.dumps(board, indent=2)
    if args.output:
        atomic_write_text(args.output, text + "\n", tag="rank")
    source = "standard input" if args.battles == "-" else args.battles
    print(text if args.json else format_leaderboard(board, source))
    return 0


def add_parser(sub: Any) -> None:
    p = table_command(
        sub, "rank", help="a leaderboard from pairwise battles (Bradley-Terry, Elo, PL, lottery)",
        doc=__doc__, table="battles", table_help="JSONL / CSV / TSV / Parquet of model_a, "
        "model_b, winner", output_help="also write the JSON to PATH",
    )  # fmt: skip
    p.add_argument("--method", choices=METHODS, default="bt", help="the model (bt)")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for intervals (1000)")
    p.add_argument("--ci", type=float, default=0.95, help="interval level (0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    p.add_argument(
        "--prior", type=float, default=0.0,
        help="bt: L2 prior on the scores (0; > 0 when some model never loses or never wins)",
    )  # fmt: skip
    p.add_argument("--judge", action="append", metavar="NAME", help="keep this judge's battles")
    p.set_defaults(func=run)
