"""``haechi plugin new NAME --kind KIND``: a complete bundle that passes ``plugin test``.

The templates live in ``haechi.sdk`` (``sdk/scaffold/``) so they ship with the SDK. The bundle
is written into a fresh directory beside the target and renamed into place, so an interrupted
run leaves nothing half-made, and an existing directory is never touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from string import Template

import haechi.sdk
from haechi.trust import Manifest, ManifestError
from haechi.trust.manifest import check_plugin_id

__all__ = ["ScaffoldError", "new_bundle"]

TEMPLATES = Path(haechi.sdk.__file__).resolve().parent / "scaffold"
KINDS = ("auth", "filter", "crypto")


class ScaffoldError(Exception):
    """Why no bundle was written; the message says what to change."""


def new_bundle(name: str, kind: str, parent: Path) -> Path:
    """Write bundle ``parent/name`` for a plugin of ``kind``; return its directory."""
    if kind not in KINDS:
        raise ScaffoldError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    try:
        check_plugin_id(name)  # before NAME goes into any file or path
    except ManifestError as exc:
        raise ScaffoldError(f"NAME {name!r} cannot be a plugin id: {exc}") from None
    target = parent / name
    if target.exists() or target.is_symlink():
        raise ScaffoldError(f"{target} already exists; choose another NAME or --dir")
    values = {"plugin_id": name, "kind": kind}
    files = {
        template.name.removesuffix(".tmpl"): _fill(template, values)
        for template in sorted((TEMPLATES / kind).glob("*.tmpl"))
    }
    manifest = Manifest.from_toml(files["plugin.toml"])
    allow = " ".join(f"--allow-capability {c}" for c in manifest.capabilities)
    files["README.md"] = _fill(TEMPLATES / "README.md.tmpl", {**values, "allow": allow})
    _write_all(target, files)
    return target


def _write_all(target: Path, files: dict[str, bytes]) -> None:
    staging = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()  # the user's umask decides the mode, as for any new directory
        for file_name, data in files.items():
            (staging / file_name).write_bytes(data)
        os.rename(staging, target)  # atomic; fails rather than merging if target appeared
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ScaffoldError(f"cannot create {target}: {exc.strerror or exc}") from None


def _fill(template: Path, values: dict[str, str]) -> bytes:
    return Template(template.read_text(encoding="utf-8")).substitute(values).encode("utf-8")
