"""Non-blind deconvolution: identities, gains with the true kernel, noise, shrinkage."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from darkdeblur.blur import add_gaussian_noise, blur, random_motion_kernel
from darkdeblur.blur.nonblind import deconvolve, noise_adaptive_weight, shrink
from darkdeblur.metrics import psnr
from darkdeblur.pixels import to_tensor, to_uint8


@pytest.fixture(scope="module")
def sharp() -> torch.Tensor:
    return to_tensor(data.astronaut()[40:232, 100:292])  # (1, 3, 192, 192)


@pytest.fixture(scope="module")
def kernel() -> torch.Tensor:
    return torch.from_numpy(random_motion_kernel(np.random.default_rng(5), size=21, min_length=14,
                                                 max_length=16, exposure=1.0, anxiety=0.005))


def gain(restored: torch.Tensor, blurred: torch.Tensor, sharp: torch.Tensor) -> float:
    truth = to_uint8(sharp)
    return psnr(to_uint8(restored.clamp(0, 1)), truth, 255) - psnr(to_uint8(blurred), truth, 255)


def test_a_delta_kernel_leaves_the_image_unchanged(sharp):
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1
    restored = deconvolve(sharp, delta, weight=1e-7)
    assert restored.shape == sharp.shape
    assert float((restored - sharp).abs().max()) < 1.0 / 255


def test_the_true_kernel_gains_over_3_db(sharp, kernel):
    blurred = blur(sharp, kernel)
    assert gain(deconvolve(blurred, kernel, noise_adaptive_weight(0.0)), blurred, sharp) >= 3.0


def test_noisy_input_gives_finite_output_not_worse_than_the_input(sharp, kernel):
    blurred = add_gaussian_noise(blur(sharp, kernel), 0.001, torch.Generator().manual_seed(0))
    restored = deconvolve(blurred, kernel, noise_adaptive_weight(0.001 ** 0.5))
    assert bool(torch.isfinite(restored).all())
    assert gain(restored, blurred, sharp) >= 0.5
    # the fixed weight of a clean photo amplifies the same noise: the adaptive weight is what helps
    assert gain(deconvolve(blurred, kernel, 1e-4), blurred, sharp) < gain(restored, blurred, sharp)


def test_a_grey_image_stays_grey(kernel):
    grey = to_tensor(np.repeat(data.camera()[100:228, 100:228, None], 3, axis=2))
    restored = deconvolve(blur(grey, kernel), kernel, 1e-3)
    torch.testing.assert_close(restored[:, 0], restored[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(restored[:, 0], restored[:, 2], atol=1e-5, rtol=0)


def test_shrink_soft_thresholds_at_p_1_and_zeroes_small_values_at_p_below_1():
    values = torch.tensor([-2.0, -0.3, 0.0, 0.5, 3.0])
    torch.testing.assert_close(shrink(values, 1.0, 1.0), torch.tensor([-1.0, 0.0, 0.0, 0.0, 2.0]))
    hyper = shrink(values, 0.2, 0.8)
    assert hyper[1] == 0 and hyper[2] == 0 and 0 < hyper[4] < 3.0 and hyper[0] < 0
    # the result minimises lam |w|^p + (w - v)^2 / 2 better than its neighbours do
    cost = lambda w, v: 0.2 * abs(w) ** 0.8 + 0.5 * (w - v) ** 2  # noqa: E731
    w = float(hyper[4])
    assert cost(w, 3.0) <= min(cost(w + 0.01, 3.0), cost(w - 0.01, 3.0))


def test_errors_name_the_offending_shape(sharp):
    with pytest.raises(ValueError, match=r"\(3, 8, 8\)"):
        deconvolve(torch.zeros(3, 8, 8), torch.ones(3, 3) / 9, 1e-3)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        deconvolve(sharp, torch.ones(4, 4) / 16, 1e-3)
