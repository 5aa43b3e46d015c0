"""Print the packages of a pinned requirements file (``uv pip compile`` output) whose version
uv.lock does not hold: what `make lock` would change. Usage: lock_drift.py REQUIREMENTS."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(requirements: str) -> int:
    lock = (Path(__file__).parents[1] / "uv.lock").read_text()
    locked: dict[str, set[str]] = {}
    # every [[package]] table starts with its name and version lines (no tomllib on 3.10)
    for name, version in re.findall(
        r'^\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', lock, re.M
    ):
        locked.setdefault(_norm(name), set()).add(version)
    drift = []
    for line in Path(requirements).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m and m.group(2) not in locked.get(_norm(m.group(1)), set()):
            have = ", ".join(sorted(locked.get(_norm(m.group(1)), set()))) or "not locked"
            drift.append(f"  {m.group(1)} {m.group(2)} (uv.lock: {have})")
    if drift:
        print(f"newest releases that uv.lock does not hold ({len(drift)}):")
        print("\n".join(drift))
    else:
        print("uv.lock holds the newest releases pyproject.toml allows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
