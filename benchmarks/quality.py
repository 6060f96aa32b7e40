"""Table 1 side by side: every trained model and the references, on every dev set, per protocol.

    python benchmarks/quality.py                       # runs/ablations/*, plus the bundled model if present
    python benchmarks/quality.py --models mine=path/to/generator.safetensors

Methods (columns): the blurred input itself; Wiener and Richardson-Lucy given the true kernel
(synthetic sets only: an upper reference for what the kernel alone allows); every
``runs/ablations/<row>_s<seed>/generator.safetensors``; the bundled model when its file exists;
and any ``--models name=weights``. Sets (rows):

  gopro        ../shared/data/dev/gopro, protocol ``full`` (1280x720) and ``paper`` (input
               halved before the model, then 360x360; see darkdeblur.metrics)
  paper_samples ../shared/data/dev/paper_samples, protocol ``paper``
  kodak24, set14 (+ ``_noisy``)  synthetic blur of ../shared/data/dev/sharp/* made by
               ``darkdeblur make-data --seed 0`` (``--noise-var 0.001``: the paper's noisy
               column), protocol ``full``

Per-image scores are cached under ``runs/quality/<method>/`` (a model's folder name carries its
weights' sha256), so a re-run only evaluates what is new: e.g. the bundled model once it exists.
Writes ``benchmarks/results/quality_per_image.csv``, the quality section of
``benchmarks/RESULTS.md`` (between its ``quality`` markers) and ``benchmarks/comparison.png``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from darkdeblur.safe_files import sha256_of
from darkdeblur.data import find_pairs
from darkdeblur.deconvolution import richardson_lucy_deconvolve, wiener_deconvolve
from darkdeblur.image_io import list_images, read_rgb, write_rgb
from darkdeblur.inference import bundled_weights_path, load_model
from darkdeblur.make_data import make_synthetic
from darkdeblur.metrics import model_input, score
from speed import replace_section  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
NOISE_VARIANCE = 0.001  # the paper's GOPRO-noise variance
CROP = 128  # comparison picture: side of each crop
# Deconvolution settings, one per noise level, picked on training photos (``tune`` below).
# Table 1 rows that get a "not trained" column when no run's name starts with the row's name.
NOT_TRAINED = {
    "dc250p": "not trained: needs VGG-19 weights (none available offline)",
    "deblurgan": "not trained: its perceptual loss needs VGG-19 weights (none offline), and its "
                 "L1 stand-in (`train_ablations.py --rows deblurgan_l1`) did not fit this CPU budget",
}
REFERENCE_GRID = {"wiener": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
                  "richardson_lucy": [5, 10, 20, 40, 80]}


@dataclass(frozen=True)
class EvalSet:
    name: str
    folder: Path
    protocol: str  # "full" | "paper"
    noise: float = 0.0
    synthetic: bool = False  # has kernels/NAME.npy: the deconvolution references apply

    @property
    def key(self) -> str:
        return f"{self.name}[{self.protocol}]"


def eval_sets(synth: Path) -> list[EvalSet]:
    sets = [EvalSet("gopro", DATA / "dev/gopro", "full"), EvalSet("gopro", DATA / "dev/gopro", "paper"),
            EvalSet("paper_samples", DATA / "dev/paper_samples", "paper")]
    for name in ("kodak24", "set14"):
        sets.append(EvalSet(name, synth / name, "full", 0.0, True))
        sets.append(EvalSet(f"{name}_noisy", synth / f"{name}_noisy", "full", NOISE_VARIANCE, True))
    return sets


def make_synthetic_sets(synth: Path) -> None:
    """Same as ``darkdeblur make-data --sharp dev/sharp/NAME --out SYNTH/NAME --seed 0 [--noise-var 0.001]``."""
    for name in ("kodak24", "set14"):
        for suffix, noise in (("", 0.0), ("_noisy", NOISE_VARIANCE)):
            out = synth / f"{name}{suffix}"
            if not (out / "recipe.json").is_file():
                print(f"make-data: {out} (seed 0, noise variance {noise})", flush=True)
                make_synthetic(DATA / "dev/sharp" / name, out, seed=0, noise_variance=noise, progress=False)




# ------------------------------------------------------------------------------------ methods


def reference_method(kind: str, setting: float):
    def restore(blurred: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        x = blurred.astype(np.float64) / 255.0
        out = (wiener_deconvolve(x, kernel, balance=setting) if kind == "wiener"
               else richardson_lucy_deconvolve(x, kernel, iterations=int(setting)))
        return (out * 255.0 + 0.5).astype(np.uint8)
    return restore


def tune(cache: Path) -> dict[str, dict[str, float]]:
    """Per noise level, the grid value with the best mean PSNR on 4 training photos (cached).

    The photos come from ../shared/data/train (BSD100) with their own kernels (seed 1234), so
    the dev sets play no part in the choice.
    """
    path = cache / "reference_settings.json"
    if path.is_file():
        return json.loads(path.read_text())
    photos = list_images(DATA / "train/sharp/bsd100")[:4]
    chosen: dict[str, dict[str, float]] = {}
    for label, noise in (("clean", 0.0), ("noisy", NOISE_VARIANCE)):
        tmp = cache / f"tune_{label}"
        if not (tmp / "recipe.json").is_file():
            src = cache / "tune_src"
            src.mkdir(parents=True, exist_ok=True)
            for p in photos:
                (src / p.name).write_bytes(p.read_bytes())
            make_synthetic(src, tmp, seed=1234, noise_variance=noise, progress=False)
        pairs = find_pairs(tmp)
        chosen[label] = {}
        for kind, grid in REFERENCE_GRID.items():
            means = []
            for setting in grid:
                restore = reference_method(kind, setting)
                means.append(np.mean([score(restore(read_rgb(b), _kernel(tmp, b)), read_rgb(s), "full")["psnr"]
                                      for b, s in pairs]))
            chosen[label][kind] = grid[int(np.argmax(means))]
            print(f"tune {kind} ({label}): " + ", ".join(f"{g}: {m:.2f} dB" for g, m in zip(grid, means))
                  + f" -> {chosen[label][kind]}", flush=True)
    path.write_text(json.dumps(chosen, indent=2))
    return chosen


def _kernel(folder: Path, blurred_path: Path) -> np.ndarray:
    return np.load(folder / "kernels" / f"{blurred_path.stem}.npy")


@dataclass
class Method:
    name: str  # column name
    kind: str  # "input" | "wiener" | "richardson_lucy" | "model"
    cache_id: str
    weights: Path | None = None
    setting: dict | None = None  # per noise label, for references

    def applies_to(self, s: EvalSet) -> bool:
        return s.synthetic or self.kind in ("input", "model")


def discover_models(runs: Path, extra: list[str]) -> list[Method]:
    found: dict[str, Path] = {}
    for weights in sorted(runs.glob("*/generator.safetensors")):
        found[weights.parent.name] = weights
    bundled = bundled_weights_path()
    if bundled.is_file():
        found["default"] = bundled
    for item in extra:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"quality.py: --models expects name=existing_weights_file, got {item!r}")
        found[name] = Path(path)
    return [Method(name, "model", f"{name}-{sha256_of(p)[:12]}", p) for name, p in found.items()]


# --------------------------------------------------------------------------------- evaluation

FIELDS = ["set", "protocol", "noise_variance", "image", "method", "psnr", "ssim", "ssim_range2", "seconds"]


def evaluate(method: Method, s: EvalSet, cache: Path, picks: dict[str, str]) -> list[dict]:
    """Per-image rows for ``method`` on ``s``, from the cache or computed (and cached)."""
    out = cache / method.cache_id
    csv_path = out / f"{s.name}_{s.protocol}.csv"
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            return list(csv.DictReader(f))
    restore = None
    if method.kind == "model":
        model = load_model(method.weights, "cpu", tile=0)  # whole images, as speed.py times them
        restore = lambda blurred, kernel: model(blurred)  # noqa: E731
    elif method.kind in REFERENCE_GRID:
        setting = method.setting["noisy" if s.noise > 0 else "clean"][method.kind]
        restore = reference_method(method.kind, setting)
    rows = []
    began = time.perf_counter()
    for blurred_path, sharp_path in find_pairs(s.folder):
        blurred = model_input(read_rgb(blurred_path), s.protocol)
        sharp = model_input(read_rgb(sharp_path), s.protocol)
        t0 = time.perf_counter()
        restored = blurred if restore is None else restore(blurred, _kernel(s.folder, blurred_path)
                                                            if s.synthetic else None)
        seconds = time.perf_counter() - t0
        row = {"set": s.name, "protocol": s.protocol, "noise_variance": s.noise,
               "image": blurred_path.stem, "method": method.name, "ssim_range2": "",
               "seconds": round(seconds, 3)}
        row.update(score(restored, sharp, s.protocol))
        rows.append(row)
        if picks.get(s.key) == blurred_path.stem:  # keep the crop for the comparison picture
            top, left = crop_origin(sharp)
            write_rgb(out / "crops" / f"{s.key}.png", restored[top:top + CROP, left:left + CROP])
            truth = cache / "truth" / "crops"
            write_rgb(truth / f"{s.key}.png", sharp[top:top + CROP, left:left + CROP])
    print(f"{method.name:>16} on {s.key:<24} {len(rows)} images in {time.perf_counter() - began:.0f} s",
          flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return [{k: str(v) for k, v in r.items()} for r in rows]


def crop_origin(sharp: np.ndarray) -> tuple[int, int]:
    """Top-left of the CROP x CROP window with the most gradient energy (on a 16-px grid)."""
    grey = sharp.astype(np.float64).mean(axis=2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    best, origin = -1.0, (0, 0)
    for top in range(0, energy.shape[0] - CROP + 1, 16):
        for left in range(0, energy.shape[1] - CROP + 1, 16):
            e = energy[top:top + CROP, left:left + CROP].sum()
            if e > best:
                best, origin = e, (top, left)
    return origin


# ------------------------------------------------------------------------------------ reports


def _mean(rows: list[dict], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key) not in ("", None)]
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def quality_markdown(results: dict[tuple[str, str], list[dict]], methods: list[Method],
                     sets: list[EvalSet], budgets: dict[str, dict], untrained: dict[str, str]) -> str:
    names = [m.name for m in methods]
    header = "| set [protocol] | metric | n | " + " | ".join(names + list(untrained)) + " |"
    lines = [header, "|" + "---|" * (3 + len(names) + len(untrained))]
    for s in sets:
        for metric, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.4f}")):
            n = len(results.get(("input", s.key), []))
            cells = []
            for m in methods:
                rows = results.get((m.name, s.key))
                cells.append(fmt.format(_mean(rows, metric)) if rows else "n/a")
            cells += ["not trained"] * len(untrained)
            label = "PSNR dB" if metric == "psnr" else ("SSIM" if s.protocol == "full" else "SSIM (range 1)")
            lines.append(f"| {s.name} [{s.protocol}] | {label} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Budgets (every trained column; all trained on ../shared/data/train only):")
    lines.append("")
    lines.append("| column | steps | samples seen | crop | batch | wall time | hardware |")
    lines.append("|---|---|---|---|---|---|---|")
    for m in methods:
        b = budgets.get(m.name)
        if m.kind == "model" and b:
            lines.append(f"| {m.name} | {b['steps']} | {b['samples']} | {b['crop']} | {b['batch_size']} | "
                         f"{b['seconds']:.0f} s | {b['hardware']} |")
        elif m.kind == "model":
            lines.append(f"| {m.name} | see its weights record | | | | | |")
    for name, why in untrained.items():
        lines.append(f"| {name} | {why} | | | | | |")
    return "\n".join(lines)


def seed_markdown(results: dict[tuple[str, str], list[dict]], sets: list[EvalSet]) -> str:
    """dc250 minus dc0 (mean over seeds) next to the seed-to-seed spread of each row."""
    seeds = sorted({int(m.group(1)) for (name, _) in results for m in [re.match(r"dc0_s(\d+)$", name)] if m}
                   & {int(m.group(1)) for (name, _) in results for m in [re.match(r"dc250_s(\d+)$", name)] if m})
    if not seeds:
        return "(dc0 and dc250 runs with a common seed are needed for this table)"
    lines = [f"Seeds {', '.join(map(str, seeds))}. Spread = |seed {seeds[0]} - seed {seeds[-1]}| of the same row.",
             "", "| set [protocol] | dc0 PSNR | dc250 PSNR | dc250 - dc0 | dc0 spread | dc250 spread |",
             "|---|---|---|---|---|---|"]
    for s in sets:
        dc0 = [_mean(results[(f"dc0_s{k}", s.key)], "psnr") for k in seeds]
        dc250 = [_mean(results[(f"dc250_s{k}", s.key)], "psnr") for k in seeds]
        lines.append(f"| {s.key} | {np.mean(dc0):.2f} | {np.mean(dc250):.2f} | "
                     f"{np.mean(dc250) - np.mean(dc0):+.2f} | {np.ptp(dc0):.2f} | {np.ptp(dc250):.2f} |")
    return "\n".join(lines)


def comparison_picture(cache: Path, methods: list[Method], keys: list[str], out: Path) -> None:
    """Rows = sets, columns = input, each method, ground truth; the same crop in every column."""
    columns = [m for m in methods if m.kind != "model" or m.name.endswith("_s0") or "_s" not in m.name]
    label_h, gap = 14, 2
    width = (len(columns) + 1) * (CROP + gap)
    canvas = Image.new("RGB", (width, label_h + len(keys) * (CROP + label_h + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate([m.name for m in columns] + ["ground truth"]):
        short = name.replace("Richardson-Lucy", "RL").replace(" (true kernel)", " (true k)")
        draw.text((j * (CROP + gap) + 2, 1), short[:21], fill="black")
    for i, key in enumerate(keys):
        y = label_h + i * (CROP + label_h + gap)
        draw.text((2, y), key, fill="black")
        for j, folder in enumerate([m.cache_id for m in columns] + ["truth"]):
            path = cache / folder / "crops" / f"{key}.png"
            if path.is_file():
                canvas.paste(Image.open(path), (j * (CROP + gap), y + label_h))
            else:
                draw.text((j * (CROP + gap) + 40, y + label_h + CROP // 2), "n/a", fill="grey")
    canvas.save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=[], help="extra name=weights entries")
    p.add_argument("--runs", default=str(ROOT / "runs/ablations"), help="folder of trained runs")
    p.add_argument("--synth", default=str(ROOT / "runs/synth"), help="where the synthetic sets live")
    p.add_argument("--cache", default=str(ROOT / "runs/quality"))
    p.add_argument("--no-references", action="store_true", help="skip Wiener and Richardson-Lucy")
    args = p.parse_args(argv)
    cache, synth = Path(args.cache), Path(args.synth)
    make_synthetic_sets(synth)
    sets = eval_sets(synth)

    methods = [Method("input", "input", "input")]
    if not args.no_references:
        settings = tune(cache)
        tag = "-".join(f"{v['wiener']:g}-{v['richardson_lucy']:g}" for v in settings.values())
        methods += [Method("Wiener (true kernel)", "wiener", f"wiener-{tag}", setting=settings),
                    Method("Richardson-Lucy (true kernel)", "richardson_lucy", f"rl-{tag}", setting=settings)]
    methods += discover_models(Path(args.runs), args.models)
    budgets = {}
    for m in methods:
        if m.kind == "model" and (m.weights.parent / "budget.json").is_file():
            budgets[m.name] = json.loads((m.weights.parent / "budget.json").read_text())
        elif m.kind == "model" and m.weights.with_suffix(".json").is_file():
            # A shipped model: its weights record says how it was trained.
            record = json.loads(m.weights.with_suffix(".json").read_text())
            t = record["training"]
            budgets[m.name] = {"steps": t["steps"], "samples": t["samples"],
                               "crop": record["config"]["train"]["crop"],
                               "batch_size": t["batch_size"], "seconds": t["wall_time_s"],
                               "hardware": t["hardware"]}
    untrained = {row: why for row, why in NOT_TRAINED.items()
                 if not any(m.name.startswith(row) for m in methods)}

    # One picked image per set for the picture: the first pair of gopro, kodak24 and set14_noisy.
    picture_keys = ["gopro[full]", "kodak24[full]", "set14_noisy[full]"]
    picks = {s.key: find_pairs(s.folder)[0][0].stem for s in sets if s.key in picture_keys}

    results: dict[tuple[str, str], list[dict]] = {}
    for m in methods:
        for s in sets:
            if m.applies_to(s):
                results[(m.name, s.key)] = evaluate(m, s, cache, picks)

    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "quality_per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for rows in results.values():
            writer.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)
    body = quality_markdown(results, methods, sets, budgets, untrained)
    if any(m.name.startswith("dc0_s") for m in methods):
        body += "\n\n" + seed_markdown(results, sets)
    replace_section(RESULTS_MD, "quality", body)
    comparison_picture(cache, methods, picture_keys, ROOT / "benchmarks" / "comparison.png")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
