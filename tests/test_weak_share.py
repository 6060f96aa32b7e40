"""A refiner that outputs a per-pixel share of the way from the deconvolution to the weak one."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from darkdeblur.checkpoint import load_generator
from darkdeblur.cli import main
from darkdeblur.engines import load_engine
from darkdeblur.models import build_generator
from darkdeblur.trainer import warm_start

from conftest import small_photo
from test_hybrid import refiner_set, train_tiny_refiner  # noqa: F401  (6 crops)
from test_misfit import MISFIT_REFINER, misfit_weights  # noqa: F401
from test_weak_input import WEAK_REFINER, weak_set  # noqa: F401

WEAK_SHARE_REFINER = replace(WEAK_REFINER, weak_mix=True)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(seed)
    blurred, weak, deconvolved = (torch.rand(1, 3, 40, 48) * 0.6 + 0.2 for _ in range(3))
    return blurred, torch.full((1, 1, 40, 48), 0.3), weak, deconvolved


def _last_bias(generator: torch.nn.Module) -> torch.Tensor:
    return [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d)][-1].bias


def test_the_weak_share_moves_from_the_deconvolution_toward_the_weak_one():
    generator = build_generator(WEAK_SHARE_REFINER)
    assert generator.out_channels == 5  # correction (3), weak share s, fall-back share a
    generator.zero_init_output()
    generator.eval()
    blurred, level, weak, deconvolved = _inputs()
    x = torch.cat([blurred, level, weak, deconvolved], 1)
    with torch.no_grad():
        torch.testing.assert_close(generator(x), deconvolved, rtol=0, atol=1e-6)  # starts as the deconvolution
        _last_bias(generator)[3] = 0.25  # s = 0.25 everywhere, a = 0
        torch.testing.assert_close(generator(x), deconvolved + 0.25 * (weak - deconvolved), rtol=0, atol=1e-6)
        _last_bias(generator)[4] = 0.5  # both shares are measured from the deconvolution
        both = deconvolved + 0.25 * (weak - deconvolved) + 0.5 * (blurred - deconvolved)
        torch.testing.assert_close(generator(x), both, rtol=0, atol=1e-6)


def test_a_weak_share_needs_the_weak_input_and_the_fall_back_share():
    with pytest.raises(ValueError, match="weak_mix needs the \\+weak input"):
        build_generator(replace(MISFIT_REFINER, weak_mix=True))
    with pytest.raises(ValueError, match="weak_mix needs"):
        build_generator(replace(WEAK_REFINER, weak_mix=True, fallback_mix=False))


def test_a_refiner_grown_to_the_weak_share_starts_as_it_was(misfit_weights):  # noqa: F811
    old, _ = load_generator(misfit_weights)
    new = build_generator(WEAK_SHARE_REFINER)
    notes = warm_start(new, WEAK_SHARE_REFINER, str(misfit_weights))
    assert any("zero output for the weak share" in note for note in notes)
    old.eval(), new.eval()
    blurred, level, weak, deconvolved = _inputs(1)
    with torch.no_grad():
        before = old(torch.cat([blurred, level, deconvolved], 1))
        after = new(torch.cat([blurred, level, weak, deconvolved], 1))
        torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
        # the old share and correction kept their rows: the new weak share's row is the zero one
        old_bias, new_bias = _last_bias(old), _last_bias(new)
        torch.testing.assert_close(new_bias[[0, 1, 2, 4]], old_bias)
        assert new_bias[3] == 0


def test_train_refuses_a_weak_share_without_the_weak_input(tmp_path, capsys):
    assert main(["train", "--preset", "hybrid", "--weak-mix", "--data", str(tmp_path), "--out",
                 str(tmp_path / "run")]) == 2
    assert "--weak-mix is for the hybrid preset with --refiner-inputs blurred+deconvolved+misfit+weak" in \
        capsys.readouterr().err


def test_a_trained_weak_share_refiner_is_saved_loaded_and_run_by_the_hybrid_engine(weak_set, refiner_set):  # noqa: F811
    summary = train_tiny_refiner(WEAK_SHARE_REFINER, [weak_set], refiner_set / "weak-share-run")
    assert summary["steps"] == 2
    weights = refiner_set / "weak-share-run" / "generator.safetensors"
    generator, cfg = load_generator(weights)
    assert cfg.model.weak_mix and generator.out_channels == 5
    engine = load_engine("hybrid", weights=weights, device="cpu", kernel_size=9)
    photo = small_photo("astronaut", (96, 96))
    first = engine.dcp.restore(photo)
    level, weak = engine.maps(photo, first.image, first.kernel)
    restored = engine.restore(photo).image
    np.testing.assert_array_equal(restored, engine.refine_array(photo, first.image, level, weak))
    # the engine feeds the weak deconvolution: another one changes the output
    assert not np.array_equal(restored, engine.refine_array(photo, first.image, level, first.image))
