"""The token vault: tokens ``tok_<type>_<hex>`` that stand for sealed values.

The default (and for now only) store is :class:`SqliteVault`; see :mod:`.sqlite` for the
rules it enforces, its on-disk schema and its crash-safety choice.

Example::

    >>> parse_token("tok_email_" + "0" * 32)
    ('email', '00000000000000000000000000000000')
"""

from __future__ import annotations

from .sqlite import SCHEMA_VERSION, SqliteVault, VaultEntry, VaultError, new_token, parse_token

__all__ = ["SCHEMA_VERSION", "SqliteVault", "VaultEntry", "VaultError", "new_token", "parse_token"]
