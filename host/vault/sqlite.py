"""The token vault on SQLite: ``tok_<type>_<hex>`` -> a sealed value, never the plaintext.

Rules this module enforces:

* Tokens are ``tok_<type>_<32 hex>``: ``type`` is 1-32 of ``[a-z0-9_]``, the hex part is
  ``secrets.token_hex(16)`` (128 random bits). A token is validated against that exact shape
  before any lookup; a malformed one is refused (``token-malformed``) without touching the
  database, and every query binds parameters (no SQL is ever built from input).
* One fresh token per ``put``, even for equal values. Deterministic tokens (a MAC of the
  value) would let anyone who sees two tokens learn that the values are equal, link users
  across requests, and confirm guesses of low-entropy values (phone numbers) given the MAC
  key's oracle; random tokens reveal nothing but the type.
* The stored value must be a haechi sealed envelope (``Sealed``, what the crypto plugin
  returns), whose authenticated header must agree with the row: same type, tenant and
  expiry. So the vault cannot hold plaintext by mistake, and a row cannot claim a longer
  life than its ciphertext (one expiry source, unlike the original's refreshed records).
* An expired entry is not returned by ``get``; ``purge_expired`` deletes it.
* A random-token collision (2^-128) is retried with a new token, never overwritten.

Crash safety and concurrency: WAL journal, ``synchronous=FULL`` by default. In WAL mode
both FULL and NORMAL survive a killed process (a commit is in the WAL file once ``put``
returns); they differ on power loss or an OS crash, where NORMAL may lose the last commits.
A lost token is a lost value (the application replaced the plaintext with it), so FULL is
the default; ``synchronous="NORMAL"`` trades that for fewer fsyncs. Each thread gets its own
connection; processes share the file through SQLite's locks, waiting up to
``busy_timeout_ms`` for a writer, and for one another when several open a fresh file at once.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from haechi.sdk import Sealed
    >>> sealed = Sealed("vault", "email", b"\\0" * 40, "acme").to_bytes()
    >>> with SqliteVault(Path(tempfile.mkdtemp()) / "vault.db") as vault:
    ...     token = vault.put("email", sealed, "acme")
    ...     entry = vault.get(token)
    >>> token.startswith("tok_email_"), entry.sealed == sealed, entry.tenant
    (True, True, 'acme')
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

# mypy cannot follow the editable install's haechi.* mapping; the names are typed at home.
from haechi.sdk import Sealed  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "SCHEMA_VERSION",
    "SqliteVault",
    "VaultEntry",
    "VaultError",
    "new_token",
    "parse_token",
]

SCHEMA_VERSION = 1
_TYPE = re.compile(r"[a-z0-9_]{1,32}")
_TOKEN = re.compile(r"tok_([a-z0-9_]{1,32})_([0-9a-f]{32})")
_MAX_TOKEN = len("tok_") + 32 + 1 + 32
_MAX_TENANT = 128
_MAX_SEALED = 2 << 20
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tokens (
        token   TEXT PRIMARY KEY,
        type    TEXT NOT NULL,
        tenant  TEXT NOT NULL,
        sealed  BLOB NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS tokens_expires ON tokens (expires) WHERE expires IS NOT NULL",
)


class VaultError(Exception):
    """A vault refusal or failure. ``reason`` is stable and machine-readable.

    Reasons: ``token-malformed``, ``vault-field-invalid`` (type, tenant, expiry),
    ``vault-not-sealed``, ``vault-mismatch`` (row and envelope disagree),
    ``vault-invalid`` (unknown schema, not WAL), ``vault-unavailable`` (I/O, locked too long),
    ``vault-closed``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class VaultEntry:
    """One stored token. ``sealed`` is ciphertext; opening it is the crypto plugin's job."""

    token: str
    type: str
    tenant: str
    sealed: bytes = field(repr=False)
    created: int
    expires: int | None


def parse_token(token: object) -> tuple[str, str]:
    """Return ``(type, hex)`` of a well-formed token, else raise ``token-malformed``."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        raise VaultError("token-malformed", "a token is tok_<type>_<32 lowercase hex>")
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise VaultError("token-malformed", "a token is tok_<type>_<32 lowercase hex>")
    return match.group(1), match.group(2)


def new_token(kind: str) -> str:
    _check_type(kind)
    return f"tok_{kind}_{secrets.token_hex(16)}"


def _check_type(kind: object) -> str:
    if not isinstance(kind, str) or not _TYPE.fullmatch(kind):
        raise VaultError("vault-field-invalid", "type: 1-32 of lowercase letters, digits, '_'")
    return kind


class SqliteVault:
    """Tokens and their sealed values in one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout_ms: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous: FULL or NORMAL")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False
        self._create_file()
        self._migrate()

    # -- API ----------------------------------------------------------------------------

    def put(self, type: str, sealed: bytes, tenant: str = "", expires: int | None = None) -> str:
        """Store ``sealed`` under a new random token and return the token."""
        self._check_put(type, sealed, tenant, expires)
        created = int(self.clock())
        for _ in range(4):
            token = new_token(type)
            try:
                self._run(
                    "INSERT INTO tokens (token, type, tenant, sealed, created, expires) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (token, type, tenant, sealed, created, expires),
                )
            except sqlite3.IntegrityError:
                continue  # a 2^-128 collision: draw again, never overwrite
            return token
        raise VaultError("vault-unavailable", "could not draw an unused token")

    def get(self, token: str) -> VaultEntry | None:
        """The entry for ``token``, or None if unknown or expired."""
        parse_token(token)  # before any database access
        row = self._run(
            "SELECT type, tenant, sealed, created, expires FROM tokens WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            return None
        kind, tenant, sealed, created, expires = row
        if expires is not None and expires <= self.clock():
            return None
        return VaultEntry(token, kind, tenant, bytes(sealed), created, expires)

    def delete(self, token: str) -> bool:
        parse_token(token)
        return self._run("DELETE FROM tokens WHERE token = ?", (token,)).rowcount > 0

    def count(self) -> int:
        """Rows stored, expired ones included until :meth:`purge_expired` removes them."""
        (total,) = self._run("SELECT count(*) FROM tokens", ()).fetchone()
        return int(total)

    def purge_expired(self) -> int:
        now = int(self.clock())
        cursor = self._run("DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= ?", (now,))
        return cursor.rowcount

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` or the first problems found."""
        rows = self._run("PRAGMA integrity_check", ()).fetchall()
        return "; ".join(str(r[0]) for r in rows)

    def close(self) -> None:
        with self._guard:
            self._closed = True
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> SqliteVault:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- checks --------------------------------------------------------------------------

    def _check_put(self, kind: str, sealed: bytes, tenant: str, expires: int | None) -> None:
        _check_type(kind)
        if not isinstance(tenant, str) or len(tenant) > _MAX_TENANT:
            raise VaultError("vault-field-invalid", f"tenant: at most {_MAX_TENANT} characters")
        if expires is not None and (
            isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0
        ):
            raise VaultError("vault-field-invalid", "expires: Unix seconds > 0, or None")
        if not isinstance(sealed, bytes) or len(sealed) > _MAX_SEALED:
            raise VaultError("vault-not-sealed", f"sealed: bytes of at most {_MAX_SEALED}")
        try:
            envelope = Sealed.from_bytes(sealed)
        except ValueError as exc:
            raise VaultError("vault-not-sealed", f"not a sealed value: {exc}") from None
        for what, theirs, ours in (
            ("type", envelope.type, kind),
            ("tenant", envelope.tenant, tenant),
            ("expires", envelope.expires or None, expires),
        ):
            if theirs != ours:
                raise VaultError(
                    "vault-mismatch", f"{what}: the sealed value says {theirs!r}, not {ours!r}"
                )

    # -- connections ---------------------------------------------------------------------

    def _create_file(self) -> None:
        # Created here, 0600, so SQLite (which copies the mode to -wal and -shm) never makes
        # a world-readable vault under a permissive umask.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            os.close(os.open(self.path, flags, 0o600))
        except OSError as exc:
            raise VaultError("vault-unavailable", f"{self.path}: {exc.strerror}") from None

    def _migrate(self) -> None:
        # SQLite answers SQLITE_BUSY at once, without waiting in its busy handler, where
        # waiting could deadlock: processes opening a fresh file at the same moment (the
        # gateway's workers) each hold a shared lock while asking for the exclusive one the
        # switch to WAL needs. The refused one lets its shared lock go, so trying again
        # until busy_timeout_ms lets the others through; giving up would fail a start.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        pause = 0.001
        while True:
            try:
                self._migrate_once(self._connection())
                return
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() + pause > deadline:
                    raise VaultError("vault-unavailable", f"{self.path}: {exc}") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _migrate_once(self, connection: sqlite3.Connection) -> None:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise VaultError("vault-invalid", f"{self.path}: cannot use WAL (got {mode})")
        connection.execute("BEGIN IMMEDIATE")  # one process creates the schema
        try:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version == 0:
                for statement in _SCHEMA:  # not executescript: it would COMMIT first
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise VaultError(
                    "vault-invalid",
                    f"{self.path}: schema version {version}; this haechi knows {SCHEMA_VERSION}",
                )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._guard:
            if self._closed:
                raise VaultError("vault-closed", f"{self.path}: the vault is closed")
            try:
                connection = sqlite3.connect(
                    self.path,
                    isolation_level=None,  # autocommit: each statement is its own transaction
                    check_same_thread=False,  # used by one thread; closed by close()
                    timeout=self.busy_timeout_ms / 1000,
                )
                connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            except sqlite3.Error as exc:
                raise VaultError("vault-unavailable", f"{self.path}: {exc}") from None
            self._all.append(connection)
        self._local.connection = connection
        return connection

    def _run(self, sql: str, parameters: tuple[object, ...]) -> sqlite3.Cursor:
        if self._closed:
            raise VaultError("vault-closed", f"{self.path}: the vault is closed")
        try:
            return self._connection().execute(sql, parameters)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise VaultError("vault-unavailable", f"{self.path}: {exc}") from None
