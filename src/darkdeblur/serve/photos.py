"""What the web page does to one photo: decode the upload, restore it, write what the page shows.

The download is written by :func:`darkdeblur.image_io.save_image`, as ``darkdeblur deblur``
writes it: the input's format (GIF and other read-only formats become PNG), 16 bits kept in
PNG and TIFF, alpha, ICC profile and EXIF kept. The page's previews are 8-bit PNG (JPEG for
large photos), because browsers show neither 16-bit TIFF nor every input format.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..deblur_files import FORMAT_SUFFIXES
from ..image_io import ImageReadError, LoadedImage, load_image, save_image, write_rgb
from ..kernel_picture import kernel_picture
from ..pixels import to_8bit

PNG_PREVIEW_PIXELS = 4_000_000  # larger previews are JPEG: PNG takes seconds to encode them
QUALITY = 95  # the CLI's default JPEG and WebP quality
MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff", ".webp": "image/webp",
               ".bmp": "image/bmp"}


class PhotoError(Exception):
    """A photo the page cannot use; ``status`` is the HTTP status, the message one line for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Result:
    """A restored photo's files in its private folder, by the names the page asks for."""

    folder: Path
    files: dict[str, Path]
    download_name: str
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)


class Engines:
    """Engines by method, each built on first use (on the worker, so loading waits its turn)."""

    def __init__(self, factory: Callable[[str], object]):
        self._factory = factory
        self._engines: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, method: str):
        with self._lock:
            if method not in self._engines:
                self._engines[method] = self._factory(method)
            return self._engines[method]


def decode(path: Path, max_pixels: int) -> LoadedImage:
    """Decode an upload (its type from its bytes alone); :class:`PhotoError` with a 4xx status."""
    try:
        return load_image(path, max_pixels=max_pixels)
    except ImageReadError as err:
        reason = str(err).removeprefix(f"{path}: ")  # the private file name means nothing to the user
        reason = reason.replace(" (--max-megapixels)", "")
        if "over the limit" in reason:
            raise PhotoError(413, f"the photo is too large: {reason}") from None
        if reason.startswith(("not an image", "unsupported image")):
            raise PhotoError(415, f"{reason}; upload a JPEG, PNG, TIFF, WebP, BMP or GIF photo") from None
        raise PhotoError(422, f"cannot use this photo: {reason}") from None


def safe_stem(name: str) -> str:
    """A download name from an uploaded file name: letters, digits, ``-``, ``_`` and ``.`` only.

    >>> safe_stem("../../etc/passwd.jpg"), safe_stem("été 2024.PNG"), safe_stem("")
    ('passwd', 't_2024', 'photo')
    """
    stem = re.split(r"[\\/]", name)[-1].rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return stem[:80] or "photo"


def output_suffix(loaded: LoadedImage) -> str:
    """The CLI's output format for this source: its own, PNG for formats darkdeblur cannot write."""
    fmt = "JPEG" if loaded.format == "MPO" else loaded.format  # MPO: the JPEG of many phone cameras
    return FORMAT_SUFFIXES.get(fmt.lower(), ".png")


def restore(engine, loaded: LoadedImage, folder: Path, stem: str) -> Result:
    """Restore ``loaded`` and write the download, both previews and the kernel into ``folder``."""
    try:
        restoration = engine.restore(loaded.rgb)
    except MemoryError:
        raise PhotoError(507, "out of memory while deblurring this photo; try a smaller one") from None
    except RuntimeError as err:
        if "out of memory" not in str(err).lower():
            raise
        raise PhotoError(507, "out of memory while deblurring this photo; try a smaller one") from None
    suffix = output_suffix(loaded)
    files = {"download": folder / f"download{suffix}"}
    save_image(files["download"], restoration.image, loaded, quality=QUALITY)
    height, width = loaded.rgb.shape[:2]
    preview = ".png" if width * height <= PNG_PREVIEW_PIXELS else ".jpg"
    for name, pixels in (("input", loaded.rgb), ("result", restoration.image)):
        files[name] = folder / f"{name}-preview{preview}"
        write_rgb(files[name], pixels if pixels.dtype == np.uint8 else to_8bit(pixels), quality=QUALITY)
    if restoration.kernel is not None:
        files["kernel"] = folder / "kernel.png"
        write_rgb(files["kernel"], kernel_picture(restoration.kernel))
    return Result(folder=folder, files=files, download_name=f"{stem}-deblurred{suffix}", width=width,
                  height=height, warnings=list(restoration.warnings))
