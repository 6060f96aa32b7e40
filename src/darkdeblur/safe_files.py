"""Files that are either wholly written or not there at all, and their fingerprints.

Every file darkdeblur writes for later (checkpoints, weights, images, kernels, logs) goes to a
hidden temporary file beside its target, is flushed to disk and then renamed over it: a reader,
or a run killed mid-write, never sees a partial file.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Callable

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a partial file.

    The temporary file is ``.NAME.*.tmp`` beside ``path``; a process killed mid-write leaves it
    behind (``save_checkpoint`` removes such leftovers), never a partial ``path``.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "note.txt"
    >>> atomic_write(target, lambda tmp: Path(tmp).write_text("done"))
    >>> target.read_text(), [p.name for p in target.parent.iterdir()]
    ('done', ['note.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are 0600 whatever the umask, and the rename keeps that.
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    mode = os.stat(tmp).st_mode  # 0666 less the umask
    try:
        write(tmp)
        os.chmod(tmp, mode)  # some writers (safetensors) recreate the file as 0600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)  # make the rename itself survive a power cut


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an ``.npy`` file atomically (see :func:`atomic_write`)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a bare name
            np.save(f, array)

    atomic_write(path, write)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the file system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory
    finally:
        os.close(fd)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks.

    >>> import tempfile
    >>> empty = Path(tempfile.mkdtemp()) / "empty"
    >>> _ = empty.write_bytes(b"")
    >>> sha256_of(empty)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
