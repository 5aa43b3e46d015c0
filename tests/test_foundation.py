"""Package-level guarantees: version, cheap import, the error and panic mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import fastalign
from fastalign import _core
from fastalign.errors import (
    ConvergenceError,
    FastalignError,
    InternalError,
    InvalidInputError,
    ShapeError,
)

ROOT = Path(__file__).resolve().parents[1]


def test_version_has_one_source():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert fastalign.__version__ == cargo["workspace"]["package"]["version"]
    assert fastalign.__version__ == _core.__version__


def test_import_is_cheap():
    code = (
        "import sys, fastalign\n"
        "heavy = [m for m in ('torch', 'triton', 'numpy', 'fastalign.kernels') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_all_names_resolve():
    for name in fastalign.__all__:
        assert getattr(fastalign, name) is not None
    assert set(fastalign.__all__) <= set(dir(fastalign))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fastalign.nope


@pytest.mark.parametrize(
    ("kind", "exc", "builtin", "message"),
    [
        ("invalid", InvalidInputError, ValueError, "debug: invalid argument"),
        ("shape", ShapeError, ValueError, "debug: shape mismatch"),
        ("nonfinite", InvalidInputError, ValueError, "non-finite value (NaN) at row 3"),
        ("convergence", ConvergenceError, RuntimeError, "debug: no convergence"),
    ],
)
def test_core_errors_become_python_exceptions(kind, exc, builtin, message):
    with pytest.raises(exc) as info:
        _core.sys_debug_fail(kind)
    assert isinstance(info.value, FastalignError)
    assert isinstance(info.value, builtin)
    assert message in str(info.value)


def test_panic_becomes_internal_error_with_message():
    with pytest.raises(InternalError, match="deliberate panic inside fastalign-core"):
        _core.sys_debug_fail("panic")
    # the interpreter survives and the module still works after a panic
    _core.sys_debug_fail("ok")
    assert _core.sys_num_threads() >= 1


def test_panic_does_not_abort_a_fresh_process():
    code = (
        "from fastalign import _core\n"
        "from fastalign.errors import InternalError\n"
        "try:\n"
        "    _core.sys_debug_fail('panic')\n"
        "except InternalError as e:\n"
        "    print('caught:', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "caught: internal error in fastalign's Rust core" in proc.stdout
    assert "deliberate panic" in proc.stdout


def test_cpu_features_are_strings():
    feats = _core.sys_cpu_features()
    assert all(isinstance(f, str) for f in feats)
