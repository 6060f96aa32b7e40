"""What every way of restoring a photo offers: ``restore(rgb) -> Restoration``.

The CLI, the Python API, ``eval``, the benchmarks and the web page take a :class:`Restorer` and
never ask which engine it is; colour handling, file formats, atomic writes and error reporting
live in the callers, once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Restoration:
    """A restored photo and what the engine learned about it.

    ``image`` has the input's shape and dtype (uint8 or uint16 (H, W, 3)). ``kernel`` is the
    estimated blur at the input's resolution for engines that estimate one: (rows, cols, k, k)
    float32, one kernel (sum 1) per region of the photo, all zeros for a region left unchanged. ``warnings`` are one-line notes for the user (e.g. why the photo was returned
    unchanged); callers prefix them with the file name.
    """

    image: np.ndarray
    kernel: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Accept only what every engine handles: uint8 or uint16 (H, W, 3)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    return rgb


class Restorer:
    """Base of the engines: subclasses implement :meth:`restore_checked` and set ``method``."""

    method = ""

    def restore(self, rgb: np.ndarray) -> Restoration:
        """Restore a uint8/uint16 (H, W, 3) photo."""
        return self.restore_checked(check_rgb(rgb))

    def restore_checked(self, rgb: np.ndarray) -> Restoration:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The restored pixels only: what ``eval`` and the benchmarks need."""
        return self.restore(rgb).image

    def describe(self) -> dict:
        """What produced an output (method and settings), for reports and the web page."""
        return {"method": self.method}
