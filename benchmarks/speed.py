"""Cost of the generators side by side: parameters, MACs, and milliseconds per image.

    python benchmarks/speed.py                 # CPU; also CUDA fp32 / bf16 when a GPU is present
    python benchmarks/speed.py --repeats 5 --sizes 640x360 1280x720
    python benchmarks/speed.py --repeats 3 --write  # also update the committed tables

The paper's U-Net, the bundled default and the DeblurGAN ResNet run in the same process with
random weights (eval mode, ``torch.inference_mode``), timed in interleaved rounds (A, B, C, A,
B, C, ...) so that a slow moment of a shared machine hits every model alike; the median of the
rounds is reported, and the ratios to DeblurGAN are the numbers to trust on a noisy machine.
MACs are counted by :func:`darkdeblur.complexity.count_macs` at the size each network actually
convolves (the U-Nets pad to a multiple of 2**depth; transposed convolutions per input pixel).
A plain run only prints; ``--write`` replaces ``benchmarks/results/speed.csv`` and the speed
section of ``benchmarks/RESULTS.md``, which are committed.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from darkdeblur.complexity import count_macs
from darkdeblur.config import preset
from darkdeblur.models import build_generator, count_parameters, init_normal
from darkdeblur.models.inference_form import for_inference

ROOT = Path(__file__).resolve().parents[1]
# "PRESET:inference": the preset's generator as the engines run it (BatchNorm folded, resize-convs
# as sub-pixel convolutions; darkdeblur.models.inference_form): the same outputs, fewer MACs
GENERATORS = {"paper (U-Net, dc250)": "paper", "default (bundled recipe)": "default",
              "default, inference form (as the engines run it)": "default:inference",
              "DeblurGAN ResNet-9": "deblurgan"}
BASELINE = "DeblurGAN ResNet-9"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    name, _, form = name.partition(":")
    model = build_generator(preset(name).model)
    init_normal(model)
    model.eval()
    if form == "inference":
        model = for_inference(model)
        model.trained_parameters = sum(p.numel() for p in build(name).parameters())
    return model


def padded_size(model: torch.nn.Module, height: int, width: int) -> tuple[int, int]:
    m = model.multiple
    return -(-height // m) * m, -(-width // m) * m


def time_models(models: dict[str, torch.nn.Module], shape: tuple[int, ...], repeats: int,
                device: torch.device, dtype: torch.dtype | None) -> dict[str, float]:
    """Median milliseconds of one forward per model, in interleaved rounds after one warm-up."""
    x = torch.rand(shape, device=device)
    times: dict[str, list[float]] = {name: [] for name in models}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else torch.autocast(device.type, enabled=False))
    with torch.inference_mode(), autocast:
        for round_ in range(repeats + 1):
            for name, model in models.items():
                sync()
                began = time.perf_counter()
                model(x)
                sync()
                if round_ > 0:  # round 0 warms up allocators and kernel caches
                    times[name].append((time.perf_counter() - began) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| generator | params (M) | size | convolved size | GMACs | ms / image (median) | "
             "ms vs DeblurGAN | GMACs vs DeblurGAN | device |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['generator']} | {r['params_m']:.2f} | {r['size']} | {r['convolved']} | "
                     f"{r['gmacs']:.1f} | {r['ms']:.0f} | {r['ms_ratio']:.2f}x | {r['gmacs_ratio']:.2f}x | "
                     f"{r['device']} |")
    return "\n".join(lines)


def replace_section(path: Path, marker: str, body: str) -> None:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = path.read_text() if path.is_file() else ""
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text + ("\n" if text else "") + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"], help="WIDTHxHEIGHT")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per size (after one warm-up)")
    p.add_argument("--write", action="store_true",
                   help="replace results/speed.csv and the speed section of RESULTS.md (committed files)")
    args = p.parse_args(argv)

    models = {label: build(name) for label, name in GENERATORS.items()}
    runs = [(torch.device("cpu"), None, "CPU fp32")]
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        runs += [(torch.device("cuda"), None, f"{gpu} fp32"), (torch.device("cuda"), torch.bfloat16, f"{gpu} bf16")]
    load_before = os.getloadavg()
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        macs = {label: count_macs(m, torch.zeros(1, 3, height, width))["total"] for label, m in models.items()}
        for device, dtype, label in runs:
            on_device = {k: m.to(device) for k, m in models.items()}
            ms = time_models(on_device, (1, 3, height, width), args.repeats, device, dtype)
            for name, model in on_device.items():
                ph, pw = padded_size(model, height, width)
                params = getattr(model, "trained_parameters", None) or count_parameters(model)
                rows.append({"generator": name, "params_m": params / 1e6, "size": f"{width}x{height}",
                             "convolved": f"{pw}x{ph}", "gmacs": macs[name] / 1e9, "ms": ms[name],
                             "ms_ratio": ms[name] / ms[BASELINE], "gmacs_ratio": macs[name] / macs[BASELINE],
                             "device": label})
                print(f"{name:>26} {width}x{height} {label:>10}: {rows[-1]['params_m']:6.2f} M params, "
                      f"{rows[-1]['gmacs']:7.1f} GMACs, {ms[name]:8.0f} ms", flush=True)
    load_after = os.getloadavg()
    hardware = (f"{cpu_name()}, {os.cpu_count()} logical cores, torch {torch.__version__} with "
                f"{torch.get_num_threads()} threads; load average {load_before[0]:.1f} before, "
                f"{load_after[0]:.1f} after (other jobs shared the machine)")
    gpu_line = ("GPU rows: " + ", ".join(r[2] for r in runs[1:])) if len(runs) > 1 else \
        "No GPU was available for this run, so there are no fp32/bf16 GPU rows."
    header = (f"Command: `python benchmarks/speed.py --repeats {args.repeats} --sizes {' '.join(args.sizes)} "
              f"--write`. "
              f"Batch 1, random weights, eval mode, median of {args.repeats} interleaved rounds after one "
              f"warm-up. Machine: {hardware}. {gpu_line}")
    table = markdown(rows, header)
    print(table)
    if args.write:
        write_results(rows, table, ROOT / "benchmarks")
        print(f"wrote {ROOT / 'benchmarks' / 'results' / 'speed.csv'} and the speed section of "
              f"{ROOT / 'benchmarks' / 'RESULTS.md'}")
    return 0


def write_results(rows: list[dict], table: str, folder: Path) -> None:
    """The committed copies: ``results/speed.csv`` and the speed section of ``RESULTS.md``."""
    (folder / "results").mkdir(parents=True, exist_ok=True)
    with open(folder / "results" / "speed.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    replace_section(folder / "RESULTS.md", "speed", table)


if __name__ == "__main__":
    sys.exit(main())
