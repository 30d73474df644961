"""Data minimisation: the arguments a plugin's hook receives are cut from the request by what
its verified manifest grants, never the whole request.

* ``authenticate`` with ``request:credentials``: the Authorization header, the route and the
  method; never the body, cookies or any other header. Without the grant: route and method.
* ``inspect`` with ``request:body-text``: the text segments the adapter extracted; never
  headers, cookies or credentials. Without the grant: no segments.

The gateway (issue #6) builds a :class:`RequestView` per request and asks
:func:`arguments_for` for each plugin; crypto hooks get explicit values from the gateway's
policy, not request fields, so they have no view here.

Example::

    >>> view = RequestView("POST", "/v1/chat", {"authorization": "Bearer t", "cookie": "s=1"},
    ...                    ("hello",))
    >>> arguments_for(filter_manifest, "inspect", view)  # doctest: +SKIP
    [['hello']]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from haechi.trust import Manifest

__all__ = ["RequestView", "arguments_for"]


@dataclass(frozen=True)
class RequestView:
    method: str
    route: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    segments: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


def arguments_for(manifest: Manifest, hook: str, request: RequestView) -> list[Any]:
    """The positional arguments for ``hook`` (``ctx`` is added by the child)."""
    grants = set(manifest.capabilities)
    if hook == "authenticate":
        credentials: dict[str, Any] = {"route": request.route, "method": request.method}
        if "request:credentials" in grants:
            credentials["authorization"] = request.header("authorization")
        return [credentials]
    if hook == "inspect":
        return [list(request.segments) if "request:body-text" in grants else []]
    raise ValueError(f"{hook!r} takes no request fields; the gateway passes its values")
