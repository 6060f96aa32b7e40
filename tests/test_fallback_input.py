"""A refiner that also sees the dcp engine's fall-back rule, and starts from it."""
from __future__ import annotations

from dataclasses import astuple, replace

import numpy as np
import pytest
import torch

from darkdeblur.blur.misfit import MisfitFallback
from darkdeblur.config import ModelConfig, hybrid
from darkdeblur.data.refiner_set import RefinerCrops, RefinerStream, crop_noise, refiner_validation
from darkdeblur.engines import load_engine
from darkdeblur.engines.dcp import noise_sigma
from darkdeblur.models import build_generator, init_normal
from darkdeblur.trainer import train

from conftest import small_photo
from test_hybrid import refiner_set  # noqa: F401  (6 crops)
from test_misfit import MISFIT_REFINER, misfit_weights  # noqa: F401

RULE_REFINER = replace(MISFIT_REFINER, inputs="blurred+deconvolved+misfit+fallback", correction=False)


def test_the_rule_a_refiner_records_is_the_dcp_engines():
    assert ModelConfig().fallback_rule == astuple(MisfitFallback())
    assert RULE_REFINER.input_channels == 8 and RULE_REFINER.sees_misfit and RULE_REFINER.sees_fallback
    assert not MISFIT_REFINER.sees_fallback


def test_crops_carry_the_rules_share_into_eight_channel_batches(refiner_set):  # noqa: F811
    rule = MisfitFallback(width=0.3, noise_slope=10.0)
    crops = RefinerCrops(refiner_set / "set", misfit=True, fallback=rule)
    sigmas = crop_noise(refiner_set / "set")
    assert (refiner_set / "set" / "noise.npy").is_file() and sigmas.shape == (6,)
    for index in range(len(crops)):
        assert sigmas[index] == pytest.approx(noise_sigma(np.asarray(crops[index][0])), rel=1e-5)
        assert crops.shares[index] == pytest.approx(float(rule.share(crops.levels[index], sigmas[index])))
    inputs, _ = RefinerStream(crops, size=32, batch_size=3, seed=0).next().to_device(torch.device("cpu"))
    assert inputs.shape == (3, 8, 32, 32)
    # channel 3 a crop's level, channel 4 its share, each constant over the window
    assert torch.equal(inputs[:, 4], inputs[:, 4, :1, :1].expand_as(inputs[:, 4]))
    crop_pairs = {(round(float(l), 5), round(float(s), 5)) for l, s in zip(crops.levels, crops.shares)}
    for level, share in zip(inputs[:, 3, 0, 0].tolist(), inputs[:, 4, 0, 0].tolist()):
        assert (round(level, 5), round(share, 5)) in crop_pairs
    assert refiner_validation(crops)[0].shape[1] == 8


def test_the_learned_share_is_a_change_of_the_rules():
    torch.manual_seed(3)
    generator = build_generator(RULE_REFINER)
    init_normal(generator, 0.3)
    generator.zero_init_output()
    generator.eval()
    blurred, deconvolved = torch.rand(1, 3, 32, 40), torch.rand(1, 3, 32, 40)
    share = torch.rand(1, 1, 32, 40)
    x = torch.cat([blurred, torch.full((1, 1, 32, 40), 0.5), share, deconvolved], 1)
    with torch.no_grad():
        out = generator(x)
    torch.testing.assert_close(out, deconvolved + share * (blurred - deconvolved), rtol=0, atol=1e-5)


@pytest.mark.parametrize("correction", [False, True])
def test_a_refiner_started_from_a_misfit_one_is_the_dcp_engine_with_its_fall_back(refiner_set, misfit_weights,  # noqa: F811
                                                                                   tmp_path, correction):
    # misfit_weights have a trained correction; started with or without one, the new refiner is the rule
    base = hybrid()
    cfg = replace(base, model=replace(RULE_REFINER, correction=correction),
                  discriminator=replace(base.discriminator, channels=(8, 16), strides=(2, 2)),
                  loss=replace(base.loss, adv_warmup_steps=1),
                  train=replace(base.train, steps=1, batch_size=2, crop=32, checkpoint_every=1, lr=0.0,
                                validate_every=1, log_every=1))
    train(cfg, [refiner_set / "set"], tmp_path / "run", device="cpu", progress=False, init_weights=str(misfit_weights))
    hybrid_engine = load_engine("hybrid", weights=tmp_path / "run" / "generator.safetensors", device="cpu",
                                kernel_size=9)
    assert hybrid_engine.sees_fallback
    dcp_engine = load_engine("dcp", device="cpu", kernel_size=9)
    photo = small_photo("astronaut", (96, 96))
    started, rule = hybrid_engine.restore(photo), dcp_engine.restore(photo)
    assert rule.kernel is not None
    # the same photo up to the share map's 8-bit steps
    assert np.abs(started.image.astype(int) - rule.image).max() <= 1
    plain = hybrid_engine.dcp.restore(photo).image
    assert np.abs(plain.astype(int) - rule.image).max() > 1  # the rule did move something
