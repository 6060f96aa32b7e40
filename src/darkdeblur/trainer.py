"""The training loop: data, models, optimisers, checkpoints, resume, logs.

``train()`` is what ``darkdeblur train`` and ``torchrun -m darkdeblur train`` call. A run
directory holds ``step_*.pt`` checkpoints (the newest ``keep_checkpoints``), a TensorBoard log
under ``tensorboard/``, and ``generator.safetensors`` when training ends.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from . import distributed
from .checkpoint import export_weights, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import BatchStream, device_batch, discover, load_training_images
from .data.folders import DataSources
from .data.stream import make_kernel_bank
from .models import build_discriminator, build_generator, count_parameters, init_normal
from .train_step import Models, Optimizers, adversarial_active, train_step

MIN_FREE_BYTES = 256 * 2**20


class TrainingError(RuntimeError):
    """A training failure with a message meant for the user (no traceback needed)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def check_output_dir(out: Path) -> None:
    """Fail before any work if the run directory cannot be written or the disk is nearly full."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise TrainingError(f"{out}: output directory is not writable ({err.strerror or err})") from None
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise TrainingError(f"{out}: only {free / 2**20:.0f} MiB free; checkpoints need at least "
                            f"{MIN_FREE_BYTES / 2**20:.0f} MiB")


def _lr_lambda(cfg: RunConfig):
    total = max(cfg.train.steps, 1)
    if cfg.train.lr_schedule == "constant":
        return lambda step: 1.0
    if cfg.train.lr_schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    raise ValueError(f"unknown lr_schedule {cfg.train.lr_schedule!r}; choose constant or cosine")


def _random_states(noise_generator: torch.Generator) -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "noise": noise_generator.get_state()}


def _restore_random_states(states: dict, noise_generator: torch.Generator) -> None:
    random.setstate(_as_tuple(states["python"]))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    noise_generator.set_state(states["noise"])


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _gather(obj, ctx: distributed.Context) -> list:
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def build_models(cfg: RunConfig, device: torch.device, vgg_weights: str | None) -> Models:
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
    return Models(generator.to(device), discriminator.to(device) if discriminator else None, perceptual)


def load_sources(data: list[str | Path], layout: str) -> DataSources:
    sources = DataSources()
    for folder in data:
        try:
            sources.extend(discover(folder, layout))
        except FileNotFoundError as err:
            raise TrainingError(str(err)) from None
    if not sources.pairs and not sources.sharp:
        raise TrainingError(f"no training images found in {', '.join(map(str, data))}")
    return sources


def train(cfg: RunConfig, data: list[str | Path], out: str | Path, *, layout: str = "auto",
          resume: bool = False, device: str = "auto", vgg_weights: str | None = None,
          init_weights: str | None = None, deterministic: bool = False,
          progress: bool = True, stop_after: int | None = None) -> dict:
    """Train ``cfg`` on the images under ``data`` into run directory ``out``.

    ``stop_after`` ends this invocation after that many steps without changing the schedule, so
    a long run can be done in pieces with ``resume=True``. Returns a summary dict.
    """
    out = Path(out)
    dev = resolve_device(device)
    ctx = distributed.init(dev)
    if dev.type == "cuda" and ctx.enabled:
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    if ctx.is_main:
        check_output_dir(out)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        return _train(cfg, data, out, layout, resume, dev, ctx, vgg_weights, init_weights,
                      progress, stop_after)
    finally:
        distributed.shutdown(ctx)


def _train(cfg, data, out, layout, resume, dev, ctx, vgg_weights, init_weights, progress, stop_after):
    tc = cfg.train
    torch.manual_seed(tc.seed)  # same initial weights on every rank
    random.seed(tc.seed)
    models = build_models(cfg, dev, vgg_weights)
    if init_weights:
        from .checkpoint import load_generator
        warm, _ = load_generator(init_weights)
        models.generator.load_state_dict(warm.state_dict(), strict=True)
    opt_g = torch.optim.Adam(models.generator.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2))
    opt_d = (torch.optim.Adam(models.discriminator.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2))
             if models.discriminator else None)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(cfg)) for o in (opt_g, opt_d) if o]

    images = load_training_images(load_sources(data, layout), tc.downsample)
    stream = BatchStream(images, tc, tc.seed, ctx.rank, ctx.world)
    kernels = make_kernel_bank(tc, tc.seed, stream.bank_size).to(dev)
    noise_generator = torch.Generator(device=dev).manual_seed(tc.seed * 1000 + ctx.rank)
    torch.manual_seed(tc.seed * 1000 + ctx.rank)  # dropout differs per rank

    start = 0
    last_path = latest_checkpoint(out) if resume else None
    if resume and last_path is None and ctx.is_main:
        print(f"darkdeblur: no checkpoint in {out}; starting from step 0")
    if last_path is not None:
        state = load_checkpoint(last_path, map_location="cpu")
        if state["config"] != cfg.to_dict():
            raise TrainingError(f"{last_path}: checkpoint was made with another config "
                                f"(preset {state['config']['preset']!r}); use a new --out")
        models.generator.load_state_dict(state["generator"])
        opt_g.load_state_dict(state["opt_generator"])
        if models.discriminator:
            models.discriminator.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_discriminator"])
        for sched, sd in zip(schedulers, state["schedulers"]):
            sched.load_state_dict(sd)
        ranks = state["ranks"]
        if len(ranks) != ctx.world:
            raise TrainingError(f"{last_path}: saved with {len(ranks)} processes, resuming with "
                                f"{ctx.world}; exact resume needs the same number")
        stream.load_state_dict(ranks[ctx.rank]["stream"])
        _restore_random_states(ranks[ctx.rank]["random"], noise_generator)
        start = state["step"]

    generator = distributed.wrap(models.generator, ctx, dev)
    if models.discriminator is not None and ctx.enabled:
        models.discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(models.discriminator)
    step_models = replace(models, generator=generator)
    average = distributed.gradient_averager(ctx)

    writer = None
    if ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out / "tensorboard"))
        samples = tc.batch_size * ctx.world
        print(f"darkdeblur train: preset {cfg.preset}, {count_parameters(models.generator) / 1e6:.2f} M "
              f"generator parameters, {len(images.sharp)} photos for synthetic blur + "
              f"{len(images.pairs)} real pairs, {ctx.world} process(es) on {dev.type}; effective batch "
              f"{samples} ({tc.batch_size} per process), lr {tc.lr:g}, steps {start}..{tc.steps}")

    def save(step: int) -> Path | None:
        rank_states = _gather({"stream": stream.state_dict(),
                               "random": _random_states(noise_generator)}, ctx)
        if not ctx.is_main:
            return None
        state = {"config": cfg.to_dict(), "step": step,
                 "generator": models.generator.state_dict(), "opt_generator": opt_g.state_dict(),
                 "schedulers": [s.state_dict() for s in schedulers], "ranks": rank_states}
        if models.discriminator:
            state["discriminator"] = distributed.unwrap(models.discriminator).state_dict()
            state["opt_discriminator"] = opt_d.state_dict()
        return save_checkpoint(out, state, keep=tc.keep_checkpoints)

    end = tc.steps if stop_after is None else min(tc.steps, start + stop_after)
    history: list[dict] = []
    bar = tqdm(range(start, end), initial=start, total=tc.steps, disable=not (progress and ctx.is_main),
               unit="step", dynamic_ncols=True)
    began = time.perf_counter()
    generator.train()
    if models.discriminator:
        models.discriminator.train()
    for step in bar:
        blurred, sharp = device_batch(stream.next(), kernels, dev, noise_generator)
        logs = train_step(step_models, Optimizers(opt_g, opt_d), blurred, sharp, cfg, step,
                          noise_generator, average)
        finite = all(math.isfinite(v) for v in logs.values())
        if not distributed.all_ranks_agree(finite, ctx, dev):
            bad = ", ".join(f"{k}={v}" for k, v in logs.items() if not math.isfinite(v)) or "on another rank"
            kept = latest_checkpoint(out)
            raise TrainingError(f"step {step}: non-finite loss ({bad}); training stopped, last good "
                                f"checkpoint {kept if kept else '(none yet)'} is kept")
        for sched in schedulers:
            sched.step()
        logs["lr"] = opt_g.param_groups[0]["lr"]
        history.append({"step": step + 1, **logs})
        done = step + 1
        if ctx.is_main:
            rate = (done - start) * tc.batch_size * ctx.world / (time.perf_counter() - began)
            bar.set_postfix(l1=f"{logs['l1']:.4f}", g=f"{logs['g_loss']:.3f}",
                            d=f"{logs.get('d_loss', float('nan')):.3f}", sps=f"{rate:.1f}")
            if done % tc.log_every == 0 or done == end:
                for key, value in logs.items():
                    writer.add_scalar(f"train/{key}", value, done)
                writer.add_scalar("train/samples_per_s", rate, done)
            if tc.image_every and done % tc.image_every == 0:
                with torch.no_grad():
                    restored = generator(blurred[:4]).float()
                grid = torch.cat([blurred[:4], restored.clamp(0, 1), sharp[:4]], dim=3)
                writer.add_images("train/blurred|restored|sharp", grid, done)
        if done % tc.checkpoint_every == 0 or done == end:
            save(done)
    bar.close()

    summary = {"steps": end, "start": start, "seconds": time.perf_counter() - began,
               "history": history, "world": ctx.world,
               "adversarial_active": adversarial_active(cfg, end - 1)}
    if ctx.is_main:
        writer.close()
        summary["weights"] = str(out / "generator.safetensors")
        export_weights(models.generator, cfg, out / "generator.safetensors",
                       extra={"step": end})
    return summary
