"""Train the Table 1 ablation rows on one budget: same data, same steps, same seeds.

    python benchmarks/train_ablations.py                      # the budget in RESULTS.md (CPU)
    python benchmarks/train_ablations.py --steps 60000 --crop 256 --batch-size 1   # a GPU budget

Each run goes to ``runs/ablations/<row>_s<seed>/`` (git-ignored) and is exactly what
``darkdeblur train --preset <row> --data ../shared/data/train --out ... --steps N --crop C
--batch-size B --seed S`` does; only ``deblurgan_l1`` has no preset (see ``VARIANTS``). A run
whose ``generator.safetensors`` exists is skipped, so the script can be re-run after an
interruption. ``budget.json`` beside each run records what it cost; ``quality.py`` reads it.

Rows that need VGG-19 weights (``dc250p``, the faithful ``deblurgan``) are trained only when
``--vgg-weights`` (or ``DARKDEBLUR_VGG19_WEIGHTS``) names a torchvision vgg19 state dict.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from darkdeblur.config import RunConfig, deblurgan, preset, with_steps
from darkdeblur.models.vgg import WEIGHTS_ENV
from darkdeblur.trainer import train

ROOT = Path(__file__).resolve().parents[1]


def deblurgan_l1() -> RunConfig:
    """DeblurGAN's generator and WGAN-GP critic with an L1 content term in place of VGG-19.

    The perceptual term needs ImageNet VGG-19 weights, which this machine does not have; L1 at
    the paper's weight of 100 stands in for it. Everything else is :func:`config.deblurgan`.
    """
    cfg = deblurgan()
    return replace(cfg, preset="deblurgan_l1",
                   loss=replace(cfg.loss, lambda_perceptual=0.0, lambda_l1=100.0))


# Row name -> config.
VARIANTS = {"dc0": lambda: preset("dc0"), "dc250": lambda: preset("dc250"),
            "deblurgan_l1": deblurgan_l1,
            "dc250p": lambda: preset("dc250p"), "deblurgan": lambda: preset("deblurgan")}
NEEDS_VGG = {"dc250p", "deblurgan"}


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def plan(rows: list[str], seeds: list[int], extra_seed_rows: list[str]) -> list[tuple[str, int]]:
    """Every seed of ``extra_seed_rows`` (seed by seed), then the first seed of the other rows."""
    runs = [(row, seed) for seed in seeds for row in rows if row in extra_seed_rows]
    return runs + [(row, seeds[0]) for row in rows if row not in extra_seed_rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/train"))
    p.add_argument("--out", default=str(ROOT / "runs/ablations"))
    p.add_argument("--rows", nargs="+", default=["dc0", "dc250", "deblurgan_l1", "dc250p"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--extra-seed-rows", nargs="+", default=["dc0", "dc250"],
                   help="rows trained with every seed (the others with the first seed only)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--vgg-weights", default=os.environ.get(WEIGHTS_ENV))
    p.add_argument("--device", default="auto")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = p.parse_args(argv)

    out = Path(args.out)
    for row, seed in plan(args.rows, args.seeds, args.extra_seed_rows):
        run_dir = out / f"{row}_s{seed}"
        if row in NEEDS_VGG and not args.vgg_weights:
            print(f"skip {row} seed {seed}: needs VGG-19 weights (--vgg-weights or {WEIGHTS_ENV})")
            continue
        if (run_dir / "generator.safetensors").is_file():
            print(f"skip {row} seed {seed}: {run_dir}/generator.safetensors exists")
            continue
        cfg = with_steps(VARIANTS[row](), args.steps)  # replaces the paper rows' 15 epochs
        cfg = replace(cfg, train=replace(cfg.train, crop=args.crop,
                                         batch_size=args.batch_size, seed=seed,
                                         checkpoint_every=args.steps))
        print(f"train {row} seed {seed}: {args.steps} steps, crop {args.crop}, batch {args.batch_size}"
              f" -> {run_dir}", flush=True)
        if args.dry_run:
            continue
        began = time.perf_counter()
        summary = train(cfg, [args.data], run_dir, device=args.device, vgg_weights=args.vgg_weights,
                        progress=False)
        seconds = time.perf_counter() - began
        last = summary["history"][-1] if summary["history"] else {}
        budget = {"row": row, "seed": seed, "steps": args.steps, "crop": args.crop,
                  "batch_size": args.batch_size, "samples": args.steps * args.batch_size,
                  "seconds": round(seconds, 1), "train_seconds": round(summary["seconds"], 1), "hardware": hardware(),
                  "data": os.path.relpath(args.data, ROOT), "last_losses": last}
        (run_dir / "budget.json").write_text(json.dumps(budget, indent=2))
        print(f"  done in {seconds:.0f} s; last l1 {last.get('l1', float('nan')):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
