"""A plugin bundle loaded into the real sandbox, callable from synchronous code.

Authors' tests, ``haechi plugin test`` and the conformance vectors all use this one harness, so
what they exercise is what the gateway runs: the same :class:`PluginSupervisor` (setup hook,
answer checks, lifecycle), the same broker (secrets, kv, keys with use counting, the SSRF-guarded
fetch) and the same data minimisation (:func:`arguments_for`). The event loop runs in a
background thread so test code stays plain and synchronous.

Example::

    with PluginHarness(read_bundle("plugins/pii-filter")) as plugin:
        plugin.call("inspect", [["mail bob@example.com"]])
"""

from __future__ import annotations

import asyncio
import secrets as _secrets
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from haechi.host.sandbox import SandboxError, SandboxPolicy
from haechi.host.sandbox.broker import Broker, KeyRing
from haechi.host.sandbox.broker.keys import NONCE_BUDGET
from haechi.host.sandbox.supervisor import LifecycleEvent, PluginSupervisor, SupervisorPolicy
from haechi.host.sandbox.views import RequestView, arguments_for
from haechi.trust import Bundle

__all__ = ["PluginHarness"]

START_TIMEOUT = 30.0


class PluginHarness:
    """One bundle, one sandboxed child, a broker with the secrets and keys a test gives it.

    ``keys`` maps a key name to 32 bytes; every ``keys:<name>`` the manifest declares and
    ``keys`` does not name gets fresh random material, so a crypto plugin can always run.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        secrets: Mapping[str, str] | None = None,
        keys: Mapping[str, bytes] | None = None,
        key_budget: int = NONCE_BUDGET,
        allow_networks: tuple[str, ...] = (),
        mode: str = "strict",
        call_timeout: float | None = None,
    ) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.events: list[LifecycleEvent] = []
        self.keys = KeyRing(budget=key_budget)
        given = dict(keys or {})
        for capability in self.manifest.capabilities:
            if capability.startswith("keys:"):
                name = capability.removeprefix("keys:")
                self.keys.add(name, given.pop(name, None) or _secrets.token_bytes(32))
        for name, material in given.items():  # undeclared: the broker will refuse its use
            self.keys.add(name, material)
        self.broker = Broker(
            self.manifest,
            secrets=dict(secrets or {}),
            keys=self.keys,
            allow_networks=allow_networks,
        )
        self._supervisor = PluginSupervisor(
            bundle,
            SupervisorPolicy(pool_size=1, call_timeout=call_timeout),
            SandboxPolicy(mode=mode),
            on_event=self.events.append,
            broker=self.broker,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PluginHarness:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="haechi-harness", daemon=True)
        self._thread.start()
        ready.wait()
        # A setup hook may take up to the manifest's timeout, after a spawn of up to its own.
        limit = START_TIMEOUT + self.manifest.limits.timeout_ms / 1000
        try:
            self._run(self._supervisor.start(), limit)
        except TimeoutError:
            self.close()
            raise SandboxError(
                "spawn-failed", f"the plugin did not start and set up within {limit:g} s"
            ) from None
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        try:
            asyncio.run_coroutine_threadsafe(self._supervisor.close(), loop).result(START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(START_TIMEOUT)
            loop.close()

    def __enter__(self) -> PluginHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls -------------------------------------------------------------------------------

    def call(self, hook: str, args: list[Any]) -> Any:
        """One call through the supervisor; a refusal raises ``SandboxError`` with its reason."""
        return self._run(self._supervisor.call(hook, args), None)

    def request_arguments(self, hook: str, view: RequestView) -> list[Any]:
        """What the gateway would send this plugin for ``view`` (only what it is granted)."""
        return arguments_for(self.manifest, hook, view)

    def _run(self, coroutine: Any, timeout: float | None) -> Any:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the harness is not started; use it as a context manager")
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # stop the coroutine too, not only our wait for it
            raise
