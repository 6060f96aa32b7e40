"""The hybrid refiner's learning curve: gain against samples seen, on the dev sets.

    python benchmarks/hybrid_curve.py runs/hybrid [--every 500]
    python benchmarks/hybrid_curve.py runs/hybrid-m1 --every 400 --run m1 --samples-before 24336 \
        --csv benchmarks/results/hybrid_curve.csv
    python benchmarks/hybrid_curve.py src/darkdeblur/weights/hybrid.safetensors

For each checkpoint of a hybrid training run (or one weights file) and each dev set it runs the
hybrid engine -- dcp estimation and deconvolution, then the refiner -- and prints the mean PSNR
gain over the blurred input and over the dcp engine alone, the worst single image against each,
and SSIM. The dcp engine's output does not depend on the refiner, so it is computed once per
image and kept in ``--dcp-cache`` (keyed by the pixels' hash and the engine's settings): a
checkpoint then costs only the refiner's time.

Sets (name=folder:protocol): Kodak24 synthetic from ``make-data --seed 0`` clean and with noise
variance 0.001 (``full``), the 7 dev GOPRO pairs (``full``), the 3 paper samples (``paper``).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from darkdeblur.checkpoint import list_checkpoints, load_checkpoint
from darkdeblur.data import find_pairs
from darkdeblur.engines import DcpRestorer, DcpSettings, HybridRestorer
from darkdeblur.engines.gan import GanRestorer
from darkdeblur.engines.memo import MemoRestorer
from darkdeblur.evaluate import evaluate_pairs

# what the hybrid refiner refines: the plain deconvolution (the dcp engine without its fall-back)
PLAIN_DCP = DcpSettings(fallback=None)

SETS = ("kodak24=runs/synth/kodak24:full", "kodak24_noisy=runs/synth/kodak24_noisy:full",
        "gopro=../shared/data/dev/gopro:full", "paper_samples=../shared/data/dev/paper_samples:paper")


def samples_seen(path: Path) -> tuple[int, int]:
    """(step, samples) of a checkpoint, or of exported weights (their metadata)."""
    if path.suffix == ".pt":
        state = load_checkpoint(path)
        batch = state["config"]["train"]["batch_size"] * len(state["ranks"])
        return state["step"], state["step"] * batch
    from darkdeblur.checkpoint import read_weights_metadata
    meta = read_weights_metadata(path)
    return int(json.loads(meta.get("step", "0"))), int(json.loads(meta.get("samples", "0")))


CURVE_METRICS = ("gain_input", "gain_dcp", "worst_input", "worst_dcp")


def append_curve(path: Path, run: str, rows: list[dict], set_names: list[str]) -> None:
    """One row per checkpoint: run, step, samples seen, and each set's four gains (dB)."""
    columns = ["run", "step", "samples_seen"] + [f"{name}_{metric}" for name in set_names for metric in CURVE_METRICS]
    if path.is_file():
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if header != columns:
            raise SystemExit(f"{path}: its columns are {header}; these rows have {columns}")
    by_step: dict[int, dict] = {}
    for row in rows:
        line = by_step.setdefault(row["step"], {"run": run, "step": row["step"], "samples_seen": row["samples"]})
        line.update({f"{row['set']}_{metric}": f"{row[metric]:.2f}" for metric in CURVE_METRICS})
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(by_step.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a hybrid run directory (its checkpoints) or a weights file")
    parser.add_argument("--every", type=int, default=500, help="checkpoints whose step is a multiple of this")
    parser.add_argument("--sets", nargs="+", default=list(SETS), metavar="NAME=FOLDER:PROTOCOL")
    parser.add_argument("--dcp-cache", default="runs/dcp-cache")
    parser.add_argument("--csv", help="append one row per checkpoint here (with --run): the committed curve")
    parser.add_argument("--run", help="the run's name in the --csv rows")
    parser.add_argument("--samples-before", type=int, default=0,
                        help="samples the run's starting weights had seen (a run from --init-weights)")
    parser.add_argument("--per-image", help="write per-image rows of the last checkpoint here")
    args = parser.parse_args()
    if args.csv and not args.run:
        parser.error("--csv needs --run NAME")
    torch.set_num_threads(1)
    source = Path(args.weights)
    paths = ([p for p in list_checkpoints(source) if int(p.stem.split("_")[1]) % args.every == 0]
             if source.is_dir() else [source])
    if not paths:
        print(f"{source}: no checkpoints at multiples of {args.every}", file=sys.stderr)
        return 1
    dcp = MemoRestorer(DcpRestorer(PLAIN_DCP), args.dcp_cache)
    sets = []
    for spec in args.sets:
        name, rest = spec.split("=", 1)
        folder, protocol = rest.rsplit(":", 1)
        if not Path(folder).is_dir():
            print(f"skipping {name}: {folder} not found", file=sys.stderr)
            continue
        sets.append((name, find_pairs(folder, "paired"), protocol))
    rows, per_image = [], []
    print("| step | samples seen | set | protocol | PSNR hybrid | vs input | vs dcp | worst vs input | "
          "worst vs dcp | SSIM hybrid | SSIM input |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        step, samples = samples_seen(path)
        samples += args.samples_before
        refiner = GanRestorer.load(path, torch.device("cpu"), refiner=True)
        engine = HybridRestorer(dcp, refiner)
        for name, pairs, protocol in sets:
            ours = evaluate_pairs(engine, pairs, protocol, progress=False)
            alone = evaluate_pairs(dcp, pairs, protocol, progress=False)  # cached: free
            vs_input = [r["psnr"] - r["psnr_input"] for r in ours["per_image"]]
            vs_dcp = [r["psnr"] - d["psnr"] for r, d in zip(ours["per_image"], alone["per_image"])]
            row = {"step": step, "samples": samples, "set": name, "protocol": protocol,
                   "psnr": ours["psnr"], "gain_input": float(np.mean(vs_input)), "gain_dcp": float(np.mean(vs_dcp)),
                   "worst_input": min(vs_input), "worst_dcp": min(vs_dcp), "ssim": ours["ssim"],
                   "ssim_input": ours["ssim_input"], "dcp_gain_input": alone["psnr"] - alone["psnr_input"]}
            rows.append(row)
            print(f"| {step} | {samples} | {name} | {protocol} | {row['psnr']:.2f} | {row['gain_input']:+.2f} | "
                  f"{row['gain_dcp']:+.2f} | {row['worst_input']:+.2f} | {row['worst_dcp']:+.2f} | "
                  f"{row['ssim']:.4f} | {row['ssim_input']:.4f} |", flush=True)
            if path == paths[-1]:
                per_image += [{"set": name, "image": r["image"], "input": r["psnr_input"], "dcp": d["psnr"],
                               "hybrid": r["psnr"]} for r, d in zip(ours["per_image"], alone["per_image"])]
    if args.csv:
        append_curve(Path(args.csv), args.run, rows, [name for name, _, _ in sets])
    if args.per_image:
        with open(args.per_image, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(per_image[0]))
            writer.writeheader()
            writer.writerows(per_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
