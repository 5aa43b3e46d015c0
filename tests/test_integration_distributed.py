"""The sharded-head path on one CPU machine: 2 processes (torch.distributed, gloo), the LM
head a DTensor sharded by vocabulary rows (as FSDP2 holds it). TRL's fused forward with
fastalign enabled, and fastalign.integrations.hf.sequence_logps, gather it; the log-probs and
every gradient (the local shard of the head's) equal the unsharded float64 run's."""

from __future__ import annotations

import copy
import traceback

import pytest
import torch
import torch.distributed as dist

pytest.importorskip("trl")

from _distributed import spawn_ranks

WORLD = 2


def _worker(rank: int, world: int, init_file: str, errors) -> None:
    try:
        dist.init_process_group(
            "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD
        )
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Shard, distribute_tensor
        from trl.trainer.utils import add_fused_lm_head

        import fastalign.integrations.trl as fa_trl
        from fastalign.bench import tiny_lm
        from fastalign.integrations.hf import sequence_logps

        torch.set_num_threads(1)
        tok = tiny_lm.make_tokenizer()
        base = tiny_lm.make_llama(tok, hidden_size=16, seed=0).double()
        g = torch.Generator().manual_seed(5)
        ids = torch.randint(4, len(tok), (3, 10), generator=g)
        mask = torch.ones_like(ids)
        mask[0, :2] = 0
        labels = ids.masked_fill(mask == 0, -100)
        labels[1, :5] = -100
        mesh = init_device_mesh("cpu", (WORLD,))
        fa_trl.enable()
        try:
            for path in ("trl", "hf"):
                results = []
                for sharded in (False, True):
                    model = copy.deepcopy(base)
                    if path == "trl":
                        add_fused_lm_head(model, outputs=("log_probs", "entropy"))
                    if sharded:
                        w = model.lm_head.weight
                        model.lm_head.weight = torch.nn.Parameter(
                            distribute_tensor(w.detach(), mesh, [Shard(0)])
                        )
                    if path == "trl":
                        out = model(
                            input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True
                        )
                        lp, ent = out.log_probs, out.entropy
                        loss = lp.sum() + 0.1 * ent.sum()
                    else:
                        lp = sequence_logps(model, ids, mask, labels)
                        loss = lp.sum()
                    loss.backward()
                    head = model.lm_head.weight.grad
                    if sharded:
                        head = head.to_local()
                    q = model.model.layers[0].self_attn.q_proj.weight.grad
                    results.append((lp.detach(), head, q))
                (lp0, head0, q0), (lp1, head1, q1) = results
                torch.testing.assert_close(lp1, lp0, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(q1, q0, rtol=1e-10, atol=1e-12)
                # this rank's rows of the full head gradient
                rows = torch.tensor_split(torch.arange(head0.shape[0]), WORLD)[rank]
                assert head1.shape[0] == len(rows)
                torch.testing.assert_close(head1, head0[rows], rtol=1e-10, atol=1e-12)
        finally:
            fa_trl.disable()
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        errors.put(f"rank {rank}:\n{traceback.format_exc()}")
        raise


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_dtensor_sharded_head_two_processes(tmp_path):
    msgs, codes = spawn_ranks(_worker, WORLD, tmp_path, timeout=300)
    assert not msgs, "\n".join(msgs)
    assert codes == [0] * WORLD
