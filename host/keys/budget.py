"""The nonce budget: how many seals a key version has spent, persisted before they are spent.

AES-GCM with random 96-bit nonces may seal at most 2^32 messages per key (NIST SP 800-38D
§8.3); past that the chance of a repeated nonce, which reveals the authentication key, is
no longer negligible. Counting in memory is not enough: a restart would start again at 0.

Rules this module enforces:

* A process **reserves a window** of seals (default 4,096) and the new high-water mark is
  written and fsynced (temp file, fsync, rename, fsync of the directory) *before* any seal of
  the window is used. After a restart or ``kill -9`` counting resumes from that mark, so a
  count is never reused or under-counted; the unused rest of the last window is wasted.
* Reservations are atomic across processes: ``fcntl.flock`` on ``<name>.lock`` (a file that
  is never replaced, so every process locks the same inode) serializes read-modify-write of
  ``<name>.budget.json``. Rotation takes the same lock.
* The high-water mark never passes the budget; at the budget the reservation is refused
  with reason ``key-exhausted`` and a message naming ``haechi keys rotate NAME``.
* A missing or unreadable budget file is a refusal, never a fresh count of 0.

``<name>.budget.json`` (mode 0600)::

    {"format": "haechi-nonce-budget/1", "name": "vault", "budget": 4294967296,
     "versions": {"1": {"reserved": 8192, "used": 5000}}}

``reserved`` is the high-water mark (an upper bound of seals made); ``used`` is what
processes reported as actually sealed when they settled a window (a lower bound: a killed
process never settles its last window).

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> write_budget(d, BudgetRecord("vault", 10, (VersionBudget(1, 0, 0),)), create=True)
    >>> reserve(d, "vault", 1, 4), reserve(d, "vault", 1, 4).start, reserve(d, "vault", 1, 4).end
    (Window(name='vault', version=1, start=0, end=4, budget=10), 4, 10)
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# mypy cannot follow the editable install's haechi.* mapping; the names are typed at home.
from haechi.trust._internal.files import (  # type: ignore[import-not-found,unused-ignore]
    FileReadError,
    read_regular,
    write_file,
)

__all__ = [
    "BUDGET_FORMAT",
    "DEFAULT_WINDOW",
    "NONCE_LIMIT",
    "BudgetRecord",
    "KeyStoreError",
    "Settlement",
    "VersionBudget",
    "Window",
    "budget_path",
    "exclusive",
    "read_budget",
    "reserve",
    "reserve_locked",
    "settle",
    "write_budget",
]

NONCE_LIMIT = 2**32
DEFAULT_WINDOW = 4096
BUDGET_FORMAT = "haechi-nonce-budget/1"
_MAX_FILE = 1 << 20


class KeyStoreError(Exception):
    """A key-store refusal or failure. ``reason`` is stable and machine-readable.

    Reasons: ``key-exhausted``, ``key-missing``, ``key-exists``, ``key-name-invalid``,
    ``key-store-invalid`` (a file is missing, unreadable, malformed or too permissive).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Window:
    """Seals ``start`` .. ``end - 1`` (0-based, global across processes) of one key version."""

    name: str
    version: int
    start: int
    end: int
    budget: int


@dataclass(frozen=True)
class Settlement:
    """How many seals of an earlier window a process actually used, reported when done."""

    version: int
    used: int


@dataclass(frozen=True)
class VersionBudget:
    version: int
    reserved: int
    used: int


@dataclass(frozen=True)
class BudgetRecord:
    """The whole content of one ``<name>.budget.json``."""

    name: str
    budget: int
    versions: tuple[VersionBudget, ...]

    def get(self, version: int) -> VersionBudget | None:
        return next((v for v in self.versions if v.version == version), None)

    def put(self, entry: VersionBudget) -> BudgetRecord:
        others = tuple(v for v in self.versions if v.version != entry.version)
        return replace(self, versions=tuple(sorted((*others, entry), key=lambda v: v.version)))


def budget_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.budget.json"


@contextmanager
def exclusive(directory: Path, name: str) -> Iterator[None]:
    """Hold the cross-process lock of key ``name`` (released on close, even after kill -9)."""
    lock = directory / f"{name}.lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(lock, flags, 0o600)
    except OSError as exc:
        raise KeyStoreError("key-store-invalid", f"{lock}: cannot open: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def read_budget(directory: Path, name: str) -> BudgetRecord:
    path = budget_path(directory, name)
    try:
        data, _ = read_regular(path, limit=_MAX_FILE, what="nonce budget", follow_symlinks=False)
        raw = json.loads(data)
    except (FileReadError, ValueError) as exc:
        # Fail closed: without the file, the count is unknown and 0 could repeat a nonce.
        raise KeyStoreError(
            "key-store-invalid",
            f"{exc if isinstance(exc, FileReadError) else f'{path}: not valid JSON'}; the seal "
            f"count of key {name!r} is unknown, so it will not seal; run "
            f"`haechi keys rotate {name}` to start a new version with a known count",
        ) from None
    return _parse_budget(raw, path, name)


def _parse_budget(raw: Any, path: Path, name: str) -> BudgetRecord:
    def bad(field: str) -> KeyStoreError:
        return KeyStoreError("key-store-invalid", f"{path}: field {field!r} is missing or invalid")

    if not isinstance(raw, dict) or raw.get("format") != BUDGET_FORMAT:
        raise bad("format")
    if raw.get("name") != name:
        raise bad("name")
    budget = raw.get("budget")
    if not isinstance(budget, int) or isinstance(budget, bool) or not 0 < budget <= NONCE_LIMIT:
        raise bad("budget")
    versions = raw.get("versions")
    if not isinstance(versions, dict):
        raise bad("versions")
    entries = []
    for key, value in versions.items():
        if not key.isdigit() or not isinstance(value, dict) or set(value) != {"reserved", "used"}:
            raise bad(f"versions.{key}")
        reserved, used = value["reserved"], value["used"]
        if not (_count(reserved) and _count(used)) or reserved > budget:
            raise bad(f"versions.{key}")
        entries.append(VersionBudget(int(key), reserved, used))
    return BudgetRecord(name, budget, tuple(sorted(entries, key=lambda v: v.version)))


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def write_budget(directory: Path, record: BudgetRecord, *, create: bool = False) -> None:
    """Replace ``<name>.budget.json`` atomically and durably (call inside :func:`exclusive`)."""
    body = {
        "format": BUDGET_FORMAT,
        "name": record.name,
        "budget": record.budget,
        "versions": {
            str(v.version): {"reserved": v.reserved, "used": v.used} for v in record.versions
        },
    }
    data = (json.dumps(body, indent=2) + "\n").encode()
    try:
        write_file(budget_path(directory, record.name), data, mode=0o600, overwrite=not create)
    except OSError as exc:
        raise KeyStoreError("key-store-invalid", f"cannot write the nonce budget: {exc}") from None


def reserve_locked(
    directory: Path, name: str, version: int, size: int, settlement: Settlement | None = None
) -> Window:
    """Reserve up to ``size`` seals of ``version``; the caller holds :func:`exclusive`."""
    if size < 1:
        raise ValueError("a window holds at least one seal")
    record = read_budget(directory, name)
    if settlement is not None:
        record = _settled(record, settlement)
    entry = record.get(version)
    if entry is None:
        raise KeyStoreError(
            "key-store-invalid",
            f"{budget_path(directory, name)}: no count for version {version} of key {name!r}; "
            f"run `haechi keys rotate {name}`",
        )
    if entry.reserved >= record.budget:
        if settlement is not None:
            write_budget(directory, record)
        raise KeyStoreError(
            "key-exhausted",
            f"key {name!r} version {version} has reserved all {record.budget} seals of its "
            f"budget (NIST SP 800-38D §8.3); run `haechi keys rotate {name}`",
        )
    end = min(entry.reserved + size, record.budget)
    # Persisted (fsync) before the caller may use a single seal of the window.
    write_budget(directory, record.put(replace(entry, reserved=end)))
    return Window(name, version, entry.reserved, end, record.budget)


def reserve(
    directory: Path, name: str, version: int, size: int, settlement: Settlement | None = None
) -> Window:
    """Take the lock and reserve a window (see :func:`reserve_locked`)."""
    with exclusive(directory, name):
        return reserve_locked(directory, name, version, size, settlement)


def settle(directory: Path, name: str, settlement: Settlement) -> None:
    """Record how many seals of a finished window were used (display only, never safety)."""
    with exclusive(directory, name):
        write_budget(directory, _settled(read_budget(directory, name), settlement))


def _settled(record: BudgetRecord, settlement: Settlement) -> BudgetRecord:
    entry = record.get(settlement.version)
    if entry is None or settlement.used == 0:
        return record
    used = min(entry.used + settlement.used, entry.reserved)
    return record.put(replace(entry, used=used))
