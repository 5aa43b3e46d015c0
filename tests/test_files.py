"""Atomic writes: a killed run's temporary files are removed by the next write, a live run's
are not; `fastalign dedup` cleans up after a killed predecessor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fastalign import _files
from fastalign.cli import main


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".fastalign-dedup-{dead}-abc123.tmp"
    stale.write_text("half a file")
    stale_dir = tmp_path / f".fastalign-dedup-{dead}-xyz"
    stale_dir.mkdir()
    (stale_dir / "part-0.parquet").write_text("x")
    live = tmp_path / f".fastalign-dedup-{os.getppid()}-def456.tmp"  # our parent runs
    live.write_text("in progress")
    foreign = tmp_path / ".fastalign-notes.tmp"  # not ours to judge
    foreign.write_text("keep")
    _files.atomic_write_text(str(tmp_path / "out.json"), "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, foreign.name, "out.json"]
    )


def test_a_failed_write_leaves_nothing(tmp_path):
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _files.atomic_write(str(tmp_path / "out.txt"), write)
    assert list(tmp_path.iterdir()) == []


def test_dedup_cli_cleans_up_after_a_killed_run(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"text number {i}"}) + "\n" for i in range(5)))
    stale = tmp_path / f".fastalign-dedup-{_dead_pid()}-k1ll3d.tmp"  # SIGKILL mid-write
    stale.write_text('{"prompt": "text num')
    assert main(["dedup", str(src), "-o", str(tmp_path / "out.jsonl"), "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]
    capsys.readouterr()
