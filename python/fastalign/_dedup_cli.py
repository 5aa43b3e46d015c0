"""``fastalign dedup IN.jsonl|IN.parquet -o OUT``: near-duplicate (or exact) dedup of a dataset
file by one or more key columns, written atomically, with a summary.

JSONL rows are copied to the output byte for byte (kept lines as they were read); Parquet goes
through pyarrow. Nothing is written when anything fails (the output appears by one rename at
the end), and the input is never overwritten.

``--engine ray`` runs the same clustering on Ray Data (``pip install 'fastalign[ray]'``) for
corpora beyond one machine: the input may be files, folders or glob patterns of Parquet and
JSONL, the output is a folder of Parquet files (renamed into place at the end), each stage
reports its progress, and ``--address`` joins an existing cluster (default: a local one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, TextIO

from fastalign.dedup import _default_mode
from fastalign.errors import InvalidInputError

_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class DedupCliError(InvalidInputError):
    """A bad input file or argument (the message names the file and line)."""


def _format(path: str, flag: str | None = None) -> str:
    if flag:
        return flag
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise DedupCliError(
            f"{path}: cannot tell the format from the extension {ext!r} (use .jsonl or "
            ".parquet, or --format)"
        )
    return _FORMATS[ext]


class _Progress:
    """One status line on stderr, rewritten in place on a terminal, at most 10 times/s."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.tty = bool(stream and stream.isatty())
        self.last = 0.0

    def update(self, msg: str, *, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if self.tty and (force or now - self.last > 0.1):
            self.stream.write("\r\033[K" + msg)
            self.stream.flush()
            self.last = now

    def done(self, msg: str) -> None:
        if self.stream is None:
            return
        self.stream.write(("\r\033[K" if self.tty else "") + msg + "\n")
        self.stream.flush()


def _read_jsonl(path: str, keys: list[str], progress: _Progress) -> tuple[list[bytes], list[str]]:
    from fastalign.dedup import _field_text, _key_text

    total = os.path.getsize(path)
    lines: list[bytes] = []
    texts: list[str] = []
    done = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            done += len(raw)
            if not raw.strip():
                continue  # blank lines carry no row
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise DedupCliError(f"{path}:{lineno}: not valid JSON ({e})") from None
            if not isinstance(rec, dict):
                raise DedupCliError(
                    f"{path}:{lineno}: a row must be a JSON object, not {type(rec).__name__}"
                )
            parts = []
            for k in keys:
                if k not in rec:
                    raise DedupCliError(f"{path}:{lineno}: no field {k!r}")
                try:
                    parts.append(_field_text(rec[k], f"{path}:{lineno}: field {k!r}"))
                except TypeError as e:
                    raise DedupCliError(str(e)) from None
            texts.append(_key_text(parts))
            lines.append(raw if raw.endswith(b"\n") else raw + b"\n")
            if lineno % 4096 == 0:
                progress.update(f"reading {path}: {100 * done / max(total, 1):.0f}%")
    return lines, texts


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with the test extras
        raise DedupCliError("Parquet needs pyarrow: pip install pyarrow") from None
    return pq


def _read_parquet(path: str, keys: list[str]) -> tuple[Any, list[str]]:
    from fastalign.dedup import record_texts

    pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise DedupCliError(f"{path}: not a readable Parquet file ({e})") from None
    try:
        return table, record_texts(table, keys)
    except (TypeError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise DedupCliError(f"{path}: {msg}") from None


def _atomic_write(path: str, write: Callable[[str], None], before: Callable[[], None]) -> None:
    """``write`` a temporary file beside ``path``, run ``before`` (the last step that can
    fail), then rename into place; on any failure nothing is left."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fastalign-dedup-", suffix=".tmp")
    _default_mode(fd)
    os.close(fd)
    try:
        write(tmp)
        before()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _refuse_overwriting(inputs: list[str], outputs: dict[str, str | None]) -> None:
    """Every path the command writes differs from every input and from the other outputs:
    the same path, the same file through a link, or a link to it (an input that is a folder
    or a glob is checked as written)."""

    def same(a: str, b: str) -> bool:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)

    seen: dict[str, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        for src in inputs:
            if same(src, path):
                raise DedupCliError(f"refusing to overwrite the input {src} with {flag} {path}")
        for other, other_path in seen.items():
            if same(other_path, path):
                raise DedupCliError(f"{flag} and {other} are the same file ({path})")
        seen[flag] = path


def _write_json(path: str, data: dict) -> None:
    """JSON to ``path`` atomically: a temporary file beside it, renamed into place."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)

    _atomic_write(path, write, lambda: None)


def _run_ray(args: argparse.Namespace) -> int:
    from fastalign.dedup import ray as ray_dedup

    if args.exact:
        raise DedupCliError("--exact runs on one machine: drop --engine ray")
    if args.verify == "exact":
        raise DedupCliError(
            "--engine ray moves signatures, not texts: use --verify none or minhash"
        )
    out = args.output
    _refuse_overwriting([args.input], {"-o": out, "--summary-json": args.summary_json})
    if os.path.exists(out):
        raise DedupCliError(f"{out} exists: the Ray engine writes a new folder (choose another -o)")
    parent = os.path.dirname(os.path.abspath(out))
    tmp = tempfile.mkdtemp(dir=parent, prefix=".fastalign-dedup-")
    os.rmdir(tmp)  # Ray creates it
    say = _Progress(None if args.no_progress else sys.stderr)
    t0 = time.perf_counter()
    try:
        result = ray_dedup.dedup(
            args.input, column=args.key or ["prompt"], output=tmp, threshold=args.threshold,
            num_perm=args.num_perm, ngram=args.ngram, unit=args.unit,
            normalize=not args.no_normalize, seed=args.seed,
            verify="minhash" if args.verify == "minhash" else False,
            partitions=args.partitions, address=args.address,
            progress=say.done if not args.no_progress else False,
        )  # fmt: skip
        summary = {
            "input": args.input,
            "output": out,
            "key": args.key or ["prompt"],
            "method": f"minhash (verify={args.verify}) on ray",
            **result.summary(),
            "seconds_total": round(time.perf_counter() - t0, 3),
        }
        if args.summary_json:
            _write_json(args.summary_json, summary)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(
        f"{result.rows:,} rows: kept {result.kept:,}, removed {result.removed:,} in "
        f"{result.clusters:,} duplicate clusters ({result.empty:,} empty keys; "
        f"{result.rounds} component rounds) -> {out}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from fastalign import dedup as fd

    if args.engine == "ray":
        return _run_ray(args)
    if args.address or args.partitions:
        raise DedupCliError("--address and --partitions go with --engine ray")
    src, out = args.input, args.output
    if not os.path.isfile(src):
        raise DedupCliError(f"{src}: no such file")
    _refuse_overwriting([src], {"-o": out, "--summary-json": args.summary_json})
    fmt_in = _format(src, args.format)
    fmt_out = _format(out) if os.path.splitext(out)[1] else fmt_in
    if fmt_in != fmt_out:
        raise DedupCliError(f"the output must have the input's format ({fmt_in}), got {out}")
    keys = args.key or ["prompt"]
    progress = _Progress(None if args.no_progress else sys.stderr)

    t0 = time.perf_counter()
    progress.update(f"reading {src}", force=True)
    if fmt_in == "jsonl":
        rows, texts = _read_jsonl(src, keys, progress)
    else:
        rows, texts = _read_parquet(src, keys)
    mb = sum(len(t) for t in texts) / 1e6
    progress.done(f"read {len(texts):,} rows ({mb:.1f} MB of key text) from {src}")

    t1 = time.perf_counter()
    progress.update(f"dedup of {len(texts):,} texts", force=True)
    if args.exact:
        result = fd.exact(texts, normalize=not args.no_normalize, threads=args.threads)
    else:
        result = fd.dedup(
            texts, threshold=args.threshold, num_perm=args.num_perm, ngram=args.ngram,
            unit=args.unit, normalize=not args.no_normalize, seed=args.seed,
            verify=args.verify, threads=args.threads,
        )  # fmt: skip
    t2 = time.perf_counter()
    progress.done(f"dedup: {t2 - t1:.2f} s ({len(texts) / max(t2 - t1, 1e-9):,.0f} texts/s)")

    keep = result.keep
    if fmt_in == "jsonl":

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.writelines(line for line, k in zip(rows, keep, strict=True) if k)

    else:
        import numpy as np

        pq = _pyarrow()

        def write(tmp: str) -> None:
            pq.write_table(rows.take(np.flatnonzero(keep)), tmp)

    summary = {
        "input": src,
        "output": out,
        "key": keys,
        "method": "exact" if args.exact else f"minhash (verify={args.verify})",
        **result.summary(),
    }
    if not args.exact:
        summary["bands"] = list(result.bands or ())

    def write_summary() -> None:
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        if args.summary_json:
            _write_json(args.summary_json, summary)

    _atomic_write(out, write, write_summary)
    print(
        f"{summary['texts']:,} rows: kept {summary['kept']:,}, removed {summary['removed']:,} "
        f"in {summary['clusters']:,} duplicate clusters (largest {summary['largest_cluster']:,}"
        f"; {summary['empty']:,} empty keys) -> {out}"
    )
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dedup",
        help="remove near-duplicate (or exact duplicate) rows of a JSONL or Parquet file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input", help="a .jsonl or .parquet file (with --engine ray also folders and globs)"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="where the kept rows go (same format; with --engine ray a new Parquet folder)",
    )
    p.add_argument(
        "--key",
        action="append",
        metavar="COLUMN",
        help="column(s) whose text is compared (repeat for several; default prompt)",
    )
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold (0.8)")
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (128)")
    p.add_argument("--ngram", type=int, default=5, help="shingle length (5)")
    p.add_argument("--unit", choices=("word", "char"), default="word", help="shingle unit")
    p.add_argument(
        "--verify",
        choices=("none", "minhash", "exact"),
        default="none",
        help="which LSH candidates count as duplicates (none: all)",
    )
    p.add_argument("--exact", action="store_true", help="exact duplicates only (no MinHash)")
    p.add_argument("--no-normalize", action="store_true", help="compare the raw text")
    p.add_argument("--seed", type=int, default=0, help="MinHash seed (0)")
    p.add_argument("--threads", type=int, default=None, help="worker threads (all cores)")
    p.add_argument("--format", choices=("jsonl", "parquet"), help="input format override")
    p.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data (pip install 'fastalign[ray]')",
    )
    p.add_argument("--address", help="--engine ray: the cluster to join (default: a local one)")
    p.add_argument(
        "--partitions", type=int, help="--engine ray: partitions per shuffle (2 per CPU)"
    )
    p.set_defaults(func=run)
