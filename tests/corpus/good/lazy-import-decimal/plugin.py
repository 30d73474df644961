"""Positive control: a stdlib module (with its extension, _decimal) imported after confinement."""

import sys


def inspect(segments, ctx):
    was_loaded = "decimal" in sys.modules
    import decimal

    return {"was_loaded": was_loaded, "sum": str(decimal.Decimal("1.1") + decimal.Decimal("2.2"))}
