"""Training crops with the kernels the ``dcp`` engine estimates on them, cached.

A refiner of the classical engine must learn from the engine's own mistakes: deconvolutions made
with perturbed true kernels are far cleaner than what blind estimation gives, and a refiner
trained on them learns a cautious correction that hurts where the engine did well. So every
training crop is blurred (a synthetic camera-shake kernel over a sharp photo, or a real GOPRO
pair), the engine estimates its kernel exactly as it does at inference
(:meth:`darkdeblur.engines.dcp.DcpRestorer.estimate_window`), and the crop's recipe plus that
estimate are stored. Training then rebuilds each blurred crop from its recipe and deconvolves it
with the cached kernel in the batch pipeline; a crop whose estimate was refused keeps its
blurred pixels, as at inference, so the refiner also learns when to fall back.

Estimation takes about a second per crop on one CPU thread, so the cache is written in chunks of
``CHUNK`` crops (``chunk_00012.npz``) by ``workers`` processes; a chunk that exists is not
redone, so an interrupted run simply continues. ``recipe.json`` records every parameter.
"""
from __future__ import annotations

import json
import multiprocessing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..blur import add_gaussian_noise, blur, random_motion_kernel
from ..blur.nonblind import noise_adaptive_weight
from ..engines import load_engine
from ..engines.dcp import noise_sigma
from ..image_io import read_rgb
from ..pixels import to_tensor, to_uint8
from ..safe_files import atomic_write
from .folders import DataSources

CHUNK = 64


@dataclass(frozen=True)
class CropRecipe:
    """How the training crops are drawn (one set of these per cache)."""

    count: int = 4000
    crop: int = 256
    seed: int = 0
    pair_fraction: float = 0.25     # share of crops from real blurred/sharp pairs
    kernel_canvas: int = 61         # synthetic kernels: canvas side in pixels
    min_length: float = 8.0         # synthetic kernels: path length range; 60 px paths reach
    max_length: float = 60.0        # about 35 px across, what camera shake at 1280 px gives
    anxiety: float = 0.005
    max_noise_variance: float = 0.002
    # 0: the crop is a random window. > 0: a random region of this side is blurred and the crop
    # is its most textured window, the one the engine estimates a region's kernel on
    # (DcpSettings.region / crop): random windows are often flat, their estimates poor, and a
    # refiner trained on them learns to distrust the good deconvolutions whole photos get.
    region: int = 0


def _crop_rng(recipe: CropRecipe, index: int) -> np.random.Generator:
    return np.random.default_rng([recipe.seed, index])  # each crop its own stream: order-free


def draw_crop(recipe: CropRecipe, sources: DataSources, images: dict, index: int) -> dict:
    """Crop ``index``: where it comes from and, for synthetic crops, its true kernel and noise.

    Returns {"blurred": float32 (3, crop, crop) in [0, 1], "sharp": same, "source": str,
    "top", "left", "kernel": (k, k) or None, "noise_variance": float, "around": the blurred
    region the crop was cut from (the crop itself unless ``recipe.region``), "at": the crop's
    (row, column) in it}.
    """
    rng = _crop_rng(recipe, index)
    from_pair = bool(sources.pairs) and (not sources.sharp or rng.random() < recipe.pair_fraction)
    size = recipe.region or recipe.crop
    if from_pair:
        blurred_path, sharp_path = sources.pairs[rng.integers(len(sources.pairs))]
        blurred_full, sharp_full = _image(images, blurred_path), _image(images, sharp_path)
        size = min(size, *sharp_full.shape[:2])
        top = int(rng.integers(sharp_full.shape[0] - size + 1))
        left = int(rng.integers(sharp_full.shape[1] - size + 1))
        window = np.s_[top:top + size, left:left + size]
        drawn = {"blurred": to_tensor(blurred_full[window])[0], "sharp": to_tensor(sharp_full[window])[0],
                 "source": str(blurred_path), "top": top, "left": left, "kernel": None, "noise_variance": 0.0}
        return _textured_crop(drawn, recipe)
    path = sources.sharp[rng.integers(len(sources.sharp))]
    sharp_full = _image(images, path)
    kernel = random_motion_kernel(rng, size=recipe.kernel_canvas, min_length=recipe.min_length,
                                  max_length=recipe.max_length, exposure=1.0, anxiety=recipe.anxiety)
    margin = recipe.kernel_canvas // 2
    if recipe.region:
        size = min(size, *sharp_full.shape[:2])
    # Blur a window with a margin of real neighbours, then cut the crop: no invented border.
    padded = np.pad(sharp_full, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    top = int(rng.integers(max(sharp_full.shape[0] - size, 0) + 1))
    left = int(rng.integers(max(sharp_full.shape[1] - size, 0) + 1))
    window = to_tensor(np.ascontiguousarray(padded[top:top + size + 2 * margin, left:left + size + 2 * margin]))
    blurred = blur(window, torch.from_numpy(kernel))[..., margin:margin + size, margin:margin + size]
    variance = float(rng.uniform(0, recipe.max_noise_variance))
    noise = torch.Generator().manual_seed(int(rng.integers(2**62)))
    blurred = add_gaussian_noise(blurred, variance, noise)
    sharp = window[..., margin:margin + size, margin:margin + size]
    drawn = {"blurred": blurred[0], "sharp": sharp[0], "source": str(path), "top": top, "left": left,
             "kernel": kernel, "noise_variance": variance}
    return _textured_crop(drawn, recipe)


def _textured_crop(drawn: dict, recipe: CropRecipe) -> dict:
    """Cut the recipe's crop from a drawn region: its most textured window, found on the 8-bit
    luminance as the engine finds it (the region is the crop itself unless ``recipe.region``)."""
    region = drawn["blurred"]
    drawn["around"], drawn["at"] = region, (0, 0)
    if not recipe.region:
        return drawn
    from ..engines.dcp import DcpRestorer, DcpSettings

    finder = DcpRestorer(DcpSettings(crop=recipe.crop))
    rows, cols = finder.textured_window(finder.luminance(to_uint8(region)))
    drawn["blurred"], drawn["sharp"] = region[:, rows, cols], drawn["sharp"][:, rows, cols]
    drawn["at"] = (rows.start, cols.start)
    drawn["top"], drawn["left"] = drawn["top"] + rows.start, drawn["left"] + cols.start
    return drawn


def _image(images: dict, path: Path) -> np.ndarray:
    if path not in images:
        images[path] = read_rgb(path)
    return images[path]


def _estimate_chunk(job: tuple) -> Path:
    """Estimate the kernels of one chunk of crops and write it (runs in a worker process)."""
    recipe, sources, out, chunk, kernel_size = job
    torch.set_num_threads(1)
    engine = load_engine("dcp", device="cpu", kernel_size=kernel_size)
    images: dict = {}
    estimates, reasons, meta = [], [], []
    for index in range(chunk * CHUNK, min((chunk + 1) * CHUNK, recipe.count)):
        crop = draw_crop(recipe, sources, images, index)
        # as the engine treats one region of a photo: the region must be suitable, the noise
        # level is the region's, and the kernel is estimated on the crop (its textured window)
        region = to_uint8(crop["around"])  # what a photo on disk gives the engine
        grey = engine.luminance(region)
        reason = engine.unsuitable(grey)
        kernel = None
        if reason is None:
            (row, col), side = crop["at"], recipe.crop
            kernel, reason = engine.estimate_window(grey[row:row + side, col:col + side],
                                                    noise_adaptive_weight(noise_sigma(region)))
        estimates.append(np.zeros((kernel_size, kernel_size), np.float32) if kernel is None else kernel.numpy())
        reasons.append(reason or "")
        meta.append({"index": index, "source": crop["source"], "top": crop["top"], "left": crop["left"],
                     "noise_variance": crop["noise_variance"]})
    path = out / f"chunk_{chunk:05d}.npz"

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, kernels=np.stack(estimates).astype(np.float16),
                                refused=np.array([bool(r) for r in reasons]),
                                meta=json.dumps({"crops": meta, "reasons": reasons}))

    atomic_write(path, write)
    return path


def estimate_training_kernels(sources: DataSources, out: str | Path, recipe: CropRecipe = CropRecipe(),
                              kernel_size: int = 25, workers: int = 2, progress: bool = True) -> int:
    """Write (or continue) the kernel cache under ``out``; return the number of crops in it."""
    if not sources.sharp and not sources.pairs:
        raise FileNotFoundError("no training images found")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"recipe": asdict(recipe), "kernel_size": kernel_size, "engine": "dcp (L0 prior)",
              "sharp": [str(p) for p in sources.sharp], "pairs": [[str(b), str(s)] for b, s in sources.pairs]}
    recorded = out / "recipe.json"
    if recorded.is_file() and _with_defaults(json.loads(recorded.read_text())) != record:
        raise ValueError(f"{out}: holds a kernel cache made with another recipe or other images; "
                         "choose a new --out")
    recorded.write_text(json.dumps(record, indent=2))
    chunks = [c for c in range(-(-recipe.count // CHUNK)) if not (out / f"chunk_{c:05d}.npz").is_file()]
    jobs = [(recipe, sources, out, c, kernel_size) for c in chunks]
    run_chunks(_estimate_chunk, jobs, workers, "estimating kernels", progress)
    return recipe.count


def _with_defaults(record: dict) -> dict:
    """A recorded recipe with the fields added since it was written at their defaults (which
    reproduce what it was made with)."""
    return {**record, "recipe": asdict(CropRecipe(**record["recipe"]))}


def run_chunks(work, jobs: list, workers: int, desc: str, progress: bool) -> None:
    """``work(job)`` for every job, in ``workers`` spawned processes (one thread each), with a bar."""
    bar = tqdm(total=len(jobs), desc=desc, unit="chunk", disable=not progress)
    if workers <= 1:
        for job in jobs:
            work(job)
            bar.update()
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(work, jobs):
                bar.update()
    bar.close()


def read_kernel_cache(folder: str | Path) -> tuple[dict, list[dict], np.ndarray, np.ndarray]:
    """(recipe record, per-crop metadata, float32 (N, k, k) estimated kernels, (N,) refused)."""
    folder = Path(folder)
    record = json.loads((folder / "recipe.json").read_text())
    meta, kernels, refused = [], [], []
    for chunk in sorted(folder.glob("chunk_*.npz")):
        with np.load(chunk) as data:
            meta += json.loads(str(data["meta"]))["crops"]
            kernels.append(data["kernels"].astype(np.float32))
            refused.append(data["refused"])
    if not kernels:
        raise FileNotFoundError(f"{folder}: no kernel cache chunks")
    return record, meta, np.concatenate(kernels), np.concatenate(refused)
