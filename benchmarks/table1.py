"""Table 1 in one command: train the ablation rows on one time budget, score them, time the model.

    python benchmarks/table1.py pack                  # here: ../shared/data -> runs/table1-pack
    python benchmarks/table1.py run --out "$OUT"      # on a GPU machine that has only this tree

``pack`` writes the training and dev images the run needs into ``runs/table1-pack`` (git-ignored,
lossless WebP, GOPRO training pairs already halved as training halves them, sharp photos until
``--max-mib``), so that the working tree plus the pack travel to a machine without ../shared.
``run`` trains every row (dc0, dc250, dc250p with ``--vgg-weights``, DeblurGAN) for ``--seconds``
each per seed, scores every row in both test-time modes under each protocol beside the
true-kernel Wiener and Richardson-Lucy references, measures training samples/s against the
model-only ceiling and the paper generator's 1280x720 inference (bf16, eager and compiled)
against its 134 GMAC floor, and writes ``table1.md``, ``per_image.csv`` and ``budgets.json`` to
``--out`` (default ``$OUT``). Steps that would not finish before ``--deadline`` are skipped and
say so. ``--restorer NAME=module:function`` adds a method: ``function(device)`` returns
``restore(blurred_uint8, kernel_or_None) -> restored`` (uint8, or float in [0, 1]).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from darkdeblur.config import RunConfig, preset, tiny, with_steps
from darkdeblur.data import find_pairs
from darkdeblur.deconvolution import richardson_lucy_deconvolve, wiener_deconvolve
from darkdeblur.image_io import list_images, read_rgb
from darkdeblur.make_data import make_synthetic
from darkdeblur.models import set_test_mode
from darkdeblur.models.test_mode import TEST_MODES
from darkdeblur.metrics import model_input, reference, score
from darkdeblur.pixels import halve_large, quantize, to_tensor
from darkdeblur.devices import resolve_device
from darkdeblur.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_ablations import deblurgan_l1  # noqa: E402  (the DeblurGAN stand-in without VGG-19)

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "runs" / "table1-pack"
PAPER_FLOOR_GMACS = 134.0  # the reference generator at 1280x720 (per-layer padding)
# Noise variance of the noisy synthetic set, and the reference settings tuned for each level
# (benchmarks/RESULTS.md): Wiener balance, Richardson-Lucy iterations.
NOISE = 0.001
REFERENCE_SETTINGS = {"clean": (1e-4, 80), "noisy": (0.1, 5)}
# What the pack holds, relative to the shared data folder.
TRAIN_PAIRS = "train/gopro_pairs"
TRAIN_SHARP = "train/sharp"
DEV_PAIRS = {"gopro": "dev/gopro", "paper_samples": "dev/paper_samples"}
DEV_SHARP = {"kodak24": "dev/sharp/kodak24"}


# --------------------------------------------------------------------------------------- pack

def _write_webp(rgb: np.ndarray, path: Path) -> int:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, "WEBP", lossless=True, method=4)
    return path.stat().st_size


def pack(shared: Path, out: Path, max_mib: float) -> dict:
    """Copy what ``run`` needs from ``shared`` into ``out``; every dev image and training pair,
    then sharp training photos (one from each folder in turn) while the total fits ``max_mib``."""
    if out.exists():
        shutil.rmtree(out)
    written, manifest = 0, {"source": str(shared), "sets": {}}
    for name, sub in {**{f"dev/{k}": v for k, v in DEV_PAIRS.items()}, "train/gopro_pairs": TRAIN_PAIRS}.items():
        pairs = find_pairs(shared / sub, "paired")
        for blurred, sharp in pairs:
            for kind, path in (("blur", blurred), ("sharp", sharp)):
                rgb = read_rgb(path)
                # training halves GOPRO-sized frames itself (pixels.halve_large): do it once here
                rgb = halve_large(rgb) if name.startswith("train") else rgb
                written += _write_webp(rgb, out / name / kind / f"{path.stem}.webp")
        manifest["sets"][name] = len(pairs)
    for name, sub in DEV_SHARP.items():
        photos = list_images(shared / sub)
        for path in photos:
            written += _write_webp(read_rgb(path), out / "dev/sharp" / name / f"{path.stem}.webp")
        manifest["sets"][f"dev/sharp/{name}"] = len(photos)
    folders = sorted(p for p in (shared / TRAIN_SHARP).iterdir() if p.is_dir())
    queues = [list_images(f) for f in folders]
    taken = {f.name: 0 for f in folders}
    budget = max_mib * 2**20
    while any(queues) and written < budget:
        for folder, queue in zip(folders, queues):
            if queue and written < budget:
                path = queue.pop(0)
                written += _write_webp(read_rgb(path), out / "train/sharp" / folder.name / f"{path.stem}.webp")
                taken[folder.name] += 1
    manifest["sets"].update({f"train/sharp/{k}": v for k, v in taken.items()})
    manifest["bytes"] = written
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


# ----------------------------------------------------------------------------------------- rows

def row_configs(vgg: bool, model: str) -> tuple[dict[str, RunConfig], dict[str, str]]:
    """Trainable rows and, for rows that cannot be trained here, the reason."""
    rows = {"dc0": preset("dc0"), "dc250": preset("dc250")}
    missing = {}
    if vgg:
        rows["dc250p"], rows["deblurgan"] = preset("dc250p"), preset("deblurgan")
    else:
        missing["dc250p"] = "not trained: its perceptual loss needs --vgg-weights (torchvision vgg19)"
        missing["deblurgan"] = ("not trained: its perceptual loss needs --vgg-weights; the row "
                                "deblurgan_l1 (its generator and critic, L1 in place of VGG-19) stands in")
        rows["deblurgan_l1"] = deblurgan_l1()
    if model == "tiny":  # the CPU dry run: every row's losses on the tiny networks, few kernels
        small = tiny()
        rows = {k: replace(c, model=small.model, discriminator=small.discriminator,
                           train=replace(c.train, kernel_bank_size=16)) for k, c in rows.items()}
    return rows, missing


def budgeted(cfg: RunConfig, seed: int, args) -> RunConfig:
    cfg = with_steps(cfg, args.max_steps)  # the time budget ends it first; the schedule is stated
    overrides = dict(seed=seed, checkpoint_every=args.max_steps, log_every=10**9, image_every=0,
                     channels_last=args.channels_last)
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.crop:
        overrides["crop"] = args.crop
    return replace(cfg, train=replace(cfg.train, **overrides))


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    return f"CPU {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, " \
           f"torch {torch.__version__}"


# ----------------------------------------------------------------------------------- throughput

def ceiling_samples_per_s(cfg: RunConfig, device: torch.device, steps: int, vgg: str | None) -> float:
    """Samples/s of ``train_step`` on a fixed random batch already on the device: the model-only
    ceiling that the real data path is compared with."""
    from train_throughput import _time_steps

    from darkdeblur.train_step import Optimizers, train_step
    from darkdeblur.train_setup import build_models
    torch.manual_seed(0)
    models = build_models(cfg, device, vgg)
    tc = cfg.train
    adam = dict(lr=tc.lr, betas=(tc.beta1, tc.beta2))
    optimizers = Optimizers(torch.optim.Adam(models.generator.parameters(), **adam),
                            torch.optim.Adam(models.discriminator.parameters(), **adam)
                            if models.discriminator else None)
    models.generator.train()
    shape = (tc.batch_size, 3, tc.crop, tc.crop)
    blurred, sharp = torch.rand(shape, device=device), torch.rand(shape, device=device)
    seconds = _time_steps(lambda i: train_step(models, optimizers, blurred, sharp, cfg, i),
                          warmup=2, steps=steps, device=device)
    return tc.batch_size / seconds


def inference_speed(device: torch.device, name: str, width: int, height: int) -> dict:
    """Generator ``name`` (a preset) at width x height, batch 1, random weights, eval mode: median
    ms eager and, on CUDA, torch.compile'd, both under bf16 autocast and channels-last there.

    The floor is the reference generator's 134 GMACs at 1280x720 (scaled by pixel count for
    other sizes); this U-Net pads its input to a multiple of 256, so it convolves more.
    """
    from speed import build, padded_size, time_models

    from darkdeblur.complexity import count_macs
    model = build(name).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    padded = padded_size(model, height, width)
    macs = count_macs(model, torch.zeros(1, 3, *padded))["total"]
    floor = PAPER_FLOOR_GMACS * width * height / (1280 * 720)
    dtype = torch.bfloat16 if cuda else None
    result = {"generator": name, "size": f"{width}x{height}", "convolved": f"{padded[1]}x{padded[0]}",
              "gmacs": macs / 1e9, "floor_gmacs": floor, "dtype": "bf16" if cuda else "fp32",
              "device": hardware(device)}
    models = {"eager": model}
    if cuda:
        began = time.perf_counter()
        compiled = torch.compile(model)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            compiled(torch.rand(1, 3, height, width, device=device))
        result["compile_seconds"] = time.perf_counter() - began
        models["compiled"] = compiled
    for label, ms in time_models(models, (1, 3, height, width), 5, device, dtype).items():
        result[f"ms_{label}"] = ms
        result[f"tmacs_per_s_{label}"] = macs / ms / 1e9
        # the time the floor's MACs would take at the rate reached
        result[f"floor_ms_{label}"] = floor / (macs / 1e9) * ms
    return result


# ----------------------------------------------------------------------------------------- eval

def gan_restorer(generator: torch.nn.Module, device: torch.device):
    """uint8 (H, W, 3) -> float32 (H, W, 3) in [0, 1], whole image, fp32."""
    @torch.inference_mode()
    def restore(rgb: np.ndarray, kernel=None) -> np.ndarray:
        restored = generator(to_tensor(rgb).to(device)).float().clamp(0, 1)
        return restored[0].permute(1, 2, 0).cpu().numpy()
    return restore


def reference_restorer(method: str, noise: str):
    balance, iterations = REFERENCE_SETTINGS[noise]

    def restore(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        image = rgb.astype(np.float64) / 255.0
        if method == "wiener":
            return wiener_deconvolve(image, kernel, balance)
        return richardson_lucy_deconvolve(image, kernel, iterations)
    return restore


def score_method(restore, sets: dict[str, Path], protocols: list[str], label: dict,
                 inputs: dict | None = None) -> list[dict]:
    """Per-image rows for ``restore(blurred, kernel)`` on every set and protocol.

    The kernel is given where it fits the method's input: not under ``paper``, which resizes
    the frame first (``paper-after`` halves only GOPRO-sized frames, and the synthetic sets are
    smaller); a kernel-needing method skips the rest. ``inputs`` caches the blurred input's own
    scores between methods.
    """
    inputs = {} if inputs is None else inputs
    rows = []
    for set_name, folder in sets.items():
        for protocol in protocols:
            for blurred_path, sharp_path in find_pairs(folder, "paired"):
                kernel_path = folder / "kernels" / f"{blurred_path.stem}.npy"
                kernel = np.load(kernel_path) if kernel_path.is_file() and protocol != "paper" else None
                if label.get("needs_kernel") and kernel is None:
                    continue
                blurred = model_input(read_rgb(blurred_path), protocol)
                sharp = reference(read_rgb(sharp_path), protocol)
                restored = restore(blurred, kernel)
                if protocol != "paper" and restored.dtype != np.uint8:
                    restored = quantize(restored, np.uint8)
                key = (str(blurred_path), protocol)
                if key not in inputs:
                    inputs[key] = {f"{k}_input": v for k, v in score(blurred, sharp, protocol).items()}
                rows.append({**{k: v for k, v in label.items() if k != "needs_kernel"},
                             "set": set_name, "protocol": protocol, "image": blurred_path.name,
                             **score(restored, sharp, protocol), **inputs[key]})
    return rows


def _reference_job(job):
    method, noise, sets, protocols = job
    return score_method(reference_restorer(method, noise), sets, protocols,
                        {"method": f"{method} (true kernel)", "seed": "", "test_mode": "",
                         "needs_kernel": True})


# ---------------------------------------------------------------------------------------- table

def _fmt(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    spread = f" ({max(values) - min(values):.{digits}f})" if len(values) > 1 else ""
    return f"{mean:.{digits}f}{spread}"


def table(rows: list[dict], missing: dict[str, str], budgets: list[dict], header: str) -> str:
    """Markdown: one line per method x test mode x set x protocol, seeds averaged (spread)."""
    lines = [header, "",
             "| method | test mode | seeds | set | protocol | n | PSNR dB (spread) | SSIM (spread) | input PSNR |",
             "|---|---|---|---|---|---|---|---|---|"]
    keys = []
    for r in rows:
        key = (r["method"], r["test_mode"], r["set"], r["protocol"])
        if key not in keys:
            keys.append(key)
    for method, mode, set_name, protocol in keys:
        group = [r for r in rows if (r["method"], r["test_mode"], r["set"], r["protocol"])
                 == (method, mode, set_name, protocol)]
        seeds = sorted({str(r["seed"]) for r in group})
        per_seed = {s: [r for r in group if str(r["seed"]) == s] for s in seeds}
        psnr = [statistics.fmean(r["psnr"] for r in g) for g in per_seed.values()]
        ssim = [statistics.fmean(r["ssim"] for r in g) for g in per_seed.values()]
        inputs = statistics.fmean(r["psnr_input"] for r in group)
        lines.append(f"| {method} | {mode or '-'} | {','.join(seeds) or '-'} | {set_name} | {protocol} | "
                     f"{len(group) // len(seeds)} | {_fmt(psnr, 2)} | {_fmt(ssim, 4)} | {inputs:.2f} |")
    for method, reason in missing.items():
        lines.append(f"| {method} | | | | | | {reason} | | |")
    lines += ["", "Budgets (every trained column):", "",
              "| row | seed | budget s | steps | samples | train s | samples/s | ceiling samples/s | of ceiling | batch | crop | hardware |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in budgets:
        if "skipped" in b:
            lines.append(f"| {b['row']} | {b['seed']} | {b['skipped']} | | | | | | | | | |")
            continue
        share = f"{b['samples_per_s'] / b['ceiling_samples_per_s']:.0%}" if b.get("ceiling_samples_per_s") else "n/a"
        lines.append(f"| {b['row']} | {b['seed']} | {b['budget_seconds']:g} | {b['steps']} | {b['samples']} | "
                     f"{b['train_seconds']:.1f} | {b['samples_per_s']:.1f} | "
                     f"{b.get('ceiling_samples_per_s', float('nan')):.1f} | {share} | {b['batch_size']} | "
                     f"{b['crop']} | {b['hardware']} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ run

def _load_restorer(spec: str, device: torch.device):
    name, _, target = spec.partition("=")
    module, _, function = target.partition(":")
    if not (name and module and function):
        raise SystemExit(f"table1: --restorer {spec!r}: expected NAME=module:function")
    return name, getattr(importlib.import_module(module), function)(device)


def run(args, extra_restorers: dict | None = None) -> int:
    began = time.perf_counter()
    left = lambda: args.deadline - (time.perf_counter() - began)  # noqa: E731
    out = Path(args.out or os.environ.get("OUT") or ROOT / "runs" / "table1-out")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    data = Path(args.data)
    if not (data / "manifest.json").is_file():
        raise SystemExit(f"table1: {data}: no pack here; run `python benchmarks/table1.py pack` first")
    device = resolve_device(args.device)

    # dev sets: real pairs from the pack, synthetic pairs (with true kernels) made from its photos
    sets = {name: data / "dev" / name for name in DEV_PAIRS}
    synthetic = {}
    for name in DEV_SHARP:
        for suffix, noise in (("", 0.0), ("_noisy", NOISE)):
            target = work / f"{name}{suffix}"
            if not (target / "recipe.json").is_file():
                make_synthetic(data / "dev/sharp" / name, target, seed=0, noise_variance=noise, progress=False)
            synthetic[f"{name}{suffix}"] = target
    sets.update(synthetic)
    protocols = args.protocols

    # true-kernel references on the CPU while the GPU trains (fork before CUDA starts)
    pool = ProcessPoolExecutor(max_workers=args.workers) if args.workers > 0 else None
    jobs = [(method, "noisy" if name.endswith("_noisy") else "clean", {name: folder}, protocols)
            for method in ("wiener", "richardson-lucy") for name, folder in synthetic.items()]
    futures = [pool.submit(_reference_job, job) for job in jobs] if pool else []

    rows_cfg, missing = row_configs(bool(args.vgg_weights), args.model)
    per_image: list[dict] = []
    budgets: list[dict] = []
    speed = None
    if device.type == "cuda" and "dc250" in rows_cfg:  # does channels-last help? measured, not assumed
        base = budgeted(rows_cfg["dc250"], 0, args)
        nchw = ceiling_samples_per_s(replace(base, train=replace(base.train, channels_last=False)), device, 8, None)
        nhwc = ceiling_samples_per_s(replace(base, train=replace(base.train, channels_last=True)), device, 8, None)
        args.channels_last = nhwc > nchw
        speed = {"ceiling_nchw": nchw, "ceiling_channels_last": nhwc}
    eval_seconds = 0.0
    inputs: dict = {}  # the blurred inputs' own scores, shared by every method
    for seed in args.seeds:
        for row, cfg in rows_cfg.items():
            cfg = budgeted(cfg, seed, args)
            need = args.seconds + eval_seconds + args.reserve
            if left() < need:
                budgets.append({"row": row, "seed": seed, "skipped": f"skipped: {left():.0f} s left, needs ~{need:.0f}"})
                continue
            ceiling = ceiling_samples_per_s(cfg, device, args.ceiling_steps, args.vgg_weights)
            run_dir = work / "runs" / f"{row}_s{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            summary = train(cfg, [data / "train"], run_dir, device=str(device), vgg_weights=args.vgg_weights,
                            progress=False, max_seconds=args.seconds)
            steps = summary["steps"]
            budgets.append({"row": row, "seed": seed, "budget_seconds": args.seconds, "steps": steps,
                            "samples": steps * cfg.train.batch_size, "train_seconds": summary["seconds"],
                            "samples_per_s": steps * cfg.train.batch_size / summary["seconds"],
                            "ceiling_samples_per_s": ceiling, "batch_size": cfg.train.batch_size,
                            "crop": cfg.train.crop, "channels_last": cfg.train.channels_last and device.type == "cuda",
                            "bf16": cfg.train.bf16 and device.type == "cuda", "hardware": hardware(device),
                            "kernel_recipe": cfg.train.kernel_recipe})
            started = time.perf_counter()
            from darkdeblur.checkpoint import load_generator
            generator, _ = load_generator(run_dir / "generator.safetensors", device)
            for mode in TEST_MODES:
                set_test_mode(generator, mode)
                torch.manual_seed(seed)  # dropout is random in batch mode
                per_image += score_method(gan_restorer(generator, device), sets, protocols,
                                          {"method": row, "seed": seed, "test_mode": mode}, inputs)
            eval_seconds = time.perf_counter() - started
    for name, restore in {**(extra_restorers or {}),
                          **dict(_load_restorer(s, device) for s in args.restorer)}.items():
        per_image += score_method(restore, sets, protocols, {"method": name, "seed": "", "test_mode": ""},
                                  inputs)
    if args.inference and left() > args.reserve / 2:
        width, height = (int(v) for v in args.inference_size.split("x"))
        speed = {**(speed or {}), **inference_speed(device, "tiny" if args.model == "tiny" else "paper",
                                                    width, height)}
    for future in futures:
        per_image += future.result()
    if pool:
        pool.shutdown()

    header = (f"Table 1 on {hardware(device)}: every trained row got {args.seconds:g} s of training per "
              f"seed (time budget; steps and samples below), data {data.name} "
              f"({json.loads((data / 'manifest.json').read_text())['sets']}); protocols {', '.join(protocols)}; "
              f"test modes {', '.join(TEST_MODES)} (batch = the reference code's). Wall {time.perf_counter() - began:.0f} s.")
    (out / "table1.md").write_text(table(per_image, missing, budgets, header))
    (out / "budgets.json").write_text(json.dumps({"rows": budgets, "missing": missing, "speed": speed}, indent=2))
    fields = sorted({k for r in per_image for k in r}, key=lambda k: (k not in ("method", "seed", "test_mode", "set", "protocol", "image"), k))
    with open(out / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(per_image)
    print((out / "table1.md").read_text())
    if speed:
        print(json.dumps(speed, indent=2))
    return 0


def main(argv: list[str] | None = None, extra_restorers: dict | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write the data the run needs into an ignored folder")
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(PACK))
    p.add_argument("--max-mib", type=float, default=50.0, help="stop adding training photos here")
    p = sub.add_parser("run", help="train, score and time (results to --out or $OUT)")
    p.add_argument("--data", default=str(PACK))
    p.add_argument("--out", help="results folder (default: $OUT, else runs/table1-out)")
    p.add_argument("--work", default=str(ROOT / "runs" / "table1-work"), help="runs and synthetic sets")
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="preset", choices=["preset", "tiny"],
                   help="tiny: every row on the tiny networks (CPU dry run)")
    p.add_argument("--seconds", type=float, default=40.0, help="training budget per row and seed")
    p.add_argument("--max-steps", type=int, default=10**6, help="step cap (the schedule stated to the trainer)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--batch-size", type=int, help="default: each preset's (paper rows: 1)")
    p.add_argument("--crop", type=int, help="default: each preset's (256)")
    p.add_argument("--protocols", nargs="+", default=["full", "paper"])
    p.add_argument("--vgg-weights", default=os.environ.get("DARKDEBLUR_VGG19_WEIGHTS"))
    p.add_argument("--restorer", action="append", default=[], metavar="NAME=module:function")
    p.add_argument("--ceiling-steps", type=int, default=10)
    p.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 4)),
                   help="CPU processes for the true-kernel references (0: skip them)")
    p.add_argument("--deadline", type=float, default=510.0, help="seconds for the whole run")
    p.add_argument("--reserve", type=float, default=90.0, help="seconds kept for inference timing and writing")
    p.add_argument("--no-inference", dest="inference", action="store_false")
    p.add_argument("--inference-size", default="1280x720", help="WxH for the inference timing")
    p.set_defaults(channels_last=False)
    args = parser.parse_args(argv)
    if args.command == "pack":
        manifest = pack(Path(args.shared), Path(args.out), args.max_mib)
        print(f"table1 pack: {manifest['bytes'] / 2**20:.1f} MiB in {args.out}: {manifest['sets']}")
        return 0
    return run(args, extra_restorers)


if __name__ == "__main__":
    sys.exit(main())
