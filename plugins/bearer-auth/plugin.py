"""bearer-auth: admits requests whose Bearer token is one the operator issued.

The ``bearer-tokens`` secret lists SHA-256 digests of the tokens, never the tokens (format in
README.md). A presented token is hashed and compared with *every* entry using
``hmac.compare_digest``, with no early exit, so the time taken does not say which entry, or
whether any entry, matched. Tokens must be high-entropy random strings (``secrets.token_urlsafe
(32)``): the digests are unsalted, which is only safe because nobody can guess such a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from haechi.sdk import Credentials, Decision, hookimpl

LIST_NAME = "bearer-tokens"
MAX_TOKEN_CHARS = 4096
MAX_ENTRIES = 10_000
MAX_PRINCIPAL_CHARS = 256  # the host's limits on a decision (haechi.sdk.protocol)
MAX_SCOPES = 64
MAX_SCOPE_CHARS = 128

# RFC 6750 §2.1 b64token: the characters a Bearer token may contain.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_NAME = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces


class TokenFileError(ValueError):
    """The ``bearer-tokens`` secret is malformed; the message names the line, never its content."""


class Entry:
    """One issued token: its digest, who it belongs to, and what it may do."""

    __slots__ = ("digest", "principal", "scopes")

    def __init__(self, digest: bytes, principal: str, scopes: tuple[str, ...]) -> None:
        self.digest, self.principal, self.scopes = digest, principal, scopes


def _entry(line: str, number: int) -> Entry:
    where = f"{LIST_NAME} line {number}"
    fields = line.split()
    if len(fields) not in (2, 3):
        raise TokenFileError(f"{where}: expected 'sha256:<hex> <principal> [scope,scope...]'")
    match = _DIGEST.fullmatch(fields[0])
    if match is None:
        raise TokenFileError(
            f"{where}: the first field must be sha256: and 64 lowercase hex digits"
        )
    principal = fields[1]
    if not _NAME.fullmatch(principal) or len(principal) > MAX_PRINCIPAL_CHARS:
        raise TokenFileError(
            f"{where}: the principal must be 1-{MAX_PRINCIPAL_CHARS} printable characters"
        )
    scopes = tuple(fields[2].split(",")) if len(fields) == 3 else ()
    if len(scopes) > MAX_SCOPES or not all(
        scope and len(scope) <= MAX_SCOPE_CHARS and _NAME.fullmatch(scope) for scope in scopes
    ):
        raise TokenFileError(
            f"{where}: scopes are up to {MAX_SCOPES} comma-separated names "
            f"of 1-{MAX_SCOPE_CHARS} characters"
        )
    return Entry(bytes.fromhex(match.group(1)), principal, scopes)


def parse_tokens(text: str) -> list[Entry]:
    """Parse the secret: one entry per line, blank lines and ``#`` comments ignored."""
    entries: list[Entry] = []
    seen: dict[bytes, int] = {}
    # split("\n"), not splitlines(): line numbers must be the ones an editor shows.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _entry(line, number)
        if entry.digest in seen:
            # Two principals for one token would make the answer depend on the file's order.
            raise TokenFileError(
                f"{LIST_NAME} line {number}: the same token digest as line {seen[entry.digest]}"
            )
        seen[entry.digest] = number
        entries.append(entry)
        if len(entries) > MAX_ENTRIES:
            raise TokenFileError(f"{LIST_NAME}: more than {MAX_ENTRIES} entries")
    if not entries:
        raise TokenFileError(f"{LIST_NAME}: no tokens are listed")
    return entries


_entries: list[Entry] | None = None


def _load(ctx: object) -> list[Entry]:
    """The parsed secret, read once per process (a malformed secret raises every time)."""
    global _entries
    if _entries is None:
        _entries = parse_tokens(ctx.secret(LIST_NAME))  # type: ignore[attr-defined]
    return _entries


def find(entries: list[Entry], token: str) -> Entry | None:
    """The entry whose digest is the token's, comparing against all entries in constant time."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    found = None
    for entry in entries:
        # No break: every entry is compared whether or not an earlier one matched.
        if hmac.compare_digest(entry.digest, digest):
            found = entry
    return found


@hookimpl
def setup(ctx):
    """Parse the token list once, so a malformed secret shows when the plugin starts."""
    _load(ctx)


@hookimpl
def authenticate(request: Credentials, ctx) -> Decision:
    entries = _load(ctx)
    header = request.authorization
    if header is None or not header.strip():
        return Decision.deny("missing-credentials")
    if len(header) > MAX_TOKEN_CHARS + 64:
        return Decision.deny("oversized-token")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return Decision.deny("not-bearer")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        return Decision.deny("oversized-token")
    if not _B64TOKEN.fullmatch(token):
        return Decision.deny("malformed-token")
    entry = find(entries, token)
    if entry is None:
        return Decision.deny("unknown-token")
    return Decision.allow_as(entry.principal, scopes=entry.scopes)
