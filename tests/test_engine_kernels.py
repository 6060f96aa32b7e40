"""The training-kernel cache: crops are reproducible, estimates are the engine's, runs continue."""
from __future__ import annotations

import json

import pytest
import torch

from darkdeblur.data.engine_kernels import (CHUNK, CropRecipe, draw_crop, estimate_training_kernels,
                                            read_kernel_cache)
from darkdeblur.data.folders import DataSources


@pytest.fixture()
def sources(sharp_folder, paired_folder) -> DataSources:
    return DataSources(pairs=[(paired_folder / "blur" / "astronaut.png", paired_folder / "sharp" / "astronaut.png")],
                       sharp=sorted(sharp_folder.glob("*.png")))


RECIPE = CropRecipe(count=3, crop=64, seed=1, kernel_canvas=15, min_length=6, max_length=10)


def test_the_same_index_gives_the_same_crop_and_blur(sources):
    first, again = draw_crop(RECIPE, sources, {}, 2), draw_crop(RECIPE, sources, {}, 2)
    torch.testing.assert_close(first["blurred"], again["blurred"], rtol=0, atol=0)
    assert first["blurred"].shape == (3, 64, 64) == first["sharp"].shape
    other = draw_crop(RECIPE, sources, {}, 1)
    assert not torch.equal(first["blurred"], other["blurred"])


def test_synthetic_crops_are_their_sharp_crop_blurred(sources):
    for index in range(6):
        crop = draw_crop(RECIPE, sources, {}, index)
        if crop["kernel"] is not None:
            assert crop["kernel"].sum() == pytest.approx(1.0, abs=1e-5)
            # blurred differs from sharp, but keeps its mean brightness
            assert float((crop["blurred"] - crop["sharp"]).abs().mean()) > 0.005
            assert float(crop["blurred"].mean()) == pytest.approx(float(crop["sharp"].mean()), abs=0.02)
            return
    pytest.fail("no synthetic crop among the first six")


def test_cache_holds_one_kernel_per_crop_and_continues(sources, tmp_path):
    out = tmp_path / "cache"
    assert estimate_training_kernels(sources, out, RECIPE, kernel_size=7, workers=1, progress=False) == 3
    record, meta, kernels, refused = read_kernel_cache(out)
    assert record["recipe"]["count"] == 3 and [m["index"] for m in meta] == [0, 1, 2]
    assert kernels.shape == (3, 7, 7) and refused.shape == (3,)
    for kernel, was_refused in zip(kernels, refused):
        assert kernel.min() >= 0
        assert kernel.sum() == pytest.approx(0.0 if was_refused else 1.0, abs=1e-2)  # float16 storage
    chunk = out / "chunk_00000.npz"
    stamp = chunk.stat().st_mtime_ns
    estimate_training_kernels(sources, out, RECIPE, kernel_size=7, workers=1, progress=False)
    assert chunk.stat().st_mtime_ns == stamp  # an existing chunk is not redone
    assert CHUNK >= 3


def test_a_cache_with_another_recipe_is_refused(sources, tmp_path):
    out = tmp_path / "cache"
    estimate_training_kernels(sources, out, RECIPE, kernel_size=7, workers=1, progress=False)
    other = CropRecipe(count=3, crop=64, seed=2, kernel_canvas=15, min_length=6, max_length=10)
    with pytest.raises(ValueError, match="another recipe"):
        estimate_training_kernels(sources, out, other, kernel_size=7, workers=1, progress=False)
    assert json.loads((out / "recipe.json").read_text())["recipe"]["seed"] == 1


def test_region_crops_are_the_engines_textured_window_of_their_region(sources):
    from darkdeblur.engines.dcp import DcpRestorer, DcpSettings
    from darkdeblur.pixels import to_uint8

    recipe = CropRecipe(count=3, crop=32, seed=1, kernel_canvas=15, min_length=6, max_length=10, region=72)
    finder = DcpRestorer(DcpSettings(crop=32))
    for index in range(4):
        crop = draw_crop(recipe, sources, {}, index)
        region, (row, col) = crop["around"], crop["at"]
        assert region.shape == (3, 72, 72) and crop["blurred"].shape == (3, 32, 32) == crop["sharp"].shape
        rows, cols = finder.textured_window(finder.luminance(to_uint8(region)))
        assert (rows.start, cols.start) == (row, col)
        torch.testing.assert_close(crop["blurred"], region[:, row:row + 32, col:col + 32], rtol=0, atol=0)
        # the crop is the region's most textured window: no other window has more edges
        energy = lambda w: float((w[:, 1:] - w[:, :-1]).abs().mean() + (w[:, :, 1:] - w[:, :, :-1]).abs().mean())  # noqa: E731
        assert energy(crop["blurred"]) >= max(energy(region[:, :32, :32]), energy(region[:, -32:, -32:])) - 1e-3


def test_random_window_crops_are_unchanged_by_the_region_field(sources):
    # region=0 (the first caches' recipe) must draw exactly the crops those caches were made from
    crop = draw_crop(RECIPE, sources, {}, 2)
    assert crop["at"] == (0, 0) and crop["around"] is crop["blurred"]
    assert CropRecipe().region == 0


def test_a_cache_written_before_the_region_field_still_continues(sources, tmp_path):
    out = tmp_path / "cache"
    estimate_training_kernels(sources, out, RECIPE, kernel_size=7, workers=1, progress=False)
    record = json.loads((out / "recipe.json").read_text())
    del record["recipe"]["region"]  # as the caches committed before the field existed
    (out / "recipe.json").write_text(json.dumps(record))
    assert estimate_training_kernels(sources, out, RECIPE, kernel_size=7, workers=1, progress=False) == 3
