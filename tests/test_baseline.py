"""The DeblurGAN baseline: ResNet generator shapes and size, and one WGAN-GP critic step."""

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from darkdeblur.config import DiscriminatorConfig, ModelConfig, deblurgan
from darkdeblur.losses import discriminator_loss, gradient_penalty
from darkdeblur.models import ResNetGenerator, build_discriminator, build_generator, count_parameters
from darkdeblur.models import init_normal
from darkdeblur.train_step import Models, Optimizers, train_step


def _small_resnet(**changes) -> ModelConfig:
    return replace(deblurgan().model, base_channels=8, resnet_blocks=2, **changes)


def test_deblurgan_preset_builds_the_resnet_generator():
    generator = build_generator(deblurgan().model)
    assert isinstance(generator, ResNetGenerator)
    norms = [m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 + 2 * 9 + 2  # stem + 2 downs, 2 per residual block, 2 ups
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in generator.modules()) == 2


def test_parameter_count_matches_hand_count_at_ngf_64():
    # DeblurGAN's generator is about 11.4 M parameters. By layer (weights + biases, and the two
    # affine InstanceNorm vectors): 7x7 3->64, 3x3 64->128 and 128->256 down, 9 blocks of two
    # 3x3 256->256, 3x3 transposed 256->128 and 128->64, 7x7 64->3.
    convs = [(3, 64, 7), (64, 128, 3), (128, 256, 3)] + [(256, 256, 3)] * 18 \
        + [(256, 128, 3), (128, 64, 3), (64, 3, 7)]
    weights = sum(cin * cout * k * k + cout for cin, cout, k in convs)
    norms = 2 * (64 + 128 + 256 + 18 * 256 + 128 + 64)
    generator = build_generator(deblurgan().model)
    assert count_parameters(generator) == weights + norms == 11_388_675


@pytest.mark.parametrize("height, width", [(37, 53), (64, 64), (17, 9)])
def test_output_shape_equals_input_shape_for_any_size(height, width):
    torch.manual_seed(0)
    generator = build_generator(_small_resnet()).eval()
    blurred = torch.rand(2, 3, height, width)
    with torch.no_grad():
        restored = generator(blurred)
    assert restored.shape == blurred.shape
    assert restored.min() >= 0 and restored.max() <= 1


def test_zero_initialised_output_makes_the_global_residual_an_identity():
    torch.manual_seed(0)
    generator = build_generator(_small_resnet())
    init_normal(generator)
    generator.zero_init_output()
    blurred = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        torch.testing.assert_close(generator(blurred), blurred, atol=1e-6, rtol=0)


class _LinearCritic(nn.Module):
    """D(blurred, x) = <w, x>: its gradient in x is w everywhere, so the penalty is (|w| - 1)^2."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))

    def forward(self, blurred, candidate):
        return (candidate * self.w).flatten(1).sum(1)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    torch.manual_seed(0)
    critic = _LinearCritic((3, 8, 8))
    blurred, sharp, restored = (torch.rand(4, 3, 8, 8) for _ in range(3))
    penalty = gradient_penalty(critic, blurred, sharp, restored)
    expected = (critic.w.detach().norm() - 1) ** 2
    torch.testing.assert_close(penalty.detach(), expected)
    # and the penalty is differentiable in the critic's weights (create_graph=True)
    penalty.backward()
    torch.testing.assert_close(critic.w.grad, 2 * (1 - 1 / critic.w.norm().detach()) * critic.w.detach())


def _tiny_wgan_gp():
    cfg = deblurgan()
    return replace(cfg, model=_small_resnet(dropout=0.0),
                   discriminator=DiscriminatorConfig(channels=(8, 16), strides=(2, 1), kernel_size=4,
                                                     norm="instance"),
                   loss=replace(cfg.loss, lambda_perceptual=0.0, lambda_l1=100.0),
                   train=replace(cfg.train, critic_steps=1))


def test_one_wgan_gp_critic_step_on_random_data():
    cfg = _tiny_wgan_gp()
    torch.manual_seed(0)
    critic = build_discriminator(cfg.discriminator)
    init_normal(critic)
    blurred, sharp, restored = (torch.rand(2, 3, 24, 24) for _ in range(3))
    terms = discriminator_loss(cfg.loss, critic, blurred, sharp, restored)
    penalty = float(terms["gradient_penalty"])
    assert math.isfinite(penalty) and penalty > 0
    before = {n: p.detach().clone() for n, p in critic.named_parameters()}
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
    terms["d_loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())
    # The Wasserstein loss is blind to a constant added to every score: no gradient for the head's bias.
    assert float(critic.head.bias.grad.abs()) == 0.0
    optimizer.step()
    assert all(not torch.equal(before[n], p) for n, p in critic.named_parameters() if n.endswith("weight"))


def test_train_step_with_wgan_gp_moves_both_networks():
    cfg = _tiny_wgan_gp()
    torch.manual_seed(0)
    models = Models(build_generator(cfg.model), build_discriminator(cfg.discriminator))
    init_normal(models.generator)
    init_normal(models.discriminator)
    optimizers = Optimizers(torch.optim.Adam(models.generator.parameters(), lr=1e-3),
                            torch.optim.Adam(models.discriminator.parameters(), lr=1e-3))
    g_before = {n: p.detach().clone() for n, p in models.generator.named_parameters()}
    d_before = {n: p.detach().clone() for n, p in models.discriminator.named_parameters()}
    blurred, sharp = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    logs = train_step(models, optimizers, blurred, sharp, cfg, step=0)
    assert math.isfinite(logs["gradient_penalty"]) and logs["gradient_penalty"] > 0
    assert all(math.isfinite(v) for v in logs.values())
    for before, module in ((g_before, models.generator), (d_before, models.discriminator)):
        unchanged = [n for n, p in module.named_parameters()
                     if n.endswith("weight") and torch.equal(before[n], p)]
        assert not unchanged
