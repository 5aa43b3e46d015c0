"""MinHash-LSH dedup on Ray Data: the clusters of :func:`fastalign.dedup.dedup` for corpora
that do not fit one machine.

Needs the optional extra ``pip install 'fastalign[ray]'`` (``ray[data]``). The pipeline:

1. **sign**: batches of rows (Arrow in) become MinHash signatures in the Rust core (GIL
   released; a plain string column is read straight from its Arrow buffers, no Python
   strings), then one row per (document, band): ``band, key, id`` (and the signature with
   ``verify="minhash"``). Empty documents emit nothing (never near-duplicates).
2. **buckets**: a hash shuffle on ``(band, key)`` puts every bucket whole on one worker, which
   joins its buckets' members into a forest of ``(child, parent)`` edges (Rust).
3. **components**: the connected components of all edges, by alternating large-star and
   small-star rounds (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014),
   each a hash shuffle on a node id: no worker ever holds more than its share of the edges.
   The rounds stop when the edges form stars around each component's smallest id (checked in
   every large-star round); typically 2-4 rounds.
4. **write**: the rows that are not a star's leaf go to Parquet. From files, the removed ids
   are written sorted to a Parquet folder beside the output, and each read task reads its
   unit again and leaves out the ids of its range (the rows never move between workers, and
   each output file keeps the input's order); from a Dataset, a left anti-join on the id.

The clusters are those of the single-process path on the same texts and settings, for any
number of blocks, partitions and workers: a signature does not depend on its batch, a bucket
is whole after the shuffle, and both paths compute the connected components of the same
passing candidate pairs. A cluster's id is its smallest row id, so the row kept is the first.

Row ids: with file paths as input, row ``i`` is the ``i``-th row of the files in sorted path
order (Parquet row groups and JSONL lines are read in order, blank lines skipped), exactly
the order ``fastalign dedup`` and :func:`fastalign.dedup.dedup_records` use on the
concatenated data. A ``ray.data.Dataset`` has no reliable row order, so it needs an
``id_column`` of unique non-negative integers; the smallest id of a cluster is kept.

Example (a local Ray cluster is started when none is running)::

    from fastalign.dedup import ray as ray_dedup

    result = ray_dedup.dedup("corpus/*.parquet", column="text", output="deduped/")
    print(result)   # RayDedupResult(rows=..., kept=..., removed=..., clusters=..., rounds=...)

Verification ``"exact"`` needs the texts of both members of a candidate pair; this pipeline
moves signatures only, so it offers ``False`` (plain LSH) and ``"minhash"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fastalign import _core
from fastalign.dedup.records import field_text, key_text
from fastalign.dedup.settings import Normalization, banding, shingling
from fastalign.errors import ConvergenceError, InvalidInputError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pyarrow as pa

__all__ = ["RayDedupResult", "dedup"]

#: The row-id column the pipeline adds to rows read from files.
ROW_ID = "__fastalign_row"
_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def _import_ray() -> Any:
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data
    except ImportError:
        raise ImportError(
            "fastalign.dedup.ray needs Ray Data: pip install 'fastalign[ray]' (ray[data])"
        ) from None
    return ray


# -- settings shipped to the workers ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Settings:
    keys: tuple[str, ...]
    id_column: str
    shingling: tuple
    bands: int
    rows: int
    threshold: float
    verify: str
    # a test hook: (stage, marker path): the first task of that stage to run kills its worker
    fault: tuple[str, str] | None = None


class _TallyActor:
    """Numbers the workers report (counts, bytes), keyed by the first id of their batch or
    partition: a retried task overwrites its own entry, so nothing is counted twice."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], tuple[int, ...]] = {}

    def put(self, stage: str, key: int, values: tuple[int, ...]) -> None:
        self.entries[(stage, key)] = values

    def values(self, stage: str) -> list[tuple[int, ...]]:
        return [v for (st, _key), v in self.entries.items() if st == stage]


def _total(values: list[tuple[int, ...]], width: int) -> tuple[int, ...]:
    return tuple(sum(v[k] for v in values) for k in range(width))


def _report(tally: Any, stage: str, key: int, values: tuple[int, ...]) -> None:
    import ray

    ray.get(tally.put.remote(stage, int(key), tuple(int(x) for x in values)))


def _maybe_crash(s: _Settings, stage: str) -> None:
    if s.fault is None or s.fault[0] != stage:
        return
    try:
        with open(s.fault[1], "x"):
            pass
    except FileExistsError:
        return
    os._exit(1)  # a worker dying mid-task (preemption, OOM kill): Ray retries the task


# -- stage 1: signatures and band rows ---------------------------------------------------------


def _row_ids(table: pa.Table, s: _Settings) -> np.ndarray:
    import pyarrow as pa

    if s.id_column not in table.column_names:
        raise KeyError(f"no id column {s.id_column!r} (columns: {table.column_names})")
    col = table.column(s.id_column)
    if not pa.types.is_integer(col.type):
        raise TypeError(f"the id column {s.id_column!r} must hold integers, not {col.type}")
    if col.null_count:
        raise InvalidInputError(f"the id column {s.id_column!r} has missing values")
    raw = col.to_numpy()
    if len(raw) and raw.min() < 0:
        raise InvalidInputError(f"the id column {s.id_column!r} has negative ids")
    if len(raw) and raw.dtype == np.uint64 and raw.max() > np.iinfo(np.int64).max:
        raise InvalidInputError(f"the id column {s.id_column!r} has ids of 2**63 or more")
    ids = raw.astype(np.int64, copy=False)
    return ids


def _utf8_buffers(col: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The value bytes and int64 offsets of a string column without nulls (no copy of the
    text), or None when it is not a plain string column."""
    import pyarrow as pa

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    n = len(arr)
    _validity, off_buf, data_buf = arr.buffers()
    width = 8 if pa.types.is_large_string(arr.type) else 4
    offsets = np.frombuffer(
        off_buf, dtype=np.int64 if width == 8 else np.int32, count=n + 1, offset=arr.offset * width
    ).astype(np.int64, copy=False)
    data = np.zeros(0, np.uint8) if data_buf is None else np.frombuffer(data_buf, dtype=np.uint8)
    return data, np.ascontiguousarray(offsets)


def _texts_of(table: pa.Table, s: _Settings, ids: np.ndarray) -> list[str]:
    names = table.column_names
    cols = []
    for k in s.keys:
        if k not in names:
            raise KeyError(f"no column {k!r} (columns: {names})")
        cols.append(table.column(k).to_pylist())
    out = []
    for i in range(table.num_rows):
        parts = [
            field_text(col[i], f"row {ids[i]}: {k!r}") for k, col in zip(s.keys, cols, strict=True)
        ]
        out.append(key_text(parts))
    return out


def _signatures(table: pa.Table, s: _Settings, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(s.keys) == 1 and s.keys[0] in table.column_names:
        bufs = _utf8_buffers(table.column(s.keys[0]))
        if bufs is not None:
            return _core.dedup_signatures_utf8(bufs[0], bufs[1], s.shingling, 1)
    return _core.dedup_signatures(_texts_of(table, s, ids), s.shingling, 1)


def _fixed_list(values: np.ndarray) -> Any:
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _sign(table: pa.Table, settings: _Settings, tally: Any) -> pa.Table:
    import pyarrow as pa

    ids = _row_ids(table, settings)
    if len(ids) == 0:
        return _empty_band_rows(settings)
    sigs, empty = _signatures(table, settings, ids)
    keys = _core.dedup_band_keys(sigs, settings.bands, settings.rows)
    full = ~empty
    b = settings.bands
    cols: dict[str, Any] = {
        "band": np.tile(np.arange(b, dtype=np.uint32), int(full.sum())),
        "key": keys[full].reshape(-1),
        "id": np.repeat(ids[full], b),
    }
    if settings.verify == "minhash":
        cols["sig"] = _fixed_list(np.repeat(sigs[full], b, axis=0))
    out = pa.table(cols)
    stats = (len(ids), int(empty.sum()), out.num_rows, out.nbytes, int(ids.max()))
    _report(tally, "sign", ids.min(), stats)
    _maybe_crash(settings, "sign")  # after the report: a retry must overwrite it, not add
    return out


def _empty_band_rows(settings: _Settings) -> pa.Table:
    import pyarrow as pa

    cols: dict[str, Any] = {
        "band": np.zeros(0, np.uint32),
        "key": np.zeros(0, np.uint64),
        "id": np.zeros(0, np.int64),
    }
    if settings.verify == "minhash":
        cols["sig"] = _fixed_list(np.zeros((0, settings.shingling[0]), np.uint32))
    return pa.table(cols)


# -- stage 2: buckets --------------------------------------------------------------------------


def _ids_as_int64(table: pa.Table, column: str) -> pa.Table:
    import pyarrow as pa

    k = table.column_names.index(column)
    return table.set_column(k, column, table.column(column).cast(pa.int64()))


def _edges_table(child: np.ndarray, parent: np.ndarray) -> pa.Table:
    import pyarrow as pa

    return pa.table({"child": child.astype(np.int64), "parent": parent.astype(np.int64)})


def _forest(table: pa.Table, settings: _Settings) -> pa.Table:
    _maybe_crash(settings, "buckets")
    table = table.combine_chunks()
    sigs = None
    if settings.verify == "minhash":
        col = table.column("sig").chunk(0) if table.num_rows else None
        p = settings.shingling[0]
        sigs = (
            np.asarray(col.flatten()).reshape(-1, p)
            if col is not None
            else np.zeros((0, p), np.uint32)
        )
        sigs = np.ascontiguousarray(sigs, dtype=np.uint32)

    def column(name: str, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(table.column(name).to_numpy(), dtype=dtype)

    edges = _core.dedup_bucket_forest(
        column("band", np.uint32), column("key", np.uint64), column("id", np.int64), sigs,
        settings.verify, settings.threshold,
    )  # fmt: skip
    return _edges_table(edges[:, 0], edges[:, 1])


# -- stage 3: connected components (large-star / small-star) -------------------------------------


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs, sorted by a then b."""
    if len(a) == 0:
        return a, b
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[new], b[new]


def _group_starts(a: np.ndarray) -> np.ndarray:
    new = np.ones(len(a), dtype=bool)
    new[1:] = a[1:] != a[:-1]
    return np.flatnonzero(new)


def large_star(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One large-star step over the edges of the nodes ``u`` (each edge given in both
    directions, every neighbour of a node present): each node links its larger neighbours to
    the smallest node of its neighbourhood. Returns the new ``(child, parent)`` edges, the
    number of nodes whose neighbourhood is not yet a star's (a leaf with one smaller
    neighbour, or a root with larger ones only), and the number of nodes with larger
    neighbours only. When the first count is 0 over all partitions, the input edges were
    stars around each component's smallest id, the output edges are the same stars with
    every edge once, and the second count is the number of stars."""
    u, v = _unique_pairs(u, v)
    if len(u) == 0:
        return u, v, 0, 0
    starts = _group_starts(u)
    counts = np.diff(np.append(starts, len(u)))
    smallest = np.minimum(u[starts], v[starts])  # v is sorted within each node's group
    m = np.repeat(smallest, counts)
    up = v > u
    smaller = counts - np.add.reduceat(up.astype(np.int64), starts)
    larger = counts - smaller
    unsettled = int(((smaller >= 2) | ((smaller >= 1) & (larger >= 1))).sum())
    roots = int((smaller == 0).sum())
    return v[up], m[up], unsettled, roots


def small_star(child: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One small-star step over the ``(child, parent)`` edges (``parent < child``) of the
    children present: each node and its smaller neighbours link to the smallest of them."""
    child, parent = _unique_pairs(child, parent)
    if len(child) == 0:
        return child, parent
    starts = _group_starts(child)
    counts = np.diff(np.append(starts, len(child)))
    m = parent[starts]  # the smallest parent: sorted within each group
    mm = np.repeat(m, counts)
    others = parent != mm
    out_c = np.concatenate([child[starts], parent[others]])
    out_p = np.concatenate([m, mm[others]])
    return _unique_pairs(out_c, out_p)


def _symmetric(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    c = table.column("child").to_numpy()
    p = table.column("parent").to_numpy()
    return pa.table({"u": np.concatenate([c, p]), "v": np.concatenate([p, c])})


def _large_star_batch(table: pa.Table, tally: Any, stage: str, settings: _Settings) -> pa.Table:
    u = table.column("u").to_numpy().astype(np.int64)
    v = table.column("v").to_numpy().astype(np.int64)
    c, p, unsettled, roots = large_star(u, v)
    if len(u):
        _report(tally, stage, u.min(), (unsettled, roots))
        _maybe_crash(settings, "large_star")
    return _edges_table(c, p)


def _small_star_batch(table: pa.Table) -> pa.Table:
    c, p = small_star(
        table.column("child").to_numpy().astype(np.int64),
        table.column("parent").to_numpy().astype(np.int64),
    )
    return _edges_table(c, p)


# -- reading files with row ids ------------------------------------------------------------------


def _expand(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif not isinstance(paths, Sequence):
        raise TypeError(f"paths must be a path or a list of paths, not {type(paths).__name__}")
    files: list[str] = []
    for raw in paths:
        p = os.fspath(raw)
        if os.path.isdir(p):
            found = sorted(
                f
                for f in glob.glob(os.path.join(p, "**", "*"), recursive=True)
                if os.path.splitext(f)[1].lower() in _FORMATS and os.path.isfile(f)
            )
            if not found:
                raise InvalidInputError(f"{p}: no .parquet or .jsonl file in this folder")
            files.extend(found)
        elif any(ch in p for ch in "*?["):
            found = sorted(glob.glob(p, recursive=True))
            if not found:
                raise InvalidInputError(f"{p}: no file matches")
            files.extend(found)
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise InvalidInputError(f"{p}: no such file or folder")
    for f in files:
        if os.path.splitext(f)[1].lower() not in _FORMATS:
            raise InvalidInputError(f"{f}: not a .parquet or .jsonl file")
    return [os.path.abspath(f) for f in files]


def _count_jsonl(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _units(files: list[str], ray: Any) -> tuple[list[dict[str, Any]], int]:
    """Read units (a Parquet row group, a JSONL file) with the id of their first row."""
    import pyarrow.parquet as pq

    jsonl = [f for f in files if _FORMATS[os.path.splitext(f)[1].lower()] == "jsonl"]
    counter = ray.remote(_count_jsonl)
    lines = dict(zip(jsonl, ray.get([counter.remote(f) for f in jsonl]), strict=True))
    units: list[dict[str, Any]] = []
    offset = 0
    for f in files:
        if f in lines:
            units.append({"path": f, "group": -1, "first": offset})
            offset += lines[f]
            continue
        try:
            meta = pq.ParquetFile(f).metadata
        except Exception as e:  # pyarrow raises several types for a bad file
            raise InvalidInputError(f"{f}: not a readable Parquet file ({e})") from None
        for g in range(meta.num_row_groups):
            units.append({"path": f, "group": g, "first": offset})
            offset += meta.row_group(g).num_rows
    return units, offset


def _removed_between(removed_dir: str, lo: int, hi: int) -> np.ndarray:
    """The removed row ids in ``[lo, hi)``; the folder holds them sorted, so the Parquet
    statistics leave out every row group outside the range."""
    import pyarrow.dataset as pads

    table = pads.dataset(removed_dir, format="parquet").to_table(
        columns=["id"], filter=(pads.field("id") >= lo) & (pads.field("id") < hi)
    )
    return table.column("id").to_numpy()


def _read_unit(
    batch: dict[str, np.ndarray], removed_dir: str | None = None, with_ids: bool = True
) -> Iterator[pa.Table]:
    """The rows of each read unit with their row ids; with ``removed_dir``, without the
    removed rows (the write stage: no shuffle of the rows, each file's order kept)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path, group, first in zip(batch["path"], batch["group"], batch["first"], strict=True):
        if group >= 0:
            table = pq.ParquetFile(path).read_row_group(int(group))
        else:
            rows = []
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    if not raw.strip():
                        continue
                    try:
                        rec = json.loads(raw)
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        raise InvalidInputError(f"{path}:{lineno}: not valid JSON ({e})") from None
                    if not isinstance(rec, dict):
                        raise InvalidInputError(f"{path}:{lineno}: a row must be a JSON object")
                    rows.append(rec)
            table = pa.Table.from_pylist(rows)
        ids = np.arange(int(first), int(first) + table.num_rows, dtype=np.int64)
        if removed_dir is not None and len(ids):
            keep = ~np.isin(ids, _removed_between(removed_dir, int(ids[0]), int(ids[-1]) + 1))
            table, ids = table.filter(pa.array(keep)), ids[keep]
        yield table.append_column(ROW_ID, pa.array(ids)) if with_ids else table


# -- the driver ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class RayDedupResult:
    """What a Ray dedup run found and where it went.

    Attributes:
        rows: input rows; kept / removed: rows written / dropped; clusters: duplicate
            clusters (of two or more rows); empty: rows with no shingle (always kept).
        bands: the (bands, rows) used; band_rows: rows of the bucket shuffle (documents x
            bands); edges: the bucket forests' edges; rounds: large-star/small-star rounds.
        labels: a materialized Dataset of ``(id, cluster)`` for every removed row (kept rows
            are their own cluster).
        seconds: wall time per stage; shuffle_bytes: bytes of the bucket shuffle's rows.
        output: where the kept rows were written (None when not written).
        ids_are_positions: whether the ids are exactly ``0 .. rows - 1`` (always for files),
            so that :meth:`cluster` and :meth:`keep` can lay the result out by id.
    """

    rows: int
    kept: int
    removed: int
    clusters: int
    empty: int
    bands: tuple[int, int]
    band_rows: int
    edges: int
    rounds: int
    labels: Any
    seconds: dict[str, float]
    shuffle_bytes: int
    output: str | None
    ids_are_positions: bool = True

    def cluster(self) -> npt.NDArray[np.int64]:
        """Per row id ``0 .. rows - 1``, its cluster's id (the single-process
        :attr:`DedupResult.cluster <fastalign.dedup.DedupResult.cluster>`; ids from files, or
        an id column holding exactly ``0 .. rows - 1``). Gathers the labels on the driver."""
        if not self.ids_are_positions:
            raise InvalidInputError("the ids are not 0 .. rows - 1: read `labels` instead")
        out = np.arange(self.rows, dtype=np.int64)
        for batch in self.labels.iter_batches(batch_format="numpy", batch_size=1 << 20):
            out[batch["id"]] = batch["cluster"]
        return out

    def keep(self) -> npt.NDArray[np.bool_]:
        """Per row id, whether the row is kept (see :meth:`cluster`)."""
        return self.cluster() == np.arange(self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "texts": self.rows,
            "kept": self.kept,
            "removed": self.removed,
            "clusters": self.clusters,
            "empty": self.empty,
            "bands": list(self.bands),
            "band_rows": self.band_rows,
            "edges": self.edges,
            "rounds": self.rounds,
            "shuffle_bytes": self.shuffle_bytes,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def __repr__(self) -> str:
        return (
            f"RayDedupResult(rows={self.rows}, kept={self.kept}, removed={self.removed}, "
            f"clusters={self.clusters}, rounds={self.rounds}, output={self.output!r})"
        )


def _say(progress: Callable[[str], None] | bool | None) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if progress:
        return lambda msg: print(msg, file=sys.stderr, flush=True)
    return lambda msg: None


@contextlib.contextmanager
def _data_context(progress_bars: bool) -> Iterator[None]:
    """Ray Data settings for the run, restored after it: progress bars on or off, and the
    actor-based hash shuffle for keyed repartitions (Ray 2.60's default SHUFFLE_V2 measured
    about 5 s more per keyed shuffle on a 2-core machine, whatever the data size)."""
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    ctx = DataContext.get_current()
    old = (ctx.enable_progress_bars, ctx.shuffle_strategy)
    ctx.enable_progress_bars = progress_bars
    ctx.shuffle_strategy = ShuffleStrategy.HASH_SHUFFLE
    try:
        yield
    finally:
        ctx.enable_progress_bars, ctx.shuffle_strategy = old


def dedup(
    data: Any,
    *,
    column: str | Sequence[str] = "text",
    output: str | os.PathLike[str] | None = None,
    id_column: str | None = None,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    unit: str = "word",
    normalize: bool | Normalization = True,
    seed: int = 0,
    verify: Literal[False, "none", "minhash"] = False,
    bands: tuple[int, int] | None = None,
    partitions: int | None = None,
    max_rounds: int = 64,
    address: str | None = None,
    progress: bool | Callable[[str], None] = True,
    _fault: tuple[str, str] | None = None,
) -> RayDedupResult:
    """Near-duplicate dedup of a corpus on Ray Data (see the module docs).

    Args:
        data: Parquet / JSONL file paths, folders or glob patterns (row ids in sorted path
            order), or a ``ray.data.Dataset`` with an ``id_column``.
        column: the column(s) whose text is compared (several are joined as in
            :func:`fastalign.dedup.record_texts`; a column may hold chats).
        output: a folder for the kept rows as Parquet (None: compute the clusters only).
        id_column: the unique non-negative integer id column of a Dataset (required there;
            rows of files are numbered by position, so not accepted with files).
        threshold, num_perm, ngram, unit, normalize, seed, bands: as in
            :func:`fastalign.dedup.dedup`.
        verify: False (plain LSH) or ``"minhash"``.
        partitions: hash partitions of each shuffle (default: 2 per CPU of the cluster).
        max_rounds: a bound on the connected-components rounds (O(log^2 n) by the paper's
            bound, typically 2-4; 64 is far beyond any real graph).
        address: the Ray cluster to join when Ray is not initialized yet (None: a local one).
        progress: ``True``: one line per stage on stderr and Ray Data's progress bars; a
            function: each stage line goes to it, without progress bars; ``False``: quiet.

    Returns:
        A :class:`RayDedupResult`.
    """
    ray = _import_ray()
    bd = banding(threshold, bands, verify)
    v, t = bd.verify, bd.threshold
    if v == "exact":
        raise InvalidInputError(
            "the Ray pipeline moves signatures, not texts: verify must be False or 'minhash'"
        )
    sh = shingling(num_perm, ngram, unit, normalize, seed)
    b, r = bd.bands or _core.dedup_lsh_params(t, sh.num_perm)
    if b * r > sh.num_perm:
        raise InvalidInputError(f"bands x rows = {b} x {r} exceeds num_perm = {sh.num_perm}")
    keys = (column,) if isinstance(column, str) else tuple(column)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"column must be a column name or a list of them, got {column!r}")
    if not isinstance(max_rounds, int) or max_rounds < 1:
        raise InvalidInputError(f"max_rounds must be a positive int, got {max_rounds!r}")
    say = _say(progress)

    if (
        output is not None
        and os.path.exists(output)
        and not (os.path.isdir(output) and not os.listdir(output))
    ):
        raise InvalidInputError(
            f"{os.fspath(output)} exists (and is not an empty folder): Ray would add files "
            "beside the old ones (choose a new folder)"
        )
    files = None if isinstance(data, ray.data.Dataset) else _expand(data)
    if files is not None and id_column is not None:
        raise InvalidInputError(
            "rows of files are numbered by their position; id_column is for a ray.data.Dataset"
        )
    if files is None and id_column is None:
        raise InvalidInputError(
            "a ray.data.Dataset has no reliable row order: give id_column (a unique "
            "non-negative integer column), or pass the files' paths"
        )
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if partitions is None:
        partitions = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    elif isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise InvalidInputError(f"partitions must be a positive int, got {partitions!r}")

    seconds: dict[str, float] = {}
    with _data_context(progress is True), contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        if files is None:
            docs, n_rows, id_col = data, None, str(id_column)
        else:
            units, n_rows = _units(files, ray)
            say(f"[read] {len(files)} file(s), {n_rows:,} rows in {len(units)} read task(s)")
            docs = ray.data.from_items(units, override_num_blocks=max(1, len(units)))
            docs = docs.map_batches(_read_unit, batch_size=1, batch_format="numpy")
            id_col = ROW_ID

        settings = _Settings(keys, id_col, sh, b, r, t, v, _fault)
        tally = ray.remote(num_cpus=0)(_TallyActor).remote()
        stack.callback(ray.kill, tally)
        with_tally = {"tally": tally}
        edges = (
            docs.map_batches(
                _sign,
                batch_format="pyarrow",
                fn_kwargs={"settings": settings, **with_tally},
                zero_copy_batch=True,
            )
            .repartition(partitions, keys=["band", "key"])
            .map_batches(
                _forest, batch_size=None, batch_format="pyarrow", fn_kwargs={"settings": settings}
            )
            .materialize()
        )
        signed = ray.get(tally.values.remote("sign"))
        n_docs, n_empty, n_band_rows, shuffle_bytes = _total(signed, 4)
        max_id = max((v[4] for v in signed), default=-1)
        if n_rows is not None and n_docs != n_rows:
            raise InvalidInputError(f"read {n_docs} rows where the files hold {n_rows}")
        n_rows = n_docs
        n_edges = edges.count()
        seconds["sign+buckets"] = time.perf_counter() - t0
        say(
            f"[sign+buckets] {n_rows:,} rows ({n_empty:,} empty) -> {n_band_rows:,} band rows "
            f"({b} bands x {r} rows, {shuffle_bytes / 1e6:,.1f} MB shuffled) -> {n_edges:,} "
            f"forest edges in {seconds['sign+buckets']:.1f} s"
        )

        t1 = time.perf_counter()
        rounds, clusters = 0, 0
        while n_edges:
            rounds += 1
            if rounds > max_rounds:
                raise ConvergenceError(
                    f"connected components did not settle in {max_rounds} rounds"
                )
            large = (
                edges.map_batches(_symmetric, batch_format="pyarrow")
                .repartition(partitions, keys=["u"])
                .map_batches(
                    _large_star_batch,
                    batch_size=None,
                    batch_format="pyarrow",
                    fn_kwargs={**with_tally, "stage": f"large_star_{rounds}", "settings": settings},
                )
                .materialize()
            )
            unsettled, clusters = _total(ray.get(tally.values.remote(f"large_star_{rounds}")), 2)
            if unsettled == 0:
                # the input edges are stars around each component's smallest id; the output
                # is the same stars with every edge once (each leaf in its root's partition)
                edges = large
                break
            edges = (
                large.repartition(partitions, keys=["child"])
                .map_batches(_small_star_batch, batch_size=None, batch_format="pyarrow")
                .materialize()
            )
        seconds["components"] = time.perf_counter() - t1
        labels = edges.rename_columns({"child": "id", "parent": "cluster"}).materialize()
        removed = labels.count()
        say(
            f"[components] {removed:,} duplicate rows in {clusters:,} clusters after "
            f"{rounds} round(s) in {seconds['components']:.1f} s"
        )

        out_path = None
        if output is not None:
            t3 = time.perf_counter()
            out_path = os.fspath(output)
            if files is None:
                # a Dataset: a left anti-join on the id (a shuffle of the rows), both sides'
                # ids as int64 (the labels' type) so that they hash alike
                kept_ds = docs.map_batches(
                    _ids_as_int64, batch_format="pyarrow", fn_kwargs={"column": id_col}
                ).join(
                    labels.select_columns(["id"]), "left_anti", partitions,
                    on=(id_col,), right_on=("id",),
                )  # fmt: skip
                kept_ds.write_parquet(out_path)
            else:
                # files: the removed ids, sorted, in a Parquet folder beside the output; each
                # read task reads its unit again and leaves out the ids of its range
                removed_dir = None
                try:
                    if removed:
                        # a fresh folder (never one left by an earlier run) on the output's
                        # filesystem, which every worker reads
                        removed_dir = tempfile.mkdtemp(
                            dir=os.path.dirname(os.path.abspath(out_path)),
                            prefix=".fastalign-removed-",
                        )
                        labels.select_columns(["id"]).sort("id").write_parquet(removed_dir)
                    ray.data.from_items(units, override_num_blocks=max(1, len(units))).map_batches(
                        _read_unit, batch_size=1, batch_format="numpy",
                        fn_kwargs={"removed_dir": removed_dir, "with_ids": False},
                    ).write_parquet(out_path)  # fmt: skip
                finally:
                    if removed_dir is not None:
                        shutil.rmtree(removed_dir, ignore_errors=True)
            seconds["write"] = time.perf_counter() - t3
            say(f"[write] {n_rows - removed:,} kept rows -> {out_path} in {seconds['write']:.1f} s")
    return RayDedupResult(
        rows=n_rows,
        kept=n_rows - removed,
        removed=removed,
        clusters=clusters,
        empty=n_empty,
        bands=(b, r),
        band_rows=n_band_rows,
        edges=n_edges,
        rounds=rounds,
        labels=labels,
        seconds=seconds,
        shuffle_bytes=shuffle_bytes,
        output=out_path,
        ids_are_positions=max_id == n_rows - 1,  # unique ids: exactly 0 .. rows - 1
    )
