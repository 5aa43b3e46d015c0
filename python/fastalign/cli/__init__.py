"""The ``fastalign`` command line (``python -m fastalign`` too): ``fastalign bench | dedup |
bleu | rank | pareto | info``.

One module per command: ``bench``, ``info``, ``bleu``, ``rank``, ``pareto`` here, ``dedup`` in
:mod:`fastalign.dedup.cli`. Each has ``add_parser(subparsers)``; a command's module (and what
it needs: torch, NumPy, the native core) is imported only when the parser is built, and a
command's failure on bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from fastalign import __version__
    from fastalign.cli import bench, bleu, info, pareto, rank
    from fastalign.dedup import cli as dedup

    p = argparse.ArgumentParser(
        prog="fastalign", description="fastalign: the math of LLM alignment, fast and exact."
    )
    p.add_argument("--version", action="version", version=f"fastalign {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (bench, dedup, bleu, rank, pareto, info):
        command.add_parser(sub)
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
