"""The public listener's connections: what is refused before the pipeline ever runs.

aiohttp parses each request head itself, and a head it refuses never reaches
:class:`~haechi.host.gateway.app.Gateway`. Left alone, aiohttp answers those with a plain-text
400 and logs the offending bytes (a 16 KiB ``Authorization`` header would put its first hundred
bytes in the operator's logs). This module makes them refusals like every other:

- ``431 header-too-large``: a request line or header longer than ``gateway.max_header_bytes``;
- ``431 too-many-headers``: more than ``gateway.max_header_count`` headers;
- ``431 head-too-large``: a request line and headers over ``gateway.max_head_bytes`` in all
  (aiohttp bounds each line and their count, not the total: 300 unauthenticated connections
  holding unfinished heads of 99 headers of 16 KB took a worker from 54 to 967 MiB);
- ``431 trailers-too-large``: a chunked body's framing and trailers over their allowance
  (aiohttp holds trailers like header lines, bounded only per line and in number);
- ``505 http-version-unsupported``: a request line of a version other than HTTP/1.0 and 1.1
  that the parser let through (``HTTP/2.0``, ``HTTP/0.9``; aiohttp served them as HTTP/1.1);
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
and logged at most once a minute. With TLS a connection is admitted when it is accepted, before
its handshake (a TLS client turned away sees a reset), and the handshake gets
``header_timeout_s``.
:func:`ensure_file_limit` raises the worker's open-file limit so that the cap, not EMFILE,
is what a flood meets.

A client that stops reading: a connection whose writes have waited for it for twice
``gateway.client_timeout_s`` is aborted (a stream's own bound ends it first); a connection the
client resets ends the body aiohttp was still waiting for, so it leaves at once.

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
import resource
import ssl
import sys
import traceback
from collections import deque
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

__all__ = ["TRACE_KEY", "PublicSite", "classify", "ensure_file_limit"]

_log = logging.getLogger("haechi.gateway")

# Where the pipeline leaves what it knows of a request (app._Trace: request_id, route, method).
TRACE_KEY: web.RequestKey[Any] = web.RequestKey("haechi.trace", object)

# Files a worker holds besides client and upstream connections: plugin pipes, audit, vault.
_FILE_HEADROOM = 128

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


class VersionUnsupported(BadHttpMessage):
    """A request line of an HTTP version other than 1.0 and 1.1 that the parser let through."""

    def __init__(self) -> None:
        super().__init__("HTTP version not supported")


class TrailersTooLarge(BadHttpMessage):
    """A chunked body whose framing and trailers are over their allowance."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the chunk framing and trailers are over {limit} bytes")


class _HeadGuard:
    """aiohttp's request parser, with checks on what it holds outside bodies: each head's
    version, and the bytes of heads and trailers in total (aiohttp bounds each line and the
    number of lines, never their sum).

    - A finished head is measured from what was parsed; heads parsed but not yet taken by a
      handler (aiohttp queues up to 32 pipelined ones) count until they are taken.
    - An unfinished head is counted in bytes fed: every read while the parser waits for a
      head, and after a read that ended a request, an upper bound on what followed it in that
      read (the read less what was parsed in it, and the read after its last blank line, which
      a still-unfinished head cannot contain), so a request cannot hide the next head's start.
    - A chunked body's bytes that do not reach the body (chunk framing, trailers, which aiohttp
      holds like header lines) may total the bound plus a quarter of the body, up to four
      times the bound: 50-byte chunks pass, a trailer section of a megabyte does not.

    Each check raises a ``BadHttpMessage`` from ``feed_data``, which takes aiohttp's own path
    for parser errors: an error message, then ``handle_error``.
    """

    def __init__(self, parser: Any, limit: int) -> None:
        self._parser = parser
        self._limit = limit
        self._pending = 0  # an upper bound on the bytes of the head not yet complete
        self._queued: deque[int] = deque()  # sizes of heads parsed, not yet taken
        self._body: StreamReader | None = None  # the body of the last request parsed
        self._chunked = False
        self._framing = 0  # bytes of the chunked body's read that did not reach it
        self._paused = False  # body flow control parked part of a read inside the parser
        self._refused = False

    def feed_data(self, data: bytes) -> tuple[list[Any], bool, bytes]:
        if self._refused:  # answered already; the connection is closing
            return [], False, b""
        if not data:  # the parser resumes what it parked
            self._paused = False
        body, fed_before = self._body, self._fed(self._body)
        in_head = body is None or body.is_eof()
        carried = self._pending if in_head else 0  # the next head's bytes from earlier reads
        messages, upgraded, tail = self._parser.feed_data(data)
        parsed = self._fed(body) - fed_before  # the open body's bytes in this read
        for message, payload in messages:
            if message.version not in ((1, 0), (1, 1)):
                self._refuse(VersionUnsupported())
            size = _head_size(message)
            if size > self._limit:
                self._refuse(HeadTooLarge(self._limit))
            self._queued.append(size)
            parsed += size + self._fed(payload)
        if messages:
            parsed -= min(carried, parsed)
            self._body, self._chunked = messages[-1][1], messages[-1][0].chunked
            self._framing = max(0, len(data) - parsed)  # after the last head and body bytes
        elif body is not None and not in_head:
            # Every feed, empty ones too: bytes the parser parked during a pause count here
            # now and come off when a later feed delivers them to the body.
            self._framing += len(data) - (self._fed(body) - fed_before)
        if messages or self._body is None or self._body.is_eof():
            self._paused = False  # aiohttp may end a paused body without resuming the parser
        allowance = self._limit + min(self._fed(self._body) // 4, 4 * self._limit)
        if self._chunked and self._framing > allowance and not self._paused:
            self._refuse(TrailersTooLarge(self._limit))
        if not data:
            if self._pending + sum(self._queued) > self._limit:
                self._refuse(HeadTooLarge(self._limit))
            return messages, upgraded, tail
        if self._body is not None and not self._body.is_eof():
            self._pending = 0  # a body is being received
        elif messages or not in_head:
            after_parsed = len(data) - parsed
            after_blank_line = len(data) - (data.rfind(b"\r\n\r\n") + 4)
            self._pending = max(0, min(after_parsed, after_blank_line))
        else:
            self._pending += len(data)
        if self._pending + sum(self._queued) > self._limit:
            self._refuse(HeadTooLarge(self._limit))
        return messages, upgraded, tail

    def message_consumed(self) -> None:
        if self._queued:  # aiohttp's own error messages are consumed too
            self._queued.popleft()
        self._parser.message_consumed()

    def pause_reading(self) -> None:
        self._paused = True
        self._parser.pause_reading()

    def end_body(self) -> None:
        """The connection is gone: end a body still open, so nothing waits on it (aiohttp's
        lingering read of an unread body held the connection, and a max_connections slot,
        for 10 s after a client reset it)."""
        if self._body is not None and not self._body.is_eof():
            self._body.feed_eof()

    @staticmethod
    def _fed(body: StreamReader | None) -> int:
        return 0 if body is None else body.total_bytes

    def _refuse(self, error: BadHttpMessage) -> None:
        self._refused = True
        raise error

    def __getattr__(self, name: str) -> Any:
        # Everything else aiohttp asks of its parser (set_upgraded, ...) goes to the parser: a
        # method a later aiohttp calls must not fail here.
        return getattr(self._parser, name)


def _head_size(message: RawRequestMessage) -> int:
    """The bytes of a parsed head: ``METHOD target HTTP/x.y``, each ``name: value`` line."""
    target = len(message.path.encode("utf-8", "surrogateescape"))
    line = len(message.method) + target + len(" HTTP/1.1\r\n") + 1
    return line + sum(len(name) + len(value) + 4 for name, value in message.raw_headers)


def classify(status: int, exc: BaseException | None, limits: GatewaySection) -> GatewayError:
    """The refusal for an error aiohttp reports (``status`` is its choice, 400 or 500)."""
    if isinstance(exc, VersionUnsupported):
        return GatewayError(505, "http-version-unsupported", "send HTTP/1.1 (or 1.0) to this port")
    if isinstance(exc, TrailersTooLarge):
        return GatewayError(
            431,
            "trailers-too-large",
            "a chunked body's framing and trailers are over their allowance "
            f"({limits.max_head_bytes} bytes plus a quarter of the body); send the body with "
            "Content-Length, in larger chunks, or with fewer trailers",
        )
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
        self._stalled: asyncio.TimerHandle | None = None
        # aiohttp bounds each head line and their count; this bounds their sum.
        self._parser = cast(Any, _HeadGuard(self._parser, limits.max_head_bytes))

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

    def data_received(self, data: bytes) -> None:
        if not self._turned_away:  # a TLS connection may still deliver bytes while it closes
            super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._turned_away:  # never registered
            return
        guard = cast(_HeadGuard, self._parser)  # super() forgets it
        super().connection_lost(exc)
        guard.end_body()
        if self._stalled is not None:
            self._stalled.cancel()

    def pause_writing(self) -> None:
        # The client stopped reading: nothing else bounds how long an answer may wait for it
        # (a client pipelining requests it never reads held its connection, and a
        # max_connections slot, for good). Twice client_timeout_s: a stream's own bound in
        # the pipeline (client_timeout_s) ends it first, with its audit reason.
        super().pause_writing()
        if self._stalled is None and self.transport is not None:
            self._arm_stall(self.transport.get_write_buffer_size())

    def _arm_stall(self, waiting: int) -> None:
        self._stalled = self._loop.call_later(
            2 * self._limits.client_timeout_s, self._check_stall, waiting
        )

    def _check_stall(self, waiting: int) -> None:
        transport = self.transport
        if transport is None:
            return
        now = transport.get_write_buffer_size()
        if now < waiting:  # a slow reader, but a reader: give it another period
            self._arm_stall(now)
            return
        transport.abort()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

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


class _TlsHandshake(asyncio.Protocol):
    """A TLS connection before its handshake: admitted under ``max_connections`` when it is
    accepted, then upgraded with ``loop.start_tls`` and handed to its :class:`_Connection`.
    A client that stalls its handshake is a slow head too: it gets ``header_timeout_s``."""

    def __init__(
        self,
        site: PublicSite,
        connection: Callable[[bool], _Connection],
        admit: Callable[[], bool],
        context: ssl.SSLContext,
        timeout: float,
    ) -> None:
        self._site, self._connection, self._admit = site, connection, admit
        self._context, self._timeout = context, timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        plain = cast(asyncio.Transport, transport)
        if not self._admit():  # no plain-text answer on a TLS port: the client sees a reset
            plain.abort()
            return
        plain.pause_reading()  # the ClientHello waits for start_tls, which resumes reading
        self._site._track(asyncio.get_running_loop().create_task(self._upgrade(plain)))

    async def _upgrade(self, plain: asyncio.Transport) -> None:
        connection = self._connection(True)
        try:
            secure = await asyncio.get_running_loop().start_tls(
                plain,
                connection,
                self._context,
                server_side=True,
                ssl_handshake_timeout=self._timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            plain.abort()  # a failed or abandoned handshake: nothing to answer
            return
        except asyncio.CancelledError:
            plain.abort()
            raise
        if secure is None or self._site.stopping:  # stopped meanwhile: nothing serves it now
            (secure or plain).abort()
            return
        connection.connection_made(secure)

    def connection_lost(self, exc: BaseException | None) -> None:
        pass  # the handshake task sees the loss in start_tls


class PublicSite(web.BaseSite):
    """The public listener: ``SO_REUSEPORT`` (workers share the port), TLS when configured,
    and :class:`_Connection` protocols with the configured head limits and timeout."""

    __slots__ = ("_full_logged_at", "_handshakes", "_limits", "_on_full", "_on_refusal", "stopping")

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
        self._handshakes: set[asyncio.Task[None]] = set()  # TLS connections admitted, not done
        self.stopping = False

    @property
    def open_connections(self) -> int:
        manager = self._runner.server
        return len(self._handshakes) + (0 if manager is None else len(manager.connections))

    def _track(self, handshake: asyncio.Task[None]) -> None:
        # Removed when done however it ends, cancelled before its first step included.
        self._handshakes.add(handshake)
        handshake.add_done_callback(self._handshakes.discard)

    async def stop(self) -> None:
        # aiohttp's shutdown closes the connections it knows; handshakes it never saw would go
        # on for header_timeout_s and then be served by a stopped application.
        self.stopping = True
        handshakes = list(self._handshakes)
        for handshake in handshakes:
            handshake.cancel()
        await asyncio.gather(*handshakes, return_exceptions=True)
        await super().stop()

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
            if self.open_connections < limits.max_connections:
                return True
            self._refuse_connection(loop.time())
            return False

        def connection(admitted: bool = False) -> _Connection:
            return _Connection(
                manager,
                loop=loop,
                limits=limits,
                on_refusal=self._on_refusal,
                admit=(lambda: True) if admitted else admit,
                max_line_size=limits.max_header_bytes,
                max_field_size=limits.max_header_bytes,
                max_headers=limits.max_header_count,
                keepalive_timeout=limits.header_timeout_s,
                access_log=None,
                # Bodies stay as sent: the pipeline refuses a Content-Encoding rather than
                # inflating it (a 2 MB gzip bomb cost a worker seconds of CPU, before auth).
                auto_decompress=False,
            )

        context = self._ssl_context
        factory: Callable[[], asyncio.Protocol] = connection
        if context is not None:
            # Not create_server(ssl=...): asyncio connects that protocol only once the handshake
            # is done, so handshakes escaped max_connections (4000 held 1.3 GiB). Admitted at
            # accept instead, then upgraded here.
            def factory() -> asyncio.Protocol:
                return _TlsHandshake(self, connection, admit, context, limits.header_timeout_s)

        self._server = await loop.create_server(
            factory,
            limits.listen.host,
            limits.listen.port,
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


def ensure_file_limit(limits: GatewaySection) -> int:
    """Raise this process's soft open-file limit so that ``max_connections`` can be reached
    (Go's runtime raises it at start the same way); return the soft limit in force.

    The usual soft limit is 1024, under the default cap of 1000 connections plus the upstream
    connections, plugin pipes and files a worker holds. At the limit asyncio's accept loop logs
    EMFILE and stops accepting for a while, which is worse than the cap's clean 503; when the
    hard limit is too low as well, the operator is told which setting to change.
    """
    wanted = limits.max_connections + limits.max_concurrency + _FILE_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        _log.warning(
            "open-file limit below gateway.max_connections",
            extra={
                "open_file_limit": target,
                "wanted": wanted,
                "fix": "raise the hard limit (LimitNOFILE= in systemd, ulimit -Hn) or lower "
                "gateway.max_connections",
            },
        )
    return max(target, soft)
