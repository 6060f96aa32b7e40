"""Pixel arrays: integer images <-> float tensors, rounding, and the paper's bicubic halving.

Images on disk are uint8 or uint16 (H, W, 3) arrays (see :mod:`darkdeblur.image_io`); models
see float (B, 3, H, W) tensors in [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# The paper halves GOPRO's 1280x720 frames (bicubic) for training and testing; frames with a
# short side at least this long are taken to be such full-resolution frames.
HALVE_MIN_SHORT_SIDE = 720


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, rounded to nearest (65535 -> 255)."""
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 or uint16 (H, W, 3) -> float32 tensor (1, 3, H, W) in [0, 1]."""
    scale = float(np.iinfo(pixels.dtype).max)
    hwc = torch.from_numpy(np.require(pixels, requirements=["C", "W"]))
    # contiguous (1, 3, H, W): a channels-last view sends convolutions down much slower CPU paths
    return hwc.permute(2, 0, 1).unsqueeze(0).contiguous().float().div_(scale)


def quantize(restored: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float (H, W, 3) in [0, 1] -> ``dtype`` (uint8 or uint16), rounded to nearest."""
    scale = float(np.iinfo(dtype).max)
    return (np.clip(restored, 0.0, 1.0) * scale + 0.5).astype(dtype)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> uint8 (H, W, 3), rounded."""
    images = images.detach().float().cpu()
    if images.ndim == 4:
        images = images[0]
    return quantize(images.permute(1, 2, 0).numpy(), np.uint8)


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a uint8 (H, W, 3) image to ``size`` = (width, height)."""
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))


def halve_large(rgb: np.ndarray) -> np.ndarray:
    """The paper's 2x bicubic downsampling of full-resolution GOPRO frames; others unchanged.

    >>> halve_large(np.zeros((720, 1280, 3), np.uint8)).shape
    (360, 640, 3)
    """
    height, width = rgb.shape[:2]
    if min(height, width) < HALVE_MIN_SHORT_SIDE:
        return rgb
    return resize(rgb, (width // 2, height // 2))
