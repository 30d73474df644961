"""The host end of the IPC protocol: 4-byte big-endian length, then one msgpack map.

Protocol version 1 (the child's half is in ``child/_hx_boot.py``):

* child -> host ``{"op": "hello", "protocol": 1, "kind", "ok": bool, "layers": {...},
  "stage", "error"}``: version and plugin kind must match what the host expects
* host -> child ``{"op": "load", "entry": path, "files": {path: bytes}}``
* child -> host ``{"op": "loaded", "hooks": [...]}`` or ``{"op": "load-failed", "error"}``
* host -> child ``{"id": n, "op": "call", "hook": name, "args": list | map}``
* child -> host ``{"id": n, "ok": true, "result": ...}`` or ``{"id": n, "ok": false, "error"}``
* during a call, child -> host ``{"op": "cap", "cid": n, "cap", "args"}`` and host -> child
  ``{"cid": n, "ok": bool, "result" | "error"}`` (see ``broker/``)

The child is hostile: a length over the cap is refused before anything is allocated, and a
frame that does not decode to a map is a protocol violation.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import SandboxError

__all__ = ["MAX_FRAME", "MAX_REPLY_FRAME", "PROTOCOL", "FrameDecoder", "encode"]

PROTOCOL = 1
# host -> child: the load frame carries the whole bundle (at most 64 MiB of files).
MAX_FRAME = 80 * 1024 * 1024
# child -> host: answers only. Small, because decoding multiplies size: a frame of empty maps
# becomes ~70 bytes of Python objects per byte (the review's 16 MiB frame took 1.2 GB).
MAX_REPLY_FRAME = 1024 * 1024
_LIMITS = {
    "max_str_len": MAX_REPLY_FRAME,
    "max_bin_len": MAX_REPLY_FRAME,
    "max_array_len": 100_000,
    "max_map_len": 10_000,
    "max_ext_len": 0,
}
_HEADER = 4


def encode(message: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return len(body).to_bytes(_HEADER, "big") + body


def _violation(message: str) -> SandboxError:
    return SandboxError("protocol-violation", message)


class FrameDecoder:
    """Feed bytes as they arrive; take complete messages out."""

    def __init__(self, max_frame: int = MAX_REPLY_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER:
            size = int.from_bytes(self._buffer[:_HEADER], "big")
            if size > self.max_frame:
                raise _violation(f"frame of {size} bytes exceeds the {self.max_frame}-byte cap")
            if len(self._buffer) < _HEADER + size:
                break
            body = bytes(self._buffer[_HEADER : _HEADER + size])
            del self._buffer[: _HEADER + size]
            messages.append(self._decode(body))
        return messages

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        try:
            message = msgpack.unpackb(body, raw=False, strict_map_key=True, **_LIMITS)
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise _violation(f"undecodable frame: {type(exc).__name__}") from None
        if not isinstance(message, dict):
            raise _violation("a frame is not a map")
        return message
