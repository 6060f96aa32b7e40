"""Estimated blur kernels as a picture people can look at (``--save-kernel``)."""
from __future__ import annotations

import numpy as np

CELL = 96      # pixels per kernel on each side, at least
GRID_GREY = 64


def kernel_picture(kernels: np.ndarray) -> np.ndarray:
    """(rows, cols, k, k) kernels -> uint8 (H, W, 3): each kernel scaled to its own maximum
    (white), enlarged without smoothing, laid out as the photo's regions, on a grey grid.

    >>> kernel_picture(np.ones((1, 2, 3, 3), np.float32)).shape
    (98, 195, 3)
    """
    if kernels.ndim != 4 or kernels.shape[2] != kernels.shape[3]:
        raise ValueError(f"expected (rows, cols, k, k) kernels, got shape {kernels.shape}")
    rows, cols, size, _ = kernels.shape
    zoom = max(1, -(-CELL // size))
    side = size * zoom
    picture = np.full((rows * (side + 1) + 1, cols * (side + 1) + 1), GRID_GREY, np.uint8)
    for i in range(rows):
        for j in range(cols):
            kernel = kernels[i, j]
            peak = float(kernel.max())
            cell = kernel / peak if peak > 0 else kernel
            cell = np.kron(cell, np.ones((zoom, zoom)))
            top, left = 1 + i * (side + 1), 1 + j * (side + 1)
            picture[top:top + side, left:left + side] = np.round(cell * 255).astype(np.uint8)
    return np.repeat(picture[..., None], 3, axis=2)
