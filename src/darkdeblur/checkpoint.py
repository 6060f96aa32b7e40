"""Self-describing checkpoints and weight files.

A training checkpoint (``step_0001000.pt``) holds the run config, a format version, the step,
model/optimizer/scheduler states and every random generator state; it loads with
``weights_only=True`` (no arbitrary unpickling). There is no GradScaler state: mixed precision
is bf16 autocast, whose exponent range needs no loss scaling. Checkpoints are written to a
hidden temporary file and renamed (:mod:`darkdeblur.safe_files`), so a kill mid-write leaves
the previous one as the newest.
Exported weights are a safetensors file whose metadata carries the config, so
``load_generator`` needs nothing else.
"""
from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .config import RunConfig
from .models import build_generator, set_test_mode
from .safe_files import atomic_write, sha256_of

FORMAT_VERSION = 1
CHECKPOINT_GLOB = "step_*.pt"
_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.pt")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"step_{step:07d}.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` (must hold "step") atomically and keep only the newest ``keep`` files.

    Only the process that writes checkpoints may call this: it also deletes temporary files
    that an earlier, killed writer left in ``run_dir``.
    """
    state = {"format_version": FORMAT_VERSION, **state}
    path = checkpoint_path(run_dir, state["step"])
    for stale in Path(run_dir).glob(".step_*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """``step_N.pt`` files in ``run_dir``, oldest step first (temporary files never match)."""
    found = [p for p in Path(run_dir).glob(CHECKPOINT_GLOB) if _CHECKPOINT_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT_NAME.fullmatch(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message is a page long and suggests weights_only=False, which is unsafe.
        raise ValueError(f"{path}: not a darkdeblur checkpoint (not a file of plain tensors)") from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: not a darkdeblur checkpoint ({_first_line(err)})") from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {version}, this darkdeblur reads {FORMAT_VERSION}")
    return state


def export_weights(generator: nn.Module, cfg: RunConfig, path: str | os.PathLike,
                   extra: dict[str, Any] | None = None, half: bool = False) -> str:
    """Write the generator as safetensors with its config in the metadata; return the sha256."""
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
               for k, v in generator.state_dict().items()}
    metadata = {"format_version": str(FORMAT_VERSION), "config": json.dumps(cfg.to_dict()),
                **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return sha256_of(path)


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def read_weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def weights_config(path: str | os.PathLike) -> RunConfig | None:
    """The config a weights file or checkpoint was trained with, or None if it cannot be read
    (loading it then says why)."""
    try:
        if Path(path).suffix == ".safetensors":
            return RunConfig.from_dict(json.loads(read_weights_metadata(path)["config"]))
        return RunConfig.from_dict(load_checkpoint(path)["config"])
    except Exception:  # noqa: BLE001 - any unreadable file: the loader reports it properly
        return None


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu",
                   test_mode: str | None = None) -> tuple[nn.Module, RunConfig]:
    """Build and strictly load a generator from a weights file or a training checkpoint.

    Returns the generator float32, on ``device``, in ``test_mode`` (default: its config's
    ``model.test_mode``; see :func:`darkdeblur.models.set_test_mode`), with the config it was
    built from.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            meta = read_weights_metadata(path)
            tensors = load_file(str(path))
        except SafetensorError as err:
            raise ValueError(f"{path}: not a safetensors file ({_first_line(err)})") from None
        if "config" not in meta:
            raise ValueError(f"{path}: safetensors file has no darkdeblur config in its metadata")
        cfg = RunConfig.from_dict(json.loads(meta["config"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    else:
        ckpt = load_checkpoint(path)
        cfg = RunConfig.from_dict(ckpt["config"])
        state = ckpt["generator"]
    generator = build_generator(cfg.model)
    generator.load_state_dict(state, strict=True)
    return set_test_mode(generator.to(device), test_mode or cfg.model.test_mode), cfg
