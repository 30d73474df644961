"""Producing signatures: a bundle's ``plugin.sig`` and a key pair on disk.

Example::

    >>> key = SigningKey.generate()                       # doctest: +SKIP
    >>> write_keypair(Path("keys"), "alice", key)         # keys/alice.key, keys/alice.pub
    >>> sign_bundle("hello-filter", key, valid_days=90)   # hello-filter/plugin.sig
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ._internal.files import discard, publish, stage, write_file
from .bundle import SIGNATURE_FILE, Bundle, Statement, read_bundle
from .envelope import PLUGIN_PAYLOAD_TYPE, Envelope
from .errors import EnvelopeError, KeyFileError
from .keys import SigningKey

__all__ = [
    "DEFAULT_VALID_DAYS",
    "MAX_VALID_DAYS",
    "countersign_bundle",
    "envelope_for",
    "sign_bundle",
    "write_keypair",
]

DEFAULT_VALID_DAYS = 365
MAX_VALID_DAYS = 3650
# notBefore is set this far in the past so that a verifier whose clock runs a little behind
# the signer's (a CI runner, a laptop) does not refuse a bundle signed a moment ago.
CLOCK_SKEW = timedelta(minutes=5)
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def write_keypair(directory: Path, name: str, key: SigningKey, *, force: bool = False) -> None:
    """Write ``NAME.key`` (0600) and ``NAME.pub``: both or neither.

    Both files are staged first; only then are the names taken, so a failure (a directory in
    the way, a full disk) never leaves a new private key without its anchor, or destroys the
    old key while keeping the old anchor.
    """
    if not _KEY_NAME.fullmatch(name):
        raise KeyFileError(
            f"key name {name!r}: use letters, digits, '.', '_', '-' (no path separators)"
        )
    if directory.is_symlink():
        raise KeyFileError(f"{directory} is a symlink; give the real directory for the keys")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private, public):
        if path.is_symlink():
            raise KeyFileError(f"{path} is a symlink; refusing to write a key through it")
        if path.exists() and not force:
            raise KeyFileError(f"{path} already exists; pass --force to replace it")
        if path.exists() and not path.is_file():
            raise KeyFileError(f"{path} exists and is not a regular file; move it away")
    staged = [
        (stage(private, key.to_pem().encode("ascii"), mode=0o600), private),
        (stage(public, key.anchor().to_toml().encode("ascii"), mode=0o644), public),
    ]
    done: list[Path] = []
    try:
        for temp, path in staged:
            publish(temp, path, overwrite=force)
            done.append(path)
    except FileExistsError:
        # Without --force a name appeared between the check and the link: undo our half.
        for path in done:
            path.unlink(missing_ok=True)
        raise KeyFileError(f"{path} already exists; pass --force to replace it") from None
    finally:
        for temp, _path in staged:
            discard(temp)


def envelope_for(
    bundle: Bundle,
    key: SigningKey,
    *,
    valid_days: int = DEFAULT_VALID_DAYS,
    now: datetime | None = None,
) -> Envelope:
    """The signed envelope for exactly these bundle bytes, valid from now (less the allowed
    clock skew) for ``valid_days``."""
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise ValueError(f"valid days must be between 1 and {MAX_VALID_DAYS}")
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    statement = Statement.for_bundle(bundle, start - CLOCK_SKEW, start + timedelta(days=valid_days))
    return Envelope(PLUGIN_PAYLOAD_TYPE, statement.to_payload(), ()).add_signature(key)


def sign_bundle(
    directory: str | os.PathLike[str],
    key: SigningKey,
    *,
    valid_days: int = DEFAULT_VALID_DAYS,
    now: datetime | None = None,
) -> Envelope:
    """Sign the bundle as it is now and write ``plugin.sig`` (replacing any earlier one)."""
    envelope = envelope_for(read_bundle(directory), key, valid_days=valid_days, now=now)
    write_file(Path(directory) / SIGNATURE_FILE, envelope.to_json(), mode=0o644, overwrite=True)
    return envelope


def countersign_bundle(directory: str | os.PathLike[str], key: SigningKey) -> Envelope:
    """Add ``key``'s signature to the existing envelope, if the bundle still matches it."""
    bundle = read_bundle(directory)
    if bundle.signature is None:
        raise EnvelopeError(
            f"{directory}: has no {SIGNATURE_FILE} to countersign; sign it first without "
            "--countersign"
        )
    envelope = Envelope.from_json(bundle.signature, PLUGIN_PAYLOAD_TYPE)
    statement = Statement.from_envelope(envelope)
    if dict(statement.files) != dict(bundle.digests) or statement.manifest != bundle.manifest:
        raise EnvelopeError(
            f"{directory}: the files no longer match what was signed; refusing to countersign "
            "(verify it, and ask the author to sign the current version)"
        )
    signed = envelope.add_signature(key)
    write_file(Path(directory) / SIGNATURE_FILE, signed.to_json(), mode=0o644, overwrite=True)
    return signed
