"""Test harness shared by every test.

- Triton: without a CUDA device, ``TRITON_INTERPRET=1`` is set here, before any kernel module
  is imported (Triton reads it when the kernels are decorated), so ``interpreter`` tests run
  the real kernels on CPU tensors. On a CUDA machine it is left alone and those tests skip.
- Hypothesis: profiles ``dev`` (fast, random, the default) and ``ci`` (thorough,
  derandomized), chosen by ``FASTALIGN_HYPOTHESIS_PROFILE``; both without a deadline (JIT
  compilation and first-call costs would make a deadline flaky).
- Markers: ``gpu`` (skipped without CUDA), ``interpreter`` (skipped when kernels would not run
  in the interpreter), ``slow``.
- Isolation: no test reads the network or a user's caches. The Hugging Face hubs are offline
  and every cache a test could touch (Hugging Face, Triton, TorchInductor, matplotlib) lives in
  a fresh folder of this run, removed at exit; subprocesses inherit the same settings.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

_CACHE = tempfile.mkdtemp(prefix="fastalign-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
for _var, _sub in {
    "HF_HOME": "huggingface",
    "TRITON_CACHE_DIR": "triton",
    "TORCHINDUCTOR_CACHE_DIR": "inductor",
    "MPLCONFIGDIR": "matplotlib",
}.items():
    os.environ[_var] = os.path.join(_CACHE, _sub)
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

_HAS_TORCH = importlib.util.find_spec("torch") is not None
_HAS_TRITON = importlib.util.find_spec("triton") is not None

if _HAS_TORCH:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
else:  # pragma: no cover - torch is a test dependency
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
_INTERPRETER = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    print_blob=True,
    derandomize=True,  # the same examples on every CI run: a red CI is reproducible
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("FASTALIGN_HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_interp = pytest.mark.skip(
        reason="Triton kernels run in the interpreter only without CUDA and with triton installed"
    )
    for item in items:
        if "gpu" in item.keywords and not _HAS_CUDA:
            item.add_marker(skip_gpu)
        if "interpreter" in item.keywords and not (_HAS_TRITON and _INTERPRETER and not _HAS_CUDA):
            item.add_marker(skip_interp)


def _devices() -> list[str]:
    return ["cpu", "cuda"] if _HAS_CUDA else ["cpu"]


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> str:
    """Every device torch can use here: ``cpu``, plus ``cuda`` on a GPU machine."""
    return request.param
