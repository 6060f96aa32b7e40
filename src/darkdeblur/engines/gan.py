"""The learned engine: a trained generator run on whole images or on blended tiles."""
from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_generator
from ..config import RunConfig
from ..models.inference_form import for_inference
from ..pixels import quantize, to_tensor
from ..tiling import MIN_OVERLAP, restore_tiled, round_up
from .base import Restoration, Restorer

BUNDLED_GAN_WEIGHTS = "default.safetensors"


def bundled_gan_weights() -> Path:
    return Path(str(resources.files("darkdeblur") / "weights" / BUNDLED_GAN_WEIGHTS))


class TileSettingsError(ValueError):
    """Tile, overlap or ``half`` settings that cannot work for this model on this device.

    A usage error: the engine checks them once, when it is built, before any photo is read.
    """


# With the device's tile (no --tile), photos of up to this many pixels run whole even where the
# tile is smaller: a 1280x720 photo needs ~0.6 GB of activations with the bundled model, and tiling
# it at 768 took a quarter more time (overlaps, blending; benchmarks/cli_latency.py). Larger photos
# are tiled, so the peak memory of a 24-megapixel photo stays that of 768 x 768 tiles.
WHOLE_PIXELS = 1280 * 720


def auto_tile(device: torch.device) -> int:
    """Tile side for ``device``: the bundled model needs ~0.4 GB of activations at 768 x 768."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 2048 if free > 8 * 2**30 else 1024
    return 768


def check_tile_settings(tile: int | None, overlap: int | None, half: bool, device: torch.device,
                        multiple: int) -> tuple[int, int]:
    """The (tile, overlap) the engine runs with, rounded up to ``multiple``; TileSettingsError if
    they cannot work. ``tile=None`` is the device's tile, ``0`` never tiles.

    >>> check_tile_settings(None, None, False, torch.device("cpu"), 32)
    (768, 64)
    >>> check_tile_settings(1000, 100, False, torch.device("cpu"), 32)
    (1024, 128)
    """
    if half and device.type == "cpu":
        raise TileSettingsError("--half needs a GPU (cuda or mps); the CPU runs in float32")
    asked_overlap = MIN_OVERLAP if overlap is None else overlap
    asked_tile = auto_tile(device) if tile is None else tile
    if asked_overlap < 0 or asked_tile < 0:
        raise TileSettingsError(f"tile {asked_tile} and overlap {asked_overlap} must not be negative")
    rounded_tile, rounded_overlap = round_up(asked_tile, multiple), round_up(asked_overlap, multiple)
    if asked_tile and asked_tile < 2 * asked_overlap:
        raise TileSettingsError(f"--tile {asked_tile} must be at least twice the overlap ({asked_overlap})")
    if rounded_tile and rounded_tile < 2 * rounded_overlap:
        raise TileSettingsError(f"tile {rounded_tile} must be at least twice the overlap {rounded_overlap} "
                                f"(--tile {asked_tile} and --overlap {asked_overlap} rounded up to "
                                f"multiples of {multiple})")
    return rounded_tile, rounded_overlap


class GanRestorer(Restorer):
    """A loaded generator plus the device it runs on.

    Images of at most ``tile**2`` pixels are restored whole; larger ones as overlapping
    ``tile`` x ``tile`` tiles (see :mod:`darkdeblur.tiling`). ``tile=None`` picks a size for the
    device and restores photos of up to ``WHOLE_PIXELS`` whole, ``tile=0`` never tiles. ``half`` runs the generator in float16 (GPU only).
    """

    method = "gan"

    def __init__(self, generator: nn.Module, cfg: RunConfig, device: torch.device,
                 tile: int | None = None, overlap: int | None = None, half: bool = False,
                 weights: str | os.PathLike | None = None):
        self.tile, self.overlap = check_tile_settings(tile, overlap, half, device,
                                                      getattr(generator, "multiple", 1))
        # Photos of at most this many pixels run whole (an explicit tile is a memory bound).
        self.whole_pixels = self.tile**2 if tile is not None else max(self.tile**2, WHOLE_PIXELS)
        self.generator, self.cfg, self.device = generator, cfg, device
        self.weights = weights
        self.dtype = torch.float16 if half else torch.float32
        self.generator.to(self.dtype)
        self._inference_model = None

    @classmethod
    def load(cls, weights: str | os.PathLike | None, device: torch.device, tile: int | None = None,
             overlap: int | None = None, half: bool = False, test_mode: str | None = None,
             refiner: bool = False) -> GanRestorer:
        """Strictly load ``weights`` (safetensors or checkpoint), or the bundled generator;
        ``refiner`` says whether a hybrid refiner (blurred + deconvolved inputs) is expected."""
        path = Path(weights) if weights is not None else bundled_gan_weights()
        if weights is None and not path.is_file():
            raise FileNotFoundError(f"{path}: no bundled weights in this installation; pass --weights")
        if path.is_dir():
            raise FileNotFoundError(f"{path}: is a folder; --weights takes a .safetensors or .pt file")
        generator, cfg = load_generator(path, device, test_mode=test_mode)
        if (cfg.model.inputs != "blurred") != refiner:
            wanted = "--method hybrid" if not refiner else "--method gan"
            raise ValueError(f"{path}: a {'hybrid refiner' if cfg.model.inputs != 'blurred' else 'gan'} "
                             f"model (preset {cfg.preset}); use it with {wanted}")
        return cls(generator, cfg, device, tile=tile, overlap=overlap, half=half, weights=path)

    def inference_model(self) -> nn.Module:
        """What restores: the generator rewritten for inference (BatchNorm folded, sub-pixel
        upsampling: the same outputs, about half the work; :mod:`darkdeblur.models.inference_form`),
        or the generator itself when a module is in training mode (``set_test_mode(..., "batch")``)."""
        if any(m.training for m in self.generator.modules()):
            return self.generator
        if self._inference_model is None:  # rewritten in float32, then cast: folding loses no precision
            self._inference_model = for_inference(copy.deepcopy(self.generator).float()).to(self.dtype)
        return self._inference_model

    @torch.inference_mode()
    def restore_tensor(self, blurred: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> restored, same shape, on CPU, float32."""
        restored = self.inference_model()(blurred.to(self.device, self.dtype))
        return restored.float().clamp(0, 1).cpu()

    def restore_array(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 or uint16 (H, W, 3) -> restored, same dtype; tiled when over ``whole_pixels``."""
        height, width = pixels.shape[:2]
        if not self.tile or height * width <= self.whole_pixels:
            restored = self.restore_tensor(to_tensor(pixels))[0].permute(1, 2, 0).numpy()
            return quantize(restored, pixels.dtype)
        return restore_tiled(self.restore_tensor, pixels, self.tile, self.overlap)

    def restore_checked(self, rgb: np.ndarray) -> Restoration:
        return Restoration(self.restore_array(rgb))

    def describe(self) -> dict:
        return {"method": self.method, "weights": str(self.weights) if self.weights else None,
                "preset": self.cfg.preset}
