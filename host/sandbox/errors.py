"""Why a sandboxed call did not produce a result: one exception type, stable reason codes."""

from __future__ import annotations

__all__ = ["SandboxError"]


class SandboxError(Exception):
    """A sandbox refusal or failure. ``reason`` is stable and machine-readable.

    Reasons: ``sandbox-layer-unavailable:<layer>``, ``spawn-failed``, ``load-failed``,
    ``setup-failed``, ``timeout``, ``crashed``, ``protocol-violation``, ``hook-not-offered``,
    ``plugin-error``.
    """

    def __init__(self, reason: str, message: str, layers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.layers = layers or {}  # the child's layer report, when it got that far
