"""What the table-reading commands (``rank``, ``pareto``) share on the command line: the
subparser with its description, the input table, ``--format``, ``--json`` and ``-o``."""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("jsonl", "csv", "tsv", "parquet")


def table_command(
    sub: Any, name: str, *, help: str, doc: str, table: str, table_help: str, output_help: str
) -> argparse.ArgumentParser:
    """A ``fastalign NAME TABLE`` subparser with the options every table command has."""
    p = sub.add_parser(
        name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(table, help=table_help)
    p.add_argument("--format", choices=FORMATS, help="input format (default: by extension)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("-o", "--output", metavar="PATH", help=output_help)
    return p
