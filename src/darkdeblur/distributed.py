"""torchrun / DistributedDataParallel plumbing: NCCL on CUDA, gloo on CPU.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything here is a no-op and
training runs in one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init(device: torch.device) -> Context:
    """Join the process group torchrun prepared, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return Context(rank=rank, local_rank=local_rank, world=world)


def shutdown(ctx: Context) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """DDP-wrap ``module``; BatchNorm becomes SyncBatchNorm so statistics span every rank's batch."""
    if not ctx.enabled:
        return module
    module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    # broadcast_buffers would overwrite every rank's BatchNorm statistics with rank 0's each
    # step; SyncBatchNorm already keeps them identical.
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def all_ranks_agree(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True only if ``flag`` is true on every rank (used to stop all ranks together)."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def gradient_averager(ctx: Context):
    """A function that averages a module's gradients over all ranks, or None in one process."""
    if not ctx.enabled:
        return None

    def average(module: nn.Module) -> None:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(ctx.world)

    return average
