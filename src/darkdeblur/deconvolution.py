"""Non-blind deconvolution references: Wiener and Richardson-Lucy from scikit-image.

Given the true blur kernel, these show what the kernel alone allows; they are upper references
for synthetic benchmarks, not deblurring methods for real photos (whose kernels are unknown).

Images are float (H, W) or (H, W, C) arrays in [0, 1]; each channel is deconvolved on its own.
The kernel is applied as true convolution, as :func:`darkdeblur.blur.blur` does. Neither method
knows what lies beyond the frame, and a border that does not fit their model rings through the
whole image, so the image is padded and cropped back afterwards:

- Wiener works in the Fourier domain, which treats the image as periodic. A mirror extension by
  half the image on each side makes the padded image periodic without jumps at its edges.
- Richardson-Lucy convolves with zero borders; a reflection by the kernel size keeps the dark
  frame out of reach of the scored area.
"""
from __future__ import annotations

import numpy as np
from skimage.restoration import richardson_lucy, wiener


def _check(blurred: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    if blurred.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {blurred.shape}")
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be (k, k) with odd k, got shape {kernel.shape}")
    return np.asarray(kernel, dtype=np.float64) / float(np.sum(kernel))


def _per_channel(blurred: np.ndarray, kernel: np.ndarray, solve, pad: tuple[int, int]) -> np.ndarray:
    """Pad by mirroring, run ``solve(channel, kernel)`` per channel, crop back, clip to [0, 1]."""
    kernel = _check(blurred, kernel)
    image = np.asarray(blurred, dtype=np.float64)
    squeeze = image.ndim == 2
    if squeeze:
        image = image[..., None]
    height, width = image.shape[:2]
    ph, pw = pad
    padded = np.pad(image, ((ph, ph), (pw, pw), (0, 0)), mode="symmetric")
    out = np.stack([solve(padded[..., c], kernel) for c in range(image.shape[2])], axis=-1)
    out = np.clip(out[ph:ph + height, pw:pw + width], 0.0, 1.0)
    return out[..., 0] if squeeze else out


def wiener_deconvolve(blurred: np.ndarray, kernel: np.ndarray, balance: float = 0.01) -> np.ndarray:
    """Wiener deconvolution with scikit-image's Laplacian regulariser.

    ``balance`` trades detail for noise: about 1e-3 for clean images, 1e-2 for noise variance
    0.001 (tuned on training photos; see ``benchmarks/quality.py``).
    """
    height, width = np.shape(blurred)[:2]
    k = max(np.shape(kernel))
    pad = (max(height // 2, k), max(width // 2, k))
    return _per_channel(blurred, kernel, lambda channel, k: wiener(channel, k, balance, clip=False), pad)


def richardson_lucy_deconvolve(blurred: np.ndarray, kernel: np.ndarray,
                               iterations: int = 30) -> np.ndarray:
    """Richardson-Lucy deconvolution; more ``iterations`` sharpen more and amplify noise more."""
    return _per_channel(blurred, kernel,
                        lambda channel, k: richardson_lucy(np.clip(channel, 0, 1), k,
                                                           num_iter=iterations, clip=False),
                        (max(np.shape(kernel)),) * 2)
