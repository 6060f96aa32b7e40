"""Shared fixtures: small photo folders built from scikit-image's bundled images."""
from __future__ import annotations

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


def require_shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"{path} is absent: these checks need the shared photo collection beside the project")
    return path
