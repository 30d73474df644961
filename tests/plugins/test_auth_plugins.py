"""The first-party auth plugins, plugins/bearer-auth and plugins/jwt-auth.

Most tests run the plugin in process (its plugin.py loaded from the bundle directory, ``ctx`` a
real :class:`haechi.sdk.Context` over a fake broker transport), so clocks and JWKS answers are
under the test's control. The pure-Python verifiers are cross-checked against ``cryptography``
and ``nacl``. The last section loads both bundles into the real sandbox through
:mod:`haechi.sdk.testing`, with a JWKS server on loopback.

Every credential the plugins accept is made at run time; the only fixed keys are the public
RFC 8032 test vectors.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.util
import json
import re
import secrets
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from haechi.sdk import CapabilityError, Context, Credentials, Decision

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
BEARER = PLUGINS / "bearer-auth"
JWT = PLUGINS / "jwt-auth"
SIBLINGS = ("_ed25519", "_rs256", "_jwks", "_jwt_token", "_jwt_config")

ISSUER = "https://idp.test/"
AUDIENCE = "haechi-gateway"
JWKS_URL = "https://jwks.example.com/.well-known/jwks.json"
NOW = 1_800_000_000.0


# --- loading a bundle in process ------------------------------------------------------------


def load_module(directory: Path, path: str = "plugin.py") -> ModuleType:
    """A fresh copy of a bundle module (and its siblings), as the sandbox would import them."""
    name = f"_bundle_{directory.name.replace('-', '_')}_{path[:-3]}_{secrets.token_hex(4)}"
    sys.path.insert(0, str(directory))
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__
    try:
        for sibling in SIBLINGS:
            sys.modules.pop(sibling, None)
        spec = importlib.util.spec_from_file_location(name, directory / path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(directory))
        sys.dont_write_bytecode = writes_bytecode
        for sibling in SIBLINGS:  # keep test modules from importing them by accident
            sys.modules.pop(sibling, None)
    return module


class FakeHost:
    """The broker's side of ``ctx`` for in-process tests: secrets and a scriptable JWKS."""

    def __init__(self, secrets_: dict[str, str], jwks: dict[str, Any] | None = None) -> None:
        self.secrets = dict(secrets_)
        self.jwks = jwks if jwks is not None else {"keys": []}
        self.down = False
        self.status = 200
        self.body: bytes | None = None
        self.fetches: list[str] = []
        self.secret_reads: list[str] = []

    def __call__(self, cap: str, args: dict[str, Any]) -> object:
        if cap == "secret":
            self.secret_reads.append(args["name"])
            if args["name"] not in self.secrets:
                raise CapabilityError("secret-missing", f"no secret {args['name']!r}")
            return self.secrets[args["name"]]
        if cap == "fetch":
            self.fetches.append(args["url"])
            if self.down:
                raise CapabilityError("fetch-refused", "connection refused")
            body = self.body if self.body is not None else json.dumps(self.jwks).encode()
            return {"status": self.status, "headers": {}, "body": body}
        raise CapabilityError("capability-not-declared", cap)


def credentials(authorization: str | None) -> Credentials:
    return Credentials("POST", "/v1/chat/completions", authorization)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# === bearer-auth =============================================================================


def digest_line(token: str, principal: str, scopes: str = "") -> str:
    return f"sha256:{hashlib.sha256(token.encode()).hexdigest()} {principal} {scopes}".rstrip()


class Bearer:
    def __init__(self, token_list: str) -> None:
        self.module = load_module(BEARER)
        self.host = FakeHost({"bearer-tokens": token_list})
        self.ctx = Context(self.host)

    def auth(self, authorization: str | None) -> Decision:
        return self.module.authenticate(credentials(authorization), self.ctx)


@pytest.fixture
def alice_token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def bearer(alice_token: str) -> Bearer:
    others = "\n".join(digest_line(secrets.token_urlsafe(32), f"svc-{i}") for i in range(3))
    return Bearer(
        f"# issued 2026-11\n\n{digest_line(alice_token, 'alice', 'chat,embeddings')}\n{others}\n"
    )


def test_bearer_accepts_an_issued_token(bearer: Bearer, alice_token: str) -> None:
    assert bearer.auth(f"Bearer {alice_token}") == Decision.allow_as(
        "alice", scopes=["chat", "embeddings"]
    )
    assert bearer.auth(f"bearer   {alice_token}  ").allow  # scheme is case-insensitive


def test_bearer_entry_without_scopes() -> None:
    token = secrets.token_urlsafe(32)
    plugin = Bearer(digest_line(token, "batch-job"))
    assert plugin.auth(f"Bearer {token}") == Decision.allow_as("batch-job")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing-credentials"),
        ("", "missing-credentials"),
        ("   ", "missing-credentials"),
        ("Basic YWxpY2U6cGFzcw==", "not-bearer"),
        ("Token abc", "not-bearer"),
        ("Bearer", "malformed-token"),
        ("Bearer two words", "malformed-token"),
        ("Bearer tok\u00e9n", "malformed-token"),
        ("Bearer " + "a" * 4097, "oversized-token"),
        ("Bearer " + "a" * 100_000, "oversized-token"),
    ],
)
def test_bearer_denies_with_stable_reasons(
    bearer: Bearer, authorization: str | None, reason: str
) -> None:
    assert bearer.auth(authorization) == Decision.deny(reason)


def test_bearer_unknown_and_near_miss_tokens(bearer: Bearer, alice_token: str) -> None:
    assert bearer.auth(f"Bearer {secrets.token_urlsafe(32)}") == Decision.deny("unknown-token")
    assert bearer.auth(f"Bearer {alice_token[:-1]}") == Decision.deny("unknown-token")
    digest = hashlib.sha256(alice_token.encode()).hexdigest()
    assert bearer.auth(f"Bearer sha256:{digest}") == Decision.deny("malformed-token")
    assert bearer.auth(f"Bearer {digest}") == Decision.deny("unknown-token")  # not the token


def test_bearer_reads_the_secret_once(bearer: Bearer, alice_token: str) -> None:
    bearer.module.setup(bearer.ctx)
    for _ in range(5):
        bearer.auth(f"Bearer {alice_token}")
    assert bearer.host.secret_reads == ["bearer-tokens"]


def test_bearer_compares_every_entry_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = [secrets.token_urlsafe(32) for _ in range(200)]
    plugin = Bearer("\n".join(digest_line(t, f"user-{i}") for i, t in enumerate(tokens)))
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(plugin.module.hmac, "compare_digest", counting)
    # The first entry matches, yet all 200 are compared (no early exit) ...
    assert plugin.auth(f"Bearer {tokens[0]}") == Decision.allow_as("user-0")
    assert len(calls) == 200
    # ... and a miss costs the same number of comparisons.
    calls.clear()
    assert not plugin.auth(f"Bearer {secrets.token_urlsafe(32)}").allow
    assert len(calls) == 200
    # Any entry can be found.
    assert plugin.auth(f"Bearer {tokens[137]}") == Decision.allow_as("user-137")


def test_bearer_source_decides_with_compare_digest_only() -> None:
    source = (BEARER / "plugin.py").read_text()
    assert "compare_digest" in source
    assert not re.search(r"digest\s*==|==\s*digest", source)


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("sha256:abc alice", 1, "64 lowercase hex"),
        ("# header\n\nmd5:{hex} alice", 3, "first field"),
        ("sha256:{hex}", 1, "expected"),
        ("sha256:{hex} alice chat extra", 1, "expected"),
        ("sha256:{HEX} alice", 1, "64 lowercase hex"),
        ("sha256:{hex} alice chat,,embeddings", 1, "scopes"),
        ("sha256:{hex} " + "p" * 300, 1, "principal"),
        ("sha256:{hex} alice\nsha256:{hex} bob", 2, "same token digest as line 1"),
    ],
)
def test_bearer_malformed_secret_fails_closed_naming_the_line(
    body: str, line: int, problem: str
) -> None:
    value = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    plugin = Bearer(body.replace("{hex}", value).replace("{HEX}", value.upper()))
    with pytest.raises(ValueError, match=f"bearer-tokens line {line}: .*{problem}") as info:
        plugin.auth(f"Bearer {secrets.token_urlsafe(32)}")
    assert value not in str(info.value)  # the message names the line, never its content
    with pytest.raises(ValueError):  # and keeps failing: it never turns into an allow
        plugin.module.setup(plugin.ctx)


def test_bearer_empty_or_missing_secret_fails_closed() -> None:
    with pytest.raises(ValueError, match="no tokens"):
        Bearer("# nothing yet\n").auth("Bearer abc")
    plugin = Bearer("")
    plugin.host.secrets.clear()
    with pytest.raises(CapabilityError) as info:
        plugin.auth("Bearer abc")
    assert info.value.reason == "secret-missing"


# === jwt-auth: token construction ============================================================


def sign_token(header: dict[str, Any], claims: dict[str, Any] | bytes, sign: Callable) -> str:
    head = b64(json.dumps(header).encode())
    body = b64(claims if isinstance(claims, bytes) else json.dumps(claims).encode())
    return f"{head}.{body}.{b64(sign(f'{head}.{body}'.encode()))}"


def hs256(key: bytes) -> Callable[[bytes], bytes]:
    return lambda message: hmac.digest(key, message, "sha256")


def rs256(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    return lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def eddsa(key: ed25519.Ed25519PrivateKey) -> Callable[[bytes], bytes]:
    return key.sign


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str | None, **extra: Any) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
        **extra,
    }
    return jwk if kid is None else {"kid": kid, **jwk}


def ed_jwk(key: ed25519.Ed25519PrivateKey, kid: str | None, **extra: Any) -> dict[str, Any]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw), **extra}
    return jwk if kid is None else {"kid": kid, **jwk}


class Keys:
    """Signing keys made once per test module (RSA generation is the slow part)."""

    def __init__(self) -> None:
        self.rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ed1 = ed25519.Ed25519PrivateKey.generate()
        self.ed2 = ed25519.Ed25519PrivateKey.generate()
        self.hs = secrets.token_urlsafe(48)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [rsa_jwk(self.rsa1, "rsa-1"), ed_jwk(self.ed1, "ed-1")]}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def config(**overrides: Any) -> dict[str, Any]:
    base = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["HS256", "RS256", "EdDSA"],
        "leeway_seconds": 60,
        "jwks_url": JWKS_URL,
        "jwks_max_age_seconds": 300,
        "jwks_refetch_interval_seconds": 30,
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": int(now),
        "exp": int(now) + 300,
        "scope": "chat embeddings",
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


class Jwt:
    """jwt-auth in process, with a controllable clock and JWKS."""

    def __init__(self, keys: Keys, conf: dict[str, Any] | None = None, jwks: Any = None) -> None:
        self.keys = keys
        self.module = load_module(JWT)
        self.host = FakeHost(
            {"jwt-config": json.dumps(conf or config()), "jwt-hs256-key": keys.hs},
            jwks if jwks is not None else keys.jwks(),
        )
        self.ctx = Context(self.host)
        self.now = NOW
        self.module._now = lambda: self.now

    def auth(self, authorization: str | None) -> Decision:
        return self.module.authenticate(credentials(authorization), self.ctx)

    def bearer(self, token: str) -> Decision:
        return self.auth(f"Bearer {token}")

    def rs(self, kid: str | None = "rsa-1", key: rsa.RSAPrivateKey | None = None, **c: Any) -> str:
        header = {"alg": "RS256", "typ": "JWT"} | ({} if kid is None else {"kid": kid})
        return sign_token(header, claims(self.now, **c), rs256(key or self.keys.rsa1))

    def ed(self, kid: str | None = "ed-1", key: Any = None, **c: Any) -> str:
        header = {"alg": "EdDSA"} | ({} if kid is None else {"kid": kid})
        return sign_token(header, claims(self.now, **c), eddsa(key or self.keys.ed1))

    def hs(self, **c: Any) -> str:
        return sign_token({"alg": "HS256", "typ": "JWT"}, claims(self.now, **c), hs256(self.hs_key))

    @property
    def hs_key(self) -> bytes:
        return self.keys.hs.encode()


@pytest.fixture
def jwt(keys: Keys) -> Jwt:
    return Jwt(keys)


ALLOW_ALICE = Decision.allow_as("alice", scopes=["chat", "embeddings"])


# === jwt-auth: the three algorithms ==========================================================


def test_jwt_accepts_each_algorithm(jwt: Jwt) -> None:
    assert jwt.bearer(jwt.hs()) == ALLOW_ALICE
    assert jwt.bearer(jwt.rs()) == ALLOW_ALICE
    assert jwt.bearer(jwt.ed()) == ALLOW_ALICE
    assert jwt.host.fetches == [JWKS_URL]  # one fetch, then the cache


def test_jwt_tampered_claims_fail_for_each_algorithm(jwt: Jwt) -> None:
    forged_claims = b64(json.dumps(claims(sub="mallory")).encode())
    for token in (jwt.hs(), jwt.rs(), jwt.ed()):
        head, _, sig = token.split(".")
        assert jwt.bearer(f"{head}.{forged_claims}.{sig}") == Decision.deny("bad-signature")


def test_jwt_signature_by_another_key_fails(jwt: Jwt, keys: Keys) -> None:
    assert jwt.bearer(jwt.rs(key=keys.rsa2)) == Decision.deny("bad-signature")
    assert jwt.bearer(jwt.ed(key=keys.ed2)) == Decision.deny("bad-signature")
    wrong = sign_token({"alg": "HS256"}, claims(), hs256(secrets.token_bytes(32)))
    assert jwt.bearer(wrong) == Decision.deny("bad-signature")


def test_jwt_scopes_and_principal_claims(keys: Keys) -> None:
    plugin = Jwt(keys, config(principal_claim="email", scopes_claim="scp"))
    token = plugin.hs(email="alice@example.com", scp=["chat", "chat", "admin"])
    assert plugin.bearer(token) == Decision.allow_as("alice@example.com", ["chat", "admin"])
    assert plugin.bearer(plugin.hs(email=None)) == Decision.deny("missing-principal")
    assert plugin.bearer(plugin.hs(email=42)) == Decision.deny("missing-principal")
    assert plugin.bearer(plugin.hs(email="x" * 257)) == Decision.deny("missing-principal")
    for bad in (7, ["ok", 3], [""], ["s"] * 65, ["s" * 129]):
        assert plugin.bearer(plugin.hs(email="a", scp=bad)) == Decision.deny("invalid-scopes")
    assert plugin.bearer(plugin.hs(email="a", scp=None)) == Decision.allow_as("a")


# === jwt-auth: refusals ======================================================================


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_jwt_refuses_alg_none(jwt: Jwt, alg: str) -> None:
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    assert jwt.bearer(f"{head}.{body}.") == Decision.deny("alg-not-allowed")
    assert jwt.bearer(f"{head}.{body}.{b64(b'x' * 32)}") == Decision.deny("alg-not-allowed")


def test_jwt_configured_algorithms_are_enforced(keys: Keys) -> None:
    plugin = Jwt(keys, config(algorithms=["RS256"]))
    assert plugin.bearer(plugin.rs()) == ALLOW_ALICE
    assert plugin.bearer(plugin.ed()) == Decision.deny("alg-not-allowed")
    assert plugin.bearer(plugin.hs()) == Decision.deny("alg-not-allowed")
    for alg in ("RS512", "HS512", "ES256", "rs256", "RS256 "):
        token = sign_token({"alg": alg, "kid": "rsa-1"}, claims(), rs256(keys.rsa1))
        assert plugin.bearer(token) == Decision.deny("alg-not-allowed")
    assert "jwt-hs256-key" not in plugin.host.secret_reads  # HS256 off: its key is never read


def _rsa_public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_jwt_algorithm_confusion_rsa_public_key_as_hmac_secret(keys: Keys) -> None:
    """The classic attack: HS256 'signed' with the RSA public key the verifier trusts."""
    pem, jwk = _rsa_public_pem(keys.rsa1), rsa_jwk(keys.rsa1, "rsa-1")
    der = keys.rsa1.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secrets_tried = [
        pem,
        pem.strip(),
        der,
        json.dumps(jwk).encode(),
        base64.b64decode(jwk["n"] + "==", altchars=b"-_"),
    ]
    rs_only = Jwt(keys, config(algorithms=["RS256"]))
    both = Jwt(keys)  # HS256 allowed too, with its own operator secret
    for secret in secrets_tried:
        token = sign_token({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, claims(), hs256(secret))
        assert rs_only.bearer(token) == Decision.deny("alg-not-allowed")
        assert both.bearer(token) == Decision.deny("bad-signature")


def test_jwt_key_type_must_match_alg(jwt: Jwt, keys: Keys) -> None:
    # An EdDSA token naming the RSA key, and the reverse: never verified with the wrong type.
    ed_naming_rsa = sign_token({"alg": "EdDSA", "kid": "rsa-1"}, claims(), eddsa(keys.ed1))
    rs_naming_ed = sign_token({"alg": "RS256", "kid": "ed-1"}, claims(), rs256(keys.rsa1))
    assert jwt.bearer(ed_naming_rsa) == Decision.deny("key-alg-mismatch")
    assert jwt.bearer(rs_naming_ed) == Decision.deny("key-alg-mismatch")


def test_jwt_jwk_alg_member_pins_the_key(keys: Keys) -> None:
    jwks = {
        "keys": [rsa_jwk(keys.rsa1, "rsa-1", alg="RS256"), ed_jwk(keys.ed1, "ed-1", alg="EdDSA")]
    }
    plugin = Jwt(keys, jwks=jwks)
    assert plugin.bearer(plugin.rs()) == ALLOW_ALICE
    assert plugin.bearer(plugin.ed()) == ALLOW_ALICE


def test_jwt_jwks_symmetric_private_and_encryption_keys_are_ignored(keys: Keys) -> None:
    oct_secret = secrets.token_bytes(32)
    private = rsa_jwk(keys.rsa2, "rsa-private", d=b64(b"\x01" * 256))
    jwks = {
        "keys": [
            {"kty": "oct", "kid": "shared", "k": b64(oct_secret)},
            private,
            rsa_jwk(keys.rsa1, "rsa-enc", use="enc"),
            rsa_jwk(keys.rsa1, "rsa-ops", key_ops=["encrypt"]),
            ed_jwk(keys.ed1, "ed-1"),
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": b64(b"\x09" * 32)},
            {"kty": "EC", "crv": "P-256", "kid": "ec"},
            "not a key",
        ]
    }
    plugin = Jwt(keys, jwks=jwks)
    hs_with_oct = sign_token({"alg": "HS256", "kid": "shared"}, claims(), hs256(oct_secret))
    assert plugin.bearer(hs_with_oct) == Decision.deny("bad-signature")
    assert plugin.bearer(plugin.rs("rsa-private", keys.rsa2)) == Decision.deny("unknown-kid")
    assert plugin.bearer(plugin.rs("rsa-enc")) == Decision.deny("unknown-kid")
    assert plugin.bearer(plugin.rs("rsa-ops")) == Decision.deny("unknown-kid")
    assert plugin.bearer(plugin.ed()) == ALLOW_ALICE


def test_jwt_weak_rsa_keys_are_ignored(keys: Keys) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    plugin = Jwt(keys, jwks={"keys": [rsa_jwk(weak, "weak"), ed_jwk(keys.ed1, "ed-1")]})
    assert plugin.bearer(plugin.rs("weak", weak)) == Decision.deny("unknown-kid")


def test_jwt_refuses_crit_and_jwe_headers(jwt: Jwt, keys: Keys) -> None:
    crit = sign_token(
        {"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1}, claims(), rs256(keys.rsa1)
    )
    unencoded = sign_token(
        {"alg": "HS256", "crit": ["b64"], "b64": False}, claims(), hs256(jwt.hs_key)
    )
    assert jwt.bearer(crit) == Decision.deny("crit-unsupported")
    assert jwt.bearer(unencoded) == Decision.deny("crit-unsupported")
    jwe = sign_token({"alg": "HS256", "enc": "A256GCM"}, claims(), hs256(jwt.hs_key))
    assert jwt.bearer(jwe) == Decision.deny("malformed-token")
    five_parts = "eyJhbGciOiJSU0EtT0FFUCJ9.YQ.YQ.YQ.YQ"
    assert jwt.bearer(five_parts) == Decision.deny("malformed-token")


def test_jwt_typ_and_kid_header_checks(jwt: Jwt, keys: Keys) -> None:
    for typ in ("JWT", "jwt", "at+jwt", "application/at+JWT"):
        token = sign_token({"alg": "HS256", "typ": typ}, claims(), hs256(jwt.hs_key))
        assert jwt.bearer(token) == ALLOW_ALICE
    for typ in ("logout+jwt", "JOSE+JSON", 5, None):
        token = sign_token({"alg": "HS256", "typ": typ}, claims(), hs256(jwt.hs_key))
        assert jwt.bearer(token) == Decision.deny("wrong-type")
    for kid in (5, "", None, "k" * 257):
        token = sign_token({"alg": "RS256", "kid": kid}, claims(), rs256(keys.rsa1))
        assert jwt.bearer(token) == Decision.deny("malformed-token")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda t: "", "missing-credentials"),
        (lambda t: "Basic " + t, "not-bearer"),
        (lambda t: "Bearer " + t + "." + "A" * 9000, "oversized-token"),
        (lambda t: "Bearer " + "A" * 8193, "oversized-token"),
        (lambda t: "Bearer " + "x" * 500_000, "oversized-token"),
        (lambda t: "Bearer " + t.rsplit(".", 1)[0], "malformed-token"),  # two parts
        (lambda t: "Bearer " + t + ".x", "malformed-token"),  # four parts
        (lambda t: "Bearer " + t.replace(".", ".=", 1), "malformed-token"),  # padding
        (lambda t: "Bearer " + "!" + t, "malformed-token"),  # alphabet
        (lambda t: "Bearer " + t.replace("-", "+").replace("_", "/") + "+/", "malformed-token"),
        (lambda t: "Bearer ..", "malformed-token"),
        (lambda t: "Bearer " + b64(b"not json") + ".YQ.YQ", "malformed-token"),
        (lambda t: "Bearer " + b64(b'["alg"]') + ".YQ.YQ", "malformed-token"),
        (lambda t: "Bearer " + b64(b'{"alg":"HS256","alg":"none"}') + ".YQ.YQ", "malformed-token"),
        (lambda t: "Bearer " + b64(b'{"alg":NaN}') + ".YQ.YQ", "malformed-token"),
        (lambda t: "Bearer " + b64(b"\xff\xfe{}") + ".YQ.YQ", "malformed-token"),
        (lambda t: "Bearer " + b64(b"[" * 3000 + b"]" * 3000) + ".YQ.YQ", "malformed-token"),
        (lambda t: "Bearer " + b64(b'{"typ":"JWT"}') + ".YQ.YQ", "malformed-token"),  # no alg
    ],
)
def test_jwt_malformed_and_oversized_tokens(
    jwt: Jwt, make: Callable[[str], str], reason: str
) -> None:
    assert jwt.auth(make(jwt.hs())) == Decision.deny(reason)


def test_jwt_non_canonical_base64url_is_refused(jwt: Jwt) -> None:
    token = jwt.hs()
    head, body, sig = token.split(".")
    # 32 bytes take 43 characters (258 bits): the last character's 2 low bits are unused and
    # zero. Setting one spells the same bytes differently, which a strict decoder refuses.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    assert last % 4 == 0
    variant = sig[:-1] + alphabet[last + 1]
    assert base64.urlsafe_b64decode(variant + "=") == base64.urlsafe_b64decode(sig + "=")
    assert jwt.bearer(f"{head}.{body}.{variant}") == Decision.deny("malformed-token")
    assert jwt.bearer(f"{head}.{body}.{sig}AA") == Decision.deny("malformed-token")  # len % 4 == 1


def test_jwt_signed_but_malformed_claims(jwt: Jwt) -> None:
    for payload in (b"[1,2]", b"not json", b'{"exp": 1, "exp": 2}', b"\xff"):
        token = sign_token({"alg": "HS256"}, payload, hs256(jwt.hs_key))
        assert jwt.bearer(token) == Decision.deny("malformed-token")
    token = sign_token({"alg": "HS256"}, b"", hs256(jwt.hs_key))
    assert jwt.bearer(token) == Decision.deny("malformed-token")


# === jwt-auth: time, issuer, audience ========================================================


def test_jwt_exp_with_leeway(jwt: Jwt) -> None:
    assert jwt.bearer(jwt.hs(exp=NOW - 30)) == ALLOW_ALICE  # within the 60 s leeway
    assert jwt.bearer(jwt.hs(exp=NOW - 60)) == Decision.deny("expired")
    assert jwt.bearer(jwt.hs(exp=NOW - 86400)) == Decision.deny("expired")
    assert jwt.bearer(jwt.hs(exp=None)) == Decision.deny("missing-exp")


def test_jwt_nbf_and_iat_with_leeway(jwt: Jwt) -> None:
    assert jwt.bearer(jwt.hs(nbf=NOW + 30)) == ALLOW_ALICE
    assert jwt.bearer(jwt.hs(nbf=NOW + 61)) == Decision.deny("not-yet-valid")
    assert jwt.bearer(jwt.hs(iat=NOW + 30)) == ALLOW_ALICE
    assert jwt.bearer(jwt.hs(iat=NOW + 3600)) == Decision.deny("not-yet-valid")
    assert jwt.bearer(jwt.hs(iat=None, nbf=None)) == ALLOW_ALICE  # both optional


def test_jwt_zero_leeway(keys: Keys) -> None:
    plugin = Jwt(keys, config(leeway_seconds=0))
    assert plugin.bearer(plugin.hs(exp=NOW + 1)) == ALLOW_ALICE
    assert plugin.bearer(plugin.hs(exp=NOW)) == Decision.deny("expired")
    assert plugin.bearer(plugin.hs(nbf=NOW + 1)) == Decision.deny("not-yet-valid")


@pytest.mark.parametrize("value", ["1800000300", True, 1e400, [1], {"t": 1}])
def test_jwt_numeric_dates_must_be_finite_numbers(jwt: Jwt, value: object) -> None:
    assert jwt.bearer(jwt.hs(exp=value)) == Decision.deny("malformed-token")
    assert jwt.bearer(jwt.hs(nbf=value)) == Decision.deny("malformed-token")


def test_jwt_fractional_numeric_dates(jwt: Jwt) -> None:
    assert jwt.bearer(jwt.hs(exp=NOW + 0.5, iat=NOW - 0.25)) == ALLOW_ALICE


def test_jwt_max_token_age(keys: Keys) -> None:
    plugin = Jwt(keys, config(max_token_age_seconds=600))
    assert plugin.bearer(plugin.hs(iat=NOW - 600)) == ALLOW_ALICE
    assert plugin.bearer(plugin.hs(iat=NOW - 700, exp=NOW + 3600)) == Decision.deny("expired")
    assert plugin.bearer(plugin.hs(iat=None)) == Decision.deny("missing-iat")


def test_jwt_issuer_must_match_exactly(jwt: Jwt) -> None:
    for iss in ("https://idp.test", "https://evil.test/", ISSUER.upper(), None, 5, [ISSUER]):
        assert jwt.bearer(jwt.hs(iss=iss)) == Decision.deny("wrong-issuer")


def test_jwt_audience(keys: Keys) -> None:
    plugin = Jwt(keys, config(audience=["haechi-gateway", "haechi-admin"]))
    assert plugin.bearer(plugin.hs(aud="haechi-admin")) == ALLOW_ALICE
    assert plugin.bearer(plugin.hs(aud=["other", "haechi-gateway"])) == ALLOW_ALICE
    for aud in ("other", ["other"], [], None, 5, ["haechi-gateway", 5], "HAECHI-GATEWAY"):
        assert plugin.bearer(plugin.hs(aud=aud)) == Decision.deny("wrong-audience")


# === jwt-auth: JWKS cache, rotation, availability ============================================


def test_jwt_kid_rotation(jwt: Jwt, keys: Keys) -> None:
    old_token = jwt.rs("rsa-1")
    assert jwt.bearer(old_token) == ALLOW_ALICE
    # The provider publishes a new key next to the old one.
    jwt.host.jwks = {"keys": [rsa_jwk(keys.rsa1, "rsa-1"), rsa_jwk(keys.rsa2, "rsa-2")]}
    jwt.now += 31
    new_token = jwt.rs("rsa-2", keys.rsa2)
    assert jwt.bearer(new_token) == ALLOW_ALICE  # unknown kid: one refetch found it
    assert jwt.bearer(old_token) == ALLOW_ALICE  # old key still published: still valid
    assert len(jwt.host.fetches) == 2
    # The old key is retired; once the cache expires, tokens signed with it stop working.
    jwt.host.jwks = {"keys": [rsa_jwk(keys.rsa2, "rsa-2")]}
    jwt.now += 300
    assert jwt.bearer(jwt.rs("rsa-1")) == Decision.deny("unknown-kid")
    assert jwt.bearer(jwt.rs("rsa-2", keys.rsa2)) == ALLOW_ALICE


def test_jwt_unknown_kid_refetch_is_rate_limited(jwt: Jwt, keys: Keys) -> None:
    assert jwt.bearer(jwt.rs()) == ALLOW_ALICE
    jwt.now += 31
    for _ in range(50):
        kid = secrets.token_hex(8)
        assert jwt.bearer(jwt.rs(kid)) == Decision.deny("unknown-kid")
    assert len(jwt.host.fetches) == 2  # the first fetch, and one refetch for 50 unknown kids
    jwt.now += 29
    assert jwt.bearer(jwt.rs("nope")) == Decision.deny("unknown-kid")
    assert len(jwt.host.fetches) == 2
    jwt.now += 1
    assert jwt.bearer(jwt.rs("nope")) == Decision.deny("unknown-kid")
    assert len(jwt.host.fetches) == 3


def test_jwt_cache_expires_after_max_age(jwt: Jwt) -> None:
    jwt.bearer(jwt.rs())
    jwt.now += 299
    jwt.bearer(jwt.rs())
    assert len(jwt.host.fetches) == 1
    jwt.now += 1
    jwt.bearer(jwt.rs())
    assert len(jwt.host.fetches) == 2


def test_jwt_token_without_kid(keys: Keys) -> None:
    single = Jwt(keys, jwks={"keys": [rsa_jwk(keys.rsa1, None), ed_jwk(keys.ed1, None)]})
    assert single.bearer(single.rs(kid=None)) == ALLOW_ALICE  # the only RSA key
    assert single.bearer(single.ed(kid=None)) == ALLOW_ALICE  # the only Ed25519 key
    two = Jwt(keys, jwks={"keys": [rsa_jwk(keys.rsa1, "a"), rsa_jwk(keys.rsa2, "b")]})
    assert two.bearer(two.rs(kid=None)) == Decision.deny("missing-kid")


def test_jwt_unreachable_jwks_fails_closed(jwt: Jwt) -> None:
    jwt.host.down = True
    assert jwt.bearer(jwt.rs()) == Decision.deny("jwks-unavailable")
    assert jwt.bearer(jwt.ed()) == Decision.deny("jwks-unavailable")
    assert len(jwt.host.fetches) == 1  # a failed fetch is not retried at once
    assert jwt.bearer(jwt.hs()) == ALLOW_ALICE  # HS256 needs no JWKS
    jwt.host.down = False
    jwt.now += 30
    assert jwt.bearer(jwt.rs()) == ALLOW_ALICE
    assert len(jwt.host.fetches) == 2


def test_jwt_stale_keys_are_not_used_when_the_jwks_is_down(jwt: Jwt) -> None:
    assert jwt.bearer(jwt.rs()) == ALLOW_ALICE
    jwt.host.down = True
    jwt.now += 300
    assert jwt.bearer(jwt.rs(exp=jwt.now + 300)) == Decision.deny("jwks-unavailable")


def test_jwt_fresh_keys_survive_a_failed_rotation_refetch(jwt: Jwt) -> None:
    assert jwt.bearer(jwt.rs()) == ALLOW_ALICE
    jwt.host.down = True
    jwt.now += 31
    assert jwt.bearer(jwt.rs("new")) == Decision.deny("jwks-unavailable")
    assert jwt.bearer(jwt.rs()) == ALLOW_ALICE


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, None),
        (404, None),
        (200, b"<html>"),
        (200, b"[]"),
        (200, b'{"keys": "none"}'),
        (200, b'{"keys": []}'),
        (200, json.dumps({"keys": [{"kty": "RSA", "kid": "x"}] * 101}).encode()),
    ],
)
def test_jwt_unusable_jwks_answers_fail_closed(jwt: Jwt, status: int, body: bytes | None) -> None:
    jwt.host.status, jwt.host.body = status, body
    assert jwt.bearer(jwt.rs()) == Decision.deny("jwks-unavailable")


# === jwt-auth: configuration =================================================================


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"issuer": None}, "issuer: is required"),
        ({"audience": []}, "audience"),
        ({"algorithms": ["none"]}, "never allowed"),
        ({"algorithms": ["RS256", "ES256"]}, "not supported"),
        ({"algorithms": []}, "algorithms"),
        ({"leeway_seconds": 3600}, "leeway_seconds"),
        ({"leeway_seconds": True}, "leeway_seconds"),
        ({"jwks_url": None}, "jwks_url: is required"),
        ({"jwks_url": "http://jwks.example.com/keys"}, "https"),
        ({"jwks_url": "file:///etc/passwd"}, "https"),
        ({"audiance": "typo"}, "unknown field 'audiance'"),
        ({"jwks_max_age_seconds": 0}, "jwks_max_age_seconds"),
    ],
)
def test_jwt_bad_configuration_fails_closed(keys: Keys, overrides: dict, message: str) -> None:
    plugin = Jwt(keys, config(**overrides))
    with pytest.raises(ValueError, match=message):
        plugin.module.setup(plugin.ctx)
    with pytest.raises(ValueError, match=message):
        plugin.bearer(plugin.hs())


def test_jwt_configuration_edge_cases(keys: Keys) -> None:
    hs_only = Jwt(keys, config(algorithms="HS256", jwks_url=None))
    assert hs_only.bearer(hs_only.hs()) == ALLOW_ALICE
    assert hs_only.host.fetches == []
    http = Jwt(keys, config(jwks_url="http://127.0.0.1:8080/jwks", jwks_allow_http=True))
    http.module.setup(http.ctx)
    not_json = Jwt(keys)
    not_json.host.secrets["jwt-config"] = "{"
    with pytest.raises(ValueError, match="not valid JSON"):
        not_json.module.setup(not_json.ctx)


def test_jwt_hs256_key_secret(keys: Keys) -> None:
    short = Jwt(keys)
    short.host.secrets["jwt-hs256-key"] = "too-short"
    with pytest.raises(ValueError, match="at least 32 bytes"):
        short.module.setup(short.ctx)
    missing = Jwt(keys)
    del missing.host.secrets["jwt-hs256-key"]
    with pytest.raises(CapabilityError):
        missing.module.setup(missing.ctx)
    binary = secrets.token_bytes(32)
    encoded = Jwt(keys)
    encoded.host.secrets["jwt-hs256-key"] = f"base64url:{b64(binary)}\n"
    token = sign_token({"alg": "HS256"}, claims(), hs256(binary))
    assert encoded.bearer(token) == ALLOW_ALICE


def test_jwt_configuration_is_read_once(jwt: Jwt) -> None:
    jwt.module.setup(jwt.ctx)
    for _ in range(3):
        jwt.bearer(jwt.hs())
    assert jwt.host.secret_reads == ["jwt-config", "jwt-hs256-key"]


# === pure-Python verifiers ===================================================================


@pytest.fixture(scope="module")
def ed25519_module() -> ModuleType:
    return load_module(JWT, "_ed25519.py")


@pytest.fixture(scope="module")
def rs256_module() -> ModuleType:
    return load_module(JWT, "_rs256.py")


# RFC 8032 §7.1, TEST 1-3: (public key, message, signature), public test vectors.
RFC8032 = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("public", "message", "signature"), RFC8032)
def test_ed25519_rfc8032_vectors(
    ed25519_module: ModuleType, public: str, message: str, signature: str
) -> None:
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert ed25519_module.verify(pk, msg, sig)
    assert not ed25519_module.verify(pk, msg + b"\x00", sig)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not ed25519_module.verify(pk, msg, flipped)


def test_ed25519_agrees_with_nacl(ed25519_module: ModuleType) -> None:
    import nacl.exceptions
    import nacl.signing

    for size in range(0, 300, 7):
        key = nacl.signing.SigningKey.generate()
        message = secrets.token_bytes(size)
        signature = key.sign(message).signature
        public = bytes(key.verify_key)
        assert ed25519_module.verify(public, message, signature)
        tampered = bytearray(signature)
        tampered[secrets.randbelow(64)] ^= 1 << secrets.randbelow(8)
        try:
            key.verify_key.verify(message, bytes(tampered))
            nacl_ok = True
        except nacl.exceptions.BadSignatureError:
            nacl_ok = False
        assert ed25519_module.verify(public, message, bytes(tampered)) == nacl_ok


def test_ed25519_rejects_malleable_and_non_canonical_encodings(ed25519_module: ModuleType) -> None:
    public, message, signature = (bytes.fromhex(x) for x in RFC8032[0])
    order = ed25519_module.L
    s = int.from_bytes(signature[32:], "little")
    # S + L verifies the same group equation; RFC 8032 requires refusing S >= L.
    malleable = signature[:32] + (s + order).to_bytes(32, "little")
    assert not ed25519_module.verify(public, message, malleable)
    # y >= p is a non-canonical point encoding (here y = p + 1, the identity's y plus p).
    non_canonical = (ed25519_module.P + 1).to_bytes(32, "little")
    assert not ed25519_module.verify(non_canonical, message, signature)
    # Small-order public keys (the identity, and the point of order 2) are refused.
    identity = (1).to_bytes(32, "little")
    order_two = (ed25519_module.P - 1).to_bytes(32, "little")
    for weak in (identity, order_two):
        assert not ed25519_module.verify(weak, message, identity + bytes(32))
    # Bad sizes and off-curve points.
    assert not ed25519_module.verify(public[:31], message, signature)
    assert not ed25519_module.verify(public, message, signature[:63])
    off_curve = (2).to_bytes(32, "little")  # y = 2 has no x on the curve
    assert not ed25519_module.verify(off_curve, message, signature)


def test_rs256_agrees_with_cryptography(rs256_module: ModuleType, keys: Keys) -> None:
    numbers = keys.rsa1.public_key().public_numbers()
    for size in (0, 1, 100, 5000):
        message = secrets.token_bytes(size)
        signature = rs256(keys.rsa1)(message)
        assert rs256_module.verify(numbers.n, numbers.e, message, signature)
        assert not rs256_module.verify(numbers.n, numbers.e, message + b"!", signature)
    signature = rs256(keys.rsa1)(b"m")
    # Exactly the modulus length: a leading zero byte removed or added is refused.
    assert not rs256_module.verify(numbers.n, numbers.e, b"m", b"\x00" + signature)
    if signature[0] == 0:
        assert not rs256_module.verify(numbers.n, numbers.e, b"m", signature[1:])
    # A representative >= n is refused even though it is congruent to a valid one.
    too_big = (int.from_bytes(signature, "big") + numbers.n).to_bytes(len(signature) + 1, "big")
    assert not rs256_module.verify(numbers.n, numbers.e, b"m", too_big[-len(signature) :])


def _cube_root_ceil(value: int) -> int:
    root = 1 << (value.bit_length() // 3 + 1)  # above the cube root
    while root**3 > value:  # Newton's method descends to the floor of the root
        root = (2 * root + value // (root * root)) // 3
    while root**3 < value:
        root += 1
    return root


def _naive_prefix_check(block: bytes, message: bytes) -> bool:
    """The flawed check Bleichenbacher's attack defeats: skip the 0xFF run, read what follows."""
    if block[:2] != b"\x00\x01":
        return False
    rest = block[2:].lstrip(b"\xff")
    info = bytes.fromhex("3031300d060960864801650304020105000420")
    return (
        rest[:1] == b"\x00"
        and rest[1 : 1 + len(info) + 32] == info + hashlib.sha256(message).digest()
    )


def test_rs256_refuses_a_bleichenbacher_e3_forgery(rs256_module: ModuleType, keys: Keys) -> None:
    """With e = 3 and a parser that ignores trailing bytes, anyone can 'sign' by cube root."""
    # Any 3072-bit odd modulus will do: the forger never needs the private key.
    n = (1 << 3071) | secrets.randbits(3070) << 1 | 1
    size = 384
    message = b'{"sub":"mallory"}'
    prefix = (
        b"\x00\x01\xff\x00"
        + bytes.fromhex("3031300d060960864801650304020105000420")
        + hashlib.sha256(message).digest()
    )
    garbage_bits = (size - len(prefix)) * 8
    forged = _cube_root_ceil(int.from_bytes(prefix, "big") << garbage_bits)
    signature = forged.to_bytes(size, "big")
    block = pow(forged, 3, n).to_bytes(size, "big")
    assert block.startswith(prefix)  # the forgery is real ...
    assert _naive_prefix_check(block, message)  # ... and fools a lenient parser
    assert not rs256_module.verify(n, 3, message, signature)  # but not this one

    # Through the plugin: a JWKS key with e = 3 and a token carrying the forged signature.
    jwk = {"kty": "RSA", "kid": "e3", "n": b64(n.to_bytes(size, "big")), "e": b64(b"\x03")}
    plugin = Jwt(keys, jwks={"keys": [jwk]})
    head = b64(json.dumps({"alg": "RS256", "kid": "e3"}).encode())
    body = b64(json.dumps(claims(sub="mallory")).encode())
    signing_input = f"{head}.{body}".encode()
    prefix = prefix[:-32] + hashlib.sha256(signing_input).digest()
    forged = _cube_root_ceil(int.from_bytes(prefix, "big") << garbage_bits)
    assert pow(forged, 3, n).to_bytes(size, "big").startswith(prefix)
    token = f"{head}.{body}.{b64(forged.to_bytes(size, 'big'))}"
    assert plugin.bearer(token) == Decision.deny("bad-signature")


def test_rs256_refuses_short_padding_and_garbage_blocks(rs256_module: ModuleType) -> None:
    """Blocks a lenient parser might take, each fed to verify as the recovered block.

    With the toy exponent e = 1 the signature *is* the recovered block, so every variant
    reaches the comparison (real keys need e >= 3, see check_public_key).
    """
    n = (1 << 2047) | secrets.randbits(2046) << 1 | 1
    size, message = 256, b"payload"
    digest = hashlib.sha256(message).digest()
    info = bytes.fromhex("3031300d060960864801650304020105000420")
    no_null_info = bytes.fromhex("302f300b06096086480165030402010420")  # parameters omitted
    correct = b"\x00\x01" + b"\xff" * (size - len(info) - 32 - 3) + b"\x00" + info + digest

    def padded(body: bytes, filler: bytes = b"\xff") -> bytes:
        return b"\x00\x01" + filler * (size - len(body) - 3) + b"\x00" + body

    variants = {
        "short padding, trailing garbage": b"\x00\x01"
        + b"\xff" * 8
        + b"\x00"
        + info
        + digest
        + secrets.token_bytes(size - 11 - len(info) - 32),
        "block type 2": b"\x00\x02" + correct[2:],
        "a non-FF padding byte": correct[:5] + b"\xfe" + correct[6:],
        "DigestInfo without NULL": padded(no_null_info + digest),
        "wrong hash": correct[:-1] + bytes([correct[-1] ^ 1]),
        "no leading zero": b"\x01" + correct[1:],
    }
    assert rs256_module.verify(n, 1, message, correct)  # the harness itself is sound
    for name, block in variants.items():
        assert len(block) == size, name
        assert not rs256_module.verify(n, 1, message, block), name
    assert rs256_module.check_public_key(n, 1) is not None
    assert rs256_module.check_public_key(n, 65537) is None
    assert rs256_module.check_public_key(n >> 1100, 65537) is not None  # 947 bits: too small
    assert rs256_module.check_public_key(n, 65536) is not None  # even exponent
    assert rs256_module.check_public_key(n - 1, 65537) is not None  # even modulus


# === documentation ===========================================================================


BEARER_REASONS = (
    "missing-credentials",
    "not-bearer",
    "malformed-token",
    "oversized-token",
    "unknown-token",
)
JWT_REASONS = (
    "missing-credentials", "not-bearer", "oversized-token", "malformed-token", "alg-not-allowed",
    "crit-unsupported", "wrong-type", "missing-kid", "unknown-kid", "key-alg-mismatch",
    "jwks-unavailable", "bad-signature", "missing-exp", "expired", "not-yet-valid", "missing-iat",
    "wrong-issuer", "wrong-audience", "missing-principal", "invalid-scopes",
)  # fmt: skip


@pytest.mark.parametrize(("bundle", "reasons"), [(BEARER, BEARER_REASONS), (JWT, JWT_REASONS)])
def test_every_deny_reason_is_documented_and_used(bundle: Path, reasons: tuple[str, ...]) -> None:
    readme = (bundle / "README.md").read_text()
    source = "".join(p.read_text() for p in bundle.glob("*.py") if p.name != "test_plugin.py")
    for reason in reasons:
        assert f"`{reason}`" in readme, reason
        assert f'"{reason}"' in source, reason


# === the real sandbox (haechi.sdk.testing) ===================================================


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 in its own thread and event loop; ``keys`` can change."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.port = _free_port()
        self.hits = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _serve(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.json_response(self.jwks)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks.json", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> JwksServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[JwksServer]:
    server = JwksServer(keys.jwks()).start()
    yield server
    server.close()


def _local_copy(tmp_path: Path, port: int) -> Path:
    """The jwt-auth bundle with its net:fetch grant pointed at the local JWKS server."""
    target = tmp_path / "jwt-auth"
    shutil.copytree(JWT, target, ignore=shutil.ignore_patterns("__pycache__", "test_plugin.py"))
    manifest = target / "plugin.toml"
    text = manifest.read_text()
    assert '"net:fetch:jwks.example.com"' in text
    manifest.write_text(text.replace("net:fetch:jwks.example.com", f"net:fetch:127.0.0.1:{port}"))
    return target


def _sandbox_config(port: int, **overrides: Any) -> str:
    return json.dumps(
        config(
            jwks_url=f"http://127.0.0.1:{port}/jwks.json",
            jwks_allow_http=True,
            jwks_refetch_interval_seconds=1,
            **overrides,
        )
    )


def _real_token(header: dict[str, Any], sign: Callable, **overrides: Any) -> str:
    import time

    return sign_token(header, claims(time.time(), **overrides), sign)


def test_sandbox_bearer_auth() -> None:
    testing = pytest.importorskip("haechi.sdk.testing")
    token = secrets.token_urlsafe(32)
    listing = digest_line(token, "alice", "chat")
    with testing.load(BEARER, secrets={"bearer-tokens": listing}) as plugin:
        assert plugin.authenticate(f"Bearer {token}") == Decision.allow_as("alice", ["chat"])
        assert plugin.authenticate(f"Bearer {secrets.token_urlsafe(32)}") == Decision.deny(
            "unknown-token"
        )
        assert plugin.authenticate(None) == Decision.deny("missing-credentials")
        assert plugin.authenticate("Bearer " + "a" * 5000) == Decision.deny("oversized-token")


def test_sandbox_bearer_malformed_secret_refuses_to_start() -> None:
    testing = pytest.importorskip("haechi.sdk.testing")
    with (
        pytest.raises(testing.PluginCallError) as info,
        testing.load(BEARER, secrets={"bearer-tokens": "# list\nsha256:zz alice\n"}),
    ):
        pass
    assert "bearer-tokens line 2" in info.value.message


def test_sandbox_jwt_rotation_and_unreachable_jwks(
    tmp_path: Path, keys: Keys, jwks_server: JwksServer
) -> None:
    testing = pytest.importorskip("haechi.sdk.testing")
    import time

    port = jwks_server.port
    bundle = _local_copy(tmp_path, port)
    options = {
        "secrets": {"jwt-config": _sandbox_config(port), "jwt-hs256-key": keys.hs},
        "allow_networks": ("127.0.0.0/8",),
    }
    with testing.load(bundle, **options) as plugin:
        rs1 = _real_token({"alg": "RS256", "kid": "rsa-1"}, rs256(keys.rsa1))
        ed1 = _real_token({"alg": "EdDSA", "kid": "ed-1"}, eddsa(keys.ed1))
        hs = _real_token({"alg": "HS256"}, hs256(keys.hs.encode()))
        for token in (rs1, ed1, hs):
            assert plugin.authenticate(f"Bearer {token}") == ALLOW_ALICE
        assert jwks_server.hits == 1
        # Rotation: a new key appears; its first token triggers one refetch.
        jwks_server.jwks = {"keys": [*keys.jwks()["keys"], rsa_jwk(keys.rsa2, "rsa-2")]}
        time.sleep(1.1)  # past the refetch interval of 1 s
        rs2 = _real_token({"alg": "RS256", "kid": "rsa-2"}, rs256(keys.rsa2))
        assert plugin.authenticate(f"Bearer {rs2}") == ALLOW_ALICE
        assert plugin.authenticate(f"Bearer {rs1}") == ALLOW_ALICE
        assert jwks_server.hits == 2
        # Unknown kids right after do not refetch.
        for _ in range(5):
            stray = _real_token({"alg": "RS256", "kid": secrets.token_hex(4)}, rs256(keys.rsa1))
            assert plugin.authenticate(f"Bearer {stray}") == Decision.deny("unknown-kid")
        assert jwks_server.hits == 2
        forged = _real_token({"alg": "RS256", "kid": "rsa-1"}, rs256(keys.rsa2))
        assert plugin.authenticate(f"Bearer {forged}") == Decision.deny("bad-signature")

    # A fresh process whose JWKS server is gone: fail closed.
    jwks_server.stop()
    with testing.load(bundle, **options) as plugin:
        assert plugin.authenticate(f"Bearer {rs1}") == Decision.deny("jwks-unavailable")
        assert plugin.authenticate(f"Bearer {hs}") == ALLOW_ALICE


def test_sandbox_jwt_placeholder_host_fails_closed(keys: Keys) -> None:
    """The shipped manifest's jwks.example.com is refused or unreachable: never an allow."""
    testing = pytest.importorskip("haechi.sdk.testing")
    conf = json.dumps(config(jwks_url="https://jwks.example.com/.well-known/jwks.json"))
    with testing.load(JWT, secrets={"jwt-config": conf, "jwt-hs256-key": keys.hs}) as plugin:
        token = _real_token({"alg": "RS256", "kid": "rsa-1"}, rs256(keys.rsa1))
        assert plugin.authenticate(f"Bearer {token}") == Decision.deny("jwks-unavailable")
