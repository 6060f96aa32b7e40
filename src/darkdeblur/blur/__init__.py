"""Synthetic motion blur: random camera-shake kernels (numpy) and their application to image batches (torch)."""

from darkdeblur.blur.degrade import add_gaussian_noise, blur, random_noise_variance
from darkdeblur.blur.trajectory import (
    EXPOSURES,
    deblurgan_motion_kernel,
    kernel_bank,
    random_motion_kernel,
    random_trajectory,
    trajectory_to_kernel,
)

__all__ = [
    "EXPOSURES",
    "add_gaussian_noise",
    "blur",
    "deblurgan_motion_kernel",
    "kernel_bank",
    "random_motion_kernel",
    "random_noise_variance",
    "random_trajectory",
    "trajectory_to_kernel",
]
