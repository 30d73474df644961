"""Attacks on the verifier. Each test fails if the defence it names is removed."""

from __future__ import annotations

import json
import os
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from haechi.trust import (
    PLUGIN_PAYLOAD_TYPE,
    TRUST_PAYLOAD_TYPE,
    Envelope,
    Reason,
    Signature,
    TrustState,
    read_bundle,
    sign_bundle,
    verify_directory,
)
from haechi.trust._internal.encoding import b64encode, canonical_json
from haechi.trust.envelope import pae
from haechi.trust.keys import SigningKey

from .conftest import (
    ALLOW,
    KeyPair,
    anchor_table,
    dump_envelope,
    manifest_text,
    write_bundle,
    write_state,
)


def check(bundle: Path, state: TrustState, host_version: str = "0.1.0") -> Reason:
    return verify_directory(bundle, state, host_version=host_version, now=now()).reason


def now() -> datetime:
    return datetime.now(UTC)


def trust(*pairs: KeyPair) -> TrustState:
    return TrustState.from_anchors([p.key.anchor() for p in pairs]).with_capabilities(
        ["request:body-text"]
    )


def write_envelope(bundle: Path, payload: bytes, signatures: list[tuple[str, bytes]]) -> None:
    document = {
        "payloadType": PLUGIN_PAYLOAD_TYPE,
        "payload": b64encode(payload),
        "signatures": [{"keyid": k, "sig": b64encode(s)} for k, s in signatures],
    }
    (bundle / "plugin.sig").write_text(dump_envelope(document))


def statement_dict(bundle: Path) -> dict:
    envelope = json.loads((bundle / "plugin.sig").read_text())
    import base64

    return json.loads(base64.b64decode(envelope["payload"]))


def resign(bundle: Path, key: SigningKey, doc: dict, *, canonical: bool = True) -> None:
    payload = canonical_json(doc) if canonical else json.dumps(doc).encode()
    write_envelope(bundle, payload, [(key.keyid, key.sign(pae(PLUGIN_PAYLOAD_TYPE, payload)))])


# --- files changed after signing ----------------------------------------------------------


def test_file_added(signed: Path, author: KeyPair) -> None:
    (signed / "lib" / "evil.py").write_text("import os\n")
    assert check(signed, trust(author)) is Reason.TAMPERED


def test_hidden_file_added(signed: Path, author: KeyPair) -> None:
    (signed / ".pth").write_text("import os\n")
    assert check(signed, trust(author)) is Reason.TAMPERED


def test_file_removed(signed: Path, author: KeyPair) -> None:
    (signed / "lib" / "util.py").unlink()
    (signed / "lib").rmdir()
    assert check(signed, trust(author)) is Reason.TAMPERED


def test_file_changed_one_byte(signed: Path, author: KeyPair) -> None:
    data = bytearray((signed / "lib" / "util.py").read_bytes())
    data[0] ^= 0x20
    (signed / "lib" / "util.py").write_bytes(bytes(data))
    assert check(signed, trust(author)) is Reason.TAMPERED


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            'capabilities = ["request:body-text"]',
            'capabilities = ["request:body-text", "state:kv"]',
        ),
        ('capabilities = ["request:body-text"]', "capabilities = []"),
        ('requires-host = ">=0.1"', 'requires-host = ">=0.0"'),
        ("timeout-ms = 500", "timeout-ms = 60000"),
        ("memory-mb = 64", "memory-mb = 4096"),
        ("concurrency = 2", "concurrency = 64"),
        ('version = "1.2.0"', 'version = "9.9.9"'),
        ('description = "A test plugin"', 'description = "Another"'),
    ],
)
def test_manifest_field_changed(signed: Path, author: KeyPair, old: str, new: str) -> None:
    manifest = signed / "plugin.toml"
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new))
    state = trust(author).with_capabilities(["state:kv"])
    assert check(signed, state) is Reason.TAMPERED


def test_manifest_kind_changed(tmp_path: Path, author: KeyPair) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text(capabilities=["state:kv"]))
    sign_bundle(bundle, author.key)
    manifest = bundle / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('kind = "filter"', 'kind = "crypto"'))
    assert check(bundle, trust(author).with_capabilities(["state:kv"])) is Reason.TAMPERED


def test_signed_manifest_must_equal_the_bundle_manifest(signed: Path, author: KeyPair) -> None:
    """Digests all match, but the statement's manifest claims fewer capabilities."""
    doc = statement_dict(signed)
    doc["manifest"]["capabilities"] = []
    resign(signed, author.key, doc)
    verdict = verify_directory(signed, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.TAMPERED
    assert "manifest" in verdict.message


# --- what a bundle may contain ------------------------------------------------------------


def test_symlink_pointing_outside(signed: Path, author: KeyPair, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    (signed / "lib" / "link.py").symlink_to(secret)
    verdict = verify_directory(signed, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID
    assert "symlink" in verdict.message


def test_symlinked_directory(signed: Path, author: KeyPair, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.py").write_text("")
    (signed / "vendor").symlink_to(outside, target_is_directory=True)
    assert check(signed, trust(author)) is Reason.BUNDLE_INVALID


def test_signing_refuses_symlinks_too(tmp_path: Path, author: KeyPair) -> None:
    bundle = write_bundle(tmp_path / "b")
    (bundle / "x.py").symlink_to("/etc/passwd")
    with pytest.raises(Exception, match="symlink"):
        sign_bundle(bundle, author.key)


def test_fifo_refused(signed: Path, author: KeyPair) -> None:
    os.mkfifo(signed / "pipe")
    assert check(signed, trust(author)) is Reason.BUNDLE_INVALID


def test_dotdot_path_in_statement(signed: Path, author: KeyPair) -> None:
    doc = statement_dict(signed)
    doc["files"]["../outside.py"] = "00" * 32
    resign(signed, author.key, doc)
    verdict = verify_directory(signed, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.ENVELOPE_INVALID
    assert "'..'" in verdict.message


@pytest.mark.parametrize("path", ["/etc/passwd", "a//b.py", "./a.py", "a\\b.py", "a\x00.py", ""])
def test_bad_paths_in_statement(signed: Path, author: KeyPair, path: str) -> None:
    doc = statement_dict(signed)
    doc["files"][path] = "00" * 32
    resign(signed, author.key, doc)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_dotdot_entry_in_manifest(tmp_path: Path, author: KeyPair) -> None:
    manifest = manifest_text().replace('entry = "plugin.py"', 'entry = "../plugin.py"')
    bundle = write_bundle(tmp_path / "b", manifest)
    verdict = verify_directory(bundle, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID
    assert "entry" in verdict.message


def test_names_equal_after_case_folding(tmp_path: Path, author: KeyPair) -> None:
    bundle = write_bundle(tmp_path / "b", files={"Util.py": "A = 1\n", "util.py": "A = 2\n"})
    verdict = verify_directory(bundle, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID
    assert "case-insensitive" in verdict.message


def test_non_nfc_name_refused(tmp_path: Path, author: KeyPair) -> None:
    decomposed = unicodedata.normalize("NFD", "café.py")
    bundle = write_bundle(tmp_path / "b", files={decomposed: ""})
    verdict = verify_directory(bundle, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID
    assert "NFC" in verdict.message


def test_names_equal_after_nfc_in_statement(signed: Path, author: KeyPair) -> None:
    doc = statement_dict(signed)
    doc["files"]["Plugin.py"] = doc["files"]["plugin.py"]
    resign(signed, author.key, doc)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_non_utf8_name_refused(tmp_path: Path, author: KeyPair) -> None:
    bundle = write_bundle(tmp_path / "b")
    fd = os.open(os.fsencode(bundle) + b"/bad\xff.py", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    assert check(bundle, trust(author)) is Reason.BUNDLE_INVALID


# --- signers ------------------------------------------------------------------------------


def test_signer_not_among_anchors(signed: Path, make_key) -> None:
    assert check(signed, trust(make_key("stranger"))) is Reason.UNKNOWN_SIGNER


def test_unknown_signer_is_decided_before_crypto(signed: Path, make_key) -> None:
    """A garbage signature from an unknown key must not reach Ed25519 (step 3 before 5)."""
    envelope = json.loads((signed / "plugin.sig").read_text())
    envelope["signatures"][0]["sig"] = b64encode(b"\x00" * 64)
    (signed / "plugin.sig").write_text(dump_envelope(envelope))
    assert check(signed, trust(make_key("stranger"))) is Reason.UNKNOWN_SIGNER


def test_key_id_is_bound_to_the_key(signed: Path, author: KeyPair, make_key) -> None:
    """A signature made by another key but labelled with the author's key id."""
    mallory = make_key("mallory")
    doc = statement_dict(signed)
    payload = canonical_json(doc)
    sig = mallory.key.sign(pae(PLUGIN_PAYLOAD_TYPE, payload))
    write_envelope(signed, payload, [(author.keyid, sig)])
    assert check(signed, trust(author)) is Reason.BAD_SIGNATURE


def test_domain_separation_other_payload_type(signed: Path, author: KeyPair) -> None:
    """A signature the author made over a trust state cannot be replayed as a plugin one."""
    payload = canonical_json(statement_dict(signed))
    sig = author.key.sign(pae(TRUST_PAYLOAD_TYPE, payload))
    write_envelope(signed, payload, [(author.keyid, sig)])
    assert check(signed, trust(author)) is Reason.BAD_SIGNATURE


def test_domain_separation_raw_payload(signed: Path, author: KeyPair) -> None:
    """A plain Ed25519 signature over the payload (no PAE) does not verify."""
    payload = canonical_json(statement_dict(signed))
    write_envelope(signed, payload, [(author.keyid, author.key.sign(payload))])
    assert check(signed, trust(author)) is Reason.BAD_SIGNATURE


def test_envelope_with_other_payload_type(signed: Path, author: KeyPair) -> None:
    envelope = json.loads((signed / "plugin.sig").read_text())
    envelope["payloadType"] = TRUST_PAYLOAD_TYPE
    (signed / "plugin.sig").write_text(dump_envelope(envelope))
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_statement_type_must_be_plugin(signed: Path, author: KeyPair) -> None:
    doc = statement_dict(signed)
    doc["type"] = "haechi.trust.v1"
    resign(signed, author.key, doc)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_one_revoked_signer_among_several(signed: Path, author, make_key, tmp_path) -> None:
    operator = make_key("operator")
    from haechi.trust import countersign_bundle, load_trust

    countersign_bundle(signed, operator.key)
    path = write_state(
        tmp_path / "t.toml",
        [anchor_table(author), anchor_table(operator)],
        revoked={"keys": [operator.keyid]},
        capabilities={"allow": ["request:body-text"]},
    )
    state = load_trust(path, now=now())
    assert check(signed, state) is Reason.SIGNER_REVOKED


def test_revoked_key_that_is_not_an_anchor_still_taints(signed, author, make_key) -> None:
    other = make_key("other")
    from haechi.trust import countersign_bundle

    countersign_bundle(signed, other.key)
    state = TrustState(
        anchors=trust(author).anchors,
        revoked_keys=frozenset({other.keyid}),
        allowed_capabilities=frozenset({"request:body-text"}),
    )
    assert check(signed, state) is Reason.SIGNER_REVOKED


def test_any_bad_signature_from_an_anchor_refuses(signed, author, make_key) -> None:
    """A valid author signature does not excuse a forged one from another anchor."""
    operator = make_key("operator")
    envelope = Envelope.from_json((signed / "plugin.sig").read_bytes(), PLUGIN_PAYLOAD_TYPE)
    forged = Envelope(
        envelope.payload_type,
        envelope.payload,
        (*envelope.signatures, Signature(operator.keyid, b"\x01" * 64)),
    )
    (signed / "plugin.sig").write_bytes(forged.to_json())
    assert check(signed, trust(author, operator)) is Reason.BAD_SIGNATURE


# --- thresholds ---------------------------------------------------------------------------


def auth_bundle(tmp_path: Path) -> Path:
    return write_bundle(
        tmp_path / "auth", manifest_text(kind="auth", capabilities=["request:credentials"])
    )


def auth_state(author: KeyPair, operator: KeyPair) -> TrustState:
    base = trust(author, operator)
    from dataclasses import replace
    from types import MappingProxyType

    return replace(
        base,
        thresholds=MappingProxyType({"auth": 2}),
        allowed_capabilities=frozenset({"request:credentials"}),
    )


def test_auth_plugin_needs_two_anchors(tmp_path, author, make_key) -> None:
    from haechi.trust import countersign_bundle

    operator = make_key("operator")
    bundle = auth_bundle(tmp_path)
    sign_bundle(bundle, author.key)
    assert check(bundle, auth_state(author, operator)) is Reason.KIND_NOT_ALLOWED
    countersign_bundle(bundle, operator.key)
    assert check(bundle, auth_state(author, operator)) is Reason.ACCEPTED


def test_same_key_twice_counts_once(tmp_path, author, make_key) -> None:
    operator = make_key("operator")
    bundle = auth_bundle(tmp_path)
    envelope = sign_bundle(bundle, author.key)
    doubled = Envelope(
        envelope.payload_type, envelope.payload, envelope.signatures + envelope.signatures
    )
    (bundle / "plugin.sig").write_bytes(doubled.to_json())
    verdict = verify_directory(
        bundle, auth_state(author, operator), host_version="0.1.0", now=now()
    )
    assert verdict.reason is Reason.KIND_NOT_ALLOWED
    assert "found 1" in verdict.message


def test_countersign_twice_with_one_key_is_refused(signed: Path, author: KeyPair) -> None:
    from haechi.trust import EnvelopeError, countersign_bundle

    with pytest.raises(EnvelopeError, match="already signed"):
        countersign_bundle(signed, author.key)


# --- envelope encoding --------------------------------------------------------------------


def _urlsafe(text: str) -> str:
    converted = text.replace("+", "-").replace("/", "_")
    return converted if converted != text else "-" + text[1:]


def mutate_envelope(bundle: Path, change) -> None:
    envelope = json.loads((bundle / "plugin.sig").read_text())
    change(envelope)
    (bundle / "plugin.sig").write_text(dump_envelope(envelope))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: e.update(extra=1), id="unknown-top-field"),
        pytest.param(lambda e: e["signatures"][0].update(alg="ed25519"), id="unknown-sig-field"),
        pytest.param(lambda e: e.pop("payloadType"), id="missing-field"),
        pytest.param(lambda e: e.update(signatures=[]), id="no-signatures"),
        pytest.param(lambda e: e.update(payload=_urlsafe(e["payload"])), id="urlsafe-payload"),
        pytest.param(lambda e: e.update(payload=e["payload"].rstrip("=")), id="unpadded-payload"),
        pytest.param(lambda e: e.update(payload=" " + e["payload"]), id="space-in-payload"),
        pytest.param(
            lambda e: e["signatures"][0].update(sig=e["signatures"][0]["sig"][:-4]),
            id="short-signature",
        ),
        pytest.param(
            lambda e: e["signatures"][0].update(sig=b64encode(b"\x00" * 65)), id="long-signature"
        ),
        pytest.param(lambda e: e["signatures"][0].update(keyid="AB" * 16), id="uppercase-keyid"),
        pytest.param(lambda e: e["signatures"][0].update(keyid="ab" * 8), id="short-keyid"),
        pytest.param(lambda e: e.update(signatures={"a": 1}), id="signatures-not-list"),
    ],
)
def test_malformed_envelope(signed: Path, author: KeyPair, change) -> None:
    mutate_envelope(signed, change)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_non_canonical_base64_signature(signed: Path, author: KeyPair) -> None:
    """The last base64 character of a 64-byte value carries 4 unused bits; setting them
    gives a second spelling of the same bytes that a lenient decoder would accept."""

    def change(envelope: dict) -> None:
        sig = envelope["signatures"][0]["sig"]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = alphabet.index(sig[-3])
        envelope["signatures"][0]["sig"] = sig[:-3] + alphabet[last | 0x01] + "=="
        if alphabet[last | 0x01] == sig[-3]:
            envelope["signatures"][0]["sig"] = sig[:-3] + alphabet[last ^ 0x02] + "=="

    mutate_envelope(signed, change)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


@pytest.mark.parametrize("tail", [b"x", b"{}", b"\n\n", b" ", b"\x00"])
def test_trailing_data_after_envelope(signed: Path, author: KeyPair, tail: bytes) -> None:
    path = signed / "plugin.sig"
    path.write_bytes(path.read_bytes() + tail)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_duplicate_json_keys_in_envelope(signed: Path, author: KeyPair) -> None:
    path = signed / "plugin.sig"
    text = path.read_text()
    path.write_text(text.replace('"payloadType"', '"payloadType": "x", "payloadType"', 1))
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_non_canonical_statement_is_refused_even_if_signed(signed: Path, author) -> None:
    resign(signed, author.key, statement_dict(signed), canonical=False)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_statement_with_extra_field(signed: Path, author: KeyPair) -> None:
    doc = statement_dict(signed)
    doc["comment"] = "unsigned? no - but unknown"
    resign(signed, author.key, doc)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_statement_window_must_be_strict_rfc3339(signed: Path, author: KeyPair) -> None:
    doc = statement_dict(signed)
    doc["notAfter"] = "1000"
    resign(signed, author.key, doc)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_statement_uppercase_digest_refused(signed: Path, author: KeyPair) -> None:
    doc = statement_dict(signed)
    doc["files"]["plugin.py"] = doc["files"]["plugin.py"].upper()
    resign(signed, author.key, doc)
    assert check(signed, trust(author)) is Reason.ENVELOPE_INVALID


# --- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "floor", "reason"),
    [
        ("1.2.0", "1.2.1", Reason.BELOW_VERSION_FLOOR),
        ("1.2.0-rc.1", "1.2.0", Reason.BELOW_VERSION_FLOOR),
        ("1.2.0-rc.2", "1.2.0-rc.10", Reason.BELOW_VERSION_FLOOR),
        ("1.10.0", "1.9.0", Reason.ACCEPTED),
        ("1.2.0", "1.2.0-rc.1", Reason.ACCEPTED),
        ("1.2.0", "1.2.0", Reason.ACCEPTED),
    ],
)
def test_version_floor_uses_semver_precedence(tmp_path, author, version, floor, reason) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text(version=version))
    sign_bundle(bundle, author.key)
    from dataclasses import replace
    from types import MappingProxyType

    state = replace(trust(author), floors=MappingProxyType({"test-plugin": floor}))
    assert check(bundle, state) is reason


@pytest.mark.parametrize("plugin_id", ["constructor", "tostring", "hasownproperty"])
def test_prototype_names_are_ordinary_ids(tmp_path, author, plugin_id) -> None:
    """The original refused these with below-version-floor through a prototype lookup."""
    bundle = write_bundle(tmp_path / "b", manifest_text(id=plugin_id))
    sign_bundle(bundle, author.key)
    assert check(bundle, trust(author)) is Reason.ACCEPTED


@pytest.mark.parametrize(
    "plugin_id",
    ["__proto__", "", "a" * 200, "a/b", "a\\\\b", "..", "a..b", "UPPER", "-lead", "a b", "é"],
)
def test_odd_plugin_ids_refused(tmp_path, author, cli, plugin_id) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text(id=plugin_id))
    result = cli("plugin", "verify", bundle, "--trust", author.public, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (10, "bundle-invalid")
    assert "plugin.toml: id" in result.json["message"]


def test_odd_plugin_id_refused_at_sign_time(tmp_path, author, cli) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text(id="__proto__"))
    result = cli("plugin", "sign", bundle, "--key", author.private)
    assert result.code == 10
    assert "id" in result.stderr and not (bundle / "plugin.sig").exists()


def test_pin_compared_exactly(signed, author) -> None:
    from dataclasses import replace
    from types import MappingProxyType

    digest = read_bundle(signed).digest
    state = replace(trust(author), pins=MappingProxyType({"test-plugin": digest}))
    assert check(signed, state) is Reason.ACCEPTED
    other = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    state = replace(state, pins=MappingProxyType({"test-plugin": other}))
    assert check(signed, state) is Reason.PIN_MISMATCH


def test_verdict_carries_the_verified_bytes(signed, author) -> None:
    verdict = verify_directory(signed, trust(author), host_version="0.1.0", now=now())
    assert verdict.accepted and verdict.bundle is not None
    assert verdict.bundle.files["plugin.py"] == (signed / "plugin.py").read_bytes()
    refused = verify_directory(signed, trust(), host_version="0.1.0", now=now())
    assert refused.bundle is None


def test_reformatted_envelope_is_refused(signed: Path, author: KeyPair) -> None:
    """Same JSON content, other whitespace: a second spelling of plugin.sig is refused."""
    path = signed / "plugin.sig"
    path.write_text(json.dumps(json.loads(path.read_text())))
    verdict = verify_directory(signed, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.ENVELOPE_INVALID
    assert "canonical" in verdict.message


NESTED_TOML = "x = " + "[" * 20000 + "]" * 20000 + "\n"


def test_deeply_nested_manifest_is_invalid_not_a_crash(tmp_path, author, cli) -> None:
    bundle = write_bundle(tmp_path / "b", NESTED_TOML)
    result = cli("plugin", "verify", bundle, "--trust", author.public, "--format", "json")
    assert (result.code, result.json["reason"]) == (10, "bundle-invalid")
    assert "nested too deeply" in result.json["message"]
    signing = cli("plugin", "sign", bundle, "--key", author.private)
    assert signing.code == 10 and "Traceback" not in signing.stderr


@pytest.mark.parametrize("suffix", [".pub", ".toml"])
def test_deeply_nested_trust_files_are_invalid(tmp_path, signed, cli, suffix) -> None:
    path = tmp_path / f"nested{suffix}"
    path.write_text(NESTED_TOML)
    result = cli("plugin", "verify", signed, "--trust", path, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


@pytest.mark.parametrize(
    "files",
    [
        {"Pkg": "", "pkg/a.py": ""},
        {"Lib/a.py": "", "lib/b.py": ""},
        {"stra\u00dfe.py": "", "strasse.py": ""},  # full case folding: ß -> ss
    ],
)
def test_names_colliding_through_directories(tmp_path, author, files) -> None:
    bundle = write_bundle(tmp_path / "b", files=files)
    verdict = verify_directory(bundle, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID
    assert "case-insensitive" in verdict.message
