"""Reading and writing photos with Pillow.

Everything else in darkdeblur sees images as (H, W, 3) arrays; this module is the one place
that knows about files, EXIF orientation, bit depth, alpha and colour profiles.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .checkpoint import atomic_write

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}


class ImageReadError(Exception):
    """An input file that cannot be used as an image; the message names the file and the reason."""


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read any Pillow-readable image as uint8 (H, W, 3) RGB, upright per its EXIF orientation."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from None


def write_rgb(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write a uint8 (H, W, 3) array atomically; the format follows the file extension."""
    path = Path(path)
    image = Image.fromarray(rgb)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension {path.suffix!r}")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt, **options))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def to_tensor(rgb: np.ndarray):
    """uint8 (H, W, 3) -> float32 tensor (1, 3, H, W) in [0, 1]."""
    import torch
    return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def to_uint8(images) -> np.ndarray:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> uint8 (H, W, 3), rounded."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.ndim == 4:
        images = images[0]
    return (images.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
