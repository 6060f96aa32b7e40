"""An engine whose restorations are kept on disk, keyed by the input's pixels and its settings.

Scoring many refiners (checkpoints of a hybrid run, ablation arms) on the same photos would redo
the same classical deconvolutions each time: 5 s per 1280x720 photo, against under a second
for the refiner. Wrapped in :class:`MemoRestorer`, the classical engine pays once per photo.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..safe_files import atomic_write
from .base import Restoration, Restorer


class MemoRestorer(Restorer):
    """``engine``'s restorations, remembered in ``folder`` (one ``.npz`` per photo)."""

    def __init__(self, engine: Restorer, folder: str | Path):
        self.engine, self.folder = engine, Path(folder)
        self.method = engine.method
        settings = json.dumps(engine.describe(), sort_keys=True) + repr(getattr(engine, "settings", ""))
        self.key = hashlib.sha256(settings.encode()).hexdigest()[:12]

    def path(self, rgb: np.ndarray) -> Path:
        depth = "" if rgb.dtype == np.uint8 else rgb.dtype.str  # 16-bit photos hash apart
        digest = hashlib.sha256(rgb.tobytes() + (repr(rgb.shape) + depth).encode()).hexdigest()[:24]
        return self.folder / f"{self.key}-{digest}.npz"

    def restore_checked(self, rgb: np.ndarray) -> Restoration:
        path = self.path(rgb)
        if path.is_file():
            with np.load(path) as saved:
                kernel = saved["kernel"] if saved["kernel"].size else None
                return Restoration(saved["image"], kernel, json.loads(str(saved["warnings"])))
        result = self.engine.restore_checked(rgb)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, image=result.image, warnings=json.dumps(result.warnings),
                         kernel=result.kernel if result.kernel is not None else np.zeros(0, np.float32))

        atomic_write(path, write)
        return result

    def describe(self) -> dict:
        return self.engine.describe()

    def regions(self, height: int, width: int) -> tuple[list, list]:
        """The wrapped dcp engine's regions (the hybrid engine's misfit map needs them)."""
        return self.engine.regions(height, width)

    def deconvolve_grid(self, rgb: np.ndarray, grid: np.ndarray, factor: float = 1.0,
                        sigma: float | None = None) -> np.ndarray:
        """The wrapped dcp engine's deconvolution with a kernel grid, remembered beside the
        photo's restoration (a deconvolution of a whole photo costs about as much again as
        the estimation): keyed by the photo, the grid and ``factor``."""
        grid_digest = hashlib.sha256(np.ascontiguousarray(grid).tobytes() + repr(factor).encode()).hexdigest()[:12]
        path = self.path(rgb).with_suffix(f".grid-{grid_digest}.npy")
        if path.is_file():
            return np.load(path)
        result = self.engine.deconvolve_grid(rgb, grid, factor, sigma)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a name
                np.save(f, result)

        atomic_write(path, write)
        return result
