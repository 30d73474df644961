"""``keys:<name>``: symmetric keys the host holds and a plugin may only *use*.

The plugin never receives key bytes. It asks the host to seal or open with a named key; the
host does AES-256-GCM with a fresh random 96-bit nonce and counts every seal, because a key
may seal at most 2^32 messages with random nonces (NIST SP 800-38D §8.3). At half the budget
the broker reports a warning event; at the limit it refuses (``key-exhausted``) until the
operator rotates the key. Persisting the count across restarts is the gateway's job (the
nonce-budget store of issue #6); this ring keeps it in memory.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import SandboxError

__all__ = ["NONCE_BUDGET", "KeyRing", "KeyService"]

NONCE_BUDGET = 2**32
_NONCE = 12


class KeyService(Protocol):
    """What the broker needs of a key ring: this in-memory one, or the persistent
    ``haechi.host.keys.PersistentKeyRing`` the gateway uses."""

    def seal(self, name: str, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, name: str, sealed: bytes, aad: bytes) -> bytes: ...

    def uses(self, name: str) -> int: ...


@dataclass
class _Key:
    material: bytes
    seals: int = 0
    warned: bool = False


@dataclass
class KeyRing:
    """Named 256-bit keys, their use counts, and the budget they may not exceed."""

    budget: int = NONCE_BUDGET
    on_warning: Callable[[str, int], None] = lambda name, seals: None
    _keys: dict[str, _Key] = field(default_factory=dict)

    def add(self, name: str, material: bytes) -> None:
        if len(material) != 32:
            raise ValueError(f"key {name!r}: AES-256 needs 32 bytes, got {len(material)}")
        self._keys[name] = _Key(bytes(material))

    def uses(self, name: str) -> int:
        return self._key(name).seals

    def seal(self, name: str, plaintext: bytes, aad: bytes) -> bytes:
        key = self._key(name)
        if key.seals >= self.budget:
            raise SandboxError(
                "key-exhausted",
                f"key {name!r} has sealed {key.seals} messages, its budget; rotate the key",
            )
        key.seals += 1  # counted before use: a crash after this line wastes, never reuses
        if not key.warned and key.seals * 2 >= self.budget:
            key.warned = True
            self.on_warning(name, key.seals)
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(key.material).encrypt(nonce, plaintext, aad)

    def open(self, name: str, sealed: bytes, aad: bytes) -> bytes:
        key = self._key(name)
        if len(sealed) < _NONCE + 16:
            raise SandboxError("key-open-failed", "sealed data is too short")
        try:
            return AESGCM(key.material).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except InvalidTag:
            raise SandboxError("key-open-failed", "authentication failed") from None

    def _key(self, name: str) -> _Key:
        if name not in self._keys:
            raise SandboxError("key-missing", f"the operator has not provided key {name!r}")
        return self._keys[name]
