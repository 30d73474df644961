"""`haechi plugin call` through the real CLI: verification first, then the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from haechi.trust import SigningKey
from haechi.trust.signing import write_keypair

from .helpers import CORPUS, signed_copy


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    key = SigningKey.generate()
    write_keypair(tmp_path / "keys", "k", key)
    bundle = signed_copy(CORPUS / "good" / "detector", tmp_path / "detector", key)
    return bundle, tmp_path / "keys" / "k.pub"


def call(cli, setup, *extra: str, args: str = '[["hello"]]'):
    directory, anchor = setup
    return cli("plugin", "call", directory, "--trust", anchor, "--hook", "inspect", "--args", args,
               *extra)  # fmt: skip


def test_call_prints_the_result(cli, setup) -> None:
    result = call(cli, setup)
    assert result.code == 0
    assert result.json["ok"] is True
    assert result.json["result"] == [{"type": "greeting", "segment": 0, "start": 0, "end": 5}]


def test_refused_bundle_never_runs(cli, setup) -> None:
    directory, _ = setup
    (directory / "plugin.py").write_text("import os\nos.system('touch /tmp/pwned')\n")
    result = call(cli, setup)
    assert (result.code, result.json["reason"]) == (11, "refused:tampered")
    assert "layers" not in result.json


def test_keyword_arguments(cli, setup) -> None:
    result = call(cli, setup, args='{"segments": ["oh hello"]}')
    assert result.json["result"] == [{"type": "greeting", "segment": 0, "start": 3, "end": 8}]


def test_plugin_error_has_its_own_exit_code(cli, setup) -> None:
    result = call(cli, setup, args="[null]")
    assert (result.code, result.json["reason"]) == (24, "plugin-error")
    assert "TypeError" in result.json["message"]


def test_unknown_hook(cli, setup) -> None:
    directory, anchor = setup
    result = cli(
        "plugin", "call", directory, "--trust", anchor, "--hook", "encrypt", "--args", "[]"
    )
    assert (result.code, result.json["reason"]) == (24, "hook-not-offered")


@pytest.mark.parametrize("args", ["not json", "42", '"text"'])
def test_bad_args_are_a_usage_error(cli, setup, args: str) -> None:
    result = call(cli, setup, args=args)
    assert (result.code, result.json["reason"]) == (2, "usage-error")
    assert "--args" in result.json["message"]


def test_secrets_file_feeds_secrets_read(cli, tmp_path: Path) -> None:
    from haechi.trust import SigningKey
    from haechi.trust.signing import write_keypair

    key = SigningKey.generate()
    write_keypair(tmp_path / "keys", "k", key)
    bundle = signed_copy(CORPUS / "behaviours" / "broker-user", tmp_path / "user", key)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('api-token = "tok-123"\n')
    secrets.chmod(0o600)
    caps = ["secrets:read:api-token", "state:kv", "net:fetch:jwks.test"]
    allow = [arg for cap in caps for arg in ("--allow-capability", cap)]
    base = ["plugin", "call", bundle, "--trust", tmp_path / "keys" / "k.pub", *allow,
            "--hook", "inspect", "--args", '[["secret", "api-token"]]']  # fmt: skip
    result = cli(*base, "--secrets", secrets, "--raw")
    assert (result.code, result.json["result"]) == (0, ["ok", "tok-123"])
    secrets.chmod(0o644)
    loose = cli(*base, "--secrets", secrets)
    assert loose.code == 2 and "chmod 600" in loose.json["message"]


def test_answer_in_the_wrong_shape_is_refused_unless_raw(cli, tmp_path: Path) -> None:
    key = SigningKey.generate()
    write_keypair(tmp_path / "keys", "k", key)
    bundle = signed_copy(CORPUS / "good" / "echo", tmp_path / "echo", key)
    anchor = tmp_path / "keys" / "k.pub"
    base = ["plugin", "call", bundle, "--trust", anchor, "--hook", "inspect", "--args", '[["ab"]]']
    checked = cli(*base)
    assert (checked.code, checked.json["reason"]) == (24, "invalid-result")
    assert "missing 'end'" in checked.json["message"]
    raw = cli(*base, "--raw")
    assert (raw.code, raw.json["result"]) == (0, [{"segment": 0, "length": 2}])
