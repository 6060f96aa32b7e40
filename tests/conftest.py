"""Shared fixtures and builders: small photo folders from scikit-image's bundled images, image files
made byte by byte (16-bit PNGs, EXIF blocks, corrupted files)."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

# Tests use tiny tensors: one thread avoids OpenMP oversubscription when other work shares the CPU.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def small_photo(name: str, size: tuple[int, int] = (96, 80)) -> np.ndarray:
    """A bundled scikit-image photo as uint8 (H, W, 3), resized to ``size`` (width, height)."""
    image = getattr(skdata, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.asarray(Image.fromarray(image[..., :3]).resize(size, Image.BICUBIC))


@pytest.fixture(scope="session")
def sharp_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sharp")
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(small_photo(name)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A random-weight ``tiny`` generator's weights file (seeded): a gan engine that runs in milliseconds."""
    from darkdeblur.checkpoint import export_weights
    from darkdeblur.config import tiny
    from darkdeblur.models import build_generator
    cfg = tiny()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    export_weights(build_generator(cfg.model), cfg, path)
    return path


@pytest.fixture(scope="session")
def paired_folder(tmp_path_factory) -> Path:
    """blur/ + sharp/ pairs: a box blur of each photo (a stand-in for real motion blur)."""
    from darkdeblur.blur import blur
    from darkdeblur.pixels import to_tensor, to_uint8
    root = tmp_path_factory.mktemp("pairs")
    (root / "blur").mkdir()
    (root / "sharp").mkdir()
    kernel = torch.zeros(5, 5)
    kernel[2, :] = 0.2  # horizontal 5 px motion
    for name in ("astronaut", "chelsea", "coffee"):
        sharp = small_photo(name)
        Image.fromarray(sharp).save(root / "sharp" / f"{name}.png")
        Image.fromarray(to_uint8(blur(to_tensor(sharp), kernel))).save(root / "blur" / f"{name}.png")
    return root


@pytest.fixture()
def load_benchmark(monkeypatch):
    """``load_benchmark("speed")`` imports ``benchmarks/speed.py`` as a module, for this test only."""
    import importlib.util
    import sys
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))  # benchmarks import one another by bare name

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load


# ----------------------------------------------------------------------------- image files

MAKE, ORIENTATION = 0x010F, 0x0112


def png(width: int, height: int, depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG from first principles: a header and the (unfiltered) rows in one IDAT chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def png16_bytes(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB or RGBA PNG, written without Pillow (which cannot)."""
    height, width, channels = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    return png(width, height, 16, {3: 2, 4: 6}[channels], rows)


def exif_bytes(orientation: int = 1, make: str = "TestCam") -> bytes:
    exif = Image.Exif()
    exif[MAKE] = make
    exif[ORIENTATION] = orientation
    return exif.tobytes()


def random_pixels(shape, dtype=np.uint8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)


def encoded(fmt: str, shape=(64, 64, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(random_pixels(shape, seed=8)).save(buffer, format=fmt)
    return buffer.getvalue()


def corrupted(data: bytes, start: int = 200, length: int = 60) -> bytes:
    """The same file with a run of its compressed pixel data zeroed (header intact)."""
    return data[:start] + bytes(length) + data[start + length:]


def require_shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"{path} is absent: these checks need the shared photo collection beside the project")
    return path
