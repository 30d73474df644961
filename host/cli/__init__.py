"""The ``haechi`` command line: one module per command group.

Exit codes shared by every command: 0 success, 1 the operation failed (e.g. a file exists),
2 usage error (bad flag, unreadable key or trust file, invalid --now). ``plugin verify`` adds
10 invalid, 11 untrusted, 12 policy and 13 capability not allowed (DESIGN §2).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from haechi.host import __version__
from haechi.trust._internal.encoding import printable

from . import audit, doctor, gateway, keys, plugin, trust
from ._args import EXIT_FAILURE, EXIT_USAGE, Parser, UsageError

__all__ = ["main"]

_EPILOG = """\
exit codes: 0 ok, 1 failed, 2 usage error; plugin verify: 10 invalid, 11 untrusted,
12 policy, 13 capability not allowed.  Docs: docs/authors/signing.md, docs/ci.md"""


def build_parser() -> Parser:
    parser = Parser(
        prog="haechi",
        description="haechi: signed, sandboxed plugins in front of AI model APIs.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"haechi {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser)
    groups.required = True
    plugin.register(groups)
    trust.register(groups)
    doctor.register(groups)
    audit.register(groups)
    keys.register(groups)
    gateway.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except UsageError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
    return result


if __name__ == "__main__":
    sys.exit(main())
