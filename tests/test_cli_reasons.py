"""Every reason code of DESIGN §2, produced through the real CLI: exit code and JSON reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from haechi.trust import read_bundle, sign_bundle
from haechi.trust._internal.encoding import b64decode_strict, b64encode

from .conftest import (
    ALLOW,
    KeyPair,
    anchor_table,
    dump_envelope,
    manifest_text,
    write_bundle,
    write_state,
)


def verify(cli, bundle: Path, trust: Path, *extra: str):
    result = cli("plugin", "verify", bundle, "--trust", trust, "--format", "json", *extra)
    return result.code, result.json


def test_accepted(cli, signed: Path, author: KeyPair) -> None:
    code, verdict = verify(cli, signed, author.public, *ALLOW)
    assert (code, verdict["reason"], verdict["accepted"]) == (0, "accepted", True)
    assert verdict["plugin"]["id"] == "test-plugin"
    assert verdict["plugin"]["digest"] == read_bundle(signed).digest
    assert verdict["signers"] == [author.keyid]
    assert all(check["ok"] for check in verdict["checks"]) and len(verdict["checks"]) == 13


def test_bundle_invalid(cli, tmp_path: Path, author: KeyPair) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text() + 'homepage = "x"\n')
    code, verdict = verify(cli, bundle, author.public, *ALLOW)
    assert (code, verdict["reason"]) == (10, "bundle-invalid")
    assert "homepage" in verdict["message"]


def test_envelope_invalid_when_unsigned(cli, tmp_path: Path, author: KeyPair) -> None:
    bundle = write_bundle(tmp_path / "b")
    code, verdict = verify(cli, bundle, author.public, *ALLOW)
    assert (code, verdict["reason"]) == (10, "envelope-invalid")
    assert "plugin.sig" in verdict["message"]


def test_unknown_signer(cli, signed: Path, make_key) -> None:
    stranger = make_key("stranger")
    code, verdict = verify(cli, signed, stranger.public, *ALLOW)
    assert (code, verdict["reason"]) == (11, "unknown-signer")


def test_signer_revoked(cli, signed: Path, author: KeyPair, tmp_path: Path) -> None:
    state = write_state(
        tmp_path / "t.toml", [anchor_table(author)], revoked={"keys": [author.keyid]}
    )
    code, verdict = verify(cli, signed, state, *ALLOW)
    assert (code, verdict["reason"]) == (11, "signer-revoked")


def test_bad_signature(cli, signed: Path, author: KeyPair) -> None:
    envelope = json.loads((signed / "plugin.sig").read_text())
    sig = bytearray(b64decode_strict(envelope["signatures"][0]["sig"]))
    sig[10] ^= 0x01
    envelope["signatures"][0]["sig"] = b64encode(bytes(sig))
    (signed / "plugin.sig").write_text(dump_envelope(envelope))
    code, verdict = verify(cli, signed, author.public, *ALLOW)
    assert (code, verdict["reason"]) == (11, "bad-signature")


def test_tampered(cli, signed: Path, author: KeyPair) -> None:
    (signed / "plugin.py").write_text("import os\n")
    code, verdict = verify(cli, signed, author.public, *ALLOW)
    assert (code, verdict["reason"]) == (11, "tampered")
    assert "plugin.py" in verdict["message"]


def test_not_yet_valid(cli, signed: Path, author: KeyPair) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, verdict = verify(cli, signed, author.public, *ALLOW, "--now", past)
    assert (code, verdict["reason"]) == (12, "not-yet-valid")


def test_expired(cli, signed: Path, author: KeyPair) -> None:
    later = (datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, verdict = verify(cli, signed, author.public, *ALLOW, "--now", later)
    assert (code, verdict["reason"]) == (12, "expired")


@pytest.mark.parametrize("by", ["digest", "release"])
def test_plugin_revoked(cli, signed: Path, author: KeyPair, tmp_path: Path, by: str) -> None:
    revoked = (
        {"digests": [read_bundle(signed).digest]}
        if by == "digest"
        else {"plugins": ["test-plugin@1.2.0"]}
    )
    state = write_state(tmp_path / "t.toml", [anchor_table(author)], revoked=revoked)
    code, verdict = verify(cli, signed, state, *ALLOW)
    assert (code, verdict["reason"]) == (12, "plugin-revoked")


def test_below_version_floor(cli, signed: Path, author: KeyPair, tmp_path: Path) -> None:
    state = write_state(
        tmp_path / "t.toml", [anchor_table(author)], floors={"test-plugin": "1.3.0"}
    )
    code, verdict = verify(cli, signed, state, *ALLOW)
    assert (code, verdict["reason"]) == (12, "below-version-floor")


def test_pin_mismatch(cli, signed: Path, author: KeyPair, tmp_path: Path) -> None:
    state = write_state(
        tmp_path / "t.toml", [anchor_table(author)], pins={"test-plugin": "ab" * 32}
    )
    code, verdict = verify(cli, signed, state, *ALLOW)
    assert (code, verdict["reason"]) == (12, "pin-mismatch")


def test_pin_match_is_accepted(cli, signed: Path, author: KeyPair, tmp_path: Path) -> None:
    pins = {"test-plugin": read_bundle(signed).digest}
    state = write_state(tmp_path / "t.toml", [anchor_table(author)], pins=pins)
    code, verdict = verify(cli, signed, state, *ALLOW)
    assert (code, verdict["reason"]) == (0, "accepted")


def test_kind_not_allowed_by_threshold(cli, signed: Path, author, make_key, tmp_path) -> None:
    operator = make_key("operator")
    state = write_state(
        tmp_path / "t.toml",
        [anchor_table(author), anchor_table(operator)],
        thresholds={"filter": 2},
    )
    code, verdict = verify(cli, signed, state, *ALLOW)
    assert (code, verdict["reason"]) == (11, "kind-not-allowed")


def test_kind_not_allowed_for_anchor(cli, signed: Path, author, tmp_path) -> None:
    state = write_state(tmp_path / "t.toml", [anchor_table(author, kinds=["auth"])])
    code, verdict = verify(cli, signed, state, *ALLOW)
    assert (code, verdict["reason"]) == (11, "kind-not-allowed")
    assert "filter" in verdict["message"]


def test_capability_not_allowed_without_allowlist(cli, signed: Path, author: KeyPair) -> None:
    code, verdict = verify(cli, signed, author.public)
    assert (code, verdict["reason"]) == (13, "capability-not-allowed")
    assert "request:body-text" in verdict["message"]


def test_capability_allowed_by_trust_state(cli, signed: Path, author, tmp_path) -> None:
    state = write_state(
        tmp_path / "t.toml",
        [anchor_table(author)],
        capabilities={"allow": ["request:body-text"]},
    )
    code, verdict = verify(cli, signed, state)
    assert (code, verdict["reason"]) == (0, "accepted")


def test_no_capabilities_needs_no_allowlist(cli, tmp_path: Path, author: KeyPair) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text(capabilities=[]))
    sign_bundle(bundle, author.key)
    code, verdict = verify(cli, bundle, author.public)
    assert (code, verdict["reason"]) == (0, "accepted")


def test_host_version_unsupported(cli, signed: Path, author: KeyPair) -> None:
    code, verdict = verify(cli, signed, author.public, *ALLOW, "--host-version", "0.0.9")
    assert (code, verdict["reason"]) == (12, "host-version-unsupported")
    assert ">=0.1" in verdict["message"]


def test_prerelease_host_is_checked_like_a_release(cli, signed: Path, author: KeyPair) -> None:
    code, verdict = verify(cli, signed, author.public, *ALLOW, "--host-version", "0.2.0rc1")
    assert (code, verdict["reason"]) == (0, "accepted")


def test_order_first_failure_wins(cli, signed: Path, author: KeyPair, tmp_path: Path) -> None:
    """Expired, below the floor and with a capability not allowed: the window is step 7."""
    state = write_state(
        tmp_path / "t.toml", [anchor_table(author)], floors={"test-plugin": "9.0.0"}
    )
    later = (datetime.now(UTC) + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, verdict = verify(cli, signed, state, "--now", later)
    assert (code, verdict["reason"]) == (12, "expired")
    assert [c["name"] for c in verdict["checks"] if not c["ok"]] == ["validity-window"]


@pytest.mark.parametrize(
    "now",
    [
        "yesterday",
        "2026-01-01T00:00:00",
        "2026-13-01T00:00:00Z",
        "1000",
        "2026-02-30T00:00:00Z",
        "",
    ],
)
def test_invalid_now_is_a_usage_error(cli, signed: Path, author: KeyPair, now: str) -> None:
    code, verdict = verify(cli, signed, author.public, *ALLOW, "--now", now)
    assert (code, verdict["reason"], verdict["accepted"]) == (2, "invalid-now", False)


def test_repeated_single_flag_is_refused(cli, signed: Path, author: KeyPair, make_key) -> None:
    other = make_key("other")
    result = cli(
        "plugin", "verify", signed, "--trust", other.public, "--trust", author.public, *ALLOW
    )
    assert result.code == 2
    assert "--trust given more than once" in result.stderr


def test_text_format_says_what_to_do(cli, signed: Path, author: KeyPair) -> None:
    (signed / "extra.py").write_text("")
    result = cli("plugin", "verify", signed, "--trust", author.public, *ALLOW)
    assert result.code == 11
    assert result.stdout.startswith("REFUSED  tampered: file 'extra.py' was added after signing")
    assert "what to do:" in result.stdout


def test_legacy_spellings(cli, signed: Path, author: KeyPair, tmp_path: Path) -> None:
    result = cli("plugin-verify", signed, "--trust", author.public, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (0, "accepted")
    assert cli("plugin-keygen", "--out", tmp_path / "k2").code == 0
    assert cli("plugin-sign", signed, "--key", tmp_path / "k2" / "plugin-signer.key").code == 0
