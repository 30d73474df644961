"""First-party plugins: shipped unsigned with a digest list, signed by the operator's own key.

No private key of ours is ever committed or shipped, so nobody can trust our plugins by
trusting us blindly. Instead:

* the package carries the bundles under ``plugins/`` and ``plugins/first-party.json``, the
  sha256 of every file of every bundle (kept equal to the files by a test, and by
  ``make digests`` when a plugin changes);
* :func:`load_bundled` reads each listed file once (no symlinks), checks it against the list,
  refuses unexpected files, and builds the bundle from those checked bytes;
* :func:`install_bundled` writes the checked bytes to the operator's plugin directory and signs
  that very bundle, in memory, with the operator's key (the key their trust state names), so
  what is signed is what was checked. ``haechi init`` (the gateway's setup) calls it; tests
  sign copies with throwaway keys the same way.

Example::

    bundles = load_bundled()                         # raises FirstPartyError on any mismatch
    install_bundled(Path("/etc/haechi/plugins"), operator_key)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from datetime import datetime
from pathlib import Path

import haechi.sdk
from haechi.trust import (
    Bundle,
    BundleError,
    Envelope,
    ManifestError,
    SigningKey,
)
from haechi.trust._internal.files import FileReadError, read_regular
from haechi.trust.bundle import MAX_TOTAL_BYTES, SIGNATURE_FILE
from haechi.trust.signing import DEFAULT_VALID_DAYS, envelope_for

__all__ = [
    "DIGEST_FILE",
    "FirstPartyError",
    "bundled_root",
    "digest_document",
    "install_bundled",
    "load_bundled",
    "write_digests",
]

DIGEST_FILE = "first-party.json"
FORMAT = "haechi.first-party.v1"
IGNORED = {"__pycache__"}  # bytecode a test run may leave beside a bundle's modules


class FirstPartyError(Exception):
    """A shipped bundle does not match its digest list, or cannot be installed; says which."""


def bundled_root() -> Path:
    """``plugins/`` of this installation: beside ``sdk/`` in a checkout and in the wheel."""
    return Path(haechi.sdk.__file__).resolve().parent.parent / "plugins"


def digest_document(root: Path) -> dict[str, object]:
    """The digest list for the bundles under ``root`` as they are now (maintainers' tool)."""
    plugins: dict[str, object] = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in IGNORED):
        files = {
            path: hashlib.sha256((directory / path).read_bytes()).hexdigest()
            for path in _walk(directory)
        }
        plugins[directory.name] = {"files": files}
    return {"format": FORMAT, "plugins": plugins}


def write_digests(root: Path | None = None) -> Path:
    """Rewrite ``plugins/first-party.json`` from the files (``make digests``)."""
    root = root or bundled_root()
    text = json.dumps(digest_document(root), indent=2, sort_keys=True) + "\n"
    (root / DIGEST_FILE).write_text(text, encoding="utf-8")
    return root / DIGEST_FILE


def load_bundled(root: Path | None = None, only: tuple[str, ...] = ()) -> list[Bundle]:
    """Every listed bundle (or those in ``only``), each checked file by file."""
    root = root or bundled_root()
    listed = _listing(root)
    unknown = sorted(set(only) - set(listed))
    if unknown:
        raise FirstPartyError(f"{unknown[0]!r} is not a first-party plugin ({', '.join(listed)})")
    return [_checked(root / name, name, listed[name]) for name in (only or tuple(listed))]


def install_bundled(
    destination: Path,
    key: SigningKey,
    *,
    only: tuple[str, ...] = (),
    valid_days: int = DEFAULT_VALID_DAYS,
    now: datetime | None = None,
    root: Path | None = None,
) -> list[Path]:
    """Write each checked bundle to ``destination/<id>`` with ``plugin.sig`` signed by ``key``.

    Nothing is overwritten: an existing ``destination/<id>`` (even a dangling symlink) refuses
    the run before anything is written; every bundle is staged first and renamed into place
    last, and a failure part-way removes those already renamed, so a run installs everything
    it was asked for or nothing.
    """
    bundles = load_bundled(root, only)
    taken = [b.manifest.id for b in bundles if os.path.lexists(destination / b.manifest.id)]
    if taken:
        raise FirstPartyError(
            f"{destination / taken[0]} already exists; remove it or install into another directory"
        )
    envelopes = [envelope_for(b, key, valid_days=valid_days, now=now) for b in bundles]
    staged: list[tuple[Path, Path]] = []
    try:
        destination.mkdir(parents=True, exist_ok=True)
        for bundle, envelope in zip(bundles, envelopes, strict=True):
            target = destination / bundle.manifest.id
            staged.append((_stage(target, bundle, envelope), target))
        return _publish_all(staged)
    except OSError as exc:
        raise FirstPartyError(f"cannot install into {destination}: {exc.strerror or exc}") from None
    finally:
        for staging, _ in staged:
            shutil.rmtree(staging, ignore_errors=True)


# --- reading -----------------------------------------------------------------------------------


def _listing(root: Path) -> dict[str, dict[str, str]]:
    try:
        data, _ = read_regular(root / DIGEST_FILE, limit=1 << 20, what="digest list")
        document = json.loads(data)
    except (FileReadError, ValueError) as exc:
        raise FirstPartyError(f"cannot read the first-party digest list: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise FirstPartyError(f"{root / DIGEST_FILE}: not a {FORMAT} document")
    plugins = document.get("plugins")
    if not isinstance(plugins, dict) or not plugins:
        raise FirstPartyError(f"{root / DIGEST_FILE}: plugins: must list at least one bundle")
    listed = {}
    for name, entry in plugins.items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise FirstPartyError(f"{root / DIGEST_FILE}: plugins.{name}.files: a map of digests")
        listed[name] = files
    return listed


def _checked(directory: Path, name: str, expected: dict[str, str]) -> Bundle:
    present = set(_walk(directory)) if directory.is_dir() else set()
    extra = sorted(present - set(expected))
    if extra:
        raise FirstPartyError(f"{name}: unexpected file {extra[0]!r}; it is not in the digest list")
    files: dict[str, bytes] = {}
    for path, digest in sorted(expected.items()):
        try:
            data, _ = read_regular(
                directory / path, limit=MAX_TOTAL_BYTES, what="plugin", follow_symlinks=False
            )
        except FileReadError as exc:
            raise FirstPartyError(f"{name}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise FirstPartyError(
                f"{name}: {path} does not match the shipped digest; reinstall haechi"
            )
        files[path] = data
    try:
        bundle = Bundle.from_files(files)
    except (BundleError, ManifestError) as exc:
        raise FirstPartyError(f"{name}: {exc}") from None
    if bundle.manifest.id != name:
        raise FirstPartyError(f"{name}: its manifest says id {bundle.manifest.id!r}")
    return bundle


def _walk(directory: Path) -> list[str]:
    paths = []
    for current, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED)
        for file_name in names:
            relative = (Path(current) / file_name).relative_to(directory).as_posix()
            if relative != SIGNATURE_FILE:
                paths.append(relative)
    return sorted(paths)


# --- writing -----------------------------------------------------------------------------------


def _stage(target: Path, bundle: Bundle, envelope: Envelope) -> Path:
    staging = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
    staging.mkdir()
    for path, data in bundle.files.items():
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
        (staging / path).write_bytes(data)
    (staging / SIGNATURE_FILE).write_bytes(envelope.to_json())
    return staging


def _publish_all(staged: list[tuple[Path, Path]]) -> list[Path]:
    """Rename every staged bundle into place, or none: a failure takes back the ones done."""
    done: list[Path] = []
    try:
        for staging, target in staged:
            os.rename(staging, target)  # fails on an existing directory or a dangling symlink
            done.append(target)
    except OSError:
        for target in done:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return done
