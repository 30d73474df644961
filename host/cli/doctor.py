"""``haechi doctor``: which sandbox layers this kernel gives, and what a call costs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._args import Once

__all__ = ["register"]

HELP = """\
Start a probe plugin in the sandbox (best-effort, so every layer is tried and reported),
print each layer's availability on this kernel, the profile each plugin kind runs under,
and a micro-benchmark (cold spawn p50/p90, 1 KiB call round trip p50/p99).
Exit 0 when every layer is available; 1 when one is missing (strict mode would refuse
plugins on this machine)."""


def register(groups: Any) -> None:
    sub = groups.add_parser(
        "doctor", help="check the sandbox layers this kernel gives", description=HELP
    )
    sub.set_defaults(handler=_doctor)
    sub.add_argument("--format", choices=("text", "json"), default="text", action=Once)
    sub.add_argument(
        "--calls",
        type=int,
        default=1000,
        action=Once,
        metavar="N",
        help="calls to time (default 1000)",
    )
    sub.add_argument(
        "--spawns",
        type=int,
        default=10,
        action=Once,
        metavar="N",
        help="cold spawns to time (default 10)",
    )


def _doctor(args: argparse.Namespace) -> int:
    from haechi.host.sandbox.doctor import examine

    if not (1 <= args.calls <= 100_000 and 1 <= args.spawns <= 1000):
        from ._args import UsageError

        raise UsageError("--calls must be 1-100000 and --spawns 1-1000")
    report = examine(spawns=args.spawns, calls=args.calls)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.complete else 1
    print(f"kernel   {report.kernel} ({report.machine})")
    for layer, state in report.layers.items():
        mark = "MISSING" if state.startswith("unavailable") else "ok     "
        print(f"  {mark} {layer:<13} {state}")
    print("profiles")
    for kind, profile in report.profiles.items():
        print(
            f"  {kind:<7} hooks: {', '.join(profile['hooks'])}; "
            f"capabilities: {', '.join(profile['capabilities'])}"
        )
    paths = report.profiles["filter"]["read_only_paths"]
    print(f"  every kind reads only the stdlib and the SDK ({len(paths)} paths; --format json)")
    spawn, call = report.spawn_ms, report.call_us
    print(f"cold spawn to loaded  p50 {spawn['p50']} ms, p90 {spawn['p90']} ms (n={spawn['n']})")
    print(f"1 KiB call round trip p50 {call['p50']} us, p99 {call['p99']} us (n={call['n']})")
    if not report.complete:
        print("MISSING layers: strict mode refuses plugins here; see docs/threat-model.md")
        return 1
    return 0
