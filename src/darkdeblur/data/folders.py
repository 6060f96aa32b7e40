"""Where the images are: paired folders, the GOPRO layout, and loose sharp photos."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..image_io import list_images


@dataclass
class DataSources:
    """Real (blurred, sharp) pairs and sharp photos to blur synthetically."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    sharp: list[Path] = field(default_factory=list)

    def extend(self, other: "DataSources") -> None:
        self.pairs += other.pairs
        self.sharp += other.sharp


def _paired(folder: Path) -> list[tuple[Path, Path]]:
    """``folder/blur/NAME`` + ``folder/sharp/NAME`` with matching names (extensions may differ)."""
    sharp = {p.relative_to(folder / "sharp").with_suffix(""): p for p in list_images(folder / "sharp")}
    pairs = []
    for blurred in list_images(folder / "blur"):
        key = blurred.relative_to(folder / "blur").with_suffix("")
        if key not in sharp:
            raise FileNotFoundError(f"{blurred}: no sharp image with the same name in {folder / 'sharp'}")
        pairs.append((blurred, sharp[key]))
    if not pairs:
        raise FileNotFoundError(f"{folder}: no images in {folder / 'blur'}")
    return pairs


def _gopro(root: Path, split: str, gamma: bool) -> list[tuple[Path, Path]]:
    """``GOPRO_Large/{train,test}/<sequence>/{blur|blur_gamma,sharp}/NAME``."""
    base = root / split if (root / split).is_dir() else root
    blur_name = "blur_gamma" if gamma else "blur"
    pairs = []
    for sequence in sorted(p for p in base.iterdir() if p.is_dir()):
        for blurred in list_images(sequence / blur_name):
            sharp = sequence / "sharp" / blurred.name
            if not sharp.is_file():
                raise FileNotFoundError(f"{blurred}: missing its sharp frame {sharp}")
            pairs.append((blurred, sharp))
    if not pairs:
        raise FileNotFoundError(f"{base}: no GOPRO sequences with {blur_name}/ and sharp/ folders")
    return pairs


def find_pairs(root: str | Path, layout: str = "paired", split: str = "test",
               gamma: bool = False) -> list[tuple[Path, Path]]:
    """Evaluation pairs: ``layout="paired"`` (blur/ + sharp/) or ``"gopro"`` (GOPRO_Large)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    if layout == "paired":
        return _paired(root)
    if layout == "gopro":
        return _gopro(root, split, gamma)
    raise ValueError(f"unknown layout {layout!r}; choose paired or gopro")


def discover(root: str | Path, layout: str = "auto", split: str = "train") -> DataSources:
    """Training sources under ``root``.

    ``auto``: a folder holding blur/ and sharp/ is a paired set; any other folder contributes its
    images as sharp photos for synthetic blur, and its sub-folders are searched the same way.
    So ``data/train`` with ``sharp/<set>/*.png`` and ``gopro_pairs/{blur,sharp}`` yields both.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    if layout == "gopro":
        return DataSources(pairs=_gopro(root, split, gamma=False))
    if layout == "paired":
        return DataSources(pairs=_paired(root))
    if layout == "sharp":
        return DataSources(sharp=list_images(root))
    if layout != "auto":
        raise ValueError(f"unknown layout {layout!r}; choose auto, paired, gopro or sharp")
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        return DataSources(pairs=_paired(root))
    found = DataSources(sharp=sorted(p for p in list_images(root) if p.parent == root))
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found.extend(discover(child, "auto", split))
    return found
