"""The dark channel (He et al. 2009): per-pixel minimum over RGB, then a local minimum filter."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# He et al.'s window, which the paper's dark-channel loss uses too.
DARK_PATCH = 15


def dark_channel(images: torch.Tensor, patch: int = DARK_PATCH) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) dark channel.

    The local minimum is a grey erosion with a flat ``patch`` x ``patch`` square and "same"
    output size; it is computed as ``-maxpool(-x)``, whose implicit padding never wins a minimum,
    so border pixels take the minimum over the part of the window inside the image.

    >>> dark_channel(torch.full((1, 3, 4, 4), 0.3)).unique().item()
    0.30000001192092896
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"dark_channel expects (B, 3, H, W), got {tuple(images.shape)}")
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"dark_channel patch must be a positive odd size, got {patch}")
    channel_min = images.amin(dim=1, keepdim=True)
    return -F.max_pool2d(-channel_min, kernel_size=patch, stride=1, padding=patch // 2)
