"""Writing files so that a reader never sees half of one and a symlink never redirects one."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["write_file"]


def write_file(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``.

    The bytes go to a fresh temporary file in the same directory (``O_EXCL``, so it cannot be
    a pre-planted symlink), are flushed to disk, and then appear under the final name in one
    step: ``link`` when the name must not exist yet (fails if it does, even as a dangling
    symlink), ``rename`` when overwriting is allowed (replaces a symlink itself, never its
    target). Raises ``FileExistsError`` or ``IsADirectoryError`` naming the path.
    """
    if path.is_symlink():
        raise FileExistsError(f"{path} is a symlink; refusing to write through it")
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if overwrite:
            os.replace(temp, path)
        else:
            os.link(temp, path, follow_symlinks=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
