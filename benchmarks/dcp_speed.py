"""Cost of the classical engine (``--method dcp``) and of the hybrid engine (``--method hybrid``,
dcp then the refiner): seconds per image and per megapixel, kernel estimation, deconvolution,
the misfit map (dcp's fall-back, or the refiner's input) and refinement apart, and peak memory
at 24 megapixels.

    python benchmarks/dcp_speed.py                       # 1280x720 and 24 MP, both priors at 720p
    python benchmarks/dcp_speed.py --sizes 1280x720 --threads 2 --repeats 3
    python benchmarks/dcp_speed.py --methods dcp hybrid --priors l0   # the hybrid's bundled refiner

Each size runs in a fresh child process, so its peak resident memory (``ru_maxrss``) is that of
one photo's restoration, interpreter and PyTorch included. The photo is scikit-image's astronaut,
resized to the size and blurred with a fixed 21 px camera-shake streak, so the estimation has
real edges and a real blur to find. Prints a table; nothing is written.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from PIL import Image
from skimage import data
torch.set_num_threads(int(sys.argv[4]))
from darkdeblur.blur import blur, random_motion_kernel
from darkdeblur.engines import load_engine
from darkdeblur.pixels import to_tensor, to_uint8
width, height, prior, method = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[6]
kernel = torch.from_numpy(random_motion_kernel(np.random.default_rng(3), size=25, min_length=20,
                                               max_length=22, exposure=1.0, anxiety=0.005))
rows = []
for top in range(0, height, 1024):  # blur in bands: a 24 MP float tensor alone is 300 MB
    band = np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC))[top:top + 1024 + 24]
    rows.append(to_uint8(blur(to_tensor(band), kernel))[:1024])
photo = np.concatenate(rows)[:height]
del rows
engine = load_engine(method, device="cpu", prior=prior, weights=sys.argv[7] or None)
spent = {"estimate": 0.0, "deconvolve": 0.0, "misfit": 0.0, "refine": 0.0}
def timed(name, method):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start
    return run
dcp = engine.dcp if method == "hybrid" else engine
dcp.estimate_window = timed("estimate", dcp.estimate_window)
dcp.deconvolve_regions = timed("deconvolve", dcp.deconvolve_regions)
if method == "hybrid":
    engine.refine_array = timed("refine", engine.refine_array)
import darkdeblur.engines.dcp as dcp_module, darkdeblur.engines.hybrid as hybrid_module
dcp_module.misfit_map = hybrid_module.misfit_map = timed("misfit", dcp_module.misfit_map)
runs = []
for _ in range(int(sys.argv[5])):
    spent.update(estimate=0.0, deconvolve=0.0, misfit=0.0, refine=0.0)
    start = time.perf_counter()
    result = engine.restore(photo)
    runs.append({"total": time.perf_counter() - start, **spent, "regions": int(np.prod(result.kernel.shape[:2]))})
best = min(runs, key=lambda r: r["total"])
best["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(best))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "6000x4000"])
    parser.add_argument("--priors", nargs="+", default=["l0", "dark"],
                        help="priors to time; dark only at sizes up to 2 megapixels (it is slow)")
    parser.add_argument("--methods", nargs="+", default=["dcp"], choices=["dcp", "hybrid"])
    parser.add_argument("--weights", default="", help="hybrid refiner weights (default: the bundled ones)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs per size; the fastest is reported")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
          f"torch threads {args.threads}, load average {load:.1f} before the runs.\n")
    print("| size | method | prior | regions | estimation s | deconvolution s | misfit s | refiner s | total s | s / MP | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        width, height = map(int, size.split("x"))
        megapixels = width * height / 1e6
        for method, prior in [(m, p) for m in args.methods for p in args.priors]:
            if prior == "dark" and megapixels > 2:
                continue
            repeats = args.repeats if megapixels <= 2 else 1
            out = subprocess.run([sys.executable, "-c", CHILD, str(width), str(height), prior,
                                  str(args.threads), str(repeats), method, args.weights],
                                 capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            if out.returncode != 0:
                print(f"| {size} | {method} | {prior} | failed: {out.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {size} | {method} | {prior} | {r['regions']} | {r['estimate']:.2f} | {r['deconvolve']:.2f} | "
                  f"{r['misfit']:.2f} | {r['refine']:.2f} | "
                  f"{r['total']:.2f} | {r['total'] / megapixels:.2f} | {r['peak_mib']:.0f} |", flush=True)
    print(f"\nLoad average after: {os.getloadavg()[0]:.1f}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
