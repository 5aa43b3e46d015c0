"""The kernels ship inside the wheel, the wheel works in a fresh virtual environment, and no
folder of the repository shadows an installed package.

The Triton sources live in the top-level ``kernels/`` folder (the design card's layout), which
has no ``__init__.py``: from the repository root it is at most a namespace portion, which
Python ranks below every regular package of the same name anywhere on ``sys.path`` (Hugging
Face's ``kernels``, which transformers imports, is one). ``python/fastalign/kernels/`` is the
real package: its ``__init__.py`` plus one file symlink per kernel module, which maturin
follows when it builds the wheel (it does not follow directory symlinks).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels"
LINKS = ROOT / "python" / "fastalign" / "kernels"


def test_every_kernel_module_is_linked_into_the_package():
    sources = sorted(p.name for p in KERNELS.glob("*.py"))
    links = sorted(p.name for p in LINKS.iterdir() if p.suffix == ".py" and p.name != "__init__.py")
    assert sources == links, "run: cd python/fastalign/kernels && ln -sf ../../../kernels/X.py ."
    for name in sources:
        link = LINKS / name
        assert link.is_symlink(), f"{link} must be a symlink to kernels/{name}"
        assert link.resolve() == (KERNELS / name).resolve()
    extra = [p.name for p in LINKS.iterdir() if p.suffix != ".py" and p.name != "__pycache__"]
    assert extra == []
    # The package's __init__ is a real file and the top-level folder has none: the folder
    # must never be a regular package named ``kernels``.
    assert not (LINKS / "__init__.py").is_symlink()
    assert not (KERNELS / "__init__.py").exists()


# Folders that some entry point puts at the front of sys.path: the root (``python -m ...`` and
# ``python -c`` started there, pytest's rootdir), the test folders (pytest's default
# "prepend" import mode inserts each test file's folder) and the script folders
# (``python benches/x.py`` puts benches/ first).
_PATH_FOLDERS = ["", "tests", "tests/gpu", "benches", "examples"]


def _importable_names(folder: Path) -> set[str]:
    """Names a regular import could find in ``folder``: modules, extension modules and
    packages with an ``__init__``. (Folders without one are namespace portions: they never
    shadow a regular package.)"""
    names = set()
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix in (".py", ".pyc", ".so", ".pyd"):
            names.add(entry.name.split(".")[0])
        elif entry.is_dir() and any((entry / f"__init__{x}").exists() for x in (".py", ".pyc")):
            names.add(entry.name)
    return names


def test_no_repository_folder_shadows_an_installed_or_stdlib_module():
    installed = set(importlib.metadata.packages_distributions())
    assert "numpy" in installed  # the mapping is real
    assert _importable_names(ROOT) == set(), "the root must hold no importable module/package"
    for top in ROOT.iterdir():
        if top.is_dir() and not top.name.startswith("."):
            assert not (top / "__init__.py").exists(), f"{top.name}/ must not be a package"
    for rel in _PATH_FOLDERS:
        names = _importable_names(ROOT / rel)
        clash = sorted(names & (installed | set(sys.stdlib_module_names)))
        assert clash == [], f"{rel or '.'}/ shadows installed or stdlib modules: {clash}"


_SHADOW_CHECK = """
import importlib.metadata, os, sys
import kernels
# The regular package from site-packages, not the repository's top-level folder.
if {hf_kernels}:
    assert kernels.__file__ and "site-packages" in kernels.__file__, kernels
    importlib.metadata.version("kernels")
import transformers.activations  # imports `from kernels import ...` on transformers 5
import fastalign.kernels
import fastalign.kernels.selective_log_softmax as k
assert os.path.realpath(k.__file__) == os.path.realpath({source!r}), k.__file__
print("imports ok")
"""


@pytest.mark.parametrize("how", ["-c", "-m"])
def test_repository_root_on_sys_path_keeps_installed_kernels_and_fastalign_kernels(how, tmp_path):
    """From the repository root (on sys.path first), ``import transformers.activations``
    (which imports Hugging Face's ``kernels``) and ``import fastalign.kernels`` both work."""
    # transformers >= 5 depends on `kernels` where the lock resolves it (CPython >= 3.11).
    hf_kernels = sys.version_info >= (3, 11)
    code = _SHADOW_CHECK.format(
        hf_kernels=hf_kernels, source=str(KERNELS / "selective_log_softmax.py")
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TRITON_INTERPRET"] = "1"
    if how == "-c":
        cmd = [sys.executable, "-c", code]
    else:  # ``python -m`` puts the working directory first, PYTHONPATH after it
        (tmp_path / "_fastalign_shadow_check.py").write_text(code)
        env["PYTHONPATH"] = str(tmp_path)
        cmd = [sys.executable, "-m", "_fastalign_shadow_check"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "imports ok" in proc.stdout


@pytest.mark.slow
def test_wheel_installs_and_imports_kernels_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "--quiet", "-o", str(dist)],
        check=True,
        cwd=ROOT,
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert "-cp310-abi3-" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for src in KERNELS.glob("*.py"):
            member = f"fastalign/kernels/{src.name}"
            assert member in names, f"{member} missing from the wheel"
            assert zf.read(member) == src.read_bytes()
        assert "fastalign/py.typed" in names
        assert "fastalign/_core.pyi" in names
        assert "fastalign/bench/data/prefdata.jsonl.gz" in names  # the bench's shipped data
        assert "fastalign/bench/data/LICENSE" in names
        assert not any(n.startswith("kernels/") for n in names), "no top-level kernels package"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    # The fresh venv sees this environment's third-party packages (torch, triton, numpy)
    # through a folder of links to them, leaving out every fastalign file and .pth hook, so
    # the only fastalign it can import is the wheel just installed.
    shared = tmp_path / "shared-site"
    shared.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if "fastalign" in name or name.endswith(".pth") or name.startswith("__editable__"):
            continue
        (shared / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    venv_site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(venv_site, "_fastalign_test_shared.pth").write_text(str(shared) + "\n")

    # Runs the installed kernel (in the Triton interpreter: this machine may have no GPU)
    # through the public API and checks it against the reference path.
    check = (
        "import os, sys\n"
        "import fastalign\n"
        "assert fastalign.__file__.startswith(sys.prefix), fastalign.__file__\n"
        "assert 'triton' not in sys.modules and 'torch' not in sys.modules\n"
        "import fastalign.kernels.selective_log_softmax as k\n"
        "assert k.__file__.startswith(sys.prefix), k.__file__\n"
        "assert not os.path.islink(k.__file__), k.__file__\n"
        "import torch\n"
        "x = torch.randn(5, 37)\n"
        "y = torch.tensor([0, 36, 5, -100, 17])\n"
        "got = fastalign.logps_from_logits(x, y, backend='triton')\n"
        "want = fastalign.logps_from_logits(x, y, backend='reference')\n"
        "torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)\n"
        "print('kernel ok', fastalign.__version__, fastalign.pareto.pama([[1.0, 2.0]]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TRITON_INTERPRET"] = "1"

    def fresh(*cmd: str) -> str:  # in the fresh venv, away from the clone
        return subprocess.run(
            cmd, check=True, capture_output=True, text=True, env=env, cwd=tmp_path
        ).stdout

    out = fresh(str(py), "-c", check)
    assert "kernel ok" in out
    assert "[1.]" in out
    assert "Triton: installed" in fresh(str(venv / "bin" / "fastalign"), "info")


@pytest.mark.interpreter
def test_device_script_runs_at_tiny_size_in_the_interpreter(tmp_path):
    """benches/gpu_head.py is ready for the one GPU run: here every phase but the GPU tests
    runs on CPU (Triton interpreter, tiny sizes: the smoke checks, the kernel pieces, both
    tables, both end-to-end TRL arms in their own processes) and writes the Markdown and the
    JSON rows the issue asks for, with the keys it names."""
    env = dict(os.environ, TRITON_INTERPRET="1", OUT=str(tmp_path))
    cmd = [sys.executable, str(ROOT / "benches" / "gpu_head.py"), "--size", "tiny"]
    cmd += ["--phases", "smoke,kernels,tables,trl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (md,) = tmp_path.glob("gpu_head_*.md")
    text = md.read_text()
    assert "FAILED" not in text, text
    assert "\nFAIL " not in text, text
    for heading in ("## smoke", "## a. kernel pieces", "## token_logps", "## fused DPO", "## c."):
        assert heading in text, heading
    report = json.loads(next(tmp_path.glob("gpu_head_*.json")).read_text())
    keys = {(r["op"], r["impl"]) for r in report["rows"]}
    for op in ("token_logps", "fused_dpo"):
        assert {(op, "floor"), (op, "naive"), (op, "trl"), (op, "fastalign")} <= keys, keys
    assert {("trl_dpo_step:tiny", "stock"), ("trl_dpo_step:tiny", "fastalign")} <= keys
    for r in report["rows"]:
        assert set(r) == {"op", "impl", "median_ms", "peak_mb", "max_err"}
        assert r["median_ms"] > 0, r
    (e2e,) = report["trl"]
    assert e2e["loss_max_abs_diff"] < 1e-4, e2e  # fp32 on CPU: the same losses
    pieces = {k["piece"] for k in report["kernels"]}
    assert any(p.startswith("GEMM logits tile") for p in pieces), pieces


def test_the_suite_runs_offline_with_its_own_caches():
    """tests/conftest.py keeps every test (and its subprocesses) off the hubs and out of the
    user's caches: a test that passes here passes on a machine with an empty home folder."""
    import tempfile

    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE
    for var in ("HF_HOME", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "MPLCONFIGDIR"):
        path = Path(os.environ[var]).resolve()
        assert path.is_relative_to(Path(tempfile.gettempdir()).resolve()), (var, path)
        assert not path.is_relative_to(Path.home().resolve() / ".cache"), (var, path)
