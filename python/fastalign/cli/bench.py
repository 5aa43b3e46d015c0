"""``fastalign bench``: every op against its reference and installed peers (see
:mod:`fastalign.bench`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run(args: argparse.Namespace) -> int:
    from fastalign import bench
    from fastalign._files import atomic_write_text

    size = "quick" if args.quick else "full" if args.full else "default"
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    rows = bench.run(only=only, size=size, progress=None if args.no_progress else sys.stderr)
    print(bench.format_table(rows))
    if args.json:
        atomic_write_text(args.json, bench.to_json(rows, size), tag="bench")
    if args.plot:
        from fastalign.bench.plot import plot

        plot(rows, args.plot)
    failed = [r for r in rows if r.fails_run]
    if failed:
        print(
            f"\n{len(failed)} row(s) failed (wrong result, or a fastalign row that did not run)",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="benchmark every op against its reference and installed peers",
        description="Benchmark every op against its reference and the installed peers, on the "
        "embedded synthetic workloads: median time, speed-up over the baseline row, peak memory "
        "where measured, and the error against a float64 / reference result (a wrong result "
        "fails the row, and the command).",
    )  # fmt: skip
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    size.add_argument("--full", action="store_true", help="the large sizes")
    p.add_argument("--only", metavar="OPS", help="comma-separated workloads, e.g. pama,rank")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--plot", metavar="PATH", help="also write a figure (PNG, SVG or PDF)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=run)
