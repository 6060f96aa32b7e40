"""Peak resident memory and time of ``darkdeblur deblur`` on 1, 6 and 24 megapixel JPEGs (CPU).

    python benchmarks/memory.py                    # 1, 6 and 24 MP
    python benchmarks/memory.py --sizes 1 6 --threads 2

Each size is one fresh ``python -m darkdeblur deblur photo.jpg`` process under ``/usr/bin/time -v``,
so the peak RSS is the whole command's: interpreter, PyTorch, model, decoding, tiles, encoding.
The photos are synthetic 3:2 JPEGs with photo-like content (smooth shading, edges, sensor noise).
Weights: the bundled model when it is installed, else the ``default`` preset with random weights
(same architecture and cost; the output is meaningless but memory and time are the same).
The target: under 1.5 GiB at 24 MP, and time growing linearly with the pixel count.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from darkdeblur.checkpoint import export_weights
from darkdeblur.config import default
from darkdeblur.inference import bundled_weights_path
from darkdeblur.models import build_generator

TIME = "/usr/bin/time"
LIMIT_MIB = 1536
SIZES = {1: (1224, 816), 6: (3000, 2000), 24: (6000, 4000)}  # megapixels -> (width, height), 3:2


def synthetic_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour fields with hard edges plus noise: roughly a photo's JPEG size and content."""
    rng = np.random.default_rng(seed)
    size = (width, height)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    edges = Image.fromarray(rng.integers(0, 256, (48, 72, 3), dtype=np.uint8)).resize(size, Image.NEAREST)
    photo = Image.blend(coarse, edges, 0.3)
    noise = Image.effect_noise((width, height), 12).convert("RGB")
    return Image.blend(photo, noise, 0.1)


def measure(command: list[str]) -> tuple[float, float]:
    """Run ``command`` under /usr/bin/time -v; return (wall seconds, peak RSS MiB)."""
    result = subprocess.run([TIME, "-v", *command], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    clock = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", result.stderr).group(1)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(clock.split(":"))))
    return seconds, rss_kib / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(SIZES), choices=sorted(SIZES))
    parser.add_argument("--threads", type=int, help="passed to darkdeblur deblur --threads")
    args = parser.parse_args()
    if not Path(TIME).is_file():
        print(f"{TIME} is not installed (apt-get install -y time); skipping the memory benchmark")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        weights = bundled_weights_path()
        if weights.is_file():
            which = f"bundled model ({weights.name})"
        else:
            cfg = default()
            torch.manual_seed(0)
            weights = scratch / "default-random.safetensors"
            export_weights(build_generator(cfg.model), cfg, weights)
            which = "default preset, random weights (no bundled model installed)"
        base = [sys.executable, "-m", "darkdeblur"]
        startup, startup_rss = measure([*base, "--version"])
        print(f"weights: {which}; threads: {args.threads or torch.get_num_threads()}; "
              f"startup (import only): {startup:.1f} s, {startup_rss:.0f} MiB")
        print(f"{'MP':>5} {'size':>11} {'seconds':>8} {'s/MP*':>6} {'peak RSS MiB':>13}")
        for megapixels in args.sizes:
            width, height = SIZES[megapixels]
            photo = scratch / f"photo_{megapixels}mp.jpg"
            synthetic_photo(width, height).save(photo, quality=90)
            command = [*base, "deblur", str(photo), "-o", str(scratch / "out"), "--force",
                       "--weights", str(weights), "--device", "cpu"]
            seconds, rss = measure(command + (["--threads", str(args.threads)] if args.threads else []))
            flag = "" if rss < LIMIT_MIB else f"  over {LIMIT_MIB} MiB!"
            print(f"{width * height / 1e6:5.1f} {f'{width}x{height}':>11} {seconds:8.1f} "
                  f"{(seconds - startup) / (width * height / 1e6):6.2f} {rss:13.0f}{flag}")
        print("* seconds per megapixel after subtracting the startup time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
