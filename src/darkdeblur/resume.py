"""Save and resume: what a checkpoint captures of a running training, and putting it back.

A resumed run retraces an uninterrupted one bit for bit: the checkpoint holds the weights, the
optimiser and schedule states, every rank's data order and random generators. So a resume
refuses a config that differs in anything that changes results, naming the field. Two kinds
of field may change: how often to log, validate or checkpoint (no result depends on them), and
the run's length (``steps``, ``epochs``), so that a finished or stopped run can be extended.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import BatchStream
from .data.stream import Prefetcher
from .random_state import random_states, restore_random_states
from .train_setup import TrainingError, on_main
from .train_step import Models, Optimizers

# How often to log, checkpoint or validate changes no result: a resume may change them.
CADENCE = ("log_every", "image_every", "checkpoint_every", "keep_checkpoints", "validate_every")
# The run's length: a resume may extend it (or end it sooner, not before the checkpoint's step).
LENGTH = ("steps", "epochs")


@dataclass
class RunState:
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


def save_run(run: RunState, step: int) -> None:
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

    on_main(ctx, run.dev, write, "write a checkpoint")


def resume_latest(run: RunState) -> int:
    """Load the newest checkpoint in ``run.out`` into ``run``; return its step (0 if none)."""
    path = latest_checkpoint(run.out)
    if path is None:
        if run.ctx.is_main:
            print(f"darkdeblur: no checkpoint in {run.out}; starting from step 0")
        return 0
    return restore_run(run, load_checkpoint(path, map_location="cpu"), path)


def restore_run(run: RunState, state: dict, path: Path) -> int:
    """Load a checkpoint into everything that changes during training; return its step."""
    differences = config_differences(with_defaults(state["config"]), run.cfg.to_dict())
    if differences:
        name, saved, now = differences[0]
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise TrainingError(f"{path}: {name} is {saved!r} in the checkpoint but {now!r} now{more}; an "
                            f"exact resume needs the checkpoint's value (or use a new --out)")
    ranks = state["ranks"]
    if len(ranks) != run.ctx.world:
        raise TrainingError(f"{path}: saved with {len(ranks)} processes, resuming with "
                            f"{run.ctx.world}; exact resume needs the same number")
    step, total, saved_total = state["step"], run.cfg.train.steps, state["config"]["train"]["steps"]
    if step > total:
        raise TrainingError(f"{path}: the run is at step {step}, past the {total} steps asked for; "
                            f"pass --steps {step} or more")
    run.models.generator.load_state_dict(state["generator"])
    run.optimizers.generator.load_state_dict(state["opt_generator"])
    if run.models.discriminator:
        run.models.discriminator.load_state_dict(state["discriminator"])
        run.optimizers.discriminator.load_state_dict(state["opt_discriminator"])
    for sched, sd in zip(run.schedulers, state["schedulers"], strict=True):
        sched.load_state_dict(sd)
    run.stream.load_state_dict(ranks[run.ctx.rank]["stream"])
    restore_random_states(ranks[run.ctx.rank]["random"], run.noise)
    if total != saved_total:
        before = run.optimizers.generator.param_groups[0]["lr"]
        _follow_schedule(run.schedulers)
        if run.ctx.is_main:
            print(f"darkdeblur train: {path.name}: the run is now {total} steps long, not "
                  f"{saved_total}; {_schedule_note(run, step, before)}", flush=True)
    return step


def with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with the fields added since it was saved at their defaults (a new
    field's default keeps what older code did), as :meth:`RunConfig.to_dict` writes it; a config
    with fields this code does not know is returned as it is, for the comparison to name them."""
    try:
        return RunConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError):
        return saved


def config_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, saved value, current value)`` for every config field whose change breaks an exact
    resume: everything but the training's :data:`CADENCE` and :data:`LENGTH`.

    >>> config_differences({"preset": "a", "train": {"lr": 1.0, "steps": 5}},
    ...                    {"preset": "a", "train": {"lr": 2.0, "steps": 9}})
    [('train.lr', 1.0, 2.0)]
    """
    found = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            free = CADENCE + LENGTH if key == "train" else ()
            found += [(f"{key}.{name}", x, y) for name, x, y in _field_differences(a, b, free)]
        elif a != b:
            found.append((key, a, b))
    return found


def _field_differences(saved: dict, now: dict, free: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    return [(k, saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now))
            if k not in free and saved.get(k) != now.get(k)]


def _follow_schedule(schedulers: list) -> None:
    """Set each optimiser's rate for the next step from its (new-length) schedule.

    The optimiser state carries the rate the old schedule chose for that step; ``LambdaLR``
    would only apply the new curve one step later.
    """
    for sched in schedulers:
        for group, base, factor in zip(sched.optimizer.param_groups, sched.base_lrs,
                                       sched.lr_lambdas, strict=True):
            group["lr"] = base * factor(sched.last_epoch)


def _schedule_note(run: RunState, step: int, before: float) -> str:
    """How the learning-rate schedule depends on the total steps, said for this resume."""
    tc = run.cfg.train
    if tc.lr_schedule == "constant":
        return (f"the learning rate is constant ({tc.lr:g}) and nothing else depends on the total, "
                f"so steps {step + 1}..{tc.steps} are those of a {tc.steps}-step run")
    now = run.optimizers.generator.param_groups[0]["lr"]
    return (f"the {tc.lr_schedule} learning rate is laid over the total steps, so from step "
            f"{step + 1} it follows the {tc.steps}-step curve ({before:.3g} -> {now:.3g}) and the "
            f"result differs from a run that was {tc.steps} steps long from the start")
