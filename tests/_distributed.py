"""Spawning a torch.distributed test group: ``world`` CPU processes (gloo, file init), each
running ``worker(rank, world, init_file, *args, errors)``; a worker reports failures (and
any message) on ``errors``."""

from __future__ import annotations

import os
import sys
import traceback

import torch.multiprocessing as mp


def spawn_ranks(worker, world, tmp_path, *args, timeout=240):
    """Runs the group; returns (messages the ranks put on the queue, exit codes). A rank
    still alive after ``timeout`` seconds is killed and reported as hung."""
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    init = str(tmp_path / "init")
    procs = [
        ctx.Process(target=_rank_main, args=(worker, (rank, world, init, *args, errors)))
        for rank in range(world)
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


def _rank_main(worker, args):
    """Runs one rank and leaves with ``os._exit``: 0 when the worker returned, 1 when it
    raised (it has put its traceback on the queue; printed here too). Skipping the
    interpreter's teardown matters: with gloo, a rank that has already destroyed its process
    group could still abort at exit ("terminate called without an active exception", exit
    -6) when torch's C++ threads were torn down, about once in a few hundred runs under load,
    which failed a test whose every check had passed."""
    code = 0
    try:
        worker(*args)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
