"""Before/after picture for the README: crops of real blurry photos and the bundled model's output.

    python scripts/make_readme_figure.py  # -> docs/before_after.jpg
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import darkdeblur
from darkdeblur.image_io import read_rgb

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real_blur"
# (photo, crop box as fractions of width/height): regions with edges and text, where blur shows.
PHOTOS = [("selfdeblur_real/house.jpg", (0.25, 0.2, 0.75, 0.7)),
          ("gopro_blur_only/seq_id-2_frame-8_Input.png", (0.3, 0.25, 0.6, 0.75)),
          ("srn_testing_set/01.png", (0.3, 0.25, 0.6, 0.75))]
TILE = 320


def crop(rgb: np.ndarray, box) -> Image.Image:
    h, w = rgb.shape[:2]
    left, top, right, bottom = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    side = min(right - left, bottom - top)
    return Image.fromarray(rgb[top:top + side, left:left + side]).resize((TILE, TILE), Image.LANCZOS)


def main() -> None:
    model = darkdeblur.load_model(device="cpu")
    rows = []
    for name, box in PHOTOS:
        blurred = read_rgb(REAL / name)
        rows.append((crop(blurred, box), crop(model(blurred), box)))
    sheet = Image.new("RGB", (2 * TILE + 10, len(rows) * (TILE + 10) + 24), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((TILE // 2 - 20, 6), "input", fill="black")
    draw.text((TILE + 10 + TILE // 2 - 30, 6), "darkdeblur", fill="black")
    for i, (before, after) in enumerate(rows):
        y = 24 + i * (TILE + 10)
        sheet.paste(before, (0, y))
        sheet.paste(after, (TILE + 10, y))
    out = ROOT / "docs" / "before_after.jpg"
    out.parent.mkdir(exist_ok=True)
    sheet.save(out, quality=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
