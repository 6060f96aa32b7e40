"""MAC counting: hand-computed counts for single layers, and invariants on whole generators."""

import pytest
import torch
from torch import nn

from darkdeblur.complexity import count_macs
from darkdeblur.config import ModelConfig, deblurgan
from darkdeblur.models import build_generator


def test_conv2d_matches_hand_count():
    # 10x12 output pixels x 8 out x 3 in x 3x3 = 25 920
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, torch.zeros(1, 3, 10, 12)) == {
        "Conv2d": 25_920, "ConvTranspose2d": 0, "Linear": 0, "SubpixelConv": 0, "total": 25_920}


def test_a_subpixel_conv_counts_its_low_resolution_convolution():
    from darkdeblur.models.inference_form import SubpixelConv

    # nearest 2x then 3x3 conv on 10x12: 20x24 px x 8 x 3 x 9 = 103 680; rewritten, one 2x2 conv
    # with 4 x 8 outputs over the 11x13 positions of the zero-padded input: 143 x 32 x 3 x 4 = 54 912
    layer = SubpixelConv(nn.Conv2d(3, 8, 3, padding=1))
    assert count_macs(layer, torch.zeros(1, 3, 10, 12))["SubpixelConv"] == 54_912


def test_strided_grouped_conv2d_counts_output_pixels_and_divides_by_groups():
    # stride 2 on 16x16 with padding 2, k 5 -> 8x8 output; 64 px x 8 x 4 x 25 / 2 groups = 25 600
    conv = nn.Conv2d(4, 8, 5, stride=2, padding=2, groups=2)
    assert count_macs(conv, torch.zeros(2, 4, 16, 16))["total"] == 2 * 25_600  # batch of 2


def test_transposed_conv_is_counted_per_input_pixel():
    # 5x7 = 35 input pixels x 4 in x 6 out x 3x3 = 7 560 (the output is 11x15; per output pixel
    # would give 165 x 216 = 35 640, the over-count this convention avoids)
    up = nn.ConvTranspose2d(4, 6, 3, stride=2)
    x = torch.zeros(1, 4, 5, 7)
    assert up(x).shape[-2:] == (11, 15)
    assert count_macs(up, x)["ConvTranspose2d"] == 7_560


def test_linear_counts_every_row():
    assert count_macs(nn.Linear(10, 5), torch.zeros(3, 10))["Linear"] == 150


def test_meta_count_equals_real_count_and_leaves_model_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ConvTranspose2d(4, 2, 4, stride=2))
    x = torch.rand(1, 3, 9, 9)
    before = model[0].weight.clone()
    assert count_macs(model, x) == count_macs(model, x, on_meta=False)
    assert model[0].weight.device.type == "cpu" and torch.equal(model[0].weight, before)


def test_resnet_generator_cost_scales_with_pixels():
    # DeblurGAN's generator is fully convolutional: 4x the pixels, 4x the MACs (exactly, as
    # 256 and 512 are multiples of its stride product 4, so no padding is added).
    model = build_generator(deblurgan().model)
    small = count_macs(model, torch.zeros(1, 3, 256, 256))["total"]
    large = count_macs(model, torch.zeros(1, 3, 512, 512))["total"]
    assert large == 4 * small
    # nine residual blocks of two 3x3 256->256 convs at 64x64 dominate: 18 x 4096 x 256^2 x 9
    assert small > 18 * 4096 * 256 * 256 * 9


@pytest.mark.parametrize("size", [(256, 256)])
def test_paper_unet_matches_reference_cost(size):
    # REFERENCE-CODE-FACTS: about 9.5 GMACs at 256x256 for the paper's U-Net.
    with torch.device("meta"):  # 85 M parameters: build without allocating or initialising them
        model = build_generator(ModelConfig())
    macs = count_macs(model, torch.zeros(1, 3, *size))["total"]
    assert 9.0e9 < macs < 10.0e9
