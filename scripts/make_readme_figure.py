"""Before/after picture for the README: 1:1 crops of real blurry photos, each engine's output.

    python scripts/make_readme_figure.py  # -> docs/before_after.jpg

Columns: the input, ``--method gan`` (the bundled generator) and ``--method dcp`` (blind
deconvolution with its estimated kernels, drawn in the corner). Crops are not resized, so what
is visible is what a user sees at 100 %.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import darkdeblur
from darkdeblur.image_io import read_rgb
from darkdeblur.kernel_picture import kernel_picture

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real_blur"
# (photo, centre of the crop as fractions of width/height): regions with edges and text.
PHOTOS = [("selfdeblur_real/house.jpg", (0.5, 0.42)),
          ("selfdeblur_real/fishes.jpg", (0.55, 0.5)),
          ("srn_testing_set/4c6.png", (0.5, 0.45)),
          ("gopro_blur_only/seq_id-2_frame-8_Input.png", (0.45, 0.5))]
TILE = 300
LABELS = ("input", "gan (bundled)", "dcp")


def crop(rgb: np.ndarray, centre) -> Image.Image:
    h, w = rgb.shape[:2]
    top = min(max(int(centre[1] * h) - TILE // 2, 0), h - TILE)
    left = min(max(int(centre[0] * w) - TILE // 2, 0), w - TILE)
    return Image.fromarray(rgb[top:top + TILE, left:left + TILE])


def main() -> None:
    engines = [darkdeblur.load_model(device="cpu", method="gan"), darkdeblur.load_model(device="cpu", method="dcp")]
    rows = []
    for name, centre in PHOTOS:
        blurred = read_rgb(REAL / name)
        gan = engines[0](blurred)
        dcp = engines[1].restore(blurred)
        cells = [crop(blurred, centre), crop(gan, centre), crop(dcp.image, centre)]
        if dcp.kernel is not None:
            kernels = Image.fromarray(kernel_picture(dcp.kernel))
            kernels.thumbnail((TILE // 3, TILE // 3))
            cells[2].paste(kernels, (TILE - kernels.width, TILE - kernels.height))
        rows.append(cells)
        print(f"{name}: {'; '.join(dcp.warnings) or 'deblurred'}")
    gap = 8
    sheet = Image.new("RGB", (3 * TILE + 2 * gap, len(rows) * (TILE + gap) + 22), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(LABELS):
        draw.text((j * (TILE + gap) + TILE // 2 - 30, 5), label, fill="black")
    for i, cells in enumerate(rows):
        for j, cell in enumerate(cells):
            sheet.paste(cell, (j * (TILE + gap), 22 + i * (TILE + gap)))
    out = ROOT / "docs" / "before_after.jpg"
    out.parent.mkdir(exist_ok=True)
    sheet.save(out, quality=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
