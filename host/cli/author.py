"""``haechi plugin new`` and ``haechi plugin test``: from nothing to a tested bundle."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from haechi.trust._internal.encoding import printable

from ._args import EXIT_FAILURE, EXIT_USAGE, Once, UsageError

__all__ = ["register"]

NEW_HELP = """\
Create DIR/NAME (default ./NAME): a complete plugin bundle of the given kind, with a
manifest, the code, its own tests and a README, that passes `haechi plugin test` as it is.
NAME becomes the plugin id (lowercase letters, digits, '.', '_', '-'). Never touches an
existing directory. Next: edit plugin.py, run `plugin test`, then keygen, sign and verify."""

TEST_HELP = """\
Load the bundle in DIR into the real sandbox (every layer; signed or not), run the
conformance vectors of its kind, then its own test_*.py files with pytest, and print
one row per check. Auth conformance makes its test credentials at run time and hands
them over through secrets:read (no backdoor); give other secrets with --secrets.
The own tests are code from the bundle and run as you (only the plugin is confined):
for a bundle you did not write, use --no-own-tests.
Exit codes: 0 every check passed, 1 a check failed, 2 usage error."""

MARKS = {"pass": "PASS", "fail": "FAIL", "n/a": "n/a "}


def register(commands: Any) -> None:
    new = commands.add_parser(
        "new", help="create a plugin bundle that passes plugin test", description=NEW_HELP
    )
    new.set_defaults(handler=_new)
    new.add_argument("name", metavar="NAME", help="plugin id and directory name")
    new.add_argument("--kind", required=True, choices=("auth", "filter", "crypto"), action=Once)
    new.add_argument(
        "--dir", type=Path, default=Path("."), action=Once, help="parent directory (default: .)"
    )
    test = commands.add_parser(
        "test", help="run conformance and the bundle's tests in the sandbox", description=TEST_HELP
    )
    test.set_defaults(handler=_test)
    test.add_argument("directory", metavar="DIR", type=Path, help="the plugin bundle")
    test.add_argument(
        "--secrets",
        type=Path,
        action=Once,
        metavar="FILE",
        help='TOML file of name = "value" secrets (mode 0600) for secrets:read',
    )
    test.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="let net:fetch reach this otherwise refused network (repeatable)",
    )
    test.add_argument("--sandbox", choices=("strict", "best-effort"), default="strict", action=Once)
    test.add_argument(
        "--no-own-tests",
        dest="own_tests",
        action="store_false",
        help="conformance only: nothing from the bundle runs outside the sandbox",
    )
    test.add_argument("--format", choices=("text", "json"), default="text", action=Once)


def _new(args: argparse.Namespace) -> int:
    from haechi.host.authoring.scaffold import ScaffoldError, new_bundle

    try:
        target = new_bundle(args.name, args.kind, args.dir)
    except ScaffoldError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"created {target}/")
    for name in sorted(p.name for p in target.iterdir()):
        print(f"  {name}")
    print(f"next: haechi plugin test {target}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from haechi.host.authoring.runner import check_bundle

    from .call import load_secrets

    try:
        secrets = load_secrets(args.secrets)
        networks = tuple(str(ipaddress.ip_network(n, strict=False)) for n in args.allow_network)
    except UsageError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"haechi: error: --allow-network: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = check_bundle(
        args.directory,
        secrets=secrets,
        allow_networks=networks,
        mode=args.sandbox,
        own_tests=args.own_tests,
    )
    if args.format == "json":
        rows = [row.__dict__ for row in report.rows]
        document = {
            "plugin": report.plugin,
            "kind": report.kind,
            "ok": report.ok,
            "rows": rows,
            "notes": report.notes,
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"{report.plugin} ({report.kind})")
        for row in report.rows:
            detail = f"  {printable(row.detail)}" if row.detail else ""
            print(f"  {MARKS[row.status]}  {row.section:<11} {printable(row.name)}{detail}")
        for note in report.notes:
            print(f"note: {note}")
        failed = sum(row.status == "fail" for row in report.rows)
        print("all checks passed" if report.ok else f"{failed} check(s) failed")
    return 0 if report.ok else EXIT_FAILURE


INSTALL_HELP = """\
Copy haechi's first-party plugins (bearer-auth, jwt-auth, pii-filter, secret-filter,
local-aesgcm) into DEST/<id>, after checking every file against the digest list shipped
with the package, and sign each copy with YOUR key (--key), the one your trust state
names. haechi ships no signing key of its own. Never overwrites: an existing DEST/<id>
stops the run before anything is written."""


def register_install(commands: Any) -> None:
    sub = commands.add_parser(
        "install-bundled",
        help="check and sign the first-party plugins with your key",
        description=INSTALL_HELP,
    )
    sub.set_defaults(handler=_install)
    sub.add_argument("--dest", type=Path, required=True, action=Once, help="plugin directory")
    sub.add_argument("--key", type=Path, required=True, action=Once, help="your private key")
    sub.add_argument(
        "--only", action="append", default=[], metavar="ID", help="just this plugin (repeatable)"
    )
    sub.add_argument("--valid-days", type=int, default=365, action=Once, metavar="N")


def _install(args: argparse.Namespace) -> int:
    from haechi.host.authoring.firstparty import FirstPartyError, install_bundled

    from .plugin import load_signing_key

    try:
        key = load_signing_key(args.key)
        installed = install_bundled(
            args.dest, key, only=tuple(args.only), valid_days=args.valid_days
        )
    except UsageError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (FirstPartyError, ValueError) as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    for path in installed:
        print(f"installed {path.name} -> {path} (signed by {key.keyid})")
    return 0
