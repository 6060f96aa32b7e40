"""The bundled hybrid refiner: intact, strictly loadable, recorded, and it deblurs without fringes."""
import json

import numpy as np
import torch
from safetensors.torch import load_file

from darkdeblur.blur import blur
from darkdeblur.checkpoint import load_generator
from darkdeblur.config import RunConfig
from darkdeblur.engines import bundled_hybrid_weights, load_engine
from darkdeblur.metrics import psnr
from darkdeblur.models import build_generator
from darkdeblur.pixels import to_tensor, to_uint8
from darkdeblur.safe_files import sha256_of

from conftest import small_photo


def _record() -> dict:
    return json.loads(bundled_hybrid_weights().with_suffix(".json").read_text())


def _streak(length: int = 13) -> torch.Tensor:
    kernel = torch.zeros(length, length)
    kernel[length // 2, :] = 1.0 / length  # a horizontal camera-shake streak
    return kernel


def test_bundled_refiner_matches_its_recorded_sha256_and_loads_strictly():
    path = bundled_hybrid_weights()
    record = _record()
    assert record["file"] == path.name and sha256_of(path) == record["sha256"]
    generator, cfg = load_generator(path)
    assert cfg == RunConfig.from_dict(record["config"])
    assert cfg.model.inputs == "blurred+deconvolved+misfit+weak" and cfg.model.weak_mix
    assert set(load_file(str(path))) == set(build_generator(cfg.model).state_dict())


def test_record_states_budget_and_the_gain_over_dcp():
    record = _record()
    training = record["training"]
    assert training["steps"] > 0 and training["samples"] > 0 and training["hardware"] and training["command"]
    for name in ("dev_gopro", "dev_paper_samples", "kodak24_clean", "kodak24_noise0.001"):
        assert {"psnr", "psnr_input", "dcp_psnr", "psnr_gain_over_dcp", "worst_image_gain"} <= set(record["metrics"][name])


def test_the_hybrid_engine_deblurs_a_blurred_photo():
    sharp = small_photo("astronaut", (256, 256))
    blurred = to_uint8(blur(to_tensor(sharp), _streak())[0])
    restored = load_engine("hybrid", device="cpu").restore(blurred)
    assert restored.kernel is not None
    assert psnr(restored.image, sharp, 255) > psnr(blurred, sharp, 255) + 1.0


def test_a_grey_edge_stays_grey():
    # A fringe is a colour shift along an edge: on a grey picture every channel must stay equal.
    grey = np.full((160, 160), 40, np.uint8)
    grey[:, 80:] = 215
    grey[40:120, 30:50] = 215  # a bright bar: edges in both directions
    photo = np.repeat(grey[..., None], 3, axis=2)
    blurred = to_uint8(blur(to_tensor(photo), _streak(9))[0])
    restored = load_engine("hybrid", device="cpu").restore(blurred).image.astype(int)
    assert np.abs(restored[..., 0] - restored[..., 1]).max() <= 2
    assert np.abs(restored[..., 1] - restored[..., 2]).max() <= 2


def test_the_default_engine_is_the_bundled_hybrid():
    from PIL import Image
    import darkdeblur
    from darkdeblur.engines import DEFAULT_METHOD, HybridRestorer
    assert DEFAULT_METHOD == "hybrid"
    engine = darkdeblur.load_model(device="cpu")
    assert isinstance(engine, HybridRestorer) and engine.refiner.weights == bundled_hybrid_weights()
    sharp = small_photo("coffee", (160, 128))
    blurred = to_uint8(blur(to_tensor(sharp), _streak(9))[0])
    restored = darkdeblur.deblur(Image.fromarray(blurred))
    np.testing.assert_array_equal(np.asarray(restored), engine(blurred))
    assert not np.array_equal(np.asarray(restored), blurred)
