"""``haechi plugin call``: verify a bundle, run one hook in the real sandbox, print JSON."""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any

from haechi.trust._internal.encoding import printable

from ._args import EXIT_USAGE, Once, UsageError

__all__ = ["register"]

HELP = """\
Verify the bundle in DIR exactly as `plugin verify` does, start it in the kernel-confined
sandbox, call one hook with --args (a JSON list of positional arguments, or an object of
keyword arguments; {"$base64": "..."} stands for bytes, as in the output) and print the
outcome as JSON on stdout. Each keys:<name> the manifest declares gets fresh random key
material for this call, so sealing works but nothing sealed can be opened by a later call.

Exit codes: 0 the hook answered; 2 usage error; 10-13 verification refused (as plugin
verify); 20 a sandbox layer is unavailable; 21 timeout; 22 the child crashed;
23 protocol violation; 24 the plugin raised, does not offer the hook, failed to load or
set up, or answered in the wrong shape (see sdk/protocol.py);
25 the child could not be started. The JSON "reason" is "refused:<code>" for a refusal."""

EXIT_CODES = {
    "sandbox-layer-unavailable": 20,
    "timeout": 21,
    "crashed": 22,
    "protocol-violation": 23,
    "plugin-error": 24,
    "hook-not-offered": 24,
    "load-failed": 24,
    "invalid-result": 24,
    "setup-failed": 24,
    "spawn-failed": 25,
}


def register(commands: Any) -> None:
    sub = commands.add_parser(
        "call", help="run one hook of a bundle in the sandbox", description=HELP
    )
    sub.set_defaults(handler=_call)
    sub.add_argument("directory", metavar="DIR", type=Path, help="the plugin bundle")
    sub.add_argument("--hook", required=True, action=Once, help="hook name, e.g. inspect")
    sub.add_argument(
        "--args",
        required=True,
        action=Once,
        metavar="JSON",
        help="arguments without ctx (the sandbox adds it), e.g. '[[\"some text\"]]' or "
        '\'{"segments": ["some text"]}\'',
    )
    from .plugin import add_trust_options

    add_trust_options(sub)
    sub.add_argument(
        "--timeout-ms",
        type=int,
        action=Once,
        metavar="N",
        help="call deadline (default: the manifest's limits.timeout-ms)",
    )
    sub.add_argument(
        "--sandbox",
        choices=("strict", "best-effort"),
        default="strict",
        action=Once,
        help="best-effort runs even when a layer is missing, and says so",
    )
    sub.add_argument(
        "--raw",
        action="store_true",
        help="print the answer even if it does not have the hook's wire shape (debugging)",
    )
    sub.add_argument(
        "--secrets",
        type=Path,
        action=Once,
        metavar="FILE",
        help='TOML file of name = "value" secrets (mode 0600) for secrets:read',
    )
    sub.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="let net:fetch reach this otherwise refused network (repeatable)",
    )


def positional(hook: str, named: dict[str, Any]) -> list[Any]:
    """``{"segments": [...]}`` -> ``[[...]]`` in the hook's parameter order (``ctx`` excluded)."""
    from haechi.sdk.protocol import HOOK_PARAMETERS

    if hook not in HOOK_PARAMETERS:
        return list(named.values())  # the child answers hook-not-offered
    names = HOOK_PARAMETERS[hook][:-1]
    unknown = sorted(set(named) - set(names))
    if unknown:
        raise UsageError(f"--args: {hook} has no parameter {unknown[0]!r}; it takes {list(names)}")
    missing = [name for name in names if name not in named]
    if missing:
        raise UsageError(f"--args: {hook} needs {missing[0]!r}; it takes {list(names)}")
    return [named[name] for name in names]


def _call(args: argparse.Namespace) -> int:
    try:
        call_args = json.loads(args.args, object_hook=_from_base64)
    except json.JSONDecodeError as exc:
        return _usage(f"--args: not valid JSON ({exc.msg})")
    except ValueError as exc:
        return _usage(f"--args: {exc}")
    if not isinstance(call_args, list | dict):
        return _usage("--args: give a JSON list (positional) or object (keyword arguments)")
    if args.timeout_ms is not None and not 1 <= args.timeout_ms <= 600_000:
        return _usage("--timeout-ms: must be between 1 and 600000")
    if isinstance(call_args, dict):
        try:
            call_args = positional(args.hook, call_args)
        except UsageError as exc:
            return _usage(str(exc))
    from .plugin import verify_from_args

    try:
        verdict = verify_from_args(args)
    except UsageError as exc:
        return _usage(str(exc), exc.code)
    if not verdict.accepted or verdict.bundle is None:
        return _emit(
            {
                "ok": False,
                "reason": f"refused:{verdict.reason.value}",
                "message": verdict.message,
                "hint": verdict.reason.hint,
            },
            verdict.exit_code,
        )
    try:
        secrets = load_secrets(args.secrets)
        networks = [str(ipaddress.ip_network(n, strict=False)) for n in args.allow_network]
    except UsageError as exc:
        return _usage(str(exc))
    except ValueError as exc:
        return _usage(f"--allow-network: {exc}")
    from haechi.host.sandbox.broker import Broker, KeyRing

    keys = KeyRing()  # each declared keys:<name> gets fresh material, for this one call
    for capability in verdict.bundle.manifest.capabilities:
        if capability.startswith("keys:"):
            keys.add(capability.removeprefix("keys:"), os.urandom(32))
    broker = Broker(
        verdict.bundle.manifest, secrets=secrets, keys=keys, allow_networks=tuple(networks)
    )
    timeout_ms = args.timeout_ms or verdict.bundle.manifest.limits.timeout_ms
    return asyncio.run(_run(verdict.bundle, args, call_args, timeout_ms / 1000, broker))


def load_secrets(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    from haechi.trust._internal.encoding import DecodeError, load_toml
    from haechi.trust._internal.files import FileReadError, read_regular

    try:
        data, mode = read_regular(path, limit=1024 * 1024, what="secrets")
        table = load_toml(data)
    except (FileReadError, DecodeError) as exc:
        raise UsageError(f"--secrets: {exc}") from None
    if mode & 0o077:
        raise UsageError(f"--secrets: {path} is readable by other users; run chmod 600 {path}")
    bad = [k for k, v in table.items() if not isinstance(v, str)]
    if bad:
        raise UsageError(f"--secrets: {printable(bad[0])}: values must be strings")
    return table


async def _run(
    bundle: Any, args: argparse.Namespace, call_args: Any, timeout: float, broker: Any
) -> int:
    from haechi.host.sandbox import SandboxedChild, SandboxError, SandboxPolicy

    child = None
    try:
        child = await SandboxedChild.spawn(bundle, SandboxPolicy(mode=args.sandbox), broker)
        if "setup" in child.hooks and args.hook != "setup":
            await _setup(child, timeout)  # as the gateway does before a child serves
        result = await child.call(args.hook, call_args, timeout=timeout)
        if not args.raw:
            _check(args.hook, result)
    except SandboxError as exc:
        family = exc.reason.split(":", 1)[0]
        reason = f"refused:{exc.reason}" if family == "sandbox-layer-unavailable" else exc.reason
        outcome = {"ok": False, "reason": reason, "message": exc.message}
        if exc.layers:
            outcome["layers"] = exc.layers
        if child is not None:
            outcome["layers"] = child.layers
            outcome["stderr"] = child.stderr.decode("utf-8", "replace")[-4000:]
        return _emit(outcome, EXIT_CODES.get(family, 22))
    finally:
        if child is not None:
            await child.close()
    degraded = [k for k, v in child.layers.items() if v.startswith("unavailable")]
    outcome = {"ok": True, "result": result, "layers": child.layers}
    if degraded:
        outcome["degraded"] = degraded
    return _emit(outcome, 0)


async def _setup(child: Any, timeout: float) -> None:
    from haechi.host.sandbox import SandboxError

    try:
        await child.call("setup", [], timeout=timeout)
    except SandboxError as exc:
        message = f"the plugin's setup hook failed: {exc.message}"
        raise SandboxError("setup-failed", message) from None


def _check(hook: str, result: Any) -> None:
    from haechi.host.sandbox import SandboxError
    from haechi.sdk.protocol import ResultError, check_result

    try:
        check_result(hook, result)
    except ResultError as exc:
        raise SandboxError("invalid-result", f"{exc} (--raw prints it anyway)") from None


def _from_base64(value: dict[str, Any]) -> Any:
    """``{"$base64": "..."}`` in --args is bytes, as in the output."""
    if set(value) != {"$base64"}:
        return value
    try:
        return base64.b64decode(value["$base64"], validate=True)
    except (TypeError, ValueError):
        raise ValueError('{"$base64": ...} must hold standard base64 text') from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _emit(outcome: dict[str, Any], code: int) -> int:
    print(json.dumps(outcome, indent=2, default=_jsonable))
    if not outcome["ok"]:
        print(f"haechi: {outcome['reason']}: {printable(outcome['message'])}", file=sys.stderr)
    return code


def _usage(message: str, code: str = "usage-error") -> int:
    print(f"haechi: error: {printable(message)}", file=sys.stderr)
    print(json.dumps({"ok": False, "reason": code, "message": message}, indent=2))
    return EXIT_USAGE
