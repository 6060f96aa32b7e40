"""The training batch stream: the CPU decodes and crops, the training device blurs and adds noise.

Decoded images are held in memory once (a few hundred photos fit easily), so a step costs only
crops on the CPU, done a few steps ahead in a background thread (:class:`Prefetcher`).
Synthetic samples are cropped with a margin of half a kernel on each side, blurred on the
device by one batched grouped convolution, and cropped back, so their borders are real blur
rather than padding. Every random choice comes from generators whose state is part of the
checkpoint, so a resumed run draws exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..blur import add_gaussian_noise, blur, kernel_bank
from ..blur import trajectory as _trajectory
from ..safe_files import save_array
from ..config import TrainConfig
from ..image_io import read_rgb
from ..pixels import halve_large
from .folders import DataSources

def _prepare(path: Path, downsample: bool) -> np.ndarray:
    rgb = read_rgb(path)
    return halve_large(rgb) if downsample else rgb


@dataclass
class TrainingImages:
    """Decoded uint8 (H, W, 3) images."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    sharp: list[np.ndarray]


def load_training_images(sources: DataSources, downsample: bool) -> TrainingImages:
    return TrainingImages(
        pairs=[(_prepare(b, downsample), _prepare(s, downsample)) for b, s in sources.pairs],
        sharp=[_prepare(p, downsample) for p in sources.sharp])


class ShardedOrder:
    """Epoch-wise random permutations of ``range(n)``, split between ranks like DistributedSampler."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.position = 0, 0
        self._order = self._shard()

    def _shard(self) -> np.ndarray:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        # Pad to a multiple of world so every rank takes the same number of items per epoch.
        order = np.resize(order, -(-self.n // self.world) * self.world)
        return order[self.rank::self.world]

    def next(self) -> int:
        if self.position >= len(self._order):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._shard()
        index = int(self._order[self.position])
        self.position += 1
        return index

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shard()


@dataclass
class RawBatch:
    """CPU crops for one step. ``margin`` extra pixels surround each synthetic sharp crop."""

    synthetic: torch.Tensor  # (S, 3, crop + 2 * margin, crop + 2 * margin) uint8
    kernel_index: torch.Tensor  # (S,) int64 into the kernel bank
    pair_blurred: torch.Tensor  # (P, 3, crop, crop) uint8
    pair_sharp: torch.Tensor  # (P, 3, crop, crop) uint8
    flip: torch.Tensor  # (S + P,) bool
    noise_variance: torch.Tensor  # (S + P,) float32
    margin: int


def _pad_to(images: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Reflect-pad (edge-pad if far too small) equal-shaped images to at least size x size."""
    h, w = images[0].shape[:2]
    if h >= size and w >= size:
        return images
    pad = ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0))
    return [np.pad(im, pad, mode="reflect" if size - max(h, w) < min(h, w) else "edge")
            for im in images]


def _crop(rng: np.random.Generator, images: list[np.ndarray], size: int) -> list[np.ndarray]:
    """The same random size x size window from each (equal-shaped) image; reflect-pad if small."""
    images = _pad_to(images, size)
    h, w = images[0].shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return [im[top:top + size, left:left + size] for im in images]


def _centre_crop(images: list[np.ndarray], size: int) -> list[np.ndarray]:
    images = _pad_to(images, size)
    h, w = images[0].shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return [im[top:top + size, left:left + size] for im in images]


def _stack(crops: list[np.ndarray], size: int) -> torch.Tensor:
    if not crops:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


class BatchStream:
    """Draws :class:`RawBatch` es for one rank; ``state_dict`` captures everything random."""

    def __init__(self, images: TrainingImages, cfg: TrainConfig, seed: int, rank: int = 0,
                 world: int = 1, batch_size: int | None = None):
        if not images.pairs and not images.sharp:
            raise ValueError("no training images found")
        self.images, self.cfg = images, cfg
        self.batch_size = batch_size or cfg.batch_size
        self.margin = cfg.kernel_size // 2
        # Per-rank generator: ranks draw different crops, kernels and noise.
        self.rng = np.random.default_rng([seed, rank, 1])
        self.sharp_order = ShardedOrder(len(images.sharp), seed, rank, world) if images.sharp else None
        self.pair_order = ShardedOrder(len(images.pairs), seed + 1, rank, world) if images.pairs else None
        self.bank_size = cfg.kernel_bank_size

    def _synthetic_count(self) -> int:
        if self.pair_order is None:
            return self.batch_size
        if self.sharp_order is None:
            return 0
        return int(self.rng.binomial(self.batch_size, self.cfg.synthetic_fraction))

    def next(self) -> RawBatch:
        crop = self.cfg.crop
        n_syn = self._synthetic_count()
        n_pair = self.batch_size - n_syn
        synthetic = [_crop(self.rng, [self.images.sharp[self.sharp_order.next()]],
                           crop + 2 * self.margin)[0] for _ in range(n_syn)]
        pairs = [_crop(self.rng, list(self.images.pairs[self.pair_order.next()]), crop)
                 for _ in range(n_pair)]
        return RawBatch(
            synthetic=_stack(synthetic, crop + 2 * self.margin),
            kernel_index=torch.from_numpy(self.rng.integers(0, self.bank_size, n_syn)),
            pair_blurred=_stack([p[0] for p in pairs], crop),
            pair_sharp=_stack([p[1] for p in pairs], crop),
            flip=torch.from_numpy(self.rng.random(self.batch_size) < 0.5),
            noise_variance=torch.from_numpy(
                self.rng.uniform(0, self.cfg.max_noise_variance, self.batch_size).astype(np.float32)),
            margin=self.margin)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state,
                "sharp_order": self.sharp_order.state_dict() if self.sharp_order else None,
                "pair_order": self.pair_order.state_dict() if self.pair_order else None}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        if self.sharp_order:
            self.sharp_order.load_state_dict(state["sharp_order"])
        if self.pair_order:
            self.pair_order.load_state_dict(state["pair_order"])


class Prefetcher:
    """Draws a :class:`BatchStream`'s batches ``depth`` steps ahead in a background thread.

    The CPU crops the next batches while the device trains on this one. ``state_dict`` is the
    stream's state after the last batch handed out (not after the ones queued), so a
    checkpoint resumes exactly where training was. ``pin`` puts batches in page-locked memory
    for asynchronous copies to a GPU.
    """

    def __init__(self, stream: BatchStream, depth: int = 2, pin: bool = False):
        self.stream, self.pin = stream, pin
        self._state = stream.state_dict()
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="darkdeblur-prefetch", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            while not self._stop.is_set():
                raw = self.stream.next()
                if self.pin and hasattr(raw, "pin_memory"):
                    raw = raw.pin_memory()
                elif self.pin:
                    raw = RawBatch(**{k: v.pin_memory() if isinstance(v, torch.Tensor) else v
                                      for k, v in vars(raw).items()})
                self._put((raw, self.stream.state_dict()))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            self._put((err, None))

    def _put(self, item) -> None:
        while not self._stop.is_set():  # never block past close()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self) -> RawBatch:
        raw, state = self._queue.get()
        if isinstance(raw, BaseException):
            raise raw
        self._state = state
        return raw

    def state_dict(self) -> dict:
        return self._state

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("DARKDEBLUR_CACHE", Path(base) / "darkdeblur"))


def make_kernel_bank(cfg: TrainConfig, seed: int, count: int = 1024) -> torch.Tensor:
    """(count, k, k) float32 camera-shake kernels shared by all ranks (``cfg.kernel_recipe``).

    Drawing 1024 trajectories takes seconds, so banks are cached on disk (``$DARKDEBLUR_CACHE``,
    default ``~/.cache/darkdeblur``) under a key made of the arguments and the trajectory code
    itself; a cache that cannot be written is skipped.
    """
    if cfg.kernel_recipe == "deblurgan":
        args = dict(size=cfg.kernel_size, recipe="deblurgan")
    else:
        args = dict(size=cfg.kernel_size, min_length=cfg.min_blur_length,
                    max_length=cfg.max_blur_length, exposure=1.0, anxiety=cfg.blur_anxiety,
                    recipe=cfg.kernel_recipe)
    key = hashlib.sha256(repr((seed, count, sorted(args.items()))).encode()
                         + Path(_trajectory.__file__).read_bytes()).hexdigest()[:20]
    path = _cache_dir() / f"kernel-bank-{key}.npy"
    try:
        return torch.from_numpy(np.load(path))
    except (OSError, ValueError):
        pass
    bank = kernel_bank(seed, count, **args)
    try:
        save_array(path, bank)
    except OSError:
        pass
    return torch.from_numpy(bank)


def device_batch(raw: RawBatch, kernels: torch.Tensor, device: torch.device,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Finish a batch on ``device``: blur synthetic crops, flip, add noise.

    Returns (blurred, sharp), each (B, 3, crop, crop) float32 in [0, 1].
    """
    m = raw.margin
    blurred, sharp = [], []
    if raw.synthetic.shape[0]:
        big = raw.synthetic.to(device, non_blocking=True).float() / 255.0
        blurred_big = blur(big, kernels[raw.kernel_index.to(kernels.device)].to(device))
        end = big.shape[-1] - m
        blurred.append(blurred_big[..., m:end, m:end])
        sharp.append(big[..., m:end, m:end])
    if raw.pair_blurred.shape[0]:
        blurred.append(raw.pair_blurred.to(device, non_blocking=True).float() / 255.0)
        sharp.append(raw.pair_sharp.to(device, non_blocking=True).float() / 255.0)
    blurred_t, sharp_t = torch.cat(blurred), torch.cat(sharp)
    flip = raw.flip.to(device).view(-1, 1, 1, 1)
    blurred_t = torch.where(flip, blurred_t.flip(-1), blurred_t)
    sharp_t = torch.where(flip, sharp_t.flip(-1), sharp_t)
    blurred_t = add_gaussian_noise(blurred_t, raw.noise_variance.to(device), generator)
    return blurred_t.contiguous(), sharp_t.contiguous()


def validation_set(sources: DataSources, cfg: TrainConfig, count: int = 8,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small fixed validation batch: (blurred, sharp), each (N, 3, crop, crop) float32 in [0, 1].

    Real pairs come first, then sharp photos blurred by a fixed bank of ``seed``'s kernels
    (no noise); centre crops of ``cfg.crop`` pixels, at most ``count`` images, CPU tensors.
    """
    crop, margin = cfg.crop, cfg.kernel_size // 2
    pairs = [_centre_crop([_prepare(b, cfg.downsample), _prepare(s, cfg.downsample)], crop)
             for b, s in sources.pairs[:count]]
    photos = [_centre_crop([_prepare(p, cfg.downsample)], crop + 2 * margin)[0]
              for p in sources.sharp[:count - len(pairs)]]
    if not pairs and not photos:
        raise ValueError("no validation images found")
    blurred, sharp = [], []
    if pairs:
        blurred.append(_stack([b for b, _ in pairs], crop).float() / 255)
        sharp.append(_stack([s for _, s in pairs], crop).float() / 255)
    if photos:
        big = _stack(photos, crop + 2 * margin).float() / 255
        end = crop + margin
        blurred.append(blur(big, make_kernel_bank(cfg, seed, len(photos)))[..., margin:end, margin:end])
        sharp.append(big[..., margin:end, margin:end])
    return torch.cat(blurred).contiguous(), torch.cat(sharp).contiguous()
