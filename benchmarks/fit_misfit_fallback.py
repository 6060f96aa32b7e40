"""Fit the dcp engine's misfit fall-back (``darkdeblur.blur.misfit.MisfitFallback``) on training crops.

    python benchmarks/fit_misfit_fallback.py runs/refiner-set-textured runs/refiner-set-clean runs/refiner-set

For every other crop of the refiner sets (``make-data --refiner-set``; their ``misfits.npy`` is
computed on first use) it takes the blurred crop b, the engine's deconvolution d, the sharp crop
s, the crop's misfit level q and its noise estimate sigma, and the share back to the photo that
would minimise the crop's error, ``a* = <s - d, b - d> / |b - d|^2``. A rule
``clip((q - lo - slope * sigma) / width, 0, 1)`` then costs each crop exactly
``mse(d) + |b - d|^2 (g^2 - 2 g a*) / n``, so a grid over (lo, width, slope) is scored without
touching the pixels again. Prints the best rules by mean PSNR gain over d, per set, and the
oracle (each crop's own a*). Only training crops are used: the dev photos stay for measuring.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from darkdeblur.blur.misfit import misfit_level
from darkdeblur.data.refiner_set import RefinerCrops, crop_misfits
from darkdeblur.engines.dcp import noise_sigma


def crop_statistics(folders: list[str], every: int) -> dict[str, np.ndarray]:
    """Per crop: level q, noise sigma, optimal share a*, mse of d, |b - d|^2 / n, and its set."""
    out: dict[str, list] = {k: [] for k in ("q", "sigma", "a", "mse_d", "spread", "set")}
    for folder in folders:
        crops, misfits = RefinerCrops(folder), crop_misfits(folder)
        for index in range(0, len(crops), every):
            if np.isnan(misfits[index]):  # a refused kernel: d is b, nothing to choose
                continue
            pixels = np.asarray(crops[index])
            blurred, deconvolved, sharp = (p.astype(np.float32) / 255 for p in pixels)
            towards = blurred - deconvolved
            spread = float((towards * towards).mean())
            if spread < 1e-8:
                continue
            out["q"].append(misfit_level(float(misfits[index])))
            out["sigma"].append(noise_sigma(pixels[0]))
            out["a"].append(float(((sharp - deconvolved) * towards).mean() / spread))
            out["mse_d"].append(float(((deconvolved - sharp) ** 2).mean()))
            out["spread"].append(spread)
            out["set"].append(folder)
    return {k: np.array(v) for k, v in out.items()}


def gain_db(stats: dict[str, np.ndarray], share: np.ndarray) -> np.ndarray:
    """Each crop's PSNR gain over d when moved back to b by ``share``."""
    mse = stats["mse_d"] + stats["spread"] * (share**2 - 2 * share * stats["a"])
    return 10 * np.log10(stats["mse_d"] / np.maximum(mse, 1e-12))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", help="refiner sets (make-data --refiner-set)")
    parser.add_argument("--every", type=int, default=2, help="use every n-th crop")
    args = parser.parse_args(argv)
    stats = crop_statistics(args.sets, args.every)
    print(f"{len(stats['q'])} crops with a kernel from {', '.join(args.sets)}")
    scored = []
    for lo in np.arange(-0.3, 0.501, 0.025):
        for width in (0.2, 0.3, 0.4, 0.5, 0.7, 1.0):
            for slope in range(0, 41, 2):
                share = np.clip((stats["q"] - lo - slope * stats["sigma"]) / width, 0, 1)
                scored.append((float(gain_db(stats, share).mean()), round(float(lo), 3), width, slope))
    scored.sort(reverse=True)
    print("| mean gain over d (dB) | lo | width | noise slope |")
    print("|---|---|---|---|")
    for gain, lo, width, slope in scored[:5]:
        print(f"| {gain:+.3f} | {lo:.3f} | {width} | {slope} |")
    _, lo, width, slope = scored[0]
    share = np.clip((stats["q"] - lo - slope * stats["sigma"]) / width, 0, 1)
    for folder in args.sets:
        chosen = stats["set"] == folder
        print(f"{folder}: best rule {gain_db(stats, share)[chosen].mean():+.2f} dB over d "
              f"({chosen.sum()} crops)")
    oracle = np.clip(stats["a"], 0, 1)
    print(f"oracle (each crop's own share): {gain_db(stats, oracle).mean():+.2f} dB over d")
    return 0


if __name__ == "__main__":
    sys.exit(main())
