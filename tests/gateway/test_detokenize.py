"""Detokenisation: only principals with the ``detokenize`` scope see a vault token's value, and
every token asked for is an audit event, revealed or not."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from .e2e_helpers import CHAT, E2EGateway, LoopThread, http, start_gateway

READER = "hx_" + secrets.token_urlsafe(24)  # a second principal, without the scope


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    loop = LoopThread()
    running = start_gateway(
        loop,
        tmp_path_factory.mktemp("detokenize"),
        policy={"mode": "enforce", "actions": {"email": "tokenize"}},
        extra_tokens={READER: "reader chat"},  # a principal without the detokenize scope
    )
    yield running
    running.close()
    loop.close()


def tokenize(gateway: E2EGateway, email: str) -> str:
    mark = gateway.mark()
    reply = gateway.post(CHAT, {"model": "m", "messages": [{"role": "user", "content": email}]})
    assert reply.status == 200, reply.text
    forwarded = gateway.last_received(mark).body["messages"][0]["content"]
    [token] = re.findall(r"tok_email_[0-9a-f]+", forwarded)
    return token


def detokenize(gateway: E2EGateway, tokens: list[str], bearer: str) -> object:
    return http(
        "POST",
        gateway.base_url + "/haechi/v1/detokenize",
        json_body={"tokens": tokens},
        headers={"Authorization": f"Bearer {bearer}"},
    )


def test_a_principal_with_the_scope_gets_the_value_back(gateway: E2EGateway) -> None:
    email = f"{secrets.token_hex(4)}@example.com"
    token = tokenize(gateway, email)
    reply = detokenize(gateway, [token, "tok_email_" + "0" * 32], gateway.token)
    assert reply.status == 200, reply.text
    assert reply.json["values"] == {token: email, "tok_email_" + "0" * 32: None}
    events = gateway.audit_events("detokenize")
    outcomes = [(e["outcome"], e["token_type"]) for e in events[-2:]]
    assert outcomes == [("revealed", "email"), ("not-found", "email")]
    assert email not in (gateway.home / "audit" / "audit.jsonl").read_text()


def test_a_principal_without_the_scope_is_refused_and_audited(gateway: E2EGateway) -> None:
    token = tokenize(gateway, f"{secrets.token_hex(4)}@example.com")
    before = len(gateway.audit_events("detokenize"))
    reply = detokenize(gateway, [token], READER)
    assert (reply.status, reply.code) == (403, "scope-missing")
    denied = gateway.audit_events("detokenize")[before:]
    assert [(e["outcome"], e["reason"]) for e in denied] == [("denied", "scope-missing")]


@pytest.mark.parametrize("body", [{}, {"tokens": []}, {"tokens": "tok"}, {"tokens": [1]}])
def test_malformed_requests_name_the_field(gateway: E2EGateway, body: object) -> None:
    reply = http(
        "POST",
        gateway.base_url + "/haechi/v1/detokenize",
        json_body=body,
        headers={"Authorization": f"Bearer {gateway.token}"},
    )
    assert (reply.status, reply.code) == (400, "invalid-body")
    assert "$.tokens" in reply.json["error"]["message"]


def test_detokenising_needs_credentials(gateway: E2EGateway) -> None:
    reply = http("POST", gateway.base_url + "/haechi/v1/detokenize", json_body={"tokens": ["x"]})
    assert reply.status == 401


def test_detokenising_never_reaches_the_upstream(gateway: E2EGateway) -> None:
    mark = gateway.mark()
    detokenize(gateway, ["tok_email_" + "1" * 32], gateway.token)
    assert gateway.received_since(mark) == []


def test_after_a_key_rotation_old_and_new_tokens_both_open(gateway: E2EGateway) -> None:
    from haechi.host.keys import KeyStore

    store = KeyStore(gateway.home / "keys")
    before = store.status("vault").current
    old_email = f"{secrets.token_hex(4)}@example.com"
    old = tokenize(gateway, old_email)
    assert store.rotate("vault") == before + 1  # what `haechi keys rotate` does
    new_email = f"{secrets.token_hex(4)}@example.com"
    new = tokenize(gateway, new_email)
    reply = detokenize(gateway, [old, new], gateway.token)
    assert reply.json["values"] == {old: old_email, new: new_email}
    versions = {v.version: v.used for v in store.status("vault").versions}
    assert versions.get(before + 1) is not None  # the new version sealed the new value
