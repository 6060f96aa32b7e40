import json

import numpy as np
import pytest
from PIL import Image

from darkdeblur.checkpoint import export_weights
from darkdeblur.cli import main
from darkdeblur.config import tiny
from darkdeblur.models import build_generator


@pytest.fixture()
def weights(tmp_path):
    cfg = tiny()
    path = tmp_path / "tiny.safetensors"
    export_weights(build_generator(cfg.model), cfg, path)
    return path


def test_deblur_writes_one_output_per_input(tmp_path, weights, sharp_folder):
    out = tmp_path / "out"
    assert main(["deblur", str(sharp_folder), "-o", str(out), "--weights", str(weights)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]
    assert Image.open(out / "coffee.png").size == Image.open(sharp_folder / "coffee.png").size


def test_bare_path_means_deblur(tmp_path, weights, sharp_folder):
    out = tmp_path / "out"
    assert main([str(sharp_folder / "rocket.png"), "-o", str(out), "--weights", str(weights)]) == 0
    assert (out / "rocket.png").is_file()
    out2 = tmp_path / "out2"
    assert main(["-o", str(out2), "--weights", str(weights), str(sharp_folder / "rocket.png")]) == 0
    assert (out2 / "rocket.png").is_file()


def test_missing_file_is_one_line_and_nonzero(tmp_path, weights, capsys):
    code = main(["deblur", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "out"), "--weights", str(weights)])
    assert code != 0
    err = capsys.readouterr()
    lines = [l for l in (err.out + err.err).splitlines() if "nope.jpg" in l]
    assert len(lines) == 1 and "not found" in lines[0]
    assert "Traceback" not in err.out + err.err


def test_missing_weights_is_one_line_and_nonzero(tmp_path, sharp_folder, capsys):
    code = main(["deblur", str(sharp_folder), "-o", str(tmp_path / "o"), "--weights", str(tmp_path / "w.safetensors")])
    assert code == 2  # a usage error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "w.safetensors" in err[0] and "not found" in err[0]


def test_train_eval_make_data_from_the_command_line(tmp_path, sharp_folder, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(sharp_folder), "--out", str(run),
                 "--steps", "3", "--crop", "32", "--batch-size", "2", "--no-progress",
                 "--max-noise-variance", "0.0005", "--adv-warmup-steps", "2"]) == 0
    assert (run / "generator.safetensors").is_file()
    from darkdeblur.checkpoint import load_generator
    _, cfg = load_generator(run / "generator.safetensors")
    assert (cfg.train.steps, cfg.train.crop, cfg.train.batch_size) == (3, 32, 2)
    assert cfg.train.max_noise_variance == 0.0005 and cfg.loss.adv_warmup_steps == 2
    synth = tmp_path / "synth"
    assert main(["make-data", "--sharp", str(sharp_folder), "--out", str(synth), "--seed", "0"]) == 0
    assert len(list((synth / "blur").iterdir())) == 4
    report = tmp_path / "eval.json"
    assert main(["eval", "--weights", str(run / "generator.safetensors"), "--pairs", str(synth),
                 "--protocol", "full", "--json", str(report), "--csv", str(tmp_path / "e.csv")]) == 0
    summary = json.loads(report.read_text())
    assert summary["protocol"] == "full" and summary["n"] == 4
    assert {"psnr", "ssim", "psnr_input", "ssim_input"} <= set(summary)
    assert np.isfinite(summary["psnr"]) and summary["psnr_input"] < 60
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "[full]" in printed
    assert (tmp_path / "e.csv").read_text().startswith("protocol,image,psnr")


def test_unknown_preset_is_a_clean_error(tmp_path, sharp_folder, capsys):
    code = main(["train", "--preset", "huge", "--data", str(sharp_folder), "--out", str(tmp_path / "r")])
    assert code == 1
    assert "unknown preset 'huge'" in capsys.readouterr().err


def test_bad_flag_is_a_usage_error():
    assert main(["eval", "--protocol", "cvpr", "--pairs", "x"]) == 2


@pytest.mark.parametrize("name, content", [("w.pt", b"garbage"), ("w.safetensors", b"garbage"),
                                           ("w.pt", b"\x80\x04K\x01.")])
def test_unreadable_weights_file_is_one_line(tmp_path, sharp_folder, capsys, name, content):
    bad = tmp_path / name
    bad.write_bytes(content)
    code = main(["deblur", str(sharp_folder / "rocket.png"), "-o", str(tmp_path / "o"), "--weights", str(bad)])
    assert code == 2  # found before any image is touched: a usage error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "weights_only=False" not in err[0]


def test_unknown_device_is_one_line(tmp_path, sharp_folder, weights, capsys):
    code = main(["deblur", str(sharp_folder / "rocket.png"), "-o", str(tmp_path / "o"),
                 "--weights", str(weights), "--device", "gpu0"])
    assert code == 2  # a usage error, as the README says
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device gpu0: unknown device" in err[0]


@pytest.mark.parametrize("command, option, words", [
    ("train", "--layout", "paired (blur/ and sharp/"),
    ("make-data", "--out", "must be new or empty"),
    ("make-data", "--seed", "default 0"),
    ("make-data", "--kernel-recipe", "41 px kernels, 8-40 px paths"),
    ("eval", "--protocol", "full (the default"),
])
def test_options_a_newcomer_needs_say_what_they_do(command, option, words, capsys):
    assert main([command, "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at any width
    assert option in help_text and words in help_text
