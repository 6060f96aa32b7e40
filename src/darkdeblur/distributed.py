"""torchrun / DistributedDataParallel plumbing: NCCL on CUDA, gloo on CPU.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything here is a no-op and
training runs in one process.
"""
from __future__ import annotations

import hashlib
import inspect
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


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the incoming gradients over ranks too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span every rank's batch, for CPU (gloo) runs.

    torch's SyncBatchNorm refuses CPU tensors. Here the per-channel sums go through a
    differentiable all-reduce, so the backward pass also carries the other ranks' terms, as
    SyncBatchNorm's does. Eval mode, or a single process, is plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = (0, 2, 3)
        local_count = x.new_tensor([x.numel() / x.shape[1]])
        sums = _AllReduceSum.apply(torch.cat([x.sum(dims), local_count]))  # (C + 1,)
        count = sums[-1]
        mean = sums[:-1] / count
        centred = x - mean.view(1, -1, 1, 1)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count  # two passes: no cancellation
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (self.momentum if self.momentum is not None
                            else 1.0 / float(self.num_batches_tracked))
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * count / (count - 1).clamp(min=1), momentum)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    """Swap BatchNorm2d layers for CpuSyncBatchNorm, keeping the same parameter and buffer objects."""
    if type(module) is nn.BatchNorm2d:
        new = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _to_cpu_sync(child))
    return module


def sync_batchnorm(module: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """Make BatchNorm statistics span all ranks (SyncBatchNorm on GPUs, CpuSyncBatchNorm on CPU).

    Parameters stay the same objects, so optimisers built before this still hold them, and the
    state_dict keys do not change (checkpoints load into a plain BatchNorm model).
    """
    if not ctx.enabled:
        return module
    if device.type == "cpu":
        return _to_cpu_sync(module)
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap(module: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """DDP-wrap ``module`` (call :func:`sync_batchnorm` on it first)."""
    if not ctx.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # Broadcasting buffers would copy rank 0's BatchNorm statistics to every rank before each
    # forward; synchronised BatchNorm already keeps them identical. (Newer torch renames the flag.)
    ddp = nn.parallel.DistributedDataParallel
    no_sync = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(ddp).parameters
               else {"broadcast_buffers": False})
    return ddp(module, device_ids=ids, **no_sync)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def all_ranks_agree(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True only if ``flag`` is true on every rank (used to stop all ranks together)."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def mean_over_ranks(values: dict[str, float], ctx: Context, device: torch.device) -> dict[str, float]:
    """Average each value over all ranks (one collective); a NaN or inf on any rank spreads to all."""
    if not ctx.enabled:
        return values
    flat = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return dict(zip(values, (flat / ctx.world).tolist(), strict=True))


def gather(obj, ctx: Context) -> list:
    """Every rank's ``obj`` (any picklable value), in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def gradient_averager(ctx: Context):
    """A function that averages a module's gradients over all ranks, or None in one process."""
    if not ctx.enabled:
        return None

    def average(module: nn.Module) -> None:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(ctx.world)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    return average


def state_digest(states: list[dict[str, torch.Tensor]]) -> str:
    """sha256 over the bytes of every tensor in ``states`` (state_dicts), keys included.

    Ranks of a correct DDP run hold bit-identical weights and BatchNorm statistics, so their
    digests match; the trainer stores each rank's digest in every checkpoint.
    """
    digest = hashlib.sha256()
    for state in states:
        for key, value in state.items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
