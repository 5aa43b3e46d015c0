"""The ``fastalign`` command line: ``fastalign bench | info | dedup`` (``python -m fastalign``
too)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    from fastalign._info import collect, format_info

    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from fastalign import bench

    size = "quick" if args.quick else "full" if args.full else "default"
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    rows = bench.run(only=only, size=size, progress=None if args.no_progress else sys.stderr)
    print(bench.format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(bench.to_json(rows, size))
    if args.plot:
        from fastalign.bench._harness import plot

        plot(rows, args.plot)
    failed = [r for r in rows if r.fails_run]
    if failed:
        print(
            f"\n{len(failed)} row(s) failed (wrong result, or a fastalign row that did not run)",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fastalign import __version__

    p = argparse.ArgumentParser(
        prog="fastalign", description="fastalign: the math of LLM alignment, fast and exact."
    )
    p.add_argument("--version", action="version", version=f"fastalign {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="versions, backends, CUDA/Triton status, CPU features")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=_cmd_info)

    bench = sub.add_parser(
        "bench", help="benchmark every op against its reference and installed peers"
    )
    size = bench.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    size.add_argument("--full", action="store_true", help="the large sizes")
    bench.add_argument("--only", metavar="OPS", help="comma-separated workloads, e.g. pama")
    bench.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    bench.add_argument("--plot", metavar="PATH", help="also write a bar chart (PNG)")
    bench.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    bench.set_defaults(func=_cmd_bench)

    from fastalign._dedup_cli import add_parser

    add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, OSError) as e:
        print(f"fastalign {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
