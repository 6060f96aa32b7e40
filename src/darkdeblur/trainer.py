"""The training loop: data, models, optimisers, checkpoints, resume, logs.

``train()`` is what ``darkdeblur train`` and ``torchrun -m darkdeblur train`` call. A run
directory holds ``step_*.pt`` checkpoints (the newest ``keep_checkpoints``), ``losses.jsonl``
(every step's loss terms), a TensorBoard log under ``tensorboard/``, and
``generator.safetensors`` when training ends. Under torchrun only rank 0 writes any of them.
"""
from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from . import distributed
from .checkpoint import export_weights, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import RunConfig, schedule_steps
from .data import BatchStream, device_batch, discover, load_training_images
from .data.folders import DataSources
from .data.stream import Prefetcher, make_kernel_bank, validation_set
from .models import build_discriminator, build_generator, count_parameters, init_normal
from .random_state import random_states, restore_random_states, seed_all
from .run_logs import RunLog
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
    try:
        return torch.device(name)
    except RuntimeError:  # torch lists every backend it was built with: too long for one line
        raise TrainingError(f"--device {name}: unknown device; use auto, cpu, cuda, cuda:N or mps") from None


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


def _on_main(ctx: distributed.Context, dev: torch.device, action, what: str):
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


def _lr_lambda(cfg: RunConfig):
    total = max(cfg.train.steps, 1)
    if cfg.train.lr_schedule == "constant":
        return lambda step: 1.0
    if cfg.train.lr_schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    raise ValueError(f"unknown lr_schedule {cfg.train.lr_schedule!r}; choose constant or cosine")


def _schedule_origin(tc, images: int) -> str:
    if tc.epochs > 0:
        return f"{tc.epochs:g} epochs over {images} images"
    return "a fixed step count"


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
    if cfg.train.channels_last and device.type == "cuda":
        generator = generator.to(memory_format=torch.channels_last)
        if discriminator is not None:
            discriminator = discriminator.to(memory_format=torch.channels_last)
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
          progress: bool = True, stop_after: int | None = None,
          val: str | Path | None = None, max_seconds: float | None = None) -> dict:
    """Train ``cfg`` on the images under ``data`` into run directory ``out``.

    ``stop_after`` ends this invocation after that many steps without changing the schedule, so
    a long run can be done in pieces with ``resume=True``; ``max_seconds`` does the same after
    that many seconds of training (a time budget; every rank stops at the same step). ``val`` is a folder (pairs or sharp
    photos) whose first few images give PSNR and image grids every ``validate_every`` steps.
    Returns a summary dict.
    """
    out = Path(out)
    dev = resolve_device(device)
    ctx = distributed.init(dev)
    if dev.type == "cuda" and ctx.enabled:
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    flags = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    try:
        _on_main(ctx, dev, lambda: check_output_dir(out, resume=resume), "use the output directory")
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = not deterministic  # fixed crop sizes: autotune convs
        return _train(cfg, data, out, layout, resume, dev, ctx, vgg_weights, init_weights,
                      progress, stop_after, val, max_seconds)
    finally:
        torch.use_deterministic_algorithms(flags[0])
        torch.backends.cudnn.benchmark = flags[1]
        distributed.shutdown(ctx)


@dataclass
class _Run:
    """What a checkpoint captures, and where it goes."""

    cfg: RunConfig
    ctx: distributed.Context
    dev: torch.device
    out: Path
    models: Models
    optimizers: Optimizers
    schedulers: list
    stream: BatchStream | Prefetcher  # the Prefetcher once training runs
    noise: torch.Generator  # device-side noise, per rank


def _train(cfg, data, out, layout, resume, dev, ctx, vgg_weights, init_weights, progress,
           stop_after, val, max_seconds=None):
    tc = cfg.train
    seed_all(tc.seed)  # same initial weights on every rank
    models = build_models(cfg, dev, vgg_weights)
    if init_weights:
        from .checkpoint import load_generator
        warm, _ = load_generator(init_weights)
        models.generator.load_state_dict(warm.state_dict(), strict=True)
    need = checkpoint_bytes(models) + MIN_FREE_BYTES
    _on_main(ctx, dev, lambda: check_output_dir(out, need), "check free disk space")
    # BatchNorm statistics over the whole distributed batch; parameters keep their identity.
    models.generator = distributed.sync_batchnorm(models.generator, ctx, dev)
    if models.discriminator is not None:
        models.discriminator = distributed.sync_batchnorm(models.discriminator, ctx, dev)
    adam = dict(lr=tc.lr, betas=(tc.beta1, tc.beta2))
    optimizers = Optimizers(torch.optim.Adam(models.generator.parameters(), **adam),
                            torch.optim.Adam(models.discriminator.parameters(), **adam)
                            if models.discriminator else None)
    images = load_training_images(load_sources(data, layout), tc.downsample)
    count = len(images.sharp) + len(images.pairs)
    cfg = replace(cfg, train=replace(tc, steps=schedule_steps(tc, count, ctx.world)))
    tc = cfg.train
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(cfg))
                  for o in (optimizers.generator, optimizers.discriminator) if o]
    stream = BatchStream(images, tc, tc.seed, ctx.rank, ctx.world)
    kernels = make_kernel_bank(tc, tc.seed, stream.bank_size).to(dev)
    noise = torch.Generator(device=dev).manual_seed(tc.seed * 1000 + ctx.rank)
    seed_all(tc.seed * 1000 + ctx.rank)  # dropout differs per rank
    run = _Run(cfg, ctx, dev, out, models, optimizers, schedulers, stream, noise)
    val_set = None
    if val is not None:
        val_set = _on_main(ctx, dev, lambda: _load_validation(val, tc, dev), "load --val images")

    start = 0
    last_path = latest_checkpoint(out) if resume else None
    if resume and last_path is None and ctx.is_main:
        print(f"darkdeblur: no checkpoint in {out}; starting from step 0")
    if last_path is not None:
        start = _restore(run, load_checkpoint(last_path, map_location="cpu"), last_path)
    end = tc.steps if stop_after is None else min(tc.steps, start + stop_after)
    samples_per_step = tc.batch_size * ctx.world
    if ctx.is_main:
        print(f"darkdeblur train: preset {cfg.preset}, {count_parameters(models.generator) / 1e6:.2f} M "
              f"generator parameters, {len(images.sharp)} photos for synthetic blur + "
              f"{len(images.pairs)} real pairs, {ctx.world} process(es) on {dev.type}; effective batch "
              f"{samples_per_step} ({tc.batch_size} per process), lr {tc.lr:g}, steps {start}..{end} "
              f"of {tc.steps} ({_schedule_origin(tc, count)})", flush=True)

    step_models = replace(models, generator=distributed.wrap(models.generator, ctx, dev))
    average = distributed.gradient_averager(ctx)
    history: list[dict] = []
    log = None
    run.stream = Prefetcher(stream, depth=2, pin=dev.type == "cuda")
    began = time.perf_counter()
    try:
        if ctx.is_main:
            log = RunLog(out, start, end, tc.steps, samples_per_step, tc.log_every, progress)
        step_models.generator.train()
        if models.discriminator:
            models.discriminator.train()
        for step in range(start, end):
            blurred, sharp = device_batch(run.stream.next(), kernels, dev, noise)
            logs = train_step(step_models, optimizers, blurred, sharp, cfg, step, noise, average)
            done = step + 1
            logs = distributed.mean_over_ranks(logs, ctx, dev)  # the same on every rank
            bad = ", ".join(f"{k}={v}" for k, v in logs.items() if not math.isfinite(v))
            if bad:  # every rank stops at the same step
                kept = latest_checkpoint(out) if ctx.is_main else None
                raise TrainingError(f"step {done}: non-finite loss ({bad}); training stopped, the "
                                    f"last good checkpoint {kept or '(none yet)'} is kept")
            logs["lr"] = optimizers.generator.param_groups[0]["lr"]  # the rate this step used
            if max_seconds is not None and distributed.all_ranks_agree(
                    time.perf_counter() - began >= max_seconds, ctx, dev):
                end = done  # out of time: this step is the last, and is checkpointed
            with warnings.catch_warnings():
                # During an adversarial warm-up D does not step, yet its schedule must follow
                # the global step; PyTorch warns about exactly that order.
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step",
                                        category=UserWarning)
                for sched in schedulers:
                    sched.step()
            history.append({"step": done, **logs})
            if log is not None:
                log.step(done, logs)
                if tc.image_every and done % tc.image_every == 0:
                    log.images("train", models.generator, blurred[:4], sharp[:4], done)
                if val_set is not None and (done == end or (tc.validate_every
                                                            and done % tc.validate_every == 0)):
                    log.validate(models.generator, *val_set, done)
            if done % tc.checkpoint_every == 0 or done == end:
                _save(run, done)
            if done == end:
                break
    finally:
        run.stream.close()
        if log is not None:
            log.close()

    summary = {"steps": end, "start": start, "seconds": time.perf_counter() - began,
               "history": history, "world": ctx.world,
               "adversarial_active": adversarial_active(cfg, end - 1)}
    if ctx.is_main:
        summary["weights"] = str(out / "generator.safetensors")
        export_weights(models.generator, cfg, out / "generator.safetensors",
                       extra={"step": end})
    return summary


def _save(run: _Run, step: int) -> None:
    """Gather every rank's data order and random states; rank 0 writes the checkpoint."""
    models, optimizers, ctx = run.models, run.optimizers, run.ctx
    modules = [m for m in (models.generator, models.discriminator) if m is not None]
    rank_state = {"stream": run.stream.state_dict(), "random": random_states(run.noise)}
    if ctx.enabled:  # each rank's own hash: proof that the ranks still hold the same model
        rank_state["weights_sha256"] = distributed.state_digest([m.state_dict() for m in modules])
    rank_states = distributed.gather(rank_state, ctx)
    if len({r.get("weights_sha256") for r in rank_states}) > 1 and ctx.is_main:
        print(f"darkdeblur train: warning: at step {step} the ranks hold different weights "
              f"(see 'weights_sha256' in the checkpoint)", flush=True)
    state = {"config": run.cfg.to_dict(), "step": step,
             "generator": models.generator.state_dict(),
             "opt_generator": optimizers.generator.state_dict(),
             "schedulers": [s.state_dict() for s in run.schedulers], "ranks": rank_states}
    if models.discriminator:
        state["discriminator"] = models.discriminator.state_dict()
        state["opt_discriminator"] = optimizers.discriminator.state_dict()

    def write() -> None:
        try:
            save_checkpoint(run.out, state, keep=run.cfg.train.keep_checkpoints)
        except OSError as err:
            raise TrainingError(f"step {step}: cannot write a checkpoint in {run.out} "
                                f"({err.strerror or err}); training stopped, the last good "
                                f"checkpoint {latest_checkpoint(run.out) or '(none yet)'} is kept") from None

    _on_main(ctx, run.dev, write, "write a checkpoint")


def _restore(run: _Run, state: dict, path: Path) -> int:
    """Load a checkpoint into everything that changes during training; return its step."""
    if _without_cadence(state["config"]) != _without_cadence(run.cfg.to_dict()):
        raise TrainingError(f"{path}: checkpoint was made with another config "
                            f"(preset {state['config']['preset']!r}); use a new --out")
    ranks = state["ranks"]
    if len(ranks) != run.ctx.world:
        raise TrainingError(f"{path}: saved with {len(ranks)} processes, resuming with "
                            f"{run.ctx.world}; exact resume needs the same number")
    run.models.generator.load_state_dict(state["generator"])
    run.optimizers.generator.load_state_dict(state["opt_generator"])
    if run.models.discriminator:
        run.models.discriminator.load_state_dict(state["discriminator"])
        run.optimizers.discriminator.load_state_dict(state["opt_discriminator"])
    for sched, sd in zip(run.schedulers, state["schedulers"], strict=True):
        sched.load_state_dict(sd)
    run.stream.load_state_dict(ranks[run.ctx.rank]["stream"])
    restore_random_states(ranks[run.ctx.rank]["random"], run.noise)
    return state["step"]


# How often to log, checkpoint or validate changes no result: a resume may change them.
_CADENCE = ("log_every", "image_every", "checkpoint_every", "keep_checkpoints", "validate_every")


def _without_cadence(config: dict) -> dict:
    return {**config, "train": {k: v for k, v in config["train"].items() if k not in _CADENCE}}


def _load_validation(folder, tc, dev) -> list[torch.Tensor]:
    try:
        return [t.to(dev) for t in validation_set(load_sources([folder], "auto"), tc)]
    except (ValueError, OSError) as err:
        raise TrainingError(f"--val {folder}: {err}") from None
