"""Writing files so that a reader never sees half of one and a symlink never redirects one."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["FileReadError", "discard", "publish", "read_regular", "stage", "write_file"]


class FileReadError(Exception):
    """A file cannot be read as a small regular file; the message names it."""


def read_regular(
    path: Path, *, limit: int, what: str, follow_symlinks: bool = True
) -> tuple[bytes, int]:
    """Read at most ``limit`` bytes of a regular file; return its bytes and mode.

    ``O_NONBLOCK`` makes opening a FIFO return at once (so ``--trust some.fifo`` cannot hang
    the verifier), ``fstat`` on the opened descriptor refuses anything but a regular file, and
    the read is bounded whatever the file claims (``/dev/zero``, a file growing meanwhile).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileReadError(f"{path}: no such {what} file") from None
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            raise FileReadError(f"{path}: is a symlink; give the real file path") from None
        raise FileReadError(f"{path}: cannot open {what} file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileReadError(f"{path}: not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileReadError(f"{path}: larger than {limit} bytes; not a {what} file")
        return b"".join(chunks), info.st_mode
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write ``data`` to ``path`` atomically with ``mode`` (see :func:`stage` and :func:`publish`).

    Raises ``FileExistsError`` or ``IsADirectoryError`` naming the path.
    """
    publish(stage(path, data, mode=mode), path, overwrite=overwrite)


def stage(path: Path, data: bytes, *, mode: int) -> Path:
    """Write ``data`` to a fresh temporary file beside ``path``, flushed to disk.

    The temporary name is created with ``O_EXCL``, so it cannot be a pre-planted symlink.
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
    return temp


def publish(temp: Path, path: Path, *, overwrite: bool) -> None:
    """Give a staged file its final name in one step.

    ``link`` when the name must not exist yet (fails if it does, even as a dangling symlink),
    ``rename`` when overwriting is allowed (replaces a symlink itself, never its target).
    The temporary name is gone afterwards either way.
    """
    try:
        if overwrite:
            os.replace(temp, path)
        else:
            os.link(temp, path, follow_symlinks=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _fsync_dir(path.parent)


def discard(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
