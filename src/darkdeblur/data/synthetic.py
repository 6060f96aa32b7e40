"""Sharp photos blurred on the fly with random camera-shake kernels, reproducibly per index."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..blur import add_gaussian_noise, blur, deblurgan_motion_kernel, random_motion_kernel
from ..blur.trajectory import STREAK_ANXIETY, STREAK_KERNEL_SIZE, STREAK_MAX_LENGTH, STREAK_MIN_LENGTH
from ..image_io import read_rgb
from ..pixels import to_tensor


class SyntheticPairs(torch.utils.data.Dataset):
    """Item ``i`` is (blurred, sharp, kernel) for the i-th photo, identical for the same seed.

    Each index draws its kernel and noise from its own generator seeded by (seed, i), so the
    result does not depend on the order or the number of items read before it.
    Images: float32 (3, H, W) in [0, 1]; kernel: float32 (k, k) summing to 1.
    """

    def __init__(self, sharp_paths: list[Path], seed: int = 0, kernel_size: int = STREAK_KERNEL_SIZE,
                 min_length: float = STREAK_MIN_LENGTH, max_length: float = STREAK_MAX_LENGTH,
                 noise_variance: float = 0.0, exposure: float | None = 1.0,
                 anxiety: float | None = STREAK_ANXIETY,
                 recipe: str = "streak"):
        self.sharp_paths = list(sharp_paths)
        self.seed = seed
        self.kernel_size = kernel_size
        self.min_length, self.max_length = min_length, max_length
        self.noise_variance = noise_variance
        self.exposure = exposure
        self.anxiety = anxiety
        if recipe not in ("streak", "deblurgan"):
            raise ValueError(f"unknown kernel recipe {recipe!r}; choose streak or deblurgan")
        self.recipe = recipe  # "deblurgan": deblurgan_motion_kernel, ignoring lengths/exposure

    def __len__(self) -> int:
        return len(self.sharp_paths)

    def kernel(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        if self.recipe == "deblurgan":
            return deblurgan_motion_kernel(rng, self.kernel_size)
        return random_motion_kernel(rng, self.kernel_size, self.max_length, self.min_length,
                                    exposure=self.exposure, anxiety=self.anxiety)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sharp = to_tensor(read_rgb(self.sharp_paths[index]))
        kernel = torch.from_numpy(self.kernel(index))
        blurred = blur(sharp, kernel)
        if self.noise_variance > 0:
            noise_rng = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            blurred = add_gaussian_noise(blurred, self.noise_variance, noise_rng)
        return blurred[0], sharp[0], kernel
