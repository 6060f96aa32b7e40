"""``darkdeblur deblur``: deblur files and folders without losing anything.

- Every output is written to a temporary file and renamed into place, so an output either
  exists whole or not at all, even after Ctrl-C.
- An input is never overwritten: an output path that resolves to any input is refused unless
  ``overwrite``.
- An existing output is skipped unless ``force``: an interrupted folder run is simply restarted.
- A file that cannot be deblurred gets one line, ``darkdeblur: FILE: reason``; the batch goes on.

Folders are walked recursively (hidden files and folders are left out, and so is the output
folder when it lies inside an input folder); outputs mirror the folder structure under ``out``.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from .image_io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    WRITABLE_FORMATS,
    ImageReadError,
    load_image,
    output_format,
    save_image,
    write_rgb,
)
from .kernel_picture import kernel_picture

if TYPE_CHECKING:
    from .engines import Restorer

# The extension each output format gets with ``--format`` (and GIF inputs get PNG).
FORMAT_SUFFIXES = {"jpg": ".jpg", "jpeg": ".jpg", "png": ".png", "tif": ".tif", "tiff": ".tif",
                   "webp": ".webp", "bmp": ".bmp"}


class UsageError(ValueError):
    """A command line that cannot work as given (the CLI exits with status 2)."""


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes; ``target`` is None for a file to skip."""

    source: Path
    target: Path | None


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0

    def line(self) -> str:
        return f"darkdeblur: {self.done} done, {self.failed} failed, {self.skipped} skipped"


def _names_a_file(out: Path) -> bool:
    return not out.is_dir() and out.suffix.lower() in Image.registered_extensions()


def _target_suffix(source: Path, fmt: str | None) -> str:
    if fmt is not None:
        return FORMAT_SUFFIXES[fmt.lower()]
    if Image.registered_extensions().get(source.suffix.lower()) in WRITABLE_FORMATS:
        return source.suffix
    return ".png"  # GIF and other formats we read but do not write


def plan_jobs(inputs: list[str], out: str | os.PathLike, fmt: str | None = None) -> list[Job]:
    """Pair every input file with its output path; UsageError for an impossible command line.

    ``out`` is a folder, or with a single input file an output file whose extension picks the
    format. Folder inputs contribute their image files (others are planned as skipped); a plan
    with no image file at all is a UsageError naming the folders, as is an ``out`` that can be
    neither (an existing file without an image extension, or a path under a file).
    """
    out = Path(out)
    _check_out(out)
    if _names_a_file(out):
        if len(inputs) != 1 or Path(inputs[0]).is_dir():
            raise UsageError(f"-o {out} names one file, but the input is several files or a folder; "
                             "give a folder to -o")
        if fmt is not None:
            raise UsageError(f"-o {out} already says the format; leave out --format")
        try:
            output_format(out)
        except ValueError as err:  # .gif and other formats we read but cannot write
            raise UsageError(str(err)) from None
        return [Job(Path(inputs[0]), out)]
    jobs, out_resolved = [], out.resolve()
    for item in inputs:
        root = Path(item)
        if not root.is_dir():
            jobs.append(Job(root, out / (root.stem + _target_suffix(root, fmt))))
            continue
        # An output folder inside this one holds outputs, not inputs (the outputs of earlier runs).
        nested_out = out_resolved if root.resolve() in out_resolved.parents else None
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if (not path.is_file() or any(part.startswith(".") for part in relative.parts)
                    or (nested_out is not None and nested_out in path.resolve().parents)):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                jobs.append(Job(path, None))
            else:
                jobs.append(Job(path, out / relative.with_suffix(_target_suffix(path, fmt))))
    if not any(job.target for job in jobs):  # only folders were given, and they hold no images
        others = f" ({len(jobs)} other file{'s' if len(jobs) > 1 else ''})" if jobs else ""
        raise UsageError(f"no image files in {', '.join(inputs)}{others}; nothing to deblur")
    return jobs


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is neither a folder nor an image file name, before any work."""
    if out.exists() and not out.is_dir() and not _names_a_file(out):
        raise UsageError(f"-o {out} is an existing file, not a folder; give a folder, or an output "
                         "file name ending in an image extension such as .png")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"-o {out}: {parent} is a file, not a folder")
            return


def _same_file(a: Path, b: Path) -> bool:
    """True for one path, a symlink to it, or a hard link to it."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def kernel_path(target: Path) -> Path:
    """Where ``--save-kernel`` writes the kernels of ``target``: ``NAME.kernel.png`` beside it."""
    return target.with_name(target.stem + ".kernel.png")


def _deblur_one(engine: Restorer, source: Path, target: Path, quality: int, max_pixels: int,
                save_kernel: bool, log: Callable[[str], None]) -> None:
    """Load, restore, write; ImageReadError (with the reason) for anything the user can fix."""
    image = load_image(source, max_pixels=max_pixels)
    try:
        result = engine.restore(image.rgb)
    except MemoryError:
        raise ImageReadError(f"{source}: out of memory while deblurring; try a smaller --tile") from None
    except RuntimeError as err:
        if "out of memory" not in str(err).lower():
            raise
        raise ImageReadError(f"{source}: out of memory while deblurring; try a smaller --tile") from None
    for warning in result.warnings:
        log(f"darkdeblur: {source}: {warning}")
    written = target
    try:
        save_image(target, result.image, image, quality=quality)
        if save_kernel and result.kernel is not None:
            written = kernel_path(target)
            write_rgb(written, kernel_picture(result.kernel))
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        raise ImageReadError(f"{source}: cannot write {written} ({reason})") from None


def deblur_files(engine: Restorer, jobs: list[Job], *, fmt: str | None = None, quality: int = 95,
                 force: bool = False, overwrite: bool = False, save_kernel: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True,
                 debug: bool = False, log: Callable[[str], None] | None = None) -> Summary:
    """Deblur every job of :func:`plan_jobs` with ``engine``; return the counts.

    Images are loaded, restored and written one at a time.
    """
    log = log or (lambda line: tqdm.write(line, file=sys.stderr))
    sources = {job.source.resolve() for job in jobs}
    claimed: dict[Path, Path] = {}  # resolved output -> the input it belongs to
    summary = Summary()

    def fail(line: str) -> None:
        summary.failed += 1
        log(f"darkdeblur: {line}")
        if debug:
            traceback.print_exc()

    for job in tqdm(jobs, disable=True if not progress else None, unit="image"):
        source, target = job.source, job.target
        if target is None:
            summary.skipped += 1
            log(f"darkdeblur: {source}: skipped, not an image file")
            continue
        resolved = target.resolve()
        if resolved in claimed:
            fail(f"{source}: output {target} is already the output of {claimed[resolved]}")
            continue
        claimed[resolved] = source
        is_input = resolved in sources or _same_file(target, source)
        if is_input and not overwrite:
            fail(f"{source}: output {target} is an input; use --overwrite to replace it")
            continue
        if target.exists() and not force and not is_input:
            summary.skipped += 1
            log(f"darkdeblur: {source}: skipped, {target} exists (use --force to replace it)")
            continue
        try:  # one image in memory at a time: _deblur_one's arrays go when it returns
            _deblur_one(engine, source, target, quality, max_pixels, save_kernel, log)
            summary.done += 1
        except ImageReadError as err:
            fail(str(err))
    return summary
