"""Tests for darkdeblur.blur: kernel invariants, determinism, and the behaviour of blur and noise."""

import numpy as np
import pytest
import torch
from skimage.data import astronaut
from skimage.transform import resize

from darkdeblur.blur import (
    add_gaussian_noise,
    blur,
    kernel_bank,
    random_motion_kernel,
    random_noise_variance,
    random_trajectory,
    trajectory_to_kernel,
)


def _centre_of_mass(kernel: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(kernel.shape)
    return float((rows * kernel).sum()), float((cols * kernel).sum())


def _delta(size: int, row: int, col: int) -> torch.Tensor:
    kernel = torch.zeros(size, size)
    kernel[row, col] = 1.0
    return kernel


# --- trajectories and kernels -------------------------------------------------------------------------------


def test_trajectory_has_requested_length_and_steps():
    path = random_trajectory(np.random.default_rng(0), length=30.0, steps=500)
    assert path.shape == (500,) and np.iscomplexobj(path)
    assert np.abs(np.diff(path)).sum() == pytest.approx(30.0, rel=1e-9)


@pytest.mark.parametrize("exposure", [None, 0.01, 0.5, 1.0])
def test_kernel_sums_to_one_and_is_non_negative(exposure):
    rng = np.random.default_rng(1)
    for _ in range(5):
        kernel = random_motion_kernel(rng, size=21, exposure=exposure)
        assert kernel.shape == (21, 21) and kernel.dtype == np.float32
        assert kernel.min() >= 0
        assert abs(float(kernel.sum(dtype=np.float64)) - 1.0) < 1e-6


def test_same_seed_same_kernel_different_seed_different_kernel():
    first = random_motion_kernel(np.random.default_rng(7), size=21, exposure=1.0)
    again = random_motion_kernel(np.random.default_rng(7), size=21, exposure=1.0)
    other = random_motion_kernel(np.random.default_rng(8), size=21, exposure=1.0)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_kernel_bank_is_deterministic():
    bank = kernel_bank(3, 4, size=15)
    assert bank.shape == (4, 15, 15) and bank.dtype == np.float32
    assert np.array_equal(bank, kernel_bank(3, 4, size=15))
    assert not np.array_equal(bank, kernel_bank(4, 4, size=15))
    # Kernels within a bank differ from each other.
    assert not np.allclose(bank[0], bank[1])


def _rms_radius(kernel: np.ndarray) -> float:
    """Root-mean-square distance of the kernel's mass from the centre pixel, in px (0 for a centred delta)."""
    rows, cols = np.indices(kernel.shape)
    centre = (kernel.shape[0] - 1) / 2
    return float(np.sqrt((((rows - centre) ** 2 + (cols - centre) ** 2) * kernel).sum()))


def test_kernel_is_not_a_delta_for_paths_of_8px_or_more():
    rng = np.random.default_rng(2)
    for _ in range(10):
        kernel = random_motion_kernel(rng, size=41, min_length=8.0, exposure=1.0)
        # A delta puts all its mass in one pixel; even a tangled 8 px path covers several.
        assert kernel.max() < 0.95
        assert (kernel > 1e-3).sum() >= 4
        assert _rms_radius(kernel) > 0.2


def test_calm_camera_gives_long_streaks():
    rng = np.random.default_rng(3)
    for _ in range(10):
        # With little shake an 8 px path stays close to a line (RMS radius 8 / sqrt(12) = 2.3 px when straight).
        kernel = random_motion_kernel(rng, size=41, min_length=8.0, max_length=8.0, exposure=1.0, anxiety=0.003)
        assert _rms_radius(kernel) > 0.8


def test_longer_paths_blur_more():
    def mean_radius(length: float) -> float:
        bank = kernel_bank(0, 20, size=41, min_length=length, max_length=length, exposure=1.0)
        return float(np.mean([_rms_radius(kernel) for kernel in bank]))

    assert mean_radius(30.0) > 1.3 * mean_radius(8.0)


def test_kernel_centre_of_mass_is_at_centre():
    rng = np.random.default_rng(3)
    for exposure in (0.1, 0.5, 1.0):
        kernel = random_motion_kernel(rng, size=31, exposure=exposure)
        row, col = _centre_of_mass(kernel)
        assert row == pytest.approx(15.0, abs=1e-3) and col == pytest.approx(15.0, abs=1e-3)


def test_long_trajectory_is_scaled_to_fit_kernel():
    # A 40 px path cannot fit an 11 px kernel unscaled; if it were cut off, mass would leave the centre.
    kernel = random_motion_kernel(np.random.default_rng(4), size=11, min_length=40.0, max_length=40.0, exposure=1.0)
    row, col = _centre_of_mass(kernel)
    assert row == pytest.approx(5.0, abs=1e-3) and col == pytest.approx(5.0, abs=1e-3)
    assert kernel[0].sum() == 0 and kernel[-1].sum() == 0 and kernel[:, 0].sum() == 0 and kernel[:, -1].sum() == 0


def test_horizontal_trajectory_gives_horizontal_streak():
    path = np.arange(9, dtype=np.float64) + 0j  # 9 samples one px apart along x
    kernel = trajectory_to_kernel(path, size=11)
    assert np.allclose(kernel[5, 1:10], 1 / 9) and kernel.sum(axis=1)[5] == pytest.approx(1.0)
    half = trajectory_to_kernel(path, size=11, exposure=1 / 3)  # first 3 samples, re-centred
    assert np.allclose(half[5, 4:7], 1 / 3)


def test_bad_kernel_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="odd"):
        random_motion_kernel(rng, size=20)
    with pytest.raises(ValueError, match="exposure"):
        trajectory_to_kernel(np.zeros(3, complex), size=5, exposure=0.0)


# --- blur -------------------------------------------------------------------------------------------------


def test_centred_delta_leaves_image_unchanged_exactly():
    images = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(blur(images, _delta(5, 2, 2)), images)
    assert torch.equal(blur(images, torch.stack([_delta(5, 2, 2)] * 2)), images)


def test_shifted_delta_shifts_right_and_down():
    images = torch.rand(1, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    right = blur(images, _delta(3, 1, 2))  # the 1 sits one pixel right of the centre
    assert torch.equal(right[..., 1:], images[..., :-1])
    down = blur(images, _delta(3, 2, 1))  # one pixel below the centre
    assert torch.equal(down[..., 1:, :], images[..., :-1, :])


def test_blur_keeps_mean_brightness_of_natural_image():
    sharp = resize(astronaut(), (128, 128), anti_aliasing=True)  # float64 in [0, 1]
    images = torch.from_numpy(sharp).permute(2, 0, 1)[None].float()
    kernel = torch.from_numpy(random_motion_kernel(np.random.default_rng(5), size=21, exposure=1.0))
    blurred = blur(images, kernel)
    assert blurred.shape == images.shape
    assert abs(blurred.mean().item() - images.mean().item()) < 1e-3
    assert not torch.allclose(blurred, images, atol=1e-2)  # it really did blur
    assert blurred.min() >= 0 and blurred.max() <= 1 + 1e-6


def test_batched_kernels_match_single_calls():
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(3, 2, 12, 14, generator=generator)
    kernels = torch.from_numpy(kernel_bank(0, 3, size=7, exposure=1.0))
    batched = blur(images, kernels)
    for i in range(3):
        assert torch.allclose(batched[i : i + 1], blur(images[i : i + 1], kernels[i]), atol=1e-6)
    # Different kernels really do give different images.
    assert not torch.allclose(batched[0], blur(images[:1], kernels[1])[0], atol=1e-4)


def test_blur_on_image_smaller_than_kernel_uses_replicate_padding():
    images = torch.full((1, 1, 3, 3), 0.4)
    kernel = torch.from_numpy(random_motion_kernel(np.random.default_rng(6), size=9, exposure=1.0))
    assert torch.allclose(blur(images, kernel), images, atol=1e-6)


@pytest.mark.parametrize(
    "shape, offending",
    [((4, 5), "(4, 5)"), ((4, 4), "(4, 4)"), ((1, 3, 3, 3), "(1, 3, 3, 3)"), ((3, 5, 5), "(3, 5, 5)")],
)
def test_wrong_kernel_shape_raises_with_shape(shape, offending):
    images = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError) as error:
        blur(images, torch.ones(shape))
    assert offending in str(error.value)


def test_wrong_image_shape_raises_with_shape():
    with pytest.raises(ValueError, match=r"\(3, 8, 8\)"):
        blur(torch.rand(3, 8, 8), _delta(3, 1, 1))


# --- noise ------------------------------------------------------------------------------------------------


def test_noise_has_requested_variance():
    grey = torch.full((2, 1, 128, 128), 0.5)
    variance = torch.tensor([0.01, 0.0])
    noisy = add_gaussian_noise(grey, variance, torch.Generator().manual_seed(0))
    assert noisy[0].var().item() == pytest.approx(0.01, rel=0.05)
    assert noisy[0].mean().item() == pytest.approx(0.5, abs=2e-3)
    assert torch.equal(noisy[1], grey[1])  # variance 0 leaves the image as it was


def test_noise_is_clipped_to_unit_range():
    noisy = add_gaussian_noise(torch.full((1, 1, 32, 32), 0.9), 0.25, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and (noisy == 1).any()


def test_same_generator_seed_same_noise():
    images = torch.full((2, 3, 8, 8), 0.5)
    first = add_gaussian_noise(images, 0.01, torch.Generator().manual_seed(9))
    again = add_gaussian_noise(images, 0.01, torch.Generator().manual_seed(9))
    other = add_gaussian_noise(images, 0.01, torch.Generator().manual_seed(10))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_wrong_variance_shape_raises_with_shape():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        add_gaussian_noise(torch.rand(2, 1, 4, 4), torch.ones(3))


def test_random_noise_variance_is_in_range_and_seeded():
    variances = random_noise_variance(1000, 0.02, torch.Generator().manual_seed(0))
    assert variances.shape == (1000,)
    assert variances.min() >= 0 and variances.max() <= 0.02
    assert variances.mean().item() == pytest.approx(0.01, rel=0.1)
    assert torch.equal(variances, random_noise_variance(1000, 0.02, torch.Generator().manual_seed(0)))
