"""Atomic writes: a killed run's temporary files are removed by a later write into the same
folder, and nothing else is (a live run's, a young one, another host's, a look-alike name);
symbolic links are written through and devices written directly; `fastalign dedup` cleans up
after a killed predecessor."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from fastalign import _files
from fastalign.cli import main


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _aged(path, seconds=3600):
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / (_files.temp_prefix("dedup", dead) + "abc12345.tmp")
    stale.write_text("half a file")
    _aged(stale)
    stale_dir = tmp_path / (_files.temp_prefix("dedup", dead) + "xyz12345")
    stale_dir.mkdir()
    (stale_dir / "part-0.parquet").write_text("x")
    _aged(stale_dir)
    keep = [
        tmp_path / (_files.temp_prefix("dedup", os.getppid()) + "def45678.tmp"),  # alive
        tmp_path / (_files.temp_prefix("write", dead) + "young123.tmp"),  # under a minute old
        tmp_path / f".fastalign-dedup-0123abcd-{dead}-otherhst.tmp",  # another host's
        tmp_path / ".fastalign-runs-2024-06",  # a look-alike of the user's
        tmp_path / ".fastalign-notes.tmp",
    ]
    for k in keep:
        k.write_text("keep")
        if "young" not in k.name:
            _aged(k)
    _files.atomic_write_text(str(tmp_path / "out.json"), "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [k.name for k in keep] + ["out.json"]
    )


def test_a_failed_write_leaves_nothing(tmp_path):
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _files.atomic_write(str(tmp_path / "out.txt"), write)
    assert list(tmp_path.iterdir()) == []


def test_links_are_written_through_and_devices_directly(tmp_path):
    real = tmp_path / "run123.json"
    real.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(real.name)
    _files.atomic_write_text(str(link), "new")
    assert link.is_symlink()
    assert real.read_text() == "new"
    _files.atomic_write_text(os.devnull, "into the void")  # not replaced by a regular file
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_dedup_cli_cleans_up_after_a_killed_run(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"text number {i}"}) + "\n" for i in range(5)))
    stale = tmp_path / (_files.temp_prefix("dedup", _dead_pid()) + "k1ll3d00.tmp")
    stale.write_text('{"prompt": "text num')  # SIGKILL mid-write
    _aged(stale)
    assert main(["dedup", str(src), "-o", str(tmp_path / "out.jsonl"), "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]
    capsys.readouterr()
