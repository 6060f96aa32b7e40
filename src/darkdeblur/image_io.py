"""Reading and writing photos with Pillow.

Everything else in darkdeblur sees images as (H, W, 3) arrays; this module is the one place
that knows about files, EXIF orientation, bit depth, alpha and colour profiles.

:func:`load_image` returns a :class:`LoadedImage`: upright RGB pixels (uint8, or uint16 for
16-bit sources) plus what the output should carry over (alpha, ICC profile, EXIF with the
orientation reset, greyscale-ness). :func:`save_image` writes restored pixels with those.
:func:`read_rgb` / :func:`write_rgb` are the plain uint8 versions that training and evaluation use.
"""
from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from .safe_files import atomic_write
from .pixels import to_8bit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
WRITABLE_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
DEFAULT_MAX_PIXELS = 150_000_000  # a 100-megapixel camera fits; a decompression bomb does not
MIN_SIDE = 8  # smaller images carry nothing to deblur
ORIENTATION = 0x0112
EXIF_HEADER = b"Exif\x00\x00"
# TIFF tags worth carrying into another file's EXIF; the rest describe the TIFF's own layout.
_TIFF_DESCRIPTIVE_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825)
# What each output format can store; other modes are converted to RGB(A) first.
_SAVE_MODES = {"JPEG": ("L", "RGB"), "BMP": ("L", "RGB", "RGBA"), "WEBP": ("RGB", "RGBA"),
               "PNG": ("L", "LA", "RGB", "RGBA"), "TIFF": ("L", "LA", "RGB", "RGBA")}


class ImageReadError(Exception):
    """An input file that cannot be used as an image; the message names the file and the reason."""


class _Unsupported(Exception):
    """A well-formed image in a pixel format darkdeblur does not handle."""


@dataclass
class LoadedImage:
    """A decoded photo, upright, with what its deblurred version should keep.

    ``rgb`` is (H, W, 3) uint8, or uint16 for 16-bit sources (greyscale sources repeat their one
    channel); ``alpha`` is (H, W) of the same dtype or None. ``exif`` has the orientation reset
    to 1 because the pixels are already upright. ``format`` is Pillow's name for the source format.
    """

    path: Path
    rgb: np.ndarray
    alpha: np.ndarray | None
    grey: bool
    icc: bytes | None
    exif: bytes | None
    format: str

    @property
    def bit_depth(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8


# ------------------------------------------------------------------------------------------ reading


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               min_side: int = MIN_SIDE) -> LoadedImage:
    """Decode ``path``; raise :class:`ImageReadError` ("FILE: reason") for anything unusable.

    The pixel limit is checked on the header, before any pixel is decoded.
    """
    path = Path(path)
    _check_file(path)
    try:
        with _pillow_pixel_limit_off(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "corrupt EXIF" and similar: the file still decodes
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageReadError(
                        f"{path}: {width}x{height} is {round(width * height / 1e6, 1):g} megapixels, "
                        f"over the limit of {max_pixels / 1e6:g} (--max-megapixels)")
                if min(width, height) < min_side:
                    raise ImageReadError(f"{path}: too small to deblur ({width}x{height} pixels; "
                                         f"at least {min_side}x{min_side} needed)")
                return _decode(path, image)
    except ImageReadError:
        raise
    except _Unsupported as err:
        raise ImageReadError(f"{path}: unsupported image ({err})") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (unrecognised file format)") from None
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to decode it") from None
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise many types for bad data
        detail = str(err) or type(err).__name__
        if "truncated" in detail.lower():
            raise ImageReadError(f"{path}: truncated file (the image data ends early)") from None
        raise ImageReadError(f"{path}: corrupt image data ({detail})") from None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read any Pillow-readable image as uint8 (H, W, 3) RGB, upright per its EXIF orientation."""
    rgb = load_image(path, min_side=1).rgb
    return rgb if rgb.dtype == np.uint8 else to_8bit(rgb)


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read ({err.strerror or err})") from None
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if size == 0:
        raise ImageReadError(f"{path}: empty file")
    if not os.access(path, os.R_OK):
        raise ImageReadError(f"{path}: cannot read (permission denied)")


@contextmanager
def _pillow_pixel_limit_off():
    """Pillow's own bomb check uses a process-wide limit; ours is per call and exact."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _decode(path: Path, image: Image.Image) -> LoadedImage:
    wide = _wide_rawmode(image)  # before getexif(), which may decode the pixels
    exif_tags = image.getexif()
    orientation = exif_tags.get(ORIENTATION, 1)
    icc = image.info.get("icc_profile") or None
    if wide:
        pixels, grey = _read_wide(path, image, wide), wide.startswith("LA")
    else:
        pixels, grey, icc = _read_narrow(image, icc)
    pixels = _orient(pixels, orientation)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    colour = pixels[..., :-1] if pixels.shape[2] in (2, 4) else pixels
    alpha = pixels[..., -1] if pixels.shape[2] in (2, 4) else None
    rgb = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    return LoadedImage(path=path, rgb=rgb, alpha=alpha, grey=grey or colour.shape[2] == 1, icc=icc,
                       exif=_exif_bytes(image, exif_tags, orientation), format=image.format or "")


def _read_narrow(image: Image.Image, icc: bytes | None) -> tuple[np.ndarray, bool, bytes | None]:
    """Pixels of an 8-bit (or 16-bit greyscale) image: (H, W[, C]) uint8/uint16, grey, icc."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise _Unsupported(f"32-bit integer pixels ({mode})")
        return values.astype(np.uint16), True, icc
    if mode == "F":
        raise _Unsupported("floating-point pixels (mode F)")
    if mode == "CMYK":
        if icc:  # convert through the file's own CMYK profile into sRGB, and say so
            srgb = ImageCms.createProfile("sRGB")
            image = ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb,
                                              outputMode="RGB")
            return np.asarray(image), False, ImageCms.ImageCmsProfile(srgb).tobytes()
        return np.asarray(image.convert("RGB")), False, None
    if mode in ("1", "L"):
        return np.asarray(image.convert("L")), True, icc
    if mode in ("LA", "La"):
        return np.asarray(image.convert("LA")), True, icc
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and image.has_transparency_data)
    try:
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB")), False, icc
    except ValueError as err:  # e.g. "conversion from LAB to RGB not supported"
        raise _Unsupported(f"{mode} pixels: {err}") from None


def _tile_rawmode(args) -> str:
    return args if isinstance(args, str) else args[0]


def _wide_rawmode(image: Image.Image) -> str:
    """The rawmode if Pillow would narrow 16-bit colour samples to 8 bits on decoding, else ''."""
    if image.mode not in ("RGB", "RGBA") or not image.tile:
        return ""
    rawmode = _tile_rawmode(image.tile[0].args)
    return rawmode if rawmode[-4:] in (";16B", ";16L", ";16N") else ""


def _swapped(rawmode: str) -> str:
    """The rawmode that reads the other byte of each 16-bit sample ('RGB;16B' <-> 'RGB;16L')."""
    base, order = rawmode[:-1], rawmode[-1]
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    return base + ("L" if order == "B" else "B")


def _read_wide(path: Path, image: Image.Image, rawmode: str) -> np.ndarray:
    """16-bit RGB(A) samples, which Pillow can only decode as their high bytes.

    Decoding the file a second time with the byte order swapped yields the low bytes; the
    decoder (zlib, TIFF strips) is the same, so both passes see the same filtered rows.
    Greyscale + alpha (LA;16) has no swapped unpacker: its high bytes are scaled to 16 bits.
    """
    high = np.asarray(image).astype(np.uint16)
    if rawmode.startswith("LA"):
        return high * 257
    with Image.open(path) as again:
        again.tile = [tile._replace(args=_swapped(tile.args) if isinstance(tile.args, str)
                                    else (_swapped(tile.args[0]), *tile.args[1:]))
                      for tile in again.tile]
        low = np.asarray(again)
    return (high << 8) | low


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to (H, W, ...) pixels, as ImageOps.exif_transpose does."""
    flips = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.swapaxes(0, 1), 6: lambda a: a.swapaxes(0, 1)[:, ::-1],
             7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: a.swapaxes(0, 1)[::-1]}
    return flips[orientation](pixels) if orientation in flips else pixels


def _exif_bytes(image: Image.Image, tags: Image.Exif, orientation: int) -> bytes | None:
    """The source's EXIF as "Exif\\0\\0..." bytes with orientation 1; verbatim when already upright."""
    raw = image.info.get("exif")
    if isinstance(raw, bytes) and raw:
        raw = raw if raw.startswith(EXIF_HEADER) else EXIF_HEADER + raw
        if orientation == 1:
            return raw
        tags = Image.Exif()
        tags.load(raw)
    elif image.format == "TIFF":  # a TIFF's tags are its EXIF: keep the descriptive ones
        kept = Image.Exif()
        for tag in _TIFF_DESCRIPTIVE_TAGS:
            if tag in tags:
                kept[tag] = tags.get_ifd(tag) if tag in (0x8769, 0x8825) else tags[tag]
        if not len(kept):
            return None
        tags = kept
    else:
        return None
    if ORIENTATION in tags:
        tags[ORIENTATION] = 1
    return tags.tobytes()


# ------------------------------------------------------------------------------------------ writing


def output_format(path: str | os.PathLike) -> str:
    """Pillow's format name for an output path's extension; ValueError if it cannot be written."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt not in WRITABLE_FORMATS:
        raise ValueError(f"{path}: cannot write {suffix or 'files without an extension'}; "
                         f"use .jpg, .png, .tif, .webp or .bmp")
    return fmt


def save_image(path: str | os.PathLike, rgb: np.ndarray, source: LoadedImage, quality: int = 95) -> None:
    """Write restored ``rgb`` (dtype of ``source.rgb``) atomically with the source's alpha, ICC
    profile, EXIF and greyscale-ness; the format follows ``path``'s extension.

    16-bit pixels stay 16-bit in PNG and TIFF and are rounded to 8 bits for the other formats.
    A format that cannot hold something drops it: JPEG drops alpha; BMP drops the ICC profile
    and EXIF; 16-bit TIFF drops EXIF.
    """
    path = Path(path)
    fmt = output_format(path)
    alpha = source.alpha
    if rgb.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        rgb, alpha = to_8bit(rgb), None if alpha is None else to_8bit(alpha)
    colour = rgb.mean(axis=2, dtype=np.float32).round().astype(rgb.dtype) if source.grey else rgb
    if alpha is not None and fmt != "JPEG":
        colour = np.dstack([colour, alpha])
    channels = 1 if colour.ndim == 2 else colour.shape[2]
    icc = source.icc if source.icc and source.icc[16:20] == (b"GRAY" if channels <= 2 else b"RGB ") \
        else None

    def write(tmp: str) -> None:
        if colour.dtype == np.uint16:
            (_write_png16 if fmt == "PNG" else _write_tiff16)(tmp, colour, icc, source.exif)
        else:
            _write_pillow(tmp, colour, fmt, quality, icc, source.exif)

    atomic_write(path, write)


def _write_pillow(tmp: str, pixels: np.ndarray, fmt: str, quality: int, icc: bytes | None,
                  exif: bytes | None) -> None:
    image = Image.fromarray(pixels)
    if image.mode not in _SAVE_MODES[fmt]:
        image = image.convert("RGBA" if "A" in image.mode and "RGBA" in _SAVE_MODES[fmt] else "RGB")
        icc = icc if icc and icc[16:20] == b"RGB " else None
    options: dict = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "TIFF":
        options["compression"] = "tiff_lzw"
    if fmt != "BMP":
        options.update({k: v for k, v in (("icc_profile", icc), ("exif", exif)) if v})
    image.save(tmp, format=fmt, **options)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png16(tmp: str, pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """A 16-bit PNG (grey, grey+alpha, RGB or RGBA), which Pillow cannot write; streamed by rows."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    step = channels * 2  # bytes per pixel, the "Sub" filter's distance
    compressor = zlib.compressobj(6)
    with open(tmp, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)))
        if icc:
            f.write(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
        if exif:
            f.write(_png_chunk(b"eXIf", exif.removeprefix(EXIF_HEADER)))
        for top in range(0, height, 256):
            rows = pixels[top:top + 256].astype(">u2").reshape(-1, width * channels).view(np.uint8)
            filtered = rows.copy()
            filtered[:, step:] -= rows[:, :-step]  # "Sub": each byte minus the one a pixel left
            framed = np.hstack([np.ones((len(rows), 1), np.uint8), filtered])
            data = compressor.compress(framed.tobytes())
            if data:
                f.write(_png_chunk(b"IDAT", data))
        f.write(_png_chunk(b"IDAT", compressor.flush()))
        f.write(_png_chunk(b"IEND", b""))


def _write_tiff16(tmp: str, pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    import tifffile  # installed with scikit-image; Pillow cannot write 16-bit colour TIFFs
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    with open(tmp, "wb") as f:
        tifffile.imwrite(f, pixels, photometric="minisblack" if channels <= 2 else "rgb",
                         extrasamples=("unassalpha",) if channels in (2, 4) else None,
                         planarconfig="contig", iccprofile=icc, compression="zlib", metadata=None)


def write_rgb(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write a uint8 (H, W, 3) array atomically; the format follows the file extension."""
    fmt = output_format(path)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(Path(path), lambda tmp: Image.fromarray(rgb).save(tmp, format=fmt, **options))


# ------------------------------------------------------------------------------------------ folders


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
