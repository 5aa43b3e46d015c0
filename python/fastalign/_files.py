"""Files in and out, for the command line and for saved indexes: atomic writes, the rule that
no output may be an input (or another output), and tabular inputs (JSONL, CSV, Parquet) read
with errors that name the file and line.

Atomic writes go to a hidden temporary file beside the target, renamed into place at the end,
so a reader never sees half a file and a failure leaves nothing. A target that is a symbolic
link is written through (the link stays); one that is not a regular file (``/dev/stdout``, a
pipe) is written directly. A temporary is named ``.fastalign-<tag>-<host>-<pid>-<random>``
(host: a digest of the host name): a process killed mid-write cannot remove it, so a later
write into the same folder removes the ones of this host whose process is gone and that are
older than a minute. Entries of other hosts (a shared file system) or of other shapes are never
touched.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastalign.errors import InvalidInputError

TAGS = ("write", "dedup", "bench", "rank", "pareto", "index")
STALE_AFTER_S = 60.0
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_TEMP = re.compile(
    r"^\.fastalign-(?P<tag>[a-z]+)-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[A-Za-z0-9_]{8}"
    r"(?:\.tmp)?$"
)


class FileInputError(InvalidInputError):
    """A bad input file, or a command-line argument that does not fit the files (the message
    names the file, and the line where there is one)."""


def default_mode(fd: int) -> None:
    """Give a file from ``mkstemp`` (mode 0600) the mode a plain ``open`` would."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's, or not a pid
        return True
    return True


def temp_prefix(tag: str, pid: int | None = None) -> str:
    """The name prefix of this host's temporaries for ``tag`` (``pid``: this process)."""
    if tag not in TAGS:
        raise ValueError(f"unknown temporary tag {tag!r}")
    return f".fastalign-{tag}-{_HOST}-{os.getpid() if pid is None else pid}-"


def remove_stale_temporaries(directory: str) -> list[str]:
    """Removes this host's temporary files (or folders) in ``directory`` whose process no
    longer runs and that are older than :data:`STALE_AFTER_S`; returns their paths."""
    removed = []
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TEMP.match(name)
        if m is None or m["host"] != _HOST or m["tag"] not in TAGS:
            continue
        pid = int(m["pid"])
        path = os.path.join(directory, name)
        try:
            old = now - os.lstat(path).st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if pid == os.getpid() or not old or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil

                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
    return removed


def temp_path(path: str, tag: str, *, folder: bool = False) -> str:
    """A new hidden temporary file (or, with ``folder``, a free name for a folder) beside
    ``path``, after removing stale temporaries of killed runs there."""
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(directory)
    prefix = temp_prefix(tag)
    if folder:
        tmp = tempfile.mkdtemp(dir=directory, prefix=prefix)
        os.rmdir(tmp)  # the writer creates it
        return tmp
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    default_mode(fd)
    os.close(fd)
    return tmp


def atomic_write(
    path: str, write: Callable[[str], None], before: Callable[[], None] | None = None, *,
    tag: str = "write",
) -> None:  # fmt: skip
    """``write(tmp)`` a temporary file beside ``path``, run ``before`` (the last step that can
    fail), then rename into place; on any failure nothing is left. A symbolic link is written
    through; a target that exists and is not a regular file (a device, a pipe) is written
    directly."""
    target = os.path.realpath(path)
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        special = False
    if special:
        write(target)
        if before is not None:
            before()
        return
    tmp = temp_path(target, tag)
    try:
        write(tmp)
        if before is not None:
            before()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes, *, tag: str = "write") -> None:
    """``data`` to ``path`` atomically (flushed to disk before the rename)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a device cannot be synced
                os.fsync(f.fileno())

    atomic_write(path, write, tag=tag)


def atomic_write_text(path: str, text: str, *, tag: str = "write") -> None:
    """``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), tag=tag)


def refuse_overwriting(inputs: Sequence[str], outputs: dict[str, str | None]) -> None:
    """Every path a command writes (``outputs``: flag -> path) differs from every input and
    from the other outputs: the same path, the same file through a link, or a link to it (an
    input that is a folder or a glob is checked as written)."""

    def same(a: str, b: str) -> bool:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)

    seen: dict[str, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        for src in inputs:
            if src != "-" and same(src, path):
                raise FileInputError(f"refusing to overwrite the input {src} with {flag} {path}")
        for other, other_path in seen.items():
            if same(other_path, path):
                raise FileInputError(f"{flag} and {other} are the same file ({path})")
        seen[flag] = path


# -- tabular inputs ----------------------------------------------------------------------------

TABLE_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet",
}  # fmt: skip


def table_format(path: str, flag: str | None = None, allowed: Sequence[str] | None = None) -> str:
    """The format of ``path``: ``flag`` when given, else from the extension."""
    if flag:
        return flag
    ext = os.path.splitext(path)[1].lower()
    fmt = TABLE_FORMATS.get(ext)
    names = ", ".join(sorted(e for e, f in TABLE_FORMATS.items() if not allowed or f in allowed))
    if fmt is None:
        raise FileInputError(
            f"{path}: cannot tell the format from the extension {ext!r} (use {names}, or --format)"
        )
    if allowed is not None and fmt not in allowed:
        raise FileInputError(
            f"{path}: the extension {ext!r} ({fmt}) is not read here (use {names})"
        )
    return fmt


@dataclasses.dataclass
class Table:
    """Columns read from a file, with where each row came from (for error messages)."""

    path: str
    columns: dict[str, list[Any]]
    lines: list[int] | None  # the line of each row (text formats); None for Parquet

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def where(self, i: int) -> str:
        """``path:line`` of row ``i`` (``path: row i`` for Parquet)."""
        if self.lines is None:
            return f"{self.path}: row {i}"
        return f"{self.path}:{self.lines[i]}"


def read_columns(
    path: str,
    columns: Sequence[str] | None,
    *,
    optional: Sequence[str] | None = (),
    fmt: str | None = None,
) -> Table:
    """The named ``columns`` (and those of ``optional`` that exist; ``None``: every other
    column) of a JSONL, CSV / TSV or Parquet file (``-``: JSONL or CSV on standard input, by
    ``fmt``); ``columns=None``: every column. An optional column is None where a row lacks it.
    A missing file, a line that is not JSON, a row without a required field: a
    :class:`FileInputError` naming the file and line."""
    if columns is not None:
        columns = list(dict.fromkeys(columns))  # a column asked for twice is read once
    fmt = table_format(path, fmt) if path != "-" or fmt else "jsonl"
    if path != "-" and not os.path.isfile(path):
        raise FileInputError(f"{path}: no such file")
    if fmt == "parquet":
        return _parquet_columns(path, columns, optional)
    rows: list[tuple[int, dict[str, Any]]] = []
    stream = _open_text(path)
    try:
        if fmt == "jsonl":
            for lineno, raw in enumerate(stream, 1):
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise FileInputError(f"{path}:{lineno}: not valid JSON ({e})") from None
                if not isinstance(rec, dict):
                    raise FileInputError(
                        f"{path}:{lineno}: a row must be a JSON object, not {type(rec).__name__}"
                    )
                rows.append((lineno, rec))
        else:
            reader = csv.DictReader(stream, delimiter="\t" if fmt == "tsv" else ",")
            if reader.fieldnames is None:
                raise FileInputError(f"{path}: empty file (no header line)")
            for rec in reader:
                if None in rec:  # more cells than the header names
                    raise FileInputError(
                        f"{path}:{reader.line_num}: more cells than the "
                        f"{len(reader.fieldnames)} columns of the header"
                    )
                rows.append((reader.line_num, rec))
    except UnicodeDecodeError as e:
        raise FileInputError(f"{path}: not UTF-8 text ({e.reason})") from None
    finally:
        if path == "-":
            stream.detach()  # leave standard input open
        else:
            stream.close()
    columns = () if columns is None else columns
    order: list[str] | None = None
    if optional is None:  # every other column; all of them in the file's order
        order = list(dict.fromkeys(k for _, rec in rows for k in rec))
        optional = [k for k in order if k not in columns]
    out: dict[str, list[Any]] = {c: [] for c in columns}
    present = [c for c in optional if any(c in rec for _, rec in rows)]
    out.update({c: [] for c in present})
    for lineno, rec in rows:
        for c in columns:
            if c not in rec:
                raise FileInputError(f"{path}:{lineno}: no field {c!r}")
            if rec[c] is None:  # JSON null, or a CSV row with fewer cells than the header
                raise FileInputError(f"{path}:{lineno}: no value for field {c!r}")
            out[c].append(rec[c])
        for c in present:
            out[c].append(rec.get(c))
    if order is not None:
        out = {c: out[c] for c in order if c in out}
    return Table(path, out, [lineno for lineno, _ in rows])


def _open_text(path: str) -> Any:
    if path == "-":
        import io
        import sys

        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # a BOM (spreadsheet exports) skipped


def _parquet_columns(path: str, columns: Sequence[str] | None, optional: Sequence[str]) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with the test extras
        raise FileInputError("Parquet needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise FileInputError(f"{path}: not a readable Parquet file ({e})") from None
    names = table.column_names
    columns = () if columns is None else columns
    if optional is None:
        optional = [c for c in names if c not in columns]
    for c in columns:
        if c not in names:
            raise FileInputError(f"{path}: no column {c!r} (columns: {names})")
    wanted = [c for c in names if c in columns or c in optional]
    out = {c: table.column(c).to_pylist() for c in wanted}
    for c in columns:
        if None in out[c]:
            raise FileInputError(f"{path}: row {out[c].index(None)}: no value in column {c!r}")
    return Table(path, out, None)
