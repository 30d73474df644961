"""``haechi keys init | rotate | show``: the gateway's sealing keys and their nonce budgets.

Rules: key bytes are never printed; ``init`` never replaces an existing key (use ``rotate``);
``rotate`` keeps every old version so stored values still open; exit 0 ok, 1 failed (a file
is missing, invalid or exists; a budget is spent), 2 usage (bad name or flag).

Example::

    haechi keys init /etc/haechi/keys --name vault
    haechi keys rotate /etc/haechi/keys vault
    haechi keys show /etc/haechi/keys --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from haechi.host.keys import KeyStatus, KeyStore, KeyStoreError
from haechi.host.keys.store import check_name
from haechi.trust._internal.encoding import printable

from ._args import EXIT_FAILURE, Once, UsageError

__all__ = ["register"]

INIT_HELP = """\
Create the key directory DIR (mode 0700) if needed and a first 256-bit key NAME in it
(DIR/NAME.key.json, mode 0600, and its nonce budget DIR/NAME.budget.json). Refuses if
NAME exists: use `haechi keys rotate` for a new version."""

ROTATE_HELP = """\
Add a new version of key NAME and make it current. Old versions stay in the file so values
they sealed still open. Running gateways seal with the new version from their next seal.
Rotate when `haechi keys show` warns (half of the 2^32 seals a version may make) or
refuses (all of them), or whenever the key may have leaked."""

SHOW_HELP = """\
Print each key's versions, which is current, and its nonce budget: `reserved` is the
high-water mark persisted before use (an upper bound of seals made; windows not used up
by a process that stopped are wasted), `used` what processes reported as sealed when they
finished a window (a lower bound). Never prints key bytes. Exit 1 if a file is invalid."""


def register(groups: Any) -> None:
    group = groups.add_parser("keys", help="create, rotate and inspect the gateway's sealing keys")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(group))
    commands.required = True

    init = commands.add_parser("init", help="create a key directory and key", description=INIT_HELP)
    init.add_argument("dir", type=Path, metavar="DIR")
    init.add_argument("--name", default="vault", action=Once, help="key name (default: vault)")
    init.set_defaults(handler=_init)

    rotate = commands.add_parser(
        "rotate", help="start a new version of a key", description=ROTATE_HELP
    )
    rotate.add_argument("dir", type=Path, metavar="DIR")
    rotate.add_argument("name", metavar="NAME")
    rotate.set_defaults(handler=_rotate)

    show = commands.add_parser("show", help="print keys and budgets", description=SHOW_HELP)
    show.add_argument("dir", type=Path, metavar="DIR")
    show.add_argument("--format", choices=("text", "json"), default="text", action=Once)
    show.set_defaults(handler=_show)


def _name(value: str) -> str:
    try:
        return check_name(value)
    except KeyStoreError as exc:
        raise UsageError(exc.message, exc.reason) from None


def _fail(exc: KeyStoreError) -> int:
    print(f"haechi: error: {printable(exc.message)} [{exc.reason}]", file=sys.stderr)
    return EXIT_FAILURE


def _init(args: argparse.Namespace) -> int:
    name = _name(args.name)
    try:
        store = KeyStore.init(args.dir, name)
    except KeyStoreError as exc:
        return _fail(exc)
    print(f"created key {name!r} version 1 in {store.key_path(name)} (mode 0600)")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    name = _name(args.name)
    store = KeyStore(args.dir)
    try:
        version = store.rotate(name)
    except KeyStoreError as exc:
        return _fail(exc)
    kept = "version 1 stays" if version == 2 else f"versions 1-{version - 1} stay"
    print(
        f"key {name!r}: version {version} is now current in {store.key_path(name)}; {kept} "
        "for opening; running gateways switch at their next seal"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    store = KeyStore(args.dir)
    statuses: list[KeyStatus] = []
    failed = False
    try:
        names = store.names()
        for name in names:
            try:
                statuses.append(store.status(name))
            except KeyStoreError as exc:
                failed = True
                _fail(exc)
    except KeyStoreError as exc:
        return _fail(exc)
    failed = failed or any(s.problem for s in statuses)
    if args.format == "json":
        document = {"directory": str(args.dir), "keys": [_key_json(s) for s in statuses]}
        print(json.dumps(document, indent=2))
    else:
        _print_text(args.dir, statuses)
    return EXIT_FAILURE if failed else 0


def _key_json(status: KeyStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "file": status.path,
        "current": status.current,
        "problem": status.problem,
        "versions": [
            {
                "version": v.version,
                "created": v.created,
                "current": v.version == status.current,
                "reserved": v.reserved,
                "used": v.used,
                "budget": v.budget,
                "warning": v.warning,
                "exhausted": v.exhausted,
            }
            for v in status.versions
        ],
    }


def _print_text(directory: Path, statuses: list[KeyStatus]) -> None:
    if not statuses:
        print(f"no keys in {directory}; create one with `haechi keys init {directory}`")
    for status in statuses:
        print(f"{status.name}: current version {status.current} ({status.path})")
        if status.problem:
            print(f"  PROBLEM: {printable(status.problem)}")
        for v in status.versions:
            role = "current" if v.version == status.current else "open only"
            if v.reserved is None:
                print(f"  v{v.version}  created {v.created}  no budget count  {role}")
                continue
            share = 100 * v.reserved / v.budget
            print(
                f"  v{v.version}  created {v.created}  reserved {v.reserved} of {v.budget} "
                f"({share:.4g}%)  used >= {v.used}  {role}"
            )
            if v.version == status.current and v.exhausted:
                print(f"  EXHAUSTED: sealing is refused; run `haechi keys rotate {status.name}`")
            elif v.version == status.current and v.warning:
                print(f"  WARNING: past half the budget; run `haechi keys rotate {status.name}`")
