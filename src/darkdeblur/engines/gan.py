"""The learned engine: a trained generator run on whole images or on blended tiles."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_generator
from ..config import RunConfig
from ..pixels import quantize, to_tensor
from ..tiling import MIN_OVERLAP, restore_tiled, round_up
from .base import Restoration, Restorer

BUNDLED_GAN_WEIGHTS = "default.safetensors"


def bundled_gan_weights() -> Path:
    return Path(str(resources.files("darkdeblur") / "weights" / BUNDLED_GAN_WEIGHTS))


class TileSettingsError(ValueError):
    """Tile and overlap sizes that cannot work together for this model (a usage error)."""


def auto_tile(device: torch.device) -> int:
    """Tile side for ``device``: the bundled model needs ~0.4 GB of activations at 768 x 768."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 2048 if free > 8 * 2**30 else 1024
    return 768


class GanRestorer(Restorer):
    """A loaded generator plus the device it runs on.

    Images of at most ``tile**2`` pixels are restored whole; larger ones as overlapping
    ``tile`` x ``tile`` tiles (see :mod:`darkdeblur.tiling`). ``tile=None`` picks a size for the
    device, ``tile=0`` never tiles. ``half`` runs the generator in float16 (GPU only).
    """

    method = "gan"

    def __init__(self, generator: nn.Module, cfg: RunConfig, device: torch.device,
                 tile: int | None = None, overlap: int | None = None, half: bool = False,
                 weights: str | os.PathLike | None = None):
        if half and device.type == "cpu":
            raise ValueError("--half needs a GPU (cuda or mps); the CPU runs in float32")
        self.generator, self.cfg, self.device = generator, cfg, device
        self.weights = weights
        self.dtype = torch.float16 if half else torch.float32
        self.generator.to(self.dtype)
        multiple = getattr(generator, "multiple", 1)
        self.overlap = round_up(max(overlap if overlap is not None else MIN_OVERLAP, 0), multiple)
        self.tile = round_up(auto_tile(device) if tile is None else tile, multiple)
        if self.tile and self.tile < 2 * self.overlap:
            raise TileSettingsError(f"tile {self.tile} must be at least twice the overlap {self.overlap} "
                                    f"(both rounded up to multiples of {multiple})")

    @classmethod
    def load(cls, weights: str | os.PathLike | None, device: torch.device, tile: int | None = None,
             overlap: int | None = None, half: bool = False, test_mode: str | None = None) -> GanRestorer:
        """Strictly load ``weights`` (safetensors or checkpoint), or the bundled generator."""
        path = Path(weights) if weights is not None else bundled_gan_weights()
        if weights is None and not path.is_file():
            raise FileNotFoundError(f"{path}: no bundled weights in this installation; pass --weights")
        if path.is_dir():
            raise FileNotFoundError(f"{path}: is a folder; --weights takes a .safetensors or .pt file")
        generator, cfg = load_generator(path, device, test_mode=test_mode)
        return cls(generator, cfg, device, tile=tile, overlap=overlap, half=half, weights=path)

    @torch.inference_mode()
    def restore_tensor(self, blurred: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> restored, same shape, on CPU, float32."""
        restored = self.generator(blurred.to(self.device, self.dtype))
        return restored.float().clamp(0, 1).cpu()

    def restore_array(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 or uint16 (H, W, 3) -> restored, same dtype; tiled when larger than ``tile**2``."""
        height, width = pixels.shape[:2]
        if not self.tile or height * width <= self.tile**2:
            restored = self.restore_tensor(to_tensor(pixels))[0].permute(1, 2, 0).numpy()
            return quantize(restored, pixels.dtype)
        return restore_tiled(self.restore_tensor, pixels, self.tile, self.overlap)

    def restore_checked(self, rgb: np.ndarray) -> Restoration:
        return Restoration(self.restore_array(rgb))

    def describe(self) -> dict:
        return {"method": self.method, "weights": str(self.weights) if self.weights else None,
                "preset": self.cfg.preset}
