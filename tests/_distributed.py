"""Spawning a torch.distributed test group: ``world`` CPU processes (gloo, file init), each
running ``worker(rank, world, init_file, *args, errors)``; a worker reports failures (and
any message) on ``errors``."""

from __future__ import annotations

import torch.multiprocessing as mp


def spawn_ranks(worker, world, tmp_path, *args, timeout=240):
    """Runs the group; returns (messages the ranks put on the queue, exit codes). A rank
    still alive after ``timeout`` seconds is killed and reported as hung."""
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    init = str(tmp_path / "init")
    procs = [
        ctx.Process(target=worker, args=(rank, world, init, *args, errors)) for rank in range(world)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    msgs = []
    while not errors.empty():
        msgs.append(errors.get())
    for p in procs:
        if p.is_alive():
            p.kill()
            msgs.append("a rank hung")
    return msgs, [p.exitcode for p in procs]
