"""One optimisation step of the conditional GAN, written to read like the paper.

Per iteration: ``critic_steps`` discriminator steps on the detached restoration, then
``generator_steps`` generator steps on the same batch with the discriminator frozen.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .config import RunConfig
from .losses import discriminator_loss, generator_loss


@dataclass
class Models:
    generator: nn.Module
    discriminator: nn.Module | None  # None when the adversarial term is off
    perceptual: nn.Module | None = None


@dataclass
class Optimizers:
    generator: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer | None


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def _grad_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm over all of ``module``'s gradients, as a 0-d tensor (no device sync)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def adversarial_active(cfg: RunConfig, step: int) -> bool:
    return cfg.loss.adversarial != "none" and cfg.loss.lambda_adv > 0 and step >= cfg.loss.adv_warmup_steps


def train_step(models: Models, optimizers: Optimizers, blurred: torch.Tensor, sharp: torch.Tensor,
               cfg: RunConfig, step: int, generator: torch.Generator | None = None,
               average_gradients=None) -> dict[str, float]:
    """Update D then G on one batch; return every loss term as a float (the last G step's).

    ``average_gradients(module)``, when given, all-reduces the discriminator's gradients across
    ranks. The discriminator is not DDP-wrapped: it runs several forwards per backward (real,
    fake, gradient penalty) and must stay frozen during the G step, which DDP's hooks dislike.
    Values stay on the device until the end, so a step waits for the device only once.
    """
    g, d = models.generator, models.discriminator
    use_adv = d is not None and adversarial_active(cfg, step)
    amp = _autocast(blurred.device, cfg.train.bf16)
    logs: dict[str, torch.Tensor] = {}
    # The discriminator judges (blurred photo, candidate) pairs; a hybrid refiner's input also
    # carries the deconvolution after the blurred photo, which the judge is not shown.
    condition = blurred[:, :3]

    if use_adv:
        d.requires_grad_(True)
        for _ in range(cfg.train.critic_steps):
            with torch.no_grad(), amp:
                restored = g(blurred)
            with amp:
                terms = discriminator_loss(cfg.loss, d, condition, sharp, restored.float(), generator)
            optimizers.discriminator.zero_grad(set_to_none=True)
            terms["d_loss"].backward()
            if average_gradients is not None:
                average_gradients(d)
            logs["grad_norm_d"] = _grad_norm(d)
            optimizers.discriminator.step()
        logs.update({k: v.detach() for k, v in terms.items()})
        d.requires_grad_(False)  # freeze D: the G step must not move it

    for _ in range(cfg.train.generator_steps):
        with amp:
            restored = g(blurred)
            logits = d(condition, restored) if use_adv else None
            terms = generator_loss(cfg.loss, restored.float(), sharp, logits, models.perceptual)
        optimizers.generator.zero_grad(set_to_none=True)
        terms["g_loss"].backward()
        logs["grad_norm_g"] = _grad_norm(g)
        optimizers.generator.step()
    logs.update({k: v.detach() for k, v in terms.items()})
    if d is not None:
        d.requires_grad_(True)
    values = torch.stack([v.float().reshape(()).to(blurred.device) for v in logs.values()]).tolist()
    return dict(zip(logs, values, strict=True))
