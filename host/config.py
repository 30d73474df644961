"""``haechi.toml``: the gateway's configuration, validated in full before anything starts.

Rules this module owns:

* every key is known: an unknown key, section or environment variable is an error naming it
  (a typo such as ``max_body_byte`` must not silently leave the default in force);
* every value is checked for type and range, and the error names the key (``gateway.workers``);
* environment overrides ``HAECHI_<SECTION>__<KEY>`` (for example ``HAECHI_GATEWAY__WORKERS=2``
  or ``HAECHI_POLICY__MODE=enforce``) are applied after the file, with the same checks, and
  the loaded config records which keys came from the environment;
* relative paths are resolved against the directory of the config file, so the gateway does
  not depend on the directory it was started from;
* binding a non-loopback address needs TLS or ``allow_remote = true`` (checked at load).

Example::

    >>> text = '[gateway]\\nlisten = "127.0.0.1:8080"\\n'
    >>> config = load_config_text(text, base=Path("/etc/haechi"))
    >>> config.gateway.listen.port, config.audit.path
    (8080, PosixPath('/etc/haechi/audit/audit.jsonl'))
    >>> load_config_text('[gateway]\\nlisen = "x"\\n', base=Path("/"))
    Traceback (most recent call last):
    ...
    haechi.host.config.ConfigError: gateway.lisen: unknown key (known: ...)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from haechi.trust._internal.encoding import DecodeError, load_toml
from haechi.trust._internal.files import FileReadError, read_regular

__all__ = [
    "ENV_PREFIX",
    "Address",
    "Config",
    "ConfigError",
    "load_config",
    "load_config_text",
]

ENV_PREFIX = "HAECHI_"
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """The configuration is not valid; ``key`` is the dotted key, the message says what to do."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, key: str) -> Address:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
            raise ConfigError(key, f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
        return cls(host.strip("[]"), int(port))

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _doc(text: str, **extra: Any) -> Any:
    return {"doc": text, **extra}


@dataclass(frozen=True)
class GatewaySection:
    listen: Address = Address("127.0.0.1", 8080)
    workers: int = field(default=1, metadata=_doc("processes sharing the port", low=1, high=64))
    allow_remote: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = field(default=1 << 20, metadata=_doc("", low=1024, high=64 << 20))
    max_concurrency: int = field(default=256, metadata=_doc("", low=1, high=100_000))
    max_header_count: int = field(default=100, metadata=_doc("", low=8, high=1000))
    max_header_bytes: int = field(default=16 * 1024, metadata=_doc("", low=1024, high=1 << 20))
    max_head_bytes: int = field(
        default=64 * 1024, metadata=_doc("request line and headers in all", low=4096, high=16 << 20)
    )
    max_connections: int = field(
        default=1000, metadata=_doc("open client connections per worker", low=1, high=1_000_000)
    )
    header_timeout_s: float = field(
        default=65.0,
        metadata=_doc(
            "each request head must arrive within this of connect or the last answer",
            low=1,
            high=3600,
        ),
    )
    client_timeout_s: float = field(default=30.0, metadata=_doc("", low=1, high=3600))
    upstream_timeout_s: float = field(default=60.0, metadata=_doc("", low=1, high=3600))
    inspect_responses: bool = False


@dataclass(frozen=True)
class UpstreamsSection:
    openai: str = "https://api.openai.com"
    anthropic: str = "https://api.anthropic.com"


@dataclass(frozen=True)
class AdminSection:
    listen: Address = Address("127.0.0.1", 9090)


@dataclass(frozen=True)
class PluginsSection:
    dir: Path = Path("plugins")
    trust: Path = Path("trust.toml")
    secrets: Path | None = None
    auth: tuple[str, ...] = ("bearer-auth",)
    filters: tuple[str, ...] = ("pii-filter", "secret-filter")
    crypto: str = "local-aesgcm"
    pool_size: int = field(default=2, metadata=_doc("", low=1, high=64))
    sandbox_mode: Literal["strict", "best-effort"] = "strict"
    allow_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditSection:
    path: Path = Path("audit/audit.jsonl")
    fsync: Literal["always", "interval", "never"] = "interval"
    rotate_bytes: int = field(default=64 << 20, metadata=_doc("", low=1 << 16, high=1 << 40))


@dataclass(frozen=True)
class VaultSection:
    path: Path = Path("vault.db")


@dataclass(frozen=True)
class KeysSection:
    dir: Path = Path("keys")


@dataclass(frozen=True)
class RateLimitSection:
    requests_per_minute: int = field(default=600, metadata=_doc("", low=1, high=10_000_000))
    burst: int = field(default=60, metadata=_doc("", low=1, high=1_000_000))


@dataclass(frozen=True)
class ModelsSection:
    allow: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Config:
    gateway: GatewaySection = GatewaySection()
    upstreams: UpstreamsSection = UpstreamsSection()
    admin: AdminSection = AdminSection()
    plugins: PluginsSection = PluginsSection()
    audit: AuditSection = AuditSection()
    vault: VaultSection = VaultSection()
    keys: KeysSection = KeysSection()
    rate_limit: RateLimitSection = RateLimitSection()
    models: ModelsSection = ModelsSection()
    # [policy] is validated by haechi.host.gateway.policy, which owns its rules.
    policy: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None
    from_environment: tuple[str, ...] = ()


SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name not in ("policy", "source", "from_environment")
}


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve ``path``; ``environ`` defaults to ``os.environ``."""
    try:
        data, _ = read_regular(path, limit=MAX_CONFIG_BYTES, what="config")
    except FileReadError as exc:
        raise ConfigError("", str(exc)) from None
    config = load_config_text(data, base=path.resolve().parent, environ=environ)
    return dataclasses.replace(config, source=path)


def load_config_text(
    text: str | bytes, *, base: Path, environ: Mapping[str, str] | None = None
) -> Config:
    data = text.encode() if isinstance(text, str) else text
    try:
        table = load_toml(data)
    except DecodeError as exc:
        raise ConfigError("", f"haechi.toml: {exc}") from None
    overrides = _environment(os.environ if environ is None else environ)
    for (section, key), value in overrides.items():
        table.setdefault(section, {})
        if not isinstance(table[section], dict):
            raise ConfigError(section, "must be a table")
        table[section][key] = value
    try:
        config = _build(table, base)
    except ConfigError as exc:
        section, _, key = exc.key.partition(".")
        if (section, key) in overrides:  # say where the bad value came from
            variable = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(exc.key, f"{exc.message} (from {variable})") from None
        raise
    config = dataclasses.replace(
        config, from_environment=tuple(sorted(f"{s}.{k}" for s, k in overrides))
    )
    _check_limits(config.gateway)
    _check_listeners(config)
    return config


# --- environment -----------------------------------------------------------------------------


def _environment(environ: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """``HAECHI_SECTION__KEY=value`` pairs; any other ``HAECHI_`` variable is an error."""
    found: dict[tuple[str, str], str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, sep, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
        if not sep or not section or not key:
            raise ConfigError(
                name,
                "environment overrides are spelled HAECHI_<SECTION>__<KEY>, e.g. "
                "HAECHI_GATEWAY__WORKERS=2",
            )
        found[(section, key)] = value
    return found


# --- building typed sections -----------------------------------------------------------------


def _build(table: dict[str, Any], base: Path) -> Config:
    unknown = sorted(set(table) - set(SECTIONS) - {"policy"})
    if unknown:
        raise ConfigError(
            unknown[0], f"unknown section (known: {', '.join([*SECTIONS, 'policy'])})"
        )
    sections = {
        name: _section(name, kind, table.get(name, {}), base) for name, kind in SECTIONS.items()
    }
    policy = table.get("policy", {})
    if not isinstance(policy, dict):
        raise ConfigError("policy", "must be a table")
    return Config(**sections, policy=policy)


def _section(name: str, kind: type, values: object, base: Path) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(name, "must be a table")
    hints = typing.get_type_hints(kind)
    known = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(known)})")
    parsed = {
        key: _value(f"{name}.{key}", hints[key], raw, known[key].metadata, base)
        for key, raw in values.items()
    }
    defaults = {
        key: _resolve(getattr(kind(), key), base)
        for key in known
        if key not in parsed and isinstance(getattr(kind(), key), Path)
    }
    return kind(**{**defaults, **parsed})


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


def _value(key: str, hint: Any, raw: Any, meta: Mapping[str, Any], base: Path) -> Any:
    """One value of type ``hint``; strings from the environment are converted here too."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        if raw in ("", None):
            return None
        return _value(key, inner, raw, meta, base)
    if origin is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, choices))}, not {raw!r}")
        return raw
    if origin is tuple:
        if isinstance(raw, str):
            raw = [item.strip() for item in raw.split(",") if item.strip()]
        if not isinstance(raw, list) or not all(isinstance(i, str) and i for i in raw):
            raise ConfigError(key, "must be a list of non-empty strings")
        return tuple(raw)
    if hint is bool:
        return _bool(key, raw)
    if hint in (int, float):
        return _number(key, hint, raw, meta)
    if hint is Address:
        return Address.parse(_string(key, raw), key)
    if hint is Path:
        return _resolve(Path(_string(key, raw)), base)
    return _string(key, raw)


def _string(key: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(key, f"must be a non-empty string, not {raw!r}")
    return raw


def _bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0"):
        return raw.lower() in ("true", "1")
    raise ConfigError(key, f"must be true or false, not {raw!r}")


def _number(key: str, kind: type, raw: Any, meta: Mapping[str, Any]) -> Any:
    if isinstance(raw, str):
        try:
            raw = kind(raw)
        except ValueError:
            raise ConfigError(key, f"must be a number, not {raw!r}") from None
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or (kind is int and not isinstance(raw, int))
    ):
        raise ConfigError(
            key, f"must be {'an integer' if kind is int else 'a number'}, not {raw!r}"
        )
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and raw < low) or (high is not None and raw > high):
        raise ConfigError(key, f"must be between {low} and {high}, not {raw}")
    return kind(raw)


def _check_limits(gateway: GatewaySection) -> None:
    if gateway.max_head_bytes < gateway.max_header_bytes:
        raise ConfigError(
            "gateway.max_head_bytes",
            f"{gateway.max_head_bytes} is below gateway.max_header_bytes "
            f"({gateway.max_header_bytes}): the whole head must fit at least one longest header",
        )


def _check_listeners(config: Config) -> None:
    gateway = config.gateway
    if (gateway.tls_cert is None) != (gateway.tls_key is None):
        raise ConfigError("gateway.tls_cert", "give both tls_cert and tls_key, or neither")
    if not gateway.listen.is_loopback and gateway.tls_cert is None and not gateway.allow_remote:
        raise ConfigError(
            "gateway.listen",
            f"{gateway.listen} is not a loopback address: configure tls_cert and tls_key, or set "
            "allow_remote = true if a TLS proxy in front of haechi terminates TLS",
        )
    if not config.admin.listen.is_loopback:
        raise ConfigError(
            "admin.listen", "the admin listener (metrics, health, status) binds loopback only"
        )
