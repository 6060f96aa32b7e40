"""The paper presets follow the authors' reference code: L1 range, schedule, test-time mode, kernels."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from darkdeblur.blur import EXPOSURES, deblurgan_motion_kernel, kernel_bank, random_motion_kernel
from darkdeblur.checkpoint import export_weights, load_generator
from darkdeblur.config import (PRESETS, LossConfig, TrainConfig, default, preset, schedule_steps,
                               tiny, with_steps)
from darkdeblur.losses import generator_loss
from darkdeblur.models import build_generator, set_test_mode

PAPER_ROWS = ("paper", "dc250", "dc0", "dc250p")


def test_paper_l1_weighs_as_on_minus_one_to_one_images():
    gen = torch.Generator().manual_seed(0)
    restored, sharp = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    only_l1 = dict(lambda_dark=0.0, lambda_adv=0.0)
    for name in PAPER_ROWS:
        cfg = replace(preset(name).loss, lambda_perceptual=0.0, **only_l1)
        total = generator_loss(cfg, restored, sharp, None)["g_loss"]
        # the reference: 100 * mean|sharp - restored| with both images mapped to [-1, 1]
        expected = 100 * (((sharp * 2 - 1) - (restored * 2 - 1)).abs().mean())
        torch.testing.assert_close(total, expected)
    for cfg in (default().loss, tiny().loss, LossConfig()):
        total = generator_loss(replace(cfg, **only_l1), restored, sharp, None)["g_loss"]
        torch.testing.assert_close(total, cfg.lambda_l1 * (sharp - restored).abs().mean())


def test_paper_schedule_is_fifteen_epochs_at_batch_one_and_steps_shorten_it():
    for name in PAPER_ROWS:
        tc = preset(name).train
        assert (tc.epochs, tc.batch_size) == (15.0, 1)
        assert schedule_steps(tc, images=2103) == 15 * 2103
        assert schedule_steps(tc, images=238, processes=4) == math.ceil(15 * 238 / 4)
        short = with_steps(preset(name), 50).train
        assert schedule_steps(short, images=2103) == 50 and short.epochs == 0
    assert schedule_steps(default().train, images=2103) == default().train.steps


def test_training_runs_the_schedule_its_epochs_give(tmp_path, sharp_folder, capsys):
    from darkdeblur.trainer import train
    cfg = tiny()
    cfg = replace(cfg, train=replace(cfg.train, epochs=1.5, batch_size=2, crop=32, checkpoint_every=100))
    summary = train(cfg, [sharp_folder], tmp_path / "run", device="cpu", progress=False)
    assert summary["steps"] == 3  # 1.5 passes over 4 photos at 2 per step
    assert "1.5 epochs over 4 images" in capsys.readouterr().out


def test_cli_steps_replaces_the_paper_schedule_and_says_so(tmp_path, sharp_folder, capsys, monkeypatch):
    import darkdeblur.trainer
    from darkdeblur.cli import main
    seen = {}

    def fake_train(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        return {}
    monkeypatch.setattr(darkdeblur.trainer, "train", fake_train)
    assert main(["train", "--preset", "paper", "--data", str(sharp_folder), "--out",
                 str(tmp_path / "r"), "--steps", "7"]) == 0
    assert (seen["cfg"].train.steps, seen["cfg"].train.epochs) == (7, 0.0)
    assert "replaces preset paper's schedule of 15 epochs" in capsys.readouterr().out
    assert main(["train", "--preset", "default", "--data", str(sharp_folder), "--out",
                 str(tmp_path / "r"), "--kernel-recipe", "deblurgan"]) == 0
    assert (seen["cfg"].train.kernel_recipe, seen["cfg"].train.kernel_size) == ("deblurgan", 65)


def _bn_generator():
    cfg = replace(tiny(), model=replace(tiny().model, dropout=0.5, dropout_blocks=1))
    torch.manual_seed(0)
    generator = build_generator(cfg.model)
    with torch.no_grad():  # running statistics far from any image's own
        for m in generator.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(9.0)
    return generator, cfg


def test_batch_mode_uses_batch_statistics_and_dropout_and_keeps_running_ones():
    generator, _ = _bn_generator()
    bn = next(m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    drop = next(m for m in generator.modules() if isinstance(m, torch.nn.Dropout))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    features = {}
    bn.register_forward_hook(lambda m, i, o: features.__setitem__("out", o.detach()))
    with torch.inference_mode():
        set_test_mode(generator, "batch")
        assert bn.training and drop.training and not generator.training
        torch.manual_seed(5)
        batch_a = generator(x)
        normalised = features["out"]
        torch.manual_seed(6)
        batch_b = generator(x)
        set_test_mode(generator, "running")
        assert not bn.training and not drop.training
        running_a, running_b = generator(x), generator(x)
    # batch statistics: each channel of the BatchNorm output has the layer's bias as its mean
    torch.testing.assert_close(normalised.mean(dim=(0, 2, 3)), bn.bias.detach(), atol=1e-4, rtol=0)
    assert not torch.equal(batch_a, batch_b)  # dropout is on
    assert torch.equal(running_a, running_b)  # eval mode is deterministic
    assert (batch_a - running_a).abs().max() > 1e-3
    assert torch.all(bn.running_mean == 3.0) and torch.all(bn.running_var == 9.0)


def test_weights_load_in_their_config_test_mode_unless_told(tmp_path):
    generator, cfg = _bn_generator()
    path = tmp_path / "g.safetensors"
    export_weights(generator, replace(cfg, model=replace(cfg.model, test_mode="batch")), path)
    loaded, _ = load_generator(path)
    bn = [m for m in loaded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training for m in bn)
    loaded, _ = load_generator(path, test_mode="running")
    assert not any(m.training for m in loaded.modules())
    for name in PAPER_ROWS:
        assert preset(name).model.test_mode == "batch"
    assert default().model.test_mode == tiny().model.test_mode == "running"
    with pytest.raises(ValueError, match="unknown test mode"):
        set_test_mode(loaded, "train")


def _reach(kernel: np.ndarray) -> float:
    """RMS distance of a kernel's mass from its centre of mass, in px."""
    ys, xs = np.indices(kernel.shape)
    cy, cx = (kernel * ys).sum(), (kernel * xs).sum()
    return float(np.sqrt((kernel * ((ys - cy) ** 2 + (xs - cx) ** 2)).sum()))


def test_deblurgan_kernel_recipe_statistics():
    rng = np.random.default_rng(0)
    kernels = [deblurgan_motion_kernel(rng) for _ in range(160)]
    assert all(k.shape == (65, 65) and abs(float(k.sum()) - 1) < 1e-5 and k.min() >= 0 for k in kernels)
    reach = np.array([_reach(k) for k in kernels])
    # 1/100 of a 60 px path is 0.6 px: about a quarter of the kernels are nearly a point
    nearly_sharp = np.mean(reach < 0.5)
    assert 0.15 < nearly_sharp < 0.35
    # the project's own streak kernels are never that sharp, and the longest here reach further
    streak = np.array([_reach(random_motion_kernel(rng, exposure=1.0, anxiety=0.005)) for _ in range(40)])
    assert streak.min() > 0.5
    assert reach.max() > 1.5 * streak.max()
    # same seed, same bank; the recipe names its kernels
    np.testing.assert_array_equal(kernel_bank(3, 4, 65, recipe="deblurgan"),
                                  kernel_bank(3, 4, 65, recipe="deblurgan"))
    assert len(EXPOSURES) == 4
    with pytest.raises(ValueError, match="unknown kernel recipe"):
        kernel_bank(0, 1, recipe="boracchi")


def test_paper_presets_blur_with_deblurgan_kernels_and_make_data_records_it(tmp_path, sharp_folder):
    from darkdeblur.cli import main
    for name in PAPER_ROWS:
        tc = preset(name).train
        assert (tc.kernel_recipe, tc.kernel_size) == ("deblurgan", 65)
    assert TrainConfig().kernel_recipe == "streak"
    out = tmp_path / "set"
    assert main(["make-data", "--sharp", str(sharp_folder), "--out", str(out),
                 "--kernel-recipe", "deblurgan", "--noise-var", "0.001"]) == 0
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["kernel_recipe"] == "deblurgan" and recipe["kernel_size"] == 65
    assert "before averaging" in recipe["noise_model"]
    assert np.load(next((out / "kernels").iterdir())).shape == (65, 65)


def test_the_paper_preset_names_its_remaining_differences():
    doc = PRESETS["paper"].__doc__
    assert "Differences that remain" in doc and "innermost" in doc
    assert "not the paper's" in PRESETS["dc250p"].__doc__
