"""The average of a run's checkpoints: the mean of their generators, loadable as any checkpoint."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from darkdeblur.checkpoint import FORMAT_VERSION, load_generator
from darkdeblur.config import RunConfig
from darkdeblur.models import build_generator
from darkdeblur.weight_average import average_checkpoints, save_average

from test_misfit import MISFIT_REFINER

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import average_checkpoints as script  # noqa: E402


def _checkpoint(folder: Path, step: int, model=MISFIT_REFINER) -> Path:
    torch.manual_seed(step)
    generator = build_generator(model)
    for module in generator.modules():  # BatchNorm statistics that differ between checkpoints
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.num_batches_tracked.fill_(step)
    cfg = replace(RunConfig(preset="hybrid"), model=model)
    path = folder / f"step_{step:07d}.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": step, "ranks": [{}, {}],
                "generator": generator.state_dict()}, path)
    return path


def test_the_average_is_the_mean_of_the_generators_and_loads_as_a_checkpoint(tmp_path):
    paths = [_checkpoint(tmp_path, step) for step in (100, 200, 300)]
    gens = [torch.load(p, weights_only=True)["generator"] for p in paths]
    state = save_average(paths, tmp_path / "average.pt")
    assert state["step"] == 300 and state["averaged_steps"] == [100, 200, 300] and len(state["ranks"]) == 2
    for name, tensor in state["generator"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (gens[0][name] + gens[1][name] + gens[2][name]) / 3)
        else:  # batch counts: the last checkpoint's
            assert torch.equal(tensor, gens[2][name])
    assert any("running_mean" in n and not torch.equal(state["generator"][n], gens[2][n]) for n in gens[2])
    generator, cfg = load_generator(tmp_path / "average.pt")
    assert cfg.model == MISFIT_REFINER
    assert torch.equal(generator.state_dict()["encoder.0.0.weight"], state["generator"]["encoder.0.0.weight"])


def test_only_two_or_more_checkpoints_of_one_model_average(tmp_path):
    first = _checkpoint(tmp_path, 100)
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([first])
    other = tmp_path / "other"
    other.mkdir()
    wider = _checkpoint(other, 200, replace(MISFIT_REFINER, base_channels=4))
    with pytest.raises(ValueError, match=r"step_0000100.pt: another model than .*other/step_0000200.pt's"):
        average_checkpoints([first, wider])


def test_the_script_writes_the_average_and_never_a_name_resume_would_take(tmp_path, capsys):
    paths = [str(_checkpoint(tmp_path, step)) for step in (100, 200)]
    assert script.main([*paths, "--out", str(tmp_path / "avg.pt")]) == 0
    assert "the mean of steps 100, 200" in capsys.readouterr().out
    assert (tmp_path / "avg.pt").is_file()
    with pytest.raises(SystemExit):
        script.main([*paths, "--out", str(tmp_path / "step_0000300.pt")])
    assert "would be taken by --resume" in capsys.readouterr().err
    assert not (tmp_path / "step_0000300.pt").exists()
