"""local-aesgcm: seal and open values with AES-256-GCM under the host-held key ``vault``.

The key never enters this process: ``ctx.seal`` / ``ctx.open`` ask the host, which holds the
key, draws a fresh random 96-bit nonce per seal and counts every seal against the key's budget
of 2^32 (NIST SP 800-38D §8.3), refusing with ``key-exhausted`` when it is spent. What this
plugin owns is the *meaning* of a sealed value: the key name, format version, data type,
tenant and expiry are all inside the AAD (``Sealed.aad()``), so none of them can be changed,
and an expiry cannot be extended, without the value failing to open.
"""

import time

from haechi.sdk import Sealed, hookimpl

KEY = "vault"
MAX_PLAINTEXT = 512 * 1024  # the sealed value must fit the host's 1 MiB answer frame
_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class FieldError(ValueError):
    """A field the caller gave is missing, unknown or malformed; the message names it."""


def _fields(fields, *, sealing):
    if not isinstance(fields, dict):
        raise FieldError("fields: must be a map of type, tenant and expires")
    unknown = sorted(str(name) for name in fields if name not in ("type", "tenant", "expires"))
    if unknown:
        raise FieldError(f"fields: unknown field {unknown[0]!r} (known: type, tenant, expires)")
    kind = fields.get("type")
    if not isinstance(kind, str) or not 0 < len(kind) <= 64 or not _TYPE_CHARS.issuperset(kind):
        raise FieldError("fields.type: 1-64 of lowercase letters, digits, '_', '.', '-'")
    tenant = fields.get("tenant", "")
    if not isinstance(tenant, str) or len(tenant) > 128:
        raise FieldError("fields.tenant: a string of at most 128 characters")
    expires = fields.get("expires", 0)
    if sealing and (isinstance(expires, bool) or not isinstance(expires, int) or expires < 0):
        raise FieldError("fields.expires: Unix seconds, or 0 for never")
    return kind, tenant, expires


@hookimpl
def encrypt(plaintext, fields, ctx):
    kind, tenant, expires = _fields(fields, sealing=True)
    if not isinstance(plaintext, bytes) or len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"plaintext: bytes of at most {MAX_PLAINTEXT}")
    header = Sealed(key=KEY, type=kind, tenant=tenant, expires=expires)
    return header.with_body(ctx.seal(KEY, plaintext, header.aad()))


@hookimpl
def decrypt(sealed, fields, ctx):
    kind, tenant, _ = _fields(fields, sealing=False)
    value = Sealed.from_bytes(sealed)
    if value.key != KEY:
        raise ValueError(f"sealed under key {value.key!r}; this plugin opens {KEY!r} only")
    # The caller states what it expects; a value sealed as something else is refused even
    # before the tag check, with a message that says which field differs.
    if value.type != kind:
        raise ValueError(f"sealed as type {value.type!r}, not {kind!r}")
    if value.tenant != tenant:
        raise ValueError("sealed for another tenant")
    if value.expires and value.expires <= time.time():
        raise ValueError("expired: the value may no longer be opened")
    return ctx.open(KEY, value.body, value.aad())
