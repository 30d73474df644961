"""The persistent key ring: versioned, authenticated sealing; budget, rotation, the broker."""

from __future__ import annotations

import json
import struct
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from haechi.host.keys import KeyStore, PersistentKeyRing, host_aad
from haechi.host.sandbox import SandboxedChild, SandboxError, SandboxPolicy
from haechi.host.sandbox.broker import Broker
from haechi.trust import SigningKey

from ..sandbox.helpers import CORPUS, run, signed_copy, verified
from . import run_together


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore.init(tmp_path / "keys", "vault")


def reason(call: object, *args: object) -> str:
    with pytest.raises(SandboxError) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.reason


def test_round_trip_across_a_restart(store: KeyStore) -> None:
    with PersistentKeyRing(store) as ring:
        sealed = ring.seal("vault", b"bob@example.com", b"tenant=acme")
        assert ring.uses("vault") == 1
    assert sealed[:4] == struct.pack(">I", 1)
    assert b"bob@example.com" not in sealed
    with PersistentKeyRing(store.directory) as again:
        assert again.open("vault", sealed, b"tenant=acme") == b"bob@example.com"
        assert reason(again.open, "vault", sealed, b"tenant=evil") == "key-open-failed"
        assert again.uses("vault") == 0


def test_the_version_is_inside_the_aad(store: KeyStore) -> None:
    """Open the body with the right key but with AAD naming another version: it fails."""
    with PersistentKeyRing(store) as ring:
        sealed = ring.seal("vault", b"m", b"a")
    material = store.load("vault").materials[1]
    nonce, body = sealed[4:16], sealed[16:]
    assert AESGCM(material).decrypt(nonce, body, host_aad("vault", 1, b"a")) == b"m"
    with pytest.raises(InvalidTag):
        AESGCM(material).decrypt(nonce, body, host_aad("vault", 2, b"a"))
    with pytest.raises(InvalidTag):
        AESGCM(material).decrypt(nonce, body, b"a")  # the plugin's AAD alone is not enough


def test_a_swapped_version_prefix_fails_to_open(store: KeyStore) -> None:
    with PersistentKeyRing(store) as ring:
        old = ring.seal("vault", b"m", b"")
        store.rotate("vault")
        new = ring.seal("vault", b"m", b"")
        assert new[:4] == struct.pack(">I", 2)
        assert reason(ring.open, "vault", new[:4].replace(b"\x02", b"\x01") + new[4:], b"") == (
            "key-open-failed"
        )
        assert reason(ring.open, "vault", struct.pack(">I", 2) + old[4:], b"") == "key-open-failed"
        assert reason(ring.open, "vault", struct.pack(">I", 9) + old[4:], b"") == "key-open-failed"
        assert reason(ring.open, "vault", old[:20], b"") == "key-open-failed"


def test_rotation_by_another_process_applies_at_the_next_seal(store: KeyStore) -> None:
    with PersistentKeyRing(store, window=1000) as sealer, PersistentKeyRing(store) as opener:
        v1 = sealer.seal("vault", b"one", b"")
        assert opener.open("vault", v1, b"") == b"one"  # the opener now caches version 1 only
        KeyStore(store.directory).rotate("vault")  # as `haechi keys rotate` would
        v2 = sealer.seal("vault", b"two", b"")
        assert v2[:4] == struct.pack(">I", 2)
        assert opener.open("vault", v2, b"") == b"two"  # reloads to find version 2
        assert sealer.open("vault", v1, b"") == b"one"  # old versions still open
    versions = store.status("vault").versions
    assert [(v.reserved, v.used) for v in versions] == [(1000, 1), (1000, 1)]


def test_exhaustion_refuses_and_rotation_recovers(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault", budget=6)
    with PersistentKeyRing(store, window=4) as ring:
        sealed = [ring.seal("vault", b"m", b"") for _ in range(6)]
        with pytest.raises(SandboxError) as refused:
            ring.seal("vault", b"m", b"")
        assert refused.value.reason == "key-exhausted"
        assert "haechi keys rotate vault" in refused.value.message
        assert ring.uses("vault") == 6
        store.rotate("vault")
        assert ring.seal("vault", b"m", b"")[:4] == struct.pack(">I", 2)
        assert all(ring.open("vault", s, b"") == b"m" for s in sealed)
    [v1, v2] = store.status("vault").versions
    assert (v1.reserved, v1.used, v1.exhausted) == (6, 6, True)
    assert (v2.reserved, v2.used, v2.exhausted) == (4, 1, False)


def test_warns_once_at_half_the_budget_and_again_after_a_restart(tmp_path: Path) -> None:
    store = KeyStore.init(tmp_path / "keys", "vault", budget=20)
    warnings: list[tuple[str, int]] = []
    with PersistentKeyRing(store, window=3, on_warning=lambda n, s: warnings.append((n, s))) as r:
        for _ in range(12):
            r.seal("vault", b"m", b"")
    assert warnings == [("vault", 10)]
    with PersistentKeyRing(store, window=3, on_warning=lambda n, s: warnings.append((n, s))) as r:
        r.seal("vault", b"m", b"")
    assert warnings == [("vault", 10), ("vault", 13)]  # 12 reserved before: seal number 13


def test_missing_keys(store: KeyStore) -> None:
    ring = PersistentKeyRing(store)
    assert reason(ring.seal, "other", b"m", b"") == "key-missing"
    assert reason(ring.open, "other", b"\0" * 40, b"") == "key-missing"
    assert reason(ring.uses, "other") == "key-missing"
    assert reason(ring.seal, "../vault", b"m", b"") == "key-missing"
    assert not (store.directory / "other.lock").exists()


def test_threads_share_one_ring_without_losing_a_count(store: KeyStore) -> None:
    ring = PersistentKeyRing(store, window=16)
    nonces: list[bytes] = []

    def work() -> None:
        sealed = [ring.seal("vault", b"m", b"") for _ in range(200)]
        nonces.extend(s[4:16] for s in sealed)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ring.close()
    assert ring.uses("vault") == 1600 and len(set(nonces)) == 1600
    [v1] = store.status("vault").versions
    assert (v1.reserved, v1.used) == (1600, 1600)


SEALER = """\
from pathlib import Path
from haechi.host.keys import PersistentKeyRing
with PersistentKeyRing(Path(sys.argv[1]), window=7) as ring:
    sealed = [ring.seal("vault", b"m", b"").hex() for _ in range(300)]
print(json.dumps(sealed))
"""


def test_processes_share_one_store(store: KeyStore) -> None:
    outputs = run_together(SEALER, [[str(store.directory)]] * 4)
    sealed = [bytes.fromhex(s) for out in outputs for s in json.loads(out)]
    assert len({s[4:16] for s in sealed}) == 1200
    [v1] = store.status("vault").versions
    assert v1.used == 1200  # every process settled its windows when it closed the ring
    assert 1200 <= v1.reserved < 1200 + 4 * 7  # each wasted less than one window
    with PersistentKeyRing(store) as ring:
        assert all(ring.open("vault", s, b"") == b"m" for s in sealed)


def test_the_broker_uses_the_persistent_ring(tmp_path: Path) -> None:
    """The real sandboxed plugin seals through the broker with a key from the store."""
    signer = SigningKey.generate()
    bundle_dir = signed_copy(CORPUS / "behaviours" / "sealer", tmp_path / "sealer", signer)
    bundle = verified(bundle_dir, signer, ["keys:tenant-a"])
    store = KeyStore.init(tmp_path / "keys", "tenant-a")
    ring = PersistentKeyRing(store, window=4)

    async def scenario() -> list[object]:
        broker = Broker(bundle.manifest, keys=ring)  # type: ignore[arg-type]
        child = await SandboxedChild.spawn(bundle, SandboxPolicy(), broker)
        try:
            [_, sealed] = await child.call("encrypt", [b"card 4111", b"t=a"], timeout=3)
            return [
                sealed,
                await child.call("decrypt", [sealed, b"t=a"], timeout=3),
                await child.call("decrypt", [sealed, b"t=b"], timeout=3),
            ]
        finally:
            await child.close()

    sealed, opened, wrong = run(scenario)
    assert isinstance(sealed, bytes) and sealed[:4] == struct.pack(">I", 1)
    assert opened == ["ok", b"card 4111"]
    assert wrong == ["refused", "key-open-failed"]
    assert ring.uses("tenant-a") == 1
    assert store.status("tenant-a").versions[0].reserved == 4
