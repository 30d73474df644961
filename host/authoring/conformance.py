"""Conformance vectors: what every plugin of a kind must do, checked inside the real sandbox.

There is no backdoor: the original accepted any ``valid.*`` credential during conformance.
Here every credential is made at run time and reaches the plugin only the way a real one
would, through ``secrets:read`` (:data:`CREDENTIAL_SOURCES`: a bearer-token digest list, or an
HS256 key with a JWT configuration); a plugin whose credential source the harness does not
know gets the negative vectors only, and the table says so (n/a).

Rules per kind:

* filter: an empty request gives no detections; answers are deterministic; every span lies
  inside the segment it names; hostile text (controls, bidi marks, long lines) and a 256 KiB
  segment are answered, not crashed on;
* auth: missing, random, wrong-scheme and oversized credentials are denied (an error counts as
  a denial: the gateway fails closed); a credential made at run time and handed over through a
  known secret is accepted, and its near misses are denied (a bearer token with a suffix, a
  prefix or another case; a JWT with ``alg: none``, another key, a changed signature byte, an
  expired ``exp``, another audience or issuer);
* crypto: seal then open gives the plaintext back; two seals of one plaintext differ; a
  changed byte anywhere, or a different ``type`` or ``tenant``, fails to open; the answer is a
  ``Sealed`` value whose type, tenant, expiry and key name cannot be rewritten (each is inside
  the AAD); an expired value fails to open; every seal is counted against a host-held
  ``keys:<name>`` (the nonce budget cannot see the plugin's own crypto).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from haechi.host.sandbox import SandboxError
from haechi.host.sandbox.views import RequestView
from haechi.sdk import Sealed

from .harness import PluginHarness

__all__ = ["CREDENTIAL_SOURCES", "Credentials", "Outcome", "run_conformance", "secrets_for"]

ROUTE = "/v1/chat/completions"
HOSTILE_TEXT = (
    "plain words\x00\x07\x1b[31m\u202e\u200b\ufeff" + "line\n" * 2000 + "e\u0301\U0001f600"
)
FIELDS = {"type": "conformance", "tenant": "tenant-a", "expires": 0}


@dataclass(frozen=True)
class Outcome:
    """One vector's result: ``status`` is pass, fail or n/a (not applicable to this plugin)."""

    name: str
    status: str
    detail: str = ""


class VectorFailed(Exception):
    pass


# --- credentials made at run time ------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What a credential source made for one run: the secrets that make ``valid`` valid, and
    near misses (each labelled) that a correct plugin must deny."""

    secrets: dict[str, str]
    valid: str
    near_misses: tuple[tuple[str, str], ...]


def _bearer_tokens() -> Credentials:
    token = "hxc_" + secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    listing = f"sha256:{digest} conformance\n"  # valid for this run only
    near = (
        ("the valid token with a suffix", token + "x"),
        ("a prefix of the valid token", token[:-1]),
        ("the valid token in another case", token.swapcase()),
    )
    return Credentials({"bearer-tokens": listing}, token, near)


def _jwt_hs256() -> Credentials:
    key = secrets.token_urlsafe(48)
    config = {"issuer": "haechi-conformance", "audience": "haechi", "algorithms": ["HS256"]}
    now = int(time.time())
    claims = {
        "iss": config["issuer"],
        "aud": config["audience"],
        "sub": "conformance",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    valid = _jwt(claims, key)
    head, body, signature = valid.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    near = (
        ("a JWT with alg none", f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{body}."),
        ("a JWT signed with another key", _jwt(claims, secrets.token_urlsafe(48))),
        ("a JWT with one signature byte changed", f"{head}.{body}.{flipped}"),
        ("an expired JWT", _jwt({**claims, "iat": now - 7200, "exp": now - 3600}, key)),
        ("a JWT for another audience", _jwt({**claims, "aud": "someone-else"}, key)),
        ("a JWT from another issuer", _jwt({**claims, "iss": "https://evil.example/"}, key)),
    )
    return Credentials({"jwt-config": json.dumps(config), "jwt-hs256-key": key}, valid, near)


def _jwt(claims: dict[str, Any], key: str) -> str:
    signing_input = f"{_b64url({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url(claims)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _b64url(value: dict[str, Any]) -> str:
    data = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# The secrets a plugin reads its credentials from -> how to make fresh credentials for them.
# A plugin declaring all of a source's secrets gets the positive and near-miss vectors.
CREDENTIAL_SOURCES: dict[frozenset[str], Callable[[], Credentials]] = {
    frozenset({"bearer-tokens"}): _bearer_tokens,
    frozenset({"jwt-config", "jwt-hs256-key"}): _jwt_hs256,
}


def secrets_for(manifest: Any, given: dict[str, str]) -> tuple[dict[str, str], Credentials | None]:
    """The secrets to run with, plus the credentials a known source made (if any).

    The author's own secrets win: when they name a source's secret, that source is not used
    (the author's secret would not hold our credential).
    """
    prefix = "secrets:read:"
    declared = {c.removeprefix(prefix) for c in manifest.capabilities if c.startswith(prefix)}
    for needs, make in CREDENTIAL_SOURCES.items():
        if needs <= declared and not needs & set(given):
            made = make()
            return {**given, **made.secrets}, made
    return dict(given), None


# --- the vectors ------------------------------------------------------------------------------


def _inspect(harness: PluginHarness, segments: list[str]) -> list[dict[str, Any]]:
    view = RequestView("POST", ROUTE, segments=tuple(segments))
    result: list[dict[str, Any]] = harness.call(
        "inspect", harness.request_arguments("inspect", view)
    )
    for item in result:
        if item["segment"] >= len(segments) or item["end"] > len(segments[item["segment"]]):
            raise VectorFailed(f"detection {item} lies outside the text it was given")
    return result


def _filter_vectors(harness: PluginHarness) -> list[tuple[str, Callable[[], None]]]:
    sample = ["Contact bob@example.com or +1 415 555 2671.", "", HOSTILE_TEXT]

    def empty() -> None:
        if _inspect(harness, []) != []:
            raise VectorFailed("an empty request must give no detections")

    def deterministic() -> None:
        if _inspect(harness, sample) != _inspect(harness, sample):
            raise VectorFailed("the same text gave two different answers")

    def large() -> None:
        _inspect(harness, ["word " * 52_429])  # 256 KiB

    return [
        ("filter: an empty request gives no detections", empty),
        ("filter: answers are deterministic and inside their segments", deterministic),
        ("filter: a 256 KiB segment is answered", large),
    ]


def _deny(harness: PluginHarness, authorization: str | None, what: str) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    view = RequestView("POST", ROUTE, headers)
    try:
        decision = harness.call("authenticate", harness.request_arguments("authenticate", view))
    except SandboxError:
        return  # an error fails the request closed, which is a denial
    if decision["allow"]:
        raise VectorFailed(f"{what} was accepted (principal {decision.get('principal')!r})")


def _auth_vectors(
    harness: PluginHarness, made: Credentials | None
) -> list[tuple[str, Callable[[], None] | None]]:
    random = "hxc_" + secrets.token_urlsafe(24)
    basic = base64.b64encode(f"user:{random}".encode()).decode()

    def accepted() -> None:
        assert made is not None
        view = RequestView("POST", ROUTE, {"authorization": f"Bearer {made.valid}"})
        decision = harness.call("authenticate", harness.request_arguments("authenticate", view))
        if not decision["allow"]:
            raise VectorFailed(f"a valid credential was denied ({decision.get('reason')!r})")

    def near_misses() -> None:
        assert made is not None
        for label, token in made.near_misses:
            _deny(harness, f"Bearer {token}", label)

    return [
        ("auth: no credentials are denied", lambda: _deny(harness, None, "a request without one")),
        (
            "auth: a random token is denied",
            lambda: _deny(harness, f"Bearer {random}", "a random token"),
        ),
        ("auth: another scheme is denied", lambda: _deny(harness, f"Basic {basic}", "Basic auth")),
        (
            "auth: a 64 KiB token is denied",
            lambda: _deny(harness, "Bearer " + "A" * 65_536, "an oversized token"),
        ),
        ("auth: a credential made at run time is accepted", accepted if made else None),
        ("auth: near misses of that credential are denied", near_misses if made else None),
    ]


def _crypto_vectors(harness: PluginHarness) -> list[tuple[str, Callable[[], None] | None]]:
    keys = [c.removeprefix("keys:") for c in harness.manifest.capabilities if c.startswith("keys:")]
    plaintext = b"conformance " + secrets.token_bytes(8)

    def seal(data: bytes = plaintext) -> bytes:
        return bytes(harness.call("encrypt", [data, dict(FIELDS)]))

    def must_fail(sealed: bytes, fields: dict[str, Any], what: str) -> None:
        try:
            opened = harness.call("decrypt", [sealed, fields])
        except SandboxError:
            return
        raise VectorFailed(f"{what} still opened (to {len(bytes(opened))} bytes)")

    def round_trip() -> None:
        for data in (plaintext, b""):
            if harness.call("decrypt", [seal(data), dict(FIELDS)]) != data:
                raise VectorFailed("open(seal(x)) is not x")

    def fresh() -> None:
        if seal() == seal():
            raise VectorFailed("two seals of the same plaintext are identical (nonce reuse?)")

    def tamper() -> None:
        sealed = seal()
        for position in sorted({0, len(sealed) // 2, len(sealed) - 17, len(sealed) - 1}):
            changed = bytearray(sealed)
            changed[position] ^= 0x01
            must_fail(bytes(changed), dict(FIELDS), f"a value with byte {position} changed")

    def binding() -> None:
        sealed = seal()
        must_fail(sealed, {**FIELDS, "type": "other"}, "opening as another type")
        must_fail(sealed, {**FIELDS, "tenant": "tenant-b"}, "opening for another tenant")

    def header_bound() -> None:
        """Rewrite one header field and claim what it now says: only the AAD can catch it."""
        try:
            header = Sealed.from_bytes(seal())
        except ValueError as exc:
            raise VectorFailed(f"encrypt must return a haechi.sdk.Sealed value ({exc})") from None
        rewrites = {
            "type": Sealed(header.key, "other", header.body, header.tenant, header.expires),
            "tenant": Sealed(header.key, header.type, header.body, "tenant-b", header.expires),
            "expires": Sealed(header.key, header.type, header.body, header.tenant, 4102444800),
            "key": Sealed(header.key + "-2", header.type, header.body, header.tenant, 0),
        }
        for field_name, forged in rewrites.items():
            claims = {"type": forged.type, "tenant": forged.tenant, "expires": 0}
            must_fail(forged.to_bytes(), claims, f"a value with its {field_name} rewritten")

    def expiry() -> None:
        expired = bytes(harness.call("encrypt", [plaintext, {**FIELDS, "expires": 1}]))
        must_fail(expired, dict(FIELDS), "a value that expired in 1970")

    def counted() -> None:
        before = sum(harness.keys.uses(k) for k in keys)
        seal()
        seal()
        if sum(harness.keys.uses(k) for k in keys) - before != 2:
            raise VectorFailed("seals were not counted against a host-held key")

    return [
        ("crypto: open(seal(x)) == x, also for empty x", round_trip),
        ("crypto: two seals of one plaintext differ", fresh),
        ("crypto: a changed byte fails to open", tamper),
        ("crypto: another type or tenant fails to open", binding),
        ("crypto: type, tenant, expiry and key are inside the AAD", header_bound),
        ("crypto: an expired value fails to open", expiry),
        ("crypto: every seal is counted against keys:<name>", counted if keys else _no_keys),
    ]


def _no_keys() -> None:
    raise VectorFailed(
        "the manifest declares no keys:<name>; seal through ctx.seal so the host counts nonce use"
    )


def run_conformance(harness: PluginHarness, made: Credentials | None = None) -> list[Outcome]:
    """Run the vectors of the plugin's kind on a started harness."""
    kind = harness.manifest.kind
    vectors: list[tuple[str, Callable[[], None] | None]]
    if kind == "filter":
        vectors = list(_filter_vectors(harness))
    elif kind == "auth":
        vectors = _auth_vectors(harness, made)
    else:
        vectors = _crypto_vectors(harness)
    return [_run_one(name, vector) for name, vector in vectors]


def _run_one(name: str, vector: Callable[[], None] | None) -> Outcome:
    if vector is None:
        known = "; ".join(", ".join(sorted(needs)) for needs in CREDENTIAL_SOURCES)
        return Outcome(name, "n/a", f"no known credential source (secrets:read of: {known})")
    try:
        vector()
    except VectorFailed as exc:
        return Outcome(name, "fail", str(exc))
    except SandboxError as exc:
        return Outcome(name, "fail", f"{exc.reason}: {exc.message}")
    return Outcome(name, "pass")
