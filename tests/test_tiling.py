"""Tiled inference: spans, blending weights, and tiled == whole-image results."""
import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from darkdeblur.config import tiny
from darkdeblur.engines import GanRestorer
from darkdeblur.models import build_generator
from darkdeblur.pixels import quantize, to_tensor
from darkdeblur.tiling import ramp, restore_tiled, span_weights, tile_spans


@pytest.fixture(scope="module")
def photo_720p() -> np.ndarray:
    return np.asarray(Image.fromarray(skdata.astronaut()).resize((1280, 720), Image.BICUBIC))


@pytest.fixture(scope="module")
def tiny_generator() -> torch.nn.Module:
    torch.manual_seed(0)
    generator = build_generator(tiny().model).eval()
    for m in generator.modules():  # running statistics away from (0, 1), as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return generator


def _whole(restore, pixels: np.ndarray) -> np.ndarray:
    return quantize(restore(to_tensor(pixels))[0].permute(1, 2, 0).numpy(), pixels.dtype)


@pytest.mark.parametrize("length", [1, 255, 256, 257, 640, 1000, 1280, 4000])
def test_spans_cover_the_axis_aligned_and_never_three_deep(length):
    spans = tile_spans(length, 256, 64)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(start % 64 == 0 for start, _ in spans)  # aligned like tile and overlap
    assert all(end - start <= 256 for start, end in spans)
    for (s0, e0), (s1, e1) in itertools.pairwise(spans):
        assert s1 < e0  # neighbours overlap: no gap
        assert e0 - s1 <= 64 and e1 - s1 > 64  # each tile adds new pixels beyond the overlap
    for (_, e0), (s2, _) in zip(spans, spans[2:]):
        assert e0 <= s2


def test_spans_reject_overlap_over_half_a_tile():
    with pytest.raises(ValueError, match="twice the overlap"):
        tile_spans(1000, 100, 64)


@pytest.mark.parametrize("length,tile,overlap",
                         [(1000, 256, 64), (777, 128, 32), (4000, 768, 64), (300, 96, 48)])
def test_blending_weights_sum_to_one(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    total = np.zeros(length)
    for i, (start, end) in enumerate(spans):
        weights = span_weights(spans, i)
        assert weights.min() >= 0 and weights.max() <= 1
        total[start:end] += weights
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_ramp_is_zero_in_the_margin_and_smooth():
    weights = ramp(64)
    assert (weights[:16] == 0).all() and (weights[-16:] == 1).all()
    assert (np.diff(weights) >= 0).all() and np.abs(np.diff(weights)).max() < 0.06


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_identity_restore_gives_back_the_input_exactly(dtype):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, (300, 410, 3)).astype(dtype)
    restored = restore_tiled(lambda x: x, pixels, 128, 32)
    assert restored.dtype == dtype
    np.testing.assert_array_equal(restored, pixels)


def test_pointwise_restore_tiles_exactly():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (333, 517, 3)).astype(np.uint8)

    def curve(x):
        return x.sqrt()
    np.testing.assert_array_equal(restore_tiled(curve, pixels, 128, 64), _whole(curve, pixels))


def test_tiled_matches_whole_image_on_720p(photo_720p, tiny_generator):
    """Within 1 grey level on at least 99.9% of pixels (here every pixel)."""
    def restore(x):
        with torch.inference_mode():
            return tiny_generator(x).clamp(0, 1)
    whole = _whole(restore, photo_720p).astype(int)
    tiled = restore_tiled(restore, photo_720p, 256, 64).astype(int)
    within_one = np.mean(np.abs(tiled - whole) <= 1)
    assert within_one >= 0.999
    # Without overlap the cut edges show: the blending is what makes the tiles seamless.
    hard_cut = restore_tiled(restore, photo_720p, 256, 0).astype(int)
    assert np.mean(np.abs(hard_cut - whole) <= 1) < 0.999


def test_deblurrer_tiles_only_images_over_the_budget(tiny_generator):
    seen = []

    class Recorder(torch.nn.Module):
        multiple = tiny_generator.multiple

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return x

    model = GanRestorer(Recorder(), tiny(), torch.device("cpu"), tile=100, overlap=20)
    assert (model.tile, model.overlap) == (112, 32)  # rounded up to multiples of 16
    small = np.zeros((112, 112, 3), np.uint8)
    assert model(small).shape == small.shape and seen == [(112, 112)]
    seen.clear()
    large = np.random.default_rng(0).integers(0, 256, (300, 200, 3)).astype(np.uint8)
    np.testing.assert_array_equal(model(large), large)
    assert len(seen) == 4 * 3
    # Every tile is a multiple of 16 except where it meets the bottom or right edge.
    assert all(h % 16 == 0 or h < 112 for h, _ in seen) and all(w % 16 == 0 or w < 112 for _, w in seen)
    seen.clear()
    GanRestorer(Recorder(), tiny(), torch.device("cpu"), tile=0)(large)
    assert seen == [(300, 200)]  # tile=0: always the whole image


def test_deblurrer_rejects_impossible_settings(tiny_generator):
    with pytest.raises(ValueError, match="twice the overlap"):
        GanRestorer(tiny_generator, tiny(), torch.device("cpu"), tile=64, overlap=64)
    with pytest.raises(ValueError, match="--half needs a GPU"):
        GanRestorer(tiny_generator, tiny(), torch.device("cpu"), half=True)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        GanRestorer(tiny_generator, tiny(), torch.device("cpu"))(np.zeros((8, 8, 3), np.float32))


def test_the_engine_checks_tile_overlap_and_half_once_as_usage_errors(tiny_weights):
    from darkdeblur.engines import TileSettingsError, load_engine
    # The rule the CLI applies (tile at least twice the overlap, as asked and once rounded to the
    # model's multiple) is the engine's own, so the Python API refuses what the CLI refuses.
    with pytest.raises(TileSettingsError, match=r"--tile 100 must be at least twice the overlap \(64\)"):
        load_engine("gan", device="cpu", tile=100)
    with pytest.raises(TileSettingsError, match="--half needs a GPU"):
        load_engine("gan", tiny_weights, device="cpu", half=True)


def test_a_720p_photo_runs_whole_with_the_device_tile_but_an_explicit_tile_is_kept(tiny_weights, monkeypatch):
    import darkdeblur.engines.gan as gan
    from darkdeblur.engines import load_engine
    tiled = []
    monkeypatch.setattr(gan, "restore_tiled", lambda *args: tiled.append(args[2]) or args[1])
    photo = np.zeros((720, 1280, 3), np.uint8)
    load_engine("gan", tiny_weights, device="cpu").restore_array(photo)  # CPU tile 768: 720p still whole
    assert tiled == []  # tiling a 720p photo cost a quarter more time (overlaps and blending)
    load_engine("gan", tiny_weights, device="cpu", tile=512).restore_array(photo)
    assert tiled == [512]
