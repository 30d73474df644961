"""Helpers for the end-to-end gateway tests: a real gateway over real HTTP, nothing mocked.

* :class:`LoopThread`: an asyncio loop in a background thread that hosts the gateways and
  their stub upstreams (the test thread stays synchronous and is the HTTP client);
* :class:`DirectedStub`: the real :class:`~haechi.host.gateway.stub.StubUpstream`. The
  gateway forwards only allowlisted headers, so the stub's ``X-Stub-*`` headers cannot travel
  through it; a test registers them under an ``X-Request-Id`` (which is forwarded) and this
  subclass adds them to the request before the stub's own handlers read them;
* :func:`start_gateway`: ``init_home`` + edits to ``haechi.toml`` / ``secrets.toml`` +
  ``load_config`` + ``start_runtime`` + ``Runtime.listen`` on ``127.0.0.1:0``;
* :func:`http` / :func:`raw_http`: one aiohttp request, or exact request bytes on a socket
  (for path spellings a client library might normalise).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import tomli_w
from aiohttp import web
from haechi.host.config import Config, load_config
from haechi.host.gateway.home import init_home
from haechi.host.gateway.server import Runtime, start_runtime
from haechi.host.gateway.stub import ReceivedRequest, StubUpstream
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

T = TypeVar("T")

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"


class LoopThread:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class DirectedStub(StubUpstream):
    """The stub, with ``X-Stub-*`` directives looked up by the forwarded ``X-Request-Id``."""

    directives: dict[str, dict[str, str]] = field(default_factory=dict)

    def _directed(self, request: web.Request) -> web.Request:
        extra = self.directives.get(request.headers.get("X-Request-Id", ""))
        if not extra:
            return request
        headers = CIMultiDict(request.headers)
        headers.update(extra)
        return request.clone(headers=CIMultiDictProxy(headers))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await super()._chat(self._directed(request))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await super()._responses(self._directed(request))

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await super()._messages(self._directed(request))


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        """The haechi error code of a refusal (fails the test if the body is not one)."""
        error = self.json["error"]
        assert error["type"] == "haechi", self.body
        return str(error["code"])

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def new_request_id() -> str:
    return secrets.token_hex(8)


@dataclass
class E2EGateway:
    """One running gateway (and its own stub): what the fixtures yield."""

    base_url: str
    admin_url: str
    token: str
    stub: DirectedStub
    runtime: Runtime
    config: Config
    home: Path
    loop: LoopThread
    public_port: int

    # --- requests (client side runs on the test thread, over real sockets) ------------------

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        auth: bool | str = True,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        stub: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> Reply:
        """POST ``body`` (JSON) or ``data``; ``stub`` are X-Stub-* directives for the upstream."""
        sent = dict(headers or {})
        if auth is True:
            sent["Authorization"] = f"Bearer {self.token}"
        elif isinstance(auth, str):
            sent["Authorization"] = auth
        if stub or request_id:
            rid = request_id or new_request_id()
            sent["X-Request-Id"] = rid
            if stub:
                self.stub.directives[rid] = dict(stub)
        return http("POST", self.base_url + path, json_body=body, data=data, headers=sent)

    def mark(self) -> int:
        return len(self.stub.received)

    def received_since(self, mark: int) -> list[ReceivedRequest]:
        return list(self.stub.received[mark:])

    def last_received(self, mark: int) -> ReceivedRequest:
        got = self.received_since(mark)
        assert len(got) == 1, f"the stub got {len(got)} requests, expected 1"
        return got[0]

    # --- audit ----------------------------------------------------------------------------

    def audit_events(self, kind: str | None = "request") -> list[dict[str, Any]]:
        lines = []
        for path in sorted(self.config.audit.path.parent.glob("*.jsonl")):
            for raw in path.read_text(encoding="utf-8").splitlines():
                if raw.strip():
                    lines.append(json.loads(raw))
        return [line for line in lines if kind is None or line.get("kind") == kind]

    def audit_for(self, request_id: str) -> dict[str, Any]:
        found = [e for e in self.audit_events() if _fields(e).get("request_id") == request_id]
        assert len(found) == 1, f"{len(found)} audit lines for request {request_id}"
        return _fields(found[0])

    def close(self) -> None:
        self.loop.run(self.runtime.close())
        self.loop.run(self.stub.close())


def _fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's own fields, whether the chain nests them or keeps them at the top."""
    nested = event.get("fields")
    return dict(nested) if isinstance(nested, Mapping) else dict(event)


def audit_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    return _fields(event)


def _merge(into: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def start_gateway(
    loop: LoopThread,
    directory: Path,
    *,
    policy: dict[str, object] | None = None,
    settings: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    upstream_secrets: Mapping[str, str] | None = None,
    anthropic_url: str | None = None,
    openai_url: str | None = None,
    extra_tokens: Mapping[str, str] | None = None,
    stub_host: str = "127.0.0.1",
    prepare: Callable[[Path], None] | None = None,
) -> E2EGateway:
    """A real gateway in ``directory`` in front of its own stub, listening on loopback.

    ``extra_tokens`` maps more bearer tokens to ``"principal scope,scope"`` entries;
    ``stub_host`` is the name the gateway uses for its stub (``localhost``: not an IP);
    ``prepare`` runs on the initialised home before the gateway starts (to swap a plugin)."""
    stub = DirectedStub()
    stub_url = loop.run(stub.start()).replace("127.0.0.1", stub_host)
    made = init_home(
        directory,
        listen="127.0.0.1:0",
        admin="127.0.0.1:0",
        upstream_openai=openai_url or stub_url,
        upstream_anthropic=anthropic_url or stub_url,
        principal="e2e-user",
        policy=policy,
    )
    if settings:
        document = tomllib.loads(made.config.read_text())
        _merge(document, settings)
        made.config.write_text(tomli_w.dumps(document))
    if extra_tokens:
        secrets_file = directory / "secrets.toml"
        table = tomllib.loads(secrets_file.read_text())
        for token, entry in extra_tokens.items():
            digest = hashlib.sha256(token.encode()).hexdigest()
            table["bearer-tokens"] += f"sha256:{digest} {entry}\n"
        secrets_file.write_text(tomli_w.dumps(table))  # keeps its 0600 mode
    if upstream_secrets:
        secrets_file = directory / "secrets.toml"
        with secrets_file.open("a", encoding="utf-8") as handle:  # keeps its 0600 mode
            handle.write(tomli_w.dumps(dict(upstream_secrets)))
    if prepare:
        prepare(directory)
    config = load_config(made.config, environ=dict(environ or {}))
    runtime = loop.run(start_runtime(config))
    try:
        port, admin_port = loop.run(runtime.listen())
    except BaseException:
        loop.run(runtime.close())
        raise
    return E2EGateway(
        base_url=f"http://127.0.0.1:{port}",
        admin_url=f"http://127.0.0.1:{admin_port}",
        token=made.token,
        stub=stub,
        runtime=runtime,
        config=config,
        home=directory,
        loop=loop,
        public_port=port,
    )


# --- clients ----------------------------------------------------------------------------------


async def request_async(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    encoded: bool = False,
) -> Reply:
    kwargs: dict[str, Any] = {"headers": dict(headers or {})}
    if json_body is not None:
        kwargs["json"] = json_body
    elif data is not None:
        kwargs["data"] = data
    target: Any = URL(url, encoded=True) if encoded else url
    async with session.request(method, target, **kwargs) as response:
        body = await response.read()
        return Reply(response.status, CIMultiDict(response.headers), body)


def http(method: str, url: str, **kwargs: Any) -> Reply:
    """One request from the test thread, in its own loop and client session."""

    async def go() -> Reply:
        async with aiohttp.ClientSession() as session:
            return await request_async(session, method, url, **kwargs)

    return asyncio.run(go())


def raw_http(
    port: int,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    content_length: int | None = None,
    read_timeout: float = 30,
) -> Reply:
    """Exactly ``METHOD target HTTP/1.1`` on a fresh socket, and the answer to it.

    ``content_length`` may promise more than ``body`` holds (a client that stalls).
    """

    async def go() -> Reply:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        parsed: CIMultiDict[str] = CIMultiDict()
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed.add(name.strip(), value.strip())
        if "Content-Length" in parsed:  # the server may linger before closing: don't wait
            size = int(parsed["Content-Length"])
            payload = await asyncio.wait_for(reader.readexactly(size), read_timeout)
        else:
            payload = await asyncio.wait_for(reader.read(), read_timeout)
        writer.close()
        return Reply(int(status_line.split(" ")[1]), parsed, payload)

    return asyncio.run(go())


def running_gateway(
    loop: LoopThread, factory: pytest.TempPathFactory, name: str, **kwargs: Any
) -> Iterator[E2EGateway]:
    """For a module fixture: a gateway (``start_gateway(**kwargs)``) in a fresh directory
    ``name``, closed when the fixture ends."""
    gateway = start_gateway(loop, factory.mktemp(name), **kwargs)
    try:
        yield gateway
    finally:
        gateway.close()


def wait_for(
    condition: Callable[[], bool], timeout: float = 10.0, *, interval: float = 0.005
) -> None:
    """Poll ``condition`` (a readiness wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


async def async_wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def sse_events(body: bytes) -> list[tuple[str, str]]:
    """``(event, data)`` per server-sent event (event is ``message`` when not named)."""
    events = []
    for block in body.decode("utf-8").split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        events.append((name, "\n".join(data)))
    return events


class LogCapture:
    """Every log record of the process (any logger, DEBUG and up) into a file under a home."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setLevel(logging.DEBUG)
        self.handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self._root = logging.getLogger()
        self._level = self._root.level

    def __enter__(self) -> LogCapture:
        self._root.addHandler(self.handler)
        self._root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._root.removeHandler(self.handler)
        self._root.setLevel(self._level)
        self.handler.close()
