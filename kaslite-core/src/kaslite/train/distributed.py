"""``kaslite run`` on several processes, launched by PyTorch's own ``torchrun``.

torchrun starts one process per rank with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous in the environment; :func:`start` joins its
process group (gloo on the CPU, NCCL on CUDA, one GPU per local rank). Every
rank trains the same network on its share of each batch under
``DistributedDataParallel``; the Grower has rank 0 take each growth decision
and broadcast it. Rank 0 alone writes the run folder, the checkpoints and
the trackers' output; every rank reads the checkpoint to resume.
"""

import os
from typing import Any

import torch
import torch.distributed as dist

from kaslite.errors import KasliteError


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether this process is in a process group of several."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_writer() -> bool:
    """Rank 0 (or the only process): the one that writes files and talks to trackers."""
    return rank() == 0


def start(device: torch.device) -> torch.device:
    """Join torchrun's process group (once); the device this rank trains on."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def from_rank_zero(value: Any) -> Any:
    """``value`` as rank 0 has it (the value itself in a single process)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def summed(device: torch.device, *values: float) -> list[float]:
    """Each value summed over the ranks (as it is in a single process); ``device``: where NCCL wants it."""
    if not active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def check_replicas_agree(model: torch.nn.Module) -> None:
    """Every rank ends with the same parameters (DDP keeps them so); a clear error if one drifted."""
    if not active():
        return
    with torch.no_grad():
        mine = torch.stack([p.detach().double().sum() for p in model.parameters()])
    everyone = [torch.zeros_like(mine) for _ in range(world_size())]
    dist.all_gather(everyone, mine)
    for other, theirs in enumerate(everyone):
        if not torch.allclose(theirs, everyone[0], rtol=1e-6, atol=1e-9):  # bitwise in practice
            raise KasliteError(f"rank {other}'s parameters differ from rank 0's at the end of the run")
