"""haechi.sdk.testing drives the real sandbox: setup, broker, keys, answer checks, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from haechi.sdk import Detection
from haechi.sdk.testing import PluginCallError, load, plugin_fixture

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

lifecycle = plugin_fixture(
    CORPUS / "behaviours" / "lifecycle", name="lifecycle", secrets={"mode": "relaxed"}
)


def test_fixture_runs_setup_with_the_given_secret(lifecycle) -> None:
    assert lifecycle.inspect(["anything"]) == [Detection("mode", 0, 0, 0, label="relaxed")]
    assert [e.kind for e in lifecycle.events] == ["spawn"]


def test_the_sandbox_is_real(lifecycle) -> None:
    [spawn] = [e for e in lifecycle.events if e.kind == "spawn"]
    layers = spawn.detail["layers"]
    assert layers["seccomp"] == "on" and layers["landlock"].startswith("abi ")


def test_a_failed_start_raises_with_the_reason() -> None:
    with (
        pytest.raises(PluginCallError) as info,
        load(CORPUS / "behaviours" / "lifecycle", secrets={"mode": "fail"}),
    ):
        pass
    assert info.value.reason == "setup-failed"


def test_invalid_answers_are_refused_by_the_host(tmp_path: Path) -> None:
    source = tmp_path / "odd"
    shutil.copytree(CORPUS / "good" / "echo", source)  # echo answers a non-detection shape
    with load(source) as plugin, pytest.raises(PluginCallError) as info:
        plugin.call("inspect", ["abc"])
    assert info.value.reason == "invalid-result"


def test_keys_are_provided_and_their_use_counted() -> None:
    with load(CORPUS / "good" / "keyed", key_budget=2) as plugin:
        sealed = plugin.encrypt(b"m", {"aad": b"a"})
        plugin.encrypt(b"m", {"aad": b"a"})
        with pytest.raises(PluginCallError) as info:
            plugin.encrypt(b"m", {"aad": b"a"})
        assert info.value.reason == "plugin-error"
        assert "key-exhausted" in info.value.message
        assert plugin.key_uses("vault") == 2
        assert plugin.decrypt(sealed, {"aad": b"a"}) == b"m"
        with pytest.raises(PluginCallError, match="key-open-failed"):
            plugin.decrypt(sealed, {"aad": b"b"})
