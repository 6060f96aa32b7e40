"""The hybrid engine: its training crops, its refiner's start, its training, and the engine."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from darkdeblur.config import ModelConfig, hybrid
from darkdeblur.data.engine_kernels import CropRecipe, estimate_training_kernels, read_kernel_cache
from darkdeblur.data.folders import DataSources
from darkdeblur.data.refiner_set import (RefinerCrops, RefinerStream, build_refiner_set, deconvolve_crop,
                                         dihedral, refiner_validation)
from darkdeblur.engines import DcpRestorer, HybridRestorer, load_engine
from darkdeblur.models import build_generator, init_normal
from darkdeblur.trainer import train

from conftest import small_photo

REFINER = ModelConfig(base_channels=8, max_channels=16, depth=3, kernel_size=3, dropout=0.0,
                      global_residual=True, full_res_skip=True, upsample="resize_conv",
                      inputs="blurred+deconvolved", fallback_mix=True)


def test_an_untrained_refiner_returns_the_deconvolution_exactly():
    torch.manual_seed(0)
    refiner = build_generator(REFINER)
    init_normal(refiner, 0.02)
    refiner.zero_init_output()
    refiner.eval()
    blurred, deconvolved = torch.rand(2, 3, 40, 48), torch.rand(2, 3, 40, 48)
    with torch.no_grad():
        out = refiner(torch.cat([blurred, deconvolved], 1))
    torch.testing.assert_close(out, deconvolved, rtol=0, atol=1e-6)


def test_a_grey_correction_changes_no_colour():
    refiner = build_generator(replace(REFINER, grey_correction=True))
    init_normal(refiner, 0.5)  # a large random correction
    refiner.eval()
    grey = torch.rand(1, 1, 32, 32).expand(1, 3, 32, 32)
    with torch.no_grad():
        out = refiner(torch.cat([grey, grey.flip(-1)], 1))
    assert float((out - out.mean(1, keepdim=True)).abs().max()) < 1e-6  # every channel equal
    assert float((out - grey.flip(-1)).abs().max()) > 0.01  # yet it changed the image


def test_the_fallback_share_moves_the_output_to_the_blurred_photo():
    refiner = build_generator(REFINER)
    refiner.zero_init_output()
    last = [m for m in refiner.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.out_channels == 4  # three of correction, one share
    with torch.no_grad():
        last.bias[3] = 1.0  # share 1 everywhere: all the way back to the blurred photo
        refiner.eval()
        blurred, deconvolved = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
        out = refiner(torch.cat([blurred, deconvolved], 1))
    torch.testing.assert_close(out, blurred, rtol=0, atol=1e-6)


def test_the_hybrid_preset_is_the_papers_l1_and_adversary_on_a_seven_channel_refiner_without_the_dark_term():
    cfg = hybrid()
    assert cfg.model.input_channels == 7 and cfg.model.inputs.endswith("+misfit")
    assert cfg.model.fallback_mix and cfg.model.global_residual and cfg.model.correction
    assert cfg.model.grey_correction  # brightness only: no colour fringes
    # the paper's ablation on this refiner measured the dark-channel term costing PSNR (RESULTS.md)
    assert (cfg.loss.lambda_l1, cfg.loss.lambda_dark) == (100.0, 0.0) and cfg.loss.adversarial == "bce"
    assert 0 < cfg.loss.lambda_adv < 1  # the paper's 1 lowered every dev number (training notes)
    assert cfg.train.generator_steps == 2 and cfg.train.critic_steps == 1
    assert cfg.train.max_noise_variance == 0.0  # the crops carry their noise from before estimation


def test_dihedral_gives_eight_different_invertible_views():
    crop = np.arange(3 * 4 * 4 * 3).reshape(3, 4, 4, 3)
    views = [dihedral(crop, code) for code in range(8)]
    assert len({v.tobytes() for v in views}) == 8
    for view in views:  # the same pixels, moved; the three images move together
        assert sorted(view.ravel()) == sorted(crop.ravel())
        np.testing.assert_array_equal(view[1] - view[0], np.full_like(view[0], 48))


def test_deconvolving_with_a_delta_kernel_keeps_the_crop_and_no_kernel_is_the_crop():
    photo = small_photo("astronaut", (64, 64))
    delta = np.zeros((7, 7), np.float32)
    delta[3, 3] = 1
    assert np.abs(deconvolve_crop(photo, delta).astype(int) - photo).mean() < 2.0
    np.testing.assert_array_equal(deconvolve_crop(photo, None), photo)


@pytest.fixture(scope="module")
def refiner_set(tmp_path_factory, sharp_folder, paired_folder):
    """A kernel cache of 6 crops of 64 px and its refiner set."""
    root = tmp_path_factory.mktemp("refiner")
    sources = DataSources(pairs=[(paired_folder / "blur" / "astronaut.png", paired_folder / "sharp" / "astronaut.png")],
                          sharp=sorted(sharp_folder.glob("*.png")))
    recipe = CropRecipe(count=6, crop=64, seed=3, kernel_canvas=15, min_length=6, max_length=12)
    estimate_training_kernels(sources, root / "cache", recipe, kernel_size=9, workers=1, progress=False)
    build_refiner_set(root / "cache", root / "set", workers=1, progress=False)
    return root


def test_refiner_crops_hold_the_engines_deconvolution(refiner_set):
    _, _, kernels, refused = read_kernel_cache(refiner_set / "cache")
    crops = RefinerCrops(refiner_set / "set")
    assert len(crops) == 6 and crops[0].shape == (3, 64, 64, 3) and crops[0].dtype == np.uint8
    assert crops.training == [0, 1, 2] and crops.held_out == [3, 4, 5]  # at most half is held out
    for index in range(len(crops)):
        blurred, deconvolved, _ = np.asarray(crops[index]).astype(int)
        if refused[index]:
            np.testing.assert_array_equal(deconvolved, blurred)
        else:
            np.testing.assert_array_equal(deconvolved, deconvolve_crop(np.asarray(crops[index][0]), kernels[index]))
    assert not all(refused)


def test_region_crops_are_deconvolved_inside_their_region(tmp_path, sharp_folder):
    from darkdeblur.data.engine_kernels import draw_crop
    from darkdeblur.data.refiner_set import CONTEXT, deconvolve_in_context
    from darkdeblur.pixels import to_uint8

    sources = DataSources(sharp=sorted(sharp_folder.glob("*.png")))
    recipe = CropRecipe(count=4, crop=56, seed=5, kernel_canvas=15, min_length=6, max_length=12,
                        region=80, pair_fraction=0.0)
    estimate_training_kernels(sources, tmp_path / "cache", recipe, kernel_size=9, workers=1, progress=False)
    build_refiner_set(tmp_path / "cache", tmp_path / "set", workers=1, progress=False)
    crops = RefinerCrops(tmp_path / "set")
    assert crops.record["context"] == CONTEXT and crops[0].shape == (3, 56, 56, 3)
    _, _, kernels, refused = read_kernel_cache(tmp_path / "cache")
    checked = 0
    for index in range(4):
        if refused[index]:
            continue
        drawn = draw_crop(recipe, sources, {}, index)
        blurred, deconvolved, sharp = np.asarray(crops[index])
        np.testing.assert_array_equal(blurred, to_uint8(drawn["blurred"]))
        np.testing.assert_array_equal(sharp, to_uint8(drawn["sharp"]))
        np.testing.assert_array_equal(deconvolved, deconvolve_in_context(drawn, kernels[index], 56))
        # with its neighbours, the crop's deconvolution is not the one of the crop alone
        assert not np.array_equal(deconvolved, deconvolve_crop(blurred, kernels[index]))
        checked += 1
    assert checked


def test_a_refiner_set_continues_and_refuses_another_cache(refiner_set, tmp_path):
    chunk = next((refiner_set / "set").glob("crops_*.npy"))
    stamp = chunk.stat().st_mtime_ns
    build_refiner_set(refiner_set / "cache", refiner_set / "set", workers=1, progress=False)
    assert chunk.stat().st_mtime_ns == stamp
    with pytest.raises(FileNotFoundError, match="not a complete refiner set"):
        RefinerCrops(tmp_path)


def test_the_stream_never_draws_held_out_crops_and_resumes_exactly(refiner_set):
    crops = RefinerCrops(refiner_set / "set")
    stream = RefinerStream(crops, size=32, batch_size=4, seed=0)
    held = {np.asarray(crops[i]).tobytes() for i in crops.held_out}
    stream.next()
    state = stream.state_dict()
    first = stream.next().pixels
    stream.load_state_dict(state)
    torch.testing.assert_close(stream.next().pixels, first, rtol=0, atol=0)
    assert first.shape == (4, 3, 3, 32, 32)
    inputs, sharp = refiner_validation(crops)
    assert inputs.shape == (3, 6, 64, 64) and sharp.shape == (3, 3, 64, 64)

    class Recording(RefinerCrops):
        def __getitem__(self, index):
            drawn.append(index)
            return super().__getitem__(index)

    drawn: list[int] = []
    recording = Recording(refiner_set / "set")
    stream = RefinerStream(recording, size=32, batch_size=4, seed=0)
    drawn.clear()
    for _ in range(10):
        stream.next()
    # every crop is drawn (an epoch is 3 crops), and never a held-out one
    assert set(drawn) == set(crops.training) and not set(drawn) & set(crops.held_out)


def test_a_run_trains_on_several_sets_and_validates_on_the_first(refiner_set):
    build_refiner_set(refiner_set / "cache", refiner_set / "again", workers=1, progress=False)
    first = RefinerCrops(refiner_set / "set")
    both = RefinerCrops(refiner_set / "set", refiner_set / "again")
    assert len(both) == 2 * len(first) and both.held_out == first.held_out
    # the second set's crops of held-out indices are not trained on either
    assert both.training == first.training + [len(first) + i for i in first.training]
    np.testing.assert_array_equal(both[len(first)], first[0])


def train_tiny_refiner(model: ModelConfig, sets: list, out) -> dict:
    """Two steps of the hybrid preset's losses on a tiny refiner (seconds): its summary."""
    base = hybrid()
    cfg = replace(base, model=model,
                  discriminator=replace(base.discriminator, channels=(8, 16), strides=(2, 2)),
                  loss=replace(base.loss, adv_warmup_steps=1),
                  train=replace(base.train, steps=2, batch_size=2, crop=32, checkpoint_every=2,
                                validate_every=2, log_every=1))
    return train(cfg, sets, out, device="cpu", progress=False)


@pytest.fixture(scope="module")
def refiner_weights(refiner_set):
    summary = train_tiny_refiner(REFINER, [refiner_set / "set"], refiner_set / "run")
    assert summary["steps"] == 2 and summary["adversarial_active"]
    return refiner_set / "run" / "generator.safetensors"


def test_the_hybrid_engine_restores_a_photo_through_the_interface(refiner_weights):
    engine = load_engine("hybrid", weights=refiner_weights, device="cpu", kernel_size=9)
    assert isinstance(engine, HybridRestorer)
    photo = small_photo("astronaut", (96, 96))
    result = engine.restore(photo)
    assert result.image.shape == photo.shape and result.image.dtype == np.uint8
    first = engine.dcp.restore(photo)
    if first.kernel is not None:  # the refiner ran on the deconvolution, not on the photo
        assert result.kernel is not None
        expected = engine.refine_array(photo, first.image)
        np.testing.assert_array_equal(result.image, expected)
    assert engine.describe()["method"] == "hybrid"


def test_tiled_refinement_matches_whole_refinement(refiner_weights):
    whole = load_engine("hybrid", weights=refiner_weights, device="cpu", tile=0)
    tiled = load_engine("hybrid", weights=refiner_weights, device="cpu", tile=64, overlap=32)
    rng = np.random.default_rng(0)
    photo = small_photo("coffee", (150, 130))
    deconvolved = np.clip(photo.astype(int) + rng.integers(-20, 20, photo.shape), 0, 255).astype(np.uint8)
    difference = np.abs(whole.refine_array(photo, deconvolved).astype(int) - tiled.refine_array(photo, deconvolved))
    assert difference.max() <= 1


def test_a_flat_photo_is_returned_unchanged_with_the_reason(refiner_weights):
    engine = load_engine("hybrid", weights=refiner_weights, device="cpu")
    flat = np.full((80, 80, 3), 120, np.uint8)
    result = engine.restore(flat)
    np.testing.assert_array_equal(result.image, flat)
    assert result.warnings and "flat" in result.warnings[0]


def test_weights_of_the_wrong_kind_are_refused_by_name(refiner_weights, tiny_weights):
    with pytest.raises(ValueError, match="use it with --method gan"):
        load_engine("hybrid", weights=tiny_weights, device="cpu")
    with pytest.raises(ValueError, match="use it with --method hybrid"):
        load_engine("gan", weights=refiner_weights, device="cpu")


def test_a_hybrid_run_needs_a_refiner_set(sharp_folder, tmp_path):
    from darkdeblur.train_setup import TrainingError
    with pytest.raises(TrainingError, match="refiner set"):
        train(replace(hybrid(), train=replace(hybrid().train, steps=1)), [sharp_folder], tmp_path / "run",
              device="cpu", progress=False)



def test_a_remembered_engine_restores_each_photo_once(tmp_path):
    from darkdeblur.engines import Restoration, Restorer
    from darkdeblur.engines.memo import MemoRestorer

    class Counting(Restorer):
        method = "counting"
        calls = 0

        def restore_checked(self, rgb):
            Counting.calls += 1
            return Restoration(255 - rgb, np.ones((1, 1, 3, 3), np.float32) / 9, ["note"])

    memo = MemoRestorer(Counting(), tmp_path)
    photo, other = small_photo("astronaut", (32, 32)), small_photo("coffee", (32, 32))
    first = memo.restore(photo)
    again = memo.restore(photo)
    assert Counting.calls == 1
    np.testing.assert_array_equal(again.image, 255 - photo)
    np.testing.assert_array_equal(again.kernel, first.kernel)
    assert again.warnings == ["note"]
    memo.restore(other)
    assert Counting.calls == 2  # another photo is another entry


def test_weights_choose_their_own_engine_when_no_method_is_given(refiner_weights, tiny_weights, tmp_path):
    from darkdeblur.engines import DEFAULT_METHOD, GanRestorer, resolve_method
    assert resolve_method(None, refiner_weights) == "hybrid"
    assert resolve_method(None, tiny_weights) == "gan"
    assert resolve_method("dcp", refiner_weights) == "dcp"  # an explicit method is kept
    assert resolve_method(None, None) == DEFAULT_METHOD
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    assert resolve_method(None, broken) == DEFAULT_METHOD  # loading it will say what is wrong
    assert isinstance(load_engine(weights=refiner_weights, device="cpu"), HybridRestorer)
    assert isinstance(load_engine(weights=tiny_weights, device="cpu"), GanRestorer)
