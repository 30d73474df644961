"""``haechi plugin keygen | sign | verify`` (also spelled ``plugin-keygen`` and so on); ``new``,
``test`` (author.py) and ``call`` (call.py) join the same group."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from haechi.host import __version__
from haechi.trust import (
    BundleError,
    EnvelopeError,
    KeyFileError,
    ManifestError,
    SigningKey,
    TrustStateError,
    Verdict,
    countersign_bundle,
    load_trust,
    sign_bundle,
    verify_directory,
)
from haechi.trust._internal.encoding import printable
from haechi.trust.render import to_json, to_sarif, to_text, usage_json_dict, usage_sarif
from haechi.trust.signing import DEFAULT_VALID_DAYS, MAX_VALID_DAYS, write_keypair
from packaging.version import InvalidVersion, Version

from ._args import EXIT_FAILURE, EXIT_USAGE, Once, Parser, UsageError, parse_now

__all__ = ["add_trust_options", "load_signing_key", "register", "verify_from_args"]

EXIT_BUNDLE_INVALID = 10

KEYGEN_HELP = """\
Create an Ed25519 signing key pair:
  DIR/NAME.key  the private key (PKCS#8 PEM, mode 0600); keep it secret
  DIR/NAME.pub  the trust anchor to give to operators and CI
Prints the key id. Never overwrites a file unless --force is given, and never writes
through a symlink."""

SIGN_HELP = """\
Sign the bundle in DIR as it is now and write DIR/plugin.sig. Every file in DIR is
covered, so sign last, after tests and formatting. --countersign adds your signature to
the existing envelope (an operator's "vetted" mark, a second maintainer) and refuses if
the files changed since they were signed."""

VERIFY_HELP = """\
Verify the bundle in DIR against trust anchors and policy, and print a verdict.
--trust is a .pub anchor file, a directory of .pub files, or a trust-state file.
Exit codes: 0 accepted, 2 usage error, 10 invalid, 11 untrusted, 12 policy,
13 capability not allowed. --format json is a stable contract (docs/reference/verdict.md)."""


def register(groups: Any) -> None:
    group = groups.add_parser("plugin", help="create keys, sign and verify plugin bundles")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name, add, handler, summary, text in (
        ("keygen", _add_keygen, _keygen, "create an Ed25519 signing key pair", KEYGEN_HELP),
        ("sign", _add_sign, _sign, "sign a bundle (writes DIR/plugin.sig)", SIGN_HELP),
        ("verify", _add_verify, _verify, "verify a bundle and print a verdict", VERIFY_HELP),
    ):
        add(commands.add_parser(name, help=summary, description=text), handler)
        # The original's spellings, kept working but not listed in --help.
        add(groups.add_parser(f"plugin-{name}", description=text), handler)
    # Late: these import the sandbox, which verify-only users (CI) never need.
    from . import author, call

    author.register(commands)
    author.register_install(commands)
    call.register(commands)


def _add_keygen(sub: argparse.ArgumentParser, handler: Any) -> None:
    sub.set_defaults(handler=handler)
    sub.add_argument(
        "--out",
        required=True,
        action=Once,
        metavar="DIR",
        type=Path,
        help="directory for the key files (created 0700 if missing)",
    )
    sub.add_argument(
        "--name",
        default="plugin-signer",
        action=Once,
        help="file name stem (default: plugin-signer)",
    )
    sub.add_argument("--force", action="store_true", help="replace existing key files")


def _add_sign(sub: argparse.ArgumentParser, handler: Any) -> None:
    sub.set_defaults(handler=handler)
    sub.add_argument("directory", metavar="DIR", type=Path, help="the plugin bundle")
    sub.add_argument("--key", required=True, action=Once, type=Path, help="private key file")
    sub.add_argument(
        "--valid-days",
        type=int,
        action=Once,
        metavar="N",
        help=f"validity window from now (default {DEFAULT_VALID_DAYS}, at most {MAX_VALID_DAYS})",
    )
    sub.add_argument(
        "--countersign", action="store_true", help="add a signature to the existing plugin.sig"
    )


def _add_verify(sub: argparse.ArgumentParser, handler: Any) -> None:
    sub.set_defaults(handler=handler)
    sub.add_argument("directory", metavar="DIR", type=Path, help="the plugin bundle")
    add_trust_options(sub)
    sub.add_argument(
        "--format",
        choices=("text", "json", "sarif"),
        default="text",
        action=Once,
        help="output format (default text)",
    )


def add_trust_options(sub: argparse.ArgumentParser) -> None:
    """--trust, --allow-capability, --host-version, --now: what verification is judged by."""
    sub.add_argument(
        "--trust",
        required=True,
        action=Once,
        metavar="PATH",
        help=".pub file, directory of .pub files, or trust-state file",
    )
    sub.add_argument(
        "--allow-capability",
        action="append",
        default=[],
        metavar="CAP",
        help="allow a declared capability (repeatable)",
    )
    sub.add_argument(
        "--host-version",
        action=Once,
        metavar="V",
        help=f"host version to check requires-host against (default {__version__})",
    )
    sub.add_argument(
        "--now",
        action=Once,
        metavar="RFC3339",
        help="evaluate validity at this time, e.g. 2026-01-31T12:00:00Z",
    )


def _keygen(args: argparse.Namespace) -> int:
    key = SigningKey.generate()
    try:
        write_keypair(args.out, args.name, key, force=args.force)
    except KeyFileError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"haechi: error: {exc.filename or args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    print(key.keyid)
    print(
        f"wrote {args.out / (args.name + '.key')} (private, 0600) and "
        f"{args.out / (args.name + '.pub')} (anchor)",
        file=sys.stderr,
    )
    return 0


def load_signing_key(path: Path) -> SigningKey:
    try:
        return SigningKey.load(path)
    except KeyFileError as exc:
        raise UsageError(f"--key: {exc}") from None


def _sign(args: argparse.Namespace) -> int:
    if args.countersign and args.valid_days is not None:
        raise UsageError(
            "--valid-days cannot be combined with --countersign: a countersignature "
            "covers the window the author signed"
        )
    days = DEFAULT_VALID_DAYS if args.valid_days is None else args.valid_days
    if not 1 <= days <= MAX_VALID_DAYS:
        raise UsageError(f"--valid-days: must be between 1 and {MAX_VALID_DAYS}")
    key = load_signing_key(args.key)
    try:
        if args.countersign:
            envelope = countersign_bundle(args.directory, key)
        else:
            envelope = sign_bundle(args.directory, key, valid_days=days)
    except (BundleError, ManifestError) as exc:
        print(
            f"haechi: error: cannot sign {args.directory}: {printable(str(exc))}", file=sys.stderr
        )
        return EXIT_BUNDLE_INVALID
    except EnvelopeError as exc:
        print(f"haechi: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(
            f"haechi: error: cannot write {args.directory}/plugin.sig: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    action = "countersigned" if args.countersign else "signed"
    print(
        f"{action} {args.directory} with key {key.keyid} "
        f"({len(envelope.signatures)} signature(s) in plugin.sig)"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        return _run_verify(args)
    except UsageError as exc:
        _report_usage(args, str(exc), exc.code)
        return EXIT_USAGE


def verify_from_args(args: argparse.Namespace) -> Verdict:
    """Verify ``args.directory`` as the trust options say; UsageError for bad options."""
    now = parse_now(args.now)
    host_version = args.host_version or __version__
    try:
        Version(host_version)
    except InvalidVersion:
        raise UsageError(f"--host-version: {host_version!r} is not a PEP 440 version") from None
    try:
        state = load_trust(args.trust, now=now).with_capabilities(args.allow_capability)
    except TrustStateError as exc:
        raise UsageError(f"--trust: {exc}", exc.code) from None
    except ManifestError as exc:
        raise UsageError(str(exc).removeprefix("plugin.toml: ")) from None
    return verify_directory(args.directory, state, host_version=host_version, now=now)


def _run_verify(args: argparse.Namespace) -> int:
    verdict = verify_from_args(args)
    if args.format == "json":
        print(to_json(verdict))
    elif args.format == "sarif":
        print(
            to_sarif(
                verdict,
                tool_version=__version__,
                artifact=_artifact_uri(args.directory / "plugin.sig"),
            )
        )
    else:
        print(to_text(verdict))
    return verdict.exit_code


def _artifact_uri(path: Path) -> str:
    """A relative path stays relative (code scanning resolves it against the checkout);
    an absolute one becomes a file:// URI, as SARIF requires."""
    return path.as_uri() if path.is_absolute() else path.as_posix()


def _report_usage(args: argparse.Namespace, message: str, code: str) -> None:
    """Usage errors still give CI a machine-readable object in the format it asked for."""
    print(f"haechi: error: {printable(message)}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(usage_json_dict(code, message), indent=2))
    elif args.format == "sarif":
        artifact = _artifact_uri(args.directory / "plugin.sig")
        print(usage_sarif(code, message, tool_version=__version__, artifact=artifact))
