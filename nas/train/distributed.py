"""``torch.distributed`` set-up for commands that may run under ``torchrun``.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`init_distributed` joins the
process group — the device's profiler backend names it: NCCL on CUDA, gloo on CPU — and pins
each rank to its local GPU. Without it,
everything runs in one process and the helpers here are no-ops. Only the main rank writes files.
"""

from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass

import torch.distributed as dist
from torch import nn

from profilers import backend_for

__all__ = ["DistContext", "cleanup_distributed", "init_distributed", "weights_digest"]


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: str
    backend: str | None  # None: single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_gather(self, obj: object) -> list[object]:
        """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
        if not self.distributed:
            return [obj]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def init_distributed(device: str) -> DistContext:
    """Join the ``torchrun`` process group if there is one; return this process's context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(rank=0, world_size=1, local_rank=0, device=device, backend=None)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend_for(device)
    if not backend.present():
        raise ValueError(f"device {device!r} was asked for but torch sees no {backend.kind.upper()} device; use "
                         f"--device cpu")
    device = backend.for_local_rank(local_rank)  # each rank on its own GPU
    if not dist.is_initialized():
        dist.init_process_group(backend=backend.dist_backend)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device,
                       backend=backend.dist_backend)


def cleanup_distributed(ctx: DistContext) -> None:
    """Leave the process group. Objects still holding it (a DDP wrapper caught in a reference
    cycle) are collected first: freed later, at interpreter exit, gloo's worker threads can
    abort the process (SIGABRT, "terminate called without an active exception")."""
    if ctx.distributed and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over the model's parameters and buffers (names, shapes and bytes), CPU copy."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
