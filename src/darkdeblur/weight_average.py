"""One generator made from the average of a run's checkpoints' weights.

Neighbouring checkpoints of a run differ by the noise of their last batches as much as by what
they learned (the hybrid refiner's worst dev images move by 0.2 dB between checkpoints 500 steps
apart); the average of the weights along the end of a run sits nearer the middle of the basin
they wander in (Izmailov et al. 2018, "Averaging weights leads to wider optima"). BatchNorm's
running statistics are averaged with the rest, not re-measured: close to, not exactly, the
statistics of the averaged network. The result is a checkpoint without optimiser states: it
can be scored, packaged and used to start a run (``--init-weights``), not resumed.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .safe_files import atomic_write


def average_checkpoints(paths: list[str | os.PathLike]) -> dict:
    """The checkpoint of the mean of ``paths``' generators (at least two, one model config): its
    step, processes and config are the last's; integer buffers (BatchNorm's batch counts) too."""
    if len(paths) < 2:
        raise ValueError("averaging needs at least two checkpoints")
    states = [load_checkpoint(p) for p in paths]
    last = states[-1]
    for path, state in zip(paths, states):
        if state["config"]["model"] != last["config"]["model"]:
            raise ValueError(f"{path}: another model than {paths[-1]}'s; only one run's checkpoints average")
    generators = [s["generator"] for s in states]
    mean = {name: (torch.stack([g[name].double() for g in generators]).mean(0).to(tensor.dtype)
                   if tensor.is_floating_point() else tensor.clone())
            for name, tensor in last["generator"].items()}
    return {"format_version": last["format_version"], "config": last["config"], "step": last["step"],
            "ranks": last["ranks"], "generator": mean, "averaged_steps": [s["step"] for s in states]}


def save_average(paths: list[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Write the average of ``paths`` to ``out`` (atomically) and return it."""
    state = average_checkpoints(paths)
    atomic_write(Path(out), lambda tmp: torch.save(state, tmp))
    return state
