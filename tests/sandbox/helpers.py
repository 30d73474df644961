"""Shared helpers for sandbox tests: sign a corpus bundle into tmp and run calls in asyncio."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from haechi.host.sandbox import SandboxedChild, SandboxPolicy
from haechi.trust import Bundle, SigningKey, TrustState, sign_bundle, verify_directory

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
T = TypeVar("T")


def signed_copy(source: Path, target: Path, key: SigningKey) -> Path:
    shutil.copytree(source, target)
    sign_bundle(target, key)
    return target


def verified(directory: Path, key: SigningKey, capabilities: list[str] | None = None) -> Bundle:
    state = TrustState.from_anchors([key.anchor()]).with_capabilities(capabilities or [])
    verdict = verify_directory(directory, state, host_version="0.1.0", now=datetime.now(UTC))
    assert verdict.accepted, verdict.message
    assert verdict.bundle is not None
    return verdict.bundle


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


async def call_once(
    bundle: Bundle,
    hook: str,
    args: Any,
    *,
    timeout: float = 2.0,
    policy: SandboxPolicy | None = None,
) -> Any:
    child = await SandboxedChild.spawn(bundle, policy or SandboxPolicy())
    try:
        return await child.call(hook, args, timeout=timeout)
    finally:
        await child.close()
