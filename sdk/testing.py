"""pytest support for plugin authors: load your bundle into the real sandbox and call it.

The plugin runs exactly as the gateway runs it: verified-bytes loading, every confinement layer
(strict by default), the ``setup`` hook, the broker for ``ctx`` (secrets you pass, fresh random
keys for every ``keys:<name>`` you declare, ``state:kv``, the SSRF-guarded ``fetch``), data
minimisation, and the host's check of every answer. Nothing is mocked.

This is the one SDK module that drives the host (``haechi.host``); plugin code never imports
it, and it is not available inside the sandbox.

Example, a ``test_plugin.py`` inside a filter bundle::

    from haechi.sdk.testing import plugin_fixture

    plugin = plugin_fixture()              # the bundle is this test file's directory

    def test_finds_employee_ids(plugin):
        [found] = plugin.inspect(["ask E-123456"])
        assert (found.type, found.start, found.end) == ("employee_id", 4, 12)

and for an auth plugin whose manifest declares ``secrets:read:tokens``::

    import hashlib, secrets
    TOKEN = secrets.token_urlsafe(24)      # made at run time: no credential in the source
    plugin = plugin_fixture(secrets={"tokens": hashlib.sha256(TOKEN.encode()).hexdigest()})

    def test_accepts_its_token(plugin):
        assert plugin.authenticate(f"Bearer {TOKEN}").allow

A call the host refuses raises :class:`PluginCallError`; its ``reason`` is the stable code
(``plugin-error`` when the plugin raised, ``timeout``, ``crashed``, ``invalid-result``, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .models import Decision, Detection

__all__ = ["PluginCallError", "PluginProxy", "load", "plugin_fixture"]


class PluginCallError(Exception):
    """The host refused or failed a call; ``reason`` is the stable code, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class PluginProxy:
    """Typed calls into a sandboxed plugin; each method is one real call over IPC."""

    def __init__(self, harness: Any) -> None:
        self._harness = harness
        self.manifest = harness.manifest

    @property
    def events(self) -> list[Any]:
        """Lifecycle events so far (spawn, failure, kill, ...)."""
        return self._harness.events

    def key_uses(self, name: str) -> int:
        """How many times the plugin sealed with ``keys:<name>`` (the nonce budget's count)."""
        return int(self._harness.keys.uses(name))

    def call(self, hook: str, *args: Any) -> Any:
        """Any hook, positional arguments as the host sends them; returns the wire answer."""
        from haechi.host.sandbox import SandboxError

        try:
            return self._harness.call(hook, list(args))
        except SandboxError as exc:
            raise PluginCallError(exc.reason, exc.message) from None

    def inspect(self, segments: list[str]) -> list[Detection]:
        view = _view(segments=tuple(segments))
        wire = self.call("inspect", *self._harness.request_arguments("inspect", view))
        return [Detection.from_wire(item) for item in wire]

    def authenticate(
        self,
        authorization: str | None = None,
        route: str = "/v1/chat/completions",
        method: str = "POST",
    ) -> Decision:
        headers = {} if authorization is None else {"authorization": authorization}
        view = _view(method=method, route=route, headers=headers)
        wire = self.call("authenticate", *self._harness.request_arguments("authenticate", view))
        return Decision.from_wire(wire)

    def encrypt(self, plaintext: bytes, fields: Mapping[str, Any] | None = None) -> bytes:
        """The sealed value as the vault would store it (parse it with ``Sealed.from_bytes``)."""
        return bytes(self.call("encrypt", plaintext, dict(fields or {})))

    def decrypt(self, sealed: bytes, fields: Mapping[str, Any] | None = None) -> bytes:
        return bytes(self.call("decrypt", sealed, dict(fields or {})))


def _view(**fields: Any) -> Any:
    from haechi.host.sandbox.views import RequestView

    fields.setdefault("method", "POST")
    fields.setdefault("route", "/v1/chat/completions")
    return RequestView(**fields)


@contextlib.contextmanager
def load(
    directory: str | Path,
    *,
    secrets: Mapping[str, str] | None = None,
    keys: Mapping[str, bytes] | None = None,
    key_budget: int | None = None,
    allow_networks: tuple[str, ...] = (),
    mode: str = "strict",
) -> Iterator[PluginProxy]:
    """Load the bundle in ``directory`` into the sandbox for the ``with`` block.

    The bundle is read as it is on disk, signed or not: authors test before they sign.
    ``allow_networks`` opens address ranges the SSRF guard refuses by default (``127.0.0.0/8``
    for a test server on loopback), as an operator's allowlist would.
    """
    from haechi.host.authoring.harness import PluginHarness
    from haechi.host.sandbox.broker.keys import NONCE_BUDGET
    from haechi.trust import read_bundle

    harness = PluginHarness(
        read_bundle(directory),
        secrets=secrets,
        keys=keys,
        key_budget=NONCE_BUDGET if key_budget is None else key_budget,
        allow_networks=allow_networks,
        mode=mode,
    )
    from haechi.host.sandbox import SandboxError

    try:
        harness.start()
    except SandboxError as exc:
        raise PluginCallError(exc.reason, exc.message) from None
    try:
        yield PluginProxy(harness)
    finally:
        harness.close()


def plugin_fixture(
    directory: str | Path | None = None,
    *,
    name: str = "plugin",
    scope: str = "module",
    **options: Any,
) -> Callable[..., Any]:
    """A pytest fixture called ``name`` yielding a :class:`PluginProxy` for a bundle (default:
    the directory of the test module that uses it); ``options`` are those of :func:`load`."""
    import pytest

    @pytest.fixture(scope=scope, name=name)  # type: ignore[misc]
    def plugin(request: Any) -> Iterator[PluginProxy]:
        root = Path(directory) if directory is not None else Path(request.path).parent
        with load(root, **options) as proxy:
            yield proxy

    return plugin
