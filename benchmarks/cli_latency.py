"""Where the time of ``darkdeblur photo.jpg`` goes on a CPU: start-up, model load, tiling, I/O.

    OMP_NUM_THREADS=2 python benchmarks/cli_latency.py              # 1280x720, 2 threads
    OMP_NUM_THREADS=1 python benchmarks/cli_latency.py --threads 1

One process: imports, the bundled model's load, then one 1280x720 JPEG (synthetic, photo-like)
restored as the CLI does it (read, restore, write) at each ``--tiles`` setting (``auto``: the
device's, as ``darkdeblur photo.jpg`` runs; 0: never tile; N: tiles of N pixels),
median of ``--repeats`` after a warm-up. Prints one line per stage with the thread count, the
load average and the peak resident memory, so a figure always comes with its conditions.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
import numpy as np  # noqa: E402  (imports are part of what is timed)
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from darkdeblur.deblur_files import Job, deblur_files  # noqa: E402
from darkdeblur.inference import load_model  # noqa: E402

IMPORTED = time.perf_counter()


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour fields plus sensor noise: a JPEG of roughly a photo's size and content."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize((width, height),
                                                                                      Image.BICUBIC)
    noisy = np.asarray(coarse, np.float32) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiles", nargs="+", default=["auto", "768"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))
    print(f"threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
          f"torch {torch.__version__}, {os.cpu_count()} logical cores, load average "
          f"{os.getloadavg()[0]:.1f}, {width}x{height} JPEG")
    print(f"imports (torch, darkdeblur): {IMPORTED - START:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "photo.jpg"
        photo(width, height).save(source, quality=92)
        for tile in args.tiles:
            begin = time.perf_counter()
            engine = load_model(device="cpu", tile=None if tile == "auto" else int(tile))
            loaded = time.perf_counter() - begin
            seconds = []
            for repeat in range(args.repeats + 1):  # the first is a warm-up
                begin = time.perf_counter()
                summary = deblur_files(engine, [Job(source, Path(tmp) / f"out{repeat}.jpg")], force=True,
                                       progress=False)
                assert summary.done == 1
                seconds.append(time.perf_counter() - begin)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"tile {tile} ({'whole' if not engine.tile or engine.whole_pixels >= width * height else 'tiled'}): model load {loaded:.2f} s, first image "
                  f"{seconds[0]:.2f} s, then median {statistics.median(seconds[1:]):.2f} s per image "
                  f"(read, restore, write); peak RSS so far {peak:.0f} MiB; load average "
                  f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
