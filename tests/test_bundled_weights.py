"""The bundled generator of ``--method gan``: present in the package, intact, loadable strictly."""
import json

import numpy as np
from safetensors.torch import load_file

import darkdeblur
from darkdeblur.checkpoint import load_generator
from darkdeblur.safe_files import sha256_of
from darkdeblur.inference import bundled_weights_path
from darkdeblur.models import build_generator


def _record():
    return json.loads(bundled_weights_path().with_suffix(".json").read_text())


def test_bundled_weights_match_their_recorded_sha256():
    path = bundled_weights_path()
    assert path.is_file(), f"{path} is missing from the package"
    record = _record()
    assert record["file"] == path.name
    assert sha256_of(path) == record["sha256"]
    assert path.stat().st_size <= 25 * 2**20


def test_bundled_weights_load_strictly_with_their_recorded_config():
    generator, cfg = load_generator(bundled_weights_path())
    from darkdeblur.config import RunConfig
    assert cfg == RunConfig.from_dict(_record()["config"])
    fresh = build_generator(cfg.model)
    tensors = load_file(str(bundled_weights_path()))
    assert set(tensors) == set(fresh.state_dict())  # nothing missing, nothing extra
    assert sum(p.numel() for p in generator.parameters()) == _record()["parameters"]


def test_record_states_its_training_budget_and_metrics():
    record = _record()
    assert record["training"]["steps"] > 0 and record["training"]["hardware"]
    for name in ("dev_gopro", "dev_paper_samples", "kodak24_clean", "kodak24_noise0.001"):
        assert {"protocol", "psnr", "psnr_input", "ssim", "ssim_input"} <= set(record["metrics"][name])


def test_the_gan_engine_uses_the_bundled_generator():
    from PIL import Image
    from conftest import small_photo
    photo = small_photo("chelsea", (70, 50))
    restored = darkdeblur.deblur(Image.fromarray(photo), method="gan")
    assert isinstance(restored, Image.Image) and restored.size == (70, 50)
    model = darkdeblur.load_model(device="cpu", method="gan")
    assert model.weights == bundled_weights_path()
    expected = model(photo)
    assert np.array_equal(np.asarray(restored), expected)
    assert not np.array_equal(expected, photo)  # it changes the image
