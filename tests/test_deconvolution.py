"""Wiener and Richardson-Lucy references: identity on a delta kernel, gain on a known blur."""

import numpy as np
import pytest
import torch
from skimage.data import astronaut
from skimage.transform import resize

from darkdeblur.blur import blur
from darkdeblur.deconvolution import richardson_lucy_deconvolve, wiener_deconvolve
from darkdeblur.metrics import psnr


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return resize(astronaut(), (128, 128), anti_aliasing=True).astype(np.float64)  # (H, W, 3) in [0, 1]


def _blurred(photo: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    return blur(x, torch.from_numpy(kernel).float())[0].permute(1, 2, 0).double().numpy()


def _delta(size: int, row: int, col: int) -> np.ndarray:
    kernel = np.zeros((size, size))
    kernel[row, col] = 1.0
    return kernel


def test_delta_kernel_leaves_image_nearly_unchanged(photo):
    delta = _delta(9, 4, 4)
    assert psnr(wiener_deconvolve(photo, delta, balance=1e-4), photo, 1.0) > 45
    # Richardson-Lucy with a delta reaches the input after its first multiplicative update.
    np.testing.assert_allclose(richardson_lucy_deconvolve(photo, delta, iterations=5), photo, atol=1e-6)


def test_shift_kernel_is_undone_so_the_convolution_convention_matches_blur(photo):
    shift = _delta(5, 2, 3)  # moves content one pixel right under darkdeblur.blur.blur
    shifted = _blurred(photo, shift)
    assert psnr(shifted, photo, 1.0) < 30
    inner = (slice(4, -4), slice(4, -4))  # the reflected border cannot be undone exactly
    restored = wiener_deconvolve(shifted, shift, balance=1e-4)
    assert psnr(restored[inner], photo[inner], 1.0) > 40


def test_true_kernel_beats_the_blurred_input(photo):
    kernel = np.zeros((15, 15))
    kernel[7, 2:13] = 1.0  # an 11-pixel horizontal motion
    kernel[np.arange(4, 11), np.arange(4, 11)] += 0.5  # plus a diagonal stroke
    kernel /= kernel.sum()
    blurred = _blurred(photo, kernel)
    before = psnr(blurred, photo, 1.0)
    assert psnr(wiener_deconvolve(blurred, kernel, balance=1e-2), photo, 1.0) > before + 3
    assert psnr(richardson_lucy_deconvolve(blurred, kernel, iterations=30), photo, 1.0) > before + 2


def test_greyscale_and_bad_kernel():
    grey = np.full((20, 20), 0.5)
    assert wiener_deconvolve(grey, _delta(3, 1, 1), balance=1e-4).shape == (20, 20)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        wiener_deconvolve(grey, np.ones((4, 4)))
