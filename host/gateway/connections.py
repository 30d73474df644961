"""The public listener's connections: what is refused before the pipeline ever runs.

aiohttp parses each request head itself, and a head it refuses never reaches
:class:`~haechi.host.gateway.app.Gateway`. Left alone, aiohttp answers those with a plain-text
400 and logs the offending bytes (a 16 KiB ``Authorization`` header would put its first hundred
bytes in the operator's logs). This module makes them refusals like every other:

- ``431 header-too-large``: a request line or header longer than ``gateway.max_header_bytes``;
- ``431 too-many-headers``: more than ``gateway.max_header_count`` headers;
- ``431 head-too-large``: a request line and headers over ``gateway.max_head_bytes`` in all
  (aiohttp bounds each line and their count, not the total: 100 headers of 16 KiB held 1.6 MB
  per unfinished head, 900 MB of a worker for 300 unauthenticated connections);
- ``400 bad-request``: anything else the HTTP parser refuses (not HTTP, TLS on a plain port,
  a bad method, a bad ``Content-Length``);
- ``500 internal-error``: an exception the pipeline did not expect (a bug); the client gets no
  traceback, the log gets the exception type and the frames, never its message (it may quote
  request data);

each JSON with a stable reason code and an ``X-Request-Id``, each one audit line (through
``on_refusal``, written before the answer leaves, as the pipeline does), and the connection
closed after it. An internal error keeps the request's own id, route and method when the
pipeline had started (it leaves its trace on the request), so the client's X-Request-Id, the
audit line and the log line name the same request. One that happens after part of a streamed
answer was sent cannot be answered any more: it is logged, and the connection is cut.

Too many connections: past ``gateway.max_connections`` open connections on a worker, a new one
is answered ``503 too-many-connections`` at once and closed, without reading a byte. That
answer has no request id and no audit line (there is no request; a flood would otherwise write
to the chain at the rate it connects): it is counted in ``haechi_connections_refused_total``
and logged at most once a minute.

Slow and idle clients: a connection must complete each request head within
``gateway.header_timeout_s`` of opening (or of its TLS handshake starting) or of its previous
answer, else it is closed. Trickling bytes does not extend the deadline (aiohttp's keep-alive
timer, which only fires while no request is being handled, enforces it). The body read has its
own bound, ``gateway.client_timeout_s``. Request bodies are not decompressed here (the pipeline
refuses a ``Content-Encoding``).

Example::

    site = PublicSite(runner, config.gateway, on_refusal=gateway.record_refusal)
    await site.start()
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import traceback
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from haechi.host.config import GatewaySection

from .errors import GatewayError, error_body

__all__ = ["TRACE_KEY", "PublicSite", "classify"]

_log = logging.getLogger("haechi.gateway")

# Where the pipeline leaves what it knows of a request (app._Trace: request_id, route, method).
TRACE_KEY: web.RequestKey[Any] = web.RequestKey("haechi.trace", object)

# A refused connection is logged at most this often (seconds): a flood must not flood the log.
_FULL_LOG_INTERVAL = 60.0

# Both of aiohttp's parsers (C and pure Python) raise BadHttpMessage with this text.
_TOO_MANY_HEADERS = "Too many headers received"

# Called with each refusal and its request before the answer is sent; the gateway audits it and
# returns the request id the answer carries.
RefusalSink = Callable[[GatewayError, web.BaseRequest], Awaitable[str]]


class _RefusalResponse(web.Response):
    """The JSON answer to a refusal, sent only once ``on_refusal`` has audited it.

    aiohttp's ``handle_error`` must return a response synchronously; ``prepare`` is the first
    awaited step before any byte is written, so the audit write goes there (once).
    """

    def __init__(self, refusal: GatewayError, on_refusal: RefusalSink) -> None:
        body = json.dumps(error_body(refusal.reason, refusal.message))
        super().__init__(text=body, status=refusal.status, content_type="application/json")
        self.force_close()
        self._refusal, self._on_refusal = refusal, on_refusal
        self._audited = False

    async def prepare(self, request: web.BaseRequest) -> Any:
        if not self._audited:
            self._audited = True
            try:
                request_id = await self._on_refusal(self._refusal, request)
            except Exception as exc:  # the refusal stands; it is answered without an id
                _log.error("refusal not audited", extra={"error": type(exc).__name__})
            else:
                self.headers["X-Request-Id"] = request_id
        return await super().prepare(request)


class HeadTooLarge(BadHttpMessage):
    """A request head over ``gateway.max_head_bytes`` in all."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request head is over {limit} bytes")


class _HeadBudget:
    """aiohttp's request parser, bounding each request head's bytes in total.

    A head the parser completed is measured from what it parsed (request line and header
    lines); one it is still waiting for is every byte fed since the previous request's body
    ended (or the connection began), so an unfinished head is refused as soon as it is over the
    bound. Raising :class:`HeadTooLarge` from ``feed_data`` takes aiohttp's own path for parser
    errors (an error message, then ``handle_error``).
    """

    def __init__(self, parser: Any, limit: int) -> None:
        self._parser = parser
        self._limit = limit
        self._pending = 0  # bytes of a head not yet complete
        self._body: StreamReader | None = None
        self._refused = False

    def feed_data(self, data: bytes) -> tuple[list[Any], bool, bytes]:
        if self._refused:  # answered already; the connection is closing
            return [], False, b""
        in_head = self._body is None or self._body.is_eof()
        messages, upgraded, tail = self._parser.feed_data(data)
        if messages:
            self._pending = 0
            self._body = messages[-1][1]
            if any(_head_size(message) > self._limit for message, _ in messages):
                self._refuse()
        elif in_head:
            # A chunk ending one body and starting the next head counts as body: an unfinished
            # head may pass the bound by one read before it is refused, a finished one never.
            self._pending += len(data)
            if self._pending > self._limit:
                self._refuse()
        return messages, upgraded, tail

    def _refuse(self) -> None:
        self._refused = True
        raise HeadTooLarge(self._limit)

    def message_consumed(self) -> None:
        self._parser.message_consumed()

    def set_upgraded(self, value: bool) -> None:
        self._parser.set_upgraded(value)

    def pause_reading(self) -> None:
        self._parser.pause_reading()


def _head_size(message: RawRequestMessage) -> int:
    """The bytes of a parsed head: ``METHOD target HTTP/x.y``, each ``name: value`` line."""
    line = len(message.method) + len(message.path) + len(" HTTP/1.1\r\n") + 1
    return line + sum(len(name) + len(value) + 4 for name, value in message.raw_headers)


def classify(status: int, exc: BaseException | None, limits: GatewaySection) -> GatewayError:
    """The refusal for an error aiohttp reports (``status`` is its choice, 400 or 500)."""
    if isinstance(exc, HeadTooLarge):
        return GatewayError(
            431,
            "head-too-large",
            f"the request line and headers are over {limits.max_head_bytes} bytes in all "
            "(gateway.max_head_bytes); send fewer or shorter headers",
        )
    if isinstance(exc, LineTooLong):
        return GatewayError(
            431,
            "header-too-large",
            f"the request line or a header is longer than {limits.max_header_bytes} bytes "
            "(gateway.max_header_bytes); send shorter headers",
        )
    if isinstance(exc, BadHttpMessage) and exc.message == _TOO_MANY_HEADERS:
        return GatewayError(
            431,
            "too-many-headers",
            f"the request has more than {limits.max_header_count} headers "
            "(gateway.max_header_count); send fewer",
        )
    if status < 500:
        return GatewayError(400, "bad-request", "the request is not valid HTTP/1.1")
    return GatewayError(
        500,
        "internal-error",
        "the gateway failed unexpectedly. Retry, and report the X-Request-Id to the operator "
        "if it persists",
    )


def _raw_answer(refusal: GatewayError) -> bytes:
    """A whole HTTP/1.1 answer to ``refusal``, written where no request was ever parsed."""
    body = json.dumps(error_body(refusal.reason, refusal.message)).encode()
    head = [
        f"HTTP/1.1 {refusal.status} {HTTPStatus(refusal.status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in refusal.headers.items()),
        "Connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_FULL_ANSWER = _raw_answer(
    GatewayError(
        503,
        "too-many-connections",
        "the gateway has too many open connections (gateway.max_connections); retry with backoff",
        **{"Retry-After": "1"},
    )
)


class _Connection(RequestHandler):
    """aiohttp's per-connection protocol, answering its own refusals as JSON."""

    def __init__(
        self,
        manager: web.Server,
        *,
        limits: GatewaySection,
        on_refusal: RefusalSink,
        admit: Callable[[], bool],
        **kw: Any,
    ) -> None:
        super().__init__(manager, **kw)
        self._limits = limits
        self._on_refusal = on_refusal
        self._admit = admit
        self._turned_away = False
        # aiohttp bounds each head line and their count; this bounds their sum.
        self._parser = cast(Any, _HeadBudget(self._parser, limits.max_head_bytes))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Decided here, not when the protocol is made: asyncio makes the protocols of a whole
        # accept batch before any of them is connected, so counting there let a burst past the
        # cap. Connections register one at a time in super().connection_made.
        if self._admit():
            super().connection_made(transport)
            return
        self._turned_away = True
        cast(asyncio.Transport, transport).write(_FULL_ANSWER)
        transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._turned_away:  # a turned-away connection was never registered
            super().connection_lost(exc)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error logs (e.g. draining a refused body) carry the exception's
        message, which may quote the request: log its type and frames only."""
        exc_info = kw.get("exc_info")
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        _log.error("connection error", extra=_described(exc))

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        refusal = classify(status, exc, self._limits)
        if refusal.status >= 500:
            _log_internal(request, status, exc)
        # Part of an answer (a stream) already left: no second answer can follow.
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already being sent; closing the connection")
        return _RefusalResponse(refusal, self._on_refusal)


def _log_internal(request: web.BaseRequest, status: int, exc: BaseException | None) -> None:
    """The exception's type and frames, never its message (it may quote request data)."""
    trace = request.get(TRACE_KEY)
    extra = {"status": status, **_described(exc)}
    if trace is not None:
        extra.update(request_id=trace.request_id, route=trace.route)
    _log.error("internal error", extra=extra)


def _described(exc: BaseException | None) -> dict[str, Any]:
    """An exception for the log: its type and frames, never its message."""
    if exc is None:
        return {"error": "none"}
    return {"error": type(exc).__name__, "frames": "".join(traceback.format_tb(exc.__traceback__))}


class PublicSite(web.BaseSite):
    """The public listener: ``SO_REUSEPORT`` (workers share the port), TLS when configured,
    and :class:`_Connection` protocols with the configured head limits and timeout."""

    __slots__ = ("_full_logged_at", "_limits", "_on_full", "_on_refusal")

    def __init__(
        self,
        runner: web.BaseRunner,
        limits: GatewaySection,
        *,
        on_refusal: RefusalSink,
        on_full: Callable[[], None] = lambda: None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._limits = limits
        self._on_refusal = on_refusal
        self._on_full = on_full  # called per connection refused for gateway.max_connections
        self._full_logged_at = -_FULL_LOG_INTERVAL

    @property
    def open_connections(self) -> int:
        manager = self._runner.server
        return 0 if manager is None else len(manager.connections)

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._limits.listen.host}:{self._limits.listen.port}"

    @property
    def port(self) -> int:
        server = cast(asyncio.Server | None, self._server)
        assert server is not None, "start() first"
        return int(server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()
        manager = self._runner.server
        assert manager is not None, "runner.setup() first"
        loop = asyncio.get_running_loop()
        limits = self._limits

        def admit() -> bool:
            if len(manager.connections) < limits.max_connections:
                return True
            self._refuse_connection(loop.time())
            return False

        def connection() -> _Connection:
            return _Connection(
                manager,
                loop=loop,
                limits=limits,
                on_refusal=self._on_refusal,
                admit=admit,
                max_line_size=limits.max_header_bytes,
                max_field_size=limits.max_header_bytes,
                max_headers=limits.max_header_count,
                keepalive_timeout=limits.header_timeout_s,
                access_log=None,
                # Bodies stay as sent: the pipeline refuses a Content-Encoding rather than
                # inflating it (a 2 MB gzip bomb cost a worker seconds of CPU, before auth).
                auto_decompress=False,
            )

        self._server = await loop.create_server(
            connection,
            limits.listen.host,
            limits.listen.port,
            ssl=self._ssl_context,
            # A client that stalls its TLS handshake is a slow head too.
            ssl_handshake_timeout=limits.header_timeout_s if self._ssl_context else None,
            backlog=self._backlog,
            reuse_port=True,
        )

    def _refuse_connection(self, now: float) -> None:
        self._on_full()
        if now - self._full_logged_at >= _FULL_LOG_INTERVAL:
            self._full_logged_at = now
            _log.warning(
                "connection limit reached; refusing new connections",
                extra={"max_connections": self._limits.max_connections},
            )
