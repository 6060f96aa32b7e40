import pytest
import torch
from dataclasses import replace

from darkdeblur.config import ModelConfig, paper, preset, tiny
from darkdeblur.models import build_discriminator, build_generator, count_parameters


def test_paper_generator_has_the_reference_parameter_count():
    generator = build_generator(paper().model)
    assert count_parameters(generator) == pytest.approx(85.0e6, rel=0.002)
    assert len(generator.encoder) == 8
    convs = [m for m in generator.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)


@pytest.mark.parametrize("height,width", [(67, 45), (33, 64), (1, 1), (17, 3)])
def test_generator_output_matches_input_size(height, width):
    generator = build_generator(tiny().model).eval()
    x = torch.rand(2, 3, height, width)
    with torch.no_grad():
        y = generator(x)
    assert y.shape == x.shape
    assert 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize("upsample", ["transpose", "resize_conv", "pixel_shuffle"])
@pytest.mark.parametrize("full_res_skip", [False, True])
def test_generator_variants_are_config_changes(upsample, full_res_skip):
    cfg = replace(tiny().model, upsample=upsample, full_res_skip=full_res_skip, global_residual=False,
                  norm="instance")
    generator = build_generator(cfg).eval()
    x = torch.rand(1, 3, 41, 29)
    assert generator(x).shape == x.shape


def test_zero_initialised_residual_generator_is_the_identity():
    generator = build_generator(tiny().model)
    generator.zero_init_output()
    x = torch.rand(1, 3, 32, 40)
    torch.testing.assert_close(generator.eval()(x), x)


def test_paper_generator_runs_at_an_odd_size():
    generator = build_generator(paper().model).eval()
    with torch.no_grad():
        assert generator(torch.rand(1, 3, 47, 61)).shape == (1, 3, 47, 61)


@pytest.mark.parametrize("size", [32, 64, 100])
def test_discriminator_gives_one_logit_per_pair_at_any_size(size):
    d = build_discriminator(paper().discriminator)
    logits = d(torch.rand(3, 3, size, size), torch.rand(3, 3, size, size))
    assert logits.shape == (3,)


def test_discriminator_is_conditional_on_the_blurred_image():
    d = build_discriminator(tiny().discriminator).eval()
    candidate = torch.rand(1, 3, 32, 32)
    assert not torch.equal(d(torch.rand(1, 3, 32, 32), candidate), d(torch.rand(1, 3, 32, 32), candidate))


def test_unknown_preset_and_arch_are_clear_errors():
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown generator arch"):
        build_generator(ModelConfig(arch="vit"))
