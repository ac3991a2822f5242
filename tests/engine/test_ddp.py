"""DDP: two gloo processes grow the same seeds at the same steps and end with identical parameters."""

import gc
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import kaslite
from kaslite.config import SeedConfig
from kaslite.nn import MorphogeneticNet

WORLD = 2


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # different initial weights: DDP and growth must make them agree
        # Shadow training long enough for the ranks' reservoirs (their own shards) to matter.
        config = SeedConfig(blend_steps=5, buffer_size=64, progress_thresh=0.1, shadow_lr=2e-2)
        net = MorphogeneticNet(2, 8, 2, 1, 2, blueprint_options={"hidden": 8}, seed_config=config, wide_seeds=1)
        model = DistributedDataParallel(net, find_unused_parameters=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        grower = kaslite.Grower(model, "kasmina", patience=1, delta=0.0, acc_threshold=1.0)
        g = torch.Generator().manual_seed(rank)  # each rank sees its own shard
        log = []
        for epoch in range(24):
            for _ in range(5):
                x, y = torch.randn(16, 2, generator=g), torch.randint(0, 2, (16,), generator=g)
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
                grower.step()
            # The ranks disagree: rank 0 sees a plateau, rank 1 a loss that keeps falling (no plateau
            # ever). Only rank 0's decisions, broadcast, make the ranks grow alike.
            val_loss = 1.0 if rank == 0 else 1.0 / (epoch + 1)
            made = grower.epoch_end(val_loss=val_loss, val_acc=0.5)
            log.append([(t.seed_id, t.to_state) for t in made])
        states = {sid: seed.state.value for sid, seed in grower.seeds.items()}
        torch.save({"params": net.state_dict(), "states": states, "log": log}, f"{out_dir}/rank{rank}.pt")
        dist.barrier()
        # DDP's reducer holds the process group: free it first, or the group's threads may still be
        # running when the interpreter exits (an abort at exit, about one run in five).
        del grower, optimizer, model
        gc.collect()
    finally:
        dist.destroy_process_group()


def test_two_ranks_grow_identically(tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    assert first["states"] == second["states"] == {"seed1_1": "active", "seed2_1": "active", "wide_1": "active"}
    assert first["log"] == second["log"]
    assert first["params"].keys() == second["params"].keys()
    for name, tensor in first["params"].items():
        assert torch.equal(tensor, second["params"][name]), name
