"""The hook specifications: the contract between a plugin and the host, as pluggy hookspecs.

One class per plugin kind (and one for the lifecycle hooks every kind may offer). A plugin
implements the hooks of its manifest's ``kind`` as module-level functions, marked with
:func:`haechi.sdk.hookimpl` or simply named after the hook; each implementation may take any
subset of the specification's parameters, in any order, as pluggy allows. Every hook returns
one answer (``firstresult``): a plugin bundle is one implementation.

The sandboxed child never imports pluggy (decision 0004); it checks implementations against
:data:`haechi.sdk.protocol.HOOK_PARAMETERS`, which a test holds equal to these specifications.
Host-side tooling (``haechi plugin test``, :mod:`haechi.sdk.testing`) validates a plugin module
with :func:`plugin_manager`.

Example::

    >>> import types
    >>> from haechi.sdk import Detection, hookimpl
    >>> plugin = types.ModuleType("plugin")
    >>> @hookimpl
    ... def inspect(segments):
    ...     return [Detection("word", 0, 0, 5)] if segments and segments[0][:5] == "hello" else []
    >>> plugin.inspect = inspect
    >>> pm = plugin_manager("filter")
    >>> _ = pm.register(plugin)
    >>> pm.hook.inspect(segments=["hello world"], ctx=None)
    [Detection(type='word', segment=0, start=0, end=5, label=None, confidence=None)]
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pluggy

from .markers import PROJECT
from .models import Decision, Detection, Sealed
from .protocol import HOOKS, hooks_for

__all__ = [
    "AuthSpec",
    "CryptoSpec",
    "FilterSpec",
    "LifecycleSpec",
    "hookspec",
    "plugin_manager",
]

hookspec = pluggy.HookspecMarker(PROJECT)


class AuthSpec:
    @hookspec(firstresult=True)
    def authenticate(self, request: Any, ctx: Any) -> Decision:
        """Decide on one request's credentials, before the body is read.

        ``request`` is a :class:`~haechi.sdk.models.Credentials` (method, route, and the
        ``Authorization`` header when the manifest declares ``request:credentials``). Return
        :meth:`Decision.allow_as` or :meth:`Decision.deny`; raising fails the request closed.
        """


class FilterSpec:
    @hookspec(firstresult=True)
    def inspect(self, segments: list[str], ctx: Any) -> list[Detection]:
        """Find sensitive spans in ``segments`` (the request's text parts, in order).

        Offsets are Python string indices into ``segments[segment]``. Needs
        ``request:body-text``; without it the plugin receives no segments.
        """


class CryptoSpec:
    @hookspec(firstresult=True)
    def encrypt(self, plaintext: bytes, fields: dict[str, Any], ctx: Any) -> Sealed:
        """Seal ``plaintext``; ``fields`` (``type``, ``tenant``, ``expires``) describe it and
        must end up inside the AAD, so none of them can be changed without the open failing."""

    @hookspec(firstresult=True)
    def decrypt(self, sealed: bytes, fields: dict[str, Any], ctx: Any) -> bytes:
        """Open a value ``encrypt`` returned; refuse when ``fields`` (the ``type`` and
        ``tenant`` the caller expects) differ from the sealed ones, or when it has expired."""


class LifecycleSpec:
    @hookspec(firstresult=True)
    def setup(self, ctx: Any) -> None:
        """Called once per sandboxed process after it loaded, before its first call."""

    @hookspec(firstresult=True)
    def teardown(self, ctx: Any) -> None:
        """Called when the host retires a process gracefully (never after a crash)."""


SPECS: dict[str, type] = {"auth": AuthSpec, "filter": FilterSpec, "crypto": CryptoSpec}


class _Manager(pluggy.PluginManager):
    """Also accepts unmarked functions named after one of the kind's hooks, as the child does."""

    def __init__(self, kind: str) -> None:
        super().__init__(PROJECT)
        self._hooks = hooks_for(kind)

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in self._hooks and callable(getattr(plugin, name, None)):
            return {"specname": None}
        return opts


def plugin_manager(kind: str) -> pluggy.PluginManager:
    """A pluggy manager with the specifications of ``kind``; ``register`` validates a plugin."""
    if kind not in HOOKS:
        raise ValueError(f"unknown plugin kind {kind!r}; expected one of {sorted(HOOKS)}")
    manager = _Manager(kind)
    manager.add_hookspecs(SPECS[kind])
    manager.add_hookspecs(LifecycleSpec)
    return manager


def validate(module: ModuleType, kind: str) -> pluggy.PluginManager:
    """Register ``module`` and check every implementation has a specification."""
    manager = plugin_manager(kind)
    manager.register(module)
    manager.check_pending()
    return manager
