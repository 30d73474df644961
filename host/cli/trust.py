"""``haechi trust init | sign | show``: create, k-of-n sign and inspect trust-state files."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w
from haechi.trust import KeyFileError, SigningKey, TrustStateError, load_anchor
from haechi.trust._internal.encoding import format_time, printable
from haechi.trust._internal.files import write_file
from haechi.trust.state import (
    TrustState,
    check_update,
    is_signed_state,
    load_trust,
    read_state,
    read_state_bytes,
    read_state_envelope,
    sign_state,
)

from ._args import EXIT_FAILURE, EXIT_USAGE, Once, Parser, UsageError, parse_now

__all__ = ["register"]

INIT_HELP = """\
Write a new trust-state draft (TOML) listing the given anchors. Edit it to add thresholds,
revocations, version floors, pins and the capability allowlist, then sign it with
`haechi trust sign` if it declares --root keys. See docs/authors/signing.md."""

SIGN_HELP = """\
Sign a trust state with one root key. Signing a TOML draft writes a signed envelope (by
default next to it, as NAME.signed.json); signing an envelope adds one more signature
in place, so k root holders can each run this once (k-of-n). When the new state changes
the roots, the old roots must sign it too: pass --previous OLD to allow their keys."""

SHOW_HELP = """\
Check a trust-state file as `plugin verify` would load it (signatures, expiry) and print
what it trusts. --previous OLD also applies the update rule: the new state must have a
higher version and be signed by a threshold of OLD's roots. Exit 0 valid, 1 refused."""

_HEADER = """\
# haechi trust state. Every key is checked: a typo is an error, not ignored.
#   [[anchors]]      keys trusted to sign plugins; kinds = which plugin kinds each may sign
#   [thresholds]     signatures needed per kind, e.g. auth = 2 (author + operator)
#   [revoked]        keys (key ids), digests (bundle digests), plugins ("id@version")
#   [floors]         lowest accepted version per plugin id, e.g. "pii-filter" = "1.2.0"
#   [pins]           plugin id -> the one accepted bundle digest
#   [capabilities]   allow = the capabilities plugins may be granted
#   [roots]          keys that sign this file (k-of-n); raise version on every change
"""


APPLY_HELP = """\
Check FILE as the successor of the gateway's current trust state (valid, newer version,
signed by the current roots if it has any), install it in place of plugins.trust atomically
(the old one is kept as <name>.bak-<time>), and tell the running gateway (SIGHUP to the pid in
haechi.pid beside the config). The gateway verifies every loaded plugin again: revoked ones are
drained and stopped within 5 s, new versions on disk are swapped in; each with an audit event.
Waits until the gateway reports the new version (--timeout)."""


def register(groups: Any) -> None:
    group = groups.add_parser("trust", help="create, sign and inspect trust-state files")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    init = commands.add_parser("init", help="write a new trust-state draft", description=INIT_HELP)
    init.add_argument("--out", required=True, type=Path, action=Once, metavar="FILE")
    init.add_argument(
        "--anchor",
        action="append",
        default=[],
        type=Path,
        metavar="PUB",
        help="a .pub file trusted to sign plugins (repeatable)",
    )
    init.add_argument(
        "--root",
        action="append",
        default=[],
        type=Path,
        metavar="PUB",
        help="a .pub file that may sign this trust state (repeatable)",
    )
    init.add_argument(
        "--root-threshold",
        type=int,
        action=Once,
        metavar="K",
        help="root signatures required (default 1)",
    )
    init.add_argument(
        "--expires-days",
        type=int,
        default=365,
        action=Once,
        metavar="N",
        help="days until the state expires (default 365)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing FILE")
    init.set_defaults(handler=_init)

    sign = commands.add_parser(
        "sign", help="sign a trust state with a root key", description=SIGN_HELP
    )
    sign.add_argument("file", type=Path, metavar="FILE")
    sign.add_argument("--key", required=True, type=Path, action=Once, help="a root private key")
    sign.add_argument(
        "--out", type=Path, action=Once, metavar="OUT", help="where to write the signed state"
    )
    sign.add_argument(
        "--previous",
        type=Path,
        action=Once,
        metavar="OLD",
        help="the state being replaced: its root keys may sign too (root rotation)",
    )
    sign.add_argument(
        "--force", action="store_true", help="replace an existing OUT when signing a draft"
    )
    sign.set_defaults(handler=_sign)

    show = commands.add_parser("show", help="check and print a trust state", description=SHOW_HELP)
    show.add_argument("file", type=Path, metavar="FILE")
    show.add_argument("--previous", type=Path, action=Once, metavar="OLD")
    show.add_argument("--now", action=Once, metavar="RFC3339")
    show.add_argument("--format", choices=("text", "json"), default="text", action=Once)
    show.set_defaults(handler=_show)

    apply = commands.add_parser(
        "apply", help="load a newer trust state into the running gateway", description=APPLY_HELP
    )
    apply.add_argument("file", type=Path, metavar="FILE")
    apply.add_argument("--config", type=Path, default=Path("haechi.toml"), action=Once)
    apply.add_argument("--timeout", type=float, default=10.0, action=Once, metavar="SECONDS")
    apply.set_defaults(handler=_apply)


def _anchor_table(path: Path, *, kinds: bool) -> dict[str, Any]:
    try:
        anchor = load_anchor(path)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None
    table: dict[str, Any] = {
        "keyid": anchor.keyid,
        "algorithm": anchor.algorithm,
        "public-key": TrustState.from_anchors([anchor]).to_document()["anchors"][0]["public-key"],
    }
    if kinds:
        table["kinds"] = list(anchor.kinds)
    return table


def _init(args: argparse.Namespace) -> int:
    if not 1 <= args.expires_days <= 3650:
        raise UsageError("--expires-days: must be between 1 and 3650")
    if args.root_threshold is not None and not args.root:
        raise UsageError("--root-threshold needs at least one --root")
    doc: dict[str, Any] = {
        "version": 1,
        "expires": format_time(datetime.now(UTC) + timedelta(days=args.expires_days)),
        "anchors": [_anchor_table(p, kinds=True) for p in args.anchor],
        "thresholds": {},
        "revoked": {"keys": [], "digests": [], "plugins": []},
        "floors": {},
        "pins": {},
        "capabilities": {"allow": []},
    }
    if args.root:
        doc["roots"] = {
            "threshold": args.root_threshold or 1,
            "keys": [_anchor_table(p, kinds=False) for p in args.root],
        }
    try:
        TrustState.from_document(doc, str(args.out))
    except TrustStateError as exc:
        raise UsageError(str(exc)) from None
    if not doc["anchors"]:
        del doc["anchors"]  # TOML cannot append [[anchors]] tables after `anchors = []`
    data = (_HEADER + tomli_w.dumps(doc)).encode("utf-8")
    if not _write(args.out, data, overwrite=args.force):
        return EXIT_FAILURE
    print(f"wrote {args.out} (version 1, expires {doc['expires']})")
    return 0


def _sign(args: argparse.Namespace) -> int:
    try:
        key = SigningKey.load(args.key)
    except KeyFileError as exc:
        raise UsageError(f"--key: {exc}") from None
    try:
        previous = read_state(args.previous) if args.previous else None
        envelope = sign_state(args.file, key, previous)
    except TrustStateError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror}") from None
    is_envelope = is_signed_state(read_state_bytes(args.file))
    out = args.out or (args.file if is_envelope else args.file.with_suffix(".signed.json"))
    in_place = is_envelope and out.resolve() == args.file.resolve()
    # Adding a signature to an envelope in place is the k-of-n workflow; writing a fresh
    # envelope over another file could replace a live state, so that needs --force.
    if not _write(out, envelope.to_json(), overwrite=in_place or args.force):
        return EXIT_FAILURE
    print(f"wrote {out} ({len(envelope.signatures)} root signature(s), last by {key.keyid})")
    return 0


def _write(path: Path, data: bytes, *, overwrite: bool) -> bool:
    try:
        write_file(path, data, mode=0o644, overwrite=overwrite)
    except FileExistsError:
        print(f"haechi: error: {path} already exists; pass --force to replace it", file=sys.stderr)
        return False
    except OSError as exc:
        print(f"haechi: error: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def _show(args: argparse.Namespace) -> int:
    now = parse_now(args.now)
    try:
        state = load_trust(args.file, now=now)
        if args.previous is not None:
            previous = read_state(args.previous)
            envelope = read_state_envelope(read_state_bytes(args.file), args.file)
            check_update(previous, state, envelope)
    except TrustStateError as exc:
        _print_refusal(args.format, exc)
        return EXIT_FAILURE
    if args.format == "json":
        print(
            json.dumps(
                {
                    "valid": True,
                    "reason": "ok",
                    "signedBy": list(state.signed_by),
                    "state": state.to_document(),
                },
                indent=2,
            )
        )
    else:
        print(_describe(state))
    return 0


def _print_refusal(fmt: str, exc: TrustStateError) -> None:
    if fmt == "json":
        print(json.dumps({"valid": False, "reason": exc.code, "message": str(exc)}, indent=2))
    else:
        print(f"REFUSED  {exc.code}: {printable(str(exc))}")


def _describe(state: TrustState) -> str:
    lines = [f"VALID    {state.source}"]
    if state.version is not None and state.expires is not None:
        lines.append(f"  version  {state.version}, expires {format_time(state.expires)}")
    if state.roots:
        lines.append(
            f"  roots    {state.roots.threshold} of {len(state.roots.anchors)}; "
            f"signed by {', '.join(state.signed_by) or 'nobody (draft)'}"
        )
    for anchor in state.anchors.values():
        lines.append(f"  anchor   {anchor.keyid}  kinds: {', '.join(anchor.kinds)}")
    if state.thresholds:
        lines.append("  needs    " + ", ".join(f"{k}: {n}" for k, n in state.thresholds.items()))
    lines.append(
        f"  revoked  {len(state.revoked_keys)} key(s), {len(state.revoked_digests)} "
        f"digest(s), {len(state.revoked_plugins)} release(s)"
    )
    for plugin_id, floor in state.floors.items():
        lines.append(f"  floor    {plugin_id} >= {floor}")
    for plugin_id, digest in state.pins.items():
        lines.append(f"  pin      {plugin_id} = {digest}")
    allow = ", ".join(sorted(state.allowed_capabilities)) or "(none: plugins may declare none)"
    lines.append(f"  allow    {allow}")
    return "\n".join(lines)


def _apply(args: argparse.Namespace) -> int:
    from haechi.host.config import ConfigError, load_config
    from haechi.host.gateway.live import ApplyError, apply_trust_file

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        version = apply_trust_file(config, args.file, timeout=args.timeout)
    except ApplyError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"the gateway now runs trust state version {version}")
    return 0
