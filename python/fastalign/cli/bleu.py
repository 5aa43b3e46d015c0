"""``fastalign bleu REF [REF ...] [-i HYP]``: corpus or sentence BLEU of a hypothesis file, with
the ``sacrebleu`` command's conventions and numbers.

References are files of one segment per line (``-`` for standard input, ``.gz`` read as
gzip); several files are several references per segment, or one file of tab-separated
references with ``--num-refs N``. Hypotheses come from ``-i FILE`` or standard input. Lines end
at ``\\n`` and lose their trailing whitespace, as in sacrebleu. The output is sacrebleu's: a
JSON object by default (``-f text`` for the score line), the signature included; ``-b`` prints
the score only; ``--sentence-level`` one line per segment (effective order on, as there).

Differences from the ``sacrebleu`` command, on purpose: one system per call (sacrebleu also
compares several); a bad line is reported with its file and line number; streams of different
lengths name both files and their lengths.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from typing import Any

from fastalign._files import FileInputError

METRICS = ("bleu",)


def _lines(path: str, encoding: str) -> list[str]:
    """The lines of ``path`` (``-``: standard input), trailing whitespace removed."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
    except FileNotFoundError:
        raise FileInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileInputError(f"{path}: is a folder, not a file") from None
    try:
        text = data.decode(encoding)
    except LookupError:
        raise FileInputError(f"unknown encoding {encoding!r} (-e)") from None
    except UnicodeDecodeError as e:
        if "\n".encode(encoding) == b"\n":  # ASCII-compatible: the line of the bad byte
            lineno = data.count(b"\n", 0, e.start) + 1
            where = f"{path}:{lineno}"
        else:
            where = f"{path}: byte {e.start}"
        raise FileInputError(f"{where}: not {encoding} text ({e.reason})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.rstrip() for line in lines]


def _count(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def _streams(args: argparse.Namespace) -> tuple[list[str], list[list[str]], str]:
    """Hypotheses, reference streams, and the name of the hypothesis source."""
    if not args.refs:
        raise FileInputError("give at least one reference file (or - for standard input)")
    if args.input and len(args.input) > 1:
        raise FileInputError(
            f"one system per call: -i got {len(args.input)} files (score each separately)"
        )
    hyp_src = args.input[0] if args.input else "-"
    if hyp_src == "-" and "-" in args.refs:
        raise FileInputError("the hypotheses and a reference cannot both come from standard input")
    if args.refs.count("-") > 1:
        raise FileInputError("standard input (-) can be given as one reference only")
    if args.num_refs < 1:
        raise FileInputError(f"--num-refs must be >= 1, got {args.num_refs}")
    if args.num_refs > 1 and len(args.refs) > 1:
        raise FileInputError("--num-refs reads tab-separated references from one file: give one")
    streams: list[list[str]] = []
    names: list[str] = []
    for path in args.refs:
        lines = _lines(path, args.encoding)
        if args.num_refs == 1:
            streams.append(lines)
            names.append(path)
            continue
        split = [[] for _ in range(args.num_refs)]
        for lineno, line in enumerate(lines, 1):
            fields = line.split("\t", args.num_refs - 1)
            if len(fields) != args.num_refs:
                raise FileInputError(
                    f"{path}:{lineno}: expected {args.num_refs} tab-separated references, "
                    f"found {len(fields)}"
                )
            for k, field in enumerate(fields):
                split[k].append(field)
        streams.extend(split)
        names.extend(f"{path} (reference {k + 1})" for k in range(args.num_refs))
    hyps = _lines(hyp_src, args.encoding)
    hyp_name = "standard input" if hyp_src == "-" else hyp_src
    if not hyps:
        raise FileInputError(f"{hyp_name}: no hypothesis (the file is empty)")
    for name, s in zip(names, streams, strict=True):
        if len(s) != len(hyps):
            raise FileInputError(
                f"{hyp_name} has {_count(len(hyps))} but {name} has {_count(len(s))}: every "
                "reference file needs one line per hypothesis"
            )
    return hyps, streams, hyp_name


def _metric(args: argparse.Namespace, sentence: bool) -> Any:
    from fastalign.bleu import BLEU

    return BLEU(
        tokenize=args.tokenize, smooth_method=args.smooth_method, smooth_value=args.smooth_value,
        lowercase=args.lowercase, effective_order=sentence, flavor=args.flavor,
    )  # fmt: skip


def _format(score: Any, args: argparse.Namespace, json_out: bool) -> str:
    """sacrebleu's ``Score.format``: the score only, the JSON object, or the score line."""
    if args.score_only:
        return f"{score.score:.{args.width}f}"
    if not json_out:
        return score.format(width=args.width, signature=True)
    payload: dict[str, Any] = {
        "name": score.name,
        "score": float(f"{score.score:.{args.width}f}"),
        "signature": score.signature,
        "verbose_score": score.verbose,
    }
    for field in score.signature.split("|"):
        key, value = field.split(":", 1)
        payload[key] = value
    return json.dumps(payload, indent=1, ensure_ascii=False)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.width <= 20:
        raise FileInputError(f"--width must be in 0..20, got {args.width}")
    hyps, streams, _ = _streams(args)
    if args.sentence_level:
        metric = _metric(args, True)
        for i, hyp in enumerate(hyps):
            refs = [s[i] for s in streams]
            print(_format(metric.sentence_score(hyp, refs), args, json_out=False))
        return 0
    score = _metric(args, False).corpus_score(hyps, streams)
    print(_format(score, args, json_out=args.format == "json"))
    return 0


def add_parser(sub: Any) -> None:
    from fastalign.bleu import TOKENIZERS

    p = sub.add_parser(
        "bleu",
        help="BLEU of a hypothesis file against reference files (the sacrebleu command's "
        "numbers and output)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("refs", nargs="*", metavar="REF", help="reference files (- for stdin)")
    p.add_argument(
        "-i", "--input", nargs="+", metavar="HYP", help="the hypothesis file (default: stdin)"
    )
    p.add_argument(
        "-m", "--metrics", nargs="+", choices=METRICS, default=["bleu"],
        help="the metric (bleu)",
    )  # fmt: skip
    p.add_argument(
        "-nr", "--num-refs", type=int, default=1,
        help="split each reference line on tabs into this many references (1)",
    )  # fmt: skip
    p.add_argument("-e", "--encoding", default="utf-8", help="text encoding of the files")
    p.add_argument(
        "-tok", "--tokenize", choices=TOKENIZERS, default="13a", help="BLEU tokenizer (13a)"
    )
    p.add_argument(
        "-s", "--smooth-method", choices=("exp", "floor", "add-k", "none", "add-one"),
        default=None, help="smoothing (exp; add-one/none with --flavor evaluate)",
    )  # fmt: skip
    p.add_argument(
        "-sv", "--smooth-value", type=float, default=None,
        help="the value of floor (0.1) or add-k (1)",
    )  # fmt: skip
    p.add_argument("-lc", "--lowercase", action="store_true", help="lowercase everything first")
    p.add_argument("-sl", "--sentence-level", action="store_true", help="one score per segment")
    p.add_argument("-b", "--score-only", action="store_true", help="print the score only")
    p.add_argument("-w", "--width", type=int, default=1, help="decimals of the score (1)")
    p.add_argument(
        "-f", "--format", choices=("json", "text"), default="json",
        help="corpus score as JSON (default) or sacrebleu's text line",
    )  # fmt: skip
    p.add_argument(
        "--flavor", choices=("sacrebleu", "evaluate"), default="sacrebleu",
        help="sacrebleu (0-100) or Hugging Face evaluate's BLEU (0-1)",
    )  # fmt: skip
    p.set_defaults(func=run)
