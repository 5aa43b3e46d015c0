"""``fastalign dedup IN.jsonl|IN.parquet -o OUT``: near-duplicate (or exact) dedup of a dataset
file by one or more key columns, written atomically, with a summary.

JSONL rows are copied to the output byte for byte (kept lines as they were read); Parquet goes
through pyarrow. Nothing is written when anything fails (the output appears by one rename at
the end), and the input is never overwritten.

``--engine ray`` runs the same clustering on Ray Data (``pip install 'fastalign[ray]'``) for
corpora beyond one machine: the input may be files, folders or glob patterns of Parquet and
JSONL, the output is a folder of Parquet files (renamed into place at the end; an output name
with a file extension is refused), each stage reports one line on stderr while Ray's own log
lines go to a file (``--ray-log``, named at the start), and ``--address`` joins an existing
cluster (default: a local one). An output name with a file extension other than ``.parquet``
(a Parquet dataset folder) is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any, TextIO

from fastalign._files import (
    FileInputError,
    atomic_write,
    atomic_write_text,
    refuse_overwriting,
    table_format,
    temp_path,
)
from fastalign.dedup.local import dedup, exact
from fastalign.dedup.records import field_text, key_text, record_texts


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
                raise FileInputError(f"{path}:{lineno}: not valid JSON ({e})") from None
            if not isinstance(rec, dict):
                raise FileInputError(
                    f"{path}:{lineno}: a row must be a JSON object, not {type(rec).__name__}"
                )
            parts = []
            for k in keys:
                if k not in rec:
                    raise FileInputError(f"{path}:{lineno}: no field {k!r}")
                try:
                    parts.append(field_text(rec[k], f"{path}:{lineno}: field {k!r}"))
                except TypeError as e:
                    raise FileInputError(str(e)) from None
            text = key_text(parts)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:  # an escaped lone surrogate ("\ud800") in the JSON
                raise FileInputError(
                    f"{path}:{lineno}: the key text is not valid Unicode (a lone surrogate at "
                    f"position {e.start})"
                ) from None
            texts.append(text)
            lines.append(raw if raw.endswith(b"\n") else raw + b"\n")
            if lineno % 4096 == 0:
                progress.update(f"reading {path}: {100 * done / max(total, 1):.0f}%")
    return lines, texts


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with the test extras
        raise FileInputError("Parquet needs pyarrow: pip install pyarrow") from None
    return pq


def _read_parquet(path: str, keys: list[str]) -> tuple[Any, list[str]]:
    pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise FileInputError(f"{path}: not a readable Parquet file ({e})") from None
    try:
        return table, record_texts(table, keys)
    except (TypeError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise FileInputError(f"{path}: {msg}") from None


def _ray_log_path(args: argparse.Namespace) -> str:
    if args.ray_log:
        return args.ray_log
    return os.path.join(tempfile.gettempdir(), f"fastalign-ray-{os.getpid()}.log")


@contextlib.contextmanager
def _ray_logs_to(path: str) -> Iterator[None]:
    """Whatever is written to ``sys.stderr`` while the block runs goes to ``path``: Ray's
    driver-side log lines (its handlers write to the ``sys.stderr`` of the moment of each
    record), its warnings and progress output. fastalign's stage lines hold the terminal's
    stream from before the block, so they stay on it. Ray's session logs are untouched."""
    with open(path, "a", encoding="utf-8", buffering=1) as log, contextlib.redirect_stderr(log):
        yield


def _run_ray(args: argparse.Namespace) -> int:
    from fastalign.dedup import ray as ray_dedup

    if args.exact:
        raise FileInputError("--exact runs on one machine: drop --engine ray")
    if args.verify == "exact":
        raise FileInputError(
            "--engine ray moves signatures, not texts: use --verify none or minhash"
        )
    out = args.output
    ext = os.path.splitext(out)[1].lower()
    if ext in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        raise FileInputError(
            f"-o {out}: --engine ray writes a folder of Parquet files, not one {ext} file; "
            f"give a folder name (say {os.path.splitext(out)[0]}/ or "
            f"{os.path.splitext(out)[0]}.parquet/)"
        )
    refuse_overwriting(
        [args.input],
        {"-o": out, "--summary-json": args.summary_json, "--ray-log": args.ray_log},
    )
    if os.path.exists(out):
        raise FileInputError(
            f"{out} exists: the Ray engine writes a new folder (choose another -o)"
        )
    tmp = temp_path(out, "dedup", folder=True)  # Ray creates it
    say = _Progress(None if args.no_progress else sys.stderr)
    log_path = _ray_log_path(args)
    if not args.no_progress:
        say.done(f"Ray's log lines go to {log_path}")
    t0 = time.perf_counter()
    try:
        with _ray_logs_to(log_path):
            result = ray_dedup.dedup(
                args.input, column=args.key or ["prompt"], output=tmp,
                threshold=args.threshold, num_perm=args.num_perm, ngram=args.ngram,
                unit=args.unit, normalize=not args.no_normalize, seed=args.seed,
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
            "ray_log": log_path,
        }
        if args.summary_json:
            atomic_write_text(args.summary_json, json.dumps(summary, indent=2), tag="dedup")
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
    if args.engine == "ray":
        return _run_ray(args)
    if args.address or args.partitions or args.ray_log:
        raise FileInputError("--address, --partitions and --ray-log go with --engine ray")
    src, out = args.input, args.output
    if not os.path.isfile(src):
        raise FileInputError(f"{src}: no such file")
    refuse_overwriting([src], {"-o": out, "--summary-json": args.summary_json})
    fmt_in = table_format(src, args.format, ("jsonl", "parquet"))
    fmt_out = table_format(out, None, ("jsonl", "parquet")) if os.path.splitext(out)[1] else fmt_in
    if fmt_in != fmt_out:
        raise FileInputError(f"the output must have the input's format ({fmt_in}), got {out}")
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
        result = exact(texts, normalize=not args.no_normalize, threads=args.threads)
    else:
        result = dedup(
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
            atomic_write_text(args.summary_json, json.dumps(summary, indent=2), tag="dedup")

    atomic_write(out, write, write_summary, tag="dedup")
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
    p.add_argument(
        "--ray-log",
        metavar="PATH",
        help="--engine ray: where Ray's own log lines go (default: a file in the temp folder, "
        "named on stderr)",
    )
    p.set_defaults(func=run)
