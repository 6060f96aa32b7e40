"""Self-describing checkpoints and weight files.

A training checkpoint (``step_0001000.pt``) holds the run config, a format version, the step,
model/optimizer/scaler states and every random generator state; it loads with
``weights_only=True`` (no arbitrary unpickling). Exported weights are a safetensors file whose
metadata carries the config, so ``load_generator`` needs nothing else.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import RunConfig
from .models import build_generator

FORMAT_VERSION = 1
CHECKPOINT_GLOB = "step_*.pt"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"step_{step:07d}.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` (must hold "step") atomically and keep only the newest ``keep`` files."""
    state = {"format_version": FORMAT_VERSION, **state}
    path = checkpoint_path(run_dir, state["step"])
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    for old in sorted(Path(run_dir).glob(CHECKPOINT_GLOB))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted(Path(run_dir).glob(CHECKPOINT_GLOB))
    return found[-1] if found else None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    state = torch.load(path, map_location=map_location, weights_only=True)
    version = state.get("format_version")
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


def read_weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, RunConfig]:
    """Build and strictly load a generator from a weights file or a training checkpoint.

    Returns the generator in eval mode, float32, on ``device``, with the config it was built from.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        meta = read_weights_metadata(path)
        if "config" not in meta:
            raise ValueError(f"{path}: safetensors file has no darkdeblur config in its metadata")
        cfg = RunConfig.from_dict(json.loads(meta["config"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    else:
        ckpt = load_checkpoint(path)
        cfg = RunConfig.from_dict(ckpt["config"])
        state = ckpt["generator"]
    generator = build_generator(cfg.model)
    generator.load_state_dict(state, strict=True)
    return generator.to(device).eval(), cfg
