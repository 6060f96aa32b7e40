"""Synthetic motion blur: random camera-shake kernels (numpy) and their application to image batches (torch)."""

from darkdeblur.blur.degrade import add_gaussian_noise, blur, random_noise_variance
from darkdeblur.blur.trajectory import (
    EXPOSURES,
    kernel_bank,
    random_motion_kernel,
    random_trajectory,
    trajectory_to_kernel,
)

__all__ = [
    "EXPOSURES",
    "add_gaussian_noise",
    "blur",
    "kernel_bank",
    "random_motion_kernel",
    "random_noise_variance",
    "random_trajectory",
    "trajectory_to_kernel",
]
