"""Ways of restoring a photo, behind one interface (:class:`Restorer`).

- ``gan``: a trained generator (the paper's method; the bundled weights or ``--weights``).
- ``dcp``: blind deconvolution with the dark channel prior (Pan et al. 2016); no training.
- ``hybrid``: ``dcp``, then a generator trained with the paper's losses to refine its
  deconvolution (the bundled ``hybrid`` weights or ``--weights``).

:func:`load_engine` builds one by name; everything else takes the engine it is given.
"""
from __future__ import annotations

import os
from dataclasses import replace

from ..devices import resolve_device
from .base import Restoration, Restorer, check_rgb
from .dcp import DcpRestorer, DcpSettings
from .gan import GanRestorer, TileSettingsError, bundled_gan_weights
from .hybrid import HybridRestorer, bundled_hybrid_weights

METHODS = ("gan", "dcp", "hybrid")
PRIORS = ("l0", "dark")  # kernel estimation: L0 gradients only, or dark channel + L0 gradients
DEFAULT_METHOD = "hybrid"  # the best on the real dev photos (benchmarks/RESULTS.md)

__all__ = ["METHODS", "PRIORS", "DEFAULT_METHOD", "DcpRestorer", "DcpSettings", "GanRestorer", "HybridRestorer", "Restoration",
           "Restorer", "TileSettingsError", "bundled_gan_weights", "bundled_hybrid_weights", "check_rgb", "load_engine", "resolve_method"]


def resolve_method(method: str | None, weights: str | os.PathLike | None) -> str:
    """``method``, or the one ``weights`` were trained for (weights describe themselves: a hybrid
    refiner's config says it takes the deconvolution too), or the bundled default."""
    if method:
        return method
    if weights is not None:
        from ..checkpoint import weights_config
        cfg = weights_config(weights)
        if cfg is not None:
            return "hybrid" if cfg.model.inputs != "blurred" else "gan"
    return DEFAULT_METHOD


def load_engine(method: str | None = None, weights: str | os.PathLike | None = None, device: str = "auto",
                tile: int | None = None, overlap: int | None = None, half: bool = False,
                kernel_size: int | None = None, prior: str = "l0", progress: bool = False,
                test_mode: str | None = None) -> Restorer:
    """Build the engine ``method`` (default: the bundled default) on ``device``.

    ``weights``, ``half``, ``tile``/``overlap`` and ``test_mode`` concern learned engines;
    ``kernel_size`` (odd, at the working resolution) and ``prior`` (see ``PRIORS``) concern
    engines that estimate a kernel.
    """
    method = resolve_method(method, weights)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
    dev = resolve_device(device)
    if method == "gan":
        return GanRestorer.load(weights, dev, tile=tile, overlap=overlap, half=half, test_mode=test_mode)
    settings = DcpSettings()
    estimation = replace(settings.estimation, dark_channel=prior == "dark")
    if kernel_size is not None:
        estimation = replace(estimation, kernel_size=kernel_size)
    if method == "hybrid":  # the refiner refines the plain deconvolution: it does its own fall-back
        dcp = DcpRestorer(replace(settings, estimation=estimation, fallback=None), dev, progress=progress)
        return HybridRestorer.load(dcp, weights, dev, tile=tile, overlap=overlap, half=half)
    return DcpRestorer(replace(settings, estimation=estimation), dev, progress=progress)
