"""The verified bytes are what runs: TOCTOU, in-memory imports, the handshake, the layers."""

from __future__ import annotations

from pathlib import Path

import pytest
from haechi.host.sandbox import SandboxedChild, SandboxError, SandboxPolicy
from haechi.trust import Reason, SigningKey, TrustState, verify_directory

from .helpers import CORPUS, call_once, run, signed_copy, verified

KEY = SigningKey.generate()


@pytest.fixture
def echo(tmp_path: Path) -> Path:
    return signed_copy(CORPUS / "good" / "echo", tmp_path / "echo", KEY)


def test_good_plugin_runs_with_every_layer(echo: Path) -> None:
    async def scenario() -> tuple[object, dict[str, str]]:
        child = await SandboxedChild.spawn(verified(echo, KEY), SandboxPolicy())
        try:
            return await child.call("inspect", [["ab", "cde"]], timeout=2), child.layers
        finally:
            await child.close()

    result, layers = run(scenario)
    assert result == [{"segment": 0, "length": 2}, {"segment": 1, "length": 3}]
    assert layers["landlock"].startswith("abi ")
    assert {layers[k] for k in ("netns", "seccomp", "no-new-privs")} == {"on"}
    assert layers["caps"] == "dropped"


def test_changed_on_disk_after_verification_runs_verified_bytes(tmp_path: Path) -> None:
    bundle_dir = signed_copy(CORPUS / "good" / "versioned", tmp_path / "v", KEY)
    bundle = verified(bundle_dir, KEY)
    code = bundle_dir / "plugin.py"
    code.write_text(code.read_text().replace("verified-v1", "swapped-v2"))
    assert run(lambda: call_once(bundle, "inspect", [[]])) == "verified-v1"
    # ... and again for a respawn from the same verdict, after a second change.
    code.write_text(code.read_text().replace("swapped-v2", "swapped-v3"))
    assert run(lambda: call_once(bundle, "inspect", [[]])) == "verified-v1"
    # A fresh load reads the disk again and refuses.
    state = TrustState.from_anchors([KEY.anchor()])
    from datetime import UTC, datetime

    fresh = verify_directory(bundle_dir, state, host_version="0.1.0", now=datetime.now(UTC))
    assert fresh.reason is Reason.TAMPERED


def test_plugin_imports_its_own_modules_from_memory(echo: Path) -> None:
    bundle = verified(echo, KEY)
    (echo / "helpers" / "text.py").write_text("def describe(i, t):\n    return 'from disk'\n")
    result = run(lambda: call_once(bundle, "inspect", [["x"]]))
    assert result == [{"segment": 0, "length": 1}]


def test_hook_not_offered(echo: Path) -> None:
    with pytest.raises(SandboxError) as info:
        run(lambda: call_once(verified(echo, KEY), "authenticate", [{}]))
    assert info.value.reason == "hook-not-offered"


def test_plugin_exception_is_an_answer_not_a_crash(echo: Path) -> None:
    async def scenario() -> object:
        child = await SandboxedChild.spawn(verified(echo, KEY), SandboxPolicy())
        try:
            with pytest.raises(SandboxError) as info:
                await child.call("inspect", [None], timeout=2)  # enumerate(None) raises
            assert info.value.reason == "plugin-error"
            assert "TypeError" in info.value.message
            return await child.call("inspect", [["ok"]], timeout=2)
        finally:
            await child.close()

    assert run(scenario) == [{"segment": 0, "length": 2}]


def test_plugin_failing_to_load(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "plugin.toml").write_text((CORPUS / "good" / "echo" / "plugin.toml").read_text())
    (source / "plugin.py").write_text("raise RuntimeError('boom at import')\n")
    bundle_dir = signed_copy(source, tmp_path / "b", KEY)
    with pytest.raises(SandboxError) as info:
        run(lambda: call_once(verified(bundle_dir, KEY), "inspect", [[]]))
    assert info.value.reason == "load-failed"
    assert "boom at import" in info.value.message


def test_policy_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="best-effort"):
        SandboxPolicy(mode="relaxed")


def test_interpreter_site_packages_are_not_readable(tmp_path: Path) -> None:
    """The stdlib is granted entry by entry so its site-packages stays out of reach."""
    import sysconfig

    site = Path(sysconfig.get_path("stdlib")) / "site-packages"
    target = next(p for p in site.rglob("*.py") if p.is_file())
    source = tmp_path / "src"
    source.mkdir()
    (source / "plugin.toml").write_text((CORPUS / "good" / "echo" / "plugin.toml").read_text())
    (source / "plugin.py").write_text(
        "def inspect(segments, ctx):\n"
        "    try:\n"
        "        open(segments).read()\n"
        "    except PermissionError as exc:\n"
        "        return ['blocked', exc.errno]\n"
        "    return ['read']\n"
    )
    bundle = verified(signed_copy(source, tmp_path / "b", KEY), KEY)
    import errno

    assert run(lambda: call_once(bundle, "inspect", [str(target)])) == [
        "blocked",
        errno.EACCES,
    ]


def test_many_children_spawned_at_once(echo: Path) -> None:
    """A child's hello can arrive before spawn() reaches its handshake (the pipe is connected
    first); starting several at once exercises that ordering."""
    import asyncio

    bundle = verified(echo, KEY)

    async def scenario() -> list[tuple[str, ...]]:
        hooks = []
        for _ in range(3):
            children = await asyncio.gather(
                *(SandboxedChild.spawn(bundle, SandboxPolicy()) for _ in range(6))
            )
            hooks += [child.hooks for child in children]
            for child in children:
                await child.close()
        return hooks

    assert run(scenario) == [("inspect",)] * 18


def test_child_runs_on_the_cpus_the_policy_names(echo: Path) -> None:
    """A worker pinned to one CPU co-locates its children (decision 0003)."""
    import os

    cpu = min(os.sched_getaffinity(0))

    async def scenario() -> tuple[set[int], dict[str, str]]:
        child = await SandboxedChild.spawn(
            verified(echo, KEY), SandboxPolicy(cpus=frozenset({cpu}))
        )
        try:
            await child.call("inspect", [["ab"]], timeout=2)
            return os.sched_getaffinity(child.process.pid), child.layers
        finally:
            await child.close()

    placed, layers = run(scenario)
    assert placed == {cpu}
    assert layers["cpus"] == str(cpu)


def test_policy_cpus_outside_the_hosts_set_refuse_the_spawn(echo: Path) -> None:
    import os

    outside = max(os.sched_getaffinity(0)) + 1
    with pytest.raises(SandboxError) as info:
        run(
            lambda: call_once(
                verified(echo, KEY),
                "inspect",
                [["a"]],
                policy=SandboxPolicy(cpus=frozenset({outside})),
            )
        )
    assert info.value.reason == "spawn-failed"
    assert str(outside) in info.value.message


@pytest.mark.parametrize("cpus", [frozenset(), frozenset({-1}), frozenset({True})])
def test_policy_cpus_are_checked(cpus: frozenset[int]) -> None:
    with pytest.raises(ValueError, match="cpus"):
        SandboxPolicy(cpus=cpus)


def test_plugin_imports_the_sdk_and_nothing_else_of_haechi(tmp_path: Path) -> None:
    """The child loads haechi.sdk before confinement; haechi.host, haechi.trust and pluggy
    (what the host has) must stay out of a plugin's reach."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "plugin.toml").write_text((CORPUS / "good" / "echo" / "plugin.toml").read_text())
    (source / "plugin.py").write_text(
        "from haechi.sdk import Detection, hookimpl\n"
        "@hookimpl\n"
        "def inspect(segments):\n"
        "    import importlib\n"
        "    blocked = []\n"
        "    for name in segments:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except ImportError as exc:\n"
        "            blocked.append(type(exc).__name__)\n"
        "        else:\n"
        "            blocked.append('imported')\n"
        "    return [Detection('ok', 0, 0, len(blocked))] + blocked\n"
    )
    bundle = verified(signed_copy(source, tmp_path / "b", KEY), KEY)
    names = ["haechi.trust", "haechi.host", "haechi.host.sandbox", "pluggy", "cryptography"]
    result = run(lambda: call_once(bundle, "inspect", [names]))
    assert result[0] == {"type": "ok", "segment": 0, "start": 0, "end": len(names)}
    assert result[1:] == ["ModuleNotFoundError"] * len(names)


def test_an_eoferror_raised_by_the_plugin_is_a_plugin_error_not_a_crash(tmp_path: Path) -> None:
    """gzip on truncated input raises EOFError; that must not look like the host going away
    (a crash would count towards the breaker, letting input open it)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "plugin.toml").write_text((CORPUS / "good" / "echo" / "plugin.toml").read_text())
    (source / "plugin.py").write_text(
        "import gzip\ndef inspect(segments):\n    gzip.decompress(b'\\x1f\\x8b\\x08\\x00')\n"
    )
    bundle = verified(signed_copy(source, tmp_path / "b", KEY), KEY)

    async def scenario() -> tuple[str, str, bool]:
        child = await SandboxedChild.spawn(bundle, SandboxPolicy())
        try:
            with pytest.raises(SandboxError) as info:
                await child.call("inspect", [["x"]], timeout=2)
            return info.value.reason, info.value.message, child.process.returncode is None
        finally:
            await child.close()

    reason, message, alive = run(scenario)
    assert reason == "plugin-error"
    assert "EOFError" in message
    assert alive
