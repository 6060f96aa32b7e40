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
and the one that tells a right deconvolution from a wrong one. One trained with
``inputs="blurred+deconvolved+misfit+fallback"`` also gets the share of the way back to the photo
that the dcp engine's fall-back rule gives each pixel (from the misfit and the photo's noise);
its own share is a change of that one, so it starts where the dcp engine ends. One trained with
``inputs="blurred+deconvolved+misfit+weak"`` gets, after the misfit, the photo deconvolved again
with the same kernels at a fraction of the prior's weight (``ModelConfig.weak_factor``): the
texture the full weight smooths away, with more ringing and noise, for the refiner to take where
it is right.

When the classical engine leaves the whole photo unchanged (tiny, flat, saturated, no reliable
kernel), so does this one, with the same warning: the refiner is for deconvolutions.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..blur.misfit import MisfitFallback
from ..pixels import quantize, to_tensor
from ..tiling import blend_tiles, tile_spans
from .base import Restoration, Restorer
from .dcp import DcpRestorer, misfit_map, noise_sigma
from .gan import GanRestorer

BUNDLED_HYBRID_WEIGHTS = "hybrid.safetensors"
# what a refiner may see: (blurred, deconvolved), or also how well each region's deconvolution
# explains its blur (darkdeblur.blur.misfit), a channel between the two, and the share the dcp
# engine's fall-back rule gives each pixel, a second one; or the weak deconvolution (three)
REFINER_INPUTS = ("blurred+deconvolved", "blurred+deconvolved+misfit", "blurred+deconvolved+misfit+fallback",
                  "blurred+deconvolved+misfit+weak")


def bundled_hybrid_weights() -> Path:
    return Path(str(resources.files("darkdeblur") / "weights" / BUNDLED_HYBRID_WEIGHTS))


def map_tensor(pixels: np.ndarray) -> torch.Tensor:
    """A map a refiner sees, as its input channels in [0, 1]: uint8 (H, W) -> (1, 1, H, W), or a
    photo-like (H, W, 3) -> (1, 3, H, W)."""
    if pixels.ndim == 3:
        return to_tensor(pixels)
    return torch.from_numpy(pixels).float()[None, None] / 255.0


class HybridRestorer(Restorer):
    """``dcp`` estimation and deconvolution, then the refiner (a generator of 6-10 input channels)."""

    method = "hybrid"

    def __init__(self, dcp: DcpRestorer, refiner: GanRestorer):
        if refiner.cfg.model.inputs not in REFINER_INPUTS:
            raise ValueError(f"{refiner.weights}: a {refiner.cfg.model.inputs!r} model (preset "
                             f"{refiner.cfg.preset}), not a hybrid refiner; use it with --method gan")
        self.dcp, self.refiner = dcp, refiner
        model = refiner.cfg.model
        self.sees_misfit, self.sees_fallback, self.sees_weak = model.sees_misfit, model.sees_fallback, model.sees_weak
        self.weak_factor = model.weak_factor
        self.rule = MisfitFallback(*model.fallback_rule)

    @classmethod
    def load(cls, dcp: DcpRestorer, weights: str | os.PathLike | None, device: torch.device,
             tile: int | None = None, overlap: int | None = None, half: bool = False) -> HybridRestorer:
        """The refiner ``weights`` (default: the bundled ones) behind ``dcp``."""
        path = Path(weights) if weights is not None else bundled_hybrid_weights()
        if weights is None and not path.is_file():
            raise FileNotFoundError(f"{path}: no bundled hybrid weights in this installation; pass --weights")
        return cls(dcp, GanRestorer.load(path, device, tile=tile, overlap=overlap, half=half,
                                         refiner=True))

    def refine(self, blurred: torch.Tensor, deconvolved: torch.Tensor, *maps: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) each (and the maps a refiner sees between them: the misfit level and the
        rule's share, (1, 1, h, w), or the weak deconvolution, (1, 3, h, w)), float32 in [0, 1] ->
        the refined (1, 3, h, w) on the CPU."""
        return self.refiner.restore_tensor(torch.cat([blurred, *maps, deconvolved], 1))

    def restore_checked(self, rgb: np.ndarray) -> Restoration:
        first = self.dcp.restore_checked(rgb)
        if first.kernel is None:  # the photo was left unchanged, and says why
            return first
        return Restoration(self.refine_array(rgb, first.image, *self.maps(rgb, first.image, first.kernel)),
                           first.kernel, first.warnings)

    def maps(self, rgb: np.ndarray, deconvolved: np.ndarray, kernels: np.ndarray) -> list[np.ndarray]:
        """The maps this refiner sees between the photo and its deconvolution: uint8 (H, W) levels
        and shares, or the (H, W, 3) weak deconvolution (in the photo's type)."""
        if not self.sees_misfit:
            return []
        sigma = noise_sigma(rgb)
        levels = self.misfit_map(rgb, deconvolved, kernels, sigma)
        if self.sees_fallback:
            return [levels, self.rule.share_map(levels, sigma)]
        if self.sees_weak:
            return [levels, self.dcp.deconvolve_grid(rgb, kernels, self.weak_factor, sigma)]
        return [levels]

    def misfit_map(self, rgb: np.ndarray, deconvolved: np.ndarray, kernels: np.ndarray,
                   sigma: float | None = None) -> np.ndarray:
        """uint8 (H, W): the misfit level of each of the dcp engine's regions, blended
        (:func:`darkdeblur.engines.dcp.misfit_map`); ``sigma``: the photo's noise (estimated if None)."""
        rows, cols = self.dcp.regions(*rgb.shape[:2])
        sigma = noise_sigma(rgb) if sigma is None else sigma
        return misfit_map(rgb, deconvolved, kernels, rows, cols, sigma ** 2)

    def refine_array(self, rgb: np.ndarray, deconvolved: np.ndarray, *maps: np.ndarray) -> np.ndarray:
        """The refiner over a whole photo (``maps``: what :meth:`maps` returns): whole when small
        enough, else in blended tiles."""
        height, width = rgb.shape[:2]
        tile, overlap = self.refiner.tile, self.refiner.overlap

        def channels(rows: slice, cols: slice) -> list[torch.Tensor]:
            return [map_tensor(m[rows, cols]) for m in maps]

        if not tile or height * width <= self.refiner.whole_pixels:
            restored = self.refine(to_tensor(rgb), to_tensor(deconvolved), *channels(slice(None), slice(None)))
            return quantize(restored[0].permute(1, 2, 0).numpy(), rgb.dtype)
        rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)

        def refine_tile(i: int, j: int, blurred: torch.Tensor) -> torch.Tensor:
            (top, bottom), (left, right) = rows[i], cols[j]
            return self.refine(blurred, to_tensor(deconvolved[top:bottom, left:right]),
                               *channels(slice(top, bottom), slice(left, right)))

        return blend_tiles(refine_tile, rgb, rows, cols)

    def describe(self) -> dict:
        return {**self.dcp.describe(), "method": self.method,
                "weights": str(self.refiner.weights), "preset": self.refiner.cfg.preset}
