"""Training losses: adversarial (BCE or WGAN-GP), L1, dark-channel L2, perceptual.

All image arguments are (B, 3, H, W) in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig
from .dark_channel import DARK_PATCH, dark_channel


def dark_channel_loss(restored: torch.Tensor, sharp: torch.Tensor, patch: int = DARK_PATCH) -> torch.Tensor:
    """Mean squared difference of the dark channels (the paper's L2 replacement of Pan's L0)."""
    return F.mse_loss(dark_channel(restored.clamp(0, 1), patch), dark_channel(sharp, patch))


def bce_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Real pairs (blurred, sharp) -> 1, fake pairs (blurred, restored) -> 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def bce_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def gradient_penalty(discriminator: nn.Module, blurred: torch.Tensor, sharp: torch.Tensor,
                     restored: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)||_2 - 1)^2 on random interpolates."""
    alpha = torch.rand(sharp.shape[0], 1, 1, 1, device=sharp.device, generator=generator)
    mixed = (alpha * sharp + (1 - alpha) * restored.detach()).requires_grad_(True)
    scores = discriminator(blurred, mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def discriminator_loss(cfg: LossConfig, discriminator: nn.Module, blurred: torch.Tensor,
                       sharp: torch.Tensor, restored: torch.Tensor,
                       generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Loss terms for one discriminator (critic) step; ``restored`` is detached here."""
    real = discriminator(blurred, sharp)
    fake = discriminator(blurred, restored.detach())
    terms = {"d_real": real.mean().detach(), "d_fake": fake.mean().detach()}
    if cfg.adversarial == "bce":
        terms["d_loss"] = bce_discriminator_loss(real, fake)
    elif cfg.adversarial == "wgan-gp":
        penalty = gradient_penalty(discriminator, blurred, sharp, restored, generator)
        terms["gradient_penalty"] = penalty.detach()
        terms["d_loss"] = fake.mean() - real.mean() + cfg.gradient_penalty * penalty
    else:
        raise ValueError(f"no discriminator loss for adversarial={cfg.adversarial!r}")
    return terms


def generator_loss(cfg: LossConfig, restored: torch.Tensor, sharp: torch.Tensor,
                   fake_logits: torch.Tensor | None,
                   perceptual: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Weighted sum of the generator's terms; each term is also returned unweighted for logs.

    The L1 term is ``lambda_l1 * mean|sharp - restored|`` on images spanning ``l1_range``
    (2 for the reference code's [-1, 1]), i.e. ``lambda_l1 * l1_range`` times the L1 on [0, 1].
    """
    terms: dict[str, torch.Tensor] = {}
    total = restored.new_zeros(())
    if fake_logits is not None and cfg.lambda_adv > 0:
        adv = bce_generator_loss(fake_logits) if cfg.adversarial == "bce" else -fake_logits.mean()
        terms["g_adv"] = adv
        total = total + cfg.lambda_adv * adv
    l1 = F.l1_loss(restored, sharp)  # logged on [0, 1], whatever range it is weighted on
    terms["l1"] = l1
    total = total + cfg.lambda_l1 * cfg.l1_range * l1
    if cfg.lambda_l2 > 0:
        terms["l2"] = F.mse_loss(restored, sharp)
        total = total + cfg.lambda_l2 * terms["l2"]
    if cfg.lambda_dark > 0:
        terms["dark"] = dark_channel_loss(restored, sharp, cfg.dark_patch)
        total = total + cfg.lambda_dark * terms["dark"]
    if cfg.lambda_perceptual > 0:
        if perceptual is None:
            raise ValueError("lambda_perceptual > 0 needs a VGG-19 feature extractor")
        terms["perceptual"] = F.mse_loss(perceptual(restored), perceptual(sharp))
        total = total + cfg.lambda_perceptual * terms["perceptual"]
    terms["g_loss"] = total
    return terms
