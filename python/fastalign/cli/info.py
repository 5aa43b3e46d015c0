"""``fastalign info``: versions, backends, CUDA / Triton status, CPU features."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
from typing import Any

from fastalign import __version__, _backend, _core

# Packages whose presence changes what fastalign can compare against or integrate with.
_OPTIONAL = (
    "numpy",
    "torch",
    "triton",
    "transformers",
    "trl",
    "liger-kernel",
    "cut-cross-entropy",
    "sacrebleu",
    "datasketch",
    "rensa",
    "choix",
    "pymoo",
    "moocore",
    "scipy",
)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect() -> dict[str, Any]:
    info: dict[str, Any] = {
        "fastalign": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_features": _core.sys_cpu_features(),
        "rust_threads": _core.sys_num_threads(),
        "packages": {name: _version(name) for name in _OPTIONAL},
    }
    cuda: dict[str, Any] = {"available": False}
    if importlib.util.find_spec("torch") is not None:
        import torch

        cuda["available"] = torch.cuda.is_available()
        cuda["torch_cuda_build"] = torch.version.cuda
        if cuda["available"]:
            cuda["devices"] = [
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            ]
    info["cuda"] = cuda
    info["triton"] = {
        "installed": _backend.triton_installed(),
        "interpreter": _backend.triton_interpreter(),
    }
    backends = ["reference", "torch"] if info["packages"]["torch"] else []
    if _backend.triton_installed() and (cuda["available"] or _backend.triton_interpreter()):
        backends.append("triton")
    info["backends"] = backends
    info["auto_backend"] = {
        "cpu": "torch" if backends else None,
        "cuda": ("triton" if "triton" in backends else "torch") if cuda["available"] else None,
    }
    return info


def format_info(info: dict[str, Any]) -> str:
    lines = [
        f"fastalign {info['fastalign']}  (python {info['python']}, {info['platform']})",
        f"backends available: {', '.join(info['backends']) or 'none (install torch)'}",
        f"auto backend: cpu -> {info['auto_backend']['cpu']}, "
        f"cuda -> {info['auto_backend']['cuda'] or 'no CUDA device'}",
    ]
    cuda = info["cuda"]
    if cuda["available"]:
        lines.append(f"CUDA: {', '.join(cuda['devices'])} (torch CUDA {cuda['torch_cuda_build']})")
    else:
        build = cuda.get("torch_cuda_build")
        lines.append("CUDA: no device" + (f" (torch built for CUDA {build})" if build else ""))
    t = info["triton"]
    lines.append(
        f"Triton: {'installed' if t['installed'] else 'not installed'}"
        + (", interpreter on (TRITON_INTERPRET=1)" if t["interpreter"] else "")
    )
    lines.append(f"CPU features: {' '.join(info['cpu_features']) or 'none detected'}")
    lines.append(f"Rust core threads: {info['rust_threads']}")
    lines.append("packages:")
    for name, ver in info["packages"].items():
        lines.append(f"  {name:<18} {ver or '-'}")
    return "\n".join(lines)


def run(args: Any) -> int:
    import json

    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="versions, backends, CUDA/Triton status, CPU features")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)
