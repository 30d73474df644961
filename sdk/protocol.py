"""The host-child contract that plugin code and the sandbox both rely on.

The pluggy hook specifications (:mod:`haechi.sdk.hookspecs`) and typed models
(:mod:`haechi.sdk.models`) sit on top of this module; the hook names per kind, their
parameters, the protocol version and the wire shape of every hook's answer are fixed here, so
the sandbox, the SDK and the gateway cannot disagree. The host checks every answer with
:func:`check_result` before using it: a plugin is code the operator runs, not code it trusts.

Wire shapes (msgpack values):

* ``inspect`` -> a list (at most 10,000) of detections: ``{"type": str, "segment": int,
  "start": int, "end": int}`` plus optional ``"label": str`` and ``"confidence": int`` (0-100);
  ``type`` is 1-64 of ``[a-z0-9_.-]``, ``0 <= start <= end``;
* ``authenticate`` -> ``{"allow": bool}`` plus optional ``"principal": str``,
  ``"scopes": [str]`` and ``"reason": str``;
* ``encrypt`` -> bytes (a :class:`~haechi.sdk.models.Sealed` value); ``decrypt`` -> bytes;
* ``setup`` / ``teardown`` -> nil.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: imported in every sandboxed child (see markers.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "HOOKS",
    "HOOK_PARAMETERS",
    "LIFECYCLE_HOOKS",
    "PROTOCOL_VERSION",
    "ResultError",
    "check_result",
    "hooks_for",
]

PROTOCOL_VERSION = 1

HOOKS: dict[str, tuple[str, ...]] = {
    "auth": ("authenticate",),
    "filter": ("inspect",),
    "crypto": ("encrypt", "decrypt"),
}
LIFECYCLE_HOOKS: tuple[str, ...] = ("setup", "teardown")

# The parameters of every hook, in the order the host sends them, then ``ctx``, which the child
# adds. The pluggy specifications in :mod:`haechi.sdk.hookspecs` have exactly these parameters
# (a test holds the two together); the child checks an implementation against this table
# because it never imports pluggy.
HOOK_PARAMETERS: dict[str, tuple[str, ...]] = {
    "authenticate": ("request", "ctx"),
    "inspect": ("segments", "ctx"),
    "encrypt": ("plaintext", "fields", "ctx"),
    "decrypt": ("sealed", "fields", "ctx"),
    "setup": ("ctx",),
    "teardown": ("ctx",),
}

MAX_DETECTIONS = 10_000
_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class ResultError(ValueError):
    """A hook's answer does not have the hook's wire shape; the message names the field."""


def hooks_for(kind: str) -> tuple[str, ...]:
    """Every hook a plugin of ``kind`` may offer."""
    return HOOKS[kind] + LIFECYCLE_HOOKS


def check_result(hook: str, value: Any) -> Any:
    """Return ``value`` if it has ``hook``'s wire shape; raise :class:`ResultError` if not."""
    if hook == "inspect":
        _detections(value)
    elif hook == "authenticate":
        _decision(value)
    elif hook in ("encrypt", "decrypt"):
        if not isinstance(value, bytes):
            raise ResultError(f"{hook}: must return bytes, not {type(value).__name__}")
    elif hook in LIFECYCLE_HOOKS:
        if value is not None:
            raise ResultError(f"{hook}: must return nothing")
    else:
        raise ResultError(f"{hook!r} is not a hook")
    return value


def _int(value: Any, where: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ResultError(f"{where}: must be an integer >= {low}")
    if high is not None and value > high:
        raise ResultError(f"{where}: must be at most {high}")
    return value


def _string(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ResultError(f"{where}: must be a string of at most {limit} characters")
    return value


def _closed(item: dict[str, Any], where: str, required: set[str], optional: set[str]) -> None:
    missing = sorted(required - set(item))
    if missing:
        raise ResultError(f"{where}: missing {missing[0]!r}")
    unknown = sorted(str(k) for k in set(item) - required - optional)
    if unknown:
        raise ResultError(f"{where}: unknown field {unknown[0][:40]!r}")


def _detection_type(value: str) -> bool:
    return 0 < len(value) <= 64 and _TYPE_CHARS.issuperset(value)


def _detections(value: Any) -> None:
    if not isinstance(value, list):
        raise ResultError(f"inspect: must return a list of detections, not {type(value).__name__}")
    if len(value) > MAX_DETECTIONS:
        raise ResultError(f"inspect: at most {MAX_DETECTIONS} detections")
    for index, item in enumerate(value):
        where = f"inspect: detection {index}"
        if not isinstance(item, dict):
            raise ResultError(f"{where}: must be a map")
        _closed(item, where, {"type", "segment", "start", "end"}, {"label", "confidence"})
        if not isinstance(item["type"], str) or not _detection_type(item["type"]):
            raise ResultError(f"{where}: type: 1-64 of lowercase letters, digits, '_', '.', '-'")
        _int(item["segment"], f"{where}: segment")
        start = _int(item["start"], f"{where}: start")
        _int(item["end"], f"{where}: end", low=start)
        if "label" in item:
            _string(item["label"], f"{where}: label", 200)
        if "confidence" in item:
            _int(item["confidence"], f"{where}: confidence", high=100)


def _decision(value: Any) -> None:
    if not isinstance(value, dict):
        raise ResultError("authenticate: must return a decision map")
    _closed(value, "authenticate", {"allow"}, {"principal", "scopes", "reason"})
    if not isinstance(value["allow"], bool):
        raise ResultError("authenticate: allow: must be true or false")
    if "principal" in value:
        _string(value["principal"], "authenticate: principal", 256)
    if "reason" in value:
        _string(value["reason"], "authenticate: reason", 200)
    scopes = value.get("scopes", [])
    if not isinstance(scopes, list) or len(scopes) > 64:
        raise ResultError("authenticate: scopes: must be a list of at most 64 strings")
    for index, scope in enumerate(scopes):
        _string(scope, f"authenticate: scopes[{index}]", 128)
