"""keys:<name>: the plugin uses a host-held key by name; the host counts every seal."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from haechi.host.sandbox import SandboxedChild, SandboxError, SandboxPolicy
from haechi.host.sandbox.broker import Broker, KeyRing
from haechi.trust import SigningKey

from .helpers import CORPUS, run, signed_copy, verified

KEY = SigningKey.generate()


@pytest.fixture
def sealer(tmp_path: Path) -> Path:
    return signed_copy(CORPUS / "behaviours" / "sealer", tmp_path / "sealer", KEY)


def session(bundle_dir: Path, ring: KeyRing, *calls: tuple[str, list[object]]) -> list[object]:
    bundle = verified(bundle_dir, KEY, ["keys:tenant-a"])

    async def scenario() -> list[object]:
        child = await SandboxedChild.spawn(
            bundle, SandboxPolicy(), Broker(bundle.manifest, keys=ring)
        )
        try:
            return [await child.call(hook, args, timeout=3) for hook, args in calls]
        finally:
            await child.close()

    return run(scenario)


def test_seal_and_open_round_trip_with_aad(sealer: Path) -> None:
    ring = KeyRing()
    material = secrets.token_bytes(32)
    ring.add("tenant-a", material)
    [sealed] = session(sealer, ring, ("encrypt", [b"card 4111", b"tenant=a"]))
    assert sealed[0] == "ok" and b"4111" not in sealed[1]
    assert material not in sealed[1]
    opened, tampered_aad = session(
        sealer, ring, ("decrypt", [sealed[1], b"tenant=a"]), ("decrypt", [sealed[1], b"tenant=b"])
    )
    assert opened == ["ok", b"card 4111"]
    assert tampered_aad == ["refused", "key-open-failed"]
    assert ring.uses("tenant-a") == 1


def test_undeclared_key_is_refused(sealer: Path) -> None:
    ring = KeyRing()
    ring.add("tenant-a", secrets.token_bytes(32))
    ring.add("tenant-b", secrets.token_bytes(32))
    result = session(sealer, ring, ("encrypt", [b"x", {"aad": b"", "key": "tenant-b"}]))
    assert result == [["refused", "capability-not-declared"]]
    assert ring.uses("tenant-b") == 0


def test_budget_warns_at_half_and_refuses_at_the_limit(sealer: Path) -> None:
    warnings: list[tuple[str, int]] = []
    ring = KeyRing(budget=4, on_warning=lambda name, n: warnings.append((name, n)))
    ring.add("tenant-a", secrets.token_bytes(32))
    outcomes = session(sealer, ring, *[("encrypt", [b"m", b""])] * 5)
    assert [o[0] for o in outcomes] == ["ok", "ok", "ok", "ok", "refused"]
    assert outcomes[-1] == ["refused", "key-exhausted"]
    assert warnings == [("tenant-a", 2)]
    assert ring.uses("tenant-a") == 4


def test_wrong_key_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing().add("short", b"x" * 16)


def test_missing_key(sealer: Path) -> None:
    assert session(sealer, KeyRing(), ("encrypt", [b"m", b""])) == [["refused", "key-missing"]]


def test_sealed_data_too_short() -> None:
    ring = KeyRing()
    ring.add("k", secrets.token_bytes(32))
    with pytest.raises(SandboxError) as info:
        ring.open("k", b"short", b"")
    assert info.value.reason == "key-open-failed"
