"""The Python API: ``load_model()`` builds an engine, ``deblur()`` restores a photo with it.

>>> import darkdeblur                                            # doctest: +SKIP
>>> engine = darkdeblur.load_model(method="dcp")                 # doctest: +SKIP
>>> sharp = darkdeblur.deblur(PIL.Image.open("a.jpg"), engine)   # doctest: +SKIP
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from .engines import Restorer, bundled_gan_weights, load_engine

bundled_weights_path = bundled_gan_weights  # the bundled generator's file


def load_model(weights: str | os.PathLike | None = None, device: str = "auto",
               tile: int | None = None, overlap: int | None = None, half: bool = False,
               method: str | None = None, **options) -> Restorer:
    """An engine by ``method`` (``gan``, ``dcp``, ``hybrid``; default: the bundled default); see
    :func:`darkdeblur.engines.load_engine` for ``options`` (kernel_size, prior, progress)."""
    return load_engine(method, weights=weights, device=device, tile=tile, overlap=overlap,
                       half=half, **options)


def deblur(image, model: Restorer | None = None, method: str | None = None):
    """Deblur a PIL image or a uint8/uint16 (H, W, 3) array; returns the same kind.

    PIL images keep their mode: alpha is carried over unchanged, greyscale stays greyscale and
    16-bit greyscale (``I;16``) is restored at 16 bits.
    """
    model = model or _default_model(method)
    if not isinstance(image, Image.Image):
        return model(np.asarray(image))
    mode = image.mode
    alpha = image.getchannel("A") if mode in ("RGBA", "LA", "PA") else None
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image).astype(np.uint16)
        restored = model(np.repeat(grey[..., None], 3, axis=2))[..., 0]
        return Image.fromarray(restored.astype(np.uint16), "I;16")
    rgb = np.asarray(image.convert("RGB"))
    restored = Image.fromarray(model(rgb))
    if mode in ("L", "LA", "1"):
        restored = restored.convert("L")
    if alpha is not None:
        restored = restored.convert("RGBA" if restored.mode == "RGB" else "LA")
        restored.putalpha(alpha)
    return restored


_DEFAULTS: dict[str | None, Restorer] = {}


def _default_model(method: str | None) -> Restorer:
    if method not in _DEFAULTS:
        _DEFAULTS[method] = load_model(method=method)
    return _DEFAULTS[method]
