"""Typed configuration: one frozen dataclass per concern, and named presets.

A checkpoint stores ``asdict(RunConfig)`` so that loading it needs no matching flags.
A preset is just a function returning a :class:`RunConfig`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Callable

from .blur.trajectory import STREAK_ANXIETY, STREAK_KERNEL_SIZE, STREAK_MAX_LENGTH, STREAK_MIN_LENGTH
from .dark_channel import DARK_PATCH

# The "+weak" refiner input: the deconvolution again, with this fraction of the prior's weight.
# Measured on clean Kodak24 with the engine's kernels: 0.3 of the weight keeps texture the full
# weight smooths away (kodim18 +1.35 dB) and rings elsewhere (-0.12 dB on average), so neither
# weight is right everywhere (choosing among 0.1, 0.3 and 1 by each pixel's 32 px neighbourhood
# would gain +0.30 dB; benchmarks/weak_deconvolution.py); the refiner gets both.
WEAK_FACTOR = 0.3


@dataclass(frozen=True)
class ModelConfig:
    """The restoring generator.

    ``arch="unet"`` is the paper's pix2pix-style U-Net; ``arch="resnet"`` is the DeblurGAN
    ResNet generator used as a baseline.
    """

    arch: str = "unet"  # "unet" | "resnet"
    base_channels: int = 64  # "ngf": width of the first encoder level
    max_channels: int = 512  # widths double per level up to this cap
    depth: int = 8  # number of stride-2 levels (U-Net)
    kernel_size: int = 5
    norm: str = "batch"  # "batch" | "instance" | "none"
    innermost_norm: bool = False  # see presets.paper() for why the paper preset leaves it off
    upsample: str = "transpose"  # "transpose" | "resize_conv" | "pixel_shuffle"
    decoder_activation: str = "relu"  # "relu" (reference code) | "leaky_relu" (paper text)
    dropout: float = 0.5
    dropout_blocks: int = 3  # dropout on the first N decoder blocks
    blocks_per_level: int = 0  # extra 3x3 residual blocks after each encoder level (capacity)
    global_residual: bool = False  # restored = blurred + network output
    full_res_skip: bool = False  # concatenate the input image before the last layer
    resnet_blocks: int = 9  # arch="resnet" only
    # How BatchNorm and dropout behave when the generator restores photos (see
    # darkdeblur.models.test_mode): "running" = eval mode (running statistics, no dropout);
    # "batch" = the reference code's (pix2pix) way: each image's own statistics, dropout on.
    test_mode: str = "running"
    # What the generator sees: "blurred" (the paper), or "blurred+deconvolved" (the hybrid
    # refiner: 6 channels, the blurred photo and the dcp engine's deconvolution of it), or
    # "blurred+deconvolved+misfit" (7: between the two, a channel saying how much of the blur
    # each region's deconvolution fails to explain, darkdeblur.blur.misfit). With the
    # deconvolution, ``global_residual`` adds the correction to the deconvolution. And
    # "blurred+deconvolved+misfit+fallback" (8): after the misfit, the share of the way back to
    # the photo that the dcp engine's fall-back rule gives each pixel (``fallback_rule``), which
    # is where the learned share starts: an untrained refiner is the dcp engine. And
    # "blurred+deconvolved+misfit+weak" (10): after the misfit, the deconvolution with the same
    # kernels at ``weak_factor`` of the prior's weight (sharper, noisier; ``WEAK_FACTOR``).
    inputs: str = "blurred"
    # Hybrid only: the network also outputs a per-pixel share ``a`` of the way back from the
    # deconvolution to the blurred photo, restored = d + a (b - d) + correction; ``a`` starts at
    # zero, so an untrained refiner returns the deconvolution exactly.
    fallback_mix: bool = False
    # Hybrid with the "+weak" input and fallback_mix only: the network also outputs a per-pixel
    # share ``s`` of the way from the deconvolution to the weak deconvolution, restored =
    # d + s (w - d) + a (b - d) + correction. The weak deconvolution keeps texture the engine's
    # weight smooths away and rings where the kernel is off, so neither is right everywhere; a
    # learned choice between them is one multiplication, where the correction alone would have
    # to learn the product. ``s`` starts at zero (a refiner grown to it starts as it was).
    weak_mix: bool = False
    # Hybrid only: the correction is made the same in the three channels (its mean), so the
    # refiner changes brightness, never colour: a free colour correction drew fringes along grey
    # edges (tests/test_bundled_hybrid.py). The share ``a`` is one channel already.
    grey_correction: bool = False
    # Hybrid with fallback_mix only: False drops the correction, so the refiner only chooses, per
    # pixel, how far to move from the deconvolution back to the blurred photo (restored =
    # d + a (b - d)). Measured: trained with the dark-channel term, every correction lowered the
    # dev numbers it was added to; without the term it gains (docs/training-notes.md).
    correction: bool = True
    # With the "+fallback" input only: the dcp engine's fall-back rule that makes its channel,
    # (lo, width, noise_slope) of darkdeblur.blur.misfit.MisfitFallback, kept with the weights so
    # a refiner is always given the rule it was trained with.
    fallback_rule: tuple[float, float, float] = (0.0, 0.4, 14.0)
    # With the "+weak" input only: the fraction of the prior's weight of its deconvolution, kept
    # with the weights so a refiner is always given the deconvolution it was trained with.
    weak_factor: float = WEAK_FACTOR

    @property
    def input_channels(self) -> int:
        return {"blurred": 3, "blurred+deconvolved": 6, "blurred+deconvolved+misfit": 7,
                "blurred+deconvolved+misfit+fallback": 8, "blurred+deconvolved+misfit+weak": 10}[self.inputs]

    @property
    def sees_misfit(self) -> bool:
        return "+misfit" in self.inputs

    @property
    def sees_fallback(self) -> bool:
        """The input carries the fall-back rule's share (channel 4), where the learned share starts."""
        return self.inputs.endswith("+fallback")

    @property
    def sees_weak(self) -> bool:
        """The input carries the weak deconvolution (channels 4-6, before the deconvolution)."""
        return self.inputs.endswith("+weak")

    @property
    def refiner(self) -> bool:
        """A refiner of the dcp engine's deconvolution (the hybrid engine), not a plain GAN."""
        return self.inputs != "blurred"


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Conditional discriminator on (blurred, candidate) pairs: 6 input channels, one logit."""

    channels: tuple[int, ...] = (64, 128, 256, 512)
    strides: tuple[int, ...] = (2, 2, 2, 1)
    kernel_size: int = 5
    norm: str = "batch"  # never applied to the first layer


@dataclass(frozen=True)
class LossConfig:
    adversarial: str = "bce"  # "bce" (paper) | "wgan-gp" (DeblurGAN) | "none"
    lambda_adv: float = 1.0
    lambda_l1: float = 100.0
    # Width of the pixel range the L1 term is measured on: 1 = [0, 1]; 2 = [-1, 1], as in the
    # reference code, where |sharp - restored| is twice as large for the same images.
    l1_range: float = 1.0
    lambda_l2: float = 0.0  # plain pixel MSE (DeblurGAN-style content term when > 0)
    lambda_dark: float = 250.0
    lambda_perceptual: float = 0.0
    dark_patch: int = DARK_PATCH
    gradient_penalty: float = 10.0  # wgan-gp only
    adv_warmup_steps: int = 0  # generator trains on content losses only before this step


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 1
    crop: int = 256
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_schedule: str = "constant"  # "constant" | "cosine"
    generator_steps: int = 2  # G steps per D step
    critic_steps: int = 1  # D steps per iteration
    downsample: bool = True  # 2x bicubic downsampling of frames whose short side >= 720 px
    max_noise_variance: float = 0.002
    synthetic_fraction: float = 0.75  # share of each batch blurred synthetically (when both sources exist)
    kernel_size: int = STREAK_KERNEL_SIZE
    min_blur_length: float = STREAK_MIN_LENGTH
    max_blur_length: float = STREAK_MAX_LENGTH
    # "streak": full-exposure kernels min..max_blur_length px long (below); "deblurgan":
    # DeblurGAN's recipe, 60 px paths on a 64 px canvas seen for 1/100, 1/10, 1/2 or all of
    # the exposure (darkdeblur.blur.trajectory.deblurgan_motion_kernel; needs kernel_size 65).
    kernel_recipe: str = "streak"
    kernel_bank_size: int = 1024  # kernels drawn once per run (a few seconds per thousand)
    blur_anxiety: float = STREAK_ANXIETY  # camera shakiness (see blur.trajectory)
    steps: int = 1000
    # > 0: the schedule is this many passes over the training images instead, and ``steps`` is
    # computed from it when training starts (schedule_steps). ``--steps`` sets epochs to 0.
    epochs: float = 0.0
    seed: int = 0
    init_std: float = 0.02
    log_every: int = 50
    image_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validate_every: int = 0  # 0 = never; else PSNR on a small fixed validation set
    bf16: bool = True  # autocast on CUDA only
    channels_last: bool = False  # NHWC weights and activations on CUDA only (tensor-core convs)


@dataclass(frozen=True)
class RunConfig:
    preset: str
    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "RunConfig":
        return _build(RunConfig, data)


def _build(cls, data: dict[str, Any]):
    """Rebuild a (nested) dataclass from ``asdict`` output, rejecting unknown keys."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls, "__dataclass_fields__")[name].default_factory  # type: ignore[attr-defined]
        sub = default() if callable(default) else None
        if is_dataclass(sub) and isinstance(value, dict):
            value = _build(type(sub), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def schedule_steps(train: TrainConfig, images: int, processes: int = 1) -> int:
    """Total optimisation steps: ``train.steps``, or ``train.epochs`` passes over ``images``
    training images (photos plus pairs) at ``batch_size`` per process, rounded up.

    >>> schedule_steps(TrainConfig(epochs=15.0, batch_size=1), images=2103)
    31545
    """
    if train.epochs <= 0:
        return train.steps
    return max(1, math.ceil(train.epochs * images / (train.batch_size * processes)))


def with_steps(cfg: RunConfig, steps: int) -> RunConfig:
    """``cfg`` shortened (or lengthened) to exactly ``steps`` steps, whatever its epochs said."""
    return replace(cfg, train=replace(cfg.train, steps=steps, epochs=0.0))


# ----------------------------------------------------------------------------------------- presets


def paper() -> RunConfig:
    """The paper's configuration, as its reference code builds it (dark-channel weight 250).

    Settings where the project's own default differs, set here to the reference's value:
    L1 measured on [-1, 1] images (``l1_range=2``: twice the weight an L1 on [0, 1] has next to
    the adversarial and dark-channel terms); 15 epochs at batch size 1 (``epochs=15``; ``--steps``
    shortens it); BatchNorm batch statistics and dropout on at test time (``test_mode="batch"``);
    DeblurGAN's kernel recipe for synthetic blur (``kernel_recipe="deblurgan"``, 65 px kernels).

    Differences that remain:

    - BatchNorm on the innermost 1x1 map: the reference applies it, where at batch size 1 it
      normalises a single value per channel and carries no signal (PyTorch's BatchNorm refuses
      it outright); like PyTorch pix2pix we leave it off there (``innermost_norm=False``).
    - Data: the reference trains on GOPRO train (2103 pairs) plus DeblurGAN's pre-blurred set;
      here synthetic samples are blurred on the fly and make up ``synthetic_fraction`` (75 %)
      of the samples whenever real pairs are present too, so an epoch's mix differs.
    - An epoch is one pass over the photos and pairs found under ``--data``; the paper's 15
      epochs over its far larger set were over 30,000 iterations.
    - Synthetic kernels: trajectories that would leave the 65 px kernel are shrunk to fit, and
      kernels are never min-max stretched (DeblurGAN's code stretches kernels and images; here a
      kernel sums to 1 and keeps the image's brightness).
    - Noise: variance ~ U(0, 0.002) added to the blurred input in float and clipped, like
      scikit-image's ``random_noise``, but from torch's generator.
    """
    cfg = RunConfig(preset="paper")
    return replace(cfg, model=replace(cfg.model, test_mode="batch"),
                   loss=replace(cfg.loss, l1_range=2.0),
                   train=replace(cfg.train, epochs=15.0, kernel_recipe="deblurgan", kernel_size=65))


def dc250() -> RunConfig:
    """The paper's Table 1 row "dark channel, lambda 250" (identical to :func:`paper`)."""
    return replace(paper(), preset="dc250")


def dc0() -> RunConfig:
    """Ablation: the paper's model without the dark-channel loss."""
    cfg = paper()
    return replace(cfg, preset="dc0", loss=replace(cfg.loss, lambda_dark=0.0))


def dc250p() -> RunConfig:
    """Ablation: the paper's model plus a VGG-19 conv3_3 perceptual loss (needs VGG-19 weights).

    The perceptual weight 1.0 is this project's choice, not the paper's: neither the paper nor
    its reference code states the weight of this row's perceptual term.
    """
    cfg = paper()
    return replace(cfg, preset="dc250p", loss=replace(cfg.loss, lambda_perceptual=1.0))


def deblurgan() -> RunConfig:
    """DeblurGAN baseline: ResNet-9 generator, InstanceNorm, WGAN-GP critic, perceptual loss.

    DeblurGAN trains with 5 critic steps per generator step, Adam 1e-4 and content weight 100.
    Without VGG-19 weights the perceptual term cannot run; :func:`darkdeblur.train` then says so.
    """
    return RunConfig(
        preset="deblurgan",
        model=ModelConfig(arch="resnet", base_channels=64, norm="instance", dropout=0.5,
                          global_residual=True, upsample="transpose", kernel_size=3),
        discriminator=DiscriminatorConfig(channels=(64, 128, 256, 512), strides=(2, 2, 2, 1),
                                          kernel_size=4, norm="instance"),
        loss=LossConfig(adversarial="wgan-gp", lambda_adv=1.0, lambda_l1=0.0, lambda_dark=0.0,
                        lambda_perceptual=100.0),
        train=TrainConfig(lr=1e-4, beta1=0.5, beta2=0.999, generator_steps=1, critic_steps=5),
    )


def tiny() -> RunConfig:
    """A few-thousand-parameter U-Net for smoke tests: trains on a CPU in a minute."""
    return RunConfig(
        preset="tiny",
        model=ModelConfig(base_channels=8, max_channels=32, depth=4, kernel_size=3, dropout=0.0,
                          global_residual=True),
        discriminator=DiscriminatorConfig(channels=(8, 16, 32), strides=(2, 2, 1), kernel_size=3),
        train=TrainConfig(batch_size=4, crop=64, lr=1e-3, downsample=True, kernel_size=15,
                          min_blur_length=3.0, max_blur_length=10.0, log_every=10,
                          image_every=50, checkpoint_every=50),
    )


def default() -> RunConfig:
    """The bundled model's recipe: a light U-Net in the paper's family that deblurs on a CPU.

    Changes from the paper, each measured (docs/training-notes.md): 3x3 kernels and resize-conv
    upsampling (no checkerboard), a global residual, a full-resolution skip, no dropout, L1 plus
    dark-channel warm-up before a small adversarial term, cosine learning-rate decay.
    """
    return RunConfig(
        preset="default",
        model=ModelConfig(base_channels=24, max_channels=96, depth=5, kernel_size=3,
                          norm="batch", upsample="resize_conv", dropout=0.0, dropout_blocks=0,
                          decoder_activation="leaky_relu", global_residual=True,
                          full_res_skip=True, innermost_norm=True),
        # A light discriminator: the paper's costs ~4x this generator per sample.
        discriminator=DiscriminatorConfig(channels=(32, 64, 128, 256), strides=(2, 2, 2, 2),
                                          kernel_size=3),
        loss=LossConfig(lambda_adv=0.01, lambda_l1=100.0, lambda_dark=250.0,
                        adv_warmup_steps=4000),
        train=TrainConfig(batch_size=8, crop=128, lr=1e-3, beta1=0.9, lr_schedule="cosine",
                          generator_steps=1, steps=5000, checkpoint_every=500,
                          keep_checkpoints=20, image_every=1000, log_every=50),
    )


def hybrid() -> RunConfig:
    """The refiner of the classical engine (``--method hybrid``): the paper's adversarial and L1
    losses and discriminator, the bundled model's light U-Net, fed the blurred photo and its
    ``dcp`` deconvolution (see :mod:`darkdeblur.data.refiner_set`).

    As in the paper: adversarial (BCE, discriminator conditioned on the blurred photo) + 100 L1,
    1 D : 2 G steps, Adam beta1 0.5. Changes, each named and measured in docs/training-notes.md
    and benchmarks/RESULTS.md:

    - no dark-channel term (the paper's 250 is ``--dark-weight 250``): in the paper's ablation
      run on this refiner (2 seeds each, same budget) weight 250 cost 0.2-0.6 dB on every dev
      set against weight 0, and 0.3 dB on its own held-out crops; with it, the refiner's
      learned correction lowered the numbers it was added to;
    - the adversarial weight is 0.01, not 1 (at 1 every dev number fell within 500 steps:
      GOPRO +0.93 -> -1.03 dB; ``--adv-weight 1`` restores it), after 500 steps on L1 alone;
    - the generator is the ``default`` preset's (3x3, widths 24-96, depth 5, no dropout) with 7
      input channels (the blurred photo, the misfit level of each region's deconvolution, the
      deconvolution: ``inputs``), starting at the deconvolution; it outputs a learned per-pixel
      share of the way back to the blurred photo (``fallback_mix``) and a correction, the same
      in the three channels (``grey_correction``: a free colour correction drew fringes), so
      restored = d + a (b - d) + c. ``--no-correction`` keeps only the share (the refiner
      shipped before this one); ``--refiner-inputs`` the inputs of earlier ones;
    - L1 on [0, 1]; learning rate 5e-4 with cosine decay; 128 px windows of the 256 px training
      crops, batch 8 per process; no added noise (the crops carry theirs from before estimation).
    """
    base = default()
    return RunConfig(
        preset="hybrid",
        model=replace(base.model, inputs="blurred+deconvolved+misfit", fallback_mix=True, correction=True,
                      grey_correction=True),
        discriminator=base.discriminator,
        loss=LossConfig(lambda_adv=0.01, lambda_l1=100.0, lambda_dark=0.0, adv_warmup_steps=500),
        train=replace(base.train, lr=5e-4, beta1=0.5, generator_steps=2, steps=1650,
                      checkpoint_every=100, keep_checkpoints=40, image_every=500, log_every=25,
                      validate_every=250, max_noise_variance=0.0),
    )


PRESETS: dict[str, Callable[[], RunConfig]] = {
    "paper": paper,
    "dc250": dc250,
    "dc0": dc0,
    "dc250p": dc250p,
    "deblurgan": deblurgan,
    "tiny": tiny,
    "default": default,
    "hybrid": hybrid,
}


def preset(name: str) -> RunConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
