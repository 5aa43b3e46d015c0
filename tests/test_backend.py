"""Backend dispatch: explicit, visible, and never importing triton at resolve time."""

from __future__ import annotations

import pytest

from fastalign import _backend
from fastalign.errors import BackendUnavailableError, InvalidInputError


def test_auto_picks_torch_off_cuda():
    assert _backend.resolve("auto", "cpu") == "torch"


def test_auto_picks_triton_on_cuda_when_installed(monkeypatch):
    monkeypatch.setattr(_backend, "triton_installed", lambda: True)
    assert _backend.resolve("auto", "cuda") == "triton"
    assert _backend.resolve("auto", "cuda", triton_ok=False) == "torch"
    monkeypatch.setattr(_backend, "triton_installed", lambda: False)
    assert _backend.resolve("auto", "cuda") == "torch"


@pytest.mark.parametrize("name", ["torch", "reference"])
def test_explicit_portable_backends(name):
    assert _backend.resolve(name, "cpu") == name
    assert _backend.resolve(name, "cuda") == name


def test_triton_on_cpu_needs_interpreter(monkeypatch):
    monkeypatch.setattr(_backend, "triton_installed", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="needs CUDA tensors"):
        _backend.resolve("triton", "cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _backend.resolve("triton", "cpu") == "triton"
    with pytest.raises(InvalidInputError, match="does not support"):
        _backend.resolve("triton", "cpu", triton_ok=False)


def test_triton_not_installed(monkeypatch):
    monkeypatch.setattr(_backend, "triton_installed", lambda: False)
    with pytest.raises(BackendUnavailableError, match="needs the triton package"):
        _backend.resolve("triton", "cuda")


def test_bad_backend_names():
    with pytest.raises(InvalidInputError, match="backend must be one of"):
        _backend.resolve("cuda", "cpu")
    with pytest.raises(TypeError, match="backend must be a str"):
        _backend.resolve(None, "cpu")  # type: ignore[arg-type]
