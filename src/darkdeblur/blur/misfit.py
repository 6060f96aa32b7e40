"""How much of a blurred photo its deconvolution fails to explain, beyond the noise.

A deconvolution ``d`` of a blurred photo ``b`` made with the right kernel ``k``, blurred again,
gives back ``b`` up to the noise: ``k * d - b`` is about the noise alone. With a wrong kernel
(a moving object, a region one kernel does not fit), ``d`` either cannot explain ``b`` or rings
to do so, and the prior keeps it from ringing freely, so the misfit grows. On the dev photos the
noise-corrected ratio

    misfit = max(mean((k * d - b)^2) - s^2, 0) / max(mean((k * b - b)^2) - c s^2, tiny)

(``s^2`` the noise variance, ``c s^2`` what the noise adds to the denominator) separates the
regions where the deconvolution gained from those where it lost: regions below 0.05 gained
+4.4 dB on average on clean Kodak24 and +3.8 dB on real GOPRO frames, regions above 0.4 lost
1.3 to 3.4 dB (``docs/training-notes.md``). This is the evidence the refiner cannot compute from
(blurred, deconvolved) alone: it does not know the kernel.

``misfit_level`` maps it to the refiner's input channel, in [0, 1]: the square root spreads the
small values where good and bad deconvolutions differ; 1 means "no deconvolution to trust".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .degrade import blur

LUMA = (0.299, 0.587, 0.114)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W)."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)


def trim_kernel(kernel: np.ndarray) -> np.ndarray:
    """A kernel without its all-zero border (the engine's grid pads kernels to the largest one):
    the same blur, and the margin the misfit leaves out is the kernel's real reach."""
    if not kernel.any():
        return kernel
    pad = 0
    while pad < kernel.shape[0] // 2 and not (kernel[pad].any() or kernel[-pad - 1].any()
                                             or kernel[:, pad].any() or kernel[:, -pad - 1].any()):
        pad += 1
    return np.ascontiguousarray(kernel[pad:kernel.shape[0] - pad, pad:kernel.shape[1] - pad])


def deconvolution_misfit(blurred: torch.Tensor, deconvolved: torch.Tensor, kernel: torch.Tensor,
                         noise_variance: float) -> float:
    """The noise-corrected misfit (module docstring) of (B, 3, H, W) images in [0, 1] whose
    deconvolution was made with ``kernel`` (k, k), on their luminance, away from a kernel's width
    of the border; ``noise_variance`` is the colour channels' (independent noise in each). An
    image too small to measure gets 1."""
    side = kernel.shape[-1]
    inner = (..., slice(side, -side), slice(side, -side))
    if blurred.shape[-1] <= 2 * side + 4 or blurred.shape[-2] <= 2 * side + 4:
        return 1.0
    grey_b, grey_d = luminance(blurred), luminance(deconvolved)
    noise_variance = noise_variance * sum(w * w for w in LUMA)  # the luminance's share of it
    fit = float((blur(grey_d, kernel) - grey_b)[inner].square().mean())
    baseline = float((blur(grey_b, kernel) - grey_b)[inner].square().mean())
    centre = float(kernel[side // 2, side // 2])
    # E[(k * n - n)^2] = s^2 * sum((k - delta)^2) for white noise n of variance s^2
    noise_in_baseline = noise_variance * (float(kernel.square().sum()) - 2 * centre + 1)
    return max(fit - noise_variance, 0.0) / max(baseline - noise_in_baseline, 1e-8)


def misfit_level(misfit: float | None) -> float:
    """The refiner's input value for a misfit (None: no kernel, the photo left as it was)."""
    if misfit is None:
        return 1.0
    return min(max(misfit, 0.0), 1.0) ** 0.5


@dataclass(frozen=True)
class MisfitFallback:
    """How far a region's deconvolution moves back to the photo for its misfit level ``q`` and
    the photo's noise ``sigma``: ``clip((q - lo - noise_slope * sigma) / width, 0, 1)``.

    A noisier photo gets a smoother deconvolution, which explains less of the blur while still
    gaining, hence the noise term. The defaults are the best such rule on the refiner's training
    crops (``python benchmarks/fit_misfit_fallback.py``: the share that minimises each crop's
    error, over 3,039 crops of the three training sets), not on the dev photos.
    """

    lo: float = 0.0
    width: float = 0.4
    noise_slope: float = 14.0

    def share(self, level: np.ndarray, sigma: float) -> np.ndarray:
        """Per-pixel share back to the photo, float32, for misfit levels in [0, 1]."""
        return np.clip((level - self.lo - self.noise_slope * sigma) / self.width, 0.0, 1.0).astype(np.float32)

    def share_map(self, level_map: np.ndarray, sigma: float, band: int = 512) -> np.ndarray:
        """uint8 (H, W): :meth:`share` x 255 for the uint8 misfit map ``level_map``, a band of rows
        at a time (a float map of 24 megapixels would be 96 MB); the hybrid refiner's input."""
        out = np.empty_like(level_map)
        for top in range(0, level_map.shape[0], band):
            share = self.share(level_map[top:top + band].astype(np.float32) / 255.0, sigma)
            out[top:top + band] = np.rint(share * 255).astype(np.uint8)
        return out

    def apply(self, photo: np.ndarray, deconvolved: np.ndarray, level_map: np.ndarray, sigma: float,
              band: int = 512) -> np.ndarray:
        """``deconvolved`` moved back towards ``photo`` (same dtype), a band of rows at a time
        (float copies of a 24-megapixel photo would take gigabytes); ``level_map`` is uint8 (H, W)."""
        out = np.empty_like(deconvolved)
        top_value = float(np.iinfo(photo.dtype).max)
        for top in range(0, photo.shape[0], band):
            rows = slice(top, top + band)
            share = self.share(level_map[rows].astype(np.float32) / 255.0, sigma)[..., None]
            d = deconvolved[rows].astype(np.float32)
            mixed = d + share * (photo[rows].astype(np.float32) - d)
            out[rows] = np.clip(np.rint(mixed), 0, top_value).astype(photo.dtype)
        return out
