"""Typed answers of plugin hooks, and the response of ``ctx.fetch``.

A hook returns one of these; the SDK turns it into the wire shape of
:mod:`haechi.sdk.protocol` before it crosses the process boundary, and the host checks that
shape again (a plugin is code the operator runs, not code it trusts). Hosts and test harnesses
turn wire values back into models with ``from_wire``.

These are small immutable classes rather than dataclasses: they are imported inside every
sandboxed child before it confines itself, and ``dataclasses`` pulls in ``inspect``, which
would add about a third to the child's cold spawn (decision 0004).

Example::

    >>> d = Detection(type="email", segment=0, start=6, end=17)
    >>> d.to_wire()
    {'type': 'email', 'segment': 0, 'start': 6, 'end': 17}
    >>> Decision.allow_as("alice", scopes=("chat",)).to_wire()
    {'allow': True, 'principal': 'alice', 'scopes': ['chat']}
    >>> Sealed.from_bytes(Sealed(key="k", type="email", body=b"x" * 28).to_bytes()).type
    'email'
"""

from __future__ import annotations

import msgpack

__all__ = ["Credentials", "Decision", "Detection", "Response", "Sealed"]


class _Frozen:
    """Fields are set once in ``__init__``; equality and repr come from ``__slots__``."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"


class Detection(_Frozen):
    """A span ``[start, end)`` of segment ``segment`` that holds data of ``type``."""

    __slots__ = ("type", "segment", "start", "end", "label", "confidence")  # noqa: RUF023 - field order is repr order
    type: str
    segment: int
    start: int
    end: int
    label: str | None
    confidence: int | None

    def __init__(
        self,
        type: str,
        segment: int,
        start: int,
        end: int,
        label: str | None = None,
        confidence: int | None = None,
    ) -> None:
        self._set(
            type=type, segment=segment, start=start, end=end, label=label, confidence=confidence
        )

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {
            "type": self.type,
            "segment": self.segment,
            "start": self.start,
            "end": self.end,
        }
        if self.label is not None:
            wire["label"] = self.label
        if self.confidence is not None:
            wire["confidence"] = self.confidence
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, object]) -> Detection:
        return cls(**wire)  # type: ignore[arg-type]


class Decision(_Frozen):
    """An auth plugin's verdict on one request's credentials."""

    __slots__ = ("allow", "principal", "scopes", "reason")  # noqa: RUF023 - field order is repr order
    allow: bool
    principal: str | None
    scopes: tuple[str, ...]
    reason: str | None

    def __init__(
        self,
        allow: bool,
        principal: str | None = None,
        scopes: tuple[str, ...] | list[str] = (),
        reason: str | None = None,
    ) -> None:
        self._set(allow=allow, principal=principal, scopes=tuple(scopes), reason=reason)

    @classmethod
    def allow_as(cls, principal: str, scopes: tuple[str, ...] | list[str] = ()) -> Decision:
        return cls(True, principal=principal, scopes=scopes)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        """Refuse; ``reason`` is a short stable code such as ``"unknown-token"``."""
        return cls(False, reason=reason)

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"allow": self.allow}
        if self.principal is not None:
            wire["principal"] = self.principal
        if self.scopes:
            wire["scopes"] = list(self.scopes)
        if self.reason is not None:
            wire["reason"] = self.reason
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, object]) -> Decision:
        return cls(**wire)  # type: ignore[arg-type]


SEALED_MAGIC = b"HXS1"


class Sealed(_Frozen):
    """A self-describing ciphertext: every field that describes it is bound into the AAD.

    ``body`` is what the host's ``keys:<name>`` broker returned (nonce, ciphertext, tag).
    ``aad()`` is the exact byte string the body was sealed with, so changing the key name,
    type, tenant or expiry of a stored value makes it fail to open instead of opening as
    something else. ``expires`` is Unix seconds, 0 for never.
    """

    __slots__ = ("version", "key", "type", "tenant", "expires", "body")  # noqa: RUF023 - field order is repr order
    version: int
    key: str
    type: str
    tenant: str
    expires: int
    body: bytes

    def __init__(
        self,
        key: str,
        type: str,
        body: bytes = b"",
        tenant: str = "",
        expires: int = 0,
        version: int = 1,
    ) -> None:
        self._set(version=version, key=key, type=type, tenant=tenant, expires=expires, body=body)

    def header(self) -> list[object]:
        return [self.version, self.key, self.type, self.tenant, self.expires]

    def aad(self) -> bytes:
        return SEALED_MAGIC + msgpack.packb(self.header(), use_bin_type=True)

    def with_body(self, body: bytes) -> Sealed:
        return Sealed(self.key, self.type, body, self.tenant, self.expires, self.version)

    def to_bytes(self) -> bytes:
        return SEALED_MAGIC + msgpack.packb([*self.header(), self.body], use_bin_type=True)

    def to_wire(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Sealed:
        """Parse a sealed value; ``ValueError`` names what is wrong with it."""
        if not isinstance(data, bytes) or not data.startswith(SEALED_MAGIC):
            raise ValueError("sealed value: not a haechi sealed value (bad magic)")
        try:
            fields = msgpack.unpackb(data[len(SEALED_MAGIC) :], raw=False, max_bin_len=1 << 24)
        except Exception as exc:  # msgpack raises several unrelated types
            raise ValueError(f"sealed value: cannot decode ({type(exc).__name__})") from None
        if not isinstance(fields, list) or len(fields) != 6:
            raise ValueError("sealed value: expected 6 fields")
        version, key, kind, tenant, expires, body = fields
        checks = (
            (type(version) is int and version == 1, "version: only 1 is known"),
            (isinstance(key, str) and 0 < len(key) <= 128, "key: 1-128 characters"),
            (isinstance(kind, str) and 0 < len(kind) <= 64, "type: 1-64 characters"),
            (isinstance(tenant, str) and len(tenant) <= 128, "tenant: at most 128 characters"),
            (
                isinstance(expires, int) and not isinstance(expires, bool) and expires >= 0,
                "expires: Unix seconds >= 0",
            ),
            (isinstance(body, bytes), "body: bytes"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"sealed value: {message}")
        return cls(key, kind, body, tenant, expires, version)


class Credentials(_Frozen):
    """What an auth plugin sees of a request: never the body, cookies or other headers.

    ``authorization`` is the ``Authorization`` header, or None when the request had none or
    the manifest does not declare ``request:credentials``.
    """

    __slots__ = ("method", "route", "authorization")  # noqa: RUF023 - field order is repr order
    method: str
    route: str
    authorization: str | None

    def __init__(self, method: str, route: str, authorization: str | None = None) -> None:
        self._set(method=method, route=route, authorization=authorization)

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, else None."""
        scheme, _, token = (self.authorization or "").partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None

    def to_wire(self) -> dict[str, object]:
        return {"method": self.method, "route": self.route, "authorization": self.authorization}

    @classmethod
    def from_wire(cls, wire: dict[str, object]) -> Credentials:
        authorization = wire.get("authorization")
        return cls(
            str(wire.get("method", "")),
            str(wire.get("route", "")),
            authorization if isinstance(authorization, str) else None,
        )


class Response(_Frozen):
    """What ``ctx.fetch`` returns: status, lower-cased headers, and the body bytes."""

    __slots__ = ("status", "headers", "body")  # noqa: RUF023 - field order is repr order
    status: int
    headers: dict[str, str]
    body: bytes

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self._set(status=status, headers=dict(headers), body=body)

    def json(self) -> object:
        import json

        return json.loads(self.body)

    @classmethod
    def from_wire(cls, wire: dict[str, object]) -> Response:
        return cls(wire["status"], wire["headers"], wire["body"])  # type: ignore[arg-type]
