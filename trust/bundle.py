"""A plugin bundle: its files, read once, and the statement a signature makes about them.

Rules enforced here (DESIGN §2, "Bundle"):

* every file in the directory is covered, except ``plugin.sig`` at the top;
* symlinks, devices, FIFOs and sockets are refused, at every depth, without following them
  (each component is opened with ``O_NOFOLLOW`` relative to its parent's descriptor, so a
  directory swapped for a symlink mid-walk cannot redirect the read);
* names must be UTF-8, NFC, free of control characters and backslashes, and unique after NFC
  and case folding (``Main.py`` and ``main.py`` would be one file on macOS and Windows);
* sizes are bounded before anything is allocated;
* the bundle digest is sha256 over the canonical JSON of the ``{path: sha256}`` map, so it
  names the content, independent of who signed it or for how long.

Example::

    >>> files = {"plugin.toml": MANIFEST, "plugin.py": CODE}  # doctest: +SKIP
    >>> Bundle.from_files(files).digest  # doctest: +SKIP
    '5f0c...'
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ._internal.encoding import (
    DecodeError,
    canonical_json,
    format_time,
    parse_time,
    strict_json_loads,
)
from .envelope import Envelope
from .errors import BundleError, EnvelopeError, ManifestError
from .manifest import Manifest

__all__ = [
    "MANIFEST_FILE",
    "SIGNATURE_FILE",
    "STATEMENT_TYPE",
    "Bundle",
    "Statement",
    "check_path",
    "read_bundle",
]

MANIFEST_FILE = "plugin.toml"
SIGNATURE_FILE = "plugin.sig"
STATEMENT_TYPE = "haechi.plugin.v1"

MAX_FILES = 4096
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 16
MAX_SIGNATURE_BYTES = 1024 * 1024
MAX_PATH = 1024


def check_path(path: object) -> str:
    """Validate a bundle-relative POSIX path; return it unchanged or raise ``ValueError``."""
    if not isinstance(path, str) or not path:
        raise ValueError("empty path")
    if len(path) > MAX_PATH:
        raise ValueError(f"path longer than {MAX_PATH} characters")
    if path.startswith("/"):
        raise ValueError(f"{path!r} is absolute")
    for part in path.split("/"):
        _check_name(part, path)
    return path


_BAD_ASCII = re.compile(r"[\x00-\x1f\x7f\\]")
# Control (Cc), format (Cf: bidi overrides, zero-width joiners) and line/paragraph separators:
# invisible or misleading in a listing, a review diff or a terminal.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _check_name(part: str, path: str) -> None:
    if part in ("", ".", ".."):
        raise ValueError(f"{path!r} has an empty, '.' or '..' component")
    try:
        part.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path!r} is not valid UTF-8") from None
    if _BAD_ASCII.search(part) or (
        not part.isascii() and any(unicodedata.category(c) in _BAD_CATEGORIES for c in part)
    ):
        raise ValueError(f"{path!r} contains a control or format character, or a backslash")
    if not unicodedata.is_normalized("NFC", part):
        raise ValueError(f"{path!r} is not in Unicode NFC form; rename the file")


def _fold(path: str) -> str:
    # casefold() can undo NFC (Greek with dialytika and tonos), so normalise again after it.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def _check_unique(paths: list[str]) -> None:
    """No two files, and no file and directory, may share a name after NFC + case folding.

    ``Util.py`` beside ``util.py`` is one file on macOS and Windows; so is ``Pkg`` beside a
    directory ``pkg/``, and ``Lib/a.py`` beside ``lib/b.py`` merges two directories.
    """
    seen: dict[str, str] = {}
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            folded = _fold(name)
            earlier = seen.setdefault(folded, name)
            if earlier != name:
                raise ValueError(
                    f"{earlier!r} and {name!r} are the same name on case-insensitive "
                    "file systems; rename one"
                )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_digest(digests: Mapping[str, str]) -> str:
    return _sha256(canonical_json(dict(digests)))


@dataclass(frozen=True)
class Bundle:
    """The exact bytes of a plugin bundle, validated, plus its parsed manifest.

    ``signature`` holds the raw bytes of ``plugin.sig`` if the bundle has one; it is not part of
    ``files``. These are the bytes a loader hands to the sandbox: nothing is re-read from disk.
    """

    files: Mapping[str, bytes]
    manifest: Manifest
    signature: bytes | None = None
    digests: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], signature: bytes | None = None) -> Bundle:
        """Validate names, sizes and the manifest of an in-memory bundle."""
        paths = sorted(files)
        try:
            for path in paths:
                check_path(path)
            # plugin.sig joins the check: "PLUGIN.SIG" beside it is the same file elsewhere.
            _check_unique([*paths, SIGNATURE_FILE])
        except ValueError as exc:
            raise BundleError(f"bad file name: {exc}") from None
        if SIGNATURE_FILE in files:
            raise BundleError(f"{SIGNATURE_FILE} is the envelope, not a bundle file")
        if len(paths) > MAX_FILES:
            raise BundleError(f"more than {MAX_FILES} files")
        if sum(len(files[p]) for p in paths) > MAX_TOTAL_BYTES:
            raise BundleError(f"larger than {MAX_TOTAL_BYTES} bytes in total")
        if MANIFEST_FILE not in files:
            raise BundleError(
                f"no {MANIFEST_FILE}: every plugin bundle needs a manifest at its top"
            )
        manifest = Manifest.from_toml(files[MANIFEST_FILE])
        if manifest.entry not in files:
            raise ManifestError("entry", f"{manifest.entry!r} is not a file in the bundle")
        frozen = MappingProxyType({p: bytes(files[p]) for p in paths})
        digests = MappingProxyType({p: _sha256(data) for p, data in frozen.items()})
        return cls(files=frozen, manifest=manifest, signature=signature, digests=digests)

    @property
    def digest(self) -> str:
        """sha256 hex over the canonical JSON of the ``{path: sha256}`` map."""
        return files_digest(self.digests)


def read_bundle(directory: str | os.PathLike[str]) -> Bundle:
    """Read a bundle directory once, refusing anything that is not a plain file tree."""
    root = Path(directory)
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BundleError(f"{root}: no such directory") from None
    except NotADirectoryError:
        raise BundleError(f"{root}: not a directory; give the plugin's folder") from None
    except OSError as exc:
        raise BundleError(f"{root}: cannot open: {exc.strerror}") from None
    walk = _Walk()
    try:
        walk.directory(root_fd, "", 0)
    finally:
        os.close(root_fd)
    signature = walk.files.pop(SIGNATURE_FILE, None)
    if signature is not None and len(signature) > MAX_SIGNATURE_BYTES:
        raise BundleError(f"{SIGNATURE_FILE} is larger than {MAX_SIGNATURE_BYTES} bytes")
    return Bundle.from_files(walk.files, signature)


class _Walk:
    """One pass over a bundle directory, with every limit charged as it goes.

    Names are validated once, in Bundle.from_files, after the walk; an empty directory would
    escape that (it has no file path), so it is refused here: it is not covered by the
    signature, yet it can change what ``import`` finds (a namespace package).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.entries = 0
        self.total = 0

    def directory(self, dir_fd: int, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise BundleError(f"{prefix!r}: nested deeper than {MAX_DEPTH} directories")
        with os.scandir(dir_fd) as entries:
            names = sorted(entry.name for entry in entries)
        if not names and prefix:
            raise BundleError(
                f"{prefix.rstrip('/')!r} is an empty directory, which no signature covers; "
                "remove it"
            )
        for name in names:
            self.entries += 1
            if self.entries > MAX_FILES + 1:
                raise BundleError(f"more than {MAX_FILES} files and directories")
            self.entry(dir_fd, prefix + name, name, depth)

    def entry(self, dir_fd: int, path: str, name: str, depth: int) -> None:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            raise BundleError(f"{path!r} is a symlink; bundles may hold only regular files")
        if stat.S_ISDIR(info.st_mode) and path != SIGNATURE_FILE:
            child = _open_nofollow(name, dir_fd, path, os.O_DIRECTORY)
            try:
                self.directory(child, path + "/", depth + 1)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            self.files[path] = self.read(name, dir_fd, path)
        else:
            raise BundleError(f"{path!r} is not a regular file (directory, device, FIFO, socket)")

    def read(self, name: str, dir_fd: int, path: str) -> bytes:
        fd = _open_nofollow(name, dir_fd, path, os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BundleError(f"{path!r} is not a regular file")
            # Charge what is actually read, not what fstat claimed: a file may grow meanwhile.
            limit = min(MAX_FILE_BYTES, MAX_TOTAL_BYTES - self.total)
            data = _read_at_most(fd, limit + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_FILE_BYTES:
            raise BundleError(f"{path!r} is larger than {MAX_FILE_BYTES} bytes")
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            raise BundleError(f"bundle is larger than {MAX_TOTAL_BYTES} bytes in total")
        return data


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _open_nofollow(name: str, dir_fd: int, path: str, extra: int = 0) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | extra, dir_fd=dir_fd)
    except OSError as exc:
        raise BundleError(
            f"{path!r}: cannot open without following links: {exc.strerror}"
        ) from None


@dataclass(frozen=True)
class Statement:
    """What a signature asserts: this manifest, these file digests, this validity window."""

    manifest: Manifest
    files: Mapping[str, str]
    not_before: datetime
    not_after: datetime

    _KEYS = frozenset({"type", "manifest", "files", "notBefore", "notAfter"})

    @classmethod
    def for_bundle(cls, bundle: Bundle, not_before: datetime, not_after: datetime) -> Statement:
        return cls(
            manifest=bundle.manifest,
            files=bundle.digests,
            not_before=parse_time(format_time(not_before)),
            not_after=parse_time(format_time(not_after)),
        )

    @property
    def digest(self) -> str:
        return files_digest(self.files)

    def to_payload(self) -> bytes:
        return canonical_json(self._as_dict())

    def _as_dict(self) -> dict[str, Any]:
        return {
            "type": STATEMENT_TYPE,
            "manifest": self.manifest.to_dict(),
            "files": dict(self.files),
            "notBefore": format_time(self.not_before),
            "notAfter": format_time(self.not_after),
        }

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> Statement:
        """The statement an envelope carries; its payload must be canonical JSON."""
        try:
            payload = strict_json_loads(envelope.payload, allow_final_newline=False)
        except DecodeError as exc:
            raise EnvelopeError(f"statement: {exc}") from None
        statement = cls.from_payload(payload)
        if statement.to_payload() != envelope.payload:
            raise EnvelopeError("statement: payload is not canonical JSON")
        return statement

    @classmethod
    def from_payload(cls, payload: object) -> Statement:
        """Parse the decoded JSON payload; raises EnvelopeError on any deviation."""
        if not isinstance(payload, dict):
            raise EnvelopeError("statement: must be a JSON object")
        if set(payload) != cls._KEYS:
            extra = sorted(set(payload) - cls._KEYS)
            missing = sorted(cls._KEYS - set(payload))
            raise EnvelopeError(f"statement: unknown fields {extra} / missing fields {missing}")
        if payload["type"] != STATEMENT_TYPE:
            raise EnvelopeError(
                f"statement: type is {payload['type']!r}, expected {STATEMENT_TYPE!r}"
            )
        try:
            manifest = Manifest.from_dict(payload["manifest"])
        except ManifestError as exc:
            raise EnvelopeError(f"statement: signed manifest: {exc}") from None
        files = _statement_files(payload["files"])
        try:
            not_before = parse_time(payload["notBefore"])
            not_after = parse_time(payload["notAfter"])
        except DecodeError as exc:
            raise EnvelopeError(f"statement: validity window: {exc}") from None
        if not_after <= not_before:
            raise EnvelopeError("statement: notAfter is not after notBefore")
        statement = cls(manifest, MappingProxyType(files), not_before, not_after)
        if statement._as_dict() != payload:
            raise EnvelopeError("statement: not in canonical form (times must be UTC seconds, Z)")
        return statement


def _statement_files(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise EnvelopeError("statement: files must be a non-empty object")
    if len(value) > MAX_FILES:
        raise EnvelopeError(f"statement: more than {MAX_FILES} files")
    for path, digest in value.items():
        try:
            check_path(path)
        except ValueError as exc:
            raise EnvelopeError(f"statement: files: {exc}") from None
        if path == SIGNATURE_FILE:
            raise EnvelopeError(f"statement: files: {SIGNATURE_FILE} cannot cover itself")
        if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise EnvelopeError(f"statement: files: {path!r}: digest must be 64 lowercase hex")
    try:
        _check_unique(list(value))
    except ValueError as exc:
        raise EnvelopeError(f"statement: files: {exc}") from None
    return dict(value)
