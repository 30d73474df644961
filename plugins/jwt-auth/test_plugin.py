"""jwt-auth in the real sandbox, through the SDK harness.

Run: ``.venv/bin/pytest --import-mode=importlib plugins/jwt-auth/test_plugin.py``. These tests
use HS256, which needs no network; RS256/EdDSA against a live JWKS server, key rotation and the
rest are in the repository's ``tests/plugins/test_auth_plugins.py``. The key is made at run time.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time

from haechi.sdk import Decision
from haechi.sdk.testing import plugin_fixture

KEY = secrets.token_urlsafe(48)
CONFIG = {
    "issuer": "https://idp.test/",
    "audience": "haechi-gateway",
    "algorithms": ["HS256", "RS256"],
    # The shipped manifest's placeholder host: nothing answers there, so RS256 fails closed.
    "jwks_url": "https://jwks.example.com/.well-known/jwks.json",
    "leeway_seconds": 30,
}

plugin = plugin_fixture(secrets={"jwt-config": json.dumps(CONFIG), "jwt-hs256-key": KEY})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(header=None, key=None, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": CONFIG["issuer"], "aud": "haechi-gateway", "sub": "alice",
              "iat": now, "exp": now + 300, "scope": "chat"} | overrides  # fmt: skip
    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({k: v for k, v in claims.items() if v is not None}).encode())
    signature = hmac.digest(key or KEY.encode(), f"{head}.{body}".encode(), hashlib.sha256)
    return f"Bearer {head}.{body}.{_b64(signature)}"


def test_valid_hs256_token(plugin):
    assert plugin.authenticate(_token()) == Decision.allow_as("alice", scopes=["chat"])


def test_signature_and_algorithm(plugin):
    assert plugin.authenticate(_token(key=secrets.token_bytes(32))) == Decision.deny(
        "bad-signature"
    )
    unsigned = _token({"alg": "none"}).rsplit(".", 1)[0] + "."
    assert plugin.authenticate(unsigned) == Decision.deny("alg-not-allowed")
    assert plugin.authenticate(_token({"alg": "HS512"})) == Decision.deny("alg-not-allowed")


def test_claims(plugin):
    now = int(time.time())
    assert plugin.authenticate(_token(exp=now - 60)) == Decision.deny("expired")
    assert plugin.authenticate(_token(nbf=now + 600)) == Decision.deny("not-yet-valid")
    assert plugin.authenticate(_token(iss="https://evil.test/")) == Decision.deny("wrong-issuer")
    assert plugin.authenticate(_token(aud="other")) == Decision.deny("wrong-audience")


def test_malformed_and_missing(plugin):
    assert plugin.authenticate(None) == Decision.deny("missing-credentials")
    assert plugin.authenticate("Bearer a.b") == Decision.deny("malformed-token")
    assert plugin.authenticate("Bearer " + "a" * 9000) == Decision.deny("oversized-token")


def test_unreachable_jwks_fails_closed(plugin):
    rs256 = _token({"alg": "RS256", "kid": "k1"})
    assert plugin.authenticate(rs256) == Decision.deny("jwks-unavailable")
