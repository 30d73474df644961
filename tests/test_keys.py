"""keygen and key loading: exclusive creation, no symlinks, strict modes and formats."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from haechi.trust import KeyFileError, SigningKey, load_anchor
from haechi.trust.keys import key_id


def test_keygen_writes_0600_key_and_anchor(cli, tmp_path: Path) -> None:
    result = cli("plugin", "keygen", "--out", tmp_path / "k", "--name", "alice")
    assert result.code == 0
    keyid = result.stdout.strip()
    private, public = tmp_path / "k" / "alice.key", tmp_path / "k" / "alice.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    anchor = load_anchor(public)
    assert anchor.keyid == keyid == key_id(anchor.public_key)
    assert SigningKey.load(private).keyid == keyid
    assert not list((tmp_path / "k").glob(".*tmp")), "temporary files left behind"


def test_private_key_is_readable_by_openssl(cli, tmp_path: Path) -> None:
    cli("plugin", "keygen", "--out", tmp_path, "--name", "k")
    out = subprocess.run(
        ["openssl", "pkey", "-in", tmp_path / "k.key", "-pubout", "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    # SPKI DER of an Ed25519 key: 12-byte prefix, then the 32-byte public key.
    assert out[12:] == load_anchor(tmp_path / "k.pub").public_key


def test_openssl_generated_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ossl.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", path], check=True)
    path.chmod(0o600)
    key = SigningKey.load(path)
    assert key.sign(b"m") and len(key.keyid) == 32


def test_keygen_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    assert cli("plugin", "keygen", "--out", tmp_path, "--name", "a").code == 0
    before = (tmp_path / "a.key").read_bytes()
    result = cli("plugin", "keygen", "--out", tmp_path, "--name", "a")
    assert result.code == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "a.key").read_bytes() == before


def test_keygen_refuses_when_only_the_pub_exists(cli, tmp_path: Path) -> None:
    (tmp_path / "a.pub").write_text("keep me")
    assert cli("plugin", "keygen", "--out", tmp_path, "--name", "a").code == 1
    assert not (tmp_path / "a.key").exists(), "no partial key pair"
    assert (tmp_path / "a.pub").read_text() == "keep me"


def test_keygen_force_replaces(cli, tmp_path: Path) -> None:
    first = cli("plugin", "keygen", "--out", tmp_path, "--name", "a").stdout
    second = cli("plugin", "keygen", "--out", tmp_path, "--name", "a", "--force")
    assert second.code == 0 and second.stdout != first
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("dangling", [False, True])
def test_keygen_refuses_symlinked_target(cli, tmp_path: Path, force: bool, dangling: bool) -> None:
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_text("precious")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "a.key").symlink_to(victim)
    result = cli("plugin", "keygen", "--out", keys, "--name", "a", *(["--force"] if force else []))
    assert result.code == 1
    assert "symlink" in result.stderr
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_text() == "precious"


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 100])
def test_keygen_refuses_odd_names(cli, tmp_path: Path, name: str) -> None:
    result = cli("plugin", "keygen", "--out", tmp_path / "k", "--name", name)
    assert result.code == 1
    assert not (tmp_path / "escape.key").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_with_wide_mode_refused(cli, tmp_path: Path, signed: Path, mode: int) -> None:
    cli("plugin", "keygen", "--out", tmp_path, "--name", "k")
    (tmp_path / "k.key").chmod(mode)
    result = cli("plugin", "sign", signed, "--key", tmp_path / "k.key")
    assert result.code == 2
    assert f"run chmod 600 {tmp_path / 'k.key'}" in result.stderr


def test_key_through_symlink_refused(tmp_path: Path) -> None:
    key = SigningKey.generate()
    real = tmp_path / "real.key"
    real.write_text(key.to_pem())
    real.chmod(0o600)
    (tmp_path / "link.key").symlink_to(real)
    with pytest.raises(KeyFileError, match="symlink"):
        SigningKey.load(tmp_path / "link.key")


def test_non_ed25519_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "rsa.key"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            path,
        ],
        check=True,
        capture_output=True,
    )
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="Ed25519"):
        SigningKey.load(path)


def test_private_key_given_as_anchor(cli, signed: Path, author) -> None:
    result = cli("plugin", "verify", signed, "--trust", author.private, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")
    assert "private key" in result.json["message"]


def test_private_key_renamed_to_pub(cli, signed: Path, author, tmp_path: Path) -> None:
    fake = tmp_path / "innocent.pub"
    fake.write_bytes(author.private.read_bytes())
    result = cli("plugin", "verify", signed, "--trust", fake, "--format", "json")
    assert (result.code, result.json["reason"]) == (2, "trust-state-invalid")
    assert "private key" in result.json["message"]


def test_anchor_keyid_must_match_key(tmp_path: Path, author) -> None:
    text = author.public.read_text().replace(author.keyid, "0" * 32)
    (tmp_path / "edited.pub").write_text(text)
    with pytest.raises(KeyFileError, match="does not match"):
        load_anchor(tmp_path / "edited.pub")


def test_anchor_with_unknown_field(tmp_path: Path, author) -> None:
    (tmp_path / "x.pub").write_text(author.public.read_text() + 'purpose = "all"\n')
    with pytest.raises(KeyFileError, match="unknown field 'purpose'"):
        load_anchor(tmp_path / "x.pub")


def test_signing_key_repr_hides_the_seed() -> None:
    key = SigningKey.generate()
    assert key.seed.hex() not in repr(key) and key.keyid in repr(key)


def test_sign_writes_envelope_atomically(cli, signed: Path, author) -> None:
    before = os.listdir(signed)
    assert cli("plugin", "sign", signed, "--key", author.private).code == 0
    assert sorted(os.listdir(signed)) == sorted(before)


def test_anchor_given_as_signing_key(cli, signed: Path, author) -> None:
    result = cli("plugin", "sign", signed, "--key", author.public)
    assert result.code == 2 and "public anchor" in result.stderr
