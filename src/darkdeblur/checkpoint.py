"""Self-describing checkpoints and weight files.

A training checkpoint (``step_0001000.pt``) holds the run config, a format version, the step,
model/optimizer/scheduler states and every random generator state; it loads with
``weights_only=True`` (no arbitrary unpickling). There is no GradScaler state: mixed precision
is bf16 autocast, whose exponent range needs no loss scaling. Checkpoints are written to a
hidden temporary file and renamed, so a kill mid-write leaves the previous one as the newest.
Exported weights are a safetensors file whose metadata carries the config, so
``load_generator`` needs nothing else.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .config import RunConfig
from .models import build_generator, set_test_mode

FORMAT_VERSION = 1
CHECKPOINT_GLOB = "step_*.pt"
_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.pt")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a partial file.

    The temporary file is ``.NAME.*.tmp`` beside ``path``; a process killed mid-write leaves it
    behind (``save_checkpoint`` removes such leftovers), never a partial ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are 0600 whatever the umask, and the rename keeps that.
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    mode = os.stat(tmp).st_mode  # 0666 less the umask
    try:
        write(tmp)
        os.chmod(tmp, mode)  # some writers (safetensors) recreate the file as 0600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # make the rename itself survive a power cut


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an ``.npy`` file atomically (see :func:`atomic_write`)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a bare name
            np.save(f, array)

    atomic_write(Path(path), write)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory
    finally:
        os.close(fd)


def random_states(*generators: torch.Generator) -> dict:
    """The state of Python's, NumPy's and torch's global generators and of ``generators``.

    Plain lists, tuples and tensors only, so a checkpoint holding it loads with ``weights_only``.
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generators": [g.get_state() for g in generators]}


def restore_random_states(states: dict, *generators: torch.Generator) -> None:
    """Undo :func:`random_states`: every generator continues where it was."""
    random.setstate(_as_tuple(states["python"]))
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for generator, state in zip(generators, states["generators"], strict=True):
        generator.set_state(state)


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
