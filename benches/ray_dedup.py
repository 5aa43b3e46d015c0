"""Ray Data dedup (``fastalign.dedup.ray``) vs the single-process path, on one machine.

    python benches/ray_dedup.py [--docs 100000 --files 4 --verify none --json PATH]

Both rows do the whole job on the same Parquet files (the benchmark corpus of
``fastalign.bench.workloads.dedup``: 50-300 words per document, 30% planted near-duplicates):
read the files, find the clusters, write the kept rows as Parquet. The single-process row
reads with pyarrow and runs :func:`fastalign.dedup.dedup` on all cores; the Ray row starts a
local cluster with every core (not timed) and runs the pipeline. Both results are compared
(the clusters must be equal). The Ray run reports its stages, the bytes of its band-key
shuffle, and the peak resident memory of each Ray worker process (sampled every 50 ms from
/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np


def _ray_worker_peaks(stop: threading.Event, peaks: dict[int, float]) -> None:
    """Peak RSS (MB) of every process whose command line starts with ``ray::``."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read(64)
                if not cmd.startswith(b"ray::"):
                    continue
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            mb = int(line.split()[1]) / 1024
                            peaks[int(pid)] = max(peaks.get(int(pid), 0.0), mb)
            except OSError:
                continue
        stop.wait(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--verify", choices=("none", "minhash"), default="none")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from fastalign import dedup as fd
    from fastalign.bench.workloads.dedup import dedup_corpus
    from fastalign.dedup import ray as ray_dedup

    cores = os.cpu_count() or 1
    texts = dedup_corpus(args.docs, seed=0)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    work = tempfile.mkdtemp(prefix="fastalign-ray-bench-")
    src = os.path.join(work, "in")
    os.makedirs(src)
    bounds = np.linspace(0, len(texts), args.files + 1).astype(int)
    for k in range(args.files):
        a, b = bounds[k], bounds[k + 1]
        table = pa.table({"id": np.arange(a, b), "text": texts[a:b]})
        pq.write_table(table, os.path.join(src, f"part-{k:03d}.parquet"), row_group_size=10_000)
    del texts
    verify = False if args.verify == "none" else "minhash"
    print(f"{args.docs:,} docs, {mb:.0f} MB of text in {args.files} Parquet files, {cores} cores")

    # single process: read, dedup, write
    t0 = time.perf_counter()
    table = pq.read_table(src)
    single = fd.dedup(table.column("text").to_pylist(), threshold=args.threshold, verify=verify)
    pq.write_table(table.take(np.flatnonzero(single.keep)), os.path.join(work, "single.parquet"))
    t_single = time.perf_counter() - t0
    del table
    print(f"single process: {t_single:.2f} s ({args.docs / t_single:,.0f} docs/s)")

    # Ray: a local cluster with every core (startup not timed), then the pipeline
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    peaks: dict[int, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_ray_worker_peaks, args=(stop, peaks), daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    result = ray_dedup.dedup(
        src, threshold=args.threshold, verify=verify, output=os.path.join(work, "ray_out"),
        progress=lambda m: print("  " + m, flush=True),
    )  # fmt: skip
    t_ray = time.perf_counter() - t0
    stop.set()
    sampler.join()
    equal = bool(np.array_equal(result.cluster(), single.cluster))
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    worker_peaks = sorted(peaks.values(), reverse=True)
    out = {
        "docs": args.docs,
        "text_mb": round(mb, 1),
        "cores": cores,
        "verify": args.verify,
        "threshold": args.threshold,
        "bands": list(result.bands),
        "single_s": round(t_single, 3),
        "ray_s": round(t_ray, 3),
        "ray_over_single": round(t_ray / t_single, 2),
        "ray_docs_per_s": round(args.docs / t_ray),
        "ray_docs_per_s_per_core": round(args.docs / t_ray / cores),
        "single_docs_per_s": round(args.docs / t_single),
        "stages_s": {k: round(v, 3) for k, v in result.seconds.items()},
        "band_rows": result.band_rows,
        "shuffle_bytes": result.shuffle_bytes,
        "shuffle_bytes_per_doc": round(result.shuffle_bytes / args.docs, 1),
        "edges": result.edges,
        "rounds": result.rounds,
        "removed": result.removed,
        "clusters_equal": equal,
        "ray_worker_peak_rss_mb": [round(x) for x in worker_peaks[:8]],
        "ray_worker_processes": len(worker_peaks),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
