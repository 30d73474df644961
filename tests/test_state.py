"""Trust-state documents: strict schema, k-of-n root signatures, expiry and rollback."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w
from haechi.trust import TrustStateError, load_trust

from .conftest import ALLOW, anchor_table, dump_envelope, write_state

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def state_doc(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_init_show_and_verify(cli, tmp_path: Path, signed: Path, author) -> None:
    state = tmp_path / "trust.toml"
    assert cli("trust", "init", "--out", state, "--anchor", author.public).code == 0
    shown = cli("trust", "show", state)
    assert shown.code == 0 and shown.stdout.startswith("VALID") and author.keyid in shown.stdout
    result = cli("plugin", "verify", signed, "--trust", state, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (0, "accepted")


def test_init_refuses_to_overwrite(cli, tmp_path: Path, author) -> None:
    state = tmp_path / "trust.toml"
    state.write_text("keep")
    assert cli("trust", "init", "--out", state, "--anchor", author.public).code == 1
    assert state.read_text() == "keep"


def make_rooted(cli, tmp_path: Path, author, roots: list, threshold: int = 1) -> Path:
    state = tmp_path / "trust.toml"
    args = ["trust", "init", "--out", state, "--anchor", author.public, "--force"]
    for root in roots:
        args += ["--root", root.public]
    args += ["--root-threshold", str(threshold)]
    assert cli(*args).code == 0
    doc = state_doc(state)
    doc["capabilities"] = {"allow": ["request:body-text"]}
    state.write_text(tomli_w.dumps(doc))
    return state


def test_state_with_roots_must_be_signed(cli, tmp_path, signed, author, make_key) -> None:
    root = make_key("root")
    state = make_rooted(cli, tmp_path, author, [root])
    result = cli("plugin", "verify", signed, "--trust", state, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")
    assert "not signed" in result.json["message"]
    assert cli("trust", "sign", state, "--key", root.private).code == 0
    signed_state = tmp_path / "trust.signed.json"
    result = cli("plugin", "verify", signed, "--trust", signed_state, "--format", "json")
    assert (result.code, result.json["reason"]) == (0, "accepted")


def test_k_of_n_root_signatures(cli, tmp_path, author, make_key) -> None:
    roots = [make_key(f"root{i}") for i in range(3)]
    state = make_rooted(cli, tmp_path, author, roots, threshold=2)
    out = tmp_path / "trust.signed.json"
    assert cli("trust", "sign", state, "--key", roots[0].private).code == 0
    refused = cli("trust", "show", out, "--format", "json")
    assert refused.code == 1 and "1 of the 2" in refused.json["message"]
    assert cli("trust", "sign", out, "--key", roots[0].private).code == 1  # same key again
    assert cli("trust", "sign", out, "--key", roots[2].private).code == 0
    shown = cli("trust", "show", out, "--format", "json")
    assert shown.code == 0
    assert set(shown.json["signedBy"]) == {roots[0].keyid, roots[2].keyid}


def test_non_root_key_cannot_sign_state(cli, tmp_path, author, make_key) -> None:
    state = make_rooted(cli, tmp_path, author, [make_key("root")])
    result = cli("trust", "sign", state, "--key", author.private)
    assert result.code == 1 and "not among roots" in result.stderr


def test_signed_state_tampered(cli, tmp_path, signed, author, make_key) -> None:
    root = make_key("root")
    state = make_rooted(cli, tmp_path, author, [root])
    cli("trust", "sign", state, "--key", root.private)
    out = tmp_path / "trust.signed.json"
    envelope = json.loads(out.read_text())
    import base64

    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["capabilities"]["allow"].append("state:kv")
    envelope["payload"] = base64.b64encode(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    out.write_text(dump_envelope(envelope))
    result = cli("plugin", "verify", signed, "--trust", out, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")
    assert "0 of the 1" in result.json["message"]


def test_expired_state(cli, tmp_path, signed, author) -> None:
    state = write_state(tmp_path / "t.toml", [anchor_table(author)], expires="2020-01-01T00:00:00Z")
    result = cli("plugin", "verify", signed, "--trust", state, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-expired")
    shown = cli("trust", "show", state, "--format", "json")
    assert shown.code == 1 and shown.json["reason"] == "trust-state-expired"


def signed_state(cli, tmp_path, name, author, roots, signers, version, previous=None) -> Path:
    draft = tmp_path / f"{name}.toml"
    doc = {
        "version": version,
        "expires": "2099-01-01T00:00:00Z",
        "anchors": [anchor_table(author)],
        "roots": {"threshold": 1, "keys": [anchor_table(r) | {"kinds": None} for r in roots]},
    }
    for key in doc["roots"]["keys"]:
        key.pop("kinds")
    draft.write_text(tomli_w.dumps(doc))
    out = tmp_path / f"{name}.signed.json"
    for signer in signers:
        source = out if out.exists() else draft
        extra = ["--previous", previous] if previous else []
        result = cli("trust", "sign", source, "--key", signer.private, "--out", out, *extra)
        assert result.code == 0, result.stderr
    return out


def test_update_must_raise_version(cli, tmp_path, author, make_key) -> None:
    root = make_key("root")
    v1 = signed_state(cli, tmp_path, "v1", author, [root], [root], 1)
    v2 = signed_state(cli, tmp_path, "v2", author, [root], [root], 2)
    assert cli("trust", "show", v2, "--previous", v1).code == 0
    rollback = cli("trust", "show", v1, "--previous", v2, "--format", "json")
    assert (rollback.code, rollback.json["reason"]) == (1, "trust-state-rollback")
    same = cli("trust", "show", v2, "--previous", v2, "--format", "json")
    assert same.json["reason"] == "trust-state-rollback"


def test_update_must_be_endorsed_by_previous_roots(cli, tmp_path, author, make_key) -> None:
    old_root, new_root = make_key("old"), make_key("new")
    v1 = signed_state(cli, tmp_path, "v1", author, [old_root], [old_root], 1)
    hijack = signed_state(cli, tmp_path, "v2", author, [new_root], [new_root], 2)
    result = cli("trust", "show", hijack, "--previous", v1, "--format", "json")
    assert result.code == 1 and "current roots" in result.json["message"]
    with pytest.raises(AssertionError):  # an old root may sign only with --previous
        signed_state(cli, tmp_path, "v4", author, [new_root], [new_root, old_root], 4)
    rotated = signed_state(
        cli, tmp_path, "v3", author, [new_root], [new_root, old_root], 3, previous=v1
    )
    assert cli("trust", "show", rotated, "--previous", v1).code == 0


@pytest.mark.parametrize(
    ("sections", "field"),
    [
        ({"revocations": {}}, "revocations: unknown key"),
        ({"revoked": {"key": []}}, "revoked.key: unknown key"),
        ({"revoked": {"digests": ["AB" * 32]}}, "revoked.digests"),
        ({"revoked": {"keys": ["abc"]}}, "revoked.keys"),
        ({"revoked": {"plugins": ["test-plugin"]}}, "revoked.plugins"),
        ({"pins": {"test-plugin": "sha256:" + "ab" * 32}}, "pins.test-plugin"),
        ({"floors": {"test-plugin": "1.0"}}, "floors.test-plugin"),
        ({"floors": {"__proto__": "1.0.0"}}, "id"),
        ({"thresholds": {"auth": 2}}, "thresholds.auth"),
        ({"thresholds": {"plugins": 1}}, "thresholds.plugins: unknown key"),
        ({"capabilities": {"allow": ["net:*"]}}, "capabilities.allow"),
        ({"version": 0}, "version"),
        ({"expires": "next year"}, "expires"),
    ],
)
def test_bad_state_names_the_field(cli, tmp_path, signed, author, sections, field) -> None:
    state = write_state(tmp_path / "t.toml", [anchor_table(author)], **sections)
    result = cli("plugin", "verify", signed, "--trust", state, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")
    assert field in result.json["message"]


def test_conflicting_pins_json(cli, tmp_path, signed, author) -> None:
    state = tmp_path / "t.json"
    doc = {"version": 1, "expires": "2099-01-01T00:00:00Z", "anchors": [anchor_table(author)]}
    pins = f'"pins": {{"test-plugin": "{"ab" * 32}", "test-plugin": "{"cd" * 32}"}}'
    text = json.dumps(doc)[:-1] + ", " + pins + "}"
    state.write_text(text)
    result = cli("plugin", "verify", signed, "--trust", state, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")
    assert "duplicate key 'test-plugin'" in result.json["message"]


def test_conflicting_pins_toml(cli, tmp_path, signed, author) -> None:
    state = write_state(tmp_path / "t.toml", [anchor_table(author)])
    state.write_text(
        state.read_text() + f'\n[pins]\ntest-plugin = "{"ab" * 32}"\ntest-plugin = "{"cd" * 32}"\n'
    )
    result = cli("plugin", "verify", signed, "--trust", state, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


def test_duplicate_anchor(tmp_path, author) -> None:
    state = write_state(tmp_path / "t.toml", [anchor_table(author), anchor_table(author)])
    with pytest.raises(TrustStateError, match="already listed"):
        load_trust(state, now=NOW)


def test_anchor_as_private_key_in_state(tmp_path, author) -> None:
    table = anchor_table(author) | {"private-key": "x"}
    state = write_state(tmp_path / "t.toml", [table])
    with pytest.raises(TrustStateError, match="private key"):
        load_trust(state, now=NOW)


def test_directory_of_anchors(cli, tmp_path, signed, author, make_key) -> None:
    make_key("second")
    result = cli("plugin", "verify", signed, "--trust", tmp_path / "keys", *ALLOW)
    assert result.code == 0, result.stdout + result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("plugin", "verify", signed, "--trust", empty, *ALLOW, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")


def test_init_into_missing_directory_is_a_clear_error(cli, tmp_path, author) -> None:
    result = cli("trust", "init", "--out", tmp_path / "no" / "such" / "t.toml")
    assert result.code == 1
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_init_without_anchors_can_be_extended(cli, tmp_path, author) -> None:
    state = tmp_path / "t.toml"
    assert cli("trust", "init", "--out", state).code == 0
    state.write_text(state.read_text() + "\n[[anchors]]\n" + author.public.read_text())
    assert cli("trust", "show", state).code == 0


def test_signing_a_draft_does_not_replace_an_existing_file(cli, tmp_path, author, make_key) -> None:
    root = make_key("root")
    state = make_rooted(cli, tmp_path, author, [root])
    live = tmp_path / "trust.signed.json"
    live.write_text("live state")
    result = cli("trust", "sign", state, "--key", root.private)
    assert result.code == 1 and "--force" in result.stderr
    assert live.read_text() == "live state"
    assert cli("trust", "sign", state, "--key", root.private, "--force").code == 0


def test_state_field_errors_name_the_file(tmp_path, author) -> None:
    state = write_state(tmp_path / "named.toml", [anchor_table(author)], version=0)
    with pytest.raises(TrustStateError, match=r"named\.toml: version"):
        load_trust(state, now=NOW)


def test_anchor_fields_are_closed(tmp_path, author) -> None:
    state = write_state(tmp_path / "t.toml", [anchor_table(author) | {"name": "alice"}])
    with pytest.raises(TrustStateError, match="unknown field 'name'"):
        load_trust(state, now=NOW)


def test_revoked_release_covers_build_metadata(tmp_path, author) -> None:
    from haechi.trust import Reason, sign_bundle, verify_directory

    from .conftest import manifest_text, write_bundle

    bundle = write_bundle(tmp_path / "b", manifest_text(version="1.0.0+build.2"))
    sign_bundle(bundle, author.key)
    path = write_state(
        tmp_path / "t.toml",
        [anchor_table(author)],
        revoked={"plugins": ["test-plugin@1.0.0"]},
        capabilities={"allow": ["request:body-text"]},
    )
    now = datetime.now(UTC)
    verdict = verify_directory(bundle, load_trust(path, now=now), host_version="0.1.0", now=now)
    assert verdict.reason is Reason.PLUGIN_REVOKED
