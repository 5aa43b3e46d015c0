"""`fastalign dedup`: JSONL and Parquet round trips, failures that leave no output."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fastalign import dedup
from fastalign.bench.workloads.dedup import dedup_corpus
from fastalign.cli import main


@pytest.fixture(scope="module")
def rows():
    texts = dedup_corpus(400, seed=8, min_words=10, max_words=40)
    return [{"id": i, "prompt": t, "chosen": "yes", "rejected": "no"} for i, t in enumerate(texts)]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_jsonl_round_trip(tmp_path, rows, capsys):
    src, out, summary = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "s.json"
    write_jsonl(src, rows)
    args = [str(src), "-o", str(out), "--no-progress", "--summary-json", str(summary)]
    assert main(["dedup", *args]) == 0
    want = dedup.dedup([r["prompt"] for r in rows])
    kept_lines = out.read_text(encoding="utf-8").splitlines()
    src_lines = src.read_text(encoding="utf-8").splitlines()
    assert kept_lines == [line for line, k in zip(src_lines, want.keep, strict=True) if k]
    s = json.loads(summary.read_text())
    assert s["kept"] == want.n_kept
    assert s["removed"] == want.n_removed > 0
    assert s["bands"] == [9, 13]
    assert f"kept {want.n_kept:,}" in capsys.readouterr().out
    # several keys, exact mode
    assert main(["dedup", str(src), "-o", str(out), "--exact", "--key", "prompt", "--key",
                 "chosen", "--no-progress"]) == 0  # fmt: skip
    keys = [r["prompt"] + "\n\x1e\n" + r["chosen"] for r in rows]
    assert len(out.read_text().splitlines()) == dedup.exact(keys).n_kept


def test_parquet_round_trip(tmp_path, rows):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    assert main(["dedup", str(src), "-o", str(out), "--verify", "exact", "--no-progress"]) == 0
    want = dedup.dedup([r["prompt"] for r in rows], verify="exact")
    got = pq.read_table(out)
    assert got.column("id").to_pylist() == np.flatnonzero(want.keep).tolist()
    assert got.schema == pa.Table.from_pylist(rows).schema


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a b c"}\n{"prompt": "x" oops}\n', r"in\.jsonl:2: not valid JSON"),
        ('{"prompt": "a"}\n[1, 2]\n', r"in\.jsonl:2: a row must be a JSON object"),
        ('{"prompt": "a"}\n\n{"text": "b"}\n', r"in\.jsonl:3: no field 'prompt'"),
        ('{"prompt": "a"}\n{"prompt": null}\n', r"in\.jsonl:2: field 'prompt' is None"),
        ('{"prompt": 5}\n', r"in\.jsonl:1: field 'prompt' must be a str"),
    ],
)
def test_bad_jsonl_fails_without_writing(tmp_path, capsys, content, message):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(content)
    out.write_text("previous output\n")
    assert main(["dedup", str(src), "-o", str(out), "--no-progress"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert out.read_text() == "previous output\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_refuses_to_overwrite_the_input_and_bad_files(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "a b c"}\n')
    before = src.read_bytes()
    assert main(["dedup", str(src), "-o", str(src), "--no-progress"]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert src.read_bytes() == before
    assert main(["dedup", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    assert main(["dedup", str(bad), "-o", str(tmp_path / "o.parquet"), "--no-progress"]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err
    assert main(["dedup", str(src), "-o", str(tmp_path / "o.csv"), "--no-progress"]) == 2
    assert "extension" in capsys.readouterr().err
    assert main(["dedup", str(src), "-o", str(tmp_path / "o.jsonl"), "--threshold", "1.5",
                 "--no-progress"]) == 2  # fmt: skip
    assert "threshold" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
    # the summary cannot be written: no output either
    assert main(["dedup", str(src), "-o", str(tmp_path / "o.jsonl"), "--summary-json",
                 str(tmp_path / "no" / "s.json"), "--no-progress"]) == 2  # fmt: skip
    assert not (tmp_path / "o.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fastalign")]


def test_no_written_path_is_an_input(tmp_path, capsys):
    """`--summary-json in.jsonl` overwrote the input with the summary and exited 0. Every path
    the command writes is checked against the input (also through a link) and the others."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "a b c"}\n{"prompt": "a b c"}\n')
    before = src.read_bytes()
    link = tmp_path / "link.json"
    link.symlink_to(src)
    out = str(tmp_path / "out.jsonl")
    for summary in (str(src), str(link)):
        assert main(["dedup", str(src), "-o", out, "--summary-json", summary, "--no-progress"]) == 2
        assert "refusing to overwrite the input" in capsys.readouterr().err
    assert main(["dedup", str(src), "-o", out, "--summary-json", out, "--no-progress"]) == 2
    assert "are the same file" in capsys.readouterr().err
    assert main(["dedup", str(src), "-o", str(link), "--no-progress"]) == 2  # -o a link to it
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert src.read_bytes() == before
    assert not (tmp_path / "out.jsonl").exists()
    # and the summary itself is written atomically: no temporary left beside it
    assert main(["dedup", str(src), "-o", out, "--summary-json", str(tmp_path / "s.json"),
                 "--no-progress"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "s.json").read_text())["removed"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fastalign")]


def test_a_lone_surrogate_is_named_by_its_line(tmp_path, capsys):
    """An escaped lone surrogate in a JSONL key was reported as texts[i]; now as file:line."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "fine"}\n\n{"prompt": "bad \\ud800 text"}\n')
    assert main(["dedup", str(src), "-o", str(tmp_path / "out.jsonl"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:3: the key text is not valid Unicode (a lone surrogate at position 4)" in err
    assert not (tmp_path / "out.jsonl").exists()
