"""The gateway's plugins: verified at start, run in sandboxes, swapped or revoked while serving.

Rules this module owns:

* a plugin serves only after its bundle verified against the operator's trust state (DESIGN §2)
  and its warm pool started; any configured plugin that fails either stops the gateway from
  starting (fail closed), with a lifecycle event naming the plugin and the reason;
* auth plugins are asked in the configured order; the first ``allow`` wins; when none allows,
  the request is denied with the first plugin's reason, and when a plugin *failed* (timeout,
  crash, refusal) and none allowed, the outcome is ``auth-unavailable``, never an allow;
* filter plugins run in parallel on the same segments; a failed filter fails the request
  (``filter-unavailable``), since a request that was not inspected must not leave;
* ``apply_trust`` verifies every loaded plugin again against a newer trust state (which must
  pass the state update rule): a plugin it refuses is drained (calls in flight finish, at most
  5 s) and stopped; a plugin whose bundle on disk changed and verifies is started beside the
  old one and swapped in, and the old one is drained, so no call in flight fails.

Example::

    host = PluginHost(config.plugins, host_version=__version__, on_event=audit_event)
    await host.start()
    outcome = await host.authenticate(RequestView("POST", "/v1/chat", headers))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from haechi.host.config import PluginsSection
from haechi.host.sandbox import SandboxError, SandboxPolicy
from haechi.host.sandbox.broker import Broker, KeyRing, KVStore
from haechi.host.sandbox.supervisor import LifecycleEvent, PluginSupervisor, SupervisorPolicy
from haechi.host.sandbox.views import RequestView, arguments_for
from haechi.sdk import Decision, Detection
from haechi.trust import Bundle, TrustState, load_trust, verify_directory
from haechi.trust.state import (
    TrustStateError,
    check_update,
    is_signed_state,
    read_state_bytes,
    read_state_envelope,
)

__all__ = [
    "AuthOutcome",
    "PluginEvent",
    "PluginHost",
    "PluginLoadError",
    "PluginStatus",
    "TrustChange",
]

DRAIN_SECONDS = 5.0


class PluginLoadError(Exception):
    """A configured plugin cannot serve; ``plugin`` and ``reason`` say which and why."""

    def __init__(self, plugin: str, reason: str, message: str) -> None:
        super().__init__(f"plugin {plugin}: {reason}: {message}")
        self.plugin = plugin
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PluginEvent:
    """A lifecycle event for the audit chain: load-accepted, load-refused, revoked, swapped,
    or a sandbox event (spawn, failure, kill, breaker-open, quarantine, ...)."""

    kind: str
    plugin: str
    version: str = ""
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthOutcome:
    allow: bool
    reason: str  # "ok", a plugin's deny reason, or auth-unavailable / no-auth-plugin
    principal: str = ""
    scopes: tuple[str, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class PluginStatus:
    id: str
    version: str
    kind: str
    digest: str
    breaker: str
    idle_children: int
    in_flight: int
    layers: Mapping[str, str]


@dataclass(frozen=True)
class TrustChange:
    version: int | None
    revoked: tuple[str, ...] = ()
    swapped: tuple[str, ...] = ()


@dataclass
class _Loaded:
    bundle: Bundle
    supervisor: PluginSupervisor

    @property
    def id(self) -> str:
        return self.bundle.manifest.id


class PluginHost:
    """Owns every configured plugin's verified bundle and supervisor."""

    def __init__(
        self,
        config: PluginsSection,
        *,
        host_version: str,
        secrets: Mapping[str, str] | None = None,
        keys: Any = None,
        kv: KVStore | None = None,
        on_event: Callable[[PluginEvent], None] | None = None,
        sandbox: SandboxPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.host_version = host_version
        self.secrets = dict(secrets or {})
        self.keys = keys if keys is not None else KeyRing()
        self.kv = kv or KVStore()
        self._on_event = on_event or (lambda event: None)
        self.sandbox = sandbox or SandboxPolicy(mode=config.sandbox_mode)
        self._clock = clock
        self.trust: TrustState | None = None
        self._plugins: dict[str, _Loaded] = {}

    # --- start and stop --------------------------------------------------------------------

    @property
    def configured(self) -> tuple[str, ...]:
        crypto = (self.config.crypto,) if self.config.crypto else ()
        return (*self.config.auth, *self.config.filters, *crypto)

    async def start(self) -> None:
        """Verify and start every configured plugin; on any failure stop those started."""
        self.trust = self._load_trust(self.config.trust)
        try:
            for plugin_id in dict.fromkeys(self.configured):
                self._plugins[plugin_id] = await self._load(plugin_id, self.trust)
        except PluginLoadError:
            await self.close()
            raise

    async def close(self) -> None:
        loaded, self._plugins = list(self._plugins.values()), {}
        await asyncio.gather(*(entry.supervisor.close() for entry in loaded))

    def _load_trust(self, path: Path) -> TrustState:
        try:
            return load_trust(path, now=self._clock())
        except TrustStateError as exc:
            raise PluginLoadError("*", exc.code, str(exc)) from None

    async def _load(self, plugin_id: str, state: TrustState) -> _Loaded:
        bundle = self._verified(plugin_id, state)
        supervisor = self._supervisor(bundle)
        try:
            await supervisor.start()
        except SandboxError as exc:
            self._emit("load-refused", plugin_id, bundle.manifest.version, exc.reason)
            raise PluginLoadError(plugin_id, exc.reason, exc.message) from None
        self._emit("load-accepted", plugin_id, bundle.manifest.version, "accepted")
        return _Loaded(bundle, supervisor)

    def _verified(self, plugin_id: str, state: TrustState) -> Bundle:
        directory = self.config.dir / plugin_id
        verdict = verify_directory(
            directory, state, host_version=self.host_version, now=self._clock()
        )
        if not verdict.accepted or verdict.bundle is None:
            self._emit("load-refused", plugin_id, "", verdict.reason.value)
            raise PluginLoadError(plugin_id, verdict.reason.value, verdict.message)
        if verdict.bundle.manifest.id != plugin_id:
            self._emit("load-refused", plugin_id, "", "id-mismatch")
            raise PluginLoadError(
                plugin_id, "id-mismatch", f"{directory} holds plugin {verdict.bundle.manifest.id}"
            )
        return verdict.bundle

    def _supervisor(self, bundle: Bundle) -> PluginSupervisor:
        broker = Broker(
            bundle.manifest,
            secrets=self.secrets,
            kv=self.kv,
            keys=self.keys,
            allow_networks=self.config.allow_networks,
        )
        plugin = bundle.manifest.id

        def relay(event: LifecycleEvent) -> None:
            detail = {k: v for k, v in event.detail.items() if k in ("pid", "reason", "how")}
            self._emit(
                event.kind, plugin, bundle.manifest.version, str(detail.get("reason", "")), detail
            )

        return PluginSupervisor(
            bundle,
            SupervisorPolicy(pool_size=self.config.pool_size),
            self.sandbox,
            on_event=relay,
            broker=broker,
        )

    def _emit(
        self,
        kind: str,
        plugin: str,
        version: str,
        reason: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self._on_event(PluginEvent(kind, plugin, version, reason, dict(detail or {})))

    # --- calls ------------------------------------------------------------------------------

    def _supervisor_of(self, plugin_id: str) -> PluginSupervisor:
        entry = self._plugins.get(plugin_id)
        if entry is None:
            raise SandboxError("closed", f"plugin {plugin_id} is not loaded")
        return entry.supervisor

    async def authenticate(self, view: RequestView) -> AuthOutcome:
        if not self.config.auth:
            return AuthOutcome(False, "no-auth-plugin")
        first_denial: AuthOutcome | None = None
        failed = False
        for plugin_id in self.config.auth:
            try:
                supervisor = self._supervisor_of(plugin_id)
                args = arguments_for(supervisor.bundle.manifest, "authenticate", view)
                decision = Decision.from_wire(await supervisor.call("authenticate", args))
            except SandboxError:
                failed = True
                continue
            if decision.allow:
                return AuthOutcome(True, "ok", decision.principal or "", decision.scopes, plugin_id)
            first_denial = first_denial or AuthOutcome(
                False, decision.reason or "denied", plugin=plugin_id
            )
        if failed:
            return AuthOutcome(False, "auth-unavailable")
        assert first_denial is not None
        return first_denial

    async def inspect(self, view: RequestView) -> list[tuple[str, Detection]]:
        """Every filter on the request's segments, in parallel; a failed filter raises."""
        results = await asyncio.gather(
            *(self._inspect_one(plugin_id, view) for plugin_id in self.config.filters)
        )
        return [item for found in results for item in found]

    async def _inspect_one(self, plugin_id: str, view: RequestView) -> list[tuple[str, Detection]]:
        supervisor = self._supervisor_of(plugin_id)
        args = arguments_for(supervisor.bundle.manifest, "inspect", view)
        wire = await supervisor.call("inspect", args)
        return [(plugin_id, Detection.from_wire(item)) for item in wire]

    async def encrypt(self, plaintext: bytes, fields: Mapping[str, Any]) -> bytes:
        result = await self._supervisor_of(self.config.crypto).call(
            "encrypt", [plaintext, dict(fields)]
        )
        return bytes(result)

    async def decrypt(self, sealed: bytes, fields: Mapping[str, Any]) -> bytes:
        result = await self._supervisor_of(self.config.crypto).call(
            "decrypt", [sealed, dict(fields)]
        )
        return bytes(result)

    # --- live trust ------------------------------------------------------------------------

    async def apply_trust(self, path: Path) -> TrustChange:
        """Load a newer trust state and apply it to every loaded plugin (see the rules)."""
        state = self._load_trust(path)
        if self.trust is not None:
            try:
                data = read_state_bytes(path)
                envelope = read_state_envelope(data, path) if is_signed_state(data) else None
                check_update(self.trust, state, envelope)
            except TrustStateError as exc:
                raise PluginLoadError("*", exc.code, str(exc)) from None
        outcomes = {
            plugin_id: await self._reapply(plugin_id, entry, state)
            for plugin_id, entry in list(self._plugins.items())
        }
        revoked = tuple(p for p, outcome in outcomes.items() if outcome == "revoked")
        swapped = tuple(p for p, outcome in outcomes.items() if outcome == "swapped")
        self.trust = state
        return TrustChange(state.version, revoked, swapped)

    async def _reapply(self, plugin_id: str, entry: _Loaded, state: TrustState) -> str:
        try:
            bundle = self._verified(plugin_id, state)
        except PluginLoadError as exc:
            del self._plugins[plugin_id]
            finished = await entry.supervisor.drain(DRAIN_SECONDS)
            self._emit(
                "revoked",
                plugin_id,
                entry.bundle.manifest.version,
                exc.reason,
                {"drained": finished},
            )
            return "revoked"
        if bundle.digest == entry.bundle.digest:
            return "unchanged"
        replacement = self._supervisor(bundle)
        try:
            await replacement.start()
        except SandboxError as exc:
            self._emit("load-refused", plugin_id, bundle.manifest.version, exc.reason)
            return "unchanged"  # keep serving the version that works
        self._plugins[plugin_id] = _Loaded(bundle, replacement)
        await entry.supervisor.drain(DRAIN_SECONDS)
        self._emit(
            "swapped",
            plugin_id,
            bundle.manifest.version,
            "accepted",
            {"previous": entry.bundle.manifest.version},
        )
        return "swapped"

    # --- status -----------------------------------------------------------------------------

    def status(self) -> list[PluginStatus]:
        return [
            PluginStatus(
                id=entry.id,
                version=entry.bundle.manifest.version,
                kind=entry.bundle.manifest.kind,
                digest=entry.bundle.digest,
                breaker=entry.supervisor.breaker_state,
                idle_children=entry.supervisor.idle_children,
                in_flight=entry.supervisor.in_flight,
                layers=entry.supervisor.layers,
            )
            for entry in self._plugins.values()
        ]
