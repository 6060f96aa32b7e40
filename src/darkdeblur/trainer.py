"""The training loop: ``train()`` runs steps, logs them, checkpoints them and exports the weights.

``train()`` is what ``darkdeblur train`` and ``torchrun -m darkdeblur train`` call. A run
directory holds ``step_*.pt`` checkpoints (the newest ``keep_checkpoints``), ``losses.jsonl``
(every step's loss terms), a TensorBoard log under ``tensorboard/``, and
``generator.safetensors`` when training ends. Under torchrun only rank 0 writes any of them.
Building the run is :mod:`darkdeblur.train_setup`; saving and resuming it is
:mod:`darkdeblur.resume`; one optimisation step is :mod:`darkdeblur.train_step`.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from . import distributed
from .blur.misfit import MisfitFallback
from .checkpoint import export_weights, latest_checkpoint, load_generator
from .config import ModelConfig, RunConfig, schedule_steps
from .data import BatchStream, device_batch, load_training_images
from .data.refiner_set import RefinerCrops, RefinerStream, is_refiner_set, refiner_validation
from .data.stream import Prefetcher, make_kernel_bank
from .devices import resolve_device
from .models import count_parameters
from .models.grow import add_correction_output, add_weak_share_output, grow_input_channels, keep_share_output
from .random_state import seed_all
from .resume import RunState, resume_latest, save_run
from .run_logs import RunLog
from .train_setup import (MIN_FREE_BYTES, TrainingError, build_models, build_optimizers,
                          build_schedulers, check_output_dir, checkpoint_bytes, load_sources,
                          load_validation, on_main)
from .train_step import adversarial_active, train_step

WEIGHTS_NAME = "generator.safetensors"


def train(cfg: RunConfig, data: list[str | Path], out: str | Path, *, layout: str = "auto",
          resume: bool = False, device: str = "auto", vgg_weights: str | None = None,
          init_weights: str | None = None, deterministic: bool = False,
          progress: bool = True, stop_after: int | None = None,
          val: str | Path | None = None, max_seconds: float | None = None) -> dict:
    """Train ``cfg`` on the images under ``data`` into run directory ``out``.

    ``stop_after`` ends this invocation after that many steps without changing the schedule, so
    a long run can be done in pieces with ``resume=True``; ``max_seconds`` does the same after
    that many seconds of training (a time budget; every rank stops at the same step). ``val`` is
    a folder (pairs or sharp photos) whose first few images give PSNR and image grids every
    ``validate_every`` steps. Returns a summary dict.
    """
    out = Path(out)
    dev = resolve_device(device)
    ctx = distributed.init(dev)
    if dev.type == "cuda" and ctx.enabled:
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    flags = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    try:
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = not deterministic  # fixed crop sizes: autotune convs

        run, batches, source = _build_run(cfg, data, out, ctx, dev, layout=layout, resume=resume,
                                          vgg_weights=vgg_weights, init_weights=init_weights)
        tc = run.cfg.train
        val_set = source.validation
        if val is not None:
            val_set = on_main(ctx, dev, lambda: load_validation(val, tc, dev), "load --val images")
        start = resume_latest(run) if resume else 0
        end = tc.steps if stop_after is None else min(tc.steps, start + stop_after)
        if start == end:
            return _nothing_to_do(run, start)
        if ctx.is_main:
            print(f"darkdeblur train: preset {run.cfg.preset}, "
                  f"{count_parameters(run.models.generator) / 1e6:.2f} M generator parameters, "
                  f"{source.description}, "
                  f"{ctx.world} process(es) on {dev.type}; effective batch {tc.batch_size * ctx.world} "
                  f"({tc.batch_size} per process), lr {tc.lr:g}, steps {start}..{end} of {tc.steps} "
                  f"({_schedule_origin(tc, source.count)})", flush=True)

        summary = _run_steps(run, batches, start, end, val_set=val_set, progress=progress,
                             max_seconds=max_seconds)
        if ctx.is_main:
            summary["weights"] = str(out / WEIGHTS_NAME)
            export_weights(run.models.generator, run.cfg, out / WEIGHTS_NAME, extra={"step": summary["steps"]})
        return summary
    finally:
        torch.use_deterministic_algorithms(flags[0])
        torch.backends.cudnn.benchmark = flags[1]
        distributed.shutdown(ctx)


def warm_start(generator: torch.nn.Module, model: ModelConfig, init_weights: str) -> list[str]:
    """Load ``init_weights`` into ``generator`` (built from ``model``), fitted to its layout
    (:mod:`darkdeblur.models.grow`); return what was changed, for the log."""
    warm, warm_config = load_generator(init_weights)
    if not model.inputs.startswith(warm_config.model.inputs):
        # the new channels are inserted before the deconvolution's three, so the old ones must be
        # a prefix of the new: from "+fallback" to "+weak", the old share's column would read red
        raise TrainingError(f"{init_weights}: a refiner that sees {warm_config.model.inputs!r} cannot start one "
                            f"that sees {model.inputs!r}: its input channels would be read as others; start "
                            "from weights whose inputs the new ones extend")
    target = generator.state_dict()
    state, grown = grow_input_channels(warm.state_dict(), target)
    state, kept = keep_share_output(state, target)
    state, corrected = add_correction_output(state, target)
    weak_share: list[str] = []
    if model.weak_mix and not warm_config.model.weak_mix:
        state, weak_share = add_weak_share_output(state, target)
    generator.load_state_dict(state, strict=True)
    notes = []
    if grown:
        notes.append(f"{', '.join(grown)} given zero-weighted input channels for the new inputs (before the "
                     "deconvolution's three): they start unused")
    if kept:
        notes.append(f"{', '.join(kept)} keep only the fall-back share's output (no correction)")
    if corrected:
        notes.append(f"{', '.join(corrected)} given zero correction outputs (the refiner starts as it was)")
    if weak_share:
        notes.append(f"{', '.join(weak_share)} given a zero output for the weak share (the refiner starts as it was)")
    if model.sees_fallback and not warm_config.model.sees_fallback:
        # the share and any correction at zero: the old correction was learned on top of the old
        # share, not of the rule's, so the refiner starts exactly as the rule
        generator.zero_init_output()
        notes.append("the last layer starts at zero (share and correction), so the refiner starts as the "
                     "dcp engine's fall-back rule")
    return notes


def _build_run(cfg: RunConfig, data, out: Path, ctx: distributed.Context, dev: torch.device, *,
               layout: str, resume: bool, vgg_weights: str | None, init_weights: str | None):
    """Models, optimisers, schedules and the batch stream at step 0, after the run directory
    passed its checks; returns the :class:`RunState`, the function that finishes a batch on the
    device (``raw -> (inputs, sharp)``) and the :class:`TrainingSource`."""
    tc = cfg.train
    seed_all(tc.seed)  # the same initial weights on every rank
    models = build_models(cfg, dev, vgg_weights)
    if init_weights:
        for note in warm_start(models.generator, cfg.model, init_weights):
            if ctx.is_main:
                print(f"darkdeblur train: {init_weights}: {note}", flush=True)
    need = checkpoint_bytes(models) + MIN_FREE_BYTES
    # Before any image is read: a run that cannot be saved should fail in seconds, not hours.
    on_main(ctx, dev, lambda: check_output_dir(out, need, resume=resume), "use the output directory")
    # BatchNorm statistics over the whole distributed batch; parameters keep their identity.
    models.generator = distributed.sync_batchnorm(models.generator, ctx, dev)
    if models.discriminator is not None:
        models.discriminator = distributed.sync_batchnorm(models.discriminator, ctx, dev)
    optimizers = build_optimizers(models, tc)

    noise = torch.Generator(device=dev).manual_seed(tc.seed * 1000 + ctx.rank)
    if cfg.model.refiner:
        rule = MisfitFallback(*cfg.model.fallback_rule) if cfg.model.sees_fallback else None
        crops = _refiner_crops(data, misfit=cfg.model.sees_misfit, fallback=rule,
                               weak=cfg.model.weak_factor if cfg.model.sees_weak else None)
        source = TrainingSource(crops.describe(), len(crops.training),
                                tuple(t.to(dev) for t in refiner_validation(crops)))
        stream = RefinerStream(crops, tc.crop, tc.batch_size, tc.seed, ctx.rank, ctx.world)
        batches = lambda raw: raw.to_device(dev)  # noqa: E731
    else:
        images = load_training_images(load_sources(data, layout), tc.downsample)
        source = TrainingSource(f"{len(images.sharp)} photos for synthetic blur + {len(images.pairs)} real pairs",
                                len(images.sharp) + len(images.pairs))
        stream = BatchStream(images, tc, tc.seed, ctx.rank, ctx.world)
        kernels = make_kernel_bank(tc, tc.seed, stream.bank_size).to(dev)
        batches = lambda raw: device_batch(raw, kernels, dev, noise)  # noqa: E731
    cfg = replace(cfg, train=replace(tc, steps=schedule_steps(tc, source.count, ctx.world)))
    tc = cfg.train
    schedulers = build_schedulers(optimizers, tc)
    seed_all(tc.seed * 1000 + ctx.rank)  # from here on, dropout differs per rank
    return RunState(cfg, ctx, dev, out, models, optimizers, schedulers, stream, noise), batches, source


@dataclass
class TrainingSource:
    """What a run trains on: a line for the log, the image count an epoch is, and (for a
    refiner) the held-out validation crops."""

    description: str
    count: int
    validation: tuple[torch.Tensor, torch.Tensor] | None = None


def _refiner_crops(data, misfit: bool, fallback: MisfitFallback | None, weak: float | None) -> RefinerCrops:
    """A hybrid refiner trains on refiner sets (``make-data --refiner-set``)."""
    if not all(is_refiner_set(folder) for folder in data):
        raise TrainingError(f"preset hybrid trains on refiner sets made by 'darkdeblur make-data "
                            f"--refiner-set KERNEL_CACHE --out FOLDER'; got {', '.join(map(str, data))}")
    try:
        return RefinerCrops(*data, misfit=misfit, fallback=fallback, weak=weak)
    except (OSError, ValueError) as err:
        raise TrainingError(str(err)) from None


def _run_steps(run: RunState, batches, start: int, end: int, *,
               val_set: list[torch.Tensor] | None, progress: bool, max_seconds: float | None) -> dict:
    """Steps ``start + 1 .. end``: train, log, validate, checkpoint; return the run's summary."""
    cfg, ctx, dev, models, optimizers = run.cfg, run.ctx, run.dev, run.models, run.optimizers
    tc = cfg.train
    step_models = replace(models, generator=distributed.wrap(models.generator, ctx, dev))
    average = distributed.gradient_averager(ctx)
    history: list[dict] = []
    log = None
    run.stream = Prefetcher(run.stream, depth=2, pin=dev.type == "cuda")
    began = time.perf_counter()
    try:
        if ctx.is_main:
            log = RunLog(run.out, start, end, tc.steps, tc.batch_size * ctx.world, tc.log_every, progress)
        step_models.generator.train()
        if models.discriminator:
            models.discriminator.train()
        for step in range(start, end):
            blurred, sharp = batches(run.stream.next())
            logs = train_step(step_models, optimizers, blurred, sharp, cfg, step, run.noise, average)
            done = step + 1
            logs = distributed.mean_over_ranks(logs, ctx, dev)  # the same on every rank
            bad = ", ".join(f"{k}={v}" for k, v in logs.items() if not math.isfinite(v))
            if bad:  # every rank stops at the same step
                kept = latest_checkpoint(run.out) if ctx.is_main else None
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
                for sched in run.schedulers:
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
                save_run(run, done)
            if done == end:
                break
    finally:
        run.stream.close()
        if log is not None:
            log.close()
    return {"steps": end, "start": start, "seconds": time.perf_counter() - began,
            "history": history, "world": ctx.world, "adversarial_active": adversarial_active(cfg, end - 1)}


def _nothing_to_do(run: RunState, step: int) -> dict:
    """A resume at the run's last step: say so, and export the weights only if they are missing
    (a run killed between its last checkpoint and the export)."""
    summary = {"steps": step, "start": step, "seconds": 0.0, "history": [], "world": run.ctx.world,
               "adversarial_active": adversarial_active(run.cfg, step - 1)}
    if run.ctx.is_main:
        weights = run.out / WEIGHTS_NAME
        print(f"darkdeblur train: {run.out} is already at step {step}, nothing to do", flush=True)
        if not weights.is_file():
            export_weights(run.models.generator, run.cfg, weights, extra={"step": step})
        summary["weights"] = str(weights)
    return summary


def _schedule_origin(tc, images: int) -> str:
    if tc.epochs > 0:
        return f"{tc.epochs:g} epochs over {images} images"
    return "a fixed step count"
