"""torchrun helpers: start the process group from the environment, shard work, gather results on rank 0.

Without torchrun (no WORLD_SIZE in the environment, or WORLD_SIZE=1) every function is a cheap no-op, so the
same code runs in one process. Under `torchrun --nproc_per_node N`, `init()` picks NCCL when CUDA is
available (one GPU per process, `cuda:LOCAL_RANK`) and gloo otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes (1 without torchrun)."""
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0, the process that writes files and prints."""
    return rank() == 0


def init(backend: str | None = None) -> bool:
    """Join the torchrun process group if there is one; returns True when running distributed."""
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def device(name: str = "auto") -> torch.device:
    """The device this process should use: its own GPU under torchrun, else `utils.pick_device(name)`."""
    from antispoof.utils import pick_device

    chosen = pick_device(name)
    if chosen.type == "cuda" and dist.is_initialized() and chosen.index is None:
        return torch.device("cuda", local_rank())
    return chosen


def shard(items: list, rank_: int | None = None, world: int | None = None) -> list:
    """This rank's share of `items`: every world-th item starting at the rank (disjoint, covers all)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    return items[rank_::world]


def gather(obj: Any) -> list[Any] | None:
    """Collect one picklable object from every rank: a list (rank order) on rank 0, None elsewhere."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj: Any) -> Any:
    """Send a picklable object from rank 0 to every rank; returns it everywhere."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_max(value: int) -> int:
    """The largest `value` over all ranks (e.g. the number of batches, so every rank loops as often)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.long, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (call once at the end of a torchrun script)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
