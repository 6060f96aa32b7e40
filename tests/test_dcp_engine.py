"""The classical engine end to end: gains on known blur, guard rails, determinism, the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from darkdeblur.blur import blur, random_motion_kernel
from darkdeblur.cli import main
from darkdeblur.deblur_files import kernel_path
from darkdeblur.engines import load_engine
from darkdeblur.image_io import load_image
from darkdeblur.metrics import psnr
from darkdeblur.pixels import to_tensor, to_uint8


@pytest.fixture(scope="module")
def engine():
    return load_engine("dcp", device="cpu")


@pytest.fixture(scope="module")
def pair():
    sharp = data.astronaut()[30:318, 80:368]  # 288 x 288
    kernel = random_motion_kernel(np.random.default_rng(3), size=25, min_length=18, max_length=22,
                                  exposure=1.0, anxiety=0.005)
    return to_uint8(blur(to_tensor(sharp), torch.from_numpy(kernel))), sharp


@pytest.fixture(scope="module")
def restored(engine, pair):
    return engine.restore(pair[0])


def test_camera_shake_gains_over_3_db(restored, pair):
    blurred, sharp = pair
    assert restored.image.shape == blurred.shape and restored.image.dtype == np.uint8
    assert psnr(restored.image, sharp, 255) - psnr(blurred, sharp, 255) >= 3.0
    assert restored.warnings == []


def test_the_kernel_comes_back_per_region_summing_to_one(restored):
    assert restored.kernel.ndim == 4 and restored.kernel.shape[:2] == (1, 1)
    assert restored.kernel.min() >= 0 and restored.kernel[0, 0].sum() == pytest.approx(1.0, abs=1e-5)


def test_same_input_same_output(engine, pair, restored):
    np.testing.assert_array_equal(engine.restore(pair[0]).image, restored.image)


def test_a_flat_image_comes_back_unchanged_with_a_warning(engine):
    flat = np.full((200, 300, 3), 120, np.uint8)
    result = engine.restore(flat)
    np.testing.assert_array_equal(result.image, flat)
    assert result.kernel is None and len(result.warnings) == 1 and "flat image" in result.warnings[0]


def test_a_mostly_saturated_image_comes_back_unchanged(engine):
    photo = np.full((200, 300, 3), 255, np.uint8)
    photo[:60, :60] = data.astronaut()[:60, :60]
    result = engine.restore(photo)
    np.testing.assert_array_equal(result.image, photo)
    assert "clipped" in result.warnings[0]


def test_noisy_input_is_finite_and_no_worse_than_half_a_db(engine, pair):
    blurred, sharp = pair
    rng = np.random.default_rng(0)
    noisy = np.clip(blurred + rng.normal(0, 255 * 0.001 ** 0.5, blurred.shape), 0, 255).astype(np.uint8)
    out = engine.restore(noisy).image
    assert psnr(out, sharp, 255) >= psnr(noisy, sharp, 255) - 0.5


def test_a_grey_edge_gets_no_colour(engine):
    grey = np.repeat(data.camera()[100:356, 100:356, None], 3, axis=2)
    kernel = torch.zeros(9, 9)
    kernel[4, :] = 1 / 9
    blurred = to_uint8(blur(to_tensor(grey), kernel))
    out = engine.restore(blurred).image.astype(int)
    assert np.abs(out[..., 0] - out[..., 1]).max() <= 1 and np.abs(out[..., 0] - out[..., 2]).max() <= 1


def test_sixteen_bit_in_sixteen_bit_out(engine, pair):
    deep = pair[0].astype(np.uint16) * 257
    out = engine.restore(deep).image
    assert out.dtype == np.uint16 and out.shape == deep.shape


def test_cli_writes_the_photo_and_its_kernel_picture(tmp_path, pair, capsys):
    source = tmp_path / "shake.png"
    Image.fromarray(pair[0]).save(source)
    out = tmp_path / "out"
    code = main(["deblur", str(source), "-o", str(out), "--method", "dcp", "--save-kernel",
                 "--kernel-size", "25", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    assert load_image(out / "shake.png").rgb.shape == pair[0].shape
    with Image.open(kernel_path(out / "shake.png")) as picture:
        assert picture.size[0] >= 96 and np.asarray(picture).max() == 255


def test_an_even_kernel_size_is_a_usage_error(tmp_path, pair, capsys):
    source = tmp_path / "shake.png"
    Image.fromarray(pair[0]).save(source)
    assert main(["deblur", str(source), "-o", str(tmp_path / "o"), "--method", "dcp", "--kernel-size", "24"]) == 2
    assert "even" in capsys.readouterr().err


def test_the_engine_built_bare_is_the_engine_users_get():
    # Scripts that build DcpRestorer() directly must measure what `--method dcp` runs (L0 prior).
    from darkdeblur.engines import DcpRestorer, load_engine
    assert DcpRestorer().settings == load_engine("dcp", device="cpu").settings
    assert not DcpRestorer().settings.estimation.dark_channel
