"""The command line: `fastalign info`, `fastalign bench`, `python -m fastalign`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fastalign.cli import main


def test_info_text_and_json(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "backends available: reference, torch" in text
    assert "CPU features:" in text
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["auto_backend"]["cpu"] == "torch"
    assert info["packages"]["torch"]


def test_bench_only_pama_prints_a_table_and_json(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--only", "pama", "--no-progress", "--json", str(out_json)])
    assert code == 0
    table = capsys.readouterr().out
    assert "fastalign (rust)" in table
    assert "numpy (vectorized)" in table
    payload = json.loads(out_json.read_text())
    rows = payload["rows"]
    assert {r["impl"] for r in rows} == {"fastalign (rust)", "numpy (vectorized)"}
    assert all(r["ok"] for r in rows)
    assert all(r["max_err"] == 0.0 for r in rows)


def test_bench_plot_writes_a_png(tmp_path, capsys):
    png = tmp_path / "bench.png"
    assert main(["bench", "--quick", "--only", "pama", "--no-progress", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_unknown_workload_is_an_error(capsys):
    assert main(["bench", "--only", "nope", "--no-progress"]) == 2
    assert "unknown workload" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_quick_all_rows_correct(tmp_path):
    """The whole quick bench, as a user runs it: every row passes its correctness check."""
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fastalign", "bench", "--quick", "--json", str(out_json)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out_json.read_text())["rows"]
    assert rows
    # every row that ran is correct; only a peer that cannot run here may carry an error
    assert all(r["ok"] for r in rows if r["error"] is None), [r for r in rows if not r["ok"]]
    assert all(r["error"] is None for r in rows if r["impl"].startswith("fastalign"))
    assert {r["op"] for r in rows} >= {"pama", "logps_from_logits", "token_logps", "fused_dpo"}
    assert "baseline" in proc.stdout


def test_bench_plot_is_a_figure_a_person_reads(tmp_path):
    """One panel per workload family, log speed-up axis, failed rows marked, memory beside
    time: a figure of sane size for ~60 rows (the first one was 6048 x 540 px)."""
    import struct

    from fastalign.bench import Row
    from fastalign.bench._harness import fill_speedups
    from fastalign.bench.plot import plot

    rows = []
    for fam in ("token_logps", "fused_dpo", "bleu", "rank", "dedup", "pareto"):
        for wl in ("small", "a much longer workload description with many words"):
            rows.append(Row(fam, wl, "naive torch", 1.0, baseline=True, peak_mb=900.0))
            for k, impl in enumerate(("fastalign (rust)", "peer A", "peer B", "fastalign x")):
                rows.append(Row(fam, wl, impl, 0.5 / (k + 1), peak_mb=100.0 * (k + 1)))
    rows.append(Row("rank", "small", "broken peer", None, error="ImportError: no module"))
    rows.append(Row("bleu", "small", "fastalign wrong", 0.1, max_err=1.0, tol=1e-9))
    fill_speedups(rows)
    png = tmp_path / "bench.png"
    plot(rows, str(png))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 1000 < width < 2200, width
    assert height < 6000, height
