"""Package a trained generator as the bundled model, with its record.

    python scripts/package_weights.py runs/default/step_0007000.pt \
        --hardware "2 CPU cores (...)" --wall-time-s 5400

Writes src/darkdeblur/weights/default.safetensors and default.json: sha256, the config, the
training recipe and data, steps and wall time, the hardware, and the metrics the bundled model
is held to (dev GOPRO under the full protocol, the paper's samples under the paper protocol,
synthetic Kodak24 blur clean and with noise variance 0.001), plus CPU latency at 1280x720.
"""
from __future__ import annotations

import argparse
import os
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from darkdeblur.checkpoint import export_weights, load_checkpoint, load_generator
from darkdeblur.safe_files import sha256_of
from darkdeblur.data import find_pairs
from darkdeblur.evaluate import evaluate_pairs
from darkdeblur.engines import GanRestorer
from darkdeblur.make_data import make_synthetic
from darkdeblur.models import count_parameters

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WEIGHTS_DIR = ROOT / "src" / "darkdeblur" / "weights"


def synthetic_sets(cache: Path) -> dict[str, Path]:
    sets = {}
    for name, noise in (("kodak24_clean", 0.0), ("kodak24_noise0.001", 0.001)):
        out = cache / name
        if not (out / "recipe.json").is_file():
            make_synthetic(SHARED / "dev" / "sharp" / "kodak24", out, seed=0, noise_variance=noise,
                           progress=False)
        sets[name] = out
    return sets


def measure(model: GanRestorer, cache: Path) -> dict:
    plan = [("dev_gopro", SHARED / "dev" / "gopro", "full"),
            ("dev_paper_samples", SHARED / "dev" / "paper_samples", "paper")]
    plan += [(name, path, "full") for name, path in synthetic_sets(cache).items()]
    metrics = {}
    for name, folder, protocol in plan:
        summary = evaluate_pairs(model, find_pairs(folder), protocol, progress=False)
        gains = [r["psnr"] - r["psnr_input"] for r in summary["per_image"]]
        metrics[name] = {
            "protocol": protocol, "n": summary["n"],
            "psnr": round(summary["psnr"], 3), "psnr_input": round(summary["psnr_input"], 3),
            "psnr_gain": round(summary["psnr"] - summary["psnr_input"], 3),
            "worst_image_gain": round(min(gains), 3),
            "ssim": round(summary["ssim"], 4), "ssim_input": round(summary["ssim_input"], 4)}
        print(name, metrics[name], flush=True)
    return metrics


def cpu_latency(model: GanRestorer, repeats: int = 5) -> float:
    x = torch.rand(1, 3, 720, 1280)
    model.restore_tensor(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.restore_tensor(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--name", default="default")
    parser.add_argument("--hardware", required=True)
    parser.add_argument("--wall-time-s", type=float, required=True)
    parser.add_argument("--train-command", default="darkdeblur train --preset default "
                        "--data ../shared/data/train --out runs/default")
    parser.add_argument("--cache", default=str(ROOT / "runs" / "synth"))
    parser.add_argument("--dry-run", action="store_true", help="measure only; write nothing")
    args = parser.parse_args()

    state = load_checkpoint(args.checkpoint)
    generator, cfg = load_generator(args.checkpoint)
    model = GanRestorer(generator, cfg, torch.device("cpu"))
    metrics = measure(model, Path(args.cache))
    latency = cpu_latency(model)
    print(f"CPU 1280x720 median of 5: {latency:.3f} s ({torch.get_num_threads()} threads)")
    if args.dry_run:
        return
    path = WEIGHTS_DIR / f"{args.name}.safetensors"
    sha = export_weights(generator, cfg, path, extra={"step": state["step"]})
    record = {
        "file": path.name, "sha256": sha, "parameters": count_parameters(generator),
        "config": cfg.to_dict(),
        "preprocessing": "RGB in [0, 1]; any size (reflect-padded to a multiple of 2**depth)",
        "training": {"command": args.train_command, "data": "../shared/data/train (synthetic "
                     "camera-shake blur over sharp/ + the 20 real gopro_pairs)",
                     "steps": state["step"], "batch_size": cfg.train.batch_size,
                     "samples": state["step"] * cfg.train.batch_size,
                     "wall_time_s": args.wall_time_s, "hardware": args.hardware},
        "metrics": metrics,
        "cpu_latency_1280x720_s": {"median_of_5": round(latency, 3), "threads": torch.get_num_threads(),
                                   "machine": f"{os.cpu_count()}-core {platform.machine()}, "
                                              f"torch {torch.__version__}"},
    }
    (WEIGHTS_DIR / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB, sha256 {sha})")


if __name__ == "__main__":
    main()
