"""The capability client: what a hook receives as ``ctx``.

Every method is a request to the host's broker, which answers it only if the plugin's verified
manifest declares the capability (and the operator allowed it). A refusal raises
:class:`CapabilityError` with a stable ``reason`` such as ``capability-not-declared``,
``secret-missing``, ``key-exhausted``, ``key-open-failed`` or ``fetch-refused``; a plugin that
cannot do its job without the capability should let it propagate (an auth plugin then fails
closed) or answer with a decision that names the reason.

==========================  ===============================  =====================
method                      manifest capability              returns
==========================  ===============================  =====================
``ctx.secret(name)``        ``secrets:read:<name>``          ``str``
``ctx.kv.get/set/delete``   ``state:kv``                     stored value / bool
``ctx.fetch(url, ...)``     ``net:fetch:<host>``             :class:`Response`
``ctx.seal(key, data, aad)`` ``keys:<key>``                  ``bytes``
``ctx.open(key, data, aad)`` ``keys:<key>``                  ``bytes``
``ctx.log(message)``        (none)                           ``None``
==========================  ===============================  =====================

Example (a fake transport stands in for the host)::

    >>> ctx = Context(lambda cap, args: "s3cret" if cap == "secret" else None)
    >>> ctx.secret("api-key")
    's3cret'
"""

from __future__ import annotations

import sys

from .models import Response

TYPE_CHECKING = False  # not from typing: see markers.py
if TYPE_CHECKING:
    from collections.abc import Callable

    Transport = Callable[[str, dict[str, object]], object]

__all__ = ["KV", "CapabilityError", "Context"]


class CapabilityError(Exception):
    """The host refused a capability request; ``reason`` is the stable code, then a message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class KV:
    """The plugin's own small key/value store (``state:kv``); other plugins cannot see it."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def get(self, key: str) -> object:
        return self._transport("kv", {"op": "get", "key": key})

    def set(self, key: str, value: object) -> None:
        self._transport("kv", {"op": "set", "key": key, "value": value})

    def delete(self, key: str) -> bool:
        return bool(self._transport("kv", {"op": "delete", "key": key}))


class Context:
    """The capability client; ``transport(cap, args)`` carries one request to the host."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.kv = KV(transport)

    def secret(self, name: str) -> str:
        return self._transport("secret", {"name": name})  # type: ignore[return-value]

    def fetch(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        wire = self._transport(
            "fetch", {"url": url, "method": method, "body": body, "headers": headers or {}}
        )
        return Response.from_wire(wire)  # type: ignore[arg-type]

    def seal(self, key: str, data: bytes, aad: bytes = b"") -> bytes:
        """AES-256-GCM with the host's key ``key``; the key bytes never reach the plugin."""
        return self._transport(  # type: ignore[return-value]
            "key", {"name": key, "op": "seal", "data": data, "aad": aad}
        )

    def open(self, key: str, sealed: bytes, aad: bytes = b"") -> bytes:
        return self._transport(  # type: ignore[return-value]
            "key", {"name": key, "op": "open", "data": sealed, "aad": aad}
        )

    def log(self, message: object) -> None:
        """A line for the operator's log (the child's stderr, captured with a cap by the host)."""
        print(str(message)[:2000], file=sys.stderr)
