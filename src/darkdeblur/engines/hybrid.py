"""The hybrid engine: the classical engine deconvolves, a trained refiner finishes the photo.

The ``dcp`` engine finds and inverts the camera-shake kernel but rings, amplifies noise, and
fails where one kernel per region does not fit (moving objects). The refiner, trained with the
paper's losses on the engine's own deconvolutions of training crops
(:mod:`darkdeblur.data.refiner_set`), sees the blurred photo and the deconvolution side by side
and returns the restored photo: it starts from the deconvolution, removes its artefacts, and may
move each pixel back towards the blurred photo where the deconvolution is wrong.

A refiner trained with ``inputs="blurred+deconvolved+misfit"`` also gets, between the two, a map
of how much of the blur each region's deconvolution fails to explain beyond the noise
(:mod:`darkdeblur.blur.misfit`, one value per region of the engine, blended like its
deconvolutions): evidence the network cannot compute itself, since it never sees the kernels,
and the one that tells a right deconvolution from a wrong one.

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
from .dcp import DcpRestorer, misfit_map, noise_sigma
from .gan import GanRestorer

BUNDLED_HYBRID_WEIGHTS = "hybrid.safetensors"
# what a refiner may see: (blurred, deconvolved), or also how well each region's deconvolution
# explains its blur (darkdeblur.blur.misfit), a channel between the two
REFINER_INPUTS = ("blurred+deconvolved", "blurred+deconvolved+misfit")


def bundled_hybrid_weights() -> Path:
    return Path(str(resources.files("darkdeblur") / "weights" / BUNDLED_HYBRID_WEIGHTS))


class HybridRestorer(Restorer):
    """``dcp`` estimation and deconvolution, then the refiner (a 6-channel generator)."""

    method = "hybrid"

    def __init__(self, dcp: DcpRestorer, refiner: GanRestorer):
        if refiner.cfg.model.inputs not in REFINER_INPUTS:
            raise ValueError(f"{refiner.weights}: a {refiner.cfg.model.inputs!r} model (preset "
                             f"{refiner.cfg.preset}), not a hybrid refiner; use it with --method gan")
        self.dcp, self.refiner = dcp, refiner
        self.sees_misfit = refiner.cfg.model.inputs.endswith("+misfit")

    @classmethod
    def load(cls, dcp: DcpRestorer, weights: str | os.PathLike | None, device: torch.device,
             tile: int | None = None, overlap: int | None = None, half: bool = False) -> HybridRestorer:
        """The refiner ``weights`` (default: the bundled ones) behind ``dcp``."""
        path = Path(weights) if weights is not None else bundled_hybrid_weights()
        if weights is None and not path.is_file():
            raise FileNotFoundError(f"{path}: no bundled hybrid weights in this installation; pass --weights")
        return cls(dcp, GanRestorer.load(path, device, tile=tile, overlap=overlap, half=half,
                                         refiner=True))

    def refine(self, blurred: torch.Tensor, deconvolved: torch.Tensor,
               misfit: torch.Tensor | None = None) -> torch.Tensor:
        """(1, 3, h, w) each (and the (1, 1, h, w) misfit level for a refiner that sees it),
        float32 in [0, 1] -> the refined (1, 3, h, w) on the CPU."""
        inputs = [blurred, misfit, deconvolved] if self.sees_misfit else [blurred, deconvolved]
        return self.refiner.restore_tensor(torch.cat(inputs, 1))

    def restore_checked(self, rgb: np.ndarray) -> Restoration:
        first = self.dcp.restore_checked(rgb)
        if first.kernel is None:  # the photo was left unchanged, and says why
            return first
        misfit = self.misfit_map(rgb, first.image, first.kernel) if self.sees_misfit else None
        return Restoration(self.refine_array(rgb, first.image, misfit), first.kernel, first.warnings)

    def misfit_map(self, rgb: np.ndarray, deconvolved: np.ndarray, kernels: np.ndarray) -> np.ndarray:
        """uint8 (H, W): the misfit level of each of the dcp engine's regions, blended
        (:func:`darkdeblur.engines.dcp.misfit_map`)."""
        rows, cols = self.dcp.regions(*rgb.shape[:2])
        return misfit_map(rgb, deconvolved, kernels, rows, cols, noise_sigma(rgb) ** 2)

    def refine_array(self, rgb: np.ndarray, deconvolved: np.ndarray, misfit: np.ndarray | None = None) -> np.ndarray:
        """The refiner over a whole photo: whole when small enough, else in blended tiles."""
        height, width = rgb.shape[:2]
        tile, overlap = self.refiner.tile, self.refiner.overlap
        level = (lambda rows, cols: torch.from_numpy(misfit[rows, cols]).float()[None, None] / 255.0) \
            if misfit is not None else (lambda rows, cols: None)
        if not tile or height * width <= self.refiner.whole_pixels:
            restored = self.refine(to_tensor(rgb), to_tensor(deconvolved), level(slice(None), slice(None)))
            return quantize(restored[0].permute(1, 2, 0).numpy(), rgb.dtype)
        rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)

        def refine_tile(i: int, j: int, blurred: torch.Tensor) -> torch.Tensor:
            (top, bottom), (left, right) = rows[i], cols[j]
            return self.refine(blurred, to_tensor(deconvolved[top:bottom, left:right]),
                               level(slice(top, bottom), slice(left, right)))

        return blend_tiles(refine_tile, rgb, rows, cols)

    def describe(self) -> dict:
        return {**self.dcp.describe(), "method": self.method,
                "weights": str(self.refiner.weights), "preset": self.refiner.cfg.preset}
