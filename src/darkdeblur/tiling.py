"""Tiled inference: restore a large image as overlapping tiles blended without seams.

A fully convolutional generator can run on any size, but its activations grow with the pixel
count (the bundled model holds a few dozen full-resolution feature maps), so a 24-megapixel
photo is restored in tiles. Three choices keep the tiled result equal to the whole-image one:

- Tiles start on multiples of the generator's padding multiple (``generator.multiple``, 2**depth
  for the U-Net), so every stride-2 level samples the same grid it would on the whole image.
- Neighbouring tiles overlap. Each tile's weight is 1 in its interior and falls to 0 across the
  overlap with a raised cosine, after a margin where it is exactly 0: the margin is context
  only, so no tile contributes pixels that sat near its own cut edge. Incoming and outgoing
  ramps are complements, so the weights sum to exactly 1 everywhere and no normalising weight
  map is needed.
- Tiles are processed one row at a time into a float32 band the height of one tile; rows that
  no later tile touches are rounded into the output as soon as the row is done. Peak memory is
  the input, the output, one band and one tile's activations.

Normalisation that looks at the whole image (InstanceNorm) sees one tile instead, so tiled and
whole-image outputs of such models differ; BatchNorm in eval mode is per pixel and tiles exactly.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .pixels import quantize, to_tensor

MIN_OVERLAP = 64
# Share of an overlap, on each side, that is context only (weight 0): the ramp spans the middle.
MARGIN_FRACTION = 0.25

RestoreFn = Callable[[torch.Tensor], torch.Tensor]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) spans covering ``range(length)``: stride ``tile - overlap``, the last one shorter.

    Starts are multiples of the stride, so they stay aligned to whatever ``tile`` and
    ``overlap`` are multiples of. Needs ``tile >= 2 * overlap`` (three tiles never overlap).

    >>> tile_spans(1000, 512, 128)
    [(0, 512), (384, 896), (768, 1000)]
    """
    if tile < 2 * overlap or overlap < 0:
        raise ValueError(f"tile {tile} must be at least twice the overlap {overlap}")
    if length <= tile:
        return [(0, length)]
    stride = tile - overlap
    count = math.ceil((length - overlap) / stride)  # the last span still adds > 0 new pixels
    return [(i * stride, min(i * stride + tile, length)) for i in range(count)]


def ramp(overlap: int) -> np.ndarray:
    """Weights (overlap,) rising from 0 to 1 for the tile that enters an overlap; the tile that
    leaves it gets ``1 - ramp``. Zero on the first margin, one on the last, a raised cosine between.

    >>> [round(float(w), 3) for w in ramp(8)]
    [0.0, 0.0, 0.038, 0.309, 0.691, 0.962, 1.0, 1.0]
    """
    margin = int(overlap * MARGIN_FRACTION)
    width = overlap - 2 * margin
    rising = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / max(width, 1))
    return np.concatenate([np.zeros(margin), rising, np.ones(overlap - margin - width)]).astype(np.float32)


def span_weights(spans: list[tuple[int, int]], index: int) -> np.ndarray:
    """1-D blending weights (end - start,) of span ``index``; over all spans they sum to 1."""
    start, end = spans[index]
    weights = np.ones(end - start, np.float32)
    if index > 0:
        entering = spans[index - 1][1] - start
        weights[:entering] *= ramp(entering)
    if index + 1 < len(spans):
        leaving = end - spans[index + 1][0]
        weights[end - start - leaving:] *= 1.0 - ramp(leaving)
    return weights


def restore_tiled(restore: RestoreFn, pixels: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """Restore uint8/uint16 (H, W, 3) ``pixels`` tile by tile; returns the same dtype and shape.

    ``restore`` maps (1, 3, h, w) float32 in [0, 1] to the same shape on the CPU. ``tile`` and
    ``overlap`` should be multiples of the generator's padding multiple (see module docstring).
    """
    _check_pixels(pixels)
    height, width = pixels.shape[:2]
    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    return blend_tiles(lambda row, col, tile_pixels: restore(tile_pixels), pixels, rows, cols)


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 (H, W, 3) pixels, got {pixels.dtype} {pixels.shape}")


def blend_tiles(restore: Callable[[int, int, torch.Tensor], torch.Tensor], pixels: np.ndarray,
                rows: list[tuple[int, int]], cols: list[tuple[int, int]]) -> np.ndarray:
    """Restore the tiles ``rows x cols`` (spans as from :func:`tile_spans`) and blend them.

    ``restore(i, j, tile)`` gets tile (i, j) as (1, 3, h, w) float32 in [0, 1] and returns the
    same shape on the CPU, so each tile may be treated differently (its own blur kernel).
    """
    _check_pixels(pixels)
    width = pixels.shape[1]
    col_weights = [torch.from_numpy(span_weights(cols, j)) for j in range(len(cols))]
    output = np.empty_like(pixels)
    carried = np.zeros((0, width, 3), np.float32)  # partial sums above the next row's start
    for i, (top, bottom) in enumerate(rows):
        band = np.zeros((bottom - top, width, 3), np.float32)  # weighted sums for rows [top, bottom)
        band[:len(carried)] = carried
        row_weights = torch.from_numpy(span_weights(rows, i))[:, None]
        for j, (left, right) in enumerate(cols):
            restored = restore(i, j, to_tensor(pixels[top:bottom, left:right]))[0]  # (3, h, w)
            weighted = restored * (row_weights * col_weights[j])
            band[:, left:right] += weighted.permute(1, 2, 0).numpy()
        finished = rows[i + 1][0] - top if i + 1 < len(rows) else bottom - top
        output[top:top + finished] = quantize(band[:finished], pixels.dtype)
        carried = band[finished:].copy()
    return output
