"""A crypto plugin that uses the key handle the host holds for it.

``fields`` is the AAD (bytes), or a map ``{"aad": bytes, "key": name}`` naming another key.
"""

from haechi.sdk import CapabilityError


def _key_and_aad(fields):
    if isinstance(fields, dict):
        return fields.get("key", "tenant-a"), fields.get("aad", b"")
    return "tenant-a", fields


def encrypt(plaintext, fields, ctx):
    key, aad = _key_and_aad(fields)
    try:
        return ["ok", ctx.seal(key, plaintext, aad)]
    except CapabilityError as exc:
        return ["refused", exc.reason]


def decrypt(sealed, fields, ctx):
    key, aad = _key_and_aad(fields)
    try:
        return ["ok", ctx.open(key, sealed, aad)]
    except CapabilityError as exc:
        return ["refused", exc.reason]
