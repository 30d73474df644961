#!/usr/bin/env python3
"""Gateway throughput and added latency with wrk, against the embedded stub model API.

Setup (everything on loopback, in a temporary directory): ``haechi init`` defaults (sandboxed
bearer-auth, pii-filter, secret-filter, local-aesgcm; audit with fsync "interval"), a high
rate limit so that the limiter does not answer instead of the pipeline, and the stub model API
in its own process. Bodies are 1 KiB OpenAI chat requests:

* ``pii``: an e-mail address and a phone number (redacted and masked, then forwarded);
* ``pii+card``: the same plus a card number, the issue's benchmark body; a card is a hard-block
  type here, so these requests end ``403 blocked:card`` after the whole filter path and never
  reach the upstream.

For each body, ``wrk`` runs against the stub directly (the baseline) and through the gateway
with 1 and 2 workers, at 1 connection (latency) and 64 connections (throughput); the added
latency is gateway p50 minus stub p50 at one connection, measured in the same run. wrk's
"Non-2xx" count shows whether any valid credential was refused.

For the gateway runs at 64 connections, the CPU each request cost is split by process (from
/proc, in ms of CPU per completed request): the gateway workers, their sandboxed plugin
children, the stub and wrk. Everything shares the two vCPUs, so a saturated run's CPU shares
sum to about 2 s per second, and this split says which part a change should go after.

Run from the repository root (needs ``wrk``: ``apt-get install wrk``):
``.venv/bin/python bench/gateway/run.py`` (``--help``). Results: bench/results/gateway.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from haechi.host.gateway.home import init_home

LOREM = (
    "Please summarise the attached meeting notes for the team and keep it short. "
    "The quarterly review moved to Thursday; bring the revised forecast and the hiring plan. "
)
BODIES = {
    "pii": "Mail jane.doe@example.com or call +1 415 555 2671 about it. ",
    "pii+card": "Mail jane.doe@example.com or call +1 415 555 2671; card 4111 1111 1111 1111. ",
}
STUB = """
import asyncio, sys
from haechi.host.gateway.stub import StubUpstream
async def main():
    stub = StubUpstream(port=int(sys.argv[1]))
    print(await stub.start(), flush=True)
    stub.received = _Discard()
    await asyncio.Event().wait()
class _Discard(list):
    def append(self, item): pass
asyncio.run(main())
"""
LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def body_for(kind: str) -> str:
    text = BODIES[kind] + LOREM * 20
    content = text[: 1024 - 120]
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})


def wrk(
    url: str, script: Path, connections: int, seconds: int, cpu: CpuSplit | None = None
) -> dict[str, float]:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    before = cpu.sample() if cpu else {}
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=False
    )
    after = cpu.sample() if cpu else {}
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed against {url}: {done.stderr.strip() or done.stdout.strip()}")
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _duration(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _duration(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result = {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }
    if cpu:
        done_count = re.search(r"(\d+) requests in", out)
        requests = max(float(done_count.group(1)) if done_count else rps * seconds, 1.0)
        wrk_cpu = (reaped.ru_utime + reaped.ru_stime) - (waited.ru_utime + waited.ru_stime)
        used = {group: after[group] - before.get(group, 0.0) for group in after}
        used["wrk"] = wrk_cpu
        result.update({f"cpu_{group}": 1000 * s / requests for group, s in used.items()})
    return result


class CpuSplit:
    """CPU seconds used so far by the gateway's workers, their plugin children and the stub."""

    def __init__(self, gateway: int, stub: int) -> None:
        self.gateway, self.stub = gateway, stub

    def sample(self) -> dict[str, float]:
        parents, commands, seconds = _processes()
        totals = {"gateway": 0.0, "plugins": 0.0, "stub": seconds.get(self.stub, 0.0)}
        for pid in _descendants(self.gateway, parents):
            # Workers run haechi's CLI; every other process below the gateway is a sandbox.
            group = "gateway" if "haechi.host.cli" in commands[pid] else "plugins"
            totals[group] += seconds[pid]
        return totals


def _processes() -> tuple[dict[int, int], dict[int, str], dict[int, float]]:
    parents, commands, seconds = {}, {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        pid = int(name)
        parents[pid] = int(fields[1])
        commands[pid] = command
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick
    return parents, commands, seconds


def _descendants(root: int, parents: dict[int, int]) -> list[int]:
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return [pid for pid in found if pid in parents]


def _duration(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run (default: 10)")
    parser.add_argument("--workers", default="1,2", help="worker counts (default: 1,2)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    results: list[tuple[str, str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="haechi-bench-") as scratch:
        home = Path(scratch)
        stub_port = free_port()
        stub, stub_url = start([sys.executable, "-c", STUB, str(stub_port)])
        try:
            for kind in BODIES:
                script = home / f"{kind}.lua"
                results += run_body(home, kind, script, stub_url, stub.pid, args)
        finally:
            stub.terminate()
    print(table(results))
    print()
    print(cpu_table(results))
    return 0


def run_body(
    home: Path, kind: str, script: Path, stub_url: str, stub_pid: int, args: argparse.Namespace
):
    rows = []
    body = body_for(kind)
    gateway_home = home / f"gw-{kind}"
    port = free_port()
    made = init_home(
        gateway_home,
        listen=f"127.0.0.1:{port}",
        admin=f"127.0.0.1:{free_port()}",
        upstream_openai=stub_url,
        upstream_anthropic=stub_url,
    )
    with made.config.open("a") as config:
        config.write("\n[rate_limit]\nrequests_per_minute = 10000000\nburst = 1000000\n")
    script.write_text(LUA.format(body=json.dumps(body), token=made.token))
    stub_route = f"{stub_url}/v1/chat/completions"
    for connections in (1, 64):
        rows.append(
            (kind, "stub alone", connections, wrk(stub_route, script, connections, args.seconds))
        )
    for workers in (int(w) for w in args.workers.split(",")):
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "haechi.host.cli",
                "gateway",
                "--config",
                str(made.config),
                "--workers",
                str(workers),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        for _ in range(workers):
            process.stdout.readline()
        time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        wrk(url, script, 8, 2)  # warm-up: pools, caches, first windows
        split = CpuSplit(process.pid, stub_pid)
        for connections in (1, 64):
            measured = wrk(
                url, script, connections, args.seconds, split if connections > 1 else None
            )
            rows.append((kind, f"gateway, {workers} worker(s)", connections, measured))
        process.terminate()
        process.wait(30)
    return rows


def table(results: list[tuple[str, str, int, dict[str, float]]]) -> str:
    lines = [
        "| body | target | connections | req/s | p50 ms | p99 ms | non-2xx | added p50 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = {(k, c): r["p50_ms"] for k, t, c, r in results if t == "stub alone"}
    for kind, target, connections, r in results:
        added = "" if target == "stub alone" else f"{r['p50_ms'] - base[(kind, connections)]:.2f}"
        lines.append(
            f"| {kind} | {target} | {connections} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['non2xx']:.0f} | {added} |"
        )
    return "\n".join(lines)


def cpu_table(results: list[tuple[str, str, int, dict[str, float]]]) -> str:
    groups = ("gateway", "plugins", "stub", "wrk")
    lines = [
        "| body | target | connections | " + " | ".join(f"{g} ms/req" for g in groups) + " |",
        "|---|---|---:|" + "---:|" * len(groups),
    ]
    for kind, target, connections, r in results:
        if "cpu_gateway" in r:
            cells = " | ".join(f"{r[f'cpu_{g}']:.3f}" for g in groups)
            lines.append(f"| {kind} | {target} | {connections} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
