"""Blind estimation of a camera-shake kernel with the dark channel prior (Pan et al., CVPR 2016).

The blurred photo ``B = k * L + n`` is explained by a sharp latent image ``L`` with few non-zero
gradients and few non-zero dark-channel pixels, and a small non-negative kernel ``k``. Coarse to
fine (image and kernel scaled by sqrt(1/2) per level down to a kernel of about 5 px), each level
alternates two convex subproblems:

- **latent image**: ``min ||k * L - B||^2 + lambda_dark ||D(L)||_0 + lambda_grad ||grad L||_0`` by
  half-quadratic splitting. Auxiliary variables for the gradients and for the dark channel ``D``
  make each L0 term a hard threshold; with them fixed, ``L`` is one division in the Fourier
  domain. The dark channel is a minimum over a patch, so thresholding it zeroes the pixels that
  attain those minima: a per-pixel assignment, no other solve. Penalty weights grow by
  ``kappa`` each round (continuation).
- **kernel**: ``min ||grad L_s * k - grad B||^2 + gamma ||k||^2`` over a (size, size) support, by
  conjugate gradients whose operator is a product in the Fourier domain. ``L_s`` keeps only the
  latent image's strongest gradients (Cho & Lee 2009), which carry the blur's shape. The kernel is
  then made non-negative, small values and isolated specks are removed, it is scaled to sum 1, and
  at the end of each level it is shifted so its centre of mass sits at the centre: the restored
  photo is then not displaced against the blurred one.

Without the dark-channel term (``dark_channel=False``) this is the L0-gradient method of Xu et al.
(2013) and Pan et al. (2014): measured here about as accurate on camera shake and several times
faster (``benchmarks/RESULTS.md``).

Images are float tensors (H, W) in [0, 1], grey, on any device; kernels are (size, size) float32
tensors that sum to 1. Everything is deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .fourier import difference_otfs, gradients, gradients_transposed, otf2psf, pad_periodic, psf2otf

PYRAMID_RATIO = math.sqrt(0.5)
COARSEST_KERNEL = 5


@dataclass(frozen=True)
class EstimationSettings:
    """Parameters of :func:`estimate_kernel`; defaults follow Pan et al.'s published settings."""

    kernel_size: int = 25
    dark_channel: bool = True       # False: L0 on gradients only (faster, see module docstring)
    lambda_dark: float = 4e-3
    lambda_grad: float = 4e-3
    lambda_decay: float = 1.1       # both lambdas are divided by this after every alternation
    lambda_floor: float = 1e-4
    alternations: int = 5           # latent/kernel rounds per pyramid level
    kappa: float = 2.0              # growth of the splitting penalties
    beta_max: float = 1e5           # last gradient penalty
    mu_max: float = 8.0             # last dark-channel penalty
    dark_patch: int = 35
    gamma: float = 2.0              # l2 weight of the kernel
    cg_iterations: int = 20
    prune_fraction: float = 0.05    # kernel values below this share of the maximum are dropped
    min_component_mass: float = 0.1  # connected kernel parts lighter than this are dropped

    def __post_init__(self):
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel size must be odd and at least 3, got {self.kernel_size}")


def pyramid_kernel_sizes(kernel_size: int) -> list[tuple[int, float]]:
    """(kernel size, image scale) per level, coarsest first; sizes are odd.

    >>> pyramid_kernel_sizes(31)[0], pyramid_kernel_sizes(31)[-1]  # doctest: +ELLIPSIS
    ((7, 0.176...), (31, 1.0))
    """
    levels = max(int(math.floor(math.log(COARSEST_KERNEL / kernel_size) / math.log(PYRAMID_RATIO))), 0) + 1
    out = []
    for level in reversed(range(levels)):
        scale = PYRAMID_RATIO ** level
        size = math.ceil(kernel_size * scale)
        out.append((size + 1 - size % 2, scale))
    return out


def initial_kernel(size: int, device=None) -> Tensor:
    """A two-pixel horizontal line at the centre: Pan et al.'s starting point."""
    kernel = torch.zeros(size, size, device=device)
    kernel[size // 2, size // 2:size // 2 + 2] = 0.5
    return kernel


def resize_kernel(kernel: Tensor, size: int) -> Tensor:
    """Bilinear resize of a kernel to (size, size), non-negative, sum 1."""
    resized = F.interpolate(kernel[None, None], size=(size, size), mode="bilinear", align_corners=True)[0, 0]
    return normalise(resized.clamp_min(0))


def normalise(kernel: Tensor) -> Tensor:
    total = kernel.sum()
    if not torch.isfinite(total) or total <= 0:
        return kernel
    return kernel / total


def dark_assignment(latent: Tensor, threshold: float, patch: int) -> Tensor:
    """The dark-channel auxiliary of the latent step: ``latent`` with the pixels that attain a
    dark-channel value ``v`` with ``v**2 < threshold`` set to 0 (the L0 threshold of the dark
    channel, assigned back to the pixels it came from)."""
    height, width = latent.shape
    pooled, index = F.max_pool2d(-latent[None, None], patch, stride=1, padding=patch // 2,
                                 return_indices=True)
    dark = -pooled.flatten()
    chosen = index.flatten()[dark * dark < threshold]
    assigned = latent.flatten().clone()
    assigned[chosen] = 0.0
    return assigned.view(height, width)


def latent_image(blurred: Tensor, kernel: Tensor, lambda_grad: float, lambda_dark: float | None,
                 settings: EstimationSettings) -> Tensor:
    """Sharp image for ``kernel`` with L0 priors on gradients (and the dark channel when
    ``lambda_dark`` is not None). ``blurred``: (H, W), already periodic (see ``pad_periodic``)."""
    shape = tuple(blurred.shape)
    otf = psf2otf(kernel, shape)
    otf_dx, otf_dy = difference_otfs(shape, blurred.device)
    data_numerator = otf.conj() * torch.fft.rfft2(blurred)
    data_denominator = otf.abs().square()
    gradient_denominator = otf_dx.abs().square() + otf_dy.abs().square()
    latent = blurred
    mu = 2 * lambda_dark if lambda_dark is not None else 0.0
    while True:
        dark_term = 0.0
        if lambda_dark is not None:
            dark_term = mu * torch.fft.rfft2(dark_assignment(latent, lambda_dark / mu, settings.dark_patch))
        beta = 2 * lambda_grad
        while beta < settings.beta_max:
            gx, gy = gradients(latent)
            small = gx.square() + gy.square() < lambda_grad / beta
            gx, gy = gx.masked_fill(small, 0.0), gy.masked_fill(small, 0.0)
            numerator = data_numerator + beta * torch.fft.rfft2(gradients_transposed(gx, gy)) + dark_term
            latent = torch.fft.irfft2(numerator / (data_denominator + beta * gradient_denominator + mu), s=shape)
            beta *= settings.kappa
        if lambda_dark is None:
            return latent
        mu *= settings.kappa
        if mu >= settings.mu_max:
            return latent


def salient_gradients(latent: Tensor, kernel_size: int, threshold: float | None) -> tuple[Tensor, Tensor, float]:
    """The latent image's gradients with the weak ones zeroed (Cho & Lee 2009).

    With no ``threshold`` yet, one is chosen that keeps at least ``2 * sqrt(pixels * kernel
    pixels)`` gradients in each of four orientation bins, so the kernel is constrained in every
    direction; the returned threshold is that value divided by 1.1, so each later round keeps a few
    more. Squared magnitudes are compared.
    """
    gx, gy = gradients(latent)
    magnitude = gx.square() + gy.square()
    if threshold is None:
        keep = int(2 * math.sqrt(magnitude.numel() * kernel_size**2))
        angle = torch.atan2(gy, gx).remainder(math.pi)
        bins = (angle / (math.pi / 4)).long().clamp(max=3)
        threshold = float("inf")
        for b in range(4):
            values = magnitude[bins == b]
            if values.numel() == 0:
                continue
            k = min(keep, values.numel())
            threshold = min(threshold, float(values.flatten().kthvalue(values.numel() - k + 1).values))
    small = magnitude < threshold
    if bool(small.all()):
        small = magnitude < magnitude.max() * 0.5
    return gx.masked_fill(small, 0.0), gy.masked_fill(small, 0.0), threshold / 1.1


def kernel_least_squares(blurred_grads: tuple[Tensor, Tensor], latent_grads: tuple[Tensor, Tensor],
                         size: int, gamma: float, iterations: int) -> Tensor:
    """``argmin_k sum_d ||latent_d * k - blurred_d||^2 + gamma ||k||^2`` on a (size, size) support,
    by conjugate gradients started from a flat kernel (as in Pan et al.'s code)."""
    shape = tuple(blurred_grads[0].shape)
    latent_f = [torch.fft.rfft2(g) for g in latent_grads]
    blurred_f = [torch.fft.rfft2(g) for g in blurred_grads]
    normal = sum(lf.abs().square() for lf in latent_f)
    rhs = otf2psf(sum(lf.conj() * bf for lf, bf in zip(latent_f, blurred_f)), shape, size)

    def apply(kernel: Tensor) -> Tensor:
        return otf2psf(normal * psf2otf(kernel, shape), shape, size) + gamma * kernel

    kernel = torch.full((size, size), 1.0 / size**2, device=rhs.device)
    residual = rhs - apply(kernel)
    direction = residual.clone()
    rho = float((residual * residual).sum())
    for _ in range(iterations):
        if rho < 1e-20:
            break
        product = apply(direction)
        alpha = rho / max(float((direction * product).sum()), 1e-30)
        kernel = kernel + alpha * direction
        residual = residual - alpha * product
        rho_next = float((residual * residual).sum())
        direction = residual + (rho_next / rho) * direction
        rho = rho_next
    return kernel


def clean_kernel(kernel: Tensor, prune_fraction: float, min_component_mass: float) -> Tensor:
    """Non-negative, small values and light isolated components removed, sum 1 (8-connectivity)."""
    kernel = kernel.clamp_min(0)
    kernel = torch.where(kernel < kernel.max() * prune_fraction, torch.zeros_like(kernel), kernel)
    kernel = normalise(kernel)
    from scipy import ndimage  # here, not at the top: it adds ~1 s to every command's start-up

    values = kernel.detach().cpu().numpy()
    labels, count = ndimage.label(values > 0, structure=np.ones((3, 3)))
    if count > 1:
        masses = ndimage.sum(values, labels, index=np.arange(1, count + 1))
        light = np.isin(labels, 1 + np.flatnonzero(masses < min_component_mass))
        if not light.all():  # never remove everything
            kernel = kernel.masked_fill(torch.from_numpy(light).to(kernel.device), 0.0)
    return normalise(kernel)


def centre_kernel(kernel: Tensor) -> Tensor:
    """Shift by whole pixels so the centre of mass is within half a pixel of the centre (mass that
    would leave the support is kept at the edge)."""
    size = kernel.shape[0]
    total = float(kernel.sum())
    if total <= 0:
        return kernel
    grid = torch.arange(size, device=kernel.device, dtype=kernel.dtype)
    cy = float((kernel.sum(1) * grid).sum()) / total
    cx = float((kernel.sum(0) * grid).sum()) / total
    dy, dx = round(size // 2 - cy), round(size // 2 - cx)
    if dy == 0 and dx == 0:
        return kernel
    padded = F.pad(kernel, (abs(dx), abs(dx), abs(dy), abs(dy)))
    shifted = torch.roll(padded, shifts=(dy, dx), dims=(0, 1))
    return shifted[abs(dy):abs(dy) + size, abs(dx):abs(dx) + size]


def centre_of_mass(kernel: np.ndarray) -> tuple[float, float]:
    """(row, column) centre of mass of a non-negative kernel."""
    total = float(kernel.sum())
    rows, cols = np.indices(kernel.shape)
    return float((rows * kernel).sum() / total), float((cols * kernel).sum() / total)


def downscale(image: Tensor, scale: float) -> Tensor:
    """Antialiased bilinear resize of (H, W) by ``scale`` (at least 1 pixel per side)."""
    if scale == 1.0:
        return image
    height, width = image.shape
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image[None, None], size=size, mode="bilinear", antialias=True,
                         align_corners=False)[0, 0]


@torch.inference_mode()
def estimate_kernel(blurred: Tensor, settings: EstimationSettings = EstimationSettings(),
                    progress=None) -> Tensor:
    """Estimate the blur kernel of a grey (H, W) image in [0, 1].

    Returns a (kernel_size, kernel_size) float32 kernel on the image's device: non-negative, sum 1,
    centre of mass at the centre. ``progress(fraction)`` is called after every alternation.
    """
    if blurred.ndim != 2:
        raise ValueError(f"estimate_kernel expects a grey (H, W) image, got shape {tuple(blurred.shape)}")
    blurred = blurred.float()
    levels = pyramid_kernel_sizes(settings.kernel_size)
    lambda_grad, lambda_dark = settings.lambda_grad, settings.lambda_dark
    kernel = initial_kernel(levels[0][0], blurred.device)
    done, total = 0, len(levels) * settings.alternations
    for size, scale in levels:
        if kernel.shape[0] != size:
            kernel = resize_kernel(kernel, size)
        level = downscale(blurred, scale)
        height, width = level.shape
        padded = pad_periodic(level, size)
        blurred_grads = gradients(padded)
        threshold = None
        for _ in range(settings.alternations):
            latent = latent_image(padded, kernel, lambda_grad,
                                  lambda_dark if settings.dark_channel else None, settings)
            gx, gy, threshold = salient_gradients(latent, size, threshold)
            kernel = kernel_least_squares(blurred_grads, (gx, gy), size, settings.gamma, settings.cg_iterations)
            kernel = clean_kernel(kernel, settings.prune_fraction, settings.min_component_mass)
            lambda_grad = max(lambda_grad / settings.lambda_decay, settings.lambda_floor)
            lambda_dark = max(lambda_dark / settings.lambda_decay, settings.lambda_floor)
            done += 1
            if progress is not None:
                progress(done / total)
        kernel = centre_kernel(kernel)
    return kernel
