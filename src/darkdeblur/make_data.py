"""Writing paired datasets to disk: synthetic blur over sharp photos, and noisy copies."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm import tqdm

from .blur import add_gaussian_noise
from .blur.trajectory import (DEBLURGAN_ANXIETY, DEBLURGAN_KERNEL_SIZE, DEBLURGAN_LENGTH, EXPOSURES,
                              STREAK_ANXIETY, STREAK_KERNEL_SIZE, STREAK_MAX_LENGTH, STREAK_MIN_LENGTH)
from .safe_files import save_array
from .data.folders import find_pairs
from .data.synthetic import SyntheticPairs
from .image_io import list_images, read_rgb, write_rgb
from .pixels import to_tensor, to_uint8


# How the noisy sets made here differ from the paper's GOPRO-noise test set.
NOISE_MODEL = ("Gaussian noise added to the blurred image only, after blurring; the sharp image "
               "stays clean. The paper's GOPRO-noise set instead added the noise to each of the 11 "
               "video frames before averaging them and used the noisy middle frame as the sharp "
               "image; that needs the frames, which a blurred/sharp pair does not have.")


def _flat_names(paths: list[Path], root: Path) -> list[str]:
    """One flat output name per input (``a/b.png`` -> ``a_b``), refusing two that coincide."""
    names: dict[str, Path] = {}
    for path in paths:
        name = path.relative_to(root).with_suffix("").as_posix().replace("/", "_")
        if name in names:
            raise ValueError(f"{path}: would be written as {name}.png, like {names[name]}; rename one")
        names[name] = path
    return list(names)


def make_synthetic(sharp_dir: str | Path, out: str | Path, seed: int, noise_variance: float = 0.0,
                   kernel_size: int = STREAK_KERNEL_SIZE, min_length: float = STREAK_MIN_LENGTH,
                   max_length: float = STREAK_MAX_LENGTH, anxiety: float = STREAK_ANXIETY,
                   progress: bool = True, kernel_recipe: str = "streak") -> int:
    """Blur every photo under ``sharp_dir`` into ``out/{blur,sharp,kernels}``; return the count.

    Kernels are saved as ``kernels/NAME.npy`` (float32, sum 1) so non-blind deconvolution can be
    given the true kernel. ``out/recipe.json`` records every parameter. ``kernel_recipe``
    "deblurgan" draws DeblurGAN's kernels (65 px; lengths, exposure and anxiety are then its own).
    Noise (``noise_variance`` > 0) goes onto the blurred image only; see :data:`NOISE_MODEL`.
    """
    sharp_paths = list_images(sharp_dir)
    if not sharp_paths:
        raise FileNotFoundError(f"{sharp_dir}: no images found")
    out = Path(out)
    names = _flat_names(sharp_paths, Path(sharp_dir))
    if kernel_recipe == "deblurgan":
        kernel_size = DEBLURGAN_KERNEL_SIZE
    dataset = SyntheticPairs(sharp_paths, seed, kernel_size, min_length, max_length,
                             noise_variance, exposure=1.0, anxiety=anxiety, recipe=kernel_recipe)
    for sub in ("blur", "sharp", "kernels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for index in tqdm(range(len(dataset)), desc="make-data", disable=not progress, unit="image"):
        blurred, sharp, kernel = dataset[index]
        name = names[index]
        write_rgb(out / "blur" / f"{name}.png", to_uint8(blurred))
        write_rgb(out / "sharp" / f"{name}.png", to_uint8(sharp))
        save_array(out / "kernels" / f"{name}.npy", kernel.numpy())
    if kernel_recipe == "deblurgan":
        kernels = {"kernel_recipe": "deblurgan", "kernel_size": kernel_size,
                   "blur_length_px": [DEBLURGAN_LENGTH, DEBLURGAN_LENGTH],
                   "exposure": list(EXPOSURES), "anxiety": list(DEBLURGAN_ANXIETY)}
    else:
        kernels = {"kernel_recipe": "streak", "kernel_size": kernel_size,
                   "blur_length_px": [min_length, max_length], "exposure": 1.0, "anxiety": anxiety}
    recipe = {"source": str(sharp_dir), "seed": seed, "noise_variance": noise_variance, **kernels,
              "count": len(dataset)}
    if noise_variance > 0:
        recipe["noise_model"] = NOISE_MODEL
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2))
    return len(dataset)


def make_noisy_copy(pairs_dir: str | Path, out: str | Path, seed: int, noise_variance: float = 0.001,
                    progress: bool = True) -> int:
    """Copy a paired set, adding Gaussian noise of ``noise_variance`` to the blurred images.

    This is the GOPRO-noise idea (the paper adds variance-0.001 noise) applied to an existing
    set, with the difference :data:`NOISE_MODEL` states.
    """
    pairs = find_pairs(pairs_dir, "paired")
    out = Path(out)
    names = _flat_names([b for b, _ in pairs], Path(pairs_dir) / "blur")
    for index, (blurred_path, sharp_path) in enumerate(tqdm(pairs, desc="noisy copy",
                                                            disable=not progress, unit="image")):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        noisy = add_gaussian_noise(to_tensor(read_rgb(blurred_path)), noise_variance, generator)
        name = names[index]
        write_rgb(out / "blur" / f"{name}.png", to_uint8(noisy))
        write_rgb(out / "sharp" / f"{name}.png", read_rgb(sharp_path))
        kernel = Path(pairs_dir) / "kernels" / f"{name}.npy"
        if kernel.is_file():
            (out / "kernels").mkdir(parents=True, exist_ok=True)
            (out / "kernels" / kernel.name).write_bytes(kernel.read_bytes())
    (out / "recipe.json").write_text(json.dumps(
        {"source": str(pairs_dir), "seed": seed, "noise_variance": noise_variance,
         "noise_model": NOISE_MODEL, "count": len(pairs)}, indent=2))
    return len(pairs)
