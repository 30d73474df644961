"""``haechi init``, ``haechi gateway``, ``haechi demo`` and ``haechi status``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from haechi.trust._internal.encoding import printable

from ._args import EXIT_FAILURE, EXIT_USAGE, Once

__all__ = ["register"]

INIT_HELP = """\
Write a complete gateway directory: haechi.toml, an operator signing key (0600), a key store
with a nonce budget, the first-party plugins checked against their shipped digests and signed
with the operator key, a trust state that allows exactly their capabilities, and a secrets
file holding the sha256 of one new API token, which is printed once. Never overwrites: with
--force, whatever it replaces is first renamed to <name>.bak-<time>."""

GATEWAY_HELP = """\
Run the gateway: verify every configured plugin against the trust state and start it in the
sandbox, open the audit chain, key store and vault, then serve the model routes on
gateway.listen and /healthz, /readyz, /metrics and /status on the loopback admin listener.
SIGHUP re-applies the trust state (see haechi trust apply); SIGTERM stops gracefully.
--workers N starts N processes sharing the port (SO_REUSEPORT), each pinned to one CPU with
its plugin children, all appending to one audit chain."""

DEMO_HELP = """\
Start an embedded stub model API and a real gateway in a temporary directory, send a handful
of realistic requests, and show what was tokenised, masked, encrypted and blocked, and what
reached the model; then verify the audit chain. Exit 0 when every request got the expected
answer. Nothing leaves this machine."""

STATUS_HELP = """\
Ask a running gateway (its loopback admin listener) for its plugins with their sandbox
layers and breaker states, key budgets, the audit head and the vault size."""


def register(groups: Any) -> None:
    init = groups.add_parser(
        "init", help="write a working gateway directory", description=INIT_HELP
    )
    init.set_defaults(handler=_init)
    init.add_argument("--dir", type=Path, default=Path("."), action=Once)
    init.add_argument("--force", action="store_true", help="replace, keeping .bak- copies")
    init.add_argument("--listen", default="127.0.0.1:8080", action=Once)
    init.add_argument("--openai", default="https://api.openai.com", action=Once, metavar="URL")
    init.add_argument(
        "--anthropic", default="https://api.anthropic.com", action=Once, metavar="URL"
    )
    gateway = groups.add_parser("gateway", help="run the gateway", description=GATEWAY_HELP)
    gateway.set_defaults(handler=_gateway)
    gateway.add_argument("--config", type=Path, default=Path("haechi.toml"), action=Once)
    gateway.add_argument("--workers", type=int, action=Once, help="default: gateway.workers")
    gateway.add_argument("--worker-cpu", type=int, action=Once, help=argparse.SUPPRESS)
    gateway.add_argument("--worker-index", type=int, action=Once, help=argparse.SUPPRESS)
    demo = groups.add_parser("demo", help="show the gateway end to end", description=DEMO_HELP)
    demo.set_defaults(handler=_demo)
    status = groups.add_parser("status", help="show a running gateway", description=STATUS_HELP)
    status.set_defaults(handler=_status)
    status.add_argument("--config", type=Path, default=Path("haechi.toml"), action=Once)
    status.add_argument("--format", choices=("text", "json"), default="text", action=Once)


def _error(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"haechi: error: {printable(message)}", file=sys.stderr)
    return code


def _init(args: argparse.Namespace) -> int:
    from haechi.host.gateway.home import InitError, init_home

    try:
        made = init_home(
            args.dir,
            force=args.force,
            listen=args.listen,
            upstream_openai=args.openai,
            upstream_anthropic=args.anthropic,
        )
    except InitError as exc:
        return _error(str(exc))
    for backup in made.backups:
        print(f"kept the replaced {backup.name.split('.bak-')[0]} as {backup}")
    print(f"wrote {made.directory}: haechi.toml, keys/, plugins/, trust.toml, secrets.toml")
    print(f"API token for principal {made.principal!r} (shown once; only its sha256 is stored):")
    print(f"  {made.token}")
    print(f"next: haechi gateway --config {made.config}")
    return 0


def _load(path: Path) -> Any:
    from haechi.host.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(_error(str(exc), EXIT_USAGE)) from None


def _gateway(args: argparse.Namespace) -> int:
    config = _load(args.config)
    workers = args.workers or config.gateway.workers
    if workers > 1 and args.worker_cpu is None:
        from haechi.host.gateway.workers import run_workers

        return run_workers(args.config, workers)
    return asyncio.run(_serve(config, args.worker_cpu, args.worker_index or 0))


async def _serve(config: Any, cpu: int | None, index: int) -> int:
    import logging

    from haechi.host.gateway.logs import configure_logging
    from haechi.host.gateway.server import StartError, start_runtime

    configure_logging()
    log = logging.getLogger("haechi.gateway")
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # decision 0003: this worker and its children share it
    try:
        runtime = await start_runtime(config, cpu=cpu)
        port, admin = await runtime.listen(admin=index == 0)  # one admin listener per gateway
    except StartError as exc:
        log.error("start failed", extra={"part": exc.part, "reason": exc.message})
        return _error(f"the gateway did not start: {exc}")
    except OSError as exc:
        return _error(f"cannot listen: {exc.strerror or exc}")
    print(
        json.dumps(
            {
                "event": "listening",
                "pid": os.getpid(),
                "port": port,
                "admin_port": admin,
                "cpu": cpu,
            }
        ),
        flush=True,
    )
    log.info("listening", extra={"port": port, "admin_port": admin, "cpu": cpu})
    from haechi.host.gateway.live import PidFile, pid_path

    if index == 0 and cpu is None:  # the top process; a worker parent writes its own
        with PidFile(pid_path(config)):
            await runtime.serve()
    else:
        await runtime.serve()
    log.info("stopped")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from haechi.host.gateway.demo import run_demo

    return run_demo()


def _status(args: argparse.Namespace) -> int:
    config = _load(args.config)
    admin = config.admin.listen
    try:
        with urllib.request.urlopen(f"http://{admin}/status", timeout=5) as response:
            status = json.loads(response.read())
    except OSError as exc:
        return _error(f"no gateway answers on {admin}: {exc}")
    if args.format == "json":
        print(json.dumps(status, indent=2))
        return 0
    print(
        f"haechi {status['version']}  pid {status['pid']}  trust version {status['trust_version']}"
    )
    for plugin in status["plugins"]:
        layers = ", ".join(f"{k} {v}" for k, v in plugin["layers"].items() if k != "rlimits")
        print(
            f"  {plugin['id']} {plugin['version']} ({plugin['kind']})  breaker {plugin['breaker']}"
            f"  idle {plugin['idle_children']}  in flight {plugin['in_flight']}\n    {layers}"
        )
    for key in status["keys"]:
        for version in key["versions"]:
            print(
                f"  key {key['name']} v{version['version']}: used {version['used']} of "
                f"{version['budget']}{'  WARNING' if version['warning'] else ''}"
            )
    audit = status["audit"]
    print(f"  audit {audit['path']}: seq {audit['seq']} head {audit['hash'][:16]}")
    print(f"  vault tokens {status['vault_tokens']}")
    return 0
