"""Argument parsing shared by every command: strict, explicit, and with exit code 2 on misuse."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from haechi.trust._internal.encoding import DecodeError, parse_time

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "Once", "Parser", "UsageError", "parse_now"]

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input found after parsing; ``code`` is a stable reason."""

    def __init__(self, message: str, code: str = "usage-error") -> None:
        super().__init__(message)
        self.code = code


class Once(argparse.Action):
    """A single-valued option that may be given only once.

    argparse keeps the last of repeated flags; for a security tool a second ``--trust`` or
    ``--key`` is far more likely a mistake than an intent, so it is refused.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, f"_seen_{self.dest}", False):
            parser.error(f"{option_string} given more than once")
        setattr(namespace, f"_seen_{self.dest}", True)
        setattr(namespace, self.dest, values)


class Parser(argparse.ArgumentParser):
    """No abbreviated options (``--for`` must not mean ``--force``), usage errors exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_time(text)
    except DecodeError as exc:
        raise UsageError(f"--now: {exc}", "invalid-now") from None
