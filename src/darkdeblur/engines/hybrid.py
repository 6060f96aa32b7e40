"""The hybrid engine: the classical engine deconvolves, a trained refiner finishes the photo.

The ``dcp`` engine finds and inverts the camera-shake kernel but rings, amplifies noise, and
fails where one kernel per region does not fit (moving objects). The refiner, trained with the
paper's losses on the engine's own deconvolutions of training crops
(:mod:`darkdeblur.data.refiner_set`), sees the blurred photo and the deconvolution side by side
and returns the restored photo: it starts from the deconvolution, removes its artefacts, and may
move each pixel back towards the blurred photo where the deconvolution is wrong.

When the classical engine leaves the whole photo unchanged (tiny, flat, saturated, no reliable
kernel), so does this one, with the same warning: the refiner is for deconvolutions.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..pixels import quantize, to_tensor
from ..tiling import blend_tiles, tile_spans
from .base import Restoration, Restorer
from .dcp import DcpRestorer
from .gan import GanRestorer

BUNDLED_HYBRID_WEIGHTS = "hybrid.safetensors"
REFINER_INPUTS = "blurred+deconvolved"


def bundled_hybrid_weights() -> Path:
    return Path(str(resources.files("darkdeblur") / "weights" / BUNDLED_HYBRID_WEIGHTS))


class HybridRestorer(Restorer):
    """``dcp`` estimation and deconvolution, then the refiner (a 6-channel generator)."""

    method = "hybrid"

    def __init__(self, dcp: DcpRestorer, refiner: GanRestorer):
        if refiner.cfg.model.inputs != REFINER_INPUTS:
            raise ValueError(f"{refiner.weights}: a {refiner.cfg.model.inputs!r} model (preset "
                             f"{refiner.cfg.preset}), not a hybrid refiner; use it with --method gan")
        self.dcp, self.refiner = dcp, refiner

    @classmethod
    def load(cls, dcp: DcpRestorer, weights: str | os.PathLike | None, device: torch.device,
             tile: int | None = None, overlap: int | None = None, half: bool = False) -> HybridRestorer:
        """The refiner ``weights`` (default: the bundled ones) behind ``dcp``."""
        path = Path(weights) if weights is not None else bundled_hybrid_weights()
        if weights is None and not path.is_file():
            raise FileNotFoundError(f"{path}: no bundled hybrid weights in this installation; pass --weights")
        return cls(dcp, GanRestorer.load(path, device, tile=tile, overlap=overlap, half=half,
                                         refiner=True))

    def refine(self, blurred: torch.Tensor, deconvolved: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) each, float32 in [0, 1] -> the refined (1, 3, h, w) on the CPU."""
        return self.refiner.restore_tensor(torch.cat([blurred, deconvolved], 1))

    def restore_checked(self, rgb: np.ndarray) -> Restoration:
        first = self.dcp.restore_checked(rgb)
        if first.kernel is None:  # the photo was left unchanged, and says why
            return first
        return Restoration(self.refine_array(rgb, first.image), first.kernel, first.warnings)

    def refine_array(self, rgb: np.ndarray, deconvolved: np.ndarray) -> np.ndarray:
        """The refiner over a whole photo: whole when small enough, else in blended tiles."""
        height, width = rgb.shape[:2]
        tile, overlap = self.refiner.tile, self.refiner.overlap
        if not tile or height * width <= self.refiner.whole_pixels:
            restored = self.refine(to_tensor(rgb), to_tensor(deconvolved))[0].permute(1, 2, 0).numpy()
            return quantize(restored, rgb.dtype)
        rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)

        def refine_tile(i: int, j: int, blurred: torch.Tensor) -> torch.Tensor:
            (top, bottom), (left, right) = rows[i], cols[j]
            return self.refine(blurred, to_tensor(deconvolved[top:bottom, left:right]))

        return blend_tiles(refine_tile, rgb, rows, cols)

    def describe(self) -> dict:
        return {**self.dcp.describe(), "method": self.method,
                "weights": str(self.refiner.weights), "preset": self.refiner.cfg.preset}
