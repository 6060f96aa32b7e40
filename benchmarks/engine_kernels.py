"""What the refiner of the classical engine will learn from: the cached training kernels.

    python benchmarks/engine_kernels.py caches/engine-kernels [--limit 500]

For every crop of a kernel cache (``darkdeblur make-data --estimate-kernels``) it rebuilds the
blurred crop, deconvolves it with the cached estimate as the engine would (blurred pixels kept
where the estimate was refused) and prints: how often the engine refused, the normalised
cross-correlation of estimated and true kernels (synthetic crops), and the PSNR gain of the
deconvolution over the blurred crop, by source. Prints only; nothing is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.signal import correlate2d

from darkdeblur.blur.nonblind import deconvolve, noise_adaptive_weight
from darkdeblur.data.engine_kernels import CropRecipe, draw_crop, read_kernel_cache
from darkdeblur.data.folders import DataSources
from darkdeblur.engines.dcp import noise_sigma
from darkdeblur.metrics import psnr
from darkdeblur.pixels import to_uint8


def best_ncc(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(correlate2d(estimate / np.linalg.norm(estimate), truth / np.linalg.norm(truth)).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--limit", type=int, help="look at the first N crops only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record, meta, kernels, refused = read_kernel_cache(args.cache)
    recipe = CropRecipe(**record["recipe"])
    sources = DataSources(pairs=[(Path(b), Path(s)) for b, s in record["pairs"]],
                          sharp=[Path(p) for p in record["sharp"]])
    images: dict = {}
    rows = {"synthetic": [], "pair": []}
    for entry, kernel, was_refused in list(zip(meta, kernels, refused))[:args.limit]:
        crop = draw_crop(recipe, sources, images, entry["index"])
        blurred, sharp = to_uint8(crop["blurred"]), to_uint8(crop["sharp"])
        if was_refused:
            restored = blurred
        else:
            weight = noise_adaptive_weight(noise_sigma(blurred))
            restored = to_uint8(deconvolve(crop["blurred"][None], torch.from_numpy(kernel), weight)[0])
        gain = psnr(restored, sharp, 255) - psnr(blurred, sharp, 255)
        ncc = best_ncc(kernel, crop["kernel"]) if crop["kernel"] is not None and not was_refused else None
        rows["pair" if crop["kernel"] is None else "synthetic"].append((bool(was_refused), gain, ncc))
    print(f"Cache {args.cache}: {len(meta)} crops of {recipe.crop} px, {sum(map(len, rows.values()))} looked at.\n")
    print("| source | crops | refused | mean gain dB (all) | gain, accepted only | worst | kernel NCC (median) |")
    print("|---|---|---|---|---|---|---|")
    for source, found in rows.items():
        if not found:
            continue
        gains = np.array([g for _, g, _ in found])
        accepted = np.array([g for r, g, _ in found if not r])
        nccs = [n for _, _, n in found if n is not None]
        print(f"| {source} | {len(found)} | {np.mean([r for r, _, _ in found]):.0%} | {gains.mean():+.2f} | "
              f"{accepted.mean() if accepted.size else float('nan'):+.2f} | {gains.min():+.2f} | "
              f"{np.median(nccs) if nccs else float('nan'):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
