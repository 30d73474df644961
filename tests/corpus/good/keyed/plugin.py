"""Seals with the host's key 'vault'; fields["aad"] (bytes) is the additional data."""

from haechi.sdk import hookimpl


@hookimpl
def encrypt(plaintext, fields, ctx):
    return ctx.seal("vault", plaintext, fields.get("aad", b""))


@hookimpl
def decrypt(sealed, fields, ctx):
    return ctx.open("vault", sealed, fields.get("aad", b""))
