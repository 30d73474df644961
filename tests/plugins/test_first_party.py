"""The first-party plugins: shipped with a digest list, signed by the operator, passing
``plugin test``, and answering ``plugin call`` as documented."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from pathlib import Path

import pytest
from haechi.host.authoring.firstparty import (
    DIGEST_FILE,
    FirstPartyError,
    digest_document,
    install_bundled,
    load_bundled,
)
from haechi.trust import SigningKey
from haechi.trust.signing import write_keypair

from ..conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent.parent
PLUGINS = ROOT / "plugins"
FIRST_PARTY = ["bearer-auth", "jwt-auth", "local-aesgcm", "pii-filter", "secret-filter"]


def test_the_shipped_set_is_exactly_the_first_party_plugins() -> None:
    listed = json.loads((PLUGINS / DIGEST_FILE).read_text())["plugins"]
    assert sorted(listed) == FIRST_PARTY
    assert sorted(b.manifest.id for b in load_bundled(PLUGINS)) == FIRST_PARTY


def test_the_digest_list_matches_the_files() -> None:
    listed = json.loads((PLUGINS / DIGEST_FILE).read_text())
    assert listed == digest_document(PLUGINS), "a plugin changed: run `make digests`"


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, Path]:
    directory = tmp_path_factory.mktemp("operator") / "keys"
    key = SigningKey.generate()
    write_keypair(directory, "operator", key)
    return key, directory


@pytest.fixture(scope="module")
def installed(operator: tuple[SigningKey, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, directory = operator
    destination = tmp_path_factory.mktemp("installed") / "plugins"
    result = run_cli(
        "plugin", "install-bundled", "--dest", destination, "--key", directory / "operator.key"
    )
    assert result.code == 0, result.stderr
    assert result.stdout.count("installed ") == len(FIRST_PARTY)
    return destination


@pytest.mark.parametrize("name", FIRST_PARTY)
def test_installed_copies_verify_against_the_operator_key(
    installed: Path, operator: tuple[SigningKey, Path], name: str
) -> None:
    _, directory = operator
    manifest = load_bundled(PLUGINS, (name,))[0].manifest
    allow = [arg for cap in manifest.capabilities for arg in ("--allow-capability", cap)]
    result = run_cli(
        "plugin", "verify", installed / name, "--trust", directory / "operator.pub", *allow
    )
    assert result.code == 0, result.stdout + result.stderr
    assert "ACCEPTED" in result.stdout


def test_install_refuses_an_existing_directory_and_writes_nothing(
    installed: Path, operator: tuple[SigningKey, Path]
) -> None:
    key, _ = operator
    before = sorted(p.name for p in installed.iterdir())
    with pytest.raises(FirstPartyError, match="already exists"):
        install_bundled(installed, key)
    assert sorted(p.name for p in installed.iterdir()) == before


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "plugins"
    shutil.copytree(PLUGINS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_changed_shipped_file_is_refused(shipped_copy: Path, tmp_path: Path) -> None:
    target = shipped_copy / "pii-filter" / "plugin.py"
    target.write_bytes(target.read_bytes() + b"\n# changed\n")
    with pytest.raises(FirstPartyError, match=r"pii-filter: plugin.py does not match"):
        install_bundled(tmp_path / "out", SigningKey.generate(), root=shipped_copy)
    assert not (tmp_path / "out").exists()


def test_an_extra_shipped_file_is_refused(shipped_copy: Path, tmp_path: Path) -> None:
    (shipped_copy / "bearer-auth" / "extra.py").write_text("import os\n")
    with pytest.raises(FirstPartyError, match=r"unexpected file 'extra\.py'"):
        load_bundled(shipped_copy)


def test_a_symlinked_shipped_file_is_refused(shipped_copy: Path) -> None:
    target = shipped_copy / "local-aesgcm" / "plugin.py"
    target.unlink()
    target.symlink_to(PLUGINS / "local-aesgcm" / "plugin.py")
    with pytest.raises(FirstPartyError, match="symlink"):
        load_bundled(shipped_copy, ("local-aesgcm",))


@pytest.mark.parametrize("name", FIRST_PARTY)
def test_every_first_party_plugin_passes_plugin_test(name: str) -> None:
    result = run_cli("plugin", "test", PLUGINS / name, "--format", "json")
    report = json.loads(result.stdout)
    failed = [row for row in report["rows"] if row["status"] == "fail"]
    assert result.code == 0 and not failed, failed
    sections = {row["section"] for row in report["rows"] if row["status"] == "pass"}
    assert sections == {"load", "conformance", "tests"}


# --- plugin call on signed copies, with sample inputs -----------------------------------------


def call(installed: Path, operator: tuple[SigningKey, Path], name: str, *extra: str) -> dict:
    _, directory = operator
    manifest = load_bundled(PLUGINS, (name,))[0].manifest
    allow = [arg for cap in manifest.capabilities for arg in ("--allow-capability", cap)]
    result = run_cli(
        "plugin", "call", installed / name, "--trust", directory / "operator.pub", *allow, *extra
    )
    outcome = json.loads(result.stdout)
    assert result.code == 0, outcome
    return outcome["result"]


def secrets_file(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    os.chmod(path, 0o600)
    return path


def test_pii_filter_call(installed: Path, operator: tuple[SigningKey, Path]) -> None:
    text = "Mail jane.doe@example.com or call +1 415 555 2671; card 4111 1111 1111 1111."
    result = call(
        installed, operator, "pii-filter", "--hook", "inspect", "--args", json.dumps([[text]])
    )
    found = {(d["type"], text[d["start"] : d["end"]]) for d in result}
    assert ("email", "jane.doe@example.com") in found
    assert ("card", "4111 1111 1111 1111") in found
    assert any(kind == "phone" for kind, _ in found)


def test_secret_filter_call(installed: Path, operator: tuple[SigningKey, Path]) -> None:
    key = "AKIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    text = f"export AWS_ACCESS_KEY_ID={key}\nDB_PASSWORD=q8V!x2mZ#r7Lp0wT"
    result = call(
        installed, operator, "secret-filter", "--hook", "inspect", "--args", json.dumps([[text]])
    )
    spans = {text[d["start"] : d["end"]] for d in result}
    assert key in spans
    assert any("q8V!x2mZ#r7Lp0wT" in span for span in spans)


def test_bearer_auth_call(
    installed: Path, operator: tuple[SigningKey, Path], tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    path = secrets_file(tmp_path, {"bearer-tokens": f"sha256:{digest} alice chat\n"})
    request = {"method": "POST", "route": "/v1/chat", "authorization": f"Bearer {token}"}
    args = json.dumps([request])
    result = call(
        installed,
        operator,
        "bearer-auth",
        "--hook",
        "authenticate",
        "--args",
        args,
        "--secrets",
        path,
    )
    assert result == {"allow": True, "principal": "alice", "scopes": ["chat"]}
    request["authorization"] = "Bearer " + secrets.token_urlsafe(24)
    denied = call(
        installed,
        operator,
        "bearer-auth",
        "--hook",
        "authenticate",
        "--args",
        json.dumps([request]),
        "--secrets",
        path,
    )
    assert denied["allow"] is False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_jwt_auth_call_with_hs256(
    installed: Path, operator: tuple[SigningKey, Path], tmp_path: Path
) -> None:
    key = secrets.token_urlsafe(48)
    config = {"issuer": "https://idp.test/", "audience": "haechi", "algorithms": ["HS256"]}
    now = int(time.time())
    claims = {"iss": config["issuer"], "aud": "haechi", "sub": "bob", "iat": now, "exp": now + 60}
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{_b64(signature)}"
    path = secrets_file(tmp_path, {"jwt-config": json.dumps(config), "jwt-hs256-key": key})
    request = {"method": "POST", "route": "/v1/chat", "authorization": f"Bearer {token}"}
    result = call(
        installed,
        operator,
        "jwt-auth",
        "--hook",
        "authenticate",
        "--args",
        json.dumps([request]),
        "--secrets",
        path,
    )
    assert result["allow"] is True and result["principal"] == "bob"


def test_local_aesgcm_call(installed: Path, operator: tuple[SigningKey, Path]) -> None:
    # plugin call gives a declared key fresh material per run, so one call shows sealing.
    args = json.dumps(
        {"plaintext": {"$base64": "Ym9iQGV4YW1wbGUuY29t"}, "fields": {"type": "email"}}
    )
    result = call(installed, operator, "local-aesgcm", "--hook", "encrypt", "--args", args)
    sealed = base64.b64decode(result["$base64"])
    assert sealed.startswith(b"HXS1") and b"bob@example.com" not in sealed


def test_install_is_all_or_nothing(tmp_path: Path) -> None:
    destination = tmp_path / "plugins"
    destination.mkdir()
    (destination / "local-aesgcm").symlink_to(tmp_path / "nowhere")  # dangling
    with pytest.raises(FirstPartyError, match="already exists"):
        install_bundled(destination, SigningKey.generate())
    assert [p.name for p in destination.iterdir()] == ["local-aesgcm"]
    # A clash that appears only at publish time (after the check) also leaves nothing behind.
    (destination / "local-aesgcm").unlink()
    real = install_bundled
    import haechi.host.authoring.firstparty as firstparty

    original = firstparty._stage

    def stage_then_block(target: Path, bundle, envelope):  # type: ignore[no-untyped-def]
        staged = original(target, bundle, envelope)
        if target.name == "secret-filter":
            target.mkdir()  # another process created it meanwhile
            (target / "theirs").write_text("keep")
        return staged

    firstparty._stage = stage_then_block  # type: ignore[assignment]
    try:
        with pytest.raises(FirstPartyError, match="cannot install"):
            real(destination, SigningKey.generate())
    finally:
        firstparty._stage = original  # type: ignore[assignment]
    assert sorted(p.name for p in destination.iterdir()) == ["secret-filter"]
    assert (destination / "secret-filter" / "theirs").read_text() == "keep"
