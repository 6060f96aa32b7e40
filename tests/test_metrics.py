import math

import numpy as np
import pytest

from darkdeblur.metrics import model_input, paper_view, psnr, reference, score


def test_psnr_of_identical_images_is_infinite():
    x = np.random.default_rng(0).random((8, 8, 3))
    assert math.isinf(psnr(x, x, 1.0))


def test_psnr_of_half_versus_point_six_is_twenty_db():
    assert psnr(np.full((4, 4), 0.5), np.full((4, 4), 0.6), 1.0) == pytest.approx(20.0, abs=1e-9)


def test_full_protocol_scores_uint8_at_full_resolution():
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    noisy = np.clip(sharp.astype(int) + rng.integers(-10, 11, sharp.shape), 0, 255).astype(np.uint8)
    s = score(noisy, sharp, "full")
    mse = np.mean((noisy.astype(float) - sharp) ** 2)
    assert s["psnr"] == pytest.approx(10 * np.log10(255**2 / mse))
    assert 0 < s["ssim"] < 1
    assert score(sharp, sharp, "full")["ssim"] == pytest.approx(1.0)


def test_paper_protocols_halve_gopro_frames_and_resize_to_360():
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert model_input(frame, "paper").shape == (360, 360, 3)  # resized before the method
    assert model_input(frame, "paper-after").shape == (360, 640, 3)  # resized after it
    assert model_input(frame, "full").shape == (720, 1280, 3)
    assert paper_view(model_input(frame, "paper-after")).shape == (360, 360, 3)
    # A frame larger than GOPRO's is halved once, not twice, on its way to 360x360.
    big = np.zeros((1440, 2560, 3), np.uint8)
    assert model_input(big, "paper-after").shape == (720, 1280, 3)
    assert reference(big, "paper").shape == (360, 360, 3)
    assert paper_view(np.zeros((360, 640, 3), np.uint8)).shape == (360, 360, 3)


def test_paper_protocol_resizes_bilinearly_before_the_method_and_scores_unrounded():
    # A 360x720 frame (not GOPRO-sized, so not halved) with a steep horizontal staircase: halving
    # its width bilinearly averages columns 2i and 2i + 1 exactly; bicubic would not.
    width = 720
    ramp = np.zeros((360, width, 3), np.uint8)
    ramp[:] = ((np.arange(width) * 37) % 256).astype(np.uint8)[None, :, None]
    given = model_input(ramp, "paper")
    truth = reference(ramp, "paper")
    assert given.dtype == np.uint8 and truth.dtype == np.float64
    # Output pixel i samples input x = (i + 0.5) * 2 - 0.5 = 2i + 0.5: halfway between 2i and 2i+1.
    src = ramp[0, :, 0].astype(np.float64)
    expected = (src[0:-1:2] + src[1::2]) / 2 / 255
    np.testing.assert_allclose(truth[0, :, 0], expected, atol=1e-12)
    assert np.abs(given[0, :, 0] - expected * 255).max() <= 0.5 + 1e-9  # rounded to uint8
    # The reference is not rounded, so the rounded input scores a finite PSNR against it, and a
    # float output equal to the reference is infinite.
    assert math.isfinite(score(given, truth, "paper")["psnr"])
    assert math.isinf(score(truth.copy(), truth, "paper")["psnr"])


def test_paper_protocol_reports_both_ssim_ranges():
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    other = np.clip(sharp.astype(int) + rng.integers(-30, 31, sharp.shape), 0, 255).astype(np.uint8)
    s = score(other, sharp, "paper")
    # The range-2 SSIM of the authors' old scikit-image is always the more flattering one.
    assert s["ssim_range2"] > s["ssim"]


def test_score_rejects_mismatched_or_float_images():
    with pytest.raises(ValueError, match="differ in shape"):
        score(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), "full")
    with pytest.raises(ValueError, match="uint8"):
        score(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), "full")
    with pytest.raises(ValueError, match="uint8"):
        score(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), "paper-after")
    with pytest.raises(ValueError, match="unknown protocol"):
        score(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), "cvpr")


def test_each_protocol_gives_the_method_its_own_frame_size(tmp_path):
    from darkdeblur.evaluate import evaluate_pairs
    from PIL import Image
    seen = []
    frame = np.random.default_rng(3).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    for sub in ("blur", "sharp"):
        (tmp_path / sub).mkdir()
        Image.fromarray(frame).save(tmp_path / sub / "f.png")

    def identity(rgb):
        seen.append(rgb.shape)
        return rgb

    pair = [(tmp_path / "blur" / "f.png", tmp_path / "sharp" / "f.png")]
    summary = evaluate_pairs(identity, pair, "paper-after", progress=False)
    assert seen == [(360, 640, 3)]
    assert math.isinf(summary["psnr"])
    summary = evaluate_pairs(identity, pair, "paper", progress=False)
    assert seen[-1] == (360, 360, 3)
    # Only the 8-bit rounding of the method's input separates it from the unrounded reference.
    assert 50 < summary["psnr"] < math.inf
    evaluate_pairs(identity, pair, "full", progress=False)
    assert seen[-1] == (720, 1280, 3)


def test_training_and_paper_protocol_halve_the_same_frames(tmp_path):
    from PIL import Image

    from darkdeblur.data.stream import _prepare
    from darkdeblur.metrics import model_input
    rng = np.random.default_rng(4)
    for shape, halved in [((720, 1280, 3), (360, 640, 3)), ((1280, 720, 3), (640, 360, 3)),
                          ((719, 1280, 3), (719, 1280, 3))]:
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(frame).save(tmp_path / "f.png")
        np.testing.assert_array_equal(model_input(frame, "paper-after"),
                                      _prepare(tmp_path / "f.png", True))
        assert model_input(frame, "paper-after").shape == halved
        assert model_input(frame, "full") is frame
