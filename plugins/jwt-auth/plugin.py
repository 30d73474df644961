"""jwt-auth: admits requests that carry a valid JWT (HS256, RS256 or EdDSA) as a Bearer token.

Configuration is the ``jwt-config`` secret (JSON, see README.md); RS256/EdDSA keys come from the
provider's JWKS through ``ctx.fetch``, the HS256 key from the ``jwt-hs256-key`` secret. Every
refusal is a ``Decision.deny`` with a stable reason; a broken configuration raises, which the
host turns into a refusal too (fail closed).

Order of checks: the header first (size, shape, ``alg``, ``crit``), then the signature, and
only then are the claims parsed and checked: nothing from an unverified payload is trusted.
"""

from __future__ import annotations

import hmac
import math
import time

import _jwks
import _jwt_config
from _jwt_token import Token, TokenError, split
from haechi.sdk import Credentials, Decision, hookimpl

MAX_TOKEN_CHARS = 8192
MAX_PRINCIPAL_CHARS = 256  # the host's limits on a decision (haechi.sdk.protocol)
MAX_SCOPES = 64
MAX_SCOPE_CHARS = 128
_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})


def _now() -> float:
    """The clock; tests replace it."""
    return time.time()


class _State:
    """What one sandboxed process keeps between calls: the configuration and the key cache."""

    def __init__(self, ctx: object) -> None:
        self.config = _jwt_config.parse(ctx.secret("jwt-config"))  # type: ignore[attr-defined]
        self.hs256_key: bytes | None = None
        if "HS256" in self.config.algorithms:
            self.hs256_key = _jwt_config.hs256_key(ctx.secret("jwt-hs256-key"))  # type: ignore[attr-defined]
        self.keys: _jwks.KeyCache | None = None
        if self.config.jwks_url is not None:
            self.keys = _jwks.KeyCache(
                self.config.jwks_url,
                self.config.jwks_max_age_seconds,
                self.config.jwks_refetch_interval_seconds,
                clock=lambda: _now(),
            )


_state: _State | None = None


def _load(ctx: object) -> _State:
    global _state
    if _state is None:
        _state = _State(ctx)
    return _state


@hookimpl
def setup(ctx):
    """Read and check the configuration once, so a mistake shows when the plugin starts."""
    _load(ctx)


@hookimpl
def authenticate(request: Credentials, ctx) -> Decision:
    state = _load(ctx)
    try:
        token = split(_bearer_token(request.authorization))
        alg = _check_header(token.header, state.config)
        _check_signature(token, alg, state, ctx)
        principal, scopes = _check_claims(token.claims(), state.config, _now())
    except TokenError as refusal:
        return Decision.deny(refusal.reason)
    return Decision.allow_as(principal, scopes=scopes)


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise TokenError("missing-credentials", "no Authorization header")
    # Checked before any work on the value, so a huge header costs nothing more than its read.
    if len(authorization) > MAX_TOKEN_CHARS + 64:
        raise TokenError("oversized-token", "the Authorization header is too long")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise TokenError("not-bearer", "the Authorization scheme is not Bearer")
    token = token.strip()
    if not token:
        raise TokenError("malformed-token", "an empty Bearer token")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("oversized-token", f"tokens are at most {MAX_TOKEN_CHARS} characters")
    return token


def _check_header(header: dict[str, object], config: _jwt_config.Config) -> str:
    """The token's algorithm, once the header is acceptable."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("malformed-token", "the header has no alg")
    # The allow-list is the only source of truth: "none", "HS512", "none " ... are all refused.
    if alg not in config.algorithms:
        raise TokenError("alg-not-allowed", f"alg {alg[:20]!r} is not allowed")
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions listed in crit must be understood; this plugin knows none.
        raise TokenError("crit-unsupported", "the header lists critical extensions")
    if "enc" in header or "zip" in header:
        raise TokenError("malformed-token", "an encrypted (JWE) token")
    # Optional members, but when present (even as null) they must be well-formed.
    typ = header.get("typ")
    if "typ" in header and (not isinstance(typ, str) or typ.lower() not in _TYPES):
        raise TokenError("wrong-type", "the header's typ is not a JWT type")
    kid = header.get("kid")
    if "kid" in header and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise TokenError("malformed-token", "the header's kid is not a short string")
    return alg


def _check_signature(token: Token, alg: str, state: _State, ctx: object) -> None:
    if alg == "HS256":
        # The HS256 key only ever comes from the operator's secret, never from the JWKS.
        assert state.hs256_key is not None  # config parsing guarantees it
        expected = hmac.digest(state.hs256_key, token.signing_input, "sha256")
        if not hmac.compare_digest(expected, token.signature):
            raise TokenError("bad-signature", "HS256 signature mismatch")
        return
    assert state.keys is not None  # config parsing requires jwks_url for RS256/EdDSA
    kid = token.header.get("kid")
    candidates = state.keys.candidates(ctx, kid if isinstance(kid, str) else None, alg)
    if not any(key.verify(token.signing_input, token.signature) for key in candidates):
        raise TokenError("bad-signature", f"{alg} signature does not verify")


def _numeric_date(claims: dict[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int in Python; 1e400 parses as an infinite float.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError("malformed-token", f"{name} is not a NumericDate")
    return value


def _check_times(claims: dict[str, object], config: _jwt_config.Config, now: float) -> None:
    leeway = config.leeway_seconds
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise TokenError("missing-exp", "tokens without exp never expire; refused")
    if now - leeway >= exp:
        raise TokenError("expired", "exp has passed")
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and now + leeway < nbf:
        raise TokenError("not-yet-valid", "nbf is in the future")
    iat = _numeric_date(claims, "iat")
    if iat is not None and now + leeway < iat:
        raise TokenError("not-yet-valid", "iat is in the future")
    if config.max_token_age_seconds is not None:
        if iat is None:
            raise TokenError("missing-iat", "max_token_age_seconds needs tokens with iat")
        if now - leeway > iat + config.max_token_age_seconds:
            raise TokenError("expired", "issued longer ago than max_token_age_seconds")


def _check_audience(claims: dict[str, object], config: _jwt_config.Config) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenError("wrong-audience", "aud is missing or not a string list")
    if not set(audiences) & set(config.audience):
        raise TokenError("wrong-audience", "aud names none of the configured audiences")


def _scopes(claims: dict[str, object], name: str) -> list[str]:
    value = claims.get(name)
    if value is None:
        return []
    # OAuth's "scope" is one space-separated string (RFC 8693 §4.2); some providers use a list.
    scopes = value.split() if isinstance(value, str) else value
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        raise TokenError("invalid-scopes", f"{name} is not a string or a list of strings")
    if len(scopes) > MAX_SCOPES or any(len(s) > MAX_SCOPE_CHARS for s in scopes):
        raise TokenError("invalid-scopes", f"{name} has too many or too long scopes")
    return list(dict.fromkeys(scopes))


def _check_claims(
    claims: dict[str, object], config: _jwt_config.Config, now: float
) -> tuple[str, list[str]]:
    """The principal and scopes of a token whose signature verified."""
    _check_times(claims, config, now)
    if claims.get("iss") != config.issuer:
        raise TokenError("wrong-issuer", "iss is not the configured issuer")
    _check_audience(claims, config)
    principal = claims.get(config.principal_claim)
    if not isinstance(principal, str) or not principal or len(principal) > MAX_PRINCIPAL_CHARS:
        raise TokenError("missing-principal", f"{config.principal_claim} is not a short string")
    return principal, _scopes(claims, config.scopes_claim)
