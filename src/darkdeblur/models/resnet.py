"""DeblurGAN's generator (Kupyn et al. 2018), the baseline the paper compares against.

Written from the published description: a 7x7 conv, two stride-2 3x3 down convolutions,
residual blocks at 256 channels (9 by default), two stride-2 up convolutions, a 7x7 conv to
RGB with tanh, and a global residual connection (restored = blurred + output); InstanceNorm.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .layers import norm_layer, pad_to_multiple, upsample_conv


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
            nn.ReLU(), nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """(B, 3, H, W) in [0, 1] -> restored images of the same shape and range."""

    multiple = 4  # two stride-2 levels

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        ngf, norm = cfg.base_channels, cfg.norm
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7),
                                   norm_layer(norm, ngf), nn.ReLU()]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       norm_layer(norm, ngf * mult * 2), nn.ReLU()]
        layers += [ResidualBlock(ngf * 4, norm, cfg.dropout) for _ in range(cfg.resnet_blocks)]
        for mult in (4, 2):
            layers += [upsample_conv(cfg.upsample, ngf * mult, ngf * mult // 2, 3),
                       norm_layer(norm, ngf * mult // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def zero_init_output(self) -> None:
        last = [m for m in self.modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        padded, (height, width) = pad_to_multiple(blurred, self.multiple)
        x = padded * 2 - 1
        out = self.body(x)
        if self.cfg.global_residual:
            out = (x + out).clamp(-1, 1)
        return ((out + 1) / 2)[..., :height, :width]
