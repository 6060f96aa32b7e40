"""A refiner that also sees the photo deconvolved at a fraction of the prior's weight."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from darkdeblur.checkpoint import export_weights, load_generator
from darkdeblur.config import WEAK_FACTOR, ModelConfig, RunConfig
from darkdeblur.data.engine_kernels import read_kernel_cache
from darkdeblur.data.refiner_set import (WEAK_PLAN, RefinerCrops, build_weak_deconvolutions, deconvolve_crop,
                                         refiner_validation)
from darkdeblur.engines import load_engine
from darkdeblur.models import build_generator
from darkdeblur.train_setup import TrainingError
from darkdeblur.trainer import warm_start

from conftest import small_photo
from test_hybrid import refiner_set, train_tiny_refiner  # noqa: F401  (6 crops)
from test_misfit import MISFIT_REFINER, misfit_weights  # noqa: F401

WEAK_REFINER = replace(MISFIT_REFINER, inputs="blurred+deconvolved+misfit+weak")


def test_a_weak_refiner_sees_ten_channels_and_records_its_factor():
    assert WEAK_REFINER.input_channels == 10 and WEAK_REFINER.sees_weak and WEAK_REFINER.sees_misfit
    assert not WEAK_REFINER.sees_fallback and not MISFIT_REFINER.sees_weak
    assert ModelConfig().weak_factor == WEAK_FACTOR and 0 < WEAK_FACTOR < 1


@pytest.fixture(scope="module")
def weak_set(refiner_set):  # noqa: F811
    build_weak_deconvolutions(refiner_set / "set", WEAK_FACTOR, workers=1, progress=False)
    return refiner_set / "set"


def test_weak_deconvolutions_are_the_engines_at_a_fraction_of_the_weight(weak_set, refiner_set, tmp_path):  # noqa: F811
    _, _, kernels, refused = read_kernel_cache(refiner_set / "cache")
    crops = RefinerCrops(weak_set, weak=WEAK_FACTOR)
    assert crops[0].shape == (4, 64, 64, 3)
    for index in range(len(crops)):
        blurred, deconvolved, _, weak = np.asarray(crops[index])
        if refused[index]:
            np.testing.assert_array_equal(weak, blurred)
            continue
        np.testing.assert_array_equal(weak, deconvolve_crop(blurred, kernels[index], factor=WEAK_FACTOR))
        assert not np.array_equal(weak, deconvolved)
    # at the full weight they are the set's own deconvolutions, bit for bit
    full = tmp_path / "full"
    shutil.copytree(weak_set, full, ignore=shutil.ignore_patterns("weak*"))
    build_weak_deconvolutions(full, 1.0, workers=1, progress=False)
    same = RefinerCrops(full, weak=1.0)
    for index in range(len(same)):
        np.testing.assert_array_equal(same[index][3], same[index][1])


def test_a_set_without_them_or_with_another_factor_is_refused_by_name(weak_set, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(weak_set, bare, ignore=shutil.ignore_patterns("weak*"))
    with pytest.raises(FileNotFoundError, match=r"bare: no weak deconvolutions.*--weak-deconvolution"):
        RefinerCrops(bare, weak=WEAK_FACTOR)
    with pytest.raises(ValueError, match="0.3 of the weight, this refiner's 0.5"):
        RefinerCrops(weak_set, weak=0.5)
    with pytest.raises(ValueError, match="at 0.3 of the weight for 6 crops, not 0.5"):
        build_weak_deconvolutions(weak_set, 0.5, workers=1, progress=False)
    with pytest.raises(ValueError, match=r"factor is in \(0, 1\], got 0"):
        build_weak_deconvolutions(bare, 0.0, workers=1, progress=False)
    # an interrupted build is continued only with the factor it was started with
    (bare / WEAK_PLAN).write_text(json.dumps({"factor": 0.5, "crops": 6}))
    with pytest.raises(ValueError, match="at 0.5 of the weight"):
        build_weak_deconvolutions(bare, WEAK_FACTOR, workers=1, progress=False)


def test_batches_put_the_weak_deconvolution_between_the_misfit_and_the_deconvolution(weak_set):
    crops = RefinerCrops(weak_set, misfit=True, weak=WEAK_FACTOR)
    inputs, sharp = refiner_validation(crops)
    held = torch.from_numpy(np.stack([np.asarray(crops[i]) for i in crops.held_out])).permute(0, 1, 4, 2, 3) / 255.0
    assert inputs.shape[1] == 10
    torch.testing.assert_close(inputs[:, :3], held[:, 0])
    torch.testing.assert_close(inputs[:, 3, 0, 0], torch.from_numpy(crops.levels[crops.held_out]))
    torch.testing.assert_close(inputs[:, 4:7], held[:, 3])
    torch.testing.assert_close(inputs[:, 7:], held[:, 1])
    torch.testing.assert_close(sharp, held[:, 2])


def test_a_weak_refiner_started_from_a_misfit_one_computes_what_it_did(misfit_weights):  # noqa: F811
    old, _ = load_generator(misfit_weights)
    new = build_generator(WEAK_REFINER)
    warm_start(new, WEAK_REFINER, str(misfit_weights))
    old.eval(), new.eval()
    torch.manual_seed(0)
    blurred, level, deconvolved = torch.rand(1, 3, 40, 48), torch.full((1, 1, 40, 48), 0.3), torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        before = old(torch.cat([blurred, level, deconvolved], 1))
        after = new(torch.cat([blurred, level, torch.rand(1, 3, 40, 48), deconvolved], 1))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_a_weak_refiner_cannot_start_from_one_whose_inputs_it_does_not_extend(misfit_weights, tmp_path):  # noqa: F811
    rule = build_generator(replace(MISFIT_REFINER, inputs="blurred+deconvolved+misfit+fallback"))
    cfg = replace(RunConfig(preset="hybrid"), model=replace(MISFIT_REFINER, inputs="blurred+deconvolved+misfit+fallback"))
    export_weights(rule, cfg, tmp_path / "rule.safetensors")
    # the rule's share channel would be read as the weak deconvolution's red
    with pytest.raises(TrainingError, match="'blurred\\+deconvolved\\+misfit\\+fallback' cannot start one"):
        warm_start(build_generator(WEAK_REFINER), WEAK_REFINER, str(tmp_path / "rule.safetensors"))


def test_the_hybrid_engine_gives_a_weak_refiner_the_weak_deconvolution(weak_set, refiner_set):  # noqa: F811
    summary = train_tiny_refiner(WEAK_REFINER, [weak_set], refiner_set / "weak-run")
    assert summary["steps"] == 2
    engine = load_engine("hybrid", weights=refiner_set / "weak-run" / "generator.safetensors", device="cpu",
                         kernel_size=9)
    assert engine.sees_weak
    photo = small_photo("astronaut", (96, 96))
    first = engine.dcp.restore(photo)
    assert first.kernel is not None
    level, weak = engine.maps(photo, first.image, first.kernel)
    # the grid's kernels at the full weight give the engine's own deconvolution back
    np.testing.assert_array_equal(engine.dcp.deconvolve_grid(photo, first.kernel, 1.0), first.image)
    np.testing.assert_array_equal(weak, engine.dcp.deconvolve_grid(photo, first.kernel, WEAK_FACTOR))
    assert weak.shape == photo.shape and np.abs(weak.astype(int) - first.image).mean() > 0.5
    # what training saw: the crop's weak deconvolution (one region here, so one kernel)
    assert first.kernel.shape[:2] == (1, 1)
    trained_on = deconvolve_crop(photo, first.kernel[0, 0], factor=WEAK_FACTOR)
    assert np.abs(weak.astype(int) - trained_on).max() <= 1
    # in tiles, the weak deconvolution is cut as the photo is
    tiled = load_engine("hybrid", weights=refiner_set / "weak-run" / "generator.safetensors", device="cpu",
                        kernel_size=9, tile=32, overlap=16)
    assert np.abs(tiled.refine_array(photo, first.image, level, weak).astype(int)
                  - engine.refine_array(photo, first.image, level, weak)).max() <= 1
    result = engine.restore(photo)
    np.testing.assert_array_equal(result.image, engine.refine_array(photo, first.image, level, weak))
    # the weak deconvolution is an input: another one changes the output
    assert not np.array_equal(result.image, engine.refine_array(photo, first.image, level, first.image))


def test_make_data_writes_a_refiner_set_with_its_weak_deconvolutions(refiner_set, tmp_path, capsys):  # noqa: F811
    from darkdeblur.cli import main

    out = tmp_path / "set"
    assert main(["make-data", "--refiner-set", str(refiner_set / "cache"), "--out", str(out),
                 "--weak-deconvolution", "--workers", "1"]) == 0
    assert "6 refiner crops (blurred, deconvolved, sharp), and their deconvolution at 0.3 of the weight" in \
        capsys.readouterr().out
    assert RefinerCrops(out, weak=WEAK_FACTOR)[0].shape == (4, 64, 64, 3)
    other = tmp_path / "other"
    assert main(["make-data", "--refiner-set", str(refiner_set / "cache"), "--out", str(other), "--workers", "1"]) == 0
    build_weak_deconvolutions(other, 0.5, workers=1, progress=False)
    assert main(["make-data", "--refiner-set", str(refiner_set / "cache"), "--out", str(other),
                 "--weak-deconvolution", "--workers", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars of the set
    assert error.startswith(f"darkdeblur make-data: {other}: holds weak deconvolutions at 0.5 of the weight")


def test_a_remembered_engine_remembers_each_weak_deconvolution_apart(tmp_path):
    from darkdeblur.engines.memo import MemoRestorer

    memo = MemoRestorer(load_engine("dcp", device="cpu", kernel_size=9), tmp_path)
    photo = small_photo("astronaut", (96, 96))
    first = memo.restore_checked(photo)
    assert first.kernel is not None
    weak = memo.deconvolve_grid(photo, first.kernel, WEAK_FACTOR)
    assert len(list(tmp_path.glob("*.grid-*.npy"))) == 1
    np.testing.assert_array_equal(memo.deconvolve_grid(photo, first.kernel, WEAK_FACTOR), weak)
    np.testing.assert_array_equal(weak, memo.engine.deconvolve_grid(photo, first.kernel, WEAK_FACTOR))
    assert not np.array_equal(memo.deconvolve_grid(photo, first.kernel, 1.0), weak)
    assert len(list(tmp_path.glob("*.grid-*.npy"))) == 2
    with pytest.raises(ValueError, match="a kernel grid of 2x1 regions"):
        memo.engine.deconvolve_grid(photo, np.concatenate([first.kernel, first.kernel]), WEAK_FACTOR)
