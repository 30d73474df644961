"""Brokered capabilities: what a plugin may ask the host for, and what it may not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiohttp import web
from haechi.host.sandbox import SandboxedChild, SandboxPolicy
from haechi.host.sandbox.broker import Broker, KVStore
from haechi.trust import SigningKey

from .helpers import CORPUS, run, signed_copy, verified
from .test_netfetch import server

KEY = SigningKey.generate()
CAPS = ["secrets:read:api-token", "state:kv", "net:fetch:jwks.test"]


@pytest.fixture
def user(tmp_path: Path) -> Path:
    return signed_copy(CORPUS / "behaviours" / "broker-user", tmp_path / "user", KEY)


def ask(bundle_dir: Path, *calls: list[object], broker_kw: dict | None = None) -> list[object]:
    bundle = verified(bundle_dir, KEY, CAPS)

    async def scenario() -> list[object]:
        broker = Broker(bundle.manifest, **(broker_kw or {}))
        child = await SandboxedChild.spawn(bundle, SandboxPolicy(), broker)
        try:
            return [await child.call("inspect", [segments], timeout=3) for segments in calls]
        finally:
            await child.close()

    return run(scenario)


def test_declared_secret_is_given(user: Path) -> None:
    answers = ask(user, ["secret", "api-token"], broker_kw={"secrets": {"api-token": "s3cr3t"}})
    assert answers == [["ok", "s3cr3t"]]


def test_undeclared_secret_is_refused(user: Path) -> None:
    secrets = {"api-token": "a", "db-password": "b"}
    answers = ask(user, ["secret", "db-password"], broker_kw={"secrets": secrets})
    assert answers == [["refused", "capability-not-declared"]]


def test_missing_secret_is_a_clear_refusal(user: Path) -> None:
    assert ask(user, ["secret", "api-token"]) == [["refused", "secret-missing"]]


def test_unknown_capability_is_refused_and_child_survives(user: Path) -> None:
    answers = ask(user, ["raw", "keys"], ["secret", "api-token"],
                  broker_kw={"secrets": {"api-token": "t"}})  # fmt: skip
    assert answers == [["refused", "capability-not-declared"], ["ok", "t"]]


def test_kv_round_trip_and_quota(user: Path) -> None:
    store = KVStore(max_value_bytes=8)
    answers = ask(user, ["kv-set", "k", "v1"], ["kv-get", "k"], ["kv-set", "k", "x" * 9],
                  broker_kw={"kv": store})  # fmt: skip
    assert answers == [["ok", None], ["ok", b"v1"], ["refused", "kv-quota"]]


def test_plugin_cannot_read_another_plugins_state(user: Path, tmp_path: Path) -> None:
    store = KVStore()
    store.set("other-plugin", "token", b"theirs")
    assert ask(user, ["kv-get", "token"], broker_kw={"kv": store}) == [["ok", None]]
    # Same code under another id sees only its own namespace.
    twin = tmp_path / "twin-src"
    shutil.copytree(CORPUS / "behaviours" / "broker-user", twin)
    manifest = twin / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('id = "broker-user"', 'id = "other-plugin"'))
    twin_dir = signed_copy(twin, tmp_path / "twin", KEY)
    assert ask(twin_dir, ["kv-get", "token"], broker_kw={"kv": store}) == [["ok", b"theirs"]]


def test_plugin_without_kv_grant_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(CORPUS / "behaviours" / "broker-user", source)
    manifest = source / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('"state:kv", ', ""))
    bundle_dir = signed_copy(source, tmp_path / "b", KEY)
    assert ask(bundle_dir, ["kv-get", "x"]) == [["refused", "capability-not-declared"]]


def test_fetch_through_the_broker(tmp_path: Path) -> None:
    routes = web.RouteTableDef()

    @routes.get("/jwks")
    async def jwks(request: web.Request) -> web.Response:
        return web.Response(body=b'{"keys":[]}')

    async def scenario() -> list[object]:
        async with server(routes) as port:
            # Signed at run time so the grant can name the test server's ephemeral port.
            source = tmp_path / "src"
            shutil.copytree(CORPUS / "behaviours" / "broker-user", source)
            manifest = source / "plugin.toml"
            grant = f"net:fetch:localhost:{port}"
            manifest.write_text(manifest.read_text().replace("net:fetch:jwks.test", grant))
            bundle = verified(signed_copy(source, tmp_path / "b", KEY), KEY, [*CAPS, grant])
            broker = Broker(bundle.manifest, allow_networks=("127.0.0.1/32", "::1/128"))
            child = await SandboxedChild.spawn(bundle, SandboxPolicy(), broker)
            try:
                urls = [f"http://localhost:{port}/jwks", f"http://127.0.0.1:{port}/jwks",
                        "http://169.254.169.254/latest/meta-data/"]  # fmt: skip
                return [await child.call("inspect", [["fetch", u]], timeout=3) for u in urls]
            finally:
                await child.close()

    good, by_address, metadata = run(scenario)
    assert good == ["ok", 200, b'{"keys":[]}']
    assert by_address == ["refused", "capability-not-declared"]
    assert metadata == ["refused", "capability-not-declared"]


def test_without_a_broker_every_request_is_refused(user: Path) -> None:
    bundle = verified(user, KEY, CAPS)

    async def scenario() -> object:
        child = await SandboxedChild.spawn(bundle, SandboxPolicy())
        try:
            return await child.call("inspect", [["secret", "api-token"]], timeout=3)
        finally:
            await child.close()

    assert run(scenario) == ["refused", "capability-not-declared"]
