"""Deblurring whole images with a trained generator."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import load_generator
from .config import RunConfig
from .image_io import to_tensor, to_uint8

BUNDLED_WEIGHTS = "default.safetensors"


def bundled_weights_path() -> Path:
    return Path(str(resources.files("darkdeblur") / "weights" / BUNDLED_WEIGHTS))


class Deblurrer:
    """A loaded generator plus the device it runs on; call it on uint8 (H, W, 3) RGB arrays."""

    def __init__(self, generator: nn.Module, cfg: RunConfig, device: torch.device):
        self.generator, self.cfg, self.device = generator, cfg, device

    @torch.inference_mode()
    def restore_tensor(self, blurred: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> restored, same shape, on CPU, float32."""
        return self.generator(blurred.to(self.device)).float().clamp(0, 1).cpu()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
        return to_uint8(self.restore_tensor(to_tensor(rgb)))


def load_model(weights: str | os.PathLike | None = None, device: str = "auto") -> Deblurrer:
    """Load a generator from ``weights`` (safetensors or checkpoint), or the bundled model."""
    from .trainer import resolve_device
    dev = resolve_device(device)
    path = Path(weights) if weights is not None else bundled_weights_path()
    if weights is None and not path.is_file():
        raise FileNotFoundError(f"{path}: no bundled weights in this installation; pass --weights")
    generator, cfg = load_generator(path, dev)
    return Deblurrer(generator, cfg, dev)


def deblur(image, model: Deblurrer | None = None):
    """Deblur a PIL image or a uint8 (H, W, 3) numpy array; returns the same kind.

    >>> # doctest: +SKIP
    >>> restored = darkdeblur.deblur(PIL.Image.open("photo.jpg"))
    """
    model = model or _default_model()
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return Image.fromarray(model(np.asarray(image.convert("RGB"))))
    return model(np.asarray(image))


_DEFAULT: Deblurrer | None = None


def _default_model() -> Deblurrer:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_model()
    return _DEFAULT
