"""The kernels ship inside the wheel, and the wheel works in a fresh virtual environment.

The Triton sources live in the top-level ``kernels/`` folder (the design card's layout);
``python/fastalign/kernels/`` holds one file symlink per kernel module, which maturin follows
when it builds the wheel (it does not follow directory symlinks). The first test keeps the two
folders in step; the second builds the real wheel and imports the kernels from a fresh venv.
"""

from __future__ import annotations

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
    links = sorted(p.name for p in LINKS.iterdir() if p.suffix == ".py")
    assert sources == links, "run: cd python/fastalign/kernels && ln -sf ../../../kernels/X.py ."
    for name in sources:
        link = LINKS / name
        assert link.is_symlink(), f"{link} must be a symlink to kernels/{name}"
        assert link.resolve() == (KERNELS / name).resolve()
    extra = [p.name for p in LINKS.iterdir() if p.suffix != ".py" and p.name != "__pycache__"]
    assert extra == []


@pytest.mark.slow
def test_wheel_installs_and_imports_kernels_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
        ],
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
    out = subprocess.run(
        [str(py), "-c", check],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert "kernel ok" in out.stdout
    assert "[1.]" in out.stdout
    info = subprocess.run(
        [str(venv / "bin" / "fastalign"), "info"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert "Triton: installed" in info.stdout


@pytest.mark.interpreter
def test_gpu_script_runs_at_tiny_size_in_the_interpreter(tmp_path):
    """benches/gpu_logprobs.py is ready for the one GPU run: here it runs end to end on CPU
    (Triton interpreter, tiny sizes) and writes its table with a correct Triton row."""
    env = dict(os.environ, TRITON_INTERPRET="1", OUT=str(tmp_path))
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benches" / "gpu_logprobs.py"),
            "--size",
            "tiny",
            "--skip-tests",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (md,) = tmp_path.glob("gpu_logprobs_*.md")
    text = md.read_text()
    assert "fastalign triton" in text
    assert "FAIL" not in text
