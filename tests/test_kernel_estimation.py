"""Blind kernel estimation and the Fourier helpers under it (kornia's pattern: shapes, errors,
invariants, and recovery of a known kernel)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import correlate2d
from skimage import color, data

from darkdeblur.blur import blur, random_motion_kernel
from darkdeblur.blur.fourier import (gradients, gradients_transposed, otf2psf, pad_periodic, psf2otf)
from darkdeblur.blur.kernel_estimation import (EstimationSettings, centre_kernel, centre_of_mass,
                                               clean_kernel, estimate_kernel, kernel_least_squares,
                                               pyramid_kernel_sizes)


def best_ncc(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Normalised cross-correlation at the best shift (both kernels are centred on their mass)."""
    return float(correlate2d(estimate / np.linalg.norm(estimate), truth / np.linalg.norm(truth)).max())


@pytest.fixture(scope="module")
def streak() -> np.ndarray:
    return random_motion_kernel(np.random.default_rng(3), size=25, min_length=18, max_length=22,
                                exposure=1.0, anxiety=0.005)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return torch.from_numpy(color.rgb2gray(data.astronaut()).astype(np.float32)[60:316, 120:376])


@pytest.fixture(scope="module")
def estimated(photo, streak) -> np.ndarray:
    blurred = blur(photo[None, None], torch.from_numpy(streak))[0, 0]
    return estimate_kernel(blurred, EstimationSettings(kernel_size=25, dark_channel=False)).numpy()


def test_psf2otf_is_circular_true_convolution():
    torch.manual_seed(0)
    image, kernel = torch.rand(1, 1, 20, 24), torch.rand(5, 5)
    fourier = torch.fft.irfft2(psf2otf(kernel, (20, 24)) * torch.fft.rfft2(image), s=(20, 24))
    direct = F.conv2d(F.pad(image, (2, 2, 2, 2), mode="circular"), kernel.flip(0, 1)[None, None])
    torch.testing.assert_close(fourier, direct, atol=1e-5, rtol=0)
    torch.testing.assert_close(otf2psf(psf2otf(kernel, (20, 24)), (20, 24), 5), kernel, atol=1e-6, rtol=0)


def test_gradients_transposed_is_the_adjoint():
    torch.manual_seed(1)
    x, a, b = torch.rand(9, 11), torch.rand(9, 11), torch.rand(9, 11)
    gx, gy = gradients(x)
    assert float((gx * a + gy * b).sum()) == pytest.approx(float((x * gradients_transposed(a, b)).sum()), rel=1e-5)


def test_pad_periodic_has_no_jump_at_the_wrap():
    ramp = torch.linspace(0, 1, 50).repeat(40, 1)  # left edge 0, right edge 1: a jump when wrapped
    padded = pad_periodic(ramp, 9)
    assert padded.shape[-1] >= 59 and padded.shape[-2] >= 49
    torch.testing.assert_close(padded[:40, :50], ramp)
    wrap_jump = (padded[:, 0] - padded[:, -1]).abs().max()
    assert wrap_jump < 0.1 < float((ramp[:, 0] - ramp[:, -1]).abs().max())


def test_pyramid_runs_coarse_to_fine_with_odd_sizes():
    levels = pyramid_kernel_sizes(25)
    sizes = [size for size, _ in levels]
    assert sizes[-1] == 25 and levels[-1][1] == 1.0 and 3 <= sizes[0] <= 7
    assert all(size % 2 == 1 for size in sizes) and sizes == sorted(sizes)


def test_kernel_step_recovers_the_kernel_from_the_true_gradients(photo, streak):
    kernel = torch.from_numpy(streak)
    padded = pad_periodic(photo, 25)
    sharp_grads = gradients(padded)
    blurred_grads = tuple(torch.fft.irfft2(psf2otf(kernel, padded.shape) * torch.fft.rfft2(g), s=padded.shape)
                          for g in sharp_grads)
    solved = kernel_least_squares(blurred_grads, sharp_grads, 25, gamma=1e-3, iterations=60)
    assert best_ncc(solved.clamp_min(0).numpy(), streak) > 0.97


def test_known_kernel_is_recovered(estimated, streak):
    assert best_ncc(estimated, streak) >= 0.8


def test_estimated_kernel_is_non_negative_sums_to_one_and_is_centred(estimated):
    assert estimated.shape == (25, 25) and estimated.min() >= 0
    assert estimated.sum() == pytest.approx(1.0, abs=1e-5)
    row, col = centre_of_mass(estimated)
    assert abs(row - 12) <= 0.5 and abs(col - 12) <= 0.5


def test_same_input_same_kernel(photo, streak, estimated):
    blurred = blur(photo[None, None], torch.from_numpy(streak))[0, 0]
    again = estimate_kernel(blurred, EstimationSettings(kernel_size=25, dark_channel=False)).numpy()
    np.testing.assert_array_equal(again, estimated)


def test_dark_channel_variant_also_finds_the_streak(photo, streak):
    small = photo[64:192, 64:192]
    blurred = blur(small[None, None], torch.from_numpy(streak))[0, 0]
    settings = EstimationSettings(kernel_size=25, dark_channel=True, mu_max=0.5)
    kernel = estimate_kernel(blurred, settings).numpy()
    assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0, abs=1e-5)
    assert best_ncc(kernel, streak) >= 0.6


def test_cleaning_removes_specks_and_centring_moves_the_mass():
    kernel = torch.zeros(9, 9)
    kernel[2, 2:5] = 1.0
    kernel[8, 8] = 0.05  # an isolated speck, 1.6% of the mass
    cleaned = clean_kernel(kernel, prune_fraction=0.01, min_component_mass=0.1)
    assert cleaned[8, 8] == 0 and float(cleaned.sum()) == pytest.approx(1.0)
    row, col = centre_of_mass(centre_kernel(cleaned).numpy())
    assert (row, col) == (4.0, 4.0)


def test_errors_name_the_offending_shape():
    with pytest.raises(ValueError, match=r"\(1, 8, 8\)"):
        estimate_kernel(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="odd"):
        EstimationSettings(kernel_size=24)
