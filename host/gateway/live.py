"""Telling a running gateway about a new trust state: ``haechi trust apply`` and the pid file.

The top process of a gateway (the only worker, or the parent of ``--workers N``) writes its pid
to ``haechi.pid`` beside the config; SIGHUP to it makes every worker re-apply the trust file.
``apply_trust_file`` checks the candidate against the installed state with the same update
rule the gateway applies (newer version; signed by the current roots when there are any), so
a refused candidate never replaces the file, then installs it atomically, keeps the old one as
``<name>.bak-<time>``, signals, and waits for the admin listener to report the new version.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from haechi.host.config import Config
from haechi.trust import load_trust
from haechi.trust._internal.files import write_file
from haechi.trust.state import (
    TrustStateError,
    check_update,
    is_signed_state,
    read_state_bytes,
    read_state_envelope,
)

__all__ = ["ApplyError", "PidFile", "apply_trust_file", "pid_path"]


class ApplyError(Exception):
    """The trust state was not applied; the message says why and what to do."""


def pid_path(config: Config) -> Path:
    base = config.source.parent if config.source else Path.cwd()
    return base / "haechi.pid"


class PidFile:
    """Written when the gateway serves, removed when it stops (only if it is still ours)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> PidFile:
        write_file(self.path, f"{os.getpid()}\n".encode(), mode=0o644, overwrite=True)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.path.read_text().strip() == str(os.getpid()):
                self.path.unlink()
        except OSError:
            pass


def apply_trust_file(config: Config, candidate: Path, *, timeout: float = 10.0) -> int | None:
    target = config.plugins.trust
    now = datetime.now(UTC)
    try:
        new = load_trust(candidate, now=now)
        current = load_trust(target, now=now)
        data = read_state_bytes(candidate)
        check_update(
            current, new, read_state_envelope(data, candidate) if is_signed_state(data) else None
        )
    except TrustStateError as exc:
        raise ApplyError(f"{candidate}: {exc}") from None
    pid = _gateway_pid(config)
    backup = target.with_name(f"{target.name}.bak-{now.strftime('%Y%m%dT%H%M%SZ')}")
    write_file(backup, target.read_bytes(), mode=0o644, overwrite=False)
    write_file(target, data, mode=0o644, overwrite=True)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ApplyError(
            f"installed {target}, but no gateway runs as pid {pid}; it applies at the next start"
        ) from None
    return _await_version(config, new.version, timeout)


def _gateway_pid(config: Config) -> int:
    path = pid_path(config)
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        raise ApplyError(f"no running gateway: {path} is missing or unreadable") from None


def _await_version(config: Config, version: int | None, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    url = f"http://{config.admin.listen}/status"
    seen = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                seen = json.loads(response.read()).get("trust_version")
        except OSError:
            seen = None
        if seen == version:
            return version
        time.sleep(0.1)
    raise ApplyError(
        f"the gateway still reports trust version {seen} after {timeout:g} s; see its audit log"
    )
