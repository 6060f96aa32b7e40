import json
import os

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
    assert code == 2  # a usage error, as the README says (it used to exit 1)
    assert "unknown preset 'huge'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--correction", "--no-correction"])
def test_correction_flags_are_for_the_hybrid_preset_only(tmp_path, sharp_folder, capsys, flag):
    code = main(["train", "--preset", "tiny", "--data", str(sharp_folder), "--out", str(tmp_path / "r"), flag])
    assert code == 2
    assert f"{flag} is for the hybrid preset, not tiny" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_the_correction_flags_exclude_each_other(tmp_path, sharp_folder):
    assert main(["train", "--preset", "hybrid", "--data", str(sharp_folder), "--out", str(tmp_path / "r"),
                 "--correction", "--no-correction"]) == 2


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


# ---------------------------------------------------------------- usage errors: one line, exit 2, no work

def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize("content", [[], ["notes.txt"]], ids=["empty", "text-only"])
def test_folder_without_images_is_a_usage_error(tmp_path, weights, capsys, content):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in content:
        (folder / name).write_text("shot list\n")
    code = main(["deblur", str(folder), "-o", str(tmp_path / "out"), "--weights", str(weights)])
    assert code == 2  # used to exit 0 with "0 done, 0 failed, 0 skipped"
    line = one_error_line(capsys)
    assert str(folder) in line and "no image files" in line
    assert not (tmp_path / "out").exists()


def test_mistyped_command_deblurs_nothing(tmp_path, weights, sharp_folder, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["deblurr", str(sharp_folder / "rocket.png"), "--weights", str(weights)]) == 2
    line = one_error_line(capsys)
    assert "unknown command or file 'deblurr'" in line and "did you mean 'deblur'" in line
    assert not (tmp_path / "deblurred").exists()
    assert main(["photo.jpg"]) == 2  # neither a command nor a file
    assert "unknown command or file 'photo.jpg'" in one_error_line(capsys)
    Image.open(sharp_folder / "rocket.png").save(tmp_path / "photo.png")
    assert main(["photo.png", "--weights", str(weights)]) == 0  # an existing file still means deblur
    assert (tmp_path / "deblurred" / "photo.png").is_file()


@pytest.mark.parametrize("out", ["result", "result/inside.png"], ids=["file", "under-a-file"])
def test_output_onto_an_existing_file_is_refused_before_loading(tmp_path, weights, sharp_folder, capsys,
                                                               monkeypatch, out):
    import darkdeblur.inference

    def no_engine(*args, **kwargs):
        raise AssertionError("the engine was built before the output was checked")
    monkeypatch.setattr(darkdeblur.inference, "load_model", no_engine)
    (tmp_path / "result").write_bytes(b"an existing file without an extension")
    code = main(["deblur", str(sharp_folder), "-o", str(tmp_path / out), "--weights", str(weights)])
    assert code == 2  # used to fail once per image with "(File exists)", after loading the model
    assert "file, not a folder" in one_error_line(capsys)
    assert (tmp_path / "result").read_bytes() == b"an existing file without an extension"


def _weights_of_kind(tmp_path, kind):
    if kind == "missing":
        return tmp_path / "none.safetensors"
    if kind == "folder":
        return tmp_path
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"garbage")
    return bad


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage"])
@pytest.mark.parametrize("command", ["deblur", "eval", "export"])
def test_bad_weights_are_a_usage_error_everywhere(tmp_path, sharp_folder, capsys, command, kind):
    bad = _weights_of_kind(tmp_path, kind)
    argv = {"deblur": ["deblur", str(sharp_folder), "-o", str(tmp_path / "out")],
            "eval": ["eval", "--pairs", str(sharp_folder)],
            "export": ["export", "--onnx", str(tmp_path / "m.onnx")]}[command]
    assert main([*argv, "--weights", str(bad)]) == 2
    assert str(bad) in one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_weights_are_a_usage_error(tmp_path, weights, sharp_folder, capsys):
    locked = tmp_path / "locked.safetensors"
    locked.write_bytes(weights.read_bytes())
    locked.chmod(0)
    assert main(["deblur", str(sharp_folder), "-o", str(tmp_path / "out"), "--weights", str(locked)]) == 2
    assert str(locked) in one_error_line(capsys)


@pytest.mark.parametrize("device", ["cuda", "mps"])
@pytest.mark.parametrize("command", ["deblur", "eval", "train"])
def test_a_device_this_machine_lacks_is_a_usage_error(tmp_path, sharp_folder, weights, capsys, monkeypatch,
                                                     command, device):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    argv = {"deblur": ["deblur", str(sharp_folder), "-o", str(tmp_path / "out"), "--weights", str(weights)],
            "eval": ["eval", "--pairs", str(sharp_folder), "--weights", str(weights)],
            "train": ["train", "--preset", "tiny", "--data", str(sharp_folder), "--out", str(tmp_path / "run")]}
    assert main([*argv[command], "--device", device]) == 2
    assert f"--device {device}: " in one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_a_mistyped_flag_is_named(capsys):
    assert main(["--wrong-flag"]) == 2
    err = capsys.readouterr().err
    assert "--wrong-flag" in err and "required" not in err  # used to say only "required: inputs"


def test_debug_is_accepted_after_the_command(tmp_path, weights, capsys):
    (tmp_path / "bad.png").write_bytes(b"junk")
    assert main(["deblur", str(tmp_path / "bad.png"), "-o", str(tmp_path / "out"), "--weights", str(weights),
                 "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main(["deblur", str(tmp_path / "bad.png"), "-o", str(tmp_path / "out"), "--weights", str(weights)]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_eval_of_a_missing_pairs_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["eval", "--method", "dcp", "--pairs", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and len(err.strip().splitlines()) == 1
