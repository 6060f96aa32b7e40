"""The conditional discriminator: (blurred, candidate) pairs -> one logit per pair."""
from __future__ import annotations

import torch
from torch import nn

from ..config import DiscriminatorConfig
from .layers import norm_layer


class PairDiscriminator(nn.Module):
    """Strided convolutions on the 6-channel pair, then one logit.

    Paper preset: 5x5 convs 64/128/256 stride 2 and 512 stride 1, BatchNorm except on the first,
    LeakyReLU 0.2. The reference code flattens into a fully connected layer, which ties it to one
    crop size; global average pooling before that layer makes the head work for any size.
    """

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        if len(cfg.channels) != len(cfg.strides):
            raise ValueError(f"channels {cfg.channels} and strides {cfg.strides} differ in length")
        layers: list[nn.Module] = []
        in_ch = 6
        for i, (width, stride) in enumerate(zip(cfg.channels, cfg.strides)):
            layers.append(nn.Conv2d(in_ch, width, cfg.kernel_size, stride=stride,
                                    padding=cfg.kernel_size // 2))
            if i > 0:
                layers.append(norm_layer(cfg.norm, width))
            layers.append(nn.LeakyReLU(0.2))
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch, 1)

    def forward(self, blurred: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        """blurred, candidate: (B, 3, H, W) in [0, 1] -> logits (B,)."""
        pair = torch.cat([blurred, candidate], dim=1) * 2 - 1
        features = self.features(pair).mean(dim=(2, 3))
        return self.head(features).squeeze(1)
