"""Apply blur kernels and sensor noise to batches of images (torch, any device).

All images are (B, C, H, W) float in [0, 1]. Randomness comes only from an explicit `torch.Generator`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_images(images: Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")


def blur(images: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each image with a blur kernel.

    This is true convolution (the kernel is flipped), so a kernel whose single 1 sits one pixel right of the centre
    moves image content one pixel right. Borders are reflect-padded (replicate when the image is too small for
    reflect) so the output has no dark frame and keeps the image's mean brightness.

    Args:
        images: (B, C, H, W) float in [0, 1].
        kernels: (k, k) shared by the batch, or (B, k, k) one per image; k odd. Kernels that sum to 1 keep
            brightness; cast to the images' dtype and device.

    Returns:
        (B, C, H, W), same dtype and device as `images`.

    Example:
        >>> delta = torch.zeros(3, 3); delta[1, 1] = 1
        >>> x = torch.rand(2, 3, 8, 8)
        >>> torch.equal(blur(x, delta), x)
        True
    """
    _check_images(images)
    batch, channels, height, width = images.shape
    if kernels.ndim not in (2, 3) or kernels.shape[-1] != kernels.shape[-2] or kernels.shape[-1] % 2 == 0:
        raise ValueError(f"kernels must be (k, k) or (B, k, k) with odd k, got shape {tuple(kernels.shape)}")
    if kernels.ndim == 3 and kernels.shape[0] != batch:
        raise ValueError(
            f"per-image kernels must be ({batch}, k, k) for {batch} images, got shape {tuple(kernels.shape)}"
        )

    size = kernels.shape[-1]
    pad = size // 2
    # conv2d computes correlation; flipping both spatial axes turns it into convolution.
    weight = torch.flip(kernels.to(device=images.device, dtype=images.dtype), dims=(-2, -1))
    # Reflect padding needs pad < dimension; tiny images fall back to replicating the edge.
    mode = "reflect" if pad < height and pad < width else "replicate"

    if kernels.ndim == 2:
        # One kernel for everything: each channel is its own group.
        weight = weight.expand(channels, 1, size, size).contiguous()
        padded = F.pad(images, (pad, pad, pad, pad), mode=mode)
        return F.conv2d(padded, weight, groups=channels)

    # Per-image kernels: fold the batch into channels so the whole batch is a single grouped conv.
    weight = weight.repeat_interleave(channels, dim=0).unsqueeze(1)  # (B*C, 1, k, k)
    folded = images.reshape(1, batch * channels, height, width)
    padded = F.pad(folded, (pad, pad, pad, pad), mode=mode)
    return F.conv2d(padded, weight, groups=batch * channels).reshape(batch, channels, height, width)


def add_gaussian_noise(
    images: Tensor, variance: float | Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Add zero-mean Gaussian noise and clip to [0, 1] (like skimage `random_noise(mode="gaussian", clip=True)`).

    Args:
        images: (B, C, H, W) float in [0, 1].
        variance: noise variance (not standard deviation), a float or a (B,) tensor, one per image; >= 0.
        generator: source of randomness; the noise is drawn on the generator's device (CPU when None) and moved to
            the images' device, so a CPU generator gives the same noise whatever device the images are on.

    Returns:
        (B, C, H, W) in [0, 1], same dtype and device as `images`.
    """
    _check_images(images)
    batch = images.shape[0]
    variance = torch.as_tensor(variance, dtype=images.dtype, device=images.device)
    if variance.ndim == 0:
        variance = variance.expand(batch)
    if variance.shape != (batch,):
        raise ValueError(f"variance must be a scalar or ({batch},), got shape {tuple(variance.shape)}")
    if bool((variance < 0).any()):
        raise ValueError("variance must be >= 0")

    noise_device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(images.shape, generator=generator, device=noise_device, dtype=images.dtype)
    noise = noise.to(images.device) * variance.sqrt().view(batch, 1, 1, 1)
    return (images + noise).clamp(0.0, 1.0)


def random_noise_variance(
    batch: int, max_variance: float, generator: torch.Generator | None = None
) -> Tensor:
    """Per-image noise variances drawn uniformly from [0, max_variance].

    Returns:
        float32 (batch,) on the generator's device (CPU when None).
    """
    if max_variance < 0:
        raise ValueError(f"max_variance must be >= 0, got {max_variance}")
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(batch, generator=generator, device=device) * max_variance
