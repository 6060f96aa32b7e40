"""Training throughput: samples/s with real data against the same step on random tensors.

"real data" is the training loop's own input path: photos decoded once and cached in memory,
random crops cut on the CPU a few steps ahead (background thread), then blur-kernel
convolution, flips and noise on the training device. "random tensors" feeds a fixed random
batch already on the device through the same ``train_step``: the model-only ceiling.

    python benchmarks/train_throughput.py                      # paper preset, batch 32, 256 px
    python benchmarks/train_throughput.py --preset tiny --batch-size 4 --crop 64 --steps 5
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from darkdeblur.config import preset
from darkdeblur.data import BatchStream, device_batch, load_training_images
from darkdeblur.data.stream import Prefetcher, make_kernel_bank
from darkdeblur.train_setup import build_models, build_optimizers, load_sources
from darkdeblur.train_step import train_step
from darkdeblur.devices import resolve_device

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train"


def _time_steps(step, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per step over ``steps`` calls of ``step(i)`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - began) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="training folder (default: %(default)s)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    cfg = preset(args.preset)
    cfg = replace(cfg, train=replace(cfg.train, batch_size=args.batch_size, crop=args.crop))
    tc = cfg.train
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    models = build_models(cfg, device, None)
    optimizers = build_optimizers(models, tc)
    models.generator.train()

    began = time.perf_counter()
    images = load_training_images(load_sources([args.data], "auto"), tc.downsample)
    decode_s = time.perf_counter() - began
    stream = BatchStream(images, tc, tc.seed)
    kernels = make_kernel_bank(tc, tc.seed, stream.bank_size).to(device)
    noise = torch.Generator(device=device).manual_seed(0)

    shape = (tc.batch_size, 3, tc.crop, tc.crop)
    blurred = torch.rand(shape, generator=noise, device=device)
    sharp = torch.rand(shape, generator=noise, device=device)

    def random_step(i: int) -> None:
        train_step(models, optimizers, blurred, sharp, cfg, i, noise)

    loader = Prefetcher(stream, depth=2, pin=device.type == "cuda")

    def real_step(i: int) -> None:
        train_step(models, optimizers, *device_batch(loader.next(), kernels, device, noise), cfg, i, noise)

    try:
        ceiling = _time_steps(random_step, args.warmup, args.steps, device)
        real = _time_steps(real_step, args.warmup, args.steps, device)
    finally:
        loader.close()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"preset {cfg.preset}, batch {tc.batch_size}, crop {tc.crop}, {args.steps} timed steps "
          f"after {args.warmup}, {name}; {len(images.sharp)} photos + {len(images.pairs)} pairs "
          f"decoded in {decode_s:.1f} s")
    print(f"{'input':<16} {'samples/s':>10} {'ms/step':>9} {'of ceiling':>11}")
    for label, seconds in (("random tensors", ceiling), ("real data", real)):
        print(f"{label:<16} {tc.batch_size / seconds:>10.2f} {seconds * 1e3:>9.1f} "
              f"{ceiling / seconds:>10.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
