"""The host-child contract that plugin code and the sandbox both rely on.

Issue #5 turns these names into pluggy hook specifications with typed models; the hook names
per kind and the protocol version are fixed here so the sandbox and the SDK cannot disagree.
"""

from __future__ import annotations

__all__ = ["HOOKS", "LIFECYCLE_HOOKS", "PROTOCOL_VERSION", "hooks_for"]

PROTOCOL_VERSION = 1

HOOKS: dict[str, tuple[str, ...]] = {
    "auth": ("authenticate",),
    "filter": ("inspect",),
    "crypto": ("encrypt", "decrypt"),
}
LIFECYCLE_HOOKS: tuple[str, ...] = ("setup", "teardown")


def hooks_for(kind: str) -> tuple[str, ...]:
    """Every hook a plugin of ``kind`` may offer."""
    return HOOKS[kind] + LIFECYCLE_HOOKS
