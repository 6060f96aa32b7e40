"""What a training run needs before its first step, and the error it reports to the user.

The run directory is checked (writable, free space for a checkpoint, not another run's), the
models and optimisers are built from the config, the learning-rate schedule is made, and the
training and validation images are found. The training loop (:mod:`darkdeblur.trainer`) and the
throughput benchmark build their models here, so both train the same thing.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import torch

from . import distributed
from .checkpoint import latest_checkpoint
from .config import RunConfig, TrainConfig
from .data import discover
from .data.folders import DataSources
from .data.stream import validation_set
from .models import build_discriminator, build_generator, init_normal
from .train_step import Models, Optimizers

# Room for logs and TensorBoard events beyond the checkpoints themselves.
MIN_FREE_BYTES = 256 * 2**20


class TrainingError(RuntimeError):
    """A training failure with a message meant for the user (no traceback needed)."""


def on_main(ctx: distributed.Context, dev: torch.device, action, what: str):
    """Run ``action`` on rank 0 only; if it raises, every rank raises (none waits forever)."""
    error, result = None, None
    if ctx.is_main:
        try:
            result = action()
        except Exception as err:  # noqa: BLE001 - re-raised below, after the other ranks know
            error = err
    if not distributed.all_ranks_agree(error is None, ctx, dev):
        raise error or TrainingError(f"stopped: rank 0 failed to {what}")
    return result


def check_output_dir(out: Path, need_bytes: int = MIN_FREE_BYTES, resume: bool = True) -> None:
    """Fail before any work if the run directory cannot be written or has under ``need_bytes`` free.

    A fresh run (``resume=False``) also refuses a directory that holds another run's checkpoints:
    mixing two runs' checkpoints would make the next ``--resume`` pick up the wrong one.
    """
    if not resume and out.is_dir() and latest_checkpoint(out) is not None:
        raise TrainingError(f"{out}: already holds a training run; pass --resume to continue it, "
                            f"or choose a new --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise TrainingError(f"{out}: output directory is not writable ({err.strerror or err})") from None
    free = shutil.disk_usage(out).free
    if free < need_bytes:
        raise TrainingError(f"{out}: only {free / 2**20:.0f} MiB free; checkpoints need at least "
                            f"{need_bytes / 2**20:.0f} MiB")


def checkpoint_bytes(models: Models) -> int:
    """Rough size of one checkpoint: weights and buffers plus Adam's two moments per weight."""
    total = 0
    for module in (models.generator, models.discriminator):
        if module is not None:
            total += sum(3 * p.numel() * p.element_size() for p in module.parameters())
            total += sum(b.numel() * b.element_size() for b in module.buffers())
    return total


def build_models(cfg: RunConfig, device: torch.device, vgg_weights: str | None) -> Models:
    """Generator, discriminator (when the adversarial term is on) and the perceptual network.

    Weights are drawn from torch's global generator: seed it first for a reproducible start.
    """
    generator = build_generator(cfg.model)
    init_normal(generator, cfg.train.init_std)
    if cfg.model.global_residual:
        generator.zero_init_output()  # start at the identity: restored == blurred
    discriminator = None
    if cfg.loss.adversarial != "none" and cfg.loss.lambda_adv > 0:
        discriminator = build_discriminator(cfg.discriminator)
        init_normal(discriminator, cfg.train.init_std)
    perceptual = None
    if cfg.loss.lambda_perceptual > 0:
        from .models.vgg import WEIGHTS_ENV, VGG19Conv33
        path = vgg_weights or os.environ.get(WEIGHTS_ENV)
        if not path:
            raise TrainingError(f"preset {cfg.preset!r} uses the perceptual loss and needs VGG-19 "
                                f"weights: pass --vgg-weights FILE or set {WEIGHTS_ENV}")
        perceptual = VGG19Conv33()
        try:
            perceptual.load_torchvision_weights(path)
        except (OSError, ValueError) as err:
            raise TrainingError(str(err)) from None
        perceptual = perceptual.to(device)
    if cfg.train.channels_last and device.type == "cuda":
        generator = generator.to(memory_format=torch.channels_last)
        if discriminator is not None:
            discriminator = discriminator.to(memory_format=torch.channels_last)
    return Models(generator.to(device), discriminator.to(device) if discriminator else None, perceptual)


def build_optimizers(models: Models, tc: TrainConfig) -> Optimizers:
    """One Adam per trained network, both with the config's rate and betas."""
    adam = dict(lr=tc.lr, betas=(tc.beta1, tc.beta2))
    return Optimizers(torch.optim.Adam(models.generator.parameters(), **adam),
                      torch.optim.Adam(models.discriminator.parameters(), **adam)
                      if models.discriminator else None)


def build_schedulers(optimizers: Optimizers, tc: TrainConfig) -> list[torch.optim.lr_scheduler.LambdaLR]:
    """The learning-rate schedule of each optimiser, over ``tc.steps`` total steps."""
    return [torch.optim.lr_scheduler.LambdaLR(o, lr_factor(tc))
            for o in (optimizers.generator, optimizers.discriminator) if o]


def lr_factor(tc: TrainConfig):
    """``step -> factor`` on the base rate: 1 throughout (constant), or a cosine over ``tc.steps``.

    >>> lr_factor(TrainConfig(lr_schedule="cosine", steps=100))(50)
    0.5
    """
    total = max(tc.steps, 1)
    if tc.lr_schedule == "constant":
        return lambda step: 1.0
    if tc.lr_schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    raise ValueError(f"unknown lr_schedule {tc.lr_schedule!r}; choose constant or cosine")


def load_sources(data: list[str | Path], layout: str) -> DataSources:
    """Every training pair and sharp photo under the ``data`` folders."""
    sources = DataSources()
    for folder in data:
        try:
            sources.extend(discover(folder, layout))
        except FileNotFoundError as err:
            raise TrainingError(str(err)) from None
    if not sources.pairs and not sources.sharp:
        raise TrainingError(f"no training images found in {', '.join(map(str, data))}")
    return sources


def load_validation(folder: str | Path, tc: TrainConfig, dev: torch.device) -> list[torch.Tensor]:
    """The fixed (blurred, sharp) validation batch from ``folder``, on ``dev``."""
    try:
        return [t.to(dev) for t in validation_set(load_sources([folder], "auto"), tc)]
    except (ValueError, OSError) as err:
        raise TrainingError(f"--val {folder}: {err}") from None
