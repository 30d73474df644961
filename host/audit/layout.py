"""File names of a rotated audit series.

Rules this module enforces:

1. The active log is ``<stem>.jsonl``; ``<stem>`` must not itself end in ``.<digits>``, so an
   active name can never be mistaken for an archive.
2. Archives are ``<stem>.<n>.jsonl`` with ``n`` = 1, 2, 3, ... in the order they were rotated
   out; the series in chain order is the archives by ascending ``n``, then the active file.
3. A directory holds one series; several stems in one directory are refused
   (``several-series``), since interleaving two chains cannot be verified.

Example::

    >>> from pathlib import Path
    >>> from haechi.host.audit.layout import archive_path, parse_name
    >>> archive_path(Path("/var/log/haechi/audit.jsonl"), 3).name
    'audit.3.jsonl'
    >>> parse_name("audit.3.jsonl"), parse_name("audit.jsonl"), parse_name("notes.txt")
    (('audit', 3), ('audit', None), None)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from .schema import AuditError

__all__ = ["SUFFIX", "archive_path", "archives", "check_active_name", "parse_name", "series"]

SUFFIX: Final = ".jsonl"
_NAME: Final = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*?)(?:\.([1-9][0-9]{0,9}))?\.jsonl", re.ASCII)
_ENDS_IN_NUMBER: Final = re.compile(r".*\.[0-9]+", re.ASCII)


def parse_name(name: str) -> tuple[str, int | None] | None:
    """``(stem, n)`` for an archive, ``(stem, None)`` for an active log, None for other files."""
    match = _NAME.fullmatch(name)
    if not match or _ENDS_IN_NUMBER.fullmatch(match.group(1)):
        return None
    return match.group(1), int(match.group(2)) if match.group(2) else None


def check_active_name(path: Path) -> None:
    parsed = parse_name(path.name)
    if parsed is None or parsed[1] is not None:
        raise AuditError(
            "config-invalid",
            f"audit log name {path.name[:80]!r} must be <stem>.jsonl, the stem starting with a "
            "letter or digit and not ending in .<digits>",
            "path",
        )


def archive_path(active: Path, n: int) -> Path:
    return active.with_name(f"{active.name[: -len(SUFFIX)]}.{n}{SUFFIX}")


def archives(active: Path) -> list[tuple[int, Path]]:
    """The rotated-out files of ``active``, oldest first."""
    stem = active.name[: -len(SUFFIX)]
    found: list[tuple[int, Path]] = []
    for entry in active.parent.iterdir():
        parsed = parse_name(entry.name)
        if parsed is not None and parsed[0] == stem and parsed[1] is not None:
            found.append((parsed[1], entry))
    return sorted(found)


def series(directory: Path) -> list[Path]:
    """The one series in ``directory``, in chain order; refuses none or several."""
    stems = sorted(
        {parsed[0] for entry in directory.iterdir() if (parsed := parse_name(entry.name))}
    )
    if not stems:
        raise AuditError("no-audit-files", f"no <stem>.jsonl audit files in {directory}")
    if len(stems) > 1:
        raise AuditError(
            "several-series", f"{directory} holds several audit series: {', '.join(stems[:5])}"
        )
    active = directory / f"{stems[0]}{SUFFIX}"
    files = [path for _, path in archives(active)]
    return [*files, active] if active.exists() else files
