"""What a training run reports: progress, ``losses.jsonl``, TensorBoard scalars, PSNR, image grids.

Only rank 0 keeps a :class:`RunLog`. TensorBoard gets every loss term, the learning rate,
the discriminator's mean logits on real and restored pairs (``d_real``, ``d_fake``), gradient
norms and samples/s every ``log_every`` steps; validation PSNR (printed too) and blurred |
restored | sharp grids when asked.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .safe_files import atomic_write

LOSS_LOG = "losses.jsonl"


class LossLog:
    """``losses.jsonl``: one JSON object per step, ``{"step": n, "l1": ..., "lr": ...}``.

    Opened for a run resuming at step ``start``, it first drops the lines of later steps (and a
    line cut short by a kill), so the file always reads as one uninterrupted run.
    """

    def __init__(self, path: Path, start: int):
        kept = []
        if start > 0 and path.exists():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= start:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue
        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(kept)))
        self._file = open(path, "a")

    def write(self, step: int, logs: dict[str, float]) -> None:
        self._file.write(json.dumps({"step": step, **logs}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@torch.no_grad()
def restore_eval(generator: torch.nn.Module, blurred: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Eval-mode restoration in chunks, clamped to [0, 1].

    Eval mode draws no random numbers, leaves BatchNorm statistics alone and runs no
    collective, so rank 0 can call it alone without changing what training does next.
    """
    was_training = generator.training
    generator.eval()
    try:
        return torch.cat([generator(b).float().clamp(0, 1) for b in blurred.split(chunk)])
    finally:
        generator.train(was_training)


def psnr(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (N, 3, H, W) images in [0, 1]: shape (N,)."""
    mse = (restored - sharp).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


class RunLog:
    """Rank 0's reporting for steps ``start + 1 .. end`` of a ``total``-step run in ``out``."""

    def __init__(self, out: Path, start: int, end: int, total: int, samples_per_step: int,
                 log_every: int, progress: bool):
        from torch.utils.tensorboard import SummaryWriter
        self.start, self.end, self.samples_per_step, self.log_every = start, end, samples_per_step, log_every
        self.progress = progress
        self.losses = LossLog(out / LOSS_LOG, start)
        # purge_step drops events a killed run logged after the checkpoint this run resumes from.
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start or None)
        self.bar = tqdm(total=total, initial=start, disable=not progress, unit="step",
                        dynamic_ncols=True)
        self.began = time.perf_counter()

    def step(self, done: int, logs: dict[str, float]) -> None:
        """Record step ``done`` (1-based): the JSON line, the bar, and every ``log_every`` scalars."""
        self.losses.write(done, logs)
        elapsed = time.perf_counter() - self.began
        rate = (done - self.start) * self.samples_per_step / elapsed
        self.bar.update(1)
        self.bar.set_postfix(l1=f"{logs['l1']:.4f}", g=f"{logs['g_loss']:.3f}",
                             d=f"{logs.get('d_loss', float('nan')):.3f}", sps=f"{rate:.1f}")
        if done % self.log_every and done != self.end:
            return
        for key, value in logs.items():
            self.writer.add_scalar(f"train/{key}", value, done)
        self.writer.add_scalar("train/samples_per_s", rate, done)
        if not self.progress:  # a line in the log instead of the bar
            eta = elapsed / (done - self.start) * (self.end - done)
            print(f"step {done}/{self.end}  l1 {logs['l1']:.4f}  g {logs['g_loss']:.3f}  "
                  f"{rate:.1f} samples/s  ETA {tqdm.format_interval(eta)}", flush=True)

    def images(self, tag: str, generator: torch.nn.Module, blurred: torch.Tensor,
               sharp: torch.Tensor, step: int) -> torch.Tensor:
        """Log a blurred | restored | sharp grid, one row per image; return the restorations."""
        restored = restore_eval(generator, blurred)
        # the blurred photo (and a hybrid's deconvolution; its misfit channel is not a picture)
        inputs = [blurred[:, :3]] + ([blurred[:, -3:]] if blurred.shape[1] > 3 else [])
        name = "blurred|deconvolved" if len(inputs) > 1 else "blurred"
        self.writer.add_images(f"{tag}/{name}|restored|sharp",
                               torch.cat([*inputs, restored, sharp], dim=3), step)
        return restored

    def validate(self, generator: torch.nn.Module, blurred: torch.Tensor, sharp: torch.Tensor,
                 step: int) -> None:
        """PSNR of the fixed validation set, and its gain over the blurred input, plus a grid;
        the two numbers are printed as well (``tqdm.write`` keeps a progress bar intact)."""
        restored = self.images("val", generator, blurred, sharp, step)
        value, baseline = psnr(restored, sharp).mean().item(), psnr(blurred[:, :3], sharp).mean().item()
        self.writer.add_scalar("val/psnr", value, step)
        self.writer.add_scalar("val/psnr_gain", value - baseline, step)
        also = ""
        if blurred.shape[1] > 3:  # a hybrid refiner: its gain over the deconvolution it refines
            deconvolved = psnr(blurred[:, -3:], sharp).mean().item()  # the last three channels
            self.writer.add_scalar("val/psnr_gain_over_deconvolution", value - deconvolved, step)
            also = f", {value - deconvolved:+.2f} dB over the deconvolution"
        tqdm.write(f"step {step}: validation PSNR {value:.2f} dB ({value - baseline:+.2f} dB over "
                   f"the blurred input{also}, {len(sharp)} images)")

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        self.losses.close()
