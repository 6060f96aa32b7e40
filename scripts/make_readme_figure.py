"""Before/after picture for the README: 1:1 crops of real blurry photos, each engine's output.

    python scripts/make_readme_figure.py                  # -> docs/before_after.jpg
    python scripts/make_readme_figure.py --sheet fringes  # -> docs/fringes.jpg
    python scripts/make_readme_figure.py --photos hide_blur_only/1fromGOPR0950.png:0.5:0.5 --out docs/x.jpg

Columns: the input, ``--method gan`` (the bundled generator), ``--method dcp`` (blind
deconvolution with its estimated kernels, drawn in the corner, and its misfit fall-back) and
``--method hybrid`` (the plain deconvolution, refined; shown when refiner weights exist): each
column is what that method returns. Crops are not resized, so what is visible is what a user
sees at 100 %.
"""
from __future__ import annotations

import argparse
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
# thin dark lines on bright backgrounds, where a colour correction draws fringes
FRINGE_PHOTOS = [("gopro_blur_only/seq_id-5_frame-2_Input.png", (0.82, 0.2)),
                 ("hide_blur_only/1fromGOPR0950.png", (0.2, 0.3)),
                 ("gopro_blur_only/seq_id-2_frame-8_Input.png", (0.45, 0.2)),
                 ("gopro_blur_only/seq_id-11_frame-1_Input.png", (0.6, 0.2))]
SHEETS = {"before_after": PHOTOS, "fringes": FRINGE_PHOTOS}
TILE = 300
LABELS = ("input", "gan (bundled)", "dcp", "hybrid")


def crop(rgb: np.ndarray, centre) -> Image.Image:
    h, w = rgb.shape[:2]
    top = min(max(int(centre[1] * h) - TILE // 2, 0), h - TILE)
    left = min(max(int(centre[0] * w) - TILE // 2, 0), w - TILE)
    return Image.fromarray(rgb[top:top + TILE, left:left + TILE])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", metavar="PATH:X:Y",
                        help="photos under ../shared/data/real_blur with the crop centre as fractions")
    parser.add_argument("--hybrid-weights", help="refiner weights (default: the bundled ones, if any)")
    parser.add_argument("--sheet", choices=sorted(SHEETS), default="before_after",
                        help="the committed sheets' photos and crops (docs/SHEET.jpg)")
    parser.add_argument("--out", help="default: docs/SHEET.jpg")
    args = parser.parse_args()
    args.out = args.out or str(ROOT / "docs" / f"{args.sheet}.jpg")
    photos = SHEETS[args.sheet] if not args.photos else [
        (spec.split(":")[0], tuple(float(v) for v in spec.split(":")[1:3])) for spec in args.photos]
    gan, dcp_engine = darkdeblur.load_model(device="cpu", method="gan"), darkdeblur.load_model(device="cpu", method="dcp")
    try:
        hybrid = darkdeblur.load_model(args.hybrid_weights, device="cpu", method="hybrid")
    except FileNotFoundError:
        hybrid = None
    columns = len(LABELS) if hybrid else len(LABELS) - 1
    rows = []
    for name, centre in photos:
        blurred = read_rgb(REAL / name)
        dcp = dcp_engine.restore(blurred)
        cells = [crop(blurred, centre), crop(gan(blurred), centre), crop(dcp.image, centre)]
        if hybrid:  # what --method hybrid returns: its own plain deconvolution, refined
            cells.append(crop(hybrid.restore(blurred).image, centre))
        if dcp.kernel is not None:
            kernels = Image.fromarray(kernel_picture(dcp.kernel))
            kernels.thumbnail((TILE // 3, TILE // 3))
            cells[2].paste(kernels, (TILE - kernels.width, TILE - kernels.height))
        rows.append(cells)
        print(f"{name}: {'; '.join(dcp.warnings) or 'deblurred'}")
    gap = 8
    sheet = Image.new("RGB", (columns * TILE + (columns - 1) * gap, len(rows) * (TILE + gap) + 22), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(LABELS[:columns]):
        draw.text((j * (TILE + gap) + TILE // 2 - 30, 5), label, fill="black")
    for i, cells in enumerate(rows):
        for j, cell in enumerate(cells):
            sheet.paste(cell, (j * (TILE + gap), 22 + i * (TILE + gap)))
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    sheet.save(out, quality=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
