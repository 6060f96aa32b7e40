"""Exact resume: a run killed with SIGKILL and resumed retraces an uninterrupted run bit for bit."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from darkdeblur.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from darkdeblur.config import tiny
from darkdeblur.data import BatchStream
from darkdeblur.data.stream import Prefetcher, TrainingImages
from darkdeblur.run_logs import LossLog

# Training subprocesses: one thread each, so a busy machine does not oversubscribe its cores.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _images() -> TrainingImages:
    rng = np.random.default_rng(0)
    return TrainingImages(pairs=[(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8),) * 2],
                          sharp=[rng.integers(0, 256, (60, 70, 3), dtype=np.uint8) for _ in range(3)])


def _same_batch(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k))
               for k in ("synthetic", "kernel_index", "pair_blurred", "pair_sharp", "flip", "noise_variance"))


def test_prefetcher_state_is_that_after_the_last_batch_handed_out():
    cfg = tiny().train
    prefetcher = Prefetcher(BatchStream(_images(), cfg, seed=2), depth=3)
    try:
        for _ in range(5):  # crosses epoch boundaries of the 3 photos and the single pair
            prefetcher.next()
        state = prefetcher.state_dict()
        upcoming = prefetcher.next()
    finally:
        prefetcher.close()
    resumed = BatchStream(_images(), cfg, seed=2)
    resumed.load_state_dict(state)
    assert _same_batch(resumed.next(), upcoming)
    assert not _same_batch(BatchStream(_images(), cfg, seed=2).next(), upcoming)


def test_loss_log_reopened_at_a_step_drops_later_and_torn_lines(tmp_path):
    path = tmp_path / "losses.jsonl"
    log = LossLog(path, start=0)
    for step in range(1, 6):
        log.write(step, {"l1": step / 10})
    log.close()
    with open(path, "a") as f:
        f.write('{"step": 6, "l1": 0.')  # a write cut short by a kill
    LossLog(path, start=3).close()
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_latest(tmp_path):
    run = tmp_path / "run"
    script = f"""
import os, signal, torch
from darkdeblur import checkpoint
checkpoint.save_checkpoint({str(run)!r}, {{"step": 1, "w": torch.arange(4.0)}})
def dying_save(obj, f):
    with open(f, "wb") as out:
        out.write(b"PK\\x03\\x04 half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
checkpoint.save_checkpoint({str(run)!r}, {{"step": 2, "w": torch.arange(4.0) * 2}})
"""
    result = subprocess.run([sys.executable, "-c", script], env=SUBPROCESS_ENV, capture_output=True,
                            timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".step_0000002.pt.")
    assert latest_checkpoint(run) == run / "step_0000001.pt"
    assert torch.equal(load_checkpoint(latest_checkpoint(run))["w"], torch.arange(4.0))
    save_checkpoint(run, {"step": 10, "w": torch.zeros(1)})  # the next save sweeps the leftover
    assert sorted(p.name for p in run.iterdir()) == ["step_0000001.pt", "step_0000010.pt"]
    assert latest_checkpoint(run) == run / "step_0000010.pt"  # by step number, not by name


def _train_cmd(photos, out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "darkdeblur", "train", "--preset", "tiny", "--data", str(photos),
            "--out", str(out), "--device", "cpu", "--deterministic", "--steps", "400", "--seed", "3",
            "--batch-size", "2", "--crop", "32", "--checkpoint-every", "4", "--no-progress", *extra]


def _losses(run) -> list[dict]:
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_repeats_the_uninterrupted_loss_sequence_bit_for_bit(sharp_folder, tmp_path):
    photos, total = sharp_folder, 40
    reference = tmp_path / "reference"
    done = subprocess.run(_train_cmd(photos, reference, "--stop-after", str(total)),
                          env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "killed"
    victim = subprocess.Popen(_train_cmd(photos, run), env=SUBPROCESS_ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while latest_checkpoint(run) is None and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL  # killed mid-run, not finished
    kept = load_checkpoint(latest_checkpoint(run))["step"]
    assert 4 <= kept < total

    resumed = subprocess.run(_train_cmd(photos, run, "--resume", "--stop-after", str(total - kept)),
                             env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"steps {kept}..{total} of 400" in resumed.stdout

    expected, got = _losses(reference), _losses(run)
    assert [e["step"] for e in expected] == list(range(1, total + 1))
    assert got == expected  # every loss term, every step: exact float equality
    assert len({e["l1"] for e in expected[kept:]}) > 1  # the losses do change after the resume point
    ref_weights, weights = load_file(str(reference / "generator.safetensors")), load_file(
        str(run / "generator.safetensors"))
    assert all(torch.equal(ref_weights[k], weights[k]) for k in ref_weights)


def _tiny(steps: int, **train):
    from dataclasses import replace
    cfg = tiny()
    return replace(cfg, train=replace(cfg.train, steps=steps, checkpoint_every=2, batch_size=2, crop=32, **train))


def test_extending_a_constant_rate_run_on_resume_retraces_the_longer_run(tmp_path, sharp_folder, capsys):
    from darkdeblur.trainer import train
    reference = train(_tiny(6), [sharp_folder], tmp_path / "reference", progress=False)
    train(_tiny(4), [sharp_folder], tmp_path / "run", progress=False)
    capsys.readouterr()
    extended = train(_tiny(6), [sharp_folder], tmp_path / "run", progress=False, resume=True)
    said = capsys.readouterr().out
    assert "now 6 steps long, not 4" in said and "learning rate is constant" in said
    assert extended["start"] == 4 and [h["step"] for h in extended["history"]] == [5, 6]
    assert extended["history"] == reference["history"][4:]  # exact float equality, every term


def test_extending_a_cosine_run_continues_on_the_longer_curve(tmp_path, sharp_folder, capsys):
    from darkdeblur.trainer import train
    train(_tiny(4, lr_schedule="cosine"), [sharp_folder], tmp_path / "run", progress=False)
    capsys.readouterr()
    extended = train(_tiny(8, lr_schedule="cosine"), [sharp_folder], tmp_path / "run", progress=False,
                     resume=True)
    assert "cosine learning rate is laid over the total steps" in capsys.readouterr().out
    lr = tiny().train.lr
    # Step 5 runs at the 8-step curve's rate for step 4 (half the base), not the 4-step curve's (0).
    assert extended["history"][0]["lr"] == pytest.approx(lr * 0.5, rel=1e-12)


def test_a_finished_run_has_nothing_to_do_and_changes_that_break_exactness_are_named(tmp_path, sharp_folder,
                                                                                    capsys):
    from darkdeblur.cli import main
    run = tmp_path / "run"
    base = ["train", "--preset", "tiny", "--data", str(sharp_folder), "--out", str(run), "--device", "cpu",
            "--batch-size", "2", "--crop", "32", "--checkpoint-every", "2", "--no-progress"]
    assert main([*base, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*base, "--steps", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"{run} is already at step 2, nothing to do" in out and "nan" not in out
    assert main([*base, "--steps", "1", "--resume"]) == 1
    assert "the run is at step 2, past the 1 steps asked for" in capsys.readouterr().err
    assert main([*base, "--steps", "4", "--resume", "--lr", "0.002"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.lr is 0.001 in the checkpoint but 0.002 now" in err
    assert load_checkpoint(latest_checkpoint(run))["step"] == 2  # the refused resumes wrote nothing


def test_a_checkpoint_from_before_a_config_field_existed_still_resumes():
    from darkdeblur.config import hybrid
    from darkdeblur.resume import config_differences, with_defaults

    now = hybrid().to_dict()
    saved = json.loads(json.dumps(now))  # as a checkpoint holds it: lists, not tuples
    del saved["model"]["fallback_rule"]  # saved by code that had no such field
    assert config_differences(with_defaults(saved), now) == []
    saved["model"]["depth"] = 3  # a real change is still found
    assert config_differences(with_defaults(saved), now) == [("model.depth", 3, now["model"]["depth"])]
    saved["model"]["from_the_future"] = 1  # a field this code does not know is named, not dropped
    assert ("model.from_the_future", 1, None) in config_differences(with_defaults(saved), now)
