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
