"""The wire shape of each hook's answer, as the host checks it (sdk/protocol.py)."""

from __future__ import annotations

import pytest
from haechi.sdk.protocol import MAX_DETECTIONS, ResultError, check_result, hooks_for

GOOD = {"type": "email", "segment": 0, "start": 3, "end": 9}


@pytest.mark.parametrize(
    ("hook", "value"),
    [
        ("inspect", []),
        ("inspect", [GOOD, GOOD | {"label": "work address", "confidence": 90}]),
        ("authenticate", {"allow": True, "principal": "svc-a", "scopes": ["chat"]}),
        ("authenticate", {"allow": False, "reason": "expired"}),
        ("encrypt", b"sealed"),
        ("decrypt", b"plain"),
        ("setup", None),
    ],
)
def test_valid_answers(hook: str, value: object) -> None:
    assert check_result(hook, value) is value


@pytest.mark.parametrize(
    ("hook", "value", "words"),
    [
        ("inspect", {"type": "x"}, "list of detections"),
        ("inspect", [GOOD | {"end": 1}], "end: must be an integer >= 3"),
        ("inspect", [GOOD | {"start": -1}], "start"),
        ("inspect", [GOOD | {"segment": True}], "segment"),
        ("inspect", [GOOD | {"type": "Email"}], "type"),
        ("inspect", [GOOD | {"extra": 1}], "unknown field 'extra'"),
        ("inspect", [{k: v for k, v in GOOD.items() if k != "end"}], "missing 'end'"),
        ("inspect", [GOOD | {"confidence": 101}], "confidence"),
        ("inspect", [GOOD] * (MAX_DETECTIONS + 1), "at most"),
        ("authenticate", {"allow": "yes"}, "allow"),
        ("authenticate", {"principal": "x"}, "missing 'allow'"),
        ("authenticate", {"allow": True, "scopes": "chat"}, "scopes"),
        ("authenticate", {"allow": True, "is_admin": True}, "unknown field"),
        ("encrypt", "text", "bytes"),
        ("teardown", 0, "nothing"),
        ("exfiltrate", None, "not a hook"),
    ],
)
def test_malformed_answers_name_the_field(hook: str, value: object, words: str) -> None:
    with pytest.raises(ResultError, match=words):
        check_result(hook, value)


def test_hooks_per_kind() -> None:
    assert hooks_for("auth") == ("authenticate", "setup", "teardown")
    assert hooks_for("crypto")[:2] == ("encrypt", "decrypt")
