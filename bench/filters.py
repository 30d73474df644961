#!/usr/bin/env python3
"""Text throughput of the first-party pii-filter + secret-filter, sandboxed against in-process.

For each input size (1 KiB and 64 KiB by default) one deterministic text is built: ordinary
prose with an email and a phone number, a card number or an API key every ~200 bytes, as a chat
request that needs filtering would have. Then, alternating in slices of ``--slice`` seconds
until each side has had ``--seconds`` per repeat:

* **sandboxed**: both plugins loaded from their bundles into real sandboxed children (the
  default strict ``SandboxPolicy``: every confinement layer) behind ``PluginSupervisor``, and
  each request is the two ``inspect`` calls issued together, as the gateway runs filters in
  parallel; every answer is checked by the host as in production;
* **in-process**: the same bundle code loaded with ``haechi.sdk.runtime.load_plugin`` in this
  process and called one after the other, with no process boundary, no IPC and no checks.

Throughput is input MB (10^6 bytes) per second, counting the text once per request (both
filters read it). The ratio is in-process / sandboxed, so 2.0x means the sandbox halves the
throughput. Reported as median (min-max) over ``--repeat`` repeats.

Run from the repository root: ``.venv/bin/python bench/filters.py`` (``--help`` for options).
Results are recorded in bench/results/filters.md. Standard library and haechi only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from haechi.host.sandbox import SandboxPolicy
from haechi.host.sandbox.supervisor import PluginSupervisor, SupervisorPolicy
from haechi.sdk.runtime import Plugin, load_plugin
from haechi.trust import Bundle, read_bundle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_facts

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("pii-filter", "secret-filter")
SENTENCES = (
    "Thanks for the summary of yesterday's planning meeting, it was helpful. ",
    "Could you rewrite the paragraph below so that it sounds less formal? ",
    "The quarterly numbers look fine, but the forecast for March seems optimistic. ",
    "Please draft a short reply to the customer and keep it under a hundred words. ",
)
SENSITIVE = (
    "Reach me at jane.doe@example.com or +1 415 555 2671. ",
    "The card on file is 4111 1111 1111 1111, expiry next year. ",
    "The deploy key is ghp_EXAMPLE0123456789abcdefghijklmnopqrst, do not share it. ",
)


def build_text(size: int) -> str:
    parts: list[str] = []
    length, index = 0, 0
    while length < size:
        piece = SENTENCES[index % len(SENTENCES)]
        if index % 3 == 2:
            piece = SENSITIVE[(index // 3) % len(SENSITIVE)]
        parts.append(piece)
        length += len(piece)
        index += 1
    return "".join(parts)[:size]


def in_process(bundle: Bundle) -> Plugin:
    """Load a bundle's code here; its sibling modules are dropped from sys.modules afterwards
    so the next bundle's modules of the same name (both filters ship ``textspan``) load fresh."""
    before = set(sys.modules)
    finders = list(sys.meta_path)
    plugin = load_plugin(dict(bundle.files), bundle.manifest.entry, bundle.manifest.kind)
    for name in set(sys.modules) - before:
        if not name.startswith(("haechi", "encodings")):
            del sys.modules[name]
    sys.meta_path[:] = finders
    return plugin


async def sandboxed_slice(sups: list[PluginSupervisor], text: str, seconds: float) -> int:
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        await asyncio.gather(*(sup.call("inspect", [[text]]) for sup in sups))
        done += 1
    return done


def in_process_slice(plugins: list[Plugin], text: str, seconds: float) -> int:
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for plugin in plugins:
            plugin.call("inspect", [[text]], None)
        done += 1
    return done


async def measure(
    bundles: list[Bundle], plugins: list[Plugin], text: str, args: argparse.Namespace
) -> dict[str, float]:
    policy = SupervisorPolicy(pool_size=1, call_timeout=30.0)
    sups = [PluginSupervisor(b, policy, SandboxPolicy()) for b in bundles]
    for sup in sups:
        await sup.start()
    try:
        answers = await asyncio.gather(*(sup.call("inspect", [[text]]) for sup in sups))
        direct = [p.call("inspect", [[text]], None) for p in plugins]
        if answers != direct:
            raise SystemExit("the sandboxed and in-process answers differ; not measuring")
        if not all(answers):
            raise SystemExit("a filter found nothing in the benchmark text; not measuring")
        boxed = plain = 0
        boxed_time = plain_time = 0.0
        while boxed_time < args.seconds or plain_time < args.seconds:
            start = time.perf_counter()
            boxed += await sandboxed_slice(sups, text, args.slice)
            boxed_time += time.perf_counter() - start
            start = time.perf_counter()
            plain += in_process_slice(plugins, text, args.slice)
            plain_time += time.perf_counter() - start
    finally:
        for sup in sups:
            await sup.close()
    size = len(text.encode())
    sandboxed = boxed * size / boxed_time / 1e6
    direct_mbs = plain * size / plain_time / 1e6
    return {"sandboxed": sandboxed, "in_process": direct_mbs, "ratio": direct_mbs / sandboxed}


def span(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="repeats (default: %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="seconds per side per repeat (default: 1.0)"
    )
    parser.add_argument(
        "--slice", type=float, default=0.25, help="alternation slice in seconds (default: 0.25)"
    )
    parser.add_argument(
        "--sizes", default="1024,65536", help="input sizes in bytes (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    bundles = [read_bundle(ROOT / "plugins" / name) for name in PLUGINS]
    plugins = [in_process(b) for b in bundles]
    facts = machine_facts()
    print(
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {facts['machine']}, nproc "
        f"{facts['nproc']}, Linux {facts['kernel']}, {facts['cpu']}, {facts['python']}",
        file=sys.stderr,
    )
    rows: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
    for repeat in range(args.repeat):
        for size in sizes:
            result = asyncio.run(measure(bundles, plugins, build_text(size), args))
            rows[size].append(result)
            print(
                f"repeat {repeat + 1}/{args.repeat} {size} B: sandboxed "
                f"{result['sandboxed']:.2f} MB/s, in-process {result['in_process']:.2f} MB/s",
                file=sys.stderr,
            )
    print("| input | sandboxed MB/s | in-process MB/s | ratio (in-process / sandboxed) |")
    print("|---|---:|---:|---:|")
    for size, results in rows.items():
        print(
            f"| {size // 1024} KiB | {span([r['sandboxed'] for r in results], '.2f')} "
            f"| {span([r['in_process'] for r in results], '.2f')} "
            f"| {span([r['ratio'] for r in results], '.2f')}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
