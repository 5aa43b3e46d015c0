"""fastalign.dedup.ray: the Ray Data pipeline gives the single-process clusters.

The connected-components rounds and the Arrow reading are checked without Ray (fast, with
hypothesis); the pipeline itself runs on one local Ray cluster of 2 CPUs shared by the module
(each run takes tens of seconds on a 2-core machine: Ray Data's per-stage latency, not work).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign import _core
from fastalign import dedup as fd
from fastalign.dedup.settings import shingling
from fastalign.errors import InvalidInputError, ShapeError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
rd = pytest.importorskip("fastalign.dedup.ray")


def union_find_roots(n: int, edges: np.ndarray) -> np.ndarray:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def components_sharded(edges: np.ndarray, parts: int, salt: int) -> tuple[np.ndarray, int, int]:
    """The driver loop of fastalign.dedup.ray with the shuffles done by hand: nodes go to
    ``parts`` partitions by a salted hash."""

    def part(x: np.ndarray) -> np.ndarray:
        return ((x * 0x9E3779B1 + salt) >> 7) % parts

    child, parent = edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64)
    rounds = clusters = 0
    while len(child):
        rounds += 1
        assert rounds <= 64
        u, v = np.concatenate([child, parent]), np.concatenate([parent, child])
        outs = [rd.large_star(u[part(u) == k], v[part(u) == k]) for k in range(parts)]
        unsettled = sum(o[2] for o in outs)
        clusters = sum(o[3] for o in outs)
        lc = np.concatenate([o[0] for o in outs])
        lp = np.concatenate([o[1] for o in outs])
        if unsettled == 0:
            child, parent = lc, lp  # the stars, each edge once
            break
        smalls = [rd.small_star(lc[part(lc) == k], lp[part(lc) == k]) for k in range(parts)]
        child = np.concatenate([s[0] for s in smalls])
        parent = np.concatenate([s[1] for s in smalls])
    labels = np.stack([child, parent], axis=1)
    return labels, rounds, clusters


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(2, 60),
    data=st.data(),
    parts=st.integers(1, 5),
    salt=st.integers(0, 1000),
)
def test_star_rounds_give_the_components(n: int, data: st.DataObject, parts: int, salt: int):
    pairs = data.draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n)
    )
    edges = np.array([(max(a, b), min(a, b)) for a, b in pairs if a != b], dtype=np.int64)
    edges = edges.reshape(-1, 2)
    want = union_find_roots(n, edges)
    labels, _rounds, clusters = components_sharded(edges, parts, salt)
    got = np.arange(n)
    # stars: every leaf once, every parent a root
    assert len(np.unique(labels[:, 0])) == len(labels)
    assert not np.isin(labels[:, 1], labels[:, 0]).any()
    got[labels[:, 0]] = labels[:, 1]
    np.testing.assert_array_equal(got, want)
    assert clusters == len(np.unique(labels[:, 1]))


def test_star_rounds_on_a_long_path():
    # a path in a bad order is the slow case: rounds stay logarithmic
    rng = np.random.default_rng(0)
    perm = rng.permutation(4096)
    edges = np.stack([perm[1:], perm[:-1]], axis=1)
    edges = np.stack([edges.max(1), edges.min(1)], axis=1)
    labels, rounds, clusters = components_sharded(edges, 3, 1)
    assert clusters == 1
    assert len(labels) == 4095
    assert (labels[:, 1] == 0).all()
    assert rounds <= 20, rounds


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(max_size=40), max_size=12),
    start=st.integers(0, 3),
    large=st.booleans(),
)
def test_arrow_buffers_sign_like_python_strings(texts: list[str], start: int, large: bool):
    texts = [t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for t in texts]
    arr = pa.array(["pad"] * start + texts, type=pa.large_string() if large else pa.string())
    arr = arr.slice(start)  # a non-zero offset, as in a batch cut from a block
    bufs = rd._utf8_buffers(arr)
    assert bufs is not None
    sh = shingling(16, 2, "word", True, 7)
    got_sigs, got_empty = _core.dedup_signatures_utf8(bufs[0], bufs[1], sh, 1)
    want_sigs, want_empty = _core.dedup_signatures(texts, sh, 1)
    np.testing.assert_array_equal(got_sigs, want_sigs)
    np.testing.assert_array_equal(got_empty, want_empty)


def test_arrow_buffers_refuse_nulls_and_other_types():
    assert rd._utf8_buffers(pa.array(["a", None])) is None
    assert rd._utf8_buffers(pa.array([1, 2])) is None
    sh = shingling(16, 2, "word", True, 7)
    with pytest.raises(ShapeError, match="outside"):
        _core.dedup_signatures_utf8(np.frombuffer(b"abc", np.uint8), np.array([0, 4]), sh, 1)
    with pytest.raises(InvalidInputError, match="UTF-8"):
        _core.dedup_signatures_utf8(np.frombuffer(b"\xff", np.uint8), np.array([0, 1]), sh, 1)


def test_bucket_forest_checks_its_rows():
    u32, u64, i64 = np.uint32, np.uint64, np.int64
    band, key = np.zeros(2, u32), np.zeros(2, u64)
    with pytest.raises(InvalidInputError, match="appears twice"):
        _core.dedup_bucket_forest(band, key, np.array([4, 4], i64), None, "none", 0.5)
    with pytest.raises(ShapeError):
        _core.dedup_bucket_forest(band, key, np.array([4], i64), None, "none", 0.5)
    with pytest.raises(InvalidInputError, match="signatures"):
        _core.dedup_bucket_forest(band, key, np.array([4, 5], i64), None, "minhash", 0.5)
    edges = _core.dedup_bucket_forest(band, key, np.array([9, 4], i64), None, "none", 0.5)
    assert edges.tolist() == [[9, 4]]


# -- the pipeline on a local cluster ------------------------------------------------------------


def corpus(n: int = 360, seed: int = 0) -> list[str]:
    """Random word texts, about a third of them near-copies (one word changed) of earlier
    ones, chains of copies included, and an empty text."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(400)]
    texts: list[str] = []
    for i in range(n):
        if i > 10 and rng.random() < 0.35:
            src = texts[int(rng.integers(0, len(texts)))].split() or ["x"]
            src[int(rng.integers(0, len(src)))] = "changed"
            texts.append(" ".join(src))
        else:
            texts.append(" ".join(rng.choice(words, int(rng.integers(4, 40)))))
    texts[7] = "  ,,, "
    return texts


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def write_parquet_files(folder, texts: list[str]) -> None:
    half = len(texts) // 3
    tables = [
        pa.table({"text": texts[:half], "n": np.arange(half)}),
        pa.table({"text": texts[half:], "n": np.arange(half, len(texts))}),
    ]
    pq.write_table(tables[0], folder / "part-0.parquet", row_group_size=50)
    pq.write_table(tables[1], folder / "part-1.parquet", row_group_size=71)


def check_output(out_dir, keep: np.ndarray, column: str = "n") -> None:
    got = pq.read_table(out_dir).column(column).to_pylist()
    assert sorted(got) == np.flatnonzero(keep).tolist()  # no row lost, none twice


@pytest.mark.slow
def test_parquet_files_match_single_process(ray_cluster, tmp_path):
    texts = corpus()
    src = tmp_path / "in"
    src.mkdir()
    write_parquet_files(src, texts)
    want = fd.dedup(texts, threshold=0.5)
    assert want.n_removed > 50
    assert want.summary()["largest_cluster"] > 2
    lines: list[str] = []
    marker = tmp_path / "crashed"  # a worker dies after reporting its large-star counts
    r = rd.dedup(
        src, threshold=0.5, output=tmp_path / "out", partitions=3, progress=lines.append,
        _fault=("large_star", str(marker)),
    )  # fmt: skip
    assert marker.exists()
    marker.unlink()
    np.testing.assert_array_equal(r.cluster(), want.cluster)
    np.testing.assert_array_equal(r.keep(), want.keep)
    s = want.summary()
    assert (r.rows, r.kept, r.removed, r.clusters, r.empty) == (
        s["texts"], s["kept"], s["removed"], s["clusters"], s["empty"]
    )  # fmt: skip
    assert r.band_rows == (r.rows - r.empty) * r.bands[0]
    assert r.shuffle_bytes > 0
    check_output(tmp_path / "out", want.keep)
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]  # the removed-ids folder is gone
    assert [line.split("]")[0] for line in lines] == [
        "[read", "[sign+buckets", "[components", "[write"
    ]  # fmt: skip


@pytest.mark.slow
def test_minhash_verification_on_jsonl_chats_with_retried_task(ray_cluster, tmp_path):
    # several key columns, one of them a chat; a worker dies in the sign stage once
    texts = corpus(300, seed=1)
    rows = [
        {"prompt": [{"role": "user", "content": t}], "tag": str(i % 2), "n": i}
        for i, t in enumerate(texts)
    ]
    src = tmp_path / "in"
    src.mkdir()
    for k, chunk in enumerate([rows[:120], rows[120:]]):
        with open(src / f"part-{k}.jsonl", "w") as f:
            f.write("\n".join(json.dumps(r) for r in chunk) + "\n\n")  # a blank line: no row
    want = fd.dedup(fd.record_texts(rows, ["prompt", "tag"]), threshold=0.6, verify="minhash")
    assert want.n_removed > 30
    marker = tmp_path / "crashed"
    r = rd.dedup(
        src, column=["prompt", "tag"], threshold=0.6, verify="minhash", output=tmp_path / "out",
        partitions=2, progress=False, _fault=("sign", str(marker)),
    )  # fmt: skip
    assert marker.exists()  # the fault did fire, after the task had reported its counts
    np.testing.assert_array_equal(r.cluster(), want.cluster)
    s = want.summary()
    assert (r.rows, r.removed, r.clusters, r.empty) == (
        s["texts"], s["removed"], s["clusters"], s["empty"]
    )  # fmt: skip
    check_output(tmp_path / "out", want.keep)


@pytest.mark.slow
def test_dataset_with_id_column_and_crash_after_the_shuffle(ray_cluster, tmp_path):
    import ray.data

    texts = corpus(240, seed=2)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(texts))  # rows arrive in any order: the ids decide
    # int32 ids: the anti-join must still match them with the int64 labels
    table = pa.table({"id": pa.array(order, pa.int32()), "text": [texts[i] for i in order]})
    ds = ray.data.from_arrow(table).repartition(5)
    want = fd.dedup(texts, threshold=0.7, bands=(16, 8))
    marker = tmp_path / "crashed"
    r = rd.dedup(
        ds, id_column="id", threshold=0.7, bands=(16, 8), output=str(tmp_path / "out"),
        partitions=4, progress=False, _fault=("buckets", str(marker)),
    )  # fmt: skip
    assert marker.exists()
    np.testing.assert_array_equal(r.cluster(), want.cluster)
    check_output(tmp_path / "out", want.keep, column="id")
    assert r.removed == want.n_removed


def test_bad_arguments(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        rd.dedup(tmp_path / "missing.parquet")
    with pytest.raises(InvalidInputError, match="verify"):
        rd.dedup(tmp_path, verify="exact")
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(InvalidInputError, match=r"no \.parquet"):
        rd.dedup(tmp_path)
    with pytest.raises(InvalidInputError, match=r"not a \.parquet"):
        rd.dedup(tmp_path / "x.csv")
    with pytest.raises(TypeError, match="column"):
        rd.dedup(tmp_path / "x.csv", column=[])
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "a.parquet")
    with pytest.raises(InvalidInputError, match="position"):
        rd.dedup(tmp_path / "a.parquet", id_column="id")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="exists"):
        rd.dedup(tmp_path / "a.parquet", output=tmp_path / "out")
    settings = rd._Settings(("text",), "id", (), 1, 1, 0.5, "none")
    big = pa.table({"id": pa.array([2**63], pa.uint64())})
    with pytest.raises(InvalidInputError, match=r"2\*\*63"):
        rd._row_ids(big, settings)
    with pytest.raises(TypeError, match="integers"):
        rd._row_ids(pa.table({"id": ["x"]}), settings)


@pytest.mark.slow
def test_dataset_needs_ids_and_bad_rows_name_their_row(ray_cluster, tmp_path):
    import ray.data

    ds = ray.data.from_items([{"text": "a b c"}])
    with pytest.raises(InvalidInputError, match="id_column"):
        rd.dedup(ds)
    # ids that are not row positions: the labels hold the answer, cluster() says so
    items = [{"id": 10 + i, "text": t} for i, t in enumerate(["a b c d e f", "a b c d e f", "x"])]
    r = rd.dedup(ray.data.from_items(items), id_column="id", progress=False)
    assert r.labels.take_all() == [{"id": 11, "cluster": 10}]
    with pytest.raises(InvalidInputError, match="labels"):
        r.cluster()
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": None}) + "\n")
    with pytest.raises(Exception, match="row 0: 'text' is None"):
        rd.dedup(tmp_path / "a.jsonl", progress=False)


@pytest.mark.slow
def test_nothing_to_remove(ray_cluster, tmp_path):
    # distinct texts and empty ones only: no band row joins another, every row is written
    texts = ["", "alpha beta gamma delta", "   ", "one two three four five", ""]
    pq.write_table(pa.table({"text": texts, "n": np.arange(5)}), tmp_path / "a.parquet")
    r = rd.dedup(tmp_path / "a.parquet", output=tmp_path / "out", progress=False)
    assert (r.rows, r.kept, r.removed, r.empty, r.rounds, r.edges) == (5, 5, 0, 3, 0, 0)
    np.testing.assert_array_equal(r.cluster(), np.arange(5))
    check_output(tmp_path / "out", np.ones(5, dtype=bool))
    (tmp_path / "b.jsonl").write_text("")  # no rows at all
    r = rd.dedup(tmp_path / "b.jsonl", progress=False)
    assert (r.rows, r.kept, r.removed) == (0, 0, 0)


def test_import_fastalign_dedup_does_not_import_ray():
    import subprocess
    import sys

    code = "import sys, fastalign.dedup; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_cli_engine_ray(ray_cluster, tmp_path, capsys):
    from fastalign.cli import main

    texts = corpus(200, seed=4)
    src, out, summary = tmp_path / "in.jsonl", tmp_path / "out", tmp_path / "s.json"
    src.write_text("".join(json.dumps({"id": i, "prompt": t}) + "\n" for i, t in enumerate(texts)))
    args = ["dedup", str(src), "-o", str(out), "--engine", "ray", "--partitions", "2"]
    log = tmp_path / "logs" / "ray.log"
    log.parent.mkdir()
    assert main([*args, "--threshold", "0.5", "--summary-json", str(summary),
                 "--ray-log", str(log)]) == 0  # fmt: skip
    want = fd.dedup(texts, threshold=0.5)
    check_output(out, want.keep, column="id")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".fastalign")]  # renamed
    s = json.loads(summary.read_text())
    assert (s["kept"], s["removed"], s["texts"]) == (want.n_kept, want.n_removed, len(texts))
    captured = capsys.readouterr()
    assert f"kept {want.n_kept:,}" in captured.out
    for stage in ("[read]", "[sign+buckets]", "[components]", "[write]"):
        assert stage in captured.err
    # the terminal gets fastalign's lines only; Ray's own go to the file it names
    assert f"Ray's log lines go to {log}" in captured.err
    assert not [line for line in captured.err.splitlines() if "INFO" in line or "WARN" in line]
    assert log.exists()  # what reaches it depends on the logging this process set up before
    assert s["ray_log"] == str(log)
    # refusals: an existing output, exact modes, ray-only flags without the engine
    for extra, message in [
        ([], "exists"),
        (["--exact"], "one machine"),
        (["--verify", "exact"], "signatures"),
    ]:
        assert main([*args, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["dedup", str(src), "-o", str(tmp_path / "x.jsonl"), "--partitions", "2"]) == 2
    assert "--engine ray" in capsys.readouterr().err
    # a file name with an extension is not taken as a folder name
    assert main(["dedup", str(src), "-o", str(tmp_path / "o.jsonl"), "--engine", "ray"]) == 2
    assert "writes a folder of Parquet files, not one .jsonl file" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.slow
def test_cli_engine_ray_quiet_terminal_in_a_fresh_process(tmp_path):
    """As a user runs it (a fresh process starting its own local cluster): stderr carries
    fastalign's stage lines only; Ray's start-up and execution lines are in the named file."""
    import subprocess
    import sys

    src, out, log = tmp_path / "in.jsonl", tmp_path / "out", tmp_path / "ray.log"
    src.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in corpus(60, seed=2)))
    proc = subprocess.run(
        [sys.executable, "-m", "fastalign", "dedup", str(src), "-o", str(out), "--engine", "ray",
         "--partitions", "2", "--ray-log", str(log)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"Ray's log lines go to {log}"
    assert all(line.startswith("[") for line in lines[1:]), lines  # [read], [sign+buckets], ...
    text = log.read_text()
    assert "Started a local Ray instance" in text
    assert "streaming_executor" in text
