"""A child that forges IPC frames, floods, or answers oddly: the host stays bounded and alive.

Each case was found by a review of the host code; each test fails if its defence is removed.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from haechi.host.sandbox import SandboxedChild, SandboxError, SandboxPolicy
from haechi.host.sandbox.broker import Broker
from haechi.host.sandbox.broker.netfetch import FetchGuard
from haechi.host.sandbox.supervisor import LifecycleEvent, PluginSupervisor, SupervisorPolicy
from haechi.trust import SigningKey

from .helpers import CORPUS, run, signed_copy, verified
from .test_netfetch import server

KEY = SigningKey.generate()
BEHAVIOURS = CORPUS / "behaviours"


def bundle_of(name: str, tmp_path: Path, caps: list[str] | None = None):
    return verified(signed_copy(BEHAVIOURS / name, tmp_path / name, KEY), KEY, caps or [])


def forged(command: str, tmp_path: Path) -> SandboxError:
    bundle = bundle_of("forger", tmp_path, ["state:kv"])

    async def scenario() -> SandboxError:
        child = await SandboxedChild.spawn(bundle, SandboxPolicy(), Broker(bundle.manifest))
        try:
            await child.call("inspect", [[command]], timeout=5)
        except SandboxError as exc:
            return exc
        finally:
            await child.close()
        raise AssertionError(f"{command}: the forged frames were accepted")

    return run(scenario)


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("control-flood", "unexpected control frame"),
        ("cap-flood", "capability request out of turn"),
        ("bad-id", "unknown or finished call id"),
        ("many-maps", "undecodable frame"),
        ("over-reply-cap", "exceeds the 1048576-byte cap"),
    ],
)
def test_forged_frames_kill_the_child(command: str, words: str, tmp_path: Path) -> None:
    error = forged(command, tmp_path)
    assert error.reason == "protocol-violation"
    assert words in error.message


def test_forged_load_failure_nested_deep_is_a_clean_refusal(tmp_path: Path) -> None:
    bundle = bundle_of("forged-load-failure", tmp_path)
    with pytest.raises(SandboxError) as info:
        run(lambda: SandboxedChild.spawn(bundle, SandboxPolicy()))
    assert info.value.reason in ("load-failed", "protocol-violation")
    assert len(info.value.message) < 1000


def test_respawn_survives_a_child_that_breaks_start_up(tmp_path: Path) -> None:
    """A plugin that fails at start-up keeps failing to spawn; the supervisor says so and keeps
    trying with backoff instead of ending the respawn chain silently."""
    bundle = bundle_of("forged-load-failure", tmp_path)
    events: list[LifecycleEvent] = []

    async def scenario() -> None:
        sup = PluginSupervisor(
            bundle, SupervisorPolicy(backoff_initial=0.01), on_event=events.append
        )
        with pytest.raises(SandboxError):
            await sup.start()
        sup._schedule_respawn()
        async with asyncio.timeout(10):
            while [e.kind for e in events].count("spawn-failed") < 3:
                await asyncio.sleep(0.02)
        await sup.close()

    run(scenario)


def test_plugin_without_hooks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as info:
        run(lambda: SandboxedChild.spawn(bundle_of("no-hooks", tmp_path), SandboxPolicy()))
    assert info.value.reason == "load-failed" and "defines none" in info.value.message


def test_cancelled_probe_does_not_wedge_the_breaker(tmp_path: Path) -> None:
    moody = bundle_of("moody", tmp_path)
    policy = SupervisorPolicy(breaker_threshold=1, breaker_cooldown=0.1)

    async def scenario() -> object:
        async with PluginSupervisor(moody, policy) as sup:
            with pytest.raises(SandboxError):
                await sup.call("inspect", [["crash:1"]])
            await asyncio.sleep(0.15)
            async with asyncio.timeout(10):
                while sup.idle_children == 0:
                    await asyncio.sleep(0.01)
            probe = asyncio.ensure_future(sup.call("inspect", [["slow"]]))
            await asyncio.sleep(0.005)
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
            async with asyncio.timeout(10):
                while sup.idle_children == 0:
                    await asyncio.sleep(0.01)
            return await sup.call("inspect", [["after"]])

    result = run(scenario)
    assert result[0]["label"] == "verified-moody|after"  # type: ignore[index]


def test_close_fails_waiting_callers_at_once(tmp_path: Path) -> None:
    moody = bundle_of("moody", tmp_path)

    async def scenario() -> list[object]:
        sup = PluginSupervisor(moody, SupervisorPolicy(pool_size=1))
        await sup.start()
        busy = asyncio.ensure_future(sup.call("inspect", [["slow"]]))
        waiting = asyncio.ensure_future(sup.call("inspect", [["queued"]]))
        await asyncio.sleep(0.005)
        async with asyncio.timeout(5):
            await sup.close()
            return await asyncio.gather(busy, waiting, return_exceptions=True)

    _busy, waiting = run(scenario)
    assert isinstance(waiting, SandboxError) and waiting.reason == "closed"


def test_unencodable_arguments_do_not_cost_a_child(tmp_path: Path) -> None:
    moody = bundle_of("moody", tmp_path)
    events: list[LifecycleEvent] = []

    async def scenario() -> None:
        async with PluginSupervisor(moody, on_event=events.append) as sup:
            with pytest.raises(SandboxError) as info:
                await sup.call("inspect", [[object()]])
            assert info.value.reason == "invalid-args"

    run(scenario)
    assert [e.kind for e in events] == ["spawn"]


def spinner(tmp_path: Path, cpu: float):
    source = tmp_path / f"spin-src-{cpu}"
    shutil.copytree(BEHAVIOURS / "moody", source)
    (source / "plugin.py").write_text(
        "import time\n\n"
        "def inspect(segments, ctx):\n"
        f"    end = time.process_time() + {cpu}\n"
        "    while time.process_time() < end:\n"
        "        pass\n"
        "    return []\n"
    )
    manifest = source / "plugin.toml"
    manifest.write_text(manifest.read_text().replace("timeout-ms = 300", "timeout-ms = 5000"))
    return verified(signed_copy(source, tmp_path / f"spin-{cpu}", KEY), KEY)


def spin_calls(bundle, count: int, events: list[LifecycleEvent]) -> list[object]:
    async def scenario() -> list[object]:
        policy = SandboxPolicy(cpu_seconds=1)
        outcomes: list[object] = []
        async with PluginSupervisor(bundle, sandbox=policy, on_event=events.append) as sup:
            for n in range(count):
                async with asyncio.timeout(20):
                    while sup.idle_children == 0:
                        await asyncio.sleep(0.01)
                try:
                    outcomes.append(await sup.call("inspect", [[f"req{n}"]]))
                except SandboxError as exc:
                    outcomes.append(exc.reason)
        return outcomes

    return run(scenario)


def test_children_retire_before_their_cpu_budget_runs_out(tmp_path: Path) -> None:
    events: list[LifecycleEvent] = []
    assert spin_calls(spinner(tmp_path, 0.35), 4, events) == [[]] * 4
    kinds = [e.kind for e in events]
    assert "retire" in kinds and "failure" not in kinds, kinds


def test_cpu_budget_death_quarantines_no_input(tmp_path: Path) -> None:
    events: list[LifecycleEvent] = []
    assert spin_calls(spinner(tmp_path, 1.5), 1, events) == ["crashed"]
    kinds = [e.kind for e in events]
    assert "failure" in kinds and "quarantine" not in kinds, kinds


# --- net:fetch requests the host shapes ------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Proxy-Authorization"]
)
def test_framing_and_routing_headers_are_refused(header: str) -> None:
    async def scenario() -> None:
        await FetchGuard(["net:fetch:example.com"]).fetch(
            "http://example.com/", headers={header: "x"}
        )

    with pytest.raises(SandboxError) as info:
        run(scenario)
    assert info.value.reason == "fetch-refused" and "set by the host" in info.value.message


def test_header_injection_is_refused() -> None:
    async def scenario() -> None:
        await FetchGuard(["net:fetch:example.com"]).fetch(
            "http://example.com/", headers={"X-A": "1\r\nHost: evil"}
        )

    with pytest.raises(SandboxError) as info:
        run(scenario)
    assert "malformed" in info.value.message


def test_bad_urls_are_refusals_not_hangs() -> None:
    async def scenario(url: str) -> str:
        try:
            await FetchGuard(["net:fetch:example.com"]).fetch(url)
        except SandboxError as exc:
            return exc.reason
        return "fetched"

    for url in ("http://example.com:99999/", "http://example.com:+80/", "http://[example.com]/"):
        assert run(lambda url=url: scenario(url)) == "fetch-refused", url


def test_credentials_are_not_forwarded_to_another_origin() -> None:
    seen: dict[str, str | None] = {}
    routes = web.RouteTableDef()

    @routes.get("/start")
    async def start(request: web.Request) -> web.Response:
        seen["first"] = request.headers.get("Authorization")
        raise web.HTTPFound(f"http://127.0.0.1:{request.url.port}/landing")

    @routes.get("/landing")
    async def landing(request: web.Request) -> web.Response:
        seen["second"] = request.headers.get("Authorization")
        seen["custom"] = request.headers.get("X-Trace")
        return web.Response(text="ok")

    async def scenario() -> None:
        async with server(routes) as port:

            async def resolve(host: str, _port: int) -> list[str]:
                return ["127.0.0.1"]

            guard = FetchGuard(
                [f"net:fetch:api.test:{port}", f"net:fetch:127.0.0.1:{port}"],
                allow_networks=["127.0.0.1/32"],
                resolver=resolve,
            )
            await guard.fetch(
                f"http://api.test:{port}/start",
                headers={"Authorization": "Bearer secret", "X-Trace": "t1"},
            )

    run(scenario)
    assert seen == {"first": "Bearer secret", "second": None, "custom": "t1"}
