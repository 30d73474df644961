"""``haechi audit verify PATH``: check an audit log file or a rotated series, name the first break.

Exit codes: 0 the chain is intact, 1 it is broken (the first broken line is printed as
``FILE:LINE: REASON: why``), 2 usage error (no such path, no or several series in a directory).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from haechi.host.audit import AuditError, verify
from haechi.trust._internal.encoding import printable

from ._args import EXIT_FAILURE, Parser, UsageError

__all__ = ["register"]

VERIFY_HELP = """\
Verify an audit log: every line's hash, the chain of hashes and sequence numbers, the event
schema, and, for a directory, the rotated series in order (audit.1.jsonl, audit.2.jsonl, ...,
audit.jsonl). Prints the first broken line as FILE:LINE: REASON: why. Exit 0 intact, 1 broken,
2 usage error. See docs/reference/audit.md."""


def register(groups: Any) -> None:
    """Add ``haechi audit ...`` to the top-level parser's subcommands."""
    _add_commands(groups.add_parser("audit", help="verify audit logs"))


def _add_commands(group: argparse.ArgumentParser) -> None:
    commands = group.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    check = commands.add_parser("verify", help="verify an audit log", description=VERIFY_HELP)
    check.add_argument("path", type=Path, metavar="PATH", help="a log file or its directory")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    try:
        report = verify(args.path)
    except AuditError as exc:
        raise UsageError(str(exc), exc.reason) from None
    except OSError as exc:
        raise UsageError(f"cannot read {args.path}: {exc.strerror}", "unreadable") from None
    if args.format == "json":
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(printable(report.message))
    return 0 if report.ok else EXIT_FAILURE
