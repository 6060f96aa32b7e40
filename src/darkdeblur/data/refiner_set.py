"""Training crops for the hybrid refiner: (blurred, the dcp engine's deconvolution, sharp).

Made once from a kernel cache (:mod:`darkdeblur.data.engine_kernels`): each crop is rebuilt from
its index, quantised to 8 bits as a photo on disk would be, and deconvolved with the kernel the
engine estimated on it, with the engine's noise-adaptive weight, channel by channel, exactly as
:meth:`darkdeblur.engines.dcp.DcpRestorer.deconvolve_regions` does; where the engine refused a
kernel the "deconvolution" is the blurred crop itself, as at inference. A crop, its noise and
its kernel are fixed by its index, so its deconvolution is too: computing it once here (about
0.3 s per crop on one thread) instead of in every batch is exact, and keeps the training steps
for the network.

Stored as uint8 chunks ``crops_00012.npy`` of shape (n, 3, crop, crop, 3) -- blurred,
deconvolved, sharp -- which training memory-maps (both training processes share the pages).
Chunks that exist are not redone, so an interrupted run continues. The last ``HELD_OUT`` crops
of the kernel cache are never trained on: they are the run's validation set. For a refiner that
also sees the weak deconvolution (``ModelConfig.weak_factor`` of the weight), ``weak_00012.npy``
chunks of shape (n, crop, crop, 3) sit beside them (``make-data --weak-deconvolution``).

A run can train on several sets (``--data SET OTHER_SET``, e.g. one from a cache of clean
crops); validation stays on the first one's held-out crops. (Clean copies of noisy crops,
deconvolved with the kernels estimated on the noisy ones, are no substitute: those kernels are
worse than a clean photo's, and the sharp deconvolution a clean photo gets rings with them,
-0.8 dB below the blurred crop on average; see docs/training-notes.md.)
"""
from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..blur.misfit import MisfitFallback, deconvolution_misfit, misfit_level, trim_kernel
from ..blur.nonblind import deconvolve, noise_adaptive_weight
from ..pixels import to_tensor, to_uint8
from ..safe_files import atomic_write
from .engine_kernels import CHUNK, CropRecipe, draw_crop, read_kernel_cache, run_chunks
from .folders import DataSources

RECORD = "refiner-set.json"
MISFITS = "misfits.npy"  # per crop: darkdeblur.blur.misfit.deconvolution_misfit (NaN: refused kernel)
NOISE = "noise.npy"  # per crop: the noise sigma the engine estimates on its blurred pixels
# The weak deconvolution of every crop (the "+weak" refiner input): the same kernel at a fraction of
# the prior's weight, sharper and noisier; uint8 chunks (n, crop, crop, 3) beside the crops', and
# the record of the fraction they were made with, written last
WEAK_CHUNK, WEAK_GLOB = "weak_{:05d}.npy", "weak_*.npy"
WEAK_PLAN, WEAK_RECORD = "weak-deconvolution.plan.json", "weak-deconvolution.json"
PLAN = "refiner-set.plan.json"  # written first; the record, written last, says the set is complete
HELD_OUT = 64  # the kernel cache's last crops: validation only
EXPONENT = 0.8  # the dcp engine's hyper-Laplacian exponent (DcpSettings.exponent)
CONTEXT = 64  # pixels of a crop's region deconvolved around it (two of the engine's largest kernels)


def is_refiner_set(folder: str | Path) -> bool:
    return (Path(folder) / RECORD).is_file()


def _sources(record: dict) -> DataSources:
    return DataSources(pairs=[(Path(b), Path(s)) for b, s in record["pairs"]],
                       sharp=[Path(p) for p in record["sharp"]])


def deconvolve_crop(blurred: np.ndarray, kernel: np.ndarray | None, noise_from: np.ndarray | None = None,
                    factor: float = 1.0) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3): the dcp engine's deconvolution with ``kernel``, its
    weight set from the noise level of ``noise_from`` (default: ``blurred`` itself), times
    ``factor`` (below 1: the weak deconvolution, :data:`WEAK_CHUNK`)."""
    if kernel is None:
        return blurred.copy()
    from ..engines.dcp import noise_sigma  # the engine's own estimate (imports scikit-image)

    weight = factor * noise_adaptive_weight(noise_sigma(blurred if noise_from is None else noise_from))
    image = to_tensor(blurred)
    k = torch.from_numpy(np.ascontiguousarray(kernel, np.float32))
    channels = [deconvolve(image[:, c:c + 1], k, weight, EXPONENT) for c in range(3)]
    return to_uint8(torch.cat(channels, 1).clamp(0, 1)[0])


def deconvolve_in_context(crop: dict, kernel: np.ndarray | None, side: int, factor: float = 1.0) -> np.ndarray:
    """The deconvolution of a drawn crop as the engine makes it inside a photo: with up to
    ``CONTEXT`` pixels of its region around it (a deconvolution rings near the border of what it
    is given, a photo's regions only at the photo's border), weighted by the region's noise
    (times ``factor``)."""
    region = to_uint8(crop["around"])
    (row, col), (height, width) = crop["at"], region.shape[:2]
    top, left = max(row - CONTEXT, 0), max(col - CONTEXT, 0)
    bottom, right = min(row + side + CONTEXT, height), min(col + side + CONTEXT, width)
    deconvolved = deconvolve_crop(region[top:bottom, left:right], kernel, noise_from=region, factor=factor)
    return deconvolved[row - top:row - top + side, col - left:col - left + side]


def _redrawn_crops(cache: str | Path, indices) -> tuple[int, Iterator[tuple[dict, np.ndarray | None]]]:
    """(the crops' side, each crop of ``indices`` redrawn from its kernel cache with the kernel
    the engine estimated on it, None where it refused one)."""
    torch.set_num_threads(1)
    record, _, kernels, refused = read_kernel_cache(cache)
    recipe, sources = CropRecipe(**record["recipe"]), _sources(record)
    images: dict = {}
    return recipe.crop, ((draw_crop(recipe, sources, images, int(index)), None if refused[index] else kernels[index])
                         for index in indices)


def _save(path: Path, array: np.ndarray) -> Path:
    """``array`` written to ``path`` atomically (a chunk, or a per-crop value cache)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a name
            np.save(f, array)

    atomic_write(path, write)
    return path


def _make_chunk(job: tuple) -> Path:
    cache, out, chunk, indices = job
    side, drawn = _redrawn_crops(cache, indices)
    crops = [np.stack([to_uint8(crop["blurred"]), deconvolve_in_context(crop, kernel, side), to_uint8(crop["sharp"])])
             for crop, kernel in drawn]
    return _save(Path(out) / f"crops_{chunk:05d}.npy", np.stack(crops))


def build_refiner_set(cache: str | Path, out: str | Path, workers: int = 2, progress: bool = True) -> int:
    """Write (or continue) the refiner's training crops under ``out``; return their number."""
    cache, out = Path(cache), Path(out)
    record, meta, kernels, refused = read_kernel_cache(cache)
    indices = np.array([m["index"] for m in meta])  # the crops' indices in the kernel cache
    out.mkdir(parents=True, exist_ok=True)
    mine = {"kernel_cache": str(cache), "crops": len(indices),
            "held_out_from_index": len(kernels) - min(HELD_OUT, len(kernels) // 2), "crop": record["recipe"]["crop"],
            "refused": int(refused[indices].sum()), "exponent": EXPONENT, "cache_recipe": record}
    if record["recipe"].get("region"):  # crops cut from regions are deconvolved with context
        mine["context"] = CONTEXT
    for name in (RECORD, PLAN):
        if (out / name).is_file() and json.loads((out / name).read_text()) != mine:
            raise ValueError(f"{out}: holds refiner crops made from another kernel cache; choose a new --out")
    (out / PLAN).write_text(json.dumps(mine, indent=2))
    np.save(out / "indices.npy", indices)
    jobs = [(cache, out, c, indices[c * CHUNK:(c + 1) * CHUNK]) for c in range(-(-len(indices) // CHUNK))
            if not (out / f"crops_{c:05d}.npy").is_file()]
    run_chunks(_make_chunk, jobs, workers, "deconvolving crops", progress)
    (out / RECORD).write_text(json.dumps(mine, indent=2))  # last: a set with a record is complete
    return len(indices)


def _make_weak_chunk(job: tuple) -> Path:
    cache, out, chunk, indices, factor = job
    side, drawn = _redrawn_crops(cache, indices)
    weak = [deconvolve_in_context(crop, kernel, side, factor) for crop, kernel in drawn]
    return _save(Path(out) / WEAK_CHUNK.format(chunk), np.stack(weak))


def build_weak_deconvolutions(folder: str | Path, factor: float, workers: int = 2, progress: bool = True) -> int:
    """Write (or continue) the weak deconvolution of every crop of the refiner set ``folder``:
    its kernel at ``factor`` times the engine's weight; return the number of crops."""
    folder = Path(folder)
    if not 0 < factor <= 1:
        raise ValueError(f"{folder}: a weak deconvolution's factor is in (0, 1], got {factor:g}")
    if not is_refiner_set(folder):
        raise FileNotFoundError(f"{folder}: not a complete refiner set (no {RECORD})")
    record = json.loads((folder / RECORD).read_text())
    mine = {"factor": factor, "crops": record["crops"]}
    for name in (WEAK_RECORD, WEAK_PLAN):  # the plan, written first, guards an interrupted build
        if (folder / name).is_file() and (theirs := json.loads((folder / name).read_text())) != mine:
            raise ValueError(f"{folder}: holds weak deconvolutions at {theirs['factor']:g} of the weight for "
                             f"{theirs['crops']} crops, not {factor:g} for {record['crops']}; remove its "
                             f"{WEAK_GLOB}, {WEAK_PLAN} and {WEAK_RECORD} first")
    if (folder / WEAK_RECORD).is_file():
        return record["crops"]
    (folder / WEAK_PLAN).write_text(json.dumps(mine, indent=2))
    indices = np.load(folder / "indices.npy")
    jobs = [(record["kernel_cache"], folder, c, indices[c * CHUNK:(c + 1) * CHUNK], factor)
            for c in range(-(-len(indices) // CHUNK)) if not (folder / WEAK_CHUNK.format(c)).is_file()]
    run_chunks(_make_weak_chunk, jobs, workers, "weak deconvolutions", progress)
    (folder / WEAK_RECORD).write_text(json.dumps(mine, indent=2))  # last: the chunks are complete
    return record["crops"]


def _per_crop(folder: Path, name: str, value: Callable[[np.ndarray, int], float]) -> np.ndarray:
    """(N,) float32: ``value(crop, index in the kernel cache)`` of every crop, computed once and
    kept in ``folder/name``."""
    path = folder / name
    if path.is_file():
        return np.load(path)
    indices = np.load(folder / "indices.npy")
    chunks = [np.load(p, mmap_mode="r") for p in sorted(folder.glob("crops_*.npy"))]
    values = np.array([value(np.asarray(crop), int(index))
                       for crop, index in zip((c for chunk in chunks for c in chunk), indices)], np.float32)
    _save(path, values)
    return values


def crop_misfits(folder: str | Path) -> np.ndarray:
    """(N,) float32: each crop's deconvolution misfit (NaN where the kernel was refused), computed
    once from the crops and their kernel cache (about 30 ms a crop) and kept in ``misfits.npy``."""
    from ..engines.dcp import noise_sigma  # imports scikit-image

    folder = Path(folder)
    if (folder / MISFITS).is_file():
        return np.load(folder / MISFITS)
    record = json.loads((folder / RECORD).read_text())
    _, _, kernels, refused = read_kernel_cache(record["kernel_cache"])

    def misfit(crop: np.ndarray, index: int) -> float:
        if refused[index]:
            return np.nan
        return deconvolution_misfit(to_tensor(crop[0]), to_tensor(crop[1]), torch.from_numpy(trim_kernel(kernels[index])),
                                    noise_sigma(crop[0]) ** 2)

    return _per_crop(folder, MISFITS, misfit)


def crop_noise(folder: str | Path) -> np.ndarray:
    """(N,) float32: the noise sigma of each crop's blurred pixels, as the engine estimates a
    photo's (:func:`darkdeblur.engines.dcp.noise_sigma`), kept in ``noise.npy`` (a few ms a crop)."""
    from ..engines.dcp import noise_sigma

    return _per_crop(Path(folder), NOISE, lambda crop, index: noise_sigma(crop[0]))


def weak_chunks(folder: Path, factor: float) -> list[np.ndarray]:
    """The memory-mapped weak deconvolutions of a refiner set, made with ``factor``."""
    record = folder / WEAK_RECORD
    cache = json.loads((folder / RECORD).read_text())["kernel_cache"]
    remake = f"darkdeblur make-data --refiner-set {cache} --out {folder} --weak-deconvolution"
    if not record.is_file():
        raise FileNotFoundError(f"{folder}: no weak deconvolutions ({WEAK_RECORD}); make them with {remake}")
    made = json.loads(record.read_text())["factor"]
    if made != factor:
        raise ValueError(f"{folder}: its weak deconvolutions have {made:g} of the weight, this refiner's "
                         f"{factor:g}; remove its {WEAK_GLOB}, {WEAK_PLAN} and {WEAK_RECORD}, then {remake}")
    return [np.load(p, mmap_mode="r") for p in sorted(folder.glob(WEAK_GLOB))]


class RefinerCrops:
    """The crops of one or more refiner sets, memory-mapped: ``crops[i]`` is uint8
    (3, crop, crop, 3), or (4, ...) with ``weak``: blurred, deconvolved, sharp, weak
    deconvolution; ``training`` lists the crops trained on, ``held_out`` the first set's
    validation crops (the kernel cache's last ``HELD_OUT``, never trained on in any set)."""

    def __init__(self, *folders: str | Path, misfit: bool = False, fallback: MisfitFallback | None = None,
                 weak: float | None = None):
        self.chunks, self.training, self.held_out = [], [], []
        # with ``weak`` (the fraction of the weight they were made with): chunks beside ``chunks``
        self.weak: list[np.ndarray] | None = [] if weak is not None else None
        self.records = []
        # with ``misfit``: each crop's misfit level, the refiner's seventh input channel; with
        # ``fallback`` too, the share that rule gives it (from the level and the crop's noise)
        self.levels: np.ndarray | None = None
        self.shares: np.ndarray | None = None
        levels, sigmas = [], []
        for number, folder in enumerate(map(Path, folders)):
            if not is_refiner_set(folder):
                raise FileNotFoundError(f"{folder}: not a complete refiner set (no {RECORD}); make one with "
                                        f"darkdeblur make-data --refiner-set KERNEL_CACHE --out {folder}")
            record = json.loads((folder / RECORD).read_text())
            chunks = [np.load(p, mmap_mode="r") for p in sorted(folder.glob("crops_*.npy"))]
            indices = np.load(folder / "indices.npy")
            if sum(len(c) for c in chunks) != record["crops"] or len(indices) != record["crops"]:
                raise ValueError(f"{folder}: {sum(len(c) for c in chunks)} crops on disk, the record says "
                                 f"{record['crops']}")
            start = len(self)
            for position, index in enumerate(indices):
                held = index >= record["held_out_from_index"]
                if not held:
                    self.training.append(start + position)
                elif number == 0:
                    self.held_out.append(start + position)
            self.chunks += [(c, start + k * CHUNK) for k, c in enumerate(chunks)]
            if weak is not None:
                extra = weak_chunks(folder, weak)
                if [len(c) for c in extra] != [len(c) for c in chunks]:
                    raise ValueError(f"{folder}: its weak deconvolutions do not match its crops "
                                     f"({sum(len(c) for c in extra)} for {len(indices)}); remove its "
                                     f"{WEAK_GLOB}, {WEAK_PLAN} and {WEAK_RECORD} and make them again")
                self.weak += extra
            self.records.append(record)
            if misfit:
                levels += [misfit_level(None if np.isnan(m) else float(m)) for m in crop_misfits(folder)]
            if misfit and fallback is not None:
                sigmas.append(crop_noise(folder))
        if misfit:
            self.levels = np.array(levels, np.float32)
        if misfit and fallback is not None:
            self.shares = fallback.share(self.levels, np.concatenate(sigmas))
        self.record = self.records[0]
        self.starts = [start for _, start in self.chunks]

    def __len__(self) -> int:
        return sum(len(c) for c, _ in self.chunks)

    def __getitem__(self, index: int) -> np.ndarray:
        # a sample's chunk by bisection over the chunks' first indices (a hot path: every window)
        position = bisect.bisect_right(self.starts, index) - 1
        chunk, start = self.chunks[max(position, 0)]
        if not 0 <= index - start < len(chunk):
            raise IndexError(index)
        if self.weak is not None:
            return np.concatenate([chunk[index - start], self.weak[max(position, 0)][index - start][None]])
        return chunk[index - start]

    def describe(self) -> str:
        sets = " + ".join(f"{r['crops']} from {r['kernel_cache']}" for r in self.records)
        refused = sum(r["refused"] for r in self.records)
        return (f"{len(self.training)} refiner crops of {self.record['crop']} px ({sets}; {refused} with a "
                f"refused kernel; {len(self.held_out)} held out for validation)")


def dihedral(crop: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of (..., H, W, C) pixels: blur, its kernel and its
    deconvolution all turn together, so every one is a valid training sample."""
    if code & 1:
        crop = crop[..., :, ::-1, :]
    if code & 2:
        crop = crop[..., ::-1, :, :]
    if code & 4:
        crop = np.swapaxes(crop, -3, -2)
    return crop


class RefinerStream:
    """Batches of random ``size`` windows of the training crops, for one rank; the state
    (order and generator) goes in the checkpoint, like :class:`darkdeblur.data.BatchStream`."""

    def __init__(self, crops: RefinerCrops, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        from .stream import ShardedOrder

        self.crops, self.size, self.batch_size = crops, size, batch_size
        self.side = crops[0].shape[1]
        self.rng = np.random.default_rng([seed, rank, 2])
        self.order = ShardedOrder(len(crops.training), seed, rank, world)

    def next(self) -> "RefinerBatch":
        side = self.side
        size = min(self.size, side)
        windows, levels, shares = [], [], []
        for _ in range(self.batch_size):
            index = self.crops.training[self.order.next()]
            crop = self.crops[index]
            if self.crops.levels is not None:
                levels.append(self.crops.levels[index])
            if self.crops.shares is not None:
                shares.append(self.crops.shares[index])
            top, left = (int(v) for v in self.rng.integers(0, side - size + 1, 2))
            window = dihedral(crop[:, top:top + size, left:left + size], int(self.rng.integers(8)))
            windows.append(np.ascontiguousarray(window))
        stack = torch.from_numpy(np.stack(windows))  # (B, 3 or 4, size, size, 3)
        return RefinerBatch(stack.permute(0, 1, 4, 2, 3).contiguous(),
                            torch.tensor(levels) if levels else None, torch.tensor(shares) if shares else None)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order.load_state_dict(state["order"])


class RefinerBatch:
    """uint8 (B, 3 or 4 images, 3 channels, H, W): blurred, deconvolved, sharp (and the weak
    deconvolution); and for a refiner that sees them, each crop's misfit level (B,) float32 and
    its fall-back rule's share (B,)."""

    def __init__(self, pixels: torch.Tensor, levels: torch.Tensor | None = None,
                 shares: torch.Tensor | None = None):
        self.pixels, self.levels, self.shares = pixels, levels, shares

    def pin_memory(self) -> "RefinerBatch":
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return RefinerBatch(pin(self.pixels), pin(self.levels), pin(self.shares))

    def to_device(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs (B, 6-10, H, W), sharp (B, 3, H, W)) float32 in [0, 1] on ``device``: the
        blurred crop, its misfit level and rule's share as constant channels (if any), the weak
        deconvolution (if any), the deconvolution."""
        pixels = self.pixels.to(device, non_blocking=True).float() / 255.0
        blurred, deconvolved, sharp = pixels[:, 0], pixels[:, 1], pixels[:, 2]
        constant = lambda values: values.to(device).view(-1, 1, 1, 1).expand(-1, 1, *blurred.shape[-2:])  # noqa: E731
        between = [constant(v) for v in (self.levels, self.shares) if v is not None]
        between += [pixels[:, 3]] if pixels.shape[1] == 4 else []
        return torch.cat([blurred, *between, deconvolved], 1), sharp.contiguous()


def refiner_validation(crops: RefinerCrops, count: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out crops, whole: (inputs (N, 6-10, crop, crop), sharp (N, 3, crop, crop))."""
    chosen = crops.held_out[:count]
    batch = torch.from_numpy(np.stack([np.asarray(crops[i]) for i in chosen])).permute(0, 1, 4, 2, 3)
    levels = None if crops.levels is None else torch.from_numpy(crops.levels[chosen])
    shares = None if crops.shares is None else torch.from_numpy(crops.shares[chosen])
    return RefinerBatch(batch.contiguous(), levels, shares).to_device(torch.device("cpu"))
