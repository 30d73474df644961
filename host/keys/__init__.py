"""Host-held keys that survive restarts: a versioned key store and a persistent key ring.

:class:`PersistentKeyRing` answers the sandbox broker's ``keys:<name>`` requests exactly as
the in-memory :class:`~haechi.host.sandbox.broker.keys.KeyRing` does (``seal`` / ``open`` /
``uses``; ``SandboxError`` reasons ``key-exhausted``, ``key-open-failed``, ``key-missing``,
``key-store-invalid``), but with keys from a :class:`KeyStore` directory and a nonce budget
persisted before use (see :mod:`.budget`).

Rules this module enforces:

* Seal with the key's **current** version; open with the version **named in the data**.
* Sealed data is ``version (4 bytes, big-endian) || nonce (12) || ciphertext || tag (16)``.
  The version and the key name are authenticated: the AEAD associated data is
  :func:`host_aad` = ``b"haechi-key/1\\0" || len(name) (1 byte) || name || version (4 bytes)
  || plugin AAD``, so changing the prefix makes the tag check fail.
* Every seal is counted inside a window reserved (and fsynced) beforehand; at half the budget
  ``on_warning(name, seals)`` is called once per version and process; at the budget sealing
  is refused (``key-exhausted``, "run `haechi keys rotate NAME`").
* A rotation by another process or the CLI is noticed at the next seal (one ``stat`` of the
  key file per seal: inode, mtime and size), and the rest of the old window is abandoned.
* ``close()`` records how many seals of each open window were used (for ``keys show``);
  a process killed before that only under-reports ``used``, never ``reserved``.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> store = KeyStore.init(Path(tempfile.mkdtemp()) / "keys", "vault")
    >>> with PersistentKeyRing(store) as ring:
    ...     sealed = ring.seal("vault", b"bob@example.com", b"aad")
    ...     ring.open("vault", sealed, b"aad"), sealed[:4], ring.uses("vault")
    (b'bob@example.com', b'\\x00\\x00\\x00\\x01', 1)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# mypy cannot follow the editable install's haechi.* mapping; the names are typed at home.
from haechi.host.sandbox.errors import SandboxError  # type: ignore[import-not-found,unused-ignore]

from .budget import (
    DEFAULT_WINDOW,
    NONCE_LIMIT,
    KeyStoreError,
    Settlement,
    Window,
    exclusive,
    reserve_locked,
    settle,
)
from .store import KeyStatus, KeyStore, KeyVersions, VersionStatus

__all__ = [
    "DEFAULT_WINDOW",
    "NONCE_LIMIT",
    "KeyStatus",
    "KeyStore",
    "KeyStoreError",
    "PersistentKeyRing",
    "VersionStatus",
    "Window",
    "host_aad",
]

_PREFIX = 4
_NONCE = 12
_TAG = 16
_AAD_TAG = b"haechi-key/1\x00"


def host_aad(name: str, version: int, aad: bytes) -> bytes:
    """The associated data the host seals with: key name and version, then the plugin's AAD."""
    encoded = name.encode()
    return _AAD_TAG + bytes([len(encoded)]) + encoded + struct.pack(">I", version) + aad


@dataclass
class _Active:
    """The window a process is sealing from, and the key file it was reserved against."""

    window: Window
    next: int
    aead: AESGCM
    stamp: tuple[int, int, int]


class PersistentKeyRing:
    """``seal`` / ``open`` / ``uses`` over a :class:`KeyStore`; safe across threads and
    processes."""

    def __init__(
        self,
        store: KeyStore | Path,
        *,
        window: int = DEFAULT_WINDOW,
        on_warning: Callable[[str, int], None] = lambda name, seals: None,
    ) -> None:
        if window < 1:
            raise ValueError("window: at least one seal")
        self.store = store if isinstance(store, KeyStore) else KeyStore(store)
        self.window = window
        self.on_warning = on_warning
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._keys: dict[str, KeyVersions] = {}
        self._uses: dict[str, int] = {}
        self._warned: set[tuple[str, int]] = set()

    # -- the broker interface -------------------------------------------------------------

    def seal(self, name: str, plaintext: bytes, aad: bytes) -> bytes:
        with self._lock:
            active, number = self._take(name)
            self._uses[name] = self._uses.get(name, 0) + 1
            version = active.window.version
            warn = number * 2 >= active.window.budget and (name, version) not in self._warned
            if warn:
                self._warned.add((name, version))
        if warn:
            self.on_warning(name, number)
        nonce = secrets.token_bytes(_NONCE)
        sealed = active.aead.encrypt(nonce, plaintext, host_aad(name, version, aad))
        return struct.pack(">I", version) + nonce + sealed

    def open(self, name: str, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < _PREFIX + _NONCE + _TAG:
            raise SandboxError("key-open-failed", "sealed data is too short")
        (version,) = struct.unpack(">I", sealed[:_PREFIX])
        material = self._material(name, version)
        nonce, body = sealed[_PREFIX : _PREFIX + _NONCE], sealed[_PREFIX + _NONCE :]
        try:
            return AESGCM(material).decrypt(nonce, body, host_aad(name, version, aad))
        except InvalidTag:
            raise SandboxError("key-open-failed", "authentication failed") from None

    def uses(self, name: str) -> int:
        """Seals this process made with ``name`` (all versions)."""
        with self._lock:
            if name in self._uses:
                return self._uses[name]
        self._stamp(name)  # key-missing for a key the store does not have
        return 0

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Record the seals used of every open window (display only; safe to skip)."""
        with self._lock:
            done, self._active = self._active, {}
        for name, active in done.items():
            used = active.next - active.window.start
            # ``used`` is informational; ``reserved`` already bounds the count.
            with contextlib.suppress(KeyStoreError):
                settle(self.store.directory, name, Settlement(active.window.version, used))

    def __enter__(self) -> PersistentKeyRing:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals (called with self._lock held) -------------------------------------------

    def _take(self, name: str) -> tuple[_Active, int]:
        """The active window of ``name`` and the 1-based global number of this seal."""
        active = self._active.get(name)
        settlement = None
        if active is not None and (
            active.next >= active.window.end or self._stamp(name) != active.stamp
        ):
            del self._active[name]
            settlement = Settlement(active.window.version, active.next - active.window.start)
            active = None
        if active is None:
            active = self._refill(name, settlement)
            self._active[name] = active
        active.next += 1
        return active, active.next

    def _refill(self, name: str, settlement: Settlement | None) -> _Active:
        self._stamp(name)  # refuse a missing key before creating its lock file
        directory = self.store.directory
        try:
            with exclusive(directory, name):
                stamp = self._stamp(name)
                keys = self.store.load(name)
                window = reserve_locked(directory, name, keys.current, self.window, settlement)
        except KeyStoreError as exc:
            raise _refusal(exc) from None
        self._keys[name] = keys
        aead = AESGCM(keys.materials[window.version])
        return _Active(window, window.start, aead, stamp)

    def _stamp(self, name: str) -> tuple[int, int, int]:
        """Identity of the key file. A rotation renames a new file in (a new inode) that is
        larger (one more version), so an inode number reused later cannot look unchanged."""
        try:
            info = os.stat(self.store.key_path(name), follow_symlinks=False)
        except KeyStoreError as exc:
            raise _refusal(exc) from None
        except FileNotFoundError:
            raise SandboxError(
                "key-missing", f"the operator has not provided key {name!r}"
            ) from None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _material(self, name: str, version: int) -> bytes:
        with self._lock:
            keys = self._keys.get(name)
        if keys is None or version not in keys.materials:
            # A version this process has not seen: another process or the CLI rotated.
            self._stamp(name)
            try:
                keys = self.store.load(name)
            except KeyStoreError as exc:
                raise _refusal(exc) from None
            with self._lock:
                self._keys[name] = keys
        if version not in keys.materials:
            raise SandboxError(
                "key-open-failed",
                f"sealed with version {version} of key {name!r}, which the key store does not hold",
            )
        return keys.materials[version]


def _refusal(exc: KeyStoreError) -> SandboxError:
    reason = "key-missing" if exc.reason in ("key-missing", "key-name-invalid") else exc.reason
    return SandboxError(reason, exc.message)
