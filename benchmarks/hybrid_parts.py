"""Where a hybrid refiner gains or loses: its output split into its parts, per photo.

    python benchmarks/hybrid_parts.py src/darkdeblur/weights/hybrid.safetensors runs/synth/kodak24_clean
    python benchmarks/hybrid_parts.py WEIGHTS ../shared/data/dev/gopro --images dongheehand_03.png

A refiner with ``fallback_mix`` returns ``d + a (b - d) + correction`` (``d`` the dcp
deconvolution, ``b`` the blurred photo, ``a`` a per-pixel share). This prints, per photo, the PSNR
of the input, of dcp, of the refiner, of ``d + correction`` alone and of ``d + a (b - d)`` alone,
and the mean share: which part costs what where the deconvolution is right, and which gains
where it is wrong. A refiner with ``weak_mix`` adds ``s (w - d)`` (``w`` the weak deconvolution):
then ``d + s (w - d)`` alone and the mean weak share are printed too. dcp restorations are
remembered in ``--dcp-cache`` (as hybrid_curve.py does).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio

from darkdeblur.data import find_pairs
from darkdeblur.engines import DcpRestorer, DcpSettings, HybridRestorer
from darkdeblur.engines.gan import GanRestorer
from darkdeblur.engines.hybrid import map_tensor
from darkdeblur.engines.memo import MemoRestorer
from darkdeblur.image_io import read_rgb
from darkdeblur.models.layers import pad_to_multiple
from darkdeblur.pixels import quantize, to_tensor

# what the hybrid refiner refines: the plain deconvolution (the dcp engine without its fall-back)
PLAIN_DCP = DcpSettings(fallback=None)


def parts(generator, blurred: np.ndarray, deconvolved: np.ndarray, *maps: np.ndarray) -> dict[str, np.ndarray]:
    """The refiner's output and its parts alone, uint8 (H, W, 3) each, and the share maps
    (``maps``: what a refiner sees between the two, HybridRestorer.maps)."""
    between = [map_tensor(m) for m in maps]
    x = torch.cat([to_tensor(blurred), *between, to_tensor(deconvolved)], 1)
    padded, (height, width) = pad_to_multiple(x, generator.multiple)
    with torch.inference_mode():
        restored = generator(x)
        raw = generator.head(padded)[..., :height, :width]
    b, d = x[:, :3] * 2 - 1, x[:, -3:] * 2 - 1
    correction = raw[:, :3] if generator.cfg.correction else torch.zeros_like(d)
    if generator.cfg.grey_correction:
        correction = correction.mean(1, keepdim=True).expand_as(correction)
    share = raw[:, -1:]
    if generator.cfg.sees_fallback:  # the learned share is a change of the rule's
        share = share + x[:, 4:5]

    def image(t: torch.Tensor) -> np.ndarray:
        return quantize(((t.clamp(-1, 1) + 1) / 2)[0].permute(1, 2, 0).numpy(), np.uint8)

    out = {"hybrid": quantize(restored[0].permute(1, 2, 0).numpy(), np.uint8),
           "correction_only": image(d + correction), "fallback_only": image(d + share * (b - d)),
           "share": share[0, 0].numpy()}
    if generator.cfg.weak_mix:  # the weak deconvolution is input channels 4-6
        weak_share = raw[:, -2:-1]
        out["weak_only"] = image(d + weak_share * (x[:, 4:7] * 2 - 1 - d))
        out["weak_share"] = weak_share[0, 0].numpy()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="hybrid refiner weights (.safetensors or a checkpoint)")
    parser.add_argument("pairs", help="a paired folder (blur/ and sharp/)")
    parser.add_argument("--images", nargs="*", help="only these file names")
    parser.add_argument("--dcp-cache", default="runs/dcp-cache")
    args = parser.parse_args(argv)
    refiner = GanRestorer.load(args.weights, torch.device("cpu"), refiner=True)
    if not refiner.cfg.model.fallback_mix:
        raise SystemExit(f"{args.weights}: this refiner has no fall-back share (fallback_mix off)")
    generator = refiner.inference_model()
    dcp = MemoRestorer(DcpRestorer(PLAIN_DCP), args.dcp_cache)
    engine = HybridRestorer(dcp, refiner)  # for the maps a refiner sees (misfit, rule, weak deconvolution)
    weak = refiner.cfg.model.weak_mix
    extra = " d + weak share only | mean weak share s |" if weak else ""
    print("| image | input | dcp | hybrid | d + correction only | d + fallback only | mean share a |" + extra)
    print("|---|---|---|---|---|---|---|" + "---|---|" * weak)
    for blurred_path, sharp_path in find_pairs(Path(args.pairs), "paired"):
        if args.images and blurred_path.name not in args.images:
            continue
        blurred, sharp = read_rgb(blurred_path), read_rgb(sharp_path)
        first = dcp.restore_checked(blurred)
        deconvolved = first.image
        if first.kernel is None:  # dcp left it unchanged, and so does the hybrid engine
            print(f"| {blurred_path.name} | dcp left it unchanged | | | | | |")
            continue
        out = parts(generator, blurred, deconvolved, *engine.maps(blurred, deconvolved, first.kernel))
        psnr = lambda image: peak_signal_noise_ratio(sharp, image, data_range=255)  # noqa: E731
        print(f"| {blurred_path.name} | {psnr(blurred):.2f} | {psnr(deconvolved):.2f} | {psnr(out['hybrid']):.2f} | "
              f"{psnr(out['correction_only']):.2f} | {psnr(out['fallback_only']):.2f} | "
              f"{float(out['share'].mean()):.3f} |" +
              (f" {psnr(out['weak_only']):.2f} | {float(out['weak_share'].mean()):.3f} |" if weak else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
