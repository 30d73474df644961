"""The public listener's connections: what is refused before the pipeline ever runs.

aiohttp parses each request head itself, and a head it refuses never reaches
:class:`~haechi.host.gateway.app.Gateway`. Left alone, aiohttp answers those with a plain-text
400 and logs the offending bytes (a 16 KiB ``Authorization`` header would put its first hundred
bytes in the operator's logs). This module makes them refusals like every other:

- ``431 header-too-large``: a request line or header longer than ``gateway.max_header_bytes``;
- ``431 too-many-headers``: more than ``gateway.max_header_count`` headers;
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
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from haechi.host.config import GatewaySection

from .errors import GatewayError, error_body

__all__ = ["TRACE_KEY", "PublicSite", "classify"]

_log = logging.getLogger("haechi.gateway")

# Where the pipeline leaves what it knows of a request (app._Trace: request_id, route, method).
TRACE_KEY: web.RequestKey[Any] = web.RequestKey("haechi.trace", object)

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


def classify(status: int, exc: BaseException | None, limits: GatewaySection) -> GatewayError:
    """The refusal for an error aiohttp reports (``status`` is its choice, 400 or 500)."""
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


class _Connection(RequestHandler):
    """aiohttp's per-connection protocol, answering its own refusals as JSON."""

    def __init__(
        self, manager: web.Server, *, limits: GatewaySection, on_refusal: RefusalSink, **kw: Any
    ) -> None:
        super().__init__(manager, **kw)
        self._limits = limits
        self._on_refusal = on_refusal

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

    __slots__ = ("_limits", "_on_refusal")

    def __init__(
        self,
        runner: web.BaseRunner,
        limits: GatewaySection,
        *,
        on_refusal: RefusalSink,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._limits = limits
        self._on_refusal = on_refusal

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

        def connection() -> _Connection:
            return _Connection(
                manager,
                loop=loop,
                limits=limits,
                on_refusal=self._on_refusal,
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
