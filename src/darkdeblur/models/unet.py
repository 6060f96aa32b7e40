"""The paper's generator: a pix2pix-style U-Net with stride-2 convolutions and skip connections.

Paper preset (reference code): 8 levels, widths 64,128,256,512,512,512,512,512, 5x5 kernels;
encoder LeakyReLU(0.2) -> conv -> norm; decoder ReLU -> upsample-conv -> norm (-> dropout on the
first three), concatenated with the encoder feature of the same size; tanh output. About 85.0 M
parameters.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .layers import activation, norm_layer, pad_to_multiple, upsample_conv


class ResidualBlock(nn.Module):
    """LeakyReLU -> 3x3 conv -> norm, twice, added back: depth at one scale without downsampling."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 3, padding=1), norm_layer(norm, channels),
            nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 3, padding=1), norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def level_widths(cfg: ModelConfig) -> list[int]:
    return [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(cfg.depth)]


class UNetGenerator(nn.Module):
    """Maps blurred images (B, 3, H, W) in [0, 1] to restored images of the same shape and range.

    Any H, W work: the input is padded by reflection to a multiple of 2**depth and cropped back.
    The [-1, 1] scaling the network was trained with stays inside this module. With
    ``cfg.inputs == "blurred+deconvolved"`` the input is (B, 6, H, W): the blurred photo, then
    its deconvolution, which the global residual (and ``fallback_mix``) start from; the misfit
    (and the fall-back rule's share, or the weak deconvolution) sit between the two
    (``ModelConfig.inputs``).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.correction and not cfg.fallback_mix:
            raise ValueError("a generator without a correction needs fallback_mix (it would output its input)")
        if cfg.weak_mix and not (cfg.sees_weak and cfg.fallback_mix):
            raise ValueError("weak_mix needs the +weak input and fallback_mix (the share toward the weak "
                             "deconvolution sits beside the share back to the photo)")
        self.cfg = cfg
        widths = level_widths(cfg)
        k, pad = cfg.kernel_size, cfg.kernel_size // 2

        self.encoder = nn.ModuleList()
        in_ch = cfg.input_channels
        for level, width in enumerate(widths):
            layers: list[nn.Module] = []
            if level > 0:  # the first level sees raw pixels: no activation, no norm
                layers.append(nn.LeakyReLU(0.2))
            layers.append(nn.Conv2d(in_ch, width, k, stride=2, padding=pad))
            innermost = level == cfg.depth - 1
            if level > 0 and (cfg.innermost_norm or not innermost):
                layers.append(norm_layer(cfg.norm, width))
            layers += [ResidualBlock(width, cfg.norm) for _ in range(cfg.blocks_per_level)]
            self.encoder.append(nn.Sequential(*layers))
            in_ch = width

        # Decoder block j upsamples to the size of encoder level depth-2-j and is concatenated
        # with it; the last block returns to full resolution with 3 channels.
        self.decoder = nn.ModuleList()
        skip_widths = widths[:-1][::-1]
        for j, skip in enumerate(skip_widths):
            layers = [activation(cfg.decoder_activation),
                      upsample_conv(cfg.upsample, in_ch, skip, k), norm_layer(cfg.norm, skip)]
            if j < cfg.dropout_blocks and cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            self.decoder.append(nn.Sequential(*layers))
            in_ch = skip * 2
        if cfg.full_res_skip:
            # Features at full resolution: the paper's U-Net has no skip at the input's scale, so
            # fine detail must pass through the stride-2 bottleneck of the first level.
            self.final_up = nn.Sequential(activation(cfg.decoder_activation),
                                          upsample_conv(cfg.upsample, in_ch, widths[0], k))
            self.output = nn.Sequential(activation(cfg.decoder_activation),
                                        nn.Conv2d(widths[0] + cfg.input_channels, self.out_channels, 3, padding=1))
        else:
            self.final_up = nn.Sequential(activation(cfg.decoder_activation),
                                          upsample_conv(cfg.upsample, in_ch, self.out_channels, k))
            self.output = nn.Identity()

    @property
    def out_channels(self) -> int:
        if self.cfg.fallback_mix:  # the correction (unless dropped), the weak share s (with weak_mix), the share a
            return 3 * self.cfg.correction + self.cfg.weak_mix + 1
        return 3

    @property
    def multiple(self) -> int:
        return 2**self.cfg.depth

    def zero_init_output(self) -> None:
        """Start a residual generator at the identity: the last layer's weights at zero."""
        last = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)

    def head(self, padded: torch.Tensor) -> torch.Tensor:
        """The network's raw output on an input padded to ``multiple``: (B, 1 to 5, H', W'), the
        correction (on the [-1, 1] scale), then the weak share ``s`` with ``weak_mix``, then the
        fall-back share ``a`` with ``fallback_mix`` (the shares alone without ``correction``)."""
        x = padded * 2 - 1  # (B, 3-10, H', W') in [-1, 1]
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x = torch.cat([block(x), skip], dim=1)
        x = self.final_up(x)
        if self.cfg.full_res_skip:
            x = self.output(torch.cat([x, padded * 2 - 1], dim=1))
        return x

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        padded, (height, width) = pad_to_multiple(blurred, self.multiple)
        base = padded[:, -3:] * 2 - 1  # what the residual starts from: the blurred photo or its deconvolution
        x = self.head(padded)
        if self.cfg.fallback_mix:
            share = x[:, -1:]
            if self.cfg.sees_fallback:  # the learned share is a change of the rule's (input 4)
                share = share + padded[:, 4:5]
            deconvolved = base
            base = base + share * (padded[:, :3] * 2 - 1 - deconvolved)
            if self.cfg.weak_mix:  # both shares are measured from the deconvolution
                base = base + x[:, -2:-1] * (padded[:, 4:7] * 2 - 1 - deconvolved)
            x = x[:, :3] if self.cfg.correction else torch.zeros_like(base)
        if self.cfg.grey_correction:
            x = x.mean(1, keepdim=True).expand_as(x)
        if self.cfg.global_residual:
            x = x + base
            restored = x.clamp(-1, 1) if not self.training else x
            restored = (restored + 1) / 2
        else:
            restored = (torch.tanh(x) + 1) / 2
        return restored[..., :height, :width]
