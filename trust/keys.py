"""Ed25519 keys: the private signing key and the public trust anchor.

Formats (see docs/authors/signing.md):

* ``NAME.key`` - the private key as PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``), the form
  ``openssl genpkey -algorithm ed25519`` writes and ``openssl pkey`` reads. Mode 0600.
* ``NAME.pub`` - the trust anchor, a small TOML document::

      keyid = "3f6c..."              # hex of the first 16 bytes of sha256(public key)
      algorithm = "ed25519"
      public-key = "base64 of the 32 raw bytes"
      kinds = ["auth", "filter", "crypto"]   # optional: which plugin kinds it may sign

The key id is derived from the key, never chosen, so a label cannot be made to point at another
key. Example::

    >>> key = SigningKey.generate()
    >>> anchor = key.anchor()
    >>> anchor.verify(b"message", key.sign(b"message"))
    True
"""

from __future__ import annotations

import base64
import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from ._internal.encoding import DecodeError, b64decode_strict, b64encode, load_toml
from ._internal.files import FileReadError, read_regular
from .errors import KeyFileError

__all__ = ["KINDS", "Anchor", "SigningKey", "key_id", "load_anchor", "parse_anchor"]

KINDS: tuple[str, ...] = ("auth", "filter", "crypto")

# PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410 §7): a fixed 16-byte DER prefix, then the seed.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
_PEM_END = "-----END PRIVATE KEY-----"
_MAX_KEY_FILE = 64 * 1024


def key_id(public_key: bytes) -> str:
    """Hex of the first 16 bytes of sha256(public key)."""
    return hashlib.sha256(public_key).digest()[:16].hex()


@dataclass(frozen=True)
class Anchor:
    """A trusted public key and what it may sign."""

    keyid: str
    public_key: bytes
    kinds: tuple[str, ...] = KINDS
    algorithm: str = "ed25519"

    def may_sign(self, kind: str) -> bool:
        return kind in self.kinds

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            return False
        return True

    def to_toml(self) -> str:
        kinds = ", ".join(f'"{k}"' for k in self.kinds)
        return (
            "# haechi trust anchor: give this file (never the .key) to whoever verifies.\n"
            f'keyid = "{self.keyid}"\n'
            f'algorithm = "{self.algorithm}"\n'
            f'public-key = "{b64encode(self.public_key)}"\n'
            f"kinds = [{kinds}]\n"
        )


def parse_anchor(fields: object, where: str) -> Anchor:
    """Build an anchor from a parsed table; ``where`` prefixes error messages."""
    if not isinstance(fields, dict):
        raise KeyFileError(f"{where}: expected a table with keyid, algorithm, public-key")
    if "private-key" in fields or "seed" in fields:
        raise KeyFileError(
            f"{where}: this holds a private key; give the public .pub file as the anchor and "
            "keep the .key file secret"
        )
    unknown = set(fields) - {"keyid", "algorithm", "public-key", "kinds"}
    if unknown:
        raise KeyFileError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    algorithm = fields.get("algorithm")
    if algorithm != "ed25519":
        raise KeyFileError(f'{where}: algorithm: must be "ed25519", got {algorithm!r}')
    try:
        public = b64decode_strict(fields.get("public-key"), length=32)  # type: ignore[arg-type]
    except DecodeError as exc:
        raise KeyFileError(f"{where}: public-key: {exc}") from None
    keyid = fields.get("keyid")
    if keyid != key_id(public):
        raise KeyFileError(
            f"{where}: keyid {keyid!r} does not match the public key (expected "
            f"{key_id(public)!r}); the file was edited or corrupted, take a fresh copy"
        )
    kinds = fields.get("kinds", list(KINDS))
    if (
        not isinstance(kinds, list)
        or not kinds
        or any(k not in KINDS for k in kinds)
        or len(set(kinds)) != len(kinds)
    ):
        raise KeyFileError(f"{where}: kinds: must be a non-empty list drawn from {list(KINDS)}")
    return Anchor(keyid=keyid, public_key=public, kinds=tuple(kinds))


def load_anchor(path: Path) -> Anchor:
    data, _mode = _read_small(path, "anchor")
    if _PEM_BEGIN.encode() in data or b"PRIVATE KEY" in data:
        raise KeyFileError(
            f"{path}: this is a private key, not a trust anchor; pass the matching .pub file "
            "and keep the .key file secret"
        )
    try:
        fields = load_toml(data)
    except DecodeError as exc:
        raise KeyFileError(f"{path}: not a haechi .pub anchor file ({exc})") from None
    return parse_anchor(fields, str(path))


def _read_small(path: Path, what: str) -> tuple[bytes, int]:
    """Read a key or anchor file without following a symlink; return its bytes and mode."""
    try:
        return read_regular(path, limit=_MAX_KEY_FILE, what=what, follow_symlinks=False)
    except FileReadError as exc:
        raise KeyFileError(str(exc)) from None


@dataclass(frozen=True, repr=False)
class SigningKey:
    """An Ed25519 private key. ``repr`` never shows the seed."""

    seed: bytes

    def __repr__(self) -> str:
        return f"SigningKey(keyid={self.keyid!r})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        return bytes(nacl.signing.SigningKey(self.seed).verify_key)

    @property
    def keyid(self) -> str:
        return key_id(self.public_key)

    def anchor(self, kinds: tuple[str, ...] = KINDS) -> Anchor:
        return Anchor(keyid=self.keyid, public_key=self.public_key, kinds=kinds)

    def sign(self, message: bytes) -> bytes:
        return nacl.signing.SigningKey(self.seed).sign(message).signature

    def to_pem(self) -> str:
        body = base64.encodebytes(_PKCS8_PREFIX + self.seed).decode("ascii")
        return f"{_PEM_BEGIN}\n{body}{_PEM_END}\n"

    @classmethod
    def from_pem(cls, text: str, where: str = "key") -> SigningKey:
        lines = [line.strip() for line in text.strip().splitlines()]
        if len(lines) < 3 or lines[0] != _PEM_BEGIN or lines[-1] != _PEM_END:
            raise KeyFileError(
                f"{where}: not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----); create one "
                "with `haechi plugin keygen` or `openssl genpkey -algorithm ed25519`"
            )
        try:
            der = base64.b64decode("".join(lines[1:-1]), validate=True)
        except ValueError:
            raise KeyFileError(f"{where}: the PEM body is not valid base64") from None
        if len(der) != len(_PKCS8_PREFIX) + 32 or not der.startswith(_PKCS8_PREFIX):
            raise KeyFileError(
                f"{where}: not an Ed25519 private key (haechi signs with Ed25519 only; "
                "RSA, ECDSA and encrypted keys are not accepted)"
            )
        return cls(der[len(_PKCS8_PREFIX) :])

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Load a key file, refusing one that others can read or write."""
        data, mode = _read_small(path, "key")
        if b"public-key" in data and b"PRIVATE KEY" not in data:
            raise KeyFileError(
                f"{path}: this is a public anchor (.pub); sign with the private .key file"
            )
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: private key is accessible by other users "
                f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}"
            )
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise KeyFileError(f"{path}: not a PEM text file") from None
        return cls.from_pem(text, str(path))
