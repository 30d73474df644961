"""The gateway's request pipeline (aiohttp), in the order DESIGN §5 fixes.

For each request to a model route (``adapters.ROUTES``), in this order, each refusal a JSON
error with a stable reason code (``{"error": {"type": "haechi", "code", "message"}}``; every code,
with what a client should do, is in docs/reference/gateway-errors.md). Heads the HTTP parser
refuses (too long, too many headers, not HTTP, too slow) never get here: connections.py.

1. route: the *raw* path (before any decoding) must be exactly one of the model routes; any
   other path, including encoded or dotted spellings, is ``404 not-found`` (admin routes are
   never on this listener);
2. concurrency cap: more than ``gateway.max_concurrency`` requests in flight is ``503
   overloaded``;
3. auth plugins, before the body is read: ``401 unauthenticated:<reason>``, or ``503
   auth-unavailable`` when an auth plugin failed and none allowed;
4. rate limit per principal: ``429 rate-limited`` with ``Retry-After``;
5. body size and JSON: ``413 body-too-large``, ``400 invalid-json``; a body that does not
   arrive within ``gateway.client_timeout_s`` is ``408 client-timeout``;
6. model allowlist: ``403 model-not-allowed``;
7. the route's adapter extracts the text segments: ``400 invalid-body`` /
   ``unsupported-content``;
8. filter plugins in parallel: ``503 filter-unavailable`` if one fails (fail closed);
9. policy; a block is ``403 blocked:<type>`` in every mode for hard-block types;
10. actions (mask, redact, tokenize through the vault, encrypt through the crypto plugin):
    ``503 crypto-unavailable`` if a needed action cannot be carried out;
11. upstream, with a header allowlist and hop-by-hop headers removed: ``504
    upstream-timeout``, ``502 upstream-unavailable``; streaming (SSE) answers are passed
    through chunk by chunk, and an upstream failure mid-stream ends that stream, never the
    process;
12. optional response inspection (``gateway.inspect_responses``, ``responses.py``): a
    non-streamed answer goes through the filters and the policy too: ``502
    response-uninspectable``, ``502 response-blocked:<type>``, ``503 filter-unavailable``;
13. audit: one ``request`` event per request that got this far, with counts, never text.

Example::

    gateway = Gateway(config, plugins, policy, audit, vault)
    app = gateway.public_app()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import functools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from haechi.host.audit.schema import METHODS as AUDITED_METHODS
from haechi.host.config import Config
from haechi.host.sandbox import SandboxError
from haechi.host.sandbox.views import RequestView

from .actions import ActionError, apply_outcome
from .adapters import ROUTES, adapter_for
from .adapters.base import BodyError
from .connections import TRACE_KEY
from .errors import GatewayError, error_body, new_request_id
from .plugins import AuthOutcome, PluginHost
from .policy import INVALID_DETECTION, Policy, PolicyOutcome, decide
from .ratelimit import RateLimiter
from .responses import ResponseRefused, inspect_response, response_audit_fields

__all__ = ["AuditSink", "Gateway", "GatewayError"]

# Request headers an upstream may see. The client's Authorization is for the gateway and never
# leaves it; the upstream's own credential comes from the operator's secrets.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "content-type",
        "accept",
        "anthropic-version",
        "anthropic-beta",
        "openai-organization",
        "openai-project",
        "x-request-id",
    }
)
FORWARDED_RESPONSE_HEADERS = frozenset(
    {"content-type", "x-request-id", "openai-processing-ms", "request-id", "retry-after"}
)
# Secrets (plugins.secrets) holding the operator's upstream API keys, per provider.
UPSTREAM_KEY_SECRETS = {"openai": "openai-api-key", "anthropic": "anthropic-api-key"}
ANTHROPIC_ROUTES = frozenset({"/v1/messages"})


class AuditSink(Protocol):
    async def append(self, kind: str, **fields: Any) -> None: ...


class _ClientStalled(Exception):
    """The client did not take a streamed chunk within ``gateway.client_timeout_s``."""


@dataclass
class _Trace:
    """What the audit line and the metrics learn about one request (never text)."""

    request_id: str
    route: str
    method: str = "POST"
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    principal: str = ""
    model: str = ""
    outcome: PolicyOutcome | None = None
    upstream_status: int = 0
    plugins: tuple[str, ...] = ()
    response: PolicyOutcome | None = None  # the answer's, when responses are inspected


@dataclass
class Gateway:
    config: Config
    plugins: PluginHost
    policy: Policy
    audit: AuditSink
    vault: Any = None  # haechi.host.vault TokenVault, for tokenize and detokenize
    upstream_keys: Mapping[str, str] = field(default_factory=dict)
    metrics: Any = None
    principal_hash: Callable[[str], str] = lambda principal: ""
    _in_flight: int = 0
    _session: aiohttp.ClientSession | None = None
    _limiter: RateLimiter | None = None

    # --- apps --------------------------------------------------------------------------------

    def public_app(self) -> web.Application:
        gateway = self.config.gateway
        # Head limits and timeouts are the listener's (connections.PublicSite), not the app's.
        app = web.Application(client_max_size=gateway.max_body_bytes, middlewares=[self._unrouted])
        app.router.add_route("*", "/{tail:.*}", self._dispatch, expect_handler=_defer_expect)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, app: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=10, sock_read=self.config.gateway.upstream_timeout_s
        )
        # No cookie jar: one session serves every principal, and a cookie an upstream sets
        # (CDNs in front of model APIs do) must not travel on other principals' requests.
        self._session = aiohttp.ClientSession(
            timeout=timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        limits = self.config.rate_limit
        self._limiter = RateLimiter(limits.requests_per_minute / 60.0, limits.burst)

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    # --- the pipeline ------------------------------------------------------------------------

    @web.middleware
    async def _unrouted(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Request targets that are not paths (``OPTIONS *``, ``CONNECT host:port``) match no
        route, and aiohttp answered them with its own plain-text 404: refuse them like any
        other unknown target."""
        if request.match_info.http_exception is not None:
            return await self._dispatch(request)
        return await handler(request)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = request.raw_path.split("?", 1)[0]
        trace = _Trace(_request_id(request), route, method=request.method)
        # For connections.py: an exception that escapes the pipeline (a bug) is answered,
        # audited and logged under this request's id, route and method.
        request[TRACE_KEY] = trace
        try:
            if request.method != "POST" or route not in (*ROUTES, DETOKENIZE_ROUTE):
                raise GatewayError(
                    404, "not-found", f"{request.method} {route[:200]} is not a route"
                )
            if route == DETOKENIZE_ROUTE:
                return await self._detokenize(request, trace)
            return await self._guarded(request, trace)
        except GatewayError as exc:
            await self._record(trace, exc.status, exc.reason)
            return _error(exc, trace.request_id)

    async def record_refusal(self, refusal: GatewayError, request: web.BaseRequest) -> str:
        """Audit a refusal ``connections.py`` made: a head the parser refused, or an exception
        that escaped the pipeline. Returns the request id the answer carries."""
        trace = request.get(TRACE_KEY)
        if not isinstance(trace, _Trace):  # the head was never parsed: nothing is known
            trace = _Trace(new_request_id(), "/unknown", method="OTHER")
        await self._record(trace, refusal.status, refusal.reason)
        return trace.request_id

    async def _guarded(self, request: web.Request, trace: _Trace) -> web.StreamResponse:
        if self._in_flight >= self.config.gateway.max_concurrency:
            raise GatewayError(503, "overloaded", "too many requests in flight; retry shortly")
        self._in_flight += 1
        try:
            return await self._pipeline(request, trace)
        finally:
            self._in_flight -= 1

    async def _pipeline(self, request: web.Request, trace: _Trace) -> web.StreamResponse:
        auth = await self._authenticate(request, trace)
        self._rate_limit(auth)
        body = await self._read_json(request)
        trace.model = self._check_model(body)
        adapter = adapter_for(trace.route)
        assert adapter is not None  # _dispatch only lets model routes through
        try:
            extraction = adapter.extract(body)
        except BodyError as exc:
            status = 413 if exc.reason == "body-too-large" else 400
            raise GatewayError(status, exc.reason, str(exc)) from None
        trace.stream = extraction.stream
        detections = await self._inspect(extraction.texts, trace)
        outcome = decide(self.policy, trace.route, detections, extraction.lengths)
        trace.outcome = outcome
        if outcome.reason == INVALID_DETECTION:
            raise GatewayError(
                502, INVALID_DETECTION, "a filter reported a detection outside the text"
            )
        if outcome.blocked:
            raise GatewayError(403, outcome.reason or "blocked", _blocked_message(outcome))
        forwarded = body
        if outcome.edits:
            forwarded = await self._apply(adapter, body, extraction, outcome, auth)
        response = await self._upstream(request, trace, forwarded, extraction.stream, outcome)
        return response

    async def _authenticate(self, request: web.Request, trace: _Trace) -> AuthOutcome:
        headers = {}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        view = RequestView(request.method, trace.route, headers)
        outcome = await self.plugins.authenticate(view)
        trace.plugins += (outcome.plugin,) if outcome.plugin else ()
        if outcome.allow:
            trace.principal = outcome.principal
            return outcome
        if outcome.reason in ("auth-unavailable", "no-auth-plugin"):
            raise GatewayError(503, outcome.reason, "authentication is unavailable; retry later")
        raise GatewayError(
            401,
            f"unauthenticated:{outcome.reason}",
            "the credentials were not accepted",
            **{"WWW-Authenticate": "Bearer"},
        )

    def _rate_limit(self, auth: AuthOutcome) -> None:
        assert self._limiter is not None
        wait = self._limiter.take(auth.principal)
        if wait > 0:
            raise GatewayError(
                429,
                "rate-limited",
                "too many requests for this principal",
                **{"Retry-After": str(max(1, round(wait)))},
            )

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        limit = self.config.gateway.max_body_bytes
        # Compressed request bodies are refused, not inflated: a bomb would be inflated before
        # max_body_bytes could count it, and no model API client sends them.
        if any(coding != "identity" for coding in _codings(request, "Content-Encoding")):
            raise GatewayError(
                415, "unsupported-encoding", "send the body uncompressed (no Content-Encoding)"
            )
        # aiohttp's parser reads "gzip, chunked" as chunked and drops the gzip; RFC 9112 §6.1
        # says a coding the server does not understand is a 501, not something to ignore.
        if _codings(request, "Transfer-Encoding") not in ([], ["chunked"]):
            raise GatewayError(
                501,
                "unsupported-transfer-encoding",
                "send the body with Content-Length, or with Transfer-Encoding: chunked alone",
            )
        if request.content_length is not None and request.content_length > limit:
            raise GatewayError(413, "body-too-large", f"the body is over {limit} bytes")
        await _continue(request)
        try:
            # gateway.client_timeout_s was never applied: a client trickling its body held a
            # concurrency slot for as long as it liked.
            async with asyncio.timeout(self.config.gateway.client_timeout_s):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise GatewayError(413, "body-too-large", f"the body is over {limit} bytes") from None
        except TimeoutError:
            raise GatewayError(
                408, "client-timeout", "the request body did not arrive in time"
            ) from None
        except ConnectionError:
            # The client left mid-body (wrk does at the end of every run): not a gateway fault,
            # and nobody is left to answer. 499 is nginx's status for it, for the audit line.
            raise GatewayError(
                499, "client-gone", "the client closed the connection before its body arrived"
            ) from None
        try:
            body = json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise GatewayError(400, "invalid-json", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise GatewayError(400, "invalid-json", "the body must be a JSON object")
        # json.loads lets unpaired UTF-16 surrogates through (a "\ud800" escape, or their
        # UTF-8 bytes); such a body cannot be inspected or re-encoded for the upstream.
        if _SURROGATE.search(raw) and not _encodable(body):
            raise GatewayError(400, "invalid-json", "the body contains an unpaired surrogate")
        return body

    def _check_model(self, body: Mapping[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(400, "invalid-body", "$.model: a model name is required")
        if not any(fnmatch.fnmatchcase(model, p) for p in self.config.models.allow):
            raise GatewayError(403, "model-not-allowed", f"model {model[:100]!r} is not allowed")
        return model

    async def _inspect(self, texts: list[str], trace: _Trace) -> list[Any]:
        if not texts:
            return []
        view = RequestView("POST", trace.route, segments=tuple(texts))
        try:
            found = await self.plugins.inspect(view)
        except SandboxError as exc:
            raise GatewayError(
                503, "filter-unavailable", f"a filter could not inspect the request ({exc.reason})"
            ) from None
        trace.plugins += tuple(dict.fromkeys(plugin for plugin, _ in found))
        return [detection for _, detection in found]

    async def _apply(
        self,
        adapter: Any,
        body: dict[str, Any],
        extraction: Any,
        outcome: PolicyOutcome,
        auth: AuthOutcome,
    ) -> dict[str, Any]:
        # One tenant per gateway for now: a principal's name must not travel inside the
        # sealed header of every value it sends (the header is not encrypted).
        tenant = ""
        del auth

        async def encrypt(type_: str, text: str) -> str:
            sealed = await self._seal(type_, text, tenant)
            return "[ENC:" + base64.urlsafe_b64encode(sealed).decode().rstrip("=") + "]"

        async def tokenize(type_: str, text: str) -> str:
            if self.vault is None:
                raise ActionError("tokenize-unavailable", "no token vault is configured")
            sealed = await self._seal(type_, text, tenant)
            return str(await asyncio.to_thread(self.vault.put, type_, sealed, tenant))

        try:
            return await apply_outcome(
                adapter, body, extraction, outcome, tokenize=tokenize, encrypt=encrypt
            )
        except ActionError as exc:
            raise GatewayError(503, "crypto-unavailable", f"{exc}") from None

    async def _seal(self, type_: str, text: str, tenant: str) -> bytes:
        try:
            return await self.plugins.encrypt(text.encode(), {"type": type_, "tenant": tenant})
        except SandboxError as exc:
            raise ActionError("encrypt-unavailable", exc.reason) from None

    # --- detokenisation ----------------------------------------------------------------------

    async def _detokenize(self, request: web.Request, trace: _Trace) -> web.Response:
        """Reveal vault tokens to a principal holding the ``detokenize`` scope; every token
        asked for is one audit event (revealed, denied, not-found or failed)."""
        auth = await self._authenticate(request, trace)
        self._rate_limit(auth)
        body = await self._read_json(request)
        tokens = body.get("tokens")
        if (
            not isinstance(tokens, list)
            or not 0 < len(tokens) <= MAX_DETOKENIZE
            or not all(isinstance(t, str) for t in tokens)
        ):
            raise GatewayError(
                400, "invalid-body", f"$.tokens: a list of 1-{MAX_DETOKENIZE} token strings"
            )
        principal = self.principal_hash(auth.principal)
        if DETOKENIZE_SCOPE not in auth.scopes:
            for token in tokens:
                await self._audit_reveal(trace, principal, token, "denied", "scope-missing")
            raise GatewayError(
                403, "scope-missing", f"detokenising needs the {DETOKENIZE_SCOPE!r} scope"
            )
        values: dict[str, str | None] = {}
        for token in dict.fromkeys(tokens):
            values[token] = await self._reveal(trace, principal, token)
        await self._record(trace, 200, "ok")
        return web.json_response({"values": values}, headers={"X-Request-Id": trace.request_id})

    async def _reveal(self, trace: _Trace, principal: str, token: str) -> str | None:
        from haechi.host.vault import VaultError

        try:
            entry = await asyncio.to_thread(self.vault.get, token) if self.vault else None
        except VaultError:
            entry = None
        if entry is None:
            await self._audit_reveal(trace, principal, token, "not-found", "unknown-token")
            return None
        try:
            fields = {"type": entry.type, "tenant": entry.tenant}
            plaintext = await self.plugins.decrypt(entry.sealed, fields)
        except SandboxError as exc:
            await self._audit_reveal(trace, principal, token, "failed", exc.reason)
            return None
        await self._audit_reveal(trace, principal, token, "revealed", "ok")
        return plaintext.decode("utf-8", "replace")

    async def _audit_reveal(
        self, trace: _Trace, principal: str, token: str, outcome: str, reason: str
    ) -> None:
        kind = token.split("_")[1] if token.count("_") >= 2 else "unknown"
        fields = {
            "principal": principal,
            "token_type": kind if _TOKEN_TYPE.fullmatch(kind) else "unknown",
            "outcome": outcome,
            "reason": reason,
            "request_id": trace.request_id,
        }
        await self.audit.append("detokenize", **fields)

    # --- upstream ----------------------------------------------------------------------------

    def _upstream_url(self, route: str) -> tuple[str, str]:
        provider = "anthropic" if route in ANTHROPIC_ROUTES else "openai"
        base = getattr(self.config.upstreams, provider).rstrip("/")
        return provider, base + route

    def _upstream_headers(
        self, request: web.Request, provider: str, request_id: str
    ) -> dict[str, str]:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in FORWARDED_REQUEST_HEADERS and name.lower() != "x-request-id"
        }
        headers["Content-Type"] = "application/json"
        # Uncompressed answers only: the client session does not decompress (so it can relay
        # bytes as they come), and a compressed body could be neither inspected nor relayed
        # with its Content-Encoding, which is not forwarded.
        headers["Accept-Encoding"] = "identity"
        # The id the audit line and the client see, never the client's unchecked header.
        headers["X-Request-Id"] = request_id
        key = self.upstream_keys.get(provider)
        if key:
            if provider == "anthropic":
                headers["x-api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    async def _upstream(
        self,
        request: web.Request,
        trace: _Trace,
        body: Mapping[str, Any],
        stream: bool,
        outcome: PolicyOutcome,
    ) -> web.StreamResponse:
        assert self._session is not None
        provider, url = self._upstream_url(trace.route)
        headers = self._upstream_headers(request, provider, trace.request_id)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            upstream = await self._session.post(url, data=data, headers=headers)
        except TimeoutError:
            raise GatewayError(
                504, "upstream-timeout", "the model API did not answer in time"
            ) from None
        except aiohttp.ClientError:
            raise GatewayError(
                502, "upstream-unavailable", "the model API cannot be reached"
            ) from None
        trace.upstream_status = upstream.status
        try:
            if stream and upstream.status == 200:
                return await self._relay_stream(request, trace, upstream, outcome)
            return await self._relay_body(trace, upstream, outcome)
        finally:
            upstream.release()

    async def _relay_body(
        self, trace: _Trace, upstream: aiohttp.ClientResponse, outcome: PolicyOutcome
    ) -> web.Response:
        try:
            payload = await upstream.read()
        except TimeoutError:
            raise GatewayError(504, "upstream-timeout", "the model API stopped answering") from None
        except aiohttp.ClientError:
            raise GatewayError(502, "upstream-unavailable", "the model API broke off") from None
        headers = self._response_headers(upstream, trace, outcome)
        if self.config.gateway.inspect_responses:
            payload = await self._inspect_response(trace, upstream, payload, headers)
        response = web.Response(status=upstream.status, body=payload, headers=headers)
        await self._record(
            trace, upstream.status, "ok" if upstream.status < 400 else "upstream-error"
        )
        return response

    async def _inspect_response(
        self,
        trace: _Trace,
        upstream: aiohttp.ClientResponse,
        payload: bytes,
        headers: dict[str, str],
    ) -> bytes:
        """Step 12: the answer through the filters, the policy and the actions (responses.py)."""
        apply = functools.partial(self._apply, auth=AuthOutcome(True, "ok", trace.principal))
        try:
            checked = await inspect_response(
                trace.route,
                upstream.status,
                payload,
                encoding=upstream.headers.get("Content-Encoding", ""),
                plugins=self.plugins,
                policy=self.policy,
                apply=apply,
            )
        except ResponseRefused as exc:
            trace.response = exc.outcome
            raise GatewayError(exc.status, exc.reason, exc.message) from None
        trace.response = checked.outcome
        trace.plugins += checked.plugins
        headers.update(checked.headers)
        return checked.payload

    async def _relay_stream(
        self,
        request: web.Request,
        trace: _Trace,
        upstream: aiohttp.ClientResponse,
        outcome: PolicyOutcome,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=upstream.status, headers=self._response_headers(upstream, trace, outcome)
        )
        await response.prepare(request)
        reason = "ok"
        try:
            async for chunk in upstream.content.iter_any():
                await self._write_to_client(response, chunk)
        except _ClientStalled:
            # It stopped reading: without this the stream held its concurrency slot for as
            # long as the client liked (a few such clients locked everyone else out).
            reason = "client-timeout"
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            # Before the upstream's errors: a client that left surfaces as ConnectionResetError
            # (aiohttp's ClientConnectionResetError is also a ClientError, and was once taken
            # for an upstream failure), or as a plain ConnectionError when it left while the
            # gateway waited for it to read; either went unaudited.
            reason = "client-gone"
        except (TimeoutError, aiohttp.ClientError):
            # The status line is gone; end this stream with an error event, not the process.
            reason = "upstream-timeout-mid-stream"
            error = json.dumps(error_body(reason, "the stream broke off"))
            with contextlib.suppress(ConnectionResetError):
                await response.write(f"event: error\ndata: {error}\n\n".encode())
        await self._record(trace, upstream.status, reason)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _write_to_client(self, response: web.StreamResponse, chunk: bytes) -> None:
        try:
            async with asyncio.timeout(self.config.gateway.client_timeout_s):
                await response.write(chunk)
        except TimeoutError:
            raise _ClientStalled from None

    def _response_headers(
        self, upstream: aiohttp.ClientResponse, trace: _Trace, outcome: PolicyOutcome
    ) -> dict[str, str]:
        headers = {
            name: value
            for name, value in upstream.headers.items()
            if name.lower() in FORWARDED_RESPONSE_HEADERS
        }
        headers["X-Request-Id"] = trace.request_id
        if outcome.annotate and outcome.counts:
            found = sorted({c.type for c in outcome.counts})
            headers["X-Haechi-Detections"] = ",".join(found)
            headers["X-Haechi-Mode"] = outcome.mode.value
        return headers

    # --- audit --------------------------------------------------------------------------------

    async def _record(self, trace: _Trace, status: int, reason: str) -> None:
        """One audit line per request (after the audit write, the client may get its answer)."""
        outcome = trace.outcome
        counts: dict[str, int] = {}
        actions: dict[str, str] = {}
        for count in outcome.counts if outcome else ():
            counts[count.type] = counts.get(count.type, 0) + count.count
            actions[count.type] = count.action.value if count.applied else "allow"
        fields: dict[str, Any] = {
            "request_id": trace.request_id,
            "route": trace.route if trace.route in (*ROUTES, DETOKENIZE_ROUTE) else "/unknown",
            "method": trace.method if trace.method in AUDITED_METHODS else "OTHER",
            "status": status,
            "reason": reason,
            "mode": (outcome.mode if outcome else self.policy.mode_for(trace.route)).value,
            "latency_ms": round((time.perf_counter() - trace.started) * 1000, 3),
            "stream": trace.stream,
        }
        optional = {
            "principal": self.principal_hash(trace.principal) if trace.principal else "",
            "model": trace.model if _MODEL.fullmatch(trace.model) else "",
            "detections": counts,
            "actions": actions,
            "upstream_status": trace.upstream_status,
            "plugins": list(dict.fromkeys(trace.plugins)),
            **response_audit_fields(trace.response),
        }
        fields.update({k: v for k, v in optional.items() if v})
        if self.metrics is not None:
            self.metrics.observe(fields)
        await self.audit.append("request", **fields)


DETOKENIZE_ROUTE = "/haechi/v1/detokenize"
DETOKENIZE_SCOPE = "detokenize"
MAX_DETOKENIZE = 100
_TOKEN_TYPE = re.compile(r"[a-z0-9_]{1,32}")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_./-]{0,127}")
_REQUEST_ID = re.compile(r"[0-9a-f][0-9a-f-]{7,63}")
# A \uD800-\uDFFF escape or the UTF-8 bytes of a surrogate (a quick test before the real one).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(body: Any) -> bool:
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _codings(request: web.Request, header: str) -> list[str]:
    """The codings of every ``header`` line, lowercased, in order: a client may split them
    over several lines, and aiohttp acts on only one of them."""
    items = ",".join(request.headers.getall(header, ())).lower().split(",")
    return [item.strip() for item in items if item.strip()]


async def _defer_expect(request: web.Request) -> None:
    """aiohttp answers ``Expect: 100-continue`` before any handler runs, which invited a body
    before authentication; the pipeline answers it instead (:func:`_continue`)."""


async def _continue(request: web.Request) -> None:
    """Ask for the body, once auth, the rate limit and its declared size let it come."""
    expect = request.headers.get("Expect")
    if expect is None:
        return
    if expect.strip().lower() != "100-continue":
        raise GatewayError(417, "expectation-failed", "only Expect: 100-continue is supported")
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the answer


def _request_id(request: web.Request) -> str:
    """The client's X-Request-Id when it is a plain id, else a fresh one (never echo junk)."""
    given = request.headers.get("x-request-id", "").lower()
    return given if _REQUEST_ID.fullmatch(given) else new_request_id()


def _blocked_message(outcome: PolicyOutcome) -> str:
    kinds = sorted({s.type for s in outcome.spans if s.action.value == "block"})
    return "the request was blocked: it contains " + ", ".join(
        kinds or ["data that must not leave"]
    )


def _error(exc: GatewayError, request_id: str) -> web.Response:
    headers = {"X-Request-Id": request_id, **exc.headers}
    return web.json_response(
        error_body(exc.reason, exc.message), status=exc.status, headers=headers
    )
