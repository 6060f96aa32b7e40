"""Scoring a model on paired folders under a named protocol (see :mod:`darkdeblur.metrics`)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .image_io import read_rgb
from .metrics import model_input, reference, score


def _mean(values: list[float]) -> float:
    # An identical image has infinite PSNR; the mean then is infinite too, not silently lower.
    return float(np.mean(values)) if values else float("nan")


def evaluate_pairs(restore, pairs: list[tuple[Path, Path]], protocol: str,
                   progress: bool = True) -> dict:
    """Score ``restore(blurred_uint8) -> restored`` on (blurred, sharp) file pairs.

    ``restored`` is uint8, or under ``paper`` also float in [0, 1] (scored unrounded).
    Returns ``{"protocol", "n", "psnr", "ssim", "psnr_input", "ssim_input", "per_image": [...]}``;
    ``*_input`` scores the blurred input itself, the baseline any deblurring must beat.
    What the method is given and what it is scored against follow
    :func:`darkdeblur.metrics.model_input` and :func:`darkdeblur.metrics.reference`: under
    ``paper`` the halved GOPRO frame resized to 360x360, under ``paper-after`` the halved frame.
    """
    rows = []
    for blurred_path, sharp_path in tqdm(pairs, desc=f"eval ({protocol})", disable=not progress,
                                         unit="image"):
        blurred, sharp = read_rgb(blurred_path), read_rgb(sharp_path)
        if blurred.shape != sharp.shape:
            raise ValueError(f"{blurred_path}: size {blurred.shape[:2]} differs from its sharp "
                             f"image {sharp.shape[:2]}")
        blurred, sharp = model_input(blurred, protocol), reference(sharp, protocol)
        restored = restore(blurred)
        row = {"image": blurred_path.name}
        row.update(score(restored, sharp, protocol))
        row.update({f"{k}_input": v for k, v in score(blurred, sharp, protocol).items()})
        rows.append(row)
    keys = [k for k in rows[0] if k != "image"] if rows else []
    summary = {"protocol": protocol, "n": len(rows)}
    summary.update({k: _mean([r[k] for r in rows]) for k in keys})
    summary["per_image"] = rows
    return summary


def format_summary(summary: dict, label: str = "") -> str:
    """One line per metric, each naming the protocol it was measured under."""
    p = summary["protocol"]
    lines = [f"{label}{summary['n']} images, protocol {p!r}:"]
    lines.append(f"  PSNR  {summary['psnr']:.2f} dB (input {summary['psnr_input']:.2f} dB, "
                 f"gain {summary['psnr'] - summary['psnr_input']:+.2f} dB)  [{p}]")
    lines.append(f"  SSIM  {summary['ssim']:.4f} (input {summary['ssim_input']:.4f})  [{p}]")
    if "ssim_range2" in summary:
        lines.append(f"  SSIM with the data range of 2 the paper's old scikit-image assumed: "
                     f"{summary['ssim_range2']:.4f} (input {summary['ssim_range2_input']:.4f})  "
                     f"[{p}, range-2 SSIM, not comparable]")
    return "\n".join(lines)


def write_csv(summary: dict, path: str | Path) -> None:
    rows = summary["per_image"]
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["protocol", *rows[0].keys()])
        writer.writeheader()
        for row in rows:
            writer.writerow({"protocol": summary["protocol"], **row})


def write_json(summary: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(summary, indent=2, allow_nan=True))
