"""The key store: named AES-256 keys with versions, in a directory only the gateway can read.

Rules this module enforces:

* One file per key, ``<name>.key.json``, mode 0600, in a directory created 0700. A key
  file that group or others may read is refused (``key-store-invalid``), as is a symlink.
* Every write is atomic and durable (temp file with ``O_EXCL``, fsync, rename or link,
  fsync of the directory), so a crash leaves the old file or the new one, never half.
* Nothing is overwritten without intent: ``create`` refuses an existing name
  (``key-exists``); only ``rotate`` replaces a key file, and it keeps every old version.
* ``rotate`` adds version n+1 with a fresh count of 0 (new material, so the count is
  honest) and makes it current; old versions stay so data they sealed still opens.
* Names follow the manifest's ``keys:<name>`` grammar (lowercase letters and digits
  separated by single '.', '_' or '-'), at most 64 characters.
* Key bytes never appear in ``repr``, in :class:`KeyStatus` or in anything ``show`` prints.

``<name>.key.json``::

    {"format": "haechi-key/1", "name": "vault", "algorithm": "AES-256-GCM", "current": 2,
     "versions": [{"version": 1, "created": "2025-01-01T00:00:00Z", "material": "<b64url>"},
                  {"version": 2, "created": "...", "material": "..."}]}

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> store = KeyStore.init(Path(tempfile.mkdtemp()) / "keys", "vault")
    >>> store.rotate("vault")
    2
    >>> [(v.version, v.reserved) for v in store.status("vault").versions]
    [(1, 0), (2, 0)]
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# mypy cannot follow the editable install's haechi.* mapping; the names are typed at home.
from haechi.trust._internal.files import (  # type: ignore[import-not-found,unused-ignore]
    FileReadError,
    read_regular,
    write_file,
)

from .budget import (
    NONCE_LIMIT,
    BudgetRecord,
    KeyStoreError,
    VersionBudget,
    exclusive,
    read_budget,
    write_budget,
)

__all__ = ["KEY_FORMAT", "KeyStatus", "KeyStore", "KeyVersions", "VersionStatus", "check_name"]

KEY_FORMAT = "haechi-key/1"
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_SUFFIX = ".key.json"
_MAX_VERSION = 2**32 - 1  # the sealed format carries the version in 4 bytes
_MAX_FILE = 1 << 20


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid key name, else raise ``key-name-invalid``."""
    if not isinstance(name, str) or len(name) > 64 or not _NAME.fullmatch(name):
        raise KeyStoreError(
            "key-name-invalid",
            f"key name {str(name)[:80]!r}: use 1-64 lowercase letters and digits, separated by "
            "single '.', '_' or '-' (the name in the manifest's keys:<name>)",
        )
    return name


@dataclass(frozen=True)
class KeyVersions:
    """The material of every version of one key; ``repr`` never shows it."""

    name: str
    current: int
    materials: dict[int, bytes] = field(repr=False)


@dataclass(frozen=True)
class VersionStatus:
    """What may be shown about one key version: counts, never bytes."""

    version: int
    created: str
    reserved: int | None  # None: the budget file has no count for it (will not seal)
    used: int | None
    budget: int

    @property
    def warning(self) -> bool:
        return self.reserved is not None and self.reserved * 2 >= self.budget

    @property
    def exhausted(self) -> bool:
        return self.reserved is not None and self.reserved >= self.budget


@dataclass(frozen=True)
class KeyStatus:
    name: str
    path: str
    current: int
    versions: tuple[VersionStatus, ...]
    problem: str | None = None  # why the budget could not be read, if it could not


@dataclass(frozen=True)
class _Version:
    version: int
    created: str
    material: bytes = field(repr=False)


class KeyStore:
    """A directory of versioned keys and their nonce budgets (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def init(cls, directory: Path, name: str = "vault", *, budget: int = NONCE_LIMIT) -> KeyStore:
        """Create ``directory`` (0700) if needed and a first key ``name`` in it."""
        directory = Path(directory)
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyStoreError("key-store-invalid", f"{directory}: {exc.strerror}") from None
        store = cls(directory)
        store.create(name, budget=budget)
        return store

    def key_path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}{_SUFFIX}"

    def names(self) -> tuple[str, ...]:
        self._check_directory()
        found = (p.name.removesuffix(_SUFFIX) for p in self.directory.glob(f"*{_SUFFIX}"))
        return tuple(sorted(n for n in found if _NAME.fullmatch(n)))

    def create(self, name: str, *, budget: int = NONCE_LIMIT) -> None:
        """Add key ``name`` at version 1; refuses (``key-exists``) if it already exists."""
        self._check_directory()
        if not 0 < budget <= NONCE_LIMIT:
            raise ValueError(f"budget: 1 to 2^32 seals, got {budget}")
        path = self.key_path(name)
        with exclusive(self.directory, name):
            if path.exists() or path.is_symlink():
                raise KeyStoreError(
                    "key-exists",
                    f"{path} already exists; use `haechi keys rotate {name}` for a new version",
                )
            # The budget first: a key file is never visible without a count for its version.
            # A stale budget file (from a crashed create) is replaced: new material, new count.
            write_budget(self.directory, BudgetRecord(name, budget, (VersionBudget(1, 0, 0),)))
            self._write(name, 1, [_fresh(1)], create=True)

    def rotate(self, name: str) -> int:
        """Add version n+1, make it current, keep the old ones; return the new version."""
        path = self.key_path(name)
        self._read(name)  # a missing key or directory is refused before a lock file is made
        with exclusive(self.directory, name):
            versions, _ = self._read(name)
            new = versions[-1].version + 1
            if new > _MAX_VERSION:
                raise KeyStoreError("key-store-invalid", f"{path}: no version number left")
            try:
                record = read_budget(self.directory, name)
            except KeyStoreError:
                # Rotation is the way out of a lost budget file: the new version's count is
                # known (0), and old versions are never sealed with again.
                record = BudgetRecord(name, NONCE_LIMIT, ())
            write_budget(self.directory, record.put(VersionBudget(new, 0, 0)))
            self._write(name, new, [*versions, _fresh(new)], create=False)
        return new

    def load(self, name: str) -> KeyVersions:
        """Every version's material (for the key ring only)."""
        versions, current = self._read(name)
        return KeyVersions(name, current, {v.version: v.material for v in versions})

    def status(self, name: str) -> KeyStatus:
        versions, current = self._read(name)
        problem: str | None = None
        try:
            record: BudgetRecord | None = read_budget(self.directory, name)
        except KeyStoreError as exc:
            record, problem = None, exc.message
        limit = record.budget if record else NONCE_LIMIT
        shown = []
        for v in versions:
            count = record.get(v.version) if record else None
            reserved, used = (count.reserved, count.used) if count else (None, None)
            shown.append(VersionStatus(v.version, v.created, reserved, used, limit))
        return KeyStatus(name, str(self.key_path(name)), current, tuple(shown), problem)

    # -- files -----------------------------------------------------------------------------

    def _check_directory(self) -> None:
        if not self.directory.is_dir():
            raise KeyStoreError("key-store-invalid", f"{self.directory}: no such key directory")

    def _raw(self, name: str) -> dict[str, Any]:
        path = self.key_path(name)
        self._check_directory()
        try:
            data, mode = read_regular(path, limit=_MAX_FILE, what="key", follow_symlinks=False)
        except FileReadError as exc:
            missing = not path.exists() and not path.is_symlink()
            reason = "key-missing" if missing else "key-store-invalid"
            raise KeyStoreError(reason, str(exc)) from None
        if stat.S_IMODE(mode) & 0o077:
            raise KeyStoreError(
                "key-store-invalid",
                f"{path}: mode {stat.S_IMODE(mode):04o} lets others read key material; "
                f"run `chmod 600 {path}`",
            )
        try:
            raw = json.loads(data)
        except ValueError:
            raise KeyStoreError("key-store-invalid", f"{path}: not valid JSON") from None
        if not isinstance(raw, dict):
            raise KeyStoreError("key-store-invalid", f"{path}: not a JSON object")
        return raw

    def _read(self, name: str) -> tuple[list[_Version], int]:
        """All versions (ascending) and the current one, from a single read of the file."""
        raw, path = self._raw(name), self.key_path(name)

        def bad(what: str) -> KeyStoreError:
            return KeyStoreError(
                "key-store-invalid", f"{path}: field {what!r} is missing or invalid"
            )

        if raw.get("format") != KEY_FORMAT:
            raise bad("format")
        if raw.get("name") != name:
            raise bad("name")
        if raw.get("algorithm") != "AES-256-GCM":
            raise bad("algorithm")
        items = raw.get("versions")
        if not isinstance(items, list) or not items:
            raise bad("versions")
        versions = [_parse_version(item, i, bad) for i, item in enumerate(items)]
        numbers = [v.version for v in versions]
        if numbers != sorted(set(numbers)):
            raise bad("versions")
        current = raw.get("current")
        if type(current) is not int or current not in numbers:
            raise bad("current")
        return versions, current

    def _write(self, name: str, current: int, versions: list[_Version], *, create: bool) -> None:
        body = {
            "format": KEY_FORMAT,
            "name": name,
            "algorithm": "AES-256-GCM",
            "current": current,
            "versions": [
                {"version": v.version, "created": v.created, "material": _b64(v.material)}
                for v in versions
            ],
        }
        data = (json.dumps(body, indent=2) + "\n").encode()
        try:
            write_file(self.key_path(name), data, mode=0o600, overwrite=not create)
        except FileExistsError as exc:
            raise KeyStoreError("key-exists", str(exc)) from None
        except OSError as exc:
            raise KeyStoreError("key-store-invalid", f"cannot write key {name!r}: {exc}") from None


def _parse_version(item: object, index: int, bad: Any) -> _Version:
    if not isinstance(item, dict) or set(item) != {"version", "created", "material"}:
        raise bad(f"versions[{index}]")
    number, created, material = item["version"], item["created"], item["material"]
    if type(number) is not int or not 1 <= number <= _MAX_VERSION:
        raise bad(f"versions[{index}].version")
    if not isinstance(created, str):
        raise bad(f"versions[{index}].created")
    try:
        padded = material + "=" * (-len(material) % 4)
        key = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (TypeError, ValueError):
        raise bad(f"versions[{index}].material") from None
    if len(key) != 32:
        raise bad(f"versions[{index}].material")
    return _Version(number, created, key)


def _fresh(version: int) -> _Version:
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _Version(version, created, secrets.token_bytes(32))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
