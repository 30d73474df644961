"""PluginHost with the real first-party plugins: verified load, auth chain, parallel filters,
fail-closed start, revocation and version swap through a newer trust state."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import tomllib
from pathlib import Path

import pytest
from haechi.host.authoring.firstparty import install_bundled
from haechi.host.config import PluginsSection
from haechi.host.gateway.plugins import PluginEvent, PluginHost, PluginLoadError
from haechi.host.sandbox.broker import KeyRing
from haechi.host.sandbox.views import RequestView
from haechi.trust import SigningKey, sign_bundle
from haechi.trust.signing import write_keypair

from ..conftest import anchor_table, write_state

CAPABILITIES = [
    "request:credentials",
    "request:body-text",
    "secrets:read:bearer-tokens",
    "keys:vault",
]
TOKEN = secrets.token_urlsafe(24)


class Operator:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = SigningKey.generate()
        write_keypair(root / "keys", "operator", self.key)
        self.plugins = root / "plugins"
        install_bundled(
            self.plugins,
            self.key,
            only=("bearer-auth", "pii-filter", "secret-filter", "local-aesgcm"),
        )

    def state(self, version: int = 1, **sections: object) -> Path:
        pair = type("P", (), {"public": self.root / "keys" / "operator.pub"})
        return write_state(
            self.root / f"trust-{version}.toml",
            [anchor_table(pair)],  # type: ignore[arg-type]
            version=version,
            capabilities={"allow": CAPABILITIES},
            **sections,
        )

    def host(self, trust: Path, events: list[PluginEvent]) -> PluginHost:
        config = PluginsSection(dir=self.plugins, trust=trust, pool_size=1)
        digest = hashlib.sha256(TOKEN.encode()).hexdigest()
        keys = KeyRing()
        keys.add("vault", secrets.token_bytes(32))
        return PluginHost(
            config,
            host_version="0.1.0",
            secrets={"bearer-tokens": f"sha256:{digest} alice chat\n"},
            keys=keys,
            on_event=events.append,
        )


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    return Operator(tmp_path)


PLUGINS = Path(__file__).resolve().parent.parent.parent / "plugins"


def version_of(bundle: Path) -> str:
    return str(tomllib.loads((bundle / "plugin.toml").read_text())["version"])


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def view(authorization: str | None = None, *segments: str) -> RequestView:
    headers = {"authorization": authorization} if authorization else {}
    return RequestView("POST", "/v1/chat/completions", headers, segments)


def test_loads_verified_plugins_and_serves_every_kind(operator: Operator) -> None:
    events: list[PluginEvent] = []

    async def scenario():  # type: ignore[no-untyped-def]
        host = operator.host(operator.state(), events)
        await host.start()
        try:
            allowed = await host.authenticate(view(f"Bearer {TOKEN}"))
            denied = await host.authenticate(view("Bearer " + secrets.token_urlsafe(24)))
            missing = await host.authenticate(view())
            found = await host.inspect(view(None, "mail bob@example.com", "AKIAIOSFODNN7EXAMPLE"))
            sealed = await host.encrypt(b"bob@example.com", {"type": "email"})
            opened = await host.decrypt(sealed, {"type": "email"})
            return allowed, denied, missing, found, opened, host.status()
        finally:
            await host.close()

    allowed, denied, missing, found, opened, status = run(scenario())
    assert (allowed.allow, allowed.principal, allowed.plugin) == (True, "alice", "bearer-auth")
    assert (denied.allow, denied.reason) == (False, "unknown-token")
    assert missing.allow is False
    assert {(plugin, d.type) for plugin, d in found} >= {("pii-filter", "email")}
    assert opened == b"bob@example.com"
    assert sorted(s.id for s in status) == [
        "bearer-auth",
        "local-aesgcm",
        "pii-filter",
        "secret-filter",
    ]
    accepted = [e.plugin for e in events if e.kind == "load-accepted"]
    assert sorted(accepted) == sorted(s.id for s in status)


def test_a_tampered_plugin_stops_the_start(operator: Operator) -> None:
    events: list[PluginEvent] = []
    target = operator.plugins / "pii-filter" / "plugin.py"
    target.write_bytes(target.read_bytes() + b"\n# changed after signing\n")
    host = operator.host(operator.state(), events)
    with pytest.raises(PluginLoadError) as info:
        run(host.start())
    assert (info.value.plugin, info.value.reason) == ("pii-filter", "tampered")
    refused = [e for e in events if e.kind == "load-refused"]
    assert [(e.plugin, e.reason) for e in refused] == [("pii-filter", "tampered")]
    assert host.status() == []  # what had started was stopped again


def test_a_capability_the_operator_did_not_allow_stops_the_start(operator: Operator) -> None:
    pair = type("P", (), {"public": operator.root / "keys" / "operator.pub"})
    trust = write_state(operator.root / "narrow.toml", [anchor_table(pair)])  # type: ignore[arg-type]
    with pytest.raises(PluginLoadError) as info:
        run(operator.host(trust, []).start())
    assert info.value.reason == "capability-not-allowed"


def test_revocation_drains_and_stops_the_plugin(operator: Operator) -> None:
    events: list[PluginEvent] = []

    async def scenario():  # type: ignore[no-untyped-def]
        host = operator.host(operator.state(1), events)
        await host.start()
        try:
            # A long run of digits is the slowest input for pii-filter (tens of ms), so the
            # call is still in flight when the revocation starts. Never wait past its end: a
            # faster filter once made this loop spin forever.
            in_flight = asyncio.create_task(host.inspect(view(None, "1" * 400_000)))
            seen = False
            while not (seen or in_flight.done()):
                seen = any(s.in_flight for s in host.status() if s.id == "pii-filter")
                await asyncio.sleep(0.001)
            assert seen, "the call ended before the revocation could start"
            change = await host.apply_trust(
                operator.state(
                    2,
                    revoked={
                        "plugins": [f"pii-filter@{version_of(operator.plugins / 'pii-filter')}"]
                    },
                )
            )
            finished = await in_flight  # started before the revocation: it completes
            with pytest.raises(Exception) as refused:
                await host.inspect(view(None, "text"))
            return change, finished, refused.value, host.status()
        finally:
            await host.close()

    change, finished, refused, status = run(scenario())
    assert change.revoked == ("pii-filter",) and change.version == 2
    assert isinstance(finished, list)
    assert getattr(refused, "reason", "") == "closed"
    assert "pii-filter" not in {s.id for s in status}
    revoked = [e for e in events if e.kind == "revoked"]
    assert [(e.plugin, e.reason) for e in revoked] == [("pii-filter", "plugin-revoked")]


def test_a_new_version_on_disk_is_swapped_in(operator: Operator) -> None:
    events: list[PluginEvent] = []

    async def scenario():  # type: ignore[no-untyped-def]
        host = operator.host(operator.state(1), events)
        await host.start()
        try:
            manifest = operator.plugins / "secret-filter" / "plugin.toml"
            old = version_of(operator.plugins / "secret-filter")
            manifest.write_text(
                manifest.read_text().replace(f'version = "{old}"', 'version = "9.0.0"')
            )
            sign_bundle(operator.plugins / "secret-filter", operator.key)
            change = await host.apply_trust(operator.state(2))
            still = await host.inspect(view(None, "AKIAIOSFODNN7EXAMPLE"))
            return change, still, {s.id: s.version for s in host.status()}
        finally:
            await host.close()

    change, still, versions = run(scenario())
    assert change.swapped == ("secret-filter",) and change.revoked == ()
    assert versions["secret-filter"] == "9.0.0"
    assert any(plugin == "secret-filter" for plugin, _ in still)
    previous = [e.detail.get("previous") for e in events if e.kind == "swapped"]
    assert previous == [version_of(PLUGINS / "secret-filter")]


def test_an_older_trust_state_is_refused(operator: Operator) -> None:
    async def scenario() -> None:
        host = operator.host(operator.state(3), [])
        await host.start()
        try:
            await host.apply_trust(operator.state(2))
        finally:
            await host.close()

    with pytest.raises(PluginLoadError) as info:
        run(scenario())
    assert info.value.reason == "trust-state-rollback"


def test_an_auth_plugin_that_cannot_answer_fails_closed(operator: Operator) -> None:
    shutil.rmtree(operator.plugins / "bearer-auth")
    shutil.copytree(
        Path(__file__).resolve().parent.parent / "corpus" / "behaviours" / "moody",
        operator.plugins / "moody",
    )
    manifest = operator.plugins / "moody" / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('kind = "filter"', 'kind = "auth"'))
    (operator.plugins / "moody" / "plugin.py").write_text(
        "def authenticate(request):\n    raise RuntimeError('idp down')\n"
    )
    sign_bundle(operator.plugins / "moody", operator.key)
    config = PluginsSection(dir=operator.plugins, trust=operator.state(), auth=("moody",))

    async def scenario():  # type: ignore[no-untyped-def]
        host = PluginHost(config, host_version="0.1.0")
        await host.start()
        try:
            return await host.authenticate(view(f"Bearer {TOKEN}"))
        finally:
            await host.close()

    outcome = run(scenario())
    assert (outcome.allow, outcome.reason) == (False, "auth-unavailable")


def test_an_unsigned_plugin_stops_the_start(operator: Operator) -> None:
    (operator.plugins / "secret-filter" / "plugin.sig").unlink()
    events: list[PluginEvent] = []
    with pytest.raises(PluginLoadError) as info:
        run(operator.host(operator.state(), events).start())
    assert info.value.plugin == "secret-filter"
    assert info.value.reason == "envelope-invalid"  # no plugin.sig
    assert ("secret-filter", "load-refused") in {(e.plugin, e.kind) for e in events}


def test_a_plugin_signed_by_an_unknown_key_stops_the_start(operator: Operator) -> None:
    sign_bundle(operator.plugins / "pii-filter", SigningKey.generate())
    with pytest.raises(PluginLoadError) as info:
        run(operator.host(operator.state(), []).start())
    assert (info.value.plugin, info.value.reason) == ("pii-filter", "unknown-signer")
