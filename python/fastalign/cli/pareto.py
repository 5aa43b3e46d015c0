"""``fastalign pareto SCORES``: the Pareto fronts of a table of objectives, and the hypervolume
of the first front.

SCORES is a CSV / TSV, JSONL or Parquet file (``-``: CSV on standard input, or ``--format``),
one candidate per row. The objectives are the columns named by ``--objectives a,b,c``
(default: every column whose values are all numbers, except ``--id``; a column of numbers
with a gap or a text cell is left out and named in the output). Each objective is
minimized unless named in ``--max`` (or give ``--sense max,min,...`` in objective order). The
hypervolume is taken against ``--ref`` (one value per objective); by default the worst value of
each objective pushed out by 10% of its range (1 where the range is 0), which is printed with
the result.

The output lists the size of every front and the first front's rows (``--top N`` of them,
all with ``--top 0``) with their crowding distance; ``--json`` prints every row's front and
crowding distance instead, and ``-o`` writes the input's rows with ``front`` and ``crowding``
columns added (CSV or JSONL by the extension).
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
    atomic_write,
    read_columns,
    refuse_overwriting,
    table_format,
)
from fastalign.cli._common import table_command


def _numeric(v: Any) -> float | None:
    """``v`` as a float, or None when it is not a number (CSV cells are strings)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def objectives_of(args: argparse.Namespace) -> tuple[Table, list[str]]:
    """The table and the objective columns."""
    fmt = args.format or ("csv" if args.scores == "-" else None)
    if args.objectives:
        names = [c.strip() for c in args.objectives.split(",") if c.strip()]
        if not names:
            raise FileInputError("--objectives names no column")
        twice = sorted({c for c in names if names.count(c) > 1})
        if twice:
            raise FileInputError(f"--objectives names {twice} more than once")
        if args.id in names:
            raise FileInputError(f"--id {args.id!r} is one of the objectives")
        wanted = names + ([args.id] if args.id else [])
        return read_columns(args.scores, wanted, optional=None, fmt=fmt), names
    table = read_columns(args.scores, None, optional=None, fmt=fmt)
    if args.id and args.id not in table.columns:
        raise FileInputError(f"{args.scores}: no column {args.id!r} (--id)")
    names, skipped = [], []
    for c, values in table.columns.items():
        if c == args.id:
            continue
        bad = [i for i, v in enumerate(values) if _numeric(v) is None]
        if not bad:
            names.append(c)
        elif len(bad) < len(values):  # a number column with a gap: say so, do not guess
            skipped.append(f"{c} (not a number at {table.where(bad[0])})")
    if not names:
        raise FileInputError(f"{args.scores}: no column holds only numbers (use --objectives)")
    args.skipped = skipped
    return table, names


def matrix(table: Table, names: list[str]) -> np.ndarray:
    """The objectives as a float64 ``[rows, objectives]`` matrix (a bad cell named by file,
    line and column)."""
    n = len(table)
    if n == 0:
        raise FileInputError(f"{table.path}: no rows")
    F = np.empty((n, len(names)))
    for j, c in enumerate(names):
        for i, v in enumerate(table.columns[c]):
            x = _numeric(v)
            if x is None or math.isnan(x):
                raise FileInputError(f"{table.where(i)}: {c} = {v!r} is not a number")
            F[i, j] = x
    return F


def senses_of(args: argparse.Namespace, names: list[str]) -> list[str]:
    if args.sense and args.max:
        raise FileInputError("give --sense or --max, not both")
    if args.sense:
        senses = [s.strip() for s in args.sense.split(",")]
        if len(senses) == 1:
            senses *= len(names)
        if len(senses) != len(names) or any(s not in ("min", "max") for s in senses):
            raise FileInputError(
                f"--sense must be min or max, once or once per objective ({len(names)}: "
                f"{', '.join(names)}), got {args.sense!r}"
            )
        return senses
    maxed = set(args.max or ())
    unknown = sorted(maxed - set(names))
    if unknown:
        raise FileInputError(f"--max names {unknown}, which are not objectives ({names})")
    return ["max" if c in maxed else "min" for c in names]


def default_ref(F: np.ndarray, senses: list[str]) -> np.ndarray:
    """The worst value of each objective pushed 10% of its range further (1 when flat)."""
    lo, hi = F.min(axis=0), F.max(axis=0)
    pad = np.where(hi > lo, 0.1 * (hi - lo), 1.0)
    return np.array([hi[j] + pad[j] if s == "min" else lo[j] - pad[j]
                     for j, s in enumerate(senses)])  # fmt: skip


def analyse(args: argparse.Namespace) -> dict[str, Any]:
    from fastalign import pareto

    table, names = objectives_of(args)
    F = matrix(table, names)
    senses = senses_of(args, names)
    if args.ref:
        try:
            ref = np.array([float(x) for x in args.ref.split(",")])
        except ValueError:
            raise FileInputError(
                f"--ref must be numbers separated by commas, got {args.ref!r}"
            ) from None
        if len(ref) != len(names):
            raise FileInputError(
                f"--ref has {len(ref)} values for the {len(names)} objective(s) {', '.join(names)}"
            )
    else:
        ref = default_ref(F, senses)
    fronts = pareto.non_dominated_sort(F, sense=senses)
    crowd = pareto.crowding_distance(F, fronts, sense=senses)
    first = np.flatnonzero(fronts == 0)
    hv = pareto.hypervolume(F[first], ref, sense=senses)
    ids = table.columns[args.id] if args.id else list(range(len(table)))
    return {
        "objectives": names,
        "sense": senses,
        "ref": ref.tolist(),
        "rows": len(table),
        "hypervolume": float(hv),
        "front_sizes": np.bincount(fronts).tolist(),
        "front": fronts.tolist(),
        "crowding": [None if math.isinf(c) else float(c) for c in crowd],
        "ids": ids,
        "skipped": getattr(args, "skipped", []),
        "_F": F,
        "_table": table,
    }


def format_report(res: dict[str, Any], top: int, source: str) -> str:
    names, F = res["objectives"], res["_F"]
    sizes = res["front_sizes"]
    shown = ", ".join(str(s) for s in sizes[:12]) + (" ..." if len(sizes) > 12 else "")
    lines = [
        f"{res['rows']:,} rows x {len(names)} objectives from {source} "
        f"({', '.join(f'{c} ({s})' for c, s in zip(names, res['sense'], strict=True))})",
        *([f"left out (not all numbers): {'; '.join(res['skipped'])}"] if res["skipped"] else []),
        f"fronts: {len(sizes)} (sizes {shown})",
        f"hypervolume of the first front: {res['hypervolume']:.10g} "
        f"(ref {', '.join(f'{x:g}' for x in res['ref'])})",
        "",
    ]
    first = [i for i, f in enumerate(res["front"]) if f == 0]
    first.sort(key=lambda i: tuple(F[i]))
    cut = first if top == 0 else first[:top]
    rows = [("id", *names, "crowding")]
    for i in cut:
        c = res["crowding"][i]
        rows.append((str(res["ids"][i]), *(f"{x:.6g}" for x in F[i]),
                     "inf" if c is None else f"{c:.4g}"))  # fmt: skip
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines.append(f"first front ({len(first)} rows" + (f", first {len(cut)} shown)" if len(cut)
                 < len(first) else ")"))  # fmt: skip
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _write_rows(res: dict[str, Any], path: str) -> None:
    table: Table = res["_table"]
    fmt = table_format(path, None, ("csv", "tsv", "jsonl"))
    cols = list(table.columns)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for i in range(len(table)):
                    rec = {c: table.columns[c][i] for c in cols}
                    rec["front"], rec["crowding"] = res["front"][i], res["crowding"][i]
                    f.write(json.dumps(rec) + "\n")
                return
            import csv

            w = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",")
            w.writerow([*cols, "front", "crowding"])
            for i in range(len(table)):
                c = res["crowding"][i]
                w.writerow([*(table.columns[k][i] for k in cols), res["front"][i],
                            "inf" if c is None else c])  # fmt: skip

    atomic_write(path, write, tag="pareto")


def run(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise FileInputError(f"--top must be >= 0, got {args.top}")
    if args.output:
        refuse_overwriting([args.scores], {"-o": args.output})
    res = analyse(args)
    if args.output:
        _write_rows(res, args.output)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if not k.startswith("_")}, indent=2))
    else:
        print(format_report(res, args.top, "standard input" if args.scores == "-" else args.scores))
    return 0


def add_parser(sub: Any) -> None:
    p = table_command(
        sub, "pareto", help="Pareto fronts and the hypervolume of a table of objectives",
        doc=__doc__, table="scores", table_help="CSV / TSV / JSONL / Parquet, one row per "
        "candidate", output_help="write the rows with front and crowding columns (CSV / JSONL)",
    )  # fmt: skip
    p.add_argument("--objectives", metavar="A,B,...", help="objective columns (default: numeric)")
    p.add_argument("--id", metavar="COLUMN", help="a column naming the rows (default: row index)")
    p.add_argument("--max", action="append", metavar="COLUMN", help="maximize this objective")
    p.add_argument("--sense", metavar="min,max,...", help="min or max per objective (or one)")
    p.add_argument(
        "--ref", metavar="X,Y,...", help="hypervolume reference point (--ref=-1,2 when negative)"
    )
    p.add_argument("--top", type=int, default=20, help="first-front rows shown (20; 0: all)")
    p.set_defaults(func=run)
