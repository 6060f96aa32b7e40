"""The generator rewritten for inference restores exactly what the trained one does, with less work."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from darkdeblur.config import ModelConfig, preset
from darkdeblur.models import build_generator
from darkdeblur.models.inference_form import SubpixelConv, for_inference


def _trained_looking(generator: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics far from the identity, so that a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in generator.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            elif isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.1)
    return generator.eval()


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_subpixel_conv_equals_nearest_upsampling_then_conv(kernel):
    torch.manual_seed(kernel)
    conv = nn.Conv2d(5, 4, kernel, padding=kernel // 2)
    x = torch.randn(2, 5, 9, 7)
    reference = conv(nn.Upsample(scale_factor=2, mode="nearest")(x))
    torch.testing.assert_close(SubpixelConv(conv)(x), reference, rtol=1e-5, atol=1e-5)


def test_subpixel_conv_refuses_what_it_cannot_rewrite():
    with pytest.raises(ValueError, match="odd-kernel"):
        SubpixelConv(nn.Conv2d(3, 3, 3, padding=0))
    with pytest.raises(ValueError, match="odd-kernel"):
        SubpixelConv(nn.Conv2d(3, 3, 4, padding=2))


@pytest.mark.parametrize("name", ["default", "hybrid", "tiny"])
def test_rewritten_generators_restore_the_same_pixels(name):
    cfg = preset(name).model
    generator = _trained_looking(build_generator(cfg), seed=1)
    rewritten = for_inference(copy.deepcopy(generator))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in rewritten.modules())
    assert not any(isinstance(m, nn.Upsample) for m in rewritten.modules())
    x = torch.rand(1, cfg.input_channels, 70, 90, generator=torch.Generator().manual_seed(0))
    padded = torch.rand(1, cfg.input_channels, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        difference = (rewritten(x) - generator(x)).abs()
        raw, raw_rewritten = generator.head(padded), rewritten.head(padded)
    # float rounding only: these random weights drive the raw outputs to hundreds (a share of
    # hundreds multiplies the rounding by |blurred - deconvolved|), so the raw outputs are
    # compared relative to their size, the restored pixels on average
    assert float((raw_rewritten - raw).abs().max()) < 2e-5 * float(raw.abs().max())
    assert float(difference.mean()) < 1e-5


def test_rewriting_a_generator_in_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        for_inference(build_generator(ModelConfig()).train())


def test_the_rewrite_halves_the_multiply_adds_of_the_bundled_unet():
    from darkdeblur.complexity import count_macs

    cfg = preset("hybrid").model
    generator = _trained_looking(build_generator(cfg), seed=2)
    x = torch.zeros(1, cfg.input_channels, 256, 256)
    before = count_macs(generator, x)["total"]
    after = count_macs(for_inference(copy.deepcopy(generator)), x)["total"]
    assert after < 0.6 * before


def test_the_gan_engine_restores_with_the_rewrite_unless_a_module_trains(tiny_weights):
    from darkdeblur.engines.gan import GanRestorer
    from darkdeblur.models.test_mode import set_test_mode

    engine = GanRestorer.load(tiny_weights, torch.device("cpu"))
    fast = engine.inference_model()
    assert fast is not engine.generator and not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(engine.restore_tensor(x), engine.generator(x).clamp(0, 1), rtol=0, atol=1e-5)
    set_test_mode(engine.generator, "batch")  # batch statistics: the trained module itself must run
    assert engine.inference_model() is engine.generator
    set_test_mode(engine.generator, "running")
    assert engine.inference_model() is fast
