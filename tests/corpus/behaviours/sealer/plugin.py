"""A crypto plugin that uses the key handle the host holds for it."""


def encrypt(plaintext, aad, ctx, key="tenant-a"):
    try:
        return ["ok", ctx.seal(key, plaintext, aad)]
    except CapabilityError as exc:  # noqa: F821 - provided by the sandbox at run time
        return ["refused", exc.reason]


def decrypt(sealed, aad, ctx):
    try:
        return ["ok", ctx.open("tenant-a", sealed, aad)]
    except CapabilityError as exc:  # noqa: F821
        return ["refused", exc.reason]
