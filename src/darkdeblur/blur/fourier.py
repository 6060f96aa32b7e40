"""Convolution in the Fourier domain: kernels as transfer functions, periodic borders, gradients.

Every solver in :mod:`darkdeblur.blur.kernel_estimation` and :mod:`darkdeblur.blur.nonblind` is a
division in the Fourier domain, which treats an image as periodic. A photo is not: its left and
right edges differ, and that jump rings through a deconvolution. :func:`pad_periodic` appends a
smooth band that runs from each edge back to the opposite one, so the padded image is periodic
without a jump; the band is cropped off afterwards.

Conventions: images are real float tensors (..., H, W); kernels are (kh, kw) with the centre at
``(kh // 2, kw // 2)`` and act by true convolution, as :func:`darkdeblur.blur.blur` does. Spectra
are half spectra (``torch.fft.rfft2``), (..., H, W // 2 + 1).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

# Forward differences with wrap-around, as convolution kernels: (d * x)[i, j] = x[i, j+1] - x[i, j].
DX = ((1.0, -1.0, 0.0),)
DY = ((1.0,), (-1.0,), (0.0,))


def psf2otf(kernel: Tensor, shape: tuple[int, int]) -> Tensor:
    """Transfer function (half spectrum) of ``kernel`` for images of ``shape`` = (H, W).

    ``irfft2(psf2otf(k, s) * rfft2(x))`` is the circular true convolution of ``x`` with ``k``.

    >>> delta = torch.zeros(3, 3); delta[1, 1] = 1
    >>> torch.allclose(psf2otf(delta, (4, 4)), torch.ones(4, 3, dtype=torch.complex64))
    True
    """
    kh, kw = kernel.shape
    if kh > shape[0] or kw > shape[1]:
        raise ValueError(f"kernel {tuple(kernel.shape)} is larger than the image {tuple(shape)}")
    padded = kernel.new_zeros(shape)
    padded[:kh, :kw] = kernel
    padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
    return torch.fft.rfft2(padded)


def otf2psf(spectrum: Tensor, shape: tuple[int, int], size: int) -> Tensor:
    """The centred (size, size) window of the circular signal whose half spectrum is ``spectrum``."""
    full = torch.fft.irfft2(spectrum, s=shape)
    full = torch.roll(full, shifts=(size // 2, size // 2), dims=(0, 1))
    return full[:size, :size]


def difference_otfs(shape: tuple[int, int], device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Transfer functions of the horizontal and vertical forward differences."""
    dx = torch.tensor(DX, device=device, dtype=dtype)
    dy = torch.tensor(DY, device=device, dtype=dtype)
    return psf2otf(dx, shape), psf2otf(dy, shape)


def gradients(images: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with wrap-around along W and H: the ``DX`` and ``DY`` convolutions."""
    return (torch.roll(images, -1, dims=-1) - images, torch.roll(images, -1, dims=-2) - images)


def gradients_transposed(gx: Tensor, gy: Tensor) -> Tensor:
    """Adjoint of :func:`gradients` applied to (gx, gy) and summed: D_x^T gx + D_y^T gy."""
    return (torch.roll(gx, 1, dims=-1) - gx) + (torch.roll(gy, 1, dims=-2) - gy)


def fast_length(length: int) -> int:
    """Smallest length >= ``length`` whose only prime factors are 2, 3 and 5 (fast FFT sizes).

    >>> fast_length(721), fast_length(1024)
    (729, 1024)
    """
    candidate = max(length, 1)
    while True:
        rest = candidate
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return candidate
        candidate += 1


def pad_periodic(images: Tensor, margin: int) -> Tensor:
    """Append at least ``margin`` rows and columns (bottom and right) that blend each edge smoothly
    into the opposite one, so that the result tiles the plane without jumps.

    The padded size is rounded up to a fast FFT length. The band is a raised-cosine blend of the
    last and first rows (then columns), which keeps the band's gradients small: blind estimation,
    which works on strong gradients, ignores it. Crop with ``[..., :H, :W]``.

    Args:
        images: (..., H, W) float.
        margin: minimum band width, typically the kernel size.

    Returns:
        (..., H + ph, W + pw) with ph, pw >= ``margin``.
    """
    height, width = images.shape[-2:]
    rows = fast_length(height + margin) - height
    cols = fast_length(width + margin) - width
    images = _blend_band(images, rows, dim=-2)
    return _blend_band(images, cols, dim=-1)


def _blend_band(images: Tensor, band: int, dim: int) -> Tensor:
    if band == 0:
        return images
    last = images.narrow(dim, images.shape[dim] - 1, 1)
    first = images.narrow(dim, 0, 1)
    t = (torch.arange(band, device=images.device, dtype=images.dtype) + 1) / (band + 1)
    weight = 0.5 - 0.5 * torch.cos(math.pi * t)  # 0 next to the last row, 1 next to the first
    shape = [1] * images.ndim
    shape[dim] = band
    weight = weight.view(shape)
    return torch.cat([images, last * (1 - weight) + first * weight], dim=dim)
