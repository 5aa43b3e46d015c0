"""Vocab-parallel token_logps on gloo vs the unsharded op, on one machine.

    python benches/vocab_parallel.py [--n 4096 --h 1024 --v 32000 --world 2 --repeat 3]

Forward + backward (log-probs and entropy, an arbitrary upstream gradient), fp32 on CPU. The
unsharded row runs in one process with ``world`` threads; the sharded row runs ``world``
processes of one thread each (the same cores), each holding ``V / world`` rows of the head.
Both rows' outputs are compared (max relative error of log-probs and the hidden gradient).
Communication is counted from the algorithm: per token, forward 1 float (all-reduce MAX) + 3
floats (all-reduce SUM: sum-exp, target logit, entropy term), backward H floats (the hidden
gradient); an all-reduce over ``world`` ranks moves about 2 (world - 1) / world times that.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _inputs(n, h, v):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, h, generator=g)
    weight = torch.randn(v, h, generator=g) / h**0.5
    labels = torch.randint(0, v, (n,), generator=g)
    grad = torch.randn(n, generator=g)
    return hidden, weight, labels, grad


def _step(hidden, weight, labels, grad, **kw):
    import fastalign

    hid = hidden.detach().requires_grad_(True)
    w = weight.detach().requires_grad_(True)
    lp, ent = fastalign.token_logps(hid, w, labels, return_entropy=True, **kw)
    ((lp * grad).sum() + 0.1 * ent.sum()).backward()
    return lp.detach(), hid.grad


def _time(fn, repeat, barrier=None):
    fn()
    times = []
    for _ in range(repeat):
        if barrier:
            barrier()
        t0 = time.perf_counter()
        out = fn()
        if barrier:
            barrier()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _rank(rank, world, args, init, q):
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    hidden, weight, labels, grad = _inputs(args.n, args.h, args.v)
    rows = torch.tensor_split(torch.arange(args.v), world)[rank]
    w = weight[rows].contiguous()
    t, (lp, dh) = _time(
        lambda: _step(hidden, w, labels, grad, process_group=dist.group.WORLD),
        args.repeat,
        barrier=dist.barrier,
    )
    if rank == 0:
        q.put((t, lp.numpy(), dh.numpy()))  # by value: the rank exits right after
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--h", type=int, default=1024)
    p.add_argument("--v", type=int, default=32000)
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args()

    torch.set_num_threads(a.world)
    hidden, weight, labels, grad = _inputs(a.n, a.h, a.v)
    t_full, (lp0, dh0) = _time(lambda: _step(hidden, weight, labels, grad), a.repeat)

    import tempfile

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [
            ctx.Process(target=_rank, args=(r, a.world, a, f"{tmp}/init", q))
            for r in range(a.world)
        ]
        for pr in procs:
            pr.start()
        t_par, lp1, dh1 = q.get(timeout=1800)
        lp1, dh1 = torch.from_numpy(lp1), torch.from_numpy(dh1)
        for pr in procs:
            pr.join()
    err = max(
        float((lp1 - lp0).abs().max() / lp0.abs().max()),
        float((dh1 - dh0).abs().max() / dh0.abs().max()),
    )
    fwd_floats, bwd_floats = 4, a.h
    factor = 2 * (a.world - 1) / a.world
    result = {
        "shape": {"N": a.n, "H": a.h, "V": a.v, "world": a.world, "dtype": "fp32"},
        "unsharded_s": t_full,
        "sharded_s": t_par,
        "overhead": t_par / t_full,
        "max_rel_err": err,
        "floats_per_token": {"forward": fwd_floats, "backward": bwd_floats},
        "bytes_per_token_moved_per_rank": 4 * (fwd_floats + bwd_floats) * factor,
    }
    print(
        f"N={a.n} H={a.h} V={a.v} fp32, fwd+bwd: unsharded ({a.world} threads) "
        f"{t_full * 1e3:.0f} ms; vocab-parallel ({a.world} ranks x 1 thread, gloo) "
        f"{t_par * 1e3:.0f} ms ({t_par / t_full:.2f}x); max rel err {err:.1e}; per token "
        f"{fwd_floats} floats forward + {bwd_floats} backward all-reduced "
        f"(~{result['bytes_per_token_moved_per_rank']:.0f} B moved per rank)"
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
