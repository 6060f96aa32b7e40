"""Counting a network's multiply-accumulates (MACs) with forward hooks.

Conventions (one MAC = one multiply and one add; FLOPs are about 2 x MACs):

- ``Conv2d``: output pixels x C_out x C_in x k_h x k_w / groups.
- ``ConvTranspose2d``: counted per *input* pixel, input pixels x C_in x C_out x k_h x k_w / groups,
  since every input pixel scatters one k_h x k_w x C_out stamp. (Counting per output pixel, as
  some tools do, over-counts a stride-2 transposed convolution by about 4x.)
- ``Linear``: rows x in_features x out_features.
- :class:`~darkdeblur.models.inference_form.SubpixelConv`: its one low-resolution convolution.

Normalisation, activations, padding, pooling and additions are not counted; for the generators
here they are well under 1% of the total. Counting runs the model on the ``meta`` device, so it
costs no arithmetic and works at any resolution. The count is for the sizes the model actually
convolves, which include any padding it adds to reach a multiple of its stride product.
"""
from __future__ import annotations

import copy
from collections import defaultdict

import torch
from torch import nn

from .models.inference_form import SubpixelConv


def _conv_macs(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    out_pixels = output.shape[0] * output.shape[2] * output.shape[3]
    return out_pixels * module.out_channels * module.in_channels * kh * kw // module.groups


def _transpose_macs(module: nn.ConvTranspose2d, inputs: tuple[torch.Tensor, ...],
                    output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    x = inputs[0]
    in_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    return in_pixels * module.in_channels * module.out_channels * kh * kw // module.groups


def _linear_macs(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    rows = inputs[0].numel() // module.in_features
    return rows * module.in_features * module.out_features


def _subpixel_macs(module: SubpixelConv, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    x = inputs[0]  # one low-resolution convolution over the padded input, all four phases
    grow = sum(module.padding) - module.taps + 1
    out_pixels = x.shape[0] * (x.shape[2] + grow) * (x.shape[3] + grow)
    return out_pixels * module.weight[0].numel() * module.weight.shape[0]


_COUNTERS = {nn.Conv2d: _conv_macs, nn.ConvTranspose2d: _transpose_macs, nn.Linear: _linear_macs,
             SubpixelConv: _subpixel_macs}


def count_macs(model: nn.Module, *inputs: torch.Tensor, on_meta: bool = True) -> dict[str, int]:
    """MACs of one ``model(*inputs)`` call, total and per layer type.

    Returns ``{"total": n, "Conv2d": n1, "ConvTranspose2d": n2, "Linear": n3}`` (types that do
    not occur are 0). With ``on_meta`` (the default) a copy of the model runs on the meta device,
    so ``inputs`` only supply shapes and ``model`` is left untouched.

    >>> count_macs(nn.Conv2d(3, 8, 3, padding=1), torch.zeros(1, 3, 10, 12))["total"]
    25920
    """
    counts: dict[str, int] = defaultdict(int)

    def hook(module, args, output):
        counts[type(module).__name__] += _COUNTERS[type(module)](module, args, output)

    if on_meta:
        model = copy.deepcopy(model).to("meta")
        inputs = tuple(x.to("meta") for x in inputs)
    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in _COUNTERS]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    result = {name.__name__: int(counts.get(name.__name__, 0)) for name in _COUNTERS}
    result["total"] = sum(result.values())
    return result
