"""Vocab-parallel token_logps under torch.distributed (gloo, 2 and 3 CPU processes): every
rank holds a contiguous slice of the head; log-probs, entropies and gradients (local head
slice, bias slice, full hidden) equal the unsharded float64 op (1e-10; fp32 1e-5), with V not
divisible by the world size and labels on every rank; inconsistent ranks raise on every rank
instead of hanging."""

from __future__ import annotations

import traceback

import pytest
import torch
import torch.distributed as dist

from _distributed import spawn_ranks

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="needs torch.distributed")


def _case(dtype, n=23, h=6, v=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64)
    weight = torch.randn(v, h, generator=g, dtype=torch.float64)
    bias = torch.randn(v, generator=g, dtype=torch.float64)
    labels = torch.randint(0, v, (n,), generator=g)
    labels[::5] = -100
    # labels on every slice of any world size up to 3: the first, last and middle rows
    labels[1], labels[2], labels[3] = 0, v - 1, v // 2
    g_lp = torch.randn(n, generator=g, dtype=torch.float64)
    g_ent = torch.randn(n, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (hidden, weight, bias)] + [labels, g_lp, g_ent]


def _run(hidden, weight, bias, labels, g_lp, g_ent, **kw):
    import fastalign

    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    lp, ent = fastalign.token_logps(h, w, labels, bias=b, return_entropy=True, **kw)
    ((lp.double() * g_lp).sum() + (ent.double() * g_ent).sum()).backward()
    return lp.detach(), ent.detach(), h.grad, w.grad, b.grad


def _worker(rank, world, init_file, scenario, errors):
    try:
        dist.init_process_group(
            "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
        )
        torch.set_num_threads(1)
        import fastalign
        from fastalign.errors import InvalidInputError

        if scenario == "triton":  # the Triton kernels (interpreter on CPU), fp32
            for kw in ({}, {"softcap": 3.0, "temperature": 0.7}):
                hidden, weight, bias, labels, g_lp, g_ent = _case(torch.float32, n=12, v=37)
                lp, ent, dh, dw, db = _run(
                    *(t.double() for t in (hidden, weight, bias)), labels, g_lp, g_ent, **kw
                )
                rows = torch.tensor_split(torch.arange(weight.shape[0]), world)[rank]
                got = _run(
                    hidden, weight[rows], bias[rows], labels, g_lp, g_ent,
                    process_group=dist.group.WORLD, backend="triton", **kw,
                )  # fmt: skip
                want = (lp, ent, dh, dw[rows], db[rows])
                for name, a, b in zip(("logp", "ent", "dh", "dw", "db"), want, got, strict=True):
                    err = float((b.double() - a).abs().max()) / max(float(a.abs().max()), 1.0)
                    assert err <= 1e-5, (kw, name, err)
        elif scenario == "dtensor":  # a DTensor head sharded by rows, as FSDP2 / TP hold it
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.tensor import Shard, distribute_tensor

            mesh = init_device_mesh("cpu", (world,))
            hidden, weight, bias, labels, g_lp, g_ent = _case(torch.float64)
            lp, ent, dh, dw, db = _run(hidden, weight, bias, labels, g_lp, g_ent)
            w = torch.nn.Parameter(distribute_tensor(weight, mesh, [Shard(0)]))
            h = hidden.clone().requires_grad_(True)
            rows = torch.tensor_split(torch.arange(weight.shape[0]), world)[rank]
            lp1, ent1 = fastalign.token_logps(
                h, w.to_local(), labels, bias=bias[rows], return_entropy=True,
                process_group=mesh.get_group(),
            )  # fmt: skip
            ((lp1 * g_lp).sum() + (ent1 * g_ent).sum()).backward()
            torch.testing.assert_close(lp1, lp, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(h.grad, dh, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(w.grad.to_local(), dw[rows], rtol=1e-10, atol=1e-12)
        elif scenario == "equal":
            for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
                for kw in ({}, {"softcap": 3.0, "temperature": 0.7}, {"chunk_rows": 4}):
                    hidden, weight, bias, labels, g_lp, g_ent = _case(dtype)
                    full = _run(
                        *(t.double() for t in (hidden, weight, bias)), labels, g_lp, g_ent,
                        **{k: v for k, v in kw.items() if k != "chunk_rows"},
                    )  # fmt: skip
                    rows = torch.tensor_split(torch.arange(weight.shape[0]), world)[rank]
                    got = _run(
                        hidden, weight[rows], bias[rows], labels, g_lp, g_ent,
                        process_group=dist.group.WORLD, **kw,
                    )  # fmt: skip
                    lp, ent, dh, dw, db = full
                    want = (lp, ent, dh, dw[rows], db[rows])
                    for name, a, b in zip(("logp", "ent", "dh", "dw", "db"), want, got,
                                          strict=True):  # fmt: skip
                        scale = max(float(a.abs().max()), 1.0)
                        err = float((b.double() - a).abs().max()) / scale
                        assert err <= tol, (dtype, kw, name, err)
            # default tiles with slices of unequal size (37 rows over 2 or 3 ranks), so
            # unequal row blocks per rank: the collectives must not depend on them
            from fastalign.logprobs import _tiling

            _tiling._CPU_TILE_BYTES = 4 * 37 * 5  # 5 rows of the whole vocabulary per block
            hidden, weight, bias, labels, g_lp, g_ent = _case(torch.float64)
            full = _run(hidden, weight, bias, labels, g_lp, g_ent)
            rows = torch.tensor_split(torch.arange(weight.shape[0]), world)[rank]
            got = _run(
                hidden, weight[rows], bias[rows], labels, g_lp, g_ent,
                process_group=dist.group.WORLD,
            )  # fmt: skip
            torch.testing.assert_close(got[0], full[0], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(got[3], full[3][rows], rtol=1e-10, atol=1e-12)
            # sequence_logps forwards the group
            hidden, weight, bias, labels, *_ = _case(torch.float64)
            rows = torch.tensor_split(torch.arange(weight.shape[0]), world)[rank]
            seq = fastalign.sequence_logps(
                hidden.reshape(1, -1, hidden.shape[1]), weight[rows], labels.reshape(1, -1),
                bias=bias[rows], process_group=dist.group.WORLD,
            )  # fmt: skip
            want = fastalign.token_logps(hidden, weight, labels, bias=bias).sum()
            assert abs(float(seq[0] - want)) < 1e-10
        else:
            hidden, weight, bias, labels, *_ = _case(torch.float64)
            rows = torch.tensor_split(torch.arange(weight.shape[0]), world)[rank]
            w = weight[rows]
            if scenario == "different_n" and rank == 1:
                hidden, labels = hidden[:-1], labels[:-1]
            if scenario == "bad_dtype" and rank == 1:
                w = w.float()
            if scenario == "different_labels" and rank == 0:
                labels = labels.clone()
                labels[4] = (labels[4] + 1) % weight.shape[0]
            if scenario == "out_of_range":
                labels = labels.clone()
                labels[4] = weight.shape[0]  # beyond every slice
            with pytest.raises(InvalidInputError) as info:
                fastalign.token_logps(hidden, w, labels, process_group=dist.group.WORLD)
            errors.put(f"ok {rank}: {info.value}")
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        errors.put(f"rank {rank}:\n{traceback.format_exc()}")
        raise


def _spawn(world, scenario, tmp_path):
    return spawn_ranks(_worker, world, tmp_path, scenario)


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_equals_unsharded(tmp_path, world):
    msgs, codes = _spawn(world, "equal", tmp_path)
    assert not msgs, "\n".join(msgs)
    assert codes == [0] * world


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("different_n", "disagree on the hidden states"),
        ("bad_dtype", "rejected their inputs"),
        ("different_labels", "different labels"),
        ("out_of_range", "outside [0, 37)"),
    ],
)
def test_inconsistent_ranks_raise_everywhere(tmp_path, scenario, message):
    msgs, codes = _spawn(2, scenario, tmp_path)
    assert codes == [0, 0], msgs
    oks = [m for m in msgs if m.startswith("ok")]
    assert len(oks) == 2, msgs  # both ranks raised (neither hung)
    if scenario == "bad_dtype":  # the rank with the bad input names its own problem
        assert any("must share a dtype" in m for m in oks), oks
    assert any(message in m for m in oks), oks


@pytest.mark.interpreter
def test_sharded_triton_kernels_equal_unsharded(tmp_path):
    msgs, codes = _spawn(2, "triton", tmp_path)
    assert not msgs, "\n".join(msgs)
    assert codes == [0, 0]


def test_dtensor_sharded_head(tmp_path):
    """Megatron / DTensor style: pass the local shard (``to_local()``, differentiable) and
    the mesh's group; the DTensor parameter gets its shard of the full gradient."""
    msgs, codes = _spawn(2, "dtensor", tmp_path)
    assert not msgs, "\n".join(msgs)
    assert codes == [0, 0]
