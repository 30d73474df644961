"""Shared fixtures: real bundles on disk, real keys, and the real ``haechi`` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from haechi.trust import SigningKey, sign_bundle
from haechi.trust.signing import write_keypair

MANIFEST = """\
id = "{id}"
version = "{version}"
kind = "{kind}"
entry = "plugin.py"
description = "A test plugin"
requires-host = "{requires_host}"
capabilities = {capabilities}

[limits]
timeout-ms = 500
memory-mb = 64
concurrency = 2
"""


def manifest_text(
    *,
    id: str = "test-plugin",
    version: str = "1.2.0",
    kind: str = "filter",
    requires_host: str = ">=0.1",
    capabilities: list[str] | None = None,
) -> str:
    caps = json.dumps(capabilities if capabilities is not None else ["request:body-text"])
    return MANIFEST.format(
        id=id, version=version, kind=kind, requires_host=requires_host, capabilities=caps
    )


def write_bundle(
    directory: Path, manifest: str | None = None, files: dict[str, str] | None = None
) -> Path:
    """A bundle with plugin.toml, plugin.py and any extra ``{relative path: content}``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(manifest or manifest_text())
    (directory / "plugin.py").write_text("def inspect(segments, ctx):\n    return []\n")
    for name, content in (files or {}).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return directory


def dump_envelope(document: dict[str, Any]) -> str:
    """Serialise an envelope document the way haechi writes it (its canonical form)."""
    return json.dumps(document, indent=2) + "\n"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str | Path, cwd: Path | None = None) -> Result:
    """Run the installed ``haechi`` CLI as a user would, in its own process."""
    proc = subprocess.run(
        [sys.executable, "-m", "haechi.host.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli


@dataclass
class KeyPair:
    key: SigningKey
    private: Path
    public: Path

    @property
    def keyid(self) -> str:
        return self.key.keyid


@pytest.fixture
def make_key(tmp_path: Path) -> Callable[[str], KeyPair]:
    """Write a fresh key pair to tmp_path/keys/NAME.{key,pub}."""

    def make(name: str) -> KeyPair:
        key = SigningKey.generate()
        write_keypair(tmp_path / "keys", name, key)
        return KeyPair(key, tmp_path / "keys" / f"{name}.key", tmp_path / "keys" / f"{name}.pub")

    return make


@pytest.fixture
def author(make_key: Callable[[str], KeyPair]) -> KeyPair:
    return make_key("author")


@pytest.fixture
def signed(tmp_path: Path, author: KeyPair) -> Path:
    """A filter bundle signed by ``author``, valid from now for 30 days."""
    bundle = write_bundle(tmp_path / "bundle", files={"lib/util.py": "X = 1\n"})
    sign_bundle(bundle, author.key, valid_days=30)
    return bundle


ALLOW = ("--allow-capability", "request:body-text")


def anchor_table(pair: KeyPair, kinds: list[str] | None = None) -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads(pair.public.read_text())
    if kinds is not None:
        table["kinds"] = kinds
    return table


def write_state(path: Path, anchors: list[dict[str, Any]], **sections: Any) -> Path:
    """A trust-state TOML file valid for a year, with the given anchors and sections."""
    doc: dict[str, Any] = {
        "version": sections.pop("version", 1),
        "expires": sections.pop("expires", "2099-01-01T00:00:00Z"),
        "anchors": anchors,
        **sections,
    }
    path.write_text(tomli_w.dumps(doc))
    return path
