"""Guard rails: a non-finite loss stops training cleanly; bad or full output folders fail early."""
import errno
import json
from collections import namedtuple

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from darkdeblur import checkpoint, train_setup, trainer
from darkdeblur.checkpoint import latest_checkpoint, load_checkpoint
from darkdeblur.cli import main


def _train(data, out, *extra: str) -> int:
    return main(["train", "--preset", "tiny", "--data", str(data), "--out", str(out), "--device", "cpu",
                 "--batch-size", "2", "--crop", "32", "--checkpoint-every", "2", "--no-progress", *extra])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(sharp_folder, tmp_path,
                                                                         capsys, monkeypatch):
    real_device_batch, calls = trainer.device_batch, []

    def poisoned(*args, **kwargs):  # the 5th batch carries a NaN pixel: loss, gradients, weights go NaN
        blurred, sharp = real_device_batch(*args, **kwargs)
        calls.append(1)
        if len(calls) == 5:
            blurred[0, 0, 0, 0] = float("nan")
        return blurred, sharp

    monkeypatch.setattr(trainer, "device_batch", poisoned)
    out = tmp_path / "run"
    assert _train(sharp_folder, out, "--steps", "8") == 1
    message = _error_line(capsys)
    assert "step 5: non-finite loss" in message and "step_0000004.pt is kept" in message
    assert latest_checkpoint(out) == out / "step_0000004.pt"
    state = load_checkpoint(out / "step_0000004.pt")
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())
    assert not (out / "generator.safetensors").exists()
    logged = [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]


def test_an_output_path_below_a_file_fails_before_reading_any_data(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert _train(tmp_path / "no-such-data", blocker / "run", "--steps", "2") == 1
    message = _error_line(capsys)
    assert f"{blocker / 'run'}: output directory is not writable" in message  # not the missing data


def test_a_nearly_full_disk_fails_before_reading_any_data(tmp_path, capsys, monkeypatch):
    usage = namedtuple("usage", "total used free")
    ten_mib = 10 * 2**20
    monkeypatch.setattr(train_setup.shutil, "disk_usage", lambda path: usage(2**30, 2**30 - ten_mib, ten_mib))
    assert _train(tmp_path / "no-such-data", tmp_path / "run", "--steps", "2") == 1
    assert "only 10 MiB free; checkpoints need at least" in _error_line(capsys)


def test_disk_full_while_writing_a_checkpoint_stops_and_keeps_the_previous_one(sharp_folder, tmp_path,
                                                                              capsys, monkeypatch):
    real_save, calls = torch.save, []

    def save_until_full(obj, f):
        calls.append(1)
        if len(calls) == 2:
            with open(f, "wb") as out:
                out.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", save_until_full)
    out = tmp_path / "run"
    assert _train(sharp_folder, out, "--steps", "6") == 1
    message = _error_line(capsys)
    assert "step 4: cannot write a checkpoint" in message and "No space left on device" in message
    assert "step_0000002.pt is kept" in message
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["losses.jsonl", "step_0000002.pt"]


def test_tensorboard_gets_loss_terms_rates_gradients_and_validation(sharp_folder, paired_folder, tmp_path,
                                                                    capsys):
    out = tmp_path / "run"
    val = ["--val", str(paired_folder), "--validate-every", "2"]
    assert _train(sharp_folder, out, "--steps", "4", *val) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if "validation PSNR" in line]
    assert [line.split(":")[0] for line in printed] == ["step 2", "step 4"]
    assert all("dB over the blurred input, 3 images" in line for line in printed)
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/l1", "train/dark", "train/g_adv", "train/d_loss", "train/d_real", "train/d_fake",
            "train/lr", "train/grad_norm_g", "train/grad_norm_d", "train/samples_per_s",
            "val/psnr", "val/psnr_gain"} <= scalars
    assert [e.step for e in events.Scalars("val/psnr")] == [2, 4]
    assert all(20 < e.value < 60 for e in events.Scalars("val/psnr"))
    assert "val/blurred|restored|sharp" in events.Tags()["images"]
