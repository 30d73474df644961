"""Host functions a sandboxed plugin may call: the only authority a plugin has.

A plugin's ``ctx`` turns each method into a ``cap`` frame; :class:`Broker` answers it, after
checking that the plugin's *verified* manifest declares the capability (the verifier already
refused a bundle whose capabilities the operator did not allow). An undeclared request is an
error returned to the plugin, never a grant.

===================  ==========================================================
capability           request (``cap`` / ``args``)
===================  ==========================================================
secrets:read:<name>  ``secret`` / ``{"name"}`` -> str
state:kv             ``kv`` / ``{"op": get|set|delete, "key", "value"}``
net:fetch:<host>     ``fetch`` / ``{"url", "method", "body", "headers"}`` -> response map
keys:<name>          ``key`` / ``{"name", "op": seal|open, "data", "aad"}`` -> bytes
===================  ==========================================================

Key material never crosses into the child: ``keys:<name>`` is a handle the host uses for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from haechi.trust import Manifest

from ..errors import SandboxError
from .keys import KeyRing, KeyService
from .kv import KVStore
from .netfetch import FetchGuard

__all__ = ["Broker", "FetchGuard", "KVStore", "KeyRing"]


def _not_declared(what: str) -> SandboxError:
    return SandboxError("capability-not-declared", f"{what} is not declared in the manifest")


@dataclass
class Broker:
    """Answers one plugin's capability requests."""

    manifest: Manifest
    secrets: Mapping[str, str] = field(default_factory=dict)
    kv: KVStore = field(default_factory=KVStore)
    keys: KeyService = field(default_factory=KeyRing)
    allow_networks: tuple[str, ...] = ()
    fetch_timeout: float = 5.0

    def __post_init__(self) -> None:
        grants = [c for c in self.manifest.capabilities if c.startswith("net:fetch:")]
        self._fetch = (
            FetchGuard(grants, allow_networks=self.allow_networks, timeout=self.fetch_timeout)
            if grants
            else None
        )

    async def handle(self, cap: object, args: object) -> Any:
        if not isinstance(args, dict):
            raise SandboxError("capability-invalid", "capability arguments must be a map")
        if cap == "secret":
            return self._secret(args.get("name"))
        if cap == "kv":
            return self._kv(args)
        if cap == "fetch":
            return await self._fetch_url(args)
        if cap == "key":
            return self._key(args)
        raise _not_declared(f"capability {str(cap)[:40]!r}")

    def _secret(self, name: object) -> str:
        if not isinstance(name, str) or f"secrets:read:{name}" not in self.manifest.capabilities:
            raise _not_declared(f"secrets:read:{str(name)[:64]}")
        if name not in self.secrets:
            raise SandboxError("secret-missing", f"the operator has not provided secret {name!r}")
        return self.secrets[name]

    def _kv(self, args: dict[str, Any]) -> Any:
        if "state:kv" not in self.manifest.capabilities:
            raise _not_declared("state:kv")
        op, key, plugin = args.get("op"), args.get("key"), self.manifest.id
        if op == "get":
            return self.kv.get(plugin, key)  # type: ignore[arg-type]
        if op == "set":
            self.kv.set(plugin, key, args.get("value"))  # type: ignore[arg-type]
            return None
        if op == "delete":
            return self.kv.delete(plugin, key)  # type: ignore[arg-type]
        raise SandboxError("capability-invalid", "kv op must be get, set or delete")

    def _key(self, args: dict[str, Any]) -> bytes:
        name, op, data, aad = (
            args.get("name"),
            args.get("op"),
            args.get("data"),
            args.get("aad", b""),
        )
        if not isinstance(name, str) or f"keys:{name}" not in self.manifest.capabilities:
            raise _not_declared(f"keys:{str(name)[:64]}")
        if not isinstance(data, bytes) or not isinstance(aad, bytes):
            raise SandboxError("capability-invalid", "key data and aad must be bytes")
        if op == "seal":
            return self.keys.seal(name, data, aad)
        if op == "open":
            return self.keys.open(name, data, aad)
        raise SandboxError("capability-invalid", "key op must be seal or open")

    async def _fetch_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._fetch is None:
            raise _not_declared("net:fetch")
        url, method = args.get("url"), args.get("method", "GET")
        body, headers = args.get("body"), args.get("headers") or {}
        if not isinstance(url, str) or not isinstance(method, str):
            raise SandboxError("capability-invalid", "fetch needs a url and a method string")
        if body is not None and not isinstance(body, bytes | str):
            raise SandboxError("capability-invalid", "fetch body must be bytes or str")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise SandboxError("capability-invalid", "fetch headers must map str to str")
        data = body.encode("utf-8") if isinstance(body, str) else body
        result = await self._fetch.fetch(url, method=method, body=data, headers=headers)
        return {"status": result.status, "headers": result.headers, "body": result.body}
