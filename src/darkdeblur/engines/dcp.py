"""The classical engine: estimate the camera-shake kernel from the photo, then invert it.

1. Luminance at a working resolution (large photos are downscaled so the kernel stays within
   ``kernel_size``), cut into overlapping regions of ``region`` pixels a side. One kernel rarely
   fits a whole photo: objects move, and camera rotation blurs corners differently. So every
   region gets its own kernel, estimated on its most textured window of ``crop`` pixels (strong
   edges are what reveal the blur) by :func:`darkdeblur.blur.kernel_estimation.estimate_kernel`
   (L0 gradients, or dark channel + L0 gradients); it is rescaled to the photo's resolution.
2. :func:`darkdeblur.blur.nonblind.deconvolve` of each region with its kernel, per colour channel
   at full resolution, the prior's weight set from the noise level scikit-image estimates; the
   regions are blended with the smooth weights of :mod:`darkdeblur.tiling` (this is Hirsch et
   al.'s efficient filter flow, 2010, with one kernel per patch), which also bounds memory.

Guard rails: a photo that is tiny, flat or mostly saturated returns unchanged with a one-line
warning. A region whose kernel is degenerate, or whose deconvolution explains its blurred window
no better than the blurred window itself, keeps its blurred pixels; if no region has a reliable
kernel, the photo returns unchanged with the reason.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..blur import blur
from ..blur.kernel_estimation import EstimationSettings, downscale, estimate_kernel, resize_kernel
from ..blur.misfit import MisfitFallback, deconvolution_misfit, luminance, misfit_level, trim_kernel
from ..blur.nonblind import deconvolve, noise_adaptive_weight
from ..pixels import to_tensor
from ..tiling import blend_tiles, round_up, span_weights, tile_spans
from .base import Restoration, Restorer



@dataclass(frozen=True)
class DcpSettings:
    """Settings of the classical engine (``kernel_size`` is at the working resolution)."""

    # L0 gradients by default, as ``load_engine("dcp")`` and the CLI: the dark-channel variant
    # (``--prior dark``) was slower and weaker here (benchmarks/RESULTS.md)
    estimation: EstimationSettings = field(default_factory=lambda: EstimationSettings(dark_channel=False))
    working_side: int = 1280   # longer side at which the kernel is estimated
    region: int = 512          # side of the regions that get a kernel each (working resolution)
    region_overlap: int = 128  # overlap of neighbouring regions, blended smoothly
    crop: int = 256            # side of the window in each region the kernel is estimated on
    max_tile: int = 1024       # largest side deconvolved in one piece (memory)
    exponent: float = 0.8      # hyper-Laplacian exponent of the deconvolution prior
    min_side: int = 48
    flat_std: float = 0.01     # luminance standard deviation below which a photo is flat
    max_saturated: float = 0.5  # share of clipped pixels above which a photo is left alone
    # Each region moves back to the photo as far as its deconvolution fails to explain its blur
    # (darkdeblur.blur.misfit); None: the plain deconvolution (what the hybrid refiner refines)
    fallback: MisfitFallback | None = field(default_factory=MisfitFallback)

    @property
    def kernel_size(self) -> int:
        return self.estimation.kernel_size


class DcpRestorer(Restorer):
    """Blind deconvolution with the dark channel prior (Pan et al. 2016); no training."""

    method = "dcp"

    def __init__(self, settings: DcpSettings = DcpSettings(), device: torch.device | str = "cpu",
                 progress: bool = False):
        self.settings, self.device, self.progress = settings, torch.device(device), progress

    def describe(self) -> dict:
        variant = "dark channel + L0 gradients" if self.settings.estimation.dark_channel else "L0 gradients"
        fallback = self.settings.fallback
        return {"method": self.method, "prior": variant, "kernel_size": self.settings.kernel_size,
                "misfit_fallback": None if fallback is None else asdict(fallback)}

    # ------------------------------------------------------------------------------- stages

    def luminance(self, rgb: np.ndarray, band: int = 512) -> torch.Tensor:
        """uint8/uint16 (H, W, 3) -> (H, W) float32 on the device, converted a band of rows at a
        time: a float copy of a 24-megapixel photo alone would take 288 MB."""
        bands = [luminance(to_tensor(rgb[top:top + band]))[0, 0] for top in range(0, rgb.shape[0], band)]
        return torch.cat(bands).to(self.device)

    def textured_window(self, grey: torch.Tensor) -> tuple[slice, slice]:
        """The ``crop``-sided window with the most gradient energy (clipped areas excluded)."""
        side = min(self.settings.crop, *grey.shape)
        gx = (grey[:, 1:] - grey[:, :-1]).abs()[:-1]
        gy = (grey[1:] - grey[:-1]).abs()[:, :-1]
        usable = ((grey > 0.02) & (grey < 0.98))[:-1, :-1]
        energy = ((gx + gy) * usable)[None, None]
        stride = max(side // 8, 1)
        scores = F.avg_pool2d(energy, side - 1, stride=stride)[0, 0]
        row, col = divmod(int(scores.argmax()), scores.shape[1])
        top, left = row * stride, col * stride
        return slice(top, top + side), slice(left, left + side)

    def unsuitable(self, grey: torch.Tensor) -> str | None:
        """Why a photo should be returned unchanged, or None."""
        s = self.settings
        if min(grey.shape) < s.min_side:
            return f"too small to estimate a blur ({grey.shape[1]}x{grey.shape[0]} px); returned unchanged"
        if float(grey.std()) < s.flat_std:
            return "flat image (no edges to estimate a blur from); returned unchanged"
        clipped = float(((grey <= 0.01) | (grey >= 0.99)).float().mean())
        if clipped > s.max_saturated:
            return f"{clipped:.0%} of the pixels are clipped; returned unchanged"
        return None

    @staticmethod
    def degenerate(kernel: torch.Tensor) -> str | None:
        if not bool(torch.isfinite(kernel).all()) or float(kernel.sum()) <= 0:
            return "kernel estimation failed (no finite kernel); returned unchanged"
        spread = 1.0 / float((kernel * kernel).sum())  # pixels the kernel's mass covers
        if spread > 0.25 * kernel.numel():
            return "kernel estimation failed (the kernel spread over its whole window); returned unchanged"
        return None

    def explains_blur(self, window: torch.Tensor, kernel: torch.Tensor, weight: float) -> bool:
        """Does the deconvolved window, blurred again, fit the blurred window better than the
        blurred window itself does? A kernel that fails this only adds ringing."""
        blurred = window[None, None]
        latent = deconvolve(blurred, kernel, weight, self.settings.exponent).clamp(0, 1)
        inner = (slice(None), slice(None), slice(kernel.shape[0], -kernel.shape[0] or None),
                 slice(kernel.shape[1], -kernel.shape[1] or None))
        fit = (blur(latent, kernel) - blurred)[inner].square().mean()
        baseline = (blur(blurred, kernel) - blurred)[inner].square().mean()
        return bool(fit < baseline)

    # -------------------------------------------------------------------------------- restore

    def estimate_window(self, window: torch.Tensor, weight: float, bar=None,
                        share: int = 0) -> tuple[torch.Tensor | None, str | None]:
        """Kernel of one grey window at the working resolution, or None with the reason; the
        progress ``bar`` advances by ``share`` over the estimation."""
        step = None
        if bar is not None:
            start = bar.n
            step = lambda fraction: bar.update(start + round(share * fraction) - bar.n)  # noqa: E731
        kernel = estimate_kernel(window, self.settings.estimation, progress=step)
        reason = self.degenerate(kernel)
        if reason is None and not self.explains_blur(window, kernel, weight):
            reason = "the estimated kernel does not explain the blur; returned unchanged"
        return (None, reason) if reason else (kernel, None)

    def tile_grid(self, height: int, width: int, scale: float) -> tuple[list, list]:
        """Full-resolution spans of the regions that get a kernel each (see module docstring)."""
        side = round(self.settings.region / scale)
        overlap = round(self.settings.region_overlap / scale)
        return tile_spans(height, side, overlap), tile_spans(width, side, overlap)

    def working_scale(self, height: int, width: int) -> float:
        """The scale kernels are estimated at (large photos are downscaled)."""
        return min(1.0, self.settings.working_side / max(height, width))

    def regions(self, height: int, width: int) -> tuple[list, list]:
        """The regions a photo of this size gets a kernel each for: (row spans, column spans),
        in the order of :attr:`Restoration.kernel`'s grid."""
        return self.tile_grid(height, width, self.working_scale(height, width))

    def restore_checked(self, rgb: np.ndarray) -> Restoration:
        # Shown only for photos that take more than a second.
        bar = tqdm(total=100, desc="dcp", unit="%", leave=False, delay=1.0, disable=not self.progress)
        try:
            return self._restore(rgb, bar)
        finally:
            bar.close()

    def _restore(self, rgb: np.ndarray, bar) -> Restoration:
        s = self.settings
        grey = self.luminance(rgb)
        reason = self.unsuitable(grey)
        if reason:
            return Restoration(rgb.copy(), None, [reason])
        sigma = noise_sigma(rgb)
        weight = noise_adaptive_weight(sigma)
        height, width = grey.shape
        scale = self.working_scale(height, width)
        working = downscale(grey, scale)
        rows, cols = self.tile_grid(height, width, scale)
        kernels: dict[tuple[int, int], torch.Tensor] = {}
        reasons = []
        share = 80 // (len(rows) * len(cols))  # of the progress bar, per region
        for i, (top, bottom) in enumerate(rows):
            for j, (left, right) in enumerate(cols):
                region = working[round(top * scale):round(bottom * scale), round(left * scale):round(right * scale)]
                if self.unsuitable(region):
                    bar.update(share)
                    continue
                wr, wc = self.textured_window(region)
                kernel, reason = self.estimate_window(region[wr, wc], weight, bar, share)
                if kernel is None:
                    reasons.append(reason)
                    continue
                kernels[i, j] = kernel if scale == 1.0 else upscale_kernel(kernel, scale)
        if not kernels:
            return Restoration(rgb.copy(), None, [reasons[0] if reasons else
                                                  "no region with edges to estimate a blur from; returned unchanged"])
        restored = self.deconvolve_regions(rgb, rows, cols, kernels, weight)
        grid = kernel_grid(kernels, len(rows), len(cols))
        warnings = []
        if s.fallback is not None:
            levels = misfit_map(rgb, restored, grid, rows, cols, sigma**2)
            restored = s.fallback.apply(rgb, restored, levels, sigma)
            kept = sum(float(s.fallback.share(np.float32(self.region_level(levels, rows[i], cols[j])), sigma)) > 0.5
                       for i, j in kernels)
            if kept:
                warnings.append(f"{kept} of {len(rows) * len(cols)} regions kept closer to the photo than to "
                                "their deconvolution (it explains their blur poorly)")
        bar.update(100 - bar.n)
        if len(kernels) < len(rows) * len(cols):
            warnings.append(f"{len(rows) * len(cols) - len(kernels)} of {len(rows) * len(cols)} regions "
                            "had no reliable blur estimate and were left unchanged")
        return Restoration(restored, grid, warnings)

    @staticmethod
    def region_level(levels: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> float:
        """A region's misfit level, read at its centre in the blended map (0-1)."""
        return float(levels[(rows[0] + rows[1]) // 2, (cols[0] + cols[1]) // 2]) / 255.0

    def deconvolve_grid(self, rgb: np.ndarray, grid: np.ndarray, factor: float = 1.0,
                        sigma: float | None = None) -> np.ndarray:
        """The photo deconvolved again with a restoration's kernel grid (:attr:`Restoration.kernel`;
        regions without a kernel stay as they are), at ``factor`` times the noise-adaptive weight:
        with 1, the plain deconvolution; below, the hybrid engine's weak one. ``sigma``: the
        photo's noise, if known (estimated otherwise)."""
        rows, cols = self.regions(*rgb.shape[:2])
        if grid.shape[:2] != (len(rows), len(cols)):
            raise ValueError(f"a kernel grid of {grid.shape[0]}x{grid.shape[1]} regions for a photo the engine "
                             f"splits into {len(rows)}x{len(cols)}")
        kernels = {(i, j): torch.from_numpy(np.ascontiguousarray(grid[i, j]))
                   for i in range(grid.shape[0]) for j in range(grid.shape[1]) if grid[i, j].any()}
        sigma = noise_sigma(rgb) if sigma is None else sigma
        return self.deconvolve_regions(rgb, rows, cols, kernels, factor * noise_adaptive_weight(sigma))

    def deconvolve_regions(self, rgb: np.ndarray, rows, cols, kernels, weight: float) -> np.ndarray:
        """Each region deconvolved with its own kernel (or left as it is), blended smoothly.

        Regions of large photos are large (a sixth of 24 megapixels); their Fourier solves would
        need gigabytes, so they are deconvolved as tiles of at most ``max_tile`` pixels a side,
        each with the kernel of the region its centre lies in.
        """
        size = max(k.shape[0] for k in kernels.values())
        side = max(self.settings.max_tile, 2 * round_up(4 * size, 8))
        tile_rows = rows if rows[0][1] <= side else tile_spans(rgb.shape[0], side, round_up(4 * size, 8))
        tile_cols = cols if cols[0][1] <= side else tile_spans(rgb.shape[1], side, round_up(4 * size, 8))

        def solve(i: int, j: int, tile: torch.Tensor) -> torch.Tensor:
            kernel = kernels.get((region_of(tile_rows[i], rows), region_of(tile_cols[j], cols)))
            if kernel is None:
                return tile
            # one channel at a time: the solver holds about twenty copies of what it is given
            channels = [deconvolve(tile[:, c:c + 1].to(self.device), kernel, weight, self.settings.exponent)
                        for c in range(tile.shape[1])]
            return torch.cat(channels, 1).clamp(0, 1).cpu()

        return blend_tiles(solve, rgb, tile_rows, tile_cols)


def region_of(span: tuple[int, int], regions: list[tuple[int, int]]) -> int:
    """Index of the region whose centre is nearest the centre of ``span``."""
    centre = (span[0] + span[1]) / 2
    return min(range(len(regions)), key=lambda r: abs((regions[r][0] + regions[r][1]) / 2 - centre))


def upscale_kernel(kernel: torch.Tensor, scale: float) -> torch.Tensor:
    """A kernel estimated on a copy downscaled by ``scale``, at the full resolution."""
    size = round(kernel.shape[0] / scale)
    return resize_kernel(kernel, size + 1 - size % 2)


def kernel_grid(kernels: dict, rows: int, cols: int) -> np.ndarray:
    """(rows, cols, k, k) float32: each region's kernel, zeros where it had none."""
    size = max(k.shape[0] for k in kernels.values())
    grid = np.zeros((rows, cols, size, size), np.float32)
    for (i, j), kernel in kernels.items():
        pad = (size - kernel.shape[0]) // 2
        grid[i, j, pad:pad + kernel.shape[0], pad:pad + kernel.shape[0]] = kernel.cpu().numpy()
    return grid


def noise_sigma(rgb: np.ndarray, side: int = 1024) -> float:
    """Noise standard deviation on [0, 1] (scikit-image's wavelet estimate, averaged over
    channels) of a central window of at most ``side`` pixels: noise is stationary, and the
    estimate on 24 megapixels would cost seconds."""
    # here, not at the top: scikit-image's restoration module pulls in SciPy's statistics, about
    # a second of every command's start-up
    from skimage.restoration import estimate_sigma

    height, width = rgb.shape[:2]
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    window = rgb[top:top + side, left:left + side].astype(np.float32) / float(np.iinfo(rgb.dtype).max)
    return float(estimate_sigma(window, channel_axis=-1, average_sigmas=True))


def misfit_map(rgb: np.ndarray, deconvolved: np.ndarray, kernels: np.ndarray, rows: list, cols: list,
               variance: float) -> np.ndarray:
    """uint8 (H, W): each region's misfit level (:func:`darkdeblur.blur.misfit.misfit_level`,
    x 255) for its kernel in the grid ``kernels`` (rows, cols, k, k), blended across regions with
    the deconvolution's own weights; 255 where a region kept its blurred pixels. ``variance``:
    the photo's noise variance on [0, 1]."""
    height, width = rgb.shape[:2]
    levels = np.ones((len(rows), len(cols)), np.float32)
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            kernel = torch.from_numpy(trim_kernel(kernels[i, j]))
            if float(kernel.sum()) > 0:
                levels[i, j] = misfit_level(deconvolution_misfit(
                    to_tensor(rgb[top:bottom, left:right]), to_tensor(deconvolved[top:bottom, left:right]),
                    kernel, variance))
    row_weights = [span_weights(rows, i) for i in range(len(rows))]
    col_weights = [span_weights(cols, j) for j in range(len(cols))]
    blended = np.zeros((height, width), np.uint8)
    for i, (top, bottom) in enumerate(rows):  # one band of regions at a time: a float map of
        band = np.zeros((bottom - top, width), np.float32)  # 24 megapixels would be 96 MB
        for k, (t, b) in enumerate(rows):
            if b <= top or t >= bottom:
                continue
            lo, hi = max(t, top), min(b, bottom)
            for j, (left, right) in enumerate(cols):
                band[lo - top:hi - top, left:right] += levels[k, j] * np.outer(
                    row_weights[k][lo - t:hi - t], col_weights[j])
        start = top if i == 0 else rows[i - 1][1]  # rows already written stay as they are
        if start < bottom:
            blended[start:bottom] = np.clip(np.rint(band[start - top:] * 255), 0, 255).astype(np.uint8)
    return blended
