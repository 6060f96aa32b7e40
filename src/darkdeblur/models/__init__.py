"""Generators and discriminators, built from their configs."""
from __future__ import annotations

from torch import nn

from ..config import DiscriminatorConfig, ModelConfig
from .discriminator import PairDiscriminator
from .layers import init_normal
from .resnet import ResNetGenerator
from .test_mode import TEST_MODES, set_test_mode
from .unet import UNetGenerator

__all__ = ["build_generator", "build_discriminator", "UNetGenerator", "ResNetGenerator",
           "PairDiscriminator", "init_normal", "count_parameters", "set_test_mode", "TEST_MODES"]

_GENERATORS = {"unet": UNetGenerator, "resnet": ResNetGenerator}


def build_generator(cfg: ModelConfig) -> nn.Module:
    try:
        return _GENERATORS[cfg.arch](cfg)
    except KeyError:
        raise ValueError(f"unknown generator arch {cfg.arch!r}; choose {', '.join(_GENERATORS)}") from None


def build_discriminator(cfg: DiscriminatorConfig) -> PairDiscriminator:
    return PairDiscriminator(cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
