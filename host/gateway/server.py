"""Assembling and running a gateway worker: audit, keys, vault, plugins, policy, listeners.

Rules this module owns:

* a worker serves only after every part started: the audit log opened, the key store and
  vault opened, the policy compiled, and every configured plugin verified and warm; any
  failure stops the start with an error naming the part (and, for plugins, an audit event);
* the public listener serves only the model routes; the admin listener (``/healthz``,
  ``/readyz``, ``/metrics``, ``/status``) binds loopback and is a different socket;
* ``HAECHI_POLICY__MODE`` is applied as a mode *override* that wins over route profiles (the
  original let a route's mode silently beat the operator's override);
* SIGHUP re-applies the trust state file to the running plugins (``haechi trust apply``).

Example::

    runtime = await start_runtime(load_config(Path("haechi.toml")))
    await runtime.serve()            # until SIGTERM
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from haechi.host import __version__
from haechi.host.audit import AuditConfig, AuditLog, principal_hash
from haechi.host.config import Config
from haechi.host.keys import KeyStore, PersistentKeyRing
from haechi.host.sandbox import SandboxPolicy
from haechi.host.vault import SqliteVault
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .adapters import ROUTES
from .app import UPSTREAM_KEY_SECRETS, Gateway
from .connections import PublicSite, ensure_file_limit
from .plugins import PluginEvent, PluginHost, PluginLoadError
from .policy import load_policy

__all__ = ["Metrics", "Runtime", "StartError", "start_runtime"]

PRINCIPAL_KEY_FILE = "audit-principal.key"
QUIET_EVENTS = frozenset({"spawn", "load-accepted", "swapped", "retire", "breaker-closed"})
log = logging.getLogger("haechi.gateway")


class StartError(Exception):
    """The gateway cannot start; ``part`` names what failed, the message says what to do."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


class Metrics:
    """Prometheus metrics of one worker, in their own registry (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "haechi_requests_total",
            "Requests by route, status and reason",
            ["route", "status", "reason"],
            registry=self.registry,
        )
        self.detections = Counter(
            "haechi_detections_total",
            "Detections by type and the action taken",
            ["type", "action"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "haechi_request_seconds",
            "Time from request to answer (or stream end)",
            ["route"],
            registry=self.registry,
        )
        self.connections_open = Gauge(
            "haechi_connections_open",
            "Client connections the public listener holds (one whose client left counts until "
            "its request ends)",
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "haechi_connections_refused_total",
            "Client connections refused for gateway.max_connections",
            registry=self.registry,
        )
        self.plugin_events = Counter(
            "haechi_plugin_events_total",
            "Plugin lifecycle events",
            ["plugin", "event"],
            registry=self.registry,
        )

    def observe(self, fields: Mapping[str, Any]) -> None:
        route = str(fields["route"])
        self.requests.labels(route, str(fields["status"]), str(fields["reason"])).inc()
        self.latency.labels(route).observe(float(fields["latency_ms"]) / 1000)
        actions = fields.get("actions") or {}
        for kind, count in (fields.get("detections") or {}).items():
            self.detections.labels(kind, actions.get(kind, "allow")).inc(count)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


@dataclass
class Runtime:
    config: Config
    audit: AuditLog
    plugins: PluginHost
    gateway: Gateway
    vault: SqliteVault
    keys: PersistentKeyRing
    metrics: Metrics
    background: _Background
    cpu: int | None = None
    _runners: list[web.AppRunner] = field(default_factory=list)
    ready: bool = False

    # --- listeners ---------------------------------------------------------------------------

    async def listen(self, *, admin: bool = True) -> tuple[int, int | None]:
        """Bind the public (SO_REUSEPORT) and, if asked, the admin listener; return ports."""
        gateway = self.config.gateway
        ensure_file_limit(gateway)
        public = web.AppRunner(self.gateway.public_app(), access_log=None, shutdown_timeout=5)
        await public.setup()
        site = PublicSite(
            public,
            gateway,
            on_refusal=self.gateway.record_refusal,
            on_full=self.metrics.connections_refused.inc,
            ssl_context=_tls(self.config),
        )
        await site.start()
        self.metrics.connections_open.set_function(lambda: site.open_connections)
        self._runners.append(public)
        admin_port = None
        if admin:
            runner = web.AppRunner(self.admin_app(), access_log=None)
            await runner.setup()
            admin_site = web.TCPSite(
                runner, self.config.admin.listen.host, self.config.admin.listen.port
            )
            await admin_site.start()
            self._runners.append(runner)
            admin_port = _port(admin_site)
        self.ready = True
        return site.port, admin_port

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthy)
        app.router.add_get("/readyz", self._ready)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        return app

    async def _healthy(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _ready(self, request: web.Request) -> web.Response:
        loaded = {s.id for s in self.plugins.status()}
        missing = sorted(set(self.plugins.configured) - loaded)
        ok = self.ready and not missing
        return web.json_response(
            {"ready": ok, "missing_plugins": missing}, status=200 if ok else 503
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    def status(self) -> dict[str, Any]:
        head = self.audit.head
        return {
            "version": __version__,
            "pid": os.getpid(),
            "cpu": self.cpu,
            "trust_version": self.plugins.trust.version if self.plugins.trust else None,
            "plugins": [
                {
                    "id": s.id,
                    "version": s.version,
                    "kind": s.kind,
                    "digest": s.digest,
                    "breaker": s.breaker,
                    "idle_children": s.idle_children,
                    "in_flight": s.in_flight,
                    "layers": dict(s.layers),
                }
                for s in self.plugins.status()
            ],
            "keys": [_key_status(self.keys.store, name) for name in self.keys.store.names()],
            "audit": {"path": str(self.config.audit.path), "seq": head.seq, "hash": head.hash},
            "vault_tokens": self.vault.count(),
        }

    # --- running -----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Until SIGTERM or SIGINT; SIGHUP re-applies the trust state."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        await stop.wait()
        await self.close()

    def _on_sighup(self) -> None:
        self.background.spawn(self.apply_trust())

    async def apply_trust(self) -> None:
        try:
            change = await self.plugins.apply_trust(self.config.plugins.trust)
        except PluginLoadError as exc:
            await self.audit.append("config", event="refused", reason=_code(exc.reason))
            log.error("trust state refused", extra={"reason": exc.reason})
            return
        await self.audit.append("config", event="reloaded", reason="trust-applied")
        log.info(
            "trust applied",
            extra={"version": change.version, "revoked": change.revoked, "swapped": change.swapped},
        )

    async def close(self) -> None:
        self.ready = False
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.plugins.close()
        await self.background.drain()  # lifecycle events of the close itself, then the stop
        await self.audit.append("stop", pid=os.getpid(), reason="signal")
        await self.audit.aclose()
        self.vault.close()
        self.keys.close()


async def start_runtime(
    config: Config,
    *,
    secrets_override: Mapping[str, str] | None = None,
    cpu: int | None = None,
) -> Runtime:
    """Open every part in order; any failure closes what was opened and raises StartError."""
    audit = await _open_audit(config)
    opened: list[Any] = []
    background = _Background()
    metrics = Metrics()
    try:
        warnings = _KeyWarnings(audit, background)
        keys = PersistentKeyRing(KeyStore(config.keys.dir), on_warning=warnings)
        opened.append(keys)
        vault = SqliteVault(config.vault.path)
        opened.append(vault)
        secret_values = dict(secrets_override) if secrets_override is not None else _secrets(config)
        policy = _policy(config)
        sandbox = SandboxPolicy(
            mode=config.plugins.sandbox_mode, cpus=frozenset({cpu}) if cpu is not None else None
        )
        plugins = PluginHost(
            config.plugins,
            host_version=__version__,
            secrets=secret_values,
            keys=keys,
            on_event=_PluginEventRelay(audit, metrics, background),
            sandbox=sandbox,
        )
        try:
            await plugins.start()
        finally:
            await background.drain()  # the load events are in the chain before we go on
        key = _principal_key(config.keys.dir)
        gateway = Gateway(
            config,
            plugins,
            policy,
            audit,
            vault,
            upstream_keys={
                p: secret_values[s] for p, s in UPSTREAM_KEY_SECRETS.items() if s in secret_values
            },
            metrics=metrics,
            principal_hash=lambda principal: principal_hash(key, principal),
        )
    except PluginLoadError as exc:
        await _close_all(audit, opened)
        raise StartError(f"plugin {exc.plugin}", f"{exc.reason}: {exc.message}") from None
    except StartError:
        await _close_all(audit, opened)
        raise
    except Exception as exc:
        await _close_all(audit, opened)
        raise StartError(type(exc).__name__, str(exc)) from None
    await audit.append("config", event="loaded", reason="started")
    return Runtime(config, audit, plugins, gateway, vault, keys, metrics, background, cpu)


# --- parts ------------------------------------------------------------------------------------


async def _open_audit(config: Config) -> AuditLog:
    try:
        config.audit.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return await AuditLog.open(
            AuditConfig(
                path=config.audit.path,
                # No waiting for company: under load, appends that arrive while a batch is
                # being written form the next batch anyway; at low load a request would only
                # wait (2 ms of a ~5 ms request, bench/results/gateway.md).
                window_ms=0.0,
                fsync=config.audit.fsync,
                rotate_bytes=config.audit.rotate_bytes,
            )
        )
    except Exception as exc:
        raise StartError("audit", f"cannot open {config.audit.path}: {exc}") from None


def _secrets(config: Config) -> dict[str, str]:
    from haechi.host.cli._args import UsageError
    from haechi.host.cli.call import load_secrets

    try:
        return load_secrets(config.plugins.secrets)
    except UsageError as exc:
        raise StartError("plugins.secrets", str(exc).removeprefix("--secrets: ")) from None


def _policy(config: Config) -> Any:
    from .policy import PolicyConfigError

    table = dict(config.policy)
    override = None
    if "policy.mode" in config.from_environment:
        override = table.pop("mode")  # an override beats route profiles, not just the default
    try:
        return load_policy(table, mode_override=override, known_routes=tuple(ROUTES))
    except PolicyConfigError as exc:
        raise StartError("policy", str(exc)) from None


def _principal_key(directory: Path) -> bytes:
    """The audit's principal-hash key: made once (race-free across workers), then read."""
    path = directory / PRINCIPAL_KEY_FILE
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    text = path.read_text().strip()
    if len(text) != 64:
        raise StartError("keys", f"{path} is not a 32-byte hex key; remove it to make a new one")
    return bytes.fromhex(text)


class _Background:
    """Audit writes started by synchronous callbacks (plugin events, key warnings, SIGHUP);
    drained before the audit log closes, so none is lost at shutdown."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the event loop (a tool sealing): nothing to run on
            coroutine.close()
            return
        task = loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


class _PluginEventRelay:
    """Plugin lifecycle events into the audit chain (the callback is sync; the write is not)."""

    def __init__(self, audit: AuditLog, metrics: Metrics, background: _Background) -> None:
        self.audit, self.metrics, self.background = audit, metrics, background

    def __call__(self, event: PluginEvent) -> None:
        self.background.spawn(self.write(event))

    async def write(self, event: PluginEvent) -> None:
        self.metrics.plugin_events.labels(event.plugin, event.kind).inc()
        level = logging.INFO if event.kind in QUIET_EVENTS else logging.WARNING
        log.log(
            level, "plugin %s", event.kind, extra={"plugin": event.plugin, "reason": event.reason}
        )
        if event.plugin == "*":  # the trust state itself
            await self.audit.append("config", event="refused", reason=_code(event.reason))
            return
        fields: dict[str, Any] = {"plugin": event.plugin, "event": event.kind}
        if event.version:
            fields["version"] = event.version
        if event.reason:
            fields["reason"] = _code(event.reason)
        pid = event.detail.get("pid")
        if isinstance(pid, int):
            fields["pid"] = pid
        await self.audit.append("plugin", **fields)


class _KeyWarnings:
    """Half a key's nonce budget used: an audit event and a log line, once per version."""

    def __init__(self, audit: AuditLog, background: _Background) -> None:
        self.audit, self.background = audit, background

    def __call__(self, name: str, seals: int) -> None:
        log.warning("key budget half used", extra={"key": name, "seals": seals})
        self.background.spawn(
            self.audit.append("key", key=name, event="budget-warning", seals=seals)
        )


def _code(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in ":_.-" else "-" for c in text.lower())[:64]
    return cleaned or "unknown"


def _key_status(store: KeyStore, name: str) -> dict[str, Any]:
    status = store.status(name)
    return {
        "name": name,
        "current": status.current,
        "versions": [
            {
                "version": v.version,
                "used": v.used,
                "reserved": v.reserved,
                "budget": v.budget,
                "warning": v.warning,
                "exhausted": v.exhausted,
            }
            for v in status.versions
        ],
    }


async def _close_all(audit: AuditLog, opened: list[Any]) -> None:
    for part in reversed(opened):
        with contextlib.suppress(Exception):
            part.close()
    await audit.aclose()


def _tls(config: Config) -> Any:
    gateway = config.gateway
    if gateway.tls_cert is None or gateway.tls_key is None:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(gateway.tls_cert, gateway.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise StartError("gateway.tls_cert", f"cannot load the certificate or key: {exc}") from None
    return context


def _port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here
    assert server is not None
    return int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
