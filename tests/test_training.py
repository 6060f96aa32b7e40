from dataclasses import replace

import pytest
import torch

from darkdeblur.checkpoint import export_weights, latest_checkpoint, load_checkpoint, load_generator
from darkdeblur.config import RunConfig, tiny
from darkdeblur.train_setup import build_models
from darkdeblur.trainer import train
from darkdeblur.train_step import Optimizers, train_step


def _fixed_batch():
    """Four 32x32 photo crops and a 3x3 box blur of them."""
    from conftest import small_photo
    from darkdeblur.pixels import to_tensor
    sharp = torch.cat([to_tensor(small_photo(n, (32, 32))) for n in ("astronaut", "chelsea", "coffee", "rocket")])
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, 1, 1, count_include_pad=False)
    return blurred, sharp


def _models(cfg):
    torch.manual_seed(0)
    models = build_models(cfg, torch.device("cpu"), None)
    opt = Optimizers(torch.optim.Adam(models.generator.parameters(), lr=1e-3),
                     torch.optim.Adam(models.discriminator.parameters(), lr=1e-3))
    return models, opt


def test_one_training_step_changes_every_weight_and_gives_finite_losses():
    cfg = replace(tiny(), model=replace(tiny().model, global_residual=False))
    models, opt = _models(cfg)
    before_g = {k: v.clone() for k, v in models.generator.named_parameters()}
    before_d = {k: v.clone() for k, v in models.discriminator.named_parameters()}
    logs = train_step(models, opt, *_fixed_batch(), cfg, step=0)
    assert {"d_loss", "g_loss", "g_adv", "l1", "dark", "d_real", "d_fake"} <= set(logs)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    for name, p in models.generator.named_parameters():
        assert not torch.equal(p, before_g[name]), f"generator {name} did not move"
    for name, p in models.discriminator.named_parameters():
        assert not torch.equal(p, before_d[name]), f"discriminator {name} did not move"


def test_adversarial_warmup_leaves_the_discriminator_untouched():
    cfg = replace(tiny(), loss=replace(tiny().loss, adv_warmup_steps=10))
    models, opt = _models(cfg)
    before = {k: v.clone() for k, v in models.discriminator.state_dict().items()}
    logs = train_step(models, opt, *_fixed_batch(), cfg, step=3)
    assert "d_loss" not in logs and "g_adv" not in logs
    assert all(torch.equal(v, before[k]) for k, v in models.discriminator.state_dict().items())


def test_short_tiny_training_lowers_l1_on_its_own_batch():
    cfg = tiny()
    models, opt = _models(cfg)
    blurred, sharp = _fixed_batch()
    first = train_step(models, opt, blurred, sharp, cfg, step=0)["l1"]
    for step in range(1, 80):
        last = train_step(models, opt, blurred, sharp, cfg, step=step)["l1"]
    assert last < 0.8 * first


def test_train_writes_checkpoints_that_reproduce_outputs_exactly(tmp_path, sharp_folder):
    cfg = replace(tiny(), train=replace(tiny().train, steps=6, checkpoint_every=3, batch_size=2, crop=32))
    summary = train(cfg, [sharp_folder], tmp_path / "run", progress=False)
    assert summary["steps"] == 6 and len(summary["history"]) == 6
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt.name == "step_0000006.pt"
    state = load_checkpoint(ckpt)
    assert state["step"] == 6 and RunConfig.from_dict(state["config"]) == cfg

    from_ckpt, _ = load_generator(ckpt)
    from_weights, loaded_cfg = load_generator(tmp_path / "run" / "generator.safetensors")
    assert loaded_cfg == cfg
    x = torch.rand(1, 3, 45, 37)
    with torch.no_grad():
        assert torch.equal(from_ckpt(x), from_weights(x))
    # And a second export of the loaded model round-trips bit for bit.
    export_weights(from_weights, cfg, tmp_path / "again.safetensors")
    again, _ = load_generator(tmp_path / "again.safetensors")
    with torch.no_grad():
        assert torch.equal(again(x), from_weights(x))


def test_resume_continues_from_the_saved_step(tmp_path, sharp_folder):
    cfg = replace(tiny(), train=replace(tiny().train, steps=8, checkpoint_every=4, batch_size=2, crop=32))
    first = train(cfg, [sharp_folder], tmp_path / "run", progress=False, stop_after=4)
    assert first["steps"] == 4
    resumed = train(cfg, [sharp_folder], tmp_path / "run", progress=False, resume=True)
    assert resumed["start"] == 4 and resumed["steps"] == 8
    assert [h["step"] for h in resumed["history"]] == [5, 6, 7, 8]
    assert load_checkpoint(latest_checkpoint(tmp_path / "run"))["step"] == 8


def test_loading_weights_is_strict(tmp_path):
    from darkdeblur.models import build_generator
    from safetensors.torch import load_file, save_file
    cfg = tiny()
    path = tmp_path / "w.safetensors"
    export_weights(build_generator(cfg.model), cfg, path)
    from darkdeblur.checkpoint import read_weights_metadata
    meta = read_weights_metadata(path)
    tensors = load_file(str(path))
    tensors.pop("encoder.0.0.weight")
    save_file(tensors, str(tmp_path / "broken.safetensors"), metadata=meta)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_generator(tmp_path / "broken.safetensors")


def test_a_fresh_run_refuses_a_directory_holding_another_run(tmp_path, sharp_folder):
    from darkdeblur.train_setup import TrainingError
    cfg = replace(tiny(), train=replace(tiny().train, steps=2, checkpoint_every=2, batch_size=2, crop=32))
    train(cfg, [sharp_folder], tmp_path / "run", progress=False)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(TrainingError, match="already holds a training run; pass --resume"):
        train(cfg, [sharp_folder], tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
