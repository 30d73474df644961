"""Inputs crafted to crash, hang or mislead the tools, found by an attack sweep.

No key is needed for any of these: plugin.sig and plugin.toml are parsed before any signature
is checked, so each must end in a clean refusal with the right reason code.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from haechi.trust import PLUGIN_PAYLOAD_TYPE, Reason, TrustState, verify_directory
from haechi.trust._internal.encoding import canonical_json
from haechi.trust.envelope import pae

from .conftest import ALLOW, dump_envelope, manifest_text, write_bundle
from .test_adversarial import now, statement_dict, trust

HUGE = "1" + "0" * 5000


def resign_raw(bundle: Path, key, payload: bytes) -> None:
    sig = key.sign(pae(PLUGIN_PAYLOAD_TYPE, payload))
    document = {
        "payloadType": PLUGIN_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.keyid, "sig": base64.b64encode(sig).decode()}],
    }
    (bundle / "plugin.sig").write_text(dump_envelope(document))


def reason(bundle: Path, state: TrustState) -> Reason:
    return verify_directory(bundle, state, host_version="0.1.0", now=now()).reason


def test_huge_integer_in_envelope(signed, author, cli) -> None:
    (signed / "plugin.sig").write_text('{"payloadType": ' + HUGE + "}\n")
    result = cli("plugin", "verify", signed, "--trust", author.public, "--format", "json")
    assert (result.code, result.json["reason"]) == (10, "envelope-invalid")


def test_huge_integer_in_manifest(tmp_path, author, cli) -> None:
    bundle = write_bundle(
        tmp_path / "b", manifest_text().replace("concurrency = 2", f"concurrency = {HUGE}")
    )
    result = cli("plugin", "verify", bundle, "--trust", author.public, "--format", "json")
    assert (result.code, result.json["reason"]) == (10, "bundle-invalid")


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_huge_integer_in_trust_state(tmp_path, signed, cli, suffix) -> None:
    path = tmp_path / f"t{suffix}"
    path.write_text('{"version": ' + HUGE + "}" if suffix == ".json" else f"version = {HUGE}\n")
    result = cli("plugin", "verify", signed, "--trust", path, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


@pytest.mark.parametrize(
    ("field", "value"),
    [("notAfter", "9999-12-31T23:59:59-01:00"), ("notBefore", "0001-01-01T00:00:00+01:00")],
)
def test_time_overflow_in_statement(signed, author, field, value) -> None:
    doc = statement_dict(signed)
    doc[field] = value
    resign_raw(signed, author.key, canonical_json(doc))
    assert reason(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_time_overflow_in_now(signed, author, cli) -> None:
    result = cli(
        "plugin",
        "verify",
        signed,
        "--trust",
        author.public,
        "--now",
        "9999-12-31T23:59:59-01:00",
        "--format",
        "json",
    )
    assert (result.code, result.json["reason"]) == (2, "invalid-now")


def test_lone_surrogate_in_signed_manifest(signed, author) -> None:
    doc = statement_dict(signed)
    payload = canonical_json(doc).replace(b'"A test plugin"', b'"\\ud800"')
    resign_raw(signed, author.key, payload)
    assert reason(signed, trust(author)) is Reason.ENVELOPE_INVALID


def test_escape_sequences_in_keys_are_not_printed_raw(signed, author, cli) -> None:
    doc = statement_dict(signed)
    doc["manifest"]["\x1b]0;pwned\x07\x1b[2K\rACCEPTED fake"] = 1
    resign_raw(signed, author.key, canonical_json(doc))
    result = cli("plugin", "verify", signed, "--trust", author.public, *ALLOW)
    assert result.code == 10
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "\\x1b" in result.stdout


def test_surrogate_key_in_trust_state(tmp_path, signed, cli) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"version": 1, "expires": "2099-01-01T00:00:00Z", "\\udc80": 1}')
    result = cli("plugin", "verify", signed, "--trust", path, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


@pytest.mark.parametrize("name", ["t.pub", "t.json", "t.toml"])
def test_fifo_as_trust_file_does_not_hang(tmp_path, signed, cli, name) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    result = cli("plugin", "verify", signed, "--trust", fifo, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")
    assert "not a regular file" in result.json["message"]


def test_fifo_in_anchor_directory_does_not_hang(tmp_path, signed, cli) -> None:
    directory = tmp_path / "anchors"
    directory.mkdir()
    os.mkfifo(directory / "x.pub")
    result = cli("plugin", "verify", signed, "--trust", directory, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


def test_fifo_as_key_does_not_hang(tmp_path, signed, cli) -> None:
    os.mkfifo(tmp_path / "k.key")
    result = cli("plugin", "sign", signed, "--key", tmp_path / "k.key")
    assert result.code == 2 and "not a regular file" in result.stderr


def test_dev_zero_as_trust_is_bounded(signed, cli) -> None:
    result = cli("plugin", "verify", signed, "--trust", "/dev/zero", "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


def test_json_state_with_bom_says_so(tmp_path, signed, cli) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b"\xef\xbb\xbf{}")
    result = cli("plugin", "verify", signed, "--trust", path, "--format", "json")
    assert "byte-order mark" in result.json["message"]


# --- names and directories ------------------------------------------------------------------


def test_empty_directory_added_after_signing(signed, author) -> None:
    (signed / "ujson").mkdir()
    verdict = verify_directory(signed, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID
    assert "empty directory" in verdict.message


def test_badly_named_empty_directory(signed, author) -> None:
    os.mkdir(os.fsencode(signed) + b"/bad\xff\nname\x1b[2J")
    assert reason(signed, trust(author)) is Reason.BUNDLE_INVALID


def test_case_fold_collision_that_breaks_nfc(tmp_path, author) -> None:
    bundle = write_bundle(tmp_path / "b", files={"\u03aa\u0301.py": "", "\u0390.py": ""})
    verdict = verify_directory(bundle, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID
    assert "case-insensitive" in verdict.message


@pytest.mark.parametrize("name", ["a\x85b.py", "\u202egnp.py", "x\u2028y.py", "zero\u200bwidth.py"])
def test_control_and_format_characters_in_names(tmp_path, author, name) -> None:
    bundle = write_bundle(tmp_path / "b", files={name: ""})
    assert reason(bundle, trust(author)) is Reason.BUNDLE_INVALID


def test_upper_case_plugin_sig_beside_the_envelope(signed, author) -> None:
    (signed / "PLUGIN.SIG").write_text("")
    assert reason(signed, trust(author)) is Reason.BUNDLE_INVALID


def test_plugin_sig_as_a_directory(tmp_path, author, cli) -> None:
    bundle = write_bundle(tmp_path / "b")
    (bundle / "plugin.sig").mkdir()
    (bundle / "plugin.sig" / "x").write_text("")
    assert reason(bundle, trust(author)) is Reason.BUNDLE_INVALID
    result = cli("plugin", "sign", bundle, "--key", author.private)
    assert result.code == 10 and "Traceback" not in result.stderr


def test_unicode_digits_in_versions(tmp_path, author) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text(version="1\u0660.0.0"))
    verdict = verify_directory(bundle, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID and "version" in verdict.message


def test_unicode_digits_in_port(tmp_path, author) -> None:
    bundle = write_bundle(
        tmp_path / "b", manifest_text(capabilities=["net:fetch:example.com:\u0668\u0660"])
    )
    assert reason(bundle, trust(author)) is Reason.BUNDLE_INVALID


def test_empty_requires_host_specifier(tmp_path, author) -> None:
    bundle = write_bundle(tmp_path / "b", manifest_text(requires_host=","))
    verdict = verify_directory(bundle, trust(author), host_version="0.1.0", now=now())
    assert verdict.reason is Reason.BUNDLE_INVALID and "requires-host" in verdict.message


# --- key files ------------------------------------------------------------------------------


def test_keygen_force_keeps_old_pair_when_anchor_cannot_be_written(tmp_path, cli) -> None:
    keys = tmp_path / "kg"
    assert cli("plugin", "keygen", "--out", keys, "--name", "a").code == 0
    old_key = (keys / "a.key").read_bytes()
    (keys / "a.pub").unlink()
    (keys / "a.pub").mkdir()
    result = cli("plugin", "keygen", "--out", keys, "--name", "a", "--force")
    assert result.code == 1 and "a.pub" in result.stderr
    assert (keys / "a.key").read_bytes() == old_key
    assert not [p for p in keys.iterdir() if p.name.endswith(".tmp")]


def test_keygen_into_symlinked_directory(tmp_path, cli) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    result = cli("plugin", "keygen", "--out", tmp_path / "link", "--name", "a")
    assert result.code == 1 and "symlink" in result.stderr
    assert not list((tmp_path / "real").iterdir())


def test_state_json_with_leading_whitespace_is_fine(tmp_path, signed, author, cli) -> None:
    from .conftest import anchor_table

    doc = {
        "version": 1,
        "expires": "2099-01-01T00:00:00Z",
        "anchors": [anchor_table(author)],
        "capabilities": {"allow": ["request:body-text"]},
    }
    path = tmp_path / "t.json"
    path.write_text("\n  " + json.dumps(doc))
    assert cli("plugin", "verify", signed, "--trust", path).code == 0


def test_empty_trust_path_is_refused(signed, cli, author) -> None:
    """An unset $TRUST must not mean "every .pub in the current directory"."""
    result = cli(
        "plugin", "verify", signed, "--trust", "", "--format", "json", cwd=author.public.parent
    )
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


def test_port_with_leading_zero_is_refused(tmp_path, author) -> None:
    bundle = write_bundle(
        tmp_path / "b", manifest_text(capabilities=["net:fetch:example.com:0443"])
    )
    assert reason(bundle, trust(author)) is Reason.BUNDLE_INVALID
