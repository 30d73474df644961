"""The key store: private files, atomic writes, nothing overwritten, versions kept."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from haechi.host.keys import KeyStore, KeyStoreError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_a_private_directory_and_files(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "a" / "keys", "vault")
    assert mode(store.directory) == 0o700
    assert mode(store.key_path("vault")) == 0o600
    assert mode(store.directory / "vault.budget.json") == 0o600
    assert not list(store.directory.glob(".*.tmp")), "temporary files left behind"
    document = json.loads(store.key_path("vault").read_text())
    assert document["format"] == "haechi-key/1" and document["current"] == 1
    [version] = document["versions"]
    material = base64.urlsafe_b64decode(version["material"] + "=")
    assert len(material) == 32
    assert store.names() == ("vault",)


def test_init_never_replaces_an_existing_key(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    before = store.key_path("vault").read_bytes()
    with pytest.raises(KeyStoreError) as refused:
        KeyStore.init(tmp_path / "keys", "vault")
    assert refused.value.reason == "key-exists"
    assert "haechi keys rotate vault" in refused.value.message
    assert store.key_path("vault").read_bytes() == before
    KeyStore.init(tmp_path / "keys", "tenant-b")  # another name in the same store is fine
    assert store.names() == ("tenant-b", "vault")


def test_rotate_adds_a_current_version_and_keeps_the_old_ones(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    first = store.load("vault")
    assert store.rotate("vault") == 2
    assert store.rotate("vault") == 3
    after = store.load("vault")
    assert after.current == 3
    assert sorted(after.materials) == [1, 2, 3]
    assert after.materials[1] == first.materials[1]
    assert len(set(after.materials.values())) == 3
    assert [v.reserved for v in store.status("vault").versions] == [0, 0, 0]


def test_key_bytes_never_appear_in_repr_or_status(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    material = store.load("vault").materials[1]
    encoded = base64.urlsafe_b64encode(material).rstrip(b"=").decode()
    shown = repr(store.load("vault")) + repr(store.status("vault"))
    assert encoded not in shown and repr(material) not in shown


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    store.key_path("vault").chmod(0o640)
    with pytest.raises(KeyStoreError) as refused:
        store.load("vault")
    assert refused.value.reason == "key-store-invalid"
    assert "chmod 600" in refused.value.message


def test_a_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    real = tmp_path / "elsewhere.json"
    store.key_path("vault").rename(real)
    store.key_path("vault").symlink_to(real)
    with pytest.raises(KeyStoreError) as refused:
        store.load("vault")
    assert refused.value.reason == "key-store-invalid"
    assert "symlink" in refused.value.message


@pytest.mark.parametrize("name", ["", "Vault", "../x", "a..b", "-a", "a/b", "x" * 65, ".hidden"])
def test_invalid_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyStoreError) as refused:
        KeyStore.init(tmp_path / "keys", name)
    assert refused.value.reason == "key-name-invalid"
    assert not list((tmp_path / "keys").iterdir())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("current", 7),
        ("algorithm", "AES-128-GCM"),
        ("name", "other"),
        ("versions", []),
    ],
)
def test_a_tampered_key_file_names_the_field(tmp_path: Path, field: str, value: object) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    path = store.key_path("vault")
    document = json.loads(path.read_text())
    document[field] = value
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError) as refused:
        store.load("vault")
    assert refused.value.reason == "key-store-invalid"
    assert repr(field) in refused.value.message and str(path) in refused.value.message


@pytest.mark.parametrize("material", ["AAAA", "!" * 43, 42])
def test_key_material_must_be_32_bytes_of_base64url(tmp_path: Path, material: object) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    path = store.key_path("vault")
    document = json.loads(path.read_text())
    document["versions"][0]["material"] = material
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match=r"versions\[0\]\.material"):
        store.load("vault")


def test_a_missing_key_is_key_missing(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault")
    with pytest.raises(KeyStoreError) as refused:
        store.rotate("other")
    assert refused.value.reason == "key-missing"
    with pytest.raises(KeyStoreError, match="no such key directory"):
        KeyStore(tmp_path / "nowhere").rotate("vault")
