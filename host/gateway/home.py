"""``haechi init``: a complete, working gateway directory, written without clobbering anything.

What it writes under DIR (every secret 0600, directories 0700):

* ``keys/operator.key`` + ``.pub``: the operator's Ed25519 signing key (signs the plugins);
* ``keys/vault.*``: the AES-256-GCM key store and its nonce budget (``haechi keys``);
* ``plugins/<id>``: the first-party plugins, checked against the shipped digests and signed
  with the operator's key (:func:`install_bundled`);
* ``trust.toml``: a trust state that anchors the operator key and allows exactly the
  capabilities those plugins declare;
* ``secrets.toml``: the ``bearer-tokens`` list holding the sha256 of one fresh API token, which
  is printed once and never stored in clear;
* ``haechi.toml``: the configuration, every key shown with its default.

Rules: nothing that exists is overwritten unless ``force`` is set, and then every file or
directory that is replaced is first renamed to ``<name>.bak-<UTC time>`` (the original's
``init --force`` silently overwrote the operator's config). Every file is written to a temporary
name and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import tomli_w
from haechi.host.authoring.firstparty import install_bundled, load_bundled
from haechi.host.keys import KeyStore
from haechi.trust import SigningKey
from haechi.trust._internal.files import write_file
from haechi.trust.signing import write_keypair

__all__ = ["DEFAULT_PLUGINS", "InitError", "InitResult", "init_home"]

DEFAULT_PLUGINS = ("bearer-auth", "pii-filter", "secret-filter", "local-aesgcm")
MANAGED = ("haechi.toml", "trust.toml", "secrets.toml", "keys", "plugins")


class InitError(Exception):
    """Nothing (more) was written; the message names the path and what to do."""


@dataclass(frozen=True)
class InitResult:
    directory: Path
    config: Path
    token: str
    principal: str
    backups: tuple[Path, ...]


def init_home(
    directory: Path,
    *,
    force: bool = False,
    listen: str = "127.0.0.1:8080",
    admin: str = "127.0.0.1:9090",
    upstream_openai: str = "https://api.openai.com",
    upstream_anthropic: str = "https://api.anthropic.com",
    principal: str = "operator",
    policy: dict[str, object] | None = None,
    now: datetime | None = None,
) -> InitResult:
    directory = directory.resolve()
    existing = [name for name in MANAGED if os.path.lexists(directory / name)]
    if existing and not force:
        raise InitError(
            f"{directory / existing[0]} already exists; haechi init never overwrites: choose "
            "another --dir, or pass --force (what it replaces is kept as a .bak- copy)"
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    backups = tuple(_back_up(directory / name, stamp) for name in existing)
    operator = SigningKey.generate()
    write_keypair(directory / "keys", "operator", operator)
    KeyStore.init(directory / "keys", "vault")
    install_bundled(directory / "plugins", operator, only=DEFAULT_PLUGINS)
    _write(directory / "trust.toml", _trust_state(directory, now), mode=0o644)
    token = "hx_" + secrets.token_urlsafe(32)
    _write(directory / "secrets.toml", _secrets(token, principal), mode=0o600)
    config = directory / "haechi.toml"
    _write(config, _config(listen, admin, upstream_openai, upstream_anthropic, policy), mode=0o644)
    return InitResult(directory, config, token, principal, backups)


def _back_up(path: Path, stamp: str) -> Path:
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    if os.path.lexists(backup):
        raise InitError(f"{backup} already exists; wait a second and run again")
    os.rename(path, backup)
    return backup


def _write(path: Path, text: str, *, mode: int) -> None:
    write_file(path, text.encode("utf-8"), mode=mode, overwrite=False)


def _trust_state(directory: Path, now: datetime | None) -> str:
    anchor = tomllib.loads((directory / "keys" / "operator.pub").read_text())
    capabilities = sorted(
        {c for b in load_bundled(only=DEFAULT_PLUGINS) for c in b.manifest.capabilities}
    )
    expires = (now or datetime.now(UTC)) + timedelta(days=365)
    document = {
        "version": 1,
        "expires": expires.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "anchors": [anchor],
        "capabilities": {"allow": capabilities},
    }
    return (
        "# Written by haechi init: plugins signed by the operator key are trusted.\n"
        + tomli_w.dumps(document)
    )


def _secrets(token: str, principal: str) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return tomli_w.dumps({"bearer-tokens": f"sha256:{digest} {principal} chat,detokenize\n"})


def _config(
    listen: str,
    admin: str,
    openai: str,
    anthropic: str,
    policy: dict[str, object] | None,
) -> str:
    document: dict[str, object] = {
        "gateway": {"listen": listen, "workers": 1},
        "upstreams": {"openai": openai, "anthropic": anthropic},
        "admin": {"listen": admin},
        "plugins": {
            "dir": "plugins",
            "trust": "trust.toml",
            "secrets": "secrets.toml",
            "auth": ["bearer-auth"],
            "filters": ["pii-filter", "secret-filter"],
            "crypto": "local-aesgcm",
        },
        "audit": {"path": "audit/audit.jsonl", "fsync": "interval"},
        "vault": {"path": "vault.db"},
        "keys": {"dir": "keys"},
        "policy": policy or {"mode": "enforce"},
    }
    header = (
        "# haechi gateway configuration, written by haechi init. Every key is documented in\n"
        "# docs/operators/configure.md; unknown keys are errors. HAECHI_<SECTION>__<KEY>\n"
        "# environment variables override single keys (e.g. HAECHI_POLICY__MODE=report).\n"
    )
    return header + tomli_w.dumps(document)


def remove_home(directory: Path) -> None:
    """Delete what init wrote (tests and the demo clean up with this)."""
    for name in MANAGED:
        target = directory / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()
