"""``state:kv``: a small key/value store per plugin, with quotas. In memory for now; the
gateway's file and Redis stores (issue #6) implement the same three operations."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SandboxError

__all__ = ["KVStore"]


@dataclass
class KVStore:
    """One namespace per plugin id: a plugin can never name another plugin's keys."""

    max_keys: int = 1000
    max_key_bytes: int = 256
    max_value_bytes: int = 64 * 1024
    max_total_bytes: int = 1024 * 1024
    _data: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def get(self, plugin: str, key: str) -> bytes | None:
        return self._data.get(plugin, {}).get(self._key(key))

    def set(self, plugin: str, key: str, value: bytes) -> None:
        key = self._key(key)
        if not isinstance(value, bytes | str):
            raise SandboxError("kv-invalid", "values must be bytes or str")
        data = value.encode("utf-8") if isinstance(value, str) else value
        if len(data) > self.max_value_bytes:
            raise SandboxError("kv-quota", f"a value may hold at most {self.max_value_bytes} bytes")
        space = self._data.setdefault(plugin, {})
        if key not in space and len(space) >= self.max_keys:
            raise SandboxError("kv-quota", f"at most {self.max_keys} keys per plugin")
        total = sum(len(k) + len(v) for k, v in space.items() if k != key) + len(key) + len(data)
        if total > self.max_total_bytes:
            raise SandboxError("kv-quota", f"at most {self.max_total_bytes} bytes per plugin")
        space[key] = data

    def delete(self, plugin: str, key: str) -> bool:
        return self._data.get(plugin, {}).pop(self._key(key), None) is not None

    def _key(self, key: object) -> str:
        if (
            not isinstance(key, str)
            or not key
            or len(key.encode("utf-8", "replace")) > self.max_key_bytes
        ):
            raise SandboxError(
                "kv-invalid", f"keys are non-empty strings of at most {self.max_key_bytes} bytes"
            )
        return key
