"""``darkdeblur deblur``: deblur files and folders into an output folder."""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from .image_io import IMAGE_SUFFIXES, ImageReadError, list_images, read_rgb, write_rgb
from .inference import Deblurrer


def expand_inputs(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        files.extend(list_images(path) if path.is_dir() else [path])
    return files


def output_path(source: Path, out_dir: Path) -> Path:
    suffix = source.suffix.lower() if source.suffix.lower() in IMAGE_SUFFIXES - {".gif"} else ".png"
    return out_dir / f"{source.stem}{suffix}"


def deblur_files(model: Deblurrer, inputs: list[str], out_dir: str | Path, progress: bool = True,
                 log=print) -> tuple[int, int]:
    """Deblur every input; return (done, failed). Failures print one line and the batch goes on."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = failed = 0
    files = expand_inputs(inputs)
    for source in tqdm(files, disable=not progress or len(files) < 2, unit="image"):
        target = output_path(source, out_dir)
        try:
            if target.resolve() == source.resolve():
                raise ImageReadError(f"{source}: output would overwrite the input")
            write_rgb(target, model(read_rgb(source)))
            done += 1
        except ImageReadError as err:
            log(f"darkdeblur: {err}")
            failed += 1
    return done, failed
