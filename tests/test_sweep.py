"""A bad-input sweep of the public API (the table and its classes of bad values are in
tests/_sweep.py): every public callable, each spoiled argument, each class of bad value, run in
a process of its own per callable with a timeout, so that a hang or an abort is a failure with
its case named, not a stuck or dead test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import _sweep

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 300


def test_every_public_callable_has_rows():
    """A new public function without rows in the table fails here."""
    rows = set(_sweep._rows())
    missing = sorted(
        n for n in _sweep.public_callables() if n not in rows and n not in _sweep.NOT_SWEPT
    )
    assert missing == [], f"add rows to tests/_sweep.py for {missing}"


AREAS = sorted({name.split(".")[0] for name in _sweep._rows()})


@pytest.mark.slow
@pytest.mark.parametrize("area", AREAS)
def test_bad_input_is_refused_by_name(area):
    """One process per area (importing torch once), every row of the area in it."""
    names = sorted(n for n in _sweep._rows() if n.split(".")[0] == area)
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "_sweep.py"), *names],
            capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        lines = (e.stdout or b"").decode(errors="replace").splitlines()
        last = json.loads(lines[-1])["case"] if lines else "before the first case"
        pytest.fail(f"hung (> {TIMEOUT_S} s) at {last}")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        last = results[-1]["case"] if results else "before the first case"
        pytest.fail(f"the process died (exit {proc.returncode}) at {last}:\n{proc.stderr[-2000:]}")
    done = [r for r in results if r["status"] != "started"]
    swept = {r["case"].split("(")[0] for r in done}
    assert swept == {n for n in names if _sweep._rows()[n].spoil}, proc.stderr[-2000:]
    bad = [r for r in done if r["status"] != "ok"]
    assert not bad, "\n".join(
        f"{r['case']}: {r['why']} {r.get('raised', '')}\n{r.get('trace', '')}" for r in bad
    )
