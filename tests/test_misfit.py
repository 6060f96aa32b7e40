"""The misfit input: how much of the blur a deconvolution fails to explain, and the refiner that sees it."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from darkdeblur.blur import blur
from darkdeblur.blur.misfit import deconvolution_misfit, misfit_level, trim_kernel
from darkdeblur.data.refiner_set import RefinerCrops, RefinerStream, crop_misfits, refiner_validation
from darkdeblur.engines import load_engine
from darkdeblur.models import build_generator, init_normal
from darkdeblur.models.grow import grow_input_channels
from darkdeblur.pixels import to_tensor

from conftest import small_photo
from test_hybrid import REFINER, refiner_set, train_tiny_refiner  # noqa: F401  (refiner_set: 6 crops)

MISFIT_REFINER = replace(REFINER, inputs="blurred+deconvolved+misfit")


def _streak(length: int = 9) -> torch.Tensor:
    kernel = torch.zeros(length, length)
    kernel[length // 2, :] = 1.0 / length
    return kernel


def test_the_sharp_photo_explains_its_blur_and_the_blurred_one_does_not():
    sharp = to_tensor(small_photo("astronaut", (96, 96)))
    kernel = _streak()
    blurred = blur(sharp, kernel)
    assert deconvolution_misfit(blurred, sharp, kernel, 0.0) < 1e-3  # the right latent: no misfit
    # "deconvolving" by doing nothing explains nothing: misfit 1
    assert deconvolution_misfit(blurred, blurred, kernel, 0.0) == pytest.approx(1.0, rel=1e-4)
    # the right latent judged with the wrong kernel (a vertical streak) misfits
    assert deconvolution_misfit(blurred, sharp, kernel.T.contiguous(), 0.0) > 0.3


def test_the_misfit_discounts_the_noise():
    sharp = to_tensor(small_photo("chelsea", (96, 96)))
    kernel = _streak()
    variance = 0.001
    noisy = blur(sharp, kernel) + torch.randn(sharp.shape, generator=torch.Generator().manual_seed(0)) * variance**0.5
    raw = deconvolution_misfit(noisy, sharp, kernel, 0.0)
    corrected = deconvolution_misfit(noisy, sharp, kernel, variance)
    assert raw > 0.05 and corrected < 0.25 * raw


def test_misfit_levels_and_trimmed_kernels():
    assert misfit_level(None) == 1.0 and misfit_level(0.0) == 0.0
    assert misfit_level(0.25) == pytest.approx(0.5) and misfit_level(7.0) == 1.0
    padded = np.zeros((13, 13), np.float32)
    padded[4:9, 4:9] = np.random.default_rng(0).random((5, 5))
    trimmed = trim_kernel(padded)
    assert trimmed.shape == (5, 5)
    image = torch.rand(1, 1, 40, 40)
    torch.testing.assert_close(blur(image, torch.from_numpy(trimmed)), blur(image, torch.from_numpy(padded)))


def test_a_grown_refiner_computes_what_the_smaller_one_did():
    torch.manual_seed(0)
    small = build_generator(REFINER)
    init_normal(small, 0.2)
    small.eval()
    large = build_generator(MISFIT_REFINER).eval()
    state, grown = grow_input_channels(small.state_dict(), large.state_dict())
    large.load_state_dict(state, strict=True)
    assert len(grown) == 2  # the first layer and the full-resolution skip's layer
    blurred, deconvolved = torch.rand(1, 3, 32, 40), torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        expected = small(torch.cat([blurred, deconvolved], 1))
        for level in (0.0, 1.0):
            got = large(torch.cat([blurred, torch.full((1, 1, 32, 40), level), deconvolved], 1))
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_crops_carry_their_misfit_levels_into_seven_channel_batches(refiner_set):  # noqa: F811
    misfits = crop_misfits(refiner_set / "set")
    assert (refiner_set / "set" / "misfits.npy").is_file() and misfits.shape == (6,)
    crops = RefinerCrops(refiner_set / "set", misfit=True)
    assert crops.levels.shape == (6,) and ((crops.levels >= 0) & (crops.levels <= 1)).all()
    for index, misfit in enumerate(misfits):
        assert crops.levels[index] == pytest.approx(1.0 if np.isnan(misfit) else misfit_level(float(misfit)))
    inputs, sharp = RefinerStream(crops, size=32, batch_size=3, seed=0).next().to_device(torch.device("cpu"))
    assert inputs.shape == (3, 7, 32, 32) and sharp.shape == (3, 3, 32, 32)
    channel = inputs[:, 3]
    assert torch.equal(channel, channel[:, :1, :1].expand_as(channel))  # one level per crop
    assert set(channel[:, 0, 0].tolist()) <= set(crops.levels.tolist())
    val_inputs, _ = refiner_validation(crops)
    assert val_inputs.shape[1] == 7


@pytest.fixture(scope="module")
def misfit_weights(refiner_set):  # noqa: F811
    summary = train_tiny_refiner(MISFIT_REFINER, [refiner_set / "set"], refiner_set / "misfit-run")
    assert summary["steps"] == 2
    return refiner_set / "misfit-run" / "generator.safetensors"


def test_the_hybrid_engine_gives_a_misfit_refiner_its_map(misfit_weights):
    engine = load_engine("hybrid", weights=misfit_weights, device="cpu", kernel_size=9)
    assert engine.sees_misfit
    photo = small_photo("astronaut", (96, 96))
    first = engine.dcp.restore(photo)
    assert first.kernel is not None
    level = engine.misfit_map(photo, first.image, first.kernel)
    assert level.shape == photo.shape[:2] and level.dtype == np.uint8
    # a region without a kernel has nothing to trust: level 255 there
    none = engine.misfit_map(photo, first.image, np.zeros_like(first.kernel))
    assert (none == 255).all() and level.min() < 255
    result = engine.restore(photo)
    np.testing.assert_array_equal(result.image, engine.refine_array(photo, first.image, level))
    # the map is an input: another level changes the output
    assert not np.array_equal(engine.refine_array(photo, first.image, np.zeros_like(level)),
                              engine.refine_array(photo, first.image, np.full_like(level, 255)))


def test_a_refiner_without_correction_only_moves_between_the_deconvolution_and_the_photo():
    torch.manual_seed(1)
    with_correction = build_generator(MISFIT_REFINER)
    init_normal(with_correction, 0.3)
    with_correction.eval()
    share_only = build_generator(replace(MISFIT_REFINER, correction=False)).eval()
    from darkdeblur.models.grow import keep_share_output

    state, kept = keep_share_output(with_correction.state_dict(), share_only.state_dict())
    share_only.load_state_dict(state, strict=True)
    assert kept == ["output.1.weight", "output.1.bias"]
    blurred, deconvolved = torch.rand(1, 3, 32, 40), torch.rand(1, 3, 32, 40)
    x = torch.cat([blurred, torch.full((1, 1, 32, 40), 0.5), deconvolved], 1)
    with torch.no_grad():
        out = share_only(x)
        share = share_only.head(x)[:, :1]  # no padding needed at 32x40 for depth 3
    expected = ((deconvolved * 2 - 1) + share * (blurred - deconvolved) * 2).clamp(-1, 1) / 2 + 0.5
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="fallback_mix"):
        build_generator(replace(MISFIT_REFINER, correction=False, fallback_mix=False))


def test_a_six_input_refiner_with_correction_starts_a_seven_input_share_only_one():
    from darkdeblur.models.grow import keep_share_output

    old = build_generator(REFINER).eval()
    new = build_generator(replace(MISFIT_REFINER, correction=False)).eval()
    state, grown = grow_input_channels(old.state_dict(), new.state_dict())
    state, kept = keep_share_output(state, new.state_dict())
    new.load_state_dict(state, strict=True)  # every shape fits
    assert "output.1.weight" in grown and "output.1.weight" in kept


def test_a_share_only_refiner_starts_one_with_a_zero_correction_that_can_learn():
    from darkdeblur.models.grow import add_correction_output

    torch.manual_seed(2)
    share_only = build_generator(replace(MISFIT_REFINER, correction=False))
    init_normal(share_only, 0.3)
    share_only.eval()
    corrected = build_generator(MISFIT_REFINER).eval()
    state, grown = add_correction_output(share_only.state_dict(), corrected.state_dict())
    corrected.load_state_dict(state, strict=True)
    assert grown == ["output.1.weight", "output.1.bias"]
    x = torch.cat([torch.rand(1, 3, 32, 40), torch.full((1, 1, 32, 40), 0.3), torch.rand(1, 3, 32, 40)], 1)
    with torch.no_grad():
        torch.testing.assert_close(corrected(x), share_only(x), rtol=0, atol=1e-5)
    # the correction's outputs start at zero but are trained: the loss reaches them
    corrected.train()
    corrected(x).sum().backward()
    weight = dict(corrected.named_parameters())["output.1.weight"]
    assert float(weight.grad[:3].abs().sum()) > 0


def test_the_fallback_moves_regions_back_as_far_as_they_misfit():
    from darkdeblur.blur.misfit import MisfitFallback

    rule = MisfitFallback(lo=0.1, width=0.4, noise_slope=10.0)
    assert rule.share(np.float32(0.1), 0.0) == 0.0 and rule.share(np.float32(0.3), 0.0) == pytest.approx(0.5)
    assert rule.share(np.float32(0.9), 0.0) == 1.0
    assert rule.share(np.float32(0.3), 0.03) == 0.0  # noise explains part of the misfit
    rng = np.random.default_rng(0)
    photo, deconvolved = (rng.integers(0, 256, (700, 90, 3), dtype=np.uint8) for _ in range(2))
    np.testing.assert_array_equal(rule.apply(photo, deconvolved, np.full((700, 90), 255, np.uint8), 0.0), photo)
    np.testing.assert_array_equal(rule.apply(photo, deconvolved, np.zeros((700, 90), np.uint8), 0.0), deconvolved)
    halfway = rule.apply(photo, deconvolved, np.full((700, 90), round(0.3 * 255), np.uint8), 0.0, band=256)
    share = float(rule.share(np.float32(round(0.3 * 255) / 255), 0.0))
    assert 0.45 < share < 0.55
    expected = (deconvolved.astype(float) + share * (photo.astype(float) - deconvolved)).round()
    assert np.abs(halfway - expected).max() <= 1  # the bands (256 rows) join without a seam


def test_the_misfit_map_blends_region_levels_like_the_deconvolution():
    from darkdeblur.engines.dcp import misfit_map
    from darkdeblur.tiling import span_weights, tile_spans

    sharp = small_photo("coffee", (200, 150))
    kernel = np.zeros((9, 9), np.float32)
    kernel[4, :] = 1 / 9
    blurred = (blur(to_tensor(sharp), torch.from_numpy(kernel))[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    rows, cols = tile_spans(150, 96, 32), tile_spans(200, 96, 32)
    grid = np.zeros((len(rows), len(cols), 9, 9), np.float32)
    grid[0, 0] = kernel  # one region with its (right) kernel, the others without any
    levels = misfit_map(blurred, sharp, grid, rows, cols, 0.0)
    # the simple way: every region's level spread with the tiles' weights over the whole photo
    expected = np.zeros((150, 200), np.float32)
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            level = 1.0
            if i == j == 0:
                level = misfit_level(deconvolution_misfit(to_tensor(blurred[top:bottom, left:right]),
                                                          to_tensor(sharp[top:bottom, left:right]),
                                                          torch.from_numpy(kernel), 0.0))
            expected[top:bottom, left:right] += level * np.outer(span_weights(rows, i), span_weights(cols, j))
    assert np.abs(levels.astype(float) - expected * 255).max() <= 1
    assert levels[0, 0] < 60 and levels[-1, -1] == 255  # the right kernel explains its region


def test_the_dcp_engine_falls_back_by_misfit_and_the_hybrid_refines_the_plain_deconvolution():
    from darkdeblur.engines import DcpRestorer, DcpSettings
    from darkdeblur.engines.dcp import misfit_map, noise_sigma

    dcp = load_engine("dcp", device="cpu", kernel_size=9)
    assert dcp.settings.fallback is not None and dcp.describe()["misfit_fallback"]["width"] == 0.4
    assert load_engine("hybrid", device="cpu").dcp.settings.fallback is None
    sharp = small_photo("astronaut", (96, 96))
    photo = (blur(to_tensor(sharp), _streak(7))[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    plain = DcpRestorer(replace(dcp.settings, fallback=None)).restore(photo)
    assert plain.kernel is not None
    rows, cols = dcp.regions(96, 96)
    sigma = noise_sigma(photo)
    levels = misfit_map(photo, plain.image, plain.kernel, rows, cols, sigma**2)
    expected = dcp.settings.fallback.apply(photo, plain.image, levels, sigma)
    np.testing.assert_array_equal(dcp.restore(photo).image, expected)
    assert DcpSettings().fallback == dcp.settings.fallback


def test_the_rules_share_map_is_its_share_in_8_bits_band_by_band():
    from darkdeblur.blur.misfit import MisfitFallback

    rule = MisfitFallback()
    levels = np.random.default_rng(4).integers(0, 256, (37, 23)).astype(np.uint8)
    expected = np.rint(rule.share(levels.astype(np.float32) / 255.0, 0.01) * 255).astype(np.uint8)
    got = rule.share_map(levels, 0.01, band=8)  # bands that do not divide the height
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8 and 0 < int(got.max()) and int(got.min()) == 0
