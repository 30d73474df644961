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
  known secret is accepted;
* crypto: seal then open gives the plaintext back; two seals of one plaintext differ; a
  changed byte anywhere, or a different ``type`` or ``tenant``, fails to open; every seal is
  counted against a host-held ``keys:<name>`` (the nonce budget cannot see the plugin's own
  crypto).
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

from .harness import PluginHarness

__all__ = ["CREDENTIAL_SOURCES", "Outcome", "run_conformance", "secrets_for"]

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


def _bearer_tokens() -> tuple[dict[str, str], str]:
    token = "hxc_" + secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    listing = (
        f"# made by haechi plugin test; valid for this run only\nsha256:{digest} conformance\n"
    )
    return {"bearer-tokens": listing}, token


def _jwt_hs256() -> tuple[dict[str, str], str]:
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
    signing_input = f"{_b64url({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url(claims)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    return {"jwt-config": json.dumps(config), "jwt-hs256-key": key}, token


def _b64url(value: dict[str, Any]) -> str:
    data = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# The secrets a plugin reads its credentials from -> how to make a fresh credential for them.
# A plugin declaring all of a source's secrets gets the positive vector.
CREDENTIAL_SOURCES: dict[frozenset[str], Callable[[], tuple[dict[str, str], str]]] = {
    frozenset({"bearer-tokens"}): _bearer_tokens,
    frozenset({"jwt-config", "jwt-hs256-key"}): _jwt_hs256,
}


def secrets_for(manifest: Any, given: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """The secrets to run with, plus the credential a known source was given (if any).

    The author's own secrets win: when they name a source's secret, that source is not used
    (the author's secret would not hold our credential).
    """
    declared = {
        c.removeprefix("secrets:read:")
        for c in manifest.capabilities
        if c.startswith("secrets:read:")
    }
    for needs, make in CREDENTIAL_SOURCES.items():
        if needs <= declared and not needs & set(given):
            made, token = make()
            return {**given, **made}, token
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
    harness: PluginHarness, token: str | None
) -> list[tuple[str, Callable[[], None] | None]]:
    random = "hxc_" + secrets.token_urlsafe(24)
    basic = base64.b64encode(f"user:{random}".encode()).decode()

    def accepted() -> None:
        assert token is not None
        view = RequestView("POST", ROUTE, {"authorization": f"Bearer {token}"})
        decision = harness.call("authenticate", harness.request_arguments("authenticate", view))
        if not decision["allow"]:
            raise VectorFailed(f"a valid credential was denied ({decision.get('reason')!r})")

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
        ("auth: a credential made at run time is accepted", accepted if token else None),
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
        ("crypto: every seal is counted against keys:<name>", counted if keys else _no_keys),
    ]


def _no_keys() -> None:
    raise VectorFailed(
        "the manifest declares no keys:<name>; seal through ctx.seal so the host counts nonce use"
    )


def run_conformance(harness: PluginHarness, token: str | None = None) -> list[Outcome]:
    """Run the vectors of the plugin's kind on a started harness."""
    kind = harness.manifest.kind
    vectors: list[tuple[str, Callable[[], None] | None]]
    if kind == "filter":
        vectors = list(_filter_vectors(harness))
    elif kind == "auth":
        vectors = _auth_vectors(harness, token)
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
