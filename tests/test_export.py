"""ONNX export: ONNX Runtime gives PyTorch's output for any image size."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from darkdeblur.checkpoint import export_weights
from darkdeblur.cli import main
from darkdeblur.config import RunConfig, default, tiny
from darkdeblur.export import export_onnx
from darkdeblur.models import build_generator

ort = pytest.importorskip("onnxruntime")

# The bundled model's layout (resize-conv upsampling, full-resolution skip), made narrow.
SMALL_DEFAULT = replace(default().model, base_channels=4, max_channels=8)


def _run_onnx(path, blurred: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["restored"], {"blurred": blurred.numpy()})[0]


@pytest.mark.parametrize("model_cfg", [tiny().model, SMALL_DEFAULT], ids=["tiny", "default-layout"])
def test_onnx_matches_pytorch_at_any_size(tmp_path, model_cfg):
    torch.manual_seed(0)
    generator = build_generator(model_cfg).eval()
    path = export_onnx(generator, tmp_path / "model.onnx")
    rng = torch.Generator().manual_seed(1)
    # sizes unlike the traced example: a multiple of the padding, odd sizes, a batch of two
    for shape in [(1, 3, 64, 96), (1, 3, 45, 71), (2, 3, 50, 33)]:
        blurred = torch.rand(*shape, generator=rng)
        with torch.inference_mode():
            expected = generator(blurred).numpy()
        restored = _run_onnx(path, blurred)
        assert restored.shape == shape
        np.testing.assert_allclose(restored, expected, atol=1e-3)


def test_export_command_writes_a_working_model(tmp_path, capsys):
    cfg = tiny()
    torch.manual_seed(0)
    generator = build_generator(cfg.model).eval()
    export_weights(generator, cfg, tmp_path / "tiny.safetensors")
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", "--onnx", str(onnx_path), "--weights", str(tmp_path / "tiny.safetensors")]) == 0
    assert f"wrote {onnx_path}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    blurred = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = generator(blurred).numpy()
    np.testing.assert_allclose(_run_onnx(onnx_path, blurred), expected, atol=1e-3)


def test_export_without_weights_is_one_line(tmp_path, capsys):
    missing = tmp_path / "none.safetensors"
    # a usage error, as the README says (it used to exit 1)
    assert main(["export", "--onnx", str(tmp_path / "m.onnx"), "--weights", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_file_carries_its_config_and_input_convention(tmp_path, tiny_weights):
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "model.onnx"
    assert main(["export", "--onnx", str(path), "--weights", str(tiny_weights)]) == 0
    meta = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    from darkdeblur.checkpoint import load_generator
    _, cfg = load_generator(tiny_weights)
    assert RunConfig.from_dict(json.loads(meta["config"])) == cfg and meta["preset"] == cfg.preset
    assert (meta["layout"], meta["channels"], meta["value_range"]) == ("NCHW", "RGB", "[0, 1]")
    assert meta["dynamic_axes"] == "batch, height, width" and "float32" in meta["input"]
    assert "shape" in meta["output"] and int(meta["min_height_width"]) >= 1


def test_export_of_the_classical_engine_is_a_usage_error(tmp_path, capsys):
    assert main(["export", "--onnx", str(tmp_path / "m.onnx"), "--method", "dcp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no network to export" in err[0]
    assert not (tmp_path / "m.onnx").exists()
