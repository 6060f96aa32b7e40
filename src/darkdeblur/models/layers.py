"""Small building blocks shared by the generators and the discriminator."""
from __future__ import annotations

import torch
from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose batch, instance or none")


def activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation {kind!r}; choose relu or leaky_relu")


def upsample_conv(kind: str, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    """A 2x upsampling layer.

    ``transpose`` is the paper's 5x5 stride-2 transposed convolution; its uneven kernel overlap
    is the known source of checkerboard artefacts. ``resize_conv`` (nearest 2x then conv) and
    ``pixel_shuffle`` (conv to 4x channels then rearrange) have no such overlap.
    """
    pad = kernel_size // 2
    if kind == "transpose":
        # output = 2 * input exactly, for odd kernels: (H-1)*2 - 2*pad + k + output_padding
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2, padding=pad,
                                  output_padding=1)
    if kind == "resize_conv":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad))
    if kind == "pixel_shuffle":
        return nn.Sequential(nn.Conv2d(in_channels, out_channels * 4, kernel_size, padding=pad),
                             nn.PixelShuffle(2))
    raise ValueError(f"unknown upsample {kind!r}; choose transpose, resize_conv or pixel_shuffle")


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """The paper's initialisation: conv weights ~ N(0, std), norm scales ~ N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def pad_to_multiple(images: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the bottom/right to a multiple of ``multiple``; return the original size.

    Reflection avoids the dark frame that zero padding would put into the network's view; it
    needs the pad to be smaller than the image, so tiny images fall back to edge replication.
    """
    height, width = images.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return images, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return nn.functional.pad(images, (0, pad_w, 0, pad_h), mode=mode), (height, width)
