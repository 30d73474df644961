"""Property tests: any flipped byte is refused; no input makes verification raise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from haechi.trust import (
    PLUGIN_PAYLOAD_TYPE,
    Bundle,
    Envelope,
    Reason,
    SigningKey,
    Statement,
    TrustState,
    verify_files,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import manifest_text

KEY = SigningKey.generate()
NOW = datetime(2030, 6, 1, tzinfo=UTC)
STATE = TrustState.from_anchors([KEY.anchor()]).with_capabilities(["request:body-text"])
FILES = {
    "plugin.toml": manifest_text().encode(),
    "plugin.py": b"def inspect(segments, ctx):\n    return []\n",
    "lib/util.py": "X = 'caf\u00e9'\n".encode(),
    "data/words.txt": bytes(range(256)),
}
BUNDLE = Bundle.from_files(FILES)
STATEMENT = Statement.for_bundle(BUNDLE, NOW - timedelta(days=1), NOW + timedelta(days=1))
ENVELOPE = Envelope(PLUGIN_PAYLOAD_TYPE, STATEMENT.to_payload(), ()).add_signature(KEY).to_json()
TARGETS = [*sorted(FILES), "plugin.sig"]
MANY = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)


def run(files: dict[str, bytes], envelope: bytes | None) -> Reason:
    verdict = verify_files(files, envelope, STATE, host_version="0.1.0", now=NOW)
    return verdict.reason


def test_the_unmodified_bundle_is_accepted() -> None:
    """Guards the properties below: they are only meaningful if this one is accepted."""
    assert run(dict(FILES), ENVELOPE) is Reason.ACCEPTED


@MANY
@given(target=st.sampled_from(TARGETS), position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_flipping_any_byte_is_refused(target: str, position: int, flip: int) -> None:
    files, envelope = dict(FILES), ENVELOPE
    data = bytearray(envelope if target == "plugin.sig" else files[target])
    data[position % len(data)] ^= flip
    if target == "plugin.sig":
        envelope = bytes(data)
    else:
        files[target] = bytes(data)
    assert run(files, envelope) is not Reason.ACCEPTED


@MANY
@given(data=st.binary(max_size=4096))
def test_arbitrary_envelope_bytes_never_raise(data: bytes) -> None:
    assert run(dict(FILES), data) is not Reason.ACCEPTED


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def envelope_like(payload: object, sig: object, keyid: object, ptype: object) -> bytes:
    import base64

    body = payload if isinstance(payload, str) else json.dumps(payload)
    document = {
        "payloadType": ptype,
        "payload": base64.b64encode(body.encode()).decode(),
        "signatures": [{"keyid": keyid, "sig": sig}],
    }
    return (json.dumps(document, indent=2) + "\n").encode()


@MANY
@given(
    payload=JSON,
    sig=st.one_of(JSON, st.just("A" * 86 + "==")),
    keyid=st.one_of(JSON, st.just(KEY.keyid)),
    ptype=st.one_of(JSON, st.just(PLUGIN_PAYLOAD_TYPE)),
)
def test_structured_envelopes_never_raise(payload, sig, keyid, ptype) -> None:
    assert run(dict(FILES), envelope_like(payload, sig, keyid, ptype)) is not Reason.ACCEPTED


@MANY
@given(manifest=st.binary(max_size=2048))
def test_arbitrary_manifest_bytes_never_raise(manifest: bytes) -> None:
    files = dict(FILES, **{"plugin.toml": manifest})
    assert run(files, ENVELOPE) is not Reason.ACCEPTED


TOML_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.text(max_size=30).map(json.dumps),
    st.booleans().map(lambda b: str(b).lower()),
    st.lists(st.text(max_size=20), max_size=4).map(json.dumps),
    st.just("1.5"),
    st.just("{ a = 1 }"),
)
KEYS = st.sampled_from(
    [
        "id",
        "version",
        "kind",
        "entry",
        "description",
        "requires-host",
        "capabilities",
        "limits",
        "extra",
        "limits.timeout-ms",
        "limits.memory-mb",
        "limits.concurrency",
    ]
)


@MANY
@given(edits=st.lists(st.tuples(KEYS, TOML_VALUES), min_size=1, max_size=4))
def test_mutated_manifest_fields_never_raise(edits) -> None:
    lines = [line for line in manifest_text().splitlines() if "=" in line and "[" not in line[:1]]
    table = dict(line.split(" = ", 1) for line in lines)
    for key, value in edits:
        table[key] = value
    text = "\n".join(f"{k} = {v}" for k, v in table.items() if "." not in k)
    text += "\n[limits]\n" + "\n".join(
        f"{k.split('.', 1)[1]} = {v}" for k, v in table.items() if "." in k
    )
    files = dict(FILES, **{"plugin.toml": text.encode()})
    assert run(files, ENVELOPE) is not Reason.ACCEPTED


@MANY
@given(names=st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=6))
def test_arbitrary_file_names_never_raise(names) -> None:
    files = dict(FILES)
    for name in names:
        files[name] = b"x"
    assert run(files, ENVELOPE) is not Reason.ACCEPTED
