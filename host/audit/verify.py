"""Verify an audit log file, or a directory holding a rotated series, and name the first break.

Rules this module enforces, per line in chain order (the first failure is reported):

1. complete: ends with a newline (``torn-line``), at most ``MAX_LINE`` bytes (``line-too-long``);
2. well formed: a JSON object without duplicate keys (``not-json``), a valid envelope
   (``bad-envelope``), a known kind (``unknown-kind``), only allowed fields (``field-not-allowed``,
   ``field-missing``, ``field-invalid``), canonical bytes (``not-canonical``);
3. untampered: its hash matches its bytes (``hash-mismatch``);
4. chained: ``seq`` is the previous ``seq`` + 1 (``sequence-gap``) and ``prev`` is the previous
   hash (``prev-mismatch``); the first line of a chain has seq 1 and the genesis hash;
5. rotation: every file after the first starts with a ``rotate`` event naming the file before
   it and chaining from its last line; ``rotate`` appears nowhere else (``rotation-gap``).
   The first file given may start with a ``rotate`` event (older archives were removed).

Only a usage problem (path missing, no or several series in a directory) raises
:class:`AuditError`; everything about the content is in the returned :class:`VerifyReport`.

Example::

    >>> from haechi.host.audit import verify
    >>> report = verify("/var/lib/haechi/audit")  # doctest: +SKIP
    >>> report.ok, report.lines, report.first_broken  # doctest: +SKIP
    (True, 120433, None)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .chain import GENESIS, MAX_LINE, ChainHead, Line, parse_line
from .layout import series
from .schema import AuditError

__all__ = ["Location", "VerifyReport", "verify"]


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    files: tuple[str, ...]
    lines: int  # lines verified good, before the first break if any
    head: ChainHead | None  # the last good line
    first_broken: Location | None = None
    reason: str | None = None
    message: str = ""

    def as_json(self) -> dict[str, object]:
        broken = self.first_broken
        return {
            "ok": self.ok,
            "files": list(self.files),
            "lines": self.lines,
            "head": {"seq": self.head.seq, "hash": self.head.hash} if self.head else None,
            "first_broken": {"file": broken.file, "line": broken.line} if broken else None,
            "reason": self.reason,
            "message": self.message,
        }


class _Broken(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _raw_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while raw := handle.readline(MAX_LINE + 1):
            if len(raw) > MAX_LINE:
                raise _Broken("line-too-long", f"a line is longer than {MAX_LINE} bytes")
            yield raw


def _check_start(line: Line, before: ChainHead | None, previous_file: str | None) -> None:
    """The first line of a file: a chain start, or a rotate event continuing ``before``."""
    if line.event.kind == "rotate":
        fields = dict(line.event.fields)
        if fields["previous_hash"] != line.prev:
            raise _Broken("rotation-gap", "the rotate event's previous_hash is not its prev")
        if previous_file is not None and fields["previous_file"] != previous_file:
            raise _Broken(
                "rotation-gap",
                f"rotated from {fields['previous_file']}, but the file before is {previous_file}",
            )
        if before is not None:
            _check_link(line, before, "rotation-gap")
        return
    if previous_file is not None:
        raise _Broken(
            "rotation-gap", f"the file does not start with a rotate event after {previous_file}"
        )
    if line.seq != 1:
        raise _Broken("sequence-gap", f"the chain starts at seq {line.seq}, not 1")
    if line.prev != GENESIS:
        raise _Broken("prev-mismatch", "the first line's prev is not the genesis hash")


def _check_link(line: Line, before: ChainHead, reason: str | None = None) -> None:
    if line.seq != before.seq + 1:
        raise _Broken(reason or "sequence-gap", f"seq {line.seq} follows seq {before.seq}")
    if line.prev != before.hash:
        raise _Broken(reason or "prev-mismatch", f"prev is not the hash of seq {before.seq}")


def _verify_file(path: Path, head: ChainHead | None, previous: str | None) -> Iterator[ChainHead]:
    """Yield the head after each good line; raise :class:`_Broken` at the first bad one."""
    number = 0
    for raw in _raw_lines(path):
        number += 1
        if not raw.endswith(b"\n"):
            raise _Broken(
                "torn-line",
                f"torn tail: {len(raw)} bytes after the last complete line "
                "(a writer repairs it when it next opens the log)",
            )
        try:
            line = parse_line(raw)
        except AuditError as exc:
            raise _Broken(exc.reason, str(exc).split(": ", 1)[-1]) from None
        if number == 1:
            _check_start(line, head, previous)
        elif line.event.kind == "rotate":
            raise _Broken("rotation-gap", "a rotate event that does not start its file")
        else:
            assert head is not None
            _check_link(line, head)
        head = ChainHead(line.seq, line.hash)
        yield head
    if number == 0 and previous is not None:
        raise _Broken("rotation-gap", f"the file is empty, but follows {previous}")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return series(path)
    if path.is_file():
        return [path]
    raise AuditError("no-audit-files", f"{path} is not a file or directory")


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Verify one file, or the whole rotated series in a directory."""
    files = _files(Path(path))
    names = tuple(str(f) for f in files)
    head: ChainHead | None = None
    lines = 0
    previous: str | None = None
    for file in files:
        number = 0
        try:
            for good in _verify_file(file, head, previous):
                head = good
                number += 1
                lines += 1
        except _Broken as broken:
            where = Location(str(file), number + 1)
            message = f"{where.file}:{where.line}: {broken.reason}: {broken.message}"
            return VerifyReport(False, names, lines, head, where, broken.reason, message)
        previous = file.name
    message = f"ok: {lines} lines in {len(files)} file(s)"
    if head is not None:
        message += f", head seq {head.seq} hash {head.hash}"
    return VerifyReport(True, names, lines, head, message=message)
