"""Peak resident memory of near-duplicate dedup, each implementation in a fresh process.

Each child builds the benchmark corpus (20k documents of 50-300 words by default, 30% planted
near-duplicates), records its RSS, runs one implementation end to end (Python strings in,
duplicate flags out; peers shingle in Python), and reports its peak RSS (``VmHWM``) above that
starting point: the memory the dedup itself needed.

Usage: ``python benches/dedup_memory.py [--docs N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys
from fastalign.bench.workloads import dedup as d

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
impl, n = sys.argv[1], int(sys.argv[2])
texts = d.dedup_corpus(n, seed=0)
if impl == "datasketch":
    import datasketch
elif impl == "rensa":
    import rensa
else:
    from fastalign import dedup
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
rss0 = status("VmRSS")
if impl == "datasketch":
    flags = d.datasketch_flags(texts)
elif impl == "rensa":
    flags = d.rensa_flags(texts)
else:
    flags = dedup.dedup(texts, threshold=0.8, verify=impl.split(":")[1]).cluster_sizes() > 1
print(json.dumps({"impl": impl, "peak_mb": status("VmHWM") - rss0, "dups": int(sum(flags))}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    results = []
    for impl in ("datasketch", "rensa", "fastalign:none", "fastalign:exact"):
        out = subprocess.run([sys.executable, "-c", CHILD, impl, str(args.docs)],
                             capture_output=True, text=True, check=False)  # fmt: skip
        if out.returncode != 0:
            print(f"{impl}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{r['impl']:<18} peak RSS +{r['peak_mb']:8.1f} MB   ({r['dups']} flagged)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"docs": args.docs, "rows": results}, f, indent=2)


if __name__ == "__main__":
    main()
