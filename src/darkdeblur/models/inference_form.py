"""A trained generator rewritten for restoring photos: the same function, about half the work.

Two exact rewrites (equal up to float rounding), for eval mode only:

1. **BatchNorm folded into the (transposed) convolution before it.** In eval mode a BatchNorm is a fixed
   per-channel scale and shift, which the convolution's weights and bias can absorb
   (``torch.nn.utils.fusion.fuse_conv_bn_eval``).
2. **Resize-convolution as a sub-pixel convolution.** ``nearest 2x upsampling -> k x k conv``
   (the ``resize_conv`` upsampling of the bundled models, chosen because it draws no
   checkerboard) spends most of a U-Net's multiply-adds at the high resolution, on copies of
   the same pixels. Each of the four output phases (even/odd row, even/odd column) sees only
   ``r + 1`` distinct low-resolution pixels per axis (``k = 2r + 1``), so the layer equals one
   ``(r + 1) x (r + 1)`` convolution at the low resolution with 4x the output channels, its
   phases interleaved. For ``k = 3`` that is 16 multiply-adds per low-resolution pixel and
   channel pair instead of 36: the bundled U-Nets spend ~88 % of their work in these layers.

The rewritten module cannot be trained (its BatchNorms are gone) and its ``state_dict`` differs:
rewrite a copy for inference, never the model being trained or saved.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class SubpixelConv(nn.Module):
    """``Conv2d(k, stride 1, padding k // 2)`` applied after nearest 2x upsampling, computed at
    the low resolution. Built from the trained convolution; the result is the same."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        k = conv.kernel_size[0]
        if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.padding != (k // 2, k // 2)
                or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"):
            raise ValueError(f"not a 'same' odd-kernel convolution: {conv}")
        r = k // 2
        # low-resolution offset of high-resolution tap d (-r..r) for output phase a (0, 1)
        self.starts = [(a - r) // 2 for a in (0, 1)]
        self.taps = r + 1
        weight = conv.weight.detach()
        out_ch = weight.shape[0]
        phases = torch.zeros(2, 2, out_ch, weight.shape[1], self.taps, self.taps, dtype=weight.dtype)
        for a in (0, 1):
            for b in (0, 1):
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        u = (a + dy) // 2 - self.starts[a]
                        v = (b + dx) // 2 - self.starts[b]
                        phases[a, b, :, :, u, v] += weight[:, :, dy + r, dx + r]
        self.weight = nn.Parameter(phases.reshape(4 * out_ch, weight.shape[1], self.taps, self.taps),
                                   requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(out_ch, dtype=weight.dtype)
        self.bias = nn.Parameter(bias.repeat(4), requires_grad=False)
        self.out_channels = out_ch

    @property
    def padding(self) -> tuple[int, int]:
        """Zeros before and after each axis: the zeros the upsampled convolution saw."""
        return -self.starts[0], self.starts[1] + self.taps - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        before, after = self.padding
        y = F.conv2d(F.pad(x, (before, after, before, after)), self.weight, self.bias)
        out = x.new_empty(batch, self.out_channels, 2 * height, 2 * width)
        c = self.out_channels
        for a in (0, 1):
            for b in (0, 1):
                rows, cols = self.starts[a] - self.starts[0], self.starts[b] - self.starts[0]
                phase = y[:, (2 * a + b) * c:(2 * a + b + 1) * c, rows:rows + height, cols:cols + width]
                out[:, :, a::2, b::2] = phase
        return out


def _is_nearest_2x(module: nn.Module) -> bool:
    return (isinstance(module, nn.Upsample) and module.mode == "nearest" and module.size is None
            and module.scale_factor in (2, 2.0, (2, 2), (2.0, 2.0)))


def _fold_batch_norms(sequential: nn.Sequential) -> None:
    """A BatchNorm right after a convolution (or a resize-conv ending in one) goes into it."""
    names = list(sequential._modules)
    for first, second in zip(names, names[1:]):
        norm = sequential._modules[second]
        if not isinstance(norm, nn.BatchNorm2d) or norm.training or not norm.track_running_stats:
            continue
        holder, key = sequential, first
        if isinstance(sequential._modules[first], nn.Sequential) and len(sequential._modules[first]):
            holder = sequential._modules[first]
            key = list(holder._modules)[-1]
        conv = holder._modules[key]
        if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
            holder._modules[key] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
            sequential._modules[second] = nn.Identity()


def _subpixel(sequential: nn.Sequential) -> None:
    """``Upsample(nearest, 2) -> Conv2d`` pairs become one :class:`SubpixelConv`."""
    names = list(sequential._modules)
    for first, second in zip(names, names[1:]):
        up, conv = sequential._modules[first], sequential._modules[second]
        if _is_nearest_2x(up) and isinstance(conv, nn.Conv2d):
            try:
                sequential._modules[first] = SubpixelConv(conv)
            except ValueError:
                continue
            sequential._modules[second] = nn.Identity()


@torch.no_grad()
def for_inference(generator: nn.Module) -> nn.Module:
    """Rewrite ``generator`` (in eval mode, running statistics) in place; return it."""
    if generator.training:
        raise ValueError("for_inference needs a generator in eval mode (running statistics)")
    for module in list(generator.modules()):
        if isinstance(module, nn.Sequential):
            _fold_batch_norms(module)
    for module in list(generator.modules()):
        if isinstance(module, nn.Sequential):
            _subpixel(module)
    return generator
