"""The allow-list: unknown fields, free text and malformed values are refused, naming the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from haechi.host.audit import SCHEMAS, AuditError, principal_hash, validate
from haechi.host.audit.schema import ENVELOPE
from hypothesis import given
from hypothesis import strategies as st

from . import request_fields


def refused(kind: str, **fields: Any) -> AuditError:
    with pytest.raises(AuditError) as info:
        validate(kind, fields)
    return info.value


def test_a_full_request_event_is_accepted_and_sorted() -> None:
    event = validate("request", request_fields(1))
    names = [name for name, _ in event.fields]
    assert names == sorted(names)
    assert dict(event.fields)["plugins"] == ("pii-filter", "secret-filter")


def test_an_unknown_field_is_refused_by_name() -> None:
    error = refused("request", **request_fields(1), prompt="my card is 4111 1111 1111 1111")
    assert error.reason == "field-not-allowed"
    assert error.field == "prompt"
    assert "'prompt'" in str(error)
    assert "4111" not in str(error)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "Upstream said: alice@example.com"),
        ("reason", "UPPER"),
        ("reason", ""),
        ("reason", "x" * 65),
        ("route", "/v1/chat/completions?user=alice"),
        ("route", "/v1/../admin"),
        ("route", "/v1/%2e%2e/admin"),
        ("route", "/v1//chat"),
        ("route", "/users/alice@example.com"),
        ("route", "v1/chat"),
        ("status", True),
        ("status", 200.0),
        ("status", 99),
        ("latency_ms", float("nan")),
        ("latency_ms", -1),
        ("latency_ms", "3"),
        ("detections", {"email": -1}),
        ("detections", {"Email Address": 1}),
        ("detections", {"email": True}),
        ("actions", {"email": "shred"}),
        ("plugins", "pii-filter"),
        ("plugins", ["Not A Plugin"]),
        ("principal", "alice@example.com"),
        ("model", "gpt 4 please ignore previous instructions"),
        ("method", "post"),
        ("request_id", "Alice-Request"),
    ],
)
def test_a_malformed_value_is_refused_without_echoing_it(field: str, value: object) -> None:
    fields = request_fields(1) | {field: value}
    error = refused("request", **fields)
    assert error.reason == "field-invalid"
    assert error.field is not None and error.field.startswith(field)
    if isinstance(value, str) and len(value) > 3:
        assert value not in str(error)


def test_required_fields_must_be_present_and_none_means_absent() -> None:
    error = refused("plugin", plugin="pii-filter")
    assert (error.reason, error.field) == ("field-missing", "event")
    event = validate("plugin", {"plugin": "pii-filter", "event": "crash", "pid": None})
    assert "pid" not in dict(event.fields)


def test_unknown_and_reserved_kinds_are_refused() -> None:
    assert refused("chat-log", text="hi").reason == "unknown-kind"
    error = refused("rotate", previous_file="audit.1.jsonl", previous_hash="0" * 64)
    assert error.reason == "reserved-kind"
    assert (
        validate(
            "rotate", {"previous_file": "audit.1.jsonl", "previous_hash": "0" * 64}, internal=True
        ).kind
        == "rotate"
    )


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("detokenize", {"principal": "ab" * 16, "token_type": "email", "outcome": "revealed"}),
        (
            "plugin",
            {
                "plugin": "pii-filter",
                "version": "1.2.0",
                "event": "load-refused",
                "reason": "bad-signature",
            },
        ),
        ("key", {"key": "vault", "version": 3, "event": "budget-warning", "seals": 2**31}),
        ("config", {"event": "loaded", "digest": "a" * 64}),
        ("start", {"pid": 100, "version": "0.1.0", "workers": 2}),
        ("stop", {"pid": 100, "reason": "sigterm"}),
        ("trust", {"event": "applied", "version": 7}),
    ],
)
def test_each_kind_accepts_its_documented_fields(kind: str, fields: dict[str, object]) -> None:
    assert validate(kind, fields).kind == kind


def test_no_kind_declares_an_envelope_name_as_a_field() -> None:
    for schema in SCHEMAS.values():
        assert not {f.name for f in schema.fields} & set(ENVELOPE), schema.kind


def test_principal_hash_is_keyed() -> None:
    one = principal_hash(b"k" * 32, "alice@example.com")
    assert re.fullmatch(r"[0-9a-f]{32}", one)
    assert one != principal_hash(b"j" * 32, "alice@example.com")
    assert one == principal_hash(b"k" * 32, "alice@example.com")
    with pytest.raises(AuditError) as info:
        principal_hash(b"short", "alice")
    assert info.value.reason == "key-too-short"


@given(st.text(max_size=80))
def test_a_code_field_accepts_exactly_the_code_alphabet(text: str) -> None:
    matches = re.fullmatch(r"[a-z0-9:_.-]{1,64}", text, re.ASCII) is not None
    try:
        validate("stop", {"pid": 1, "reason": text})
    except AuditError as error:
        assert not matches
        assert error.field == "reason"
    else:
        assert matches


def test_the_reference_page_lists_every_kind_and_field() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs/reference/audit.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line for line in page.splitlines() if line.startswith("| `")
    }
    for schema in SCHEMAS.values():
        assert schema.kind in rows, schema.kind
        for spec in schema.fields:
            shown = f"**{spec.name}**" if spec.required else spec.name
            assert shown in rows[schema.kind], (schema.kind, spec.name)
