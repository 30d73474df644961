"""SSRF guard of net:fetch, against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from haechi.host.sandbox import SandboxError
from haechi.host.sandbox.broker.netfetch import FetchGuard, forbidden_reason

from .helpers import run

REFUSED = [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "100.100.100.200", "198.18.0.1", "0.0.0.0",
    "255.255.255.255", "224.0.0.1", "240.0.0.1", "192.0.0.8",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::a9fe:a9fe",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1",
    "2002:a9fe:a9fe::", "2001::1", "2001:db8::1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", REFUSED)
def test_forbidden_ranges(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@asynccontextmanager
async def server(routes: web.RouteTableDef) -> AsyncIterator[int]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        await runner.cleanup()


routes = web.RouteTableDef()
hits: list[str] = []


@routes.get("/ok")
async def ok(request: web.Request) -> web.Response:
    hits.append("ok")
    return web.json_response({"keys": []})


@routes.get("/big")
async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(64):  # 2 MiB without a Content-Length
        await response.write(b"x" * 32768)
    return response


@routes.get("/to-private")
async def to_private(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://10.0.0.1/")


@routes.get("/to-other-host")
async def to_other_host(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://metadata.internal/")


@routes.get("/to-evil")
async def to_evil(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"http://evil.test:{request.url.port}/ok")


@routes.get("/to-self")
async def to_self(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


@routes.get("/loop")
async def loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


@routes.get("/slow")
async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


def guard(port: int, **kw) -> FetchGuard:
    async def resolve(host: str, _port: int) -> list[str]:
        names = {
            "jwks.test": ["127.0.0.1"],
            "evil.test": ["10.0.0.7"],
            "mixed.test": ["93.184.216.34", "127.0.0.1"],
            "metadata.internal": ["169.254.169.254"],
        }
        if host not in names:
            raise OSError("no such host")
        return names[host]

    declared = [f"net:fetch:jwks.test:{port}", f"net:fetch:evil.test:{port}",
                f"net:fetch:mixed.test:{port}", "net:fetch:metadata.internal"]  # fmt: skip
    return FetchGuard(
        declared, allow_networks=kw.pop("allow", ["127.0.0.1/32"]), resolver=resolve, **kw
    )


def fetch(path: str, host: str = "jwks.test", **kw) -> object:
    async def scenario() -> object:
        async with server(routes) as port:
            return await guard(port, **kw).fetch(f"http://{host}:{port}{path}")

    return run(scenario)


def refusal(path: str, host: str = "jwks.test", **kw) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        fetch(path, host, **kw)
    return info.value


def test_allowed_fetch_reaches_the_server() -> None:
    result = fetch("/ok")
    assert result.status == 200 and result.body == b'{"keys": []}'  # type: ignore[attr-defined]


def test_loopback_is_refused_without_the_operator_allowlist() -> None:
    hits.clear()
    error = refusal("/ok", allow=[])
    assert error.reason == "fetch-refused" and "loopback" in error.message
    assert hits == [], "the server was never contacted"


def test_dns_name_resolving_to_private_is_refused() -> None:
    assert "private" in refusal("/ok", host="evil.test").message


def test_one_private_answer_among_public_ones_is_refused() -> None:
    assert "127.0.0.1" in refusal("/ok", host="mixed.test", allow=[]).message


def test_undeclared_host_is_refused() -> None:
    assert refusal("/ok", host="other.test").reason == "capability-not-declared"


def test_redirect_to_an_undeclared_private_address_is_refused() -> None:
    assert refusal("/to-private").reason == "capability-not-declared"


def test_redirect_to_a_declared_name_that_resolves_privately_is_refused() -> None:
    error = refusal("/to-evil")
    assert (error.reason, "10.0.0.7" in error.message) == ("fetch-refused", True)


def test_redirect_to_metadata_host_is_refused_after_resolution() -> None:
    error = refusal("/to-other-host")
    assert (error.reason, "link-local" in error.message) == ("fetch-refused", True)


def test_redirect_within_the_host_is_followed() -> None:
    assert fetch("/to-self").body == b'{"keys": []}'  # type: ignore[attr-defined]


def test_redirect_loop_is_cut() -> None:
    assert "redirects" in refusal("/loop").message


def test_oversized_response_is_refused() -> None:
    assert refusal("/big", max_bytes=1024 * 1024).reason == "fetch-too-large"


def test_slow_response_hits_the_deadline() -> None:
    assert refusal("/slow", timeout=0.3).reason == "fetch-timeout"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://jwks.test/x", "http://u:p@jwks.test/"]
)
def test_other_schemes_and_credentials(url: str) -> None:
    async def scenario() -> None:
        await guard(1).fetch(url)

    with pytest.raises(SandboxError) as info:
        run(scenario)
    assert info.value.reason in ("fetch-refused", "capability-not-declared")


@pytest.mark.parametrize(
    "spelling", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost"]
)
def test_numeric_spellings_resolve_to_loopback_and_are_refused(spelling: str) -> None:
    async def scenario() -> None:
        await FetchGuard([f"net:fetch:{spelling}"]).fetch(f"http://{spelling}/")

    with pytest.raises(SandboxError) as info:
        run(scenario)
    assert (info.value.reason, "loopback" in info.value.message) == ("fetch-refused", True)


def test_port_must_be_declared() -> None:
    async def scenario() -> None:
        await FetchGuard(["net:fetch:example.com"]).fetch("http://example.com:8080/")

    with pytest.raises(SandboxError) as info:
        run(scenario)
    assert info.value.reason == "capability-not-declared"
