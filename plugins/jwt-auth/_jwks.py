"""Verification keys from the identity provider's JWKS (RFC 7517), fetched through ``ctx.fetch``.

Keys are cached in memory for ``max_age`` seconds. A token naming a ``kid`` the cache does not
hold triggers one refetch (the provider rotated its keys), but at most one per
``refetch_interval`` seconds, so a stream of tokens with random ``kid`` values cannot turn every
request into a fetch. A failed fetch is also not retried before that interval. Whenever no
fresh key set can be had, the request is refused with ``jwks-unavailable``: a key the provider
revoked must not stay trusted because the provider cannot be reached.

Only public signature keys are used: RSA (for RS256) and OKP/Ed25519 (for EdDSA). Symmetric
("oct") keys, keys carrying private members, keys for encryption (``use`` other than ``sig``)
and keys of other types are skipped, so a JWKS entry can never become an HMAC secret.
"""

from __future__ import annotations

from collections.abc import Callable

import _ed25519
import _rs256
from _jwt_token import TokenError, b64url_decode, parse_json_object
from haechi.sdk import CapabilityError

__all__ = ["Key", "KeyCache", "parse_jwks"]

MAX_KEYS = 100
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_KEY_TYPE_FOR_ALG = {"RS256": "RSA", "EdDSA": "OKP"}


class Key:
    """One usable public key: ``kty`` is ``"RSA"`` (``n``, ``e``) or ``"OKP"`` (Ed25519 ``x``)."""

    __slots__ = ("alg", "e", "kid", "kty", "n", "x")

    def __init__(
        self, kty: str, kid: str | None, alg: str | None, n: int = 0, e: int = 0, x: bytes = b""
    ) -> None:
        self.kty, self.kid, self.alg = kty, kid, alg
        self.n, self.e, self.x = n, e, x

    def fits(self, alg: str) -> bool:
        """The key type must be the one ``alg`` needs; a key that names its ``alg`` keeps it."""
        return _KEY_TYPE_FOR_ALG.get(alg) == self.kty and self.alg in (None, alg)

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.kty == "RSA":
            return _rs256.verify(self.n, self.e, message, signature)
        return _ed25519.verify(self.x, message, signature)


def _b64_int(value: object) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("missing")
    return int.from_bytes(b64url_decode(value), "big")


def _parse_key(jwk: object) -> Key | None:
    """A usable verification key, or None when this entry is not one (it is then ignored)."""
    if not isinstance(jwk, dict):
        return None
    kid, alg, use, ops = jwk.get("kid"), jwk.get("alg"), jwk.get("use"), jwk.get("key_ops")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        return None
    if alg is not None and alg not in _KEY_TYPE_FOR_ALG:
        return None
    if use is not None and use != "sig":
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        return None  # a published private key is a compromised key
    try:
        if jwk.get("kty") == "RSA":
            n, e = _b64_int(jwk.get("n")), _b64_int(jwk.get("e"))
            if _rs256.check_public_key(n, e) is not None:
                return None
            return Key("RSA", kid, alg, n=n, e=e)
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            x = jwk.get("x")
            raw = b64url_decode(x) if isinstance(x, str) else b""
            return Key("OKP", kid, alg, x=raw) if len(raw) == 32 else None
    except ValueError:
        return None
    return None


def parse_jwks(document: dict[str, object]) -> list[Key]:
    """The usable keys of a JWKS document; ValueError if it is not a JWKS at all."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("no 'keys' list")
    if len(entries) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} keys")
    return [key for key in map(_parse_key, entries) if key is not None]


def _unavailable(message: str) -> TokenError:
    return TokenError("jwks-unavailable", message)


class KeyCache:
    """The provider's current keys, refreshed on age and on an unknown ``kid``."""

    def __init__(
        self, url: str, max_age: int, refetch_interval: int, clock: Callable[[], float]
    ) -> None:
        self.url, self.max_age, self.refetch_interval = url, max_age, refetch_interval
        self.clock = clock
        self.keys: list[Key] = []
        self.fetched_at: float | None = None  # when ``keys`` were fetched
        self.attempted_at: float | None = None  # the last fetch attempt, successful or not
        self.fetches = 0  # attempts, for tests and the operator's curiosity

    def candidates(self, ctx: object, kid: str | None, alg: str) -> list[Key]:
        """The keys a token with this ``kid`` and ``alg`` may be verified with (at least one).

        Raises :class:`TokenError` with ``jwks-unavailable``, ``unknown-kid``, ``missing-kid``
        or ``key-alg-mismatch``.
        """
        now = self.clock()
        if self.fetched_at is None or now - self.fetched_at >= self.max_age:
            self._refresh(ctx, now)
        found = self._lookup(kid, alg)
        if found is None and self._may_refetch(now):
            self._refresh(ctx, now)  # the provider may have rotated in a new key
            found = self._lookup(kid, alg)
        if found is None:
            raise TokenError("unknown-kid", "no key in the JWKS matches the token's kid")
        return found

    def _may_refetch(self, now: float) -> bool:
        return self.attempted_at is None or now - self.attempted_at >= self.refetch_interval

    def _lookup(self, kid: str | None, alg: str) -> list[Key] | None:
        """Matching keys; None when no key has this kid (a refetch might find it)."""
        if kid is None:
            fitting = [key for key in self.keys if key.fits(alg)]
            if len(fitting) > 1:
                raise TokenError("missing-kid", "the JWKS has several keys; the token needs a kid")
            return fitting or None
        named = [key for key in self.keys if key.kid == kid]
        if not named:
            return None
        fitting = [key for key in named if key.fits(alg)]
        if not fitting:
            raise TokenError("key-alg-mismatch", f"the key {kid[:40]!r} is not a key for {alg}")
        return fitting

    def _refresh(self, ctx: object, now: float) -> None:
        if not self._may_refetch(now) and self.attempted_at != self.fetched_at:
            # The last attempt failed moments ago: do not hammer a provider that is down.
            raise _unavailable("the last JWKS fetch failed; waiting before the next attempt")
        self.attempted_at = now
        self.fetches += 1
        keys = self._fetch(ctx)
        self.keys, self.fetched_at = keys, now

    def _fetch(self, ctx: object) -> list[Key]:
        try:
            response = ctx.fetch(self.url, headers={"accept": "application/json"})  # type: ignore[attr-defined]
        except CapabilityError as exc:  # refused, timed out, too large: fail closed
            raise _unavailable(f"fetching the JWKS failed ({exc.reason})") from None
        if response.status != 200:
            raise _unavailable(f"the JWKS answered HTTP {response.status}")
        try:
            keys = parse_jwks(parse_json_object(response.body))
        except ValueError as exc:
            raise _unavailable(f"the JWKS is not usable: {exc}") from None
        if not keys:
            raise _unavailable("the JWKS holds no usable signature key")
        return keys
