"""Package a trained generator as the bundled model, with its record.

    python scripts/package_weights.py runs/default/step_0007000.pt \
        --hardware "2 CPU cores (...)" --wall-time-s 5400
    python scripts/package_weights.py runs/hybrid/step_0004000.pt --name hybrid \
        --hardware "..." --wall-time-s 4300 --train-command "..."

A hybrid refiner (its config says so) is measured inside the hybrid engine, beside the dcp
engine alone (whose restorations are remembered in --cache/dcp: they do not depend on the
refiner), and its latency is the refiner's alone plus the whole engine's on a GOPRO frame.

Writes src/darkdeblur/weights/NAME.safetensors and NAME.json: sha256, the config, the
training recipe and data, steps and wall time, the hardware, and the metrics the bundled model
is held to (dev GOPRO under the full protocol, the paper's samples under the paper protocol,
synthetic Kodak24 blur clean and with noise variance 0.001), plus CPU latency at 1280x720.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
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
from darkdeblur.engines import DcpRestorer, DcpSettings, GanRestorer, HybridRestorer
from darkdeblur.engines.memo import MemoRestorer
from darkdeblur.image_io import read_rgb
from darkdeblur.make_data import make_synthetic
from darkdeblur.models import count_parameters

# what the hybrid refiner refines: the plain deconvolution (the dcp engine without its fall-back)
PLAIN_DCP = DcpSettings(fallback=None)

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


def measure(model, cache: Path, alone=None) -> dict:
    """Every set's scores; with ``alone`` (the dcp engine) also the gain over it, per image."""
    plan = [("dev_gopro", SHARED / "dev" / "gopro", "full"),
            ("dev_paper_samples", SHARED / "dev" / "paper_samples", "paper")]
    plan += [(name, path, "full") for name, path in synthetic_sets(cache).items()]
    metrics = {}
    for name, folder, protocol in plan:
        summary = evaluate_pairs(model, find_pairs(folder), protocol, progress=False)
        gains = [r["psnr"] - r["psnr_input"] for r in summary["per_image"]]
        extra = {}
        if alone is not None:
            base = evaluate_pairs(alone, find_pairs(folder), protocol, progress=False)
            over = [r["psnr"] - b["psnr"] for r, b in zip(summary["per_image"], base["per_image"])]
            extra = {"dcp_psnr": round(base["psnr"], 3), "psnr_gain_over_dcp": round(summary["psnr"] - base["psnr"], 3),
                     "worst_image_gain_over_dcp": round(min(over), 3), "dcp_ssim": round(base["ssim"], 4)}
        metrics[name] = {
            "protocol": protocol, "n": summary["n"],
            "psnr": round(summary["psnr"], 3), "psnr_input": round(summary["psnr_input"], 3),
            "psnr_gain": round(summary["psnr"] - summary["psnr_input"], 3),
            "worst_image_gain": round(min(gains), 3),
            "ssim": round(summary["ssim"], 4), "ssim_input": round(summary["ssim_input"], 4), **extra}
        print(name, metrics[name], flush=True)
    return metrics


def cpu_latency(model: GanRestorer, repeats: int = 5) -> float:
    x = torch.rand(1, model.cfg.model.input_channels, 720, 1280)
    model.restore_tensor(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.restore_tensor(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def preprocessing(cfg) -> str:
    """What the network's input channels are, for the record."""
    inputs = cfg.model.inputs
    if inputs == "blurred":
        return "RGB in [0, 1]"
    if inputs == "blurred+deconvolved":
        return "6 channels: the blurred photo, then the dcp engine's deconvolution of it, RGB in [0, 1]"
    misfit = ("the blurred photo (RGB), each region's misfit level (darkdeblur.blur.misfit, "
              "blended across regions)")
    if cfg.model.sees_fallback:
        return (f"8 channels: {misfit}, the share back to the photo the dcp engine's fall-back rule "
                f"{tuple(cfg.model.fallback_rule)} gives it, the dcp engine's deconvolution (RGB), all in [0, 1]")
    return f"7 channels: {misfit}, the dcp engine's deconvolution (RGB), all in [0, 1]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--name", default="default")
    parser.add_argument("--hardware", required=True)
    parser.add_argument("--wall-time-s", type=float, required=True)
    parser.add_argument("--train-command", default="darkdeblur train --preset default "
                        "--data ../shared/data/train --out runs/default")
    parser.add_argument("--data", default="../shared/data/train (synthetic camera-shake blur over "
                        "sharp/ + the 20 real gopro_pairs)", help="what it was trained on, for the record")
    parser.add_argument("--cache", default=str(ROOT / "runs" / "synth"))
    parser.add_argument("--dry-run", action="store_true", help="measure only; write nothing")
    parser.add_argument("--samples-before", type=int, default=0,
                        help="samples the run's --init-weights had seen: the record counts all of them")
    parser.add_argument("--grey-correction", action="store_true",
                        help="a hybrid refiner trained with a colour correction, shipped with it made the "
                             "same in the three channels (config model.grey_correction)")
    args = parser.parse_args()

    state = load_checkpoint(args.checkpoint)
    generator, cfg = load_generator(args.checkpoint)
    if args.grey_correction:  # a change of the forward pass only: the same tensors
        cfg = replace(cfg, model=replace(cfg.model, grey_correction=True))
        generator.cfg = cfg.model
    network = GanRestorer(generator, cfg, torch.device("cpu"))
    hybrid = cfg.model.inputs != "blurred"
    end_to_end = None
    if hybrid:
        dcp = MemoRestorer(DcpRestorer(PLAIN_DCP), Path(args.cache) / "dcp")
        metrics = measure(HybridRestorer(dcp, network), Path(args.cache), alone=dcp)
        frame = read_rgb(sorted((SHARED / "dev" / "gopro" / "blur").iterdir())[0])
        engine = HybridRestorer(DcpRestorer(PLAIN_DCP), network)  # not remembered: the whole cost
        times = []
        for _ in range(3):
            start = time.perf_counter()
            engine.restore(frame)
            times.append(time.perf_counter() - start)
        end_to_end = statistics.median(times)
        print(f"hybrid end to end, a 1280x720 GOPRO frame, median of 3: {end_to_end:.2f} s")
    else:
        metrics = measure(network, Path(args.cache))
    latency = cpu_latency(network)
    print(f"CPU 1280x720 median of 5: {latency:.3f} s ({torch.get_num_threads()} threads)")
    if args.dry_run:
        return
    path = WEIGHTS_DIR / f"{args.name}.safetensors"
    world = len(state.get("ranks", [None]))  # processes: each drew its own batch
    samples = args.samples_before + state["step"] * cfg.train.batch_size * world
    sha = export_weights(generator, cfg, path, extra={"step": state["step"], "samples": samples})
    record = {
        "file": path.name, "sha256": sha, "parameters": count_parameters(generator),
        "config": cfg.to_dict(),
        "preprocessing": preprocessing(cfg) + "; any size (reflect-padded to a multiple of 2**depth)",
        "training": {"command": args.train_command, "data": args.data,
                     "steps": state["step"], "batch_size": cfg.train.batch_size, "processes": world,
                     "samples": samples, "samples_before_this_run": args.samples_before,
                     "wall_time_s": args.wall_time_s, "hardware": args.hardware},
        "metrics": metrics,
        "cpu_latency_1280x720_s": {"median_of_5": round(latency, 3), "threads": torch.get_num_threads(),
                                   **({"end_to_end_median_of_3": round(end_to_end, 2)} if end_to_end else {}),
                                   "machine": f"{os.cpu_count()}-core {platform.machine()}, "
                                              f"torch {torch.__version__}"},
    }
    (WEIGHTS_DIR / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB, sha256 {sha})")


if __name__ == "__main__":
    main()
