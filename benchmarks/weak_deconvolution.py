"""What a weaker prior would give: each photo deconvolved again with the dcp engine's own kernels
at fractions of its prior's weight, per photo, and the best fraction per neighbourhood.

    python benchmarks/weak_deconvolution.py runs/synth/kodak24
    python benchmarks/weak_deconvolution.py runs/synth/kodak24_noisy --factors 0.3 1

The engine's noise-adaptive weight (darkdeblur.blur.nonblind) is one value per photo; a refiner
that sees a second deconvolution at a fraction of it (``--refiner-inputs ...+weak``) can take
the sharper one where it is right. This measures how much there is to take: the PSNR of each
fraction, and of an oracle that gives each pixel the fraction with the least error over its
``--block`` px neighbourhood (it knows the sharp photo: an upper bound, not a method; per pixel
it would pick noise). The kernels are the
plain dcp engine's, remembered in ``--dcp-cache`` as hybrid_curve.py does.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from scipy.ndimage import uniform_filter
from skimage.metrics import peak_signal_noise_ratio

from darkdeblur.data import find_pairs
from darkdeblur.engines import DcpRestorer, DcpSettings
from darkdeblur.engines.memo import MemoRestorer
from darkdeblur.image_io import read_rgb

PLAIN_DCP = DcpSettings(fallback=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", help="a paired folder (blur/ and sharp/)")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--block", type=int, default=32, help="side of the oracle's neighbourhoods (px)")
    parser.add_argument("--dcp-cache", default="runs/dcp-cache")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    engine = DcpRestorer(PLAIN_DCP)
    dcp = MemoRestorer(engine, args.dcp_cache)
    names = [f"{f:g} x" for f in args.factors]
    print(f"| image | input | {' | '.join(names)} | best by {args.block} px neighbourhood |")
    print("|---|---|" + "---|" * (len(names) + 1))
    totals: list[list[float]] = []
    for blurred_path, sharp_path in find_pairs(args.pairs, "paired"):
        blurred, sharp = read_rgb(blurred_path), read_rgb(sharp_path).astype(np.float64)
        first = dcp.restore_checked(blurred)
        if first.kernel is None:  # the engine leaves it unchanged: nothing to deconvolve
            continue
        outputs = [engine.deconvolve_grid(blurred, first.kernel, f) for f in args.factors]
        errors = [((out - sharp) ** 2).mean(-1) for out in outputs]
        local = np.stack([uniform_filter(e, args.block) for e in errors])
        oracle = np.choose(local.argmin(0), errors).mean()
        row = [peak_signal_noise_ratio(sharp, out.astype(np.float64), data_range=255) for out in outputs]
        row.append(10 * np.log10(255.0**2 / oracle))
        totals.append(row)
        print(f"| {blurred_path.name} | {peak_signal_noise_ratio(sharp, blurred.astype(np.float64), data_range=255):.2f} "
              f"| {' | '.join(f'{v:.2f}' for v in row)} |", flush=True)
    if not totals:
        print(f"{args.pairs}: no photo the engine found a kernel for", file=sys.stderr)
        return 1
    print(f"| mean of {len(totals)} | | {' | '.join(f'{v:.2f}' for v in np.mean(totals, 0))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
