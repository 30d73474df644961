#!/usr/bin/env python3
"""What a sandboxed plugin costs: cold spawn, warm round trip, calls/s, idle memory.

Everything goes through the real sandbox: ``SandboxedChild`` / ``PluginSupervisor`` with the
default ``SandboxPolicy()`` (strict: every layer is required, so a missing layer aborts the run
instead of timing a weaker child). The plugin is a ``filter`` built in memory with
``Bundle.from_files`` whose ``inspect(segments, ctx)`` returns one detection spanning the
first segment; every call sends one 1 KiB segment and checks the answer (end = 1024). The
call was specified as ``child.call("inspect", [["x" * 1024], None], timeout=5)``; since the
capability broker the child appends its own ``ctx``, so the args are ``[["x" * 1024]]``.
The script asks the sandbox under test which form it takes (one probe call of each) and
records the answer.

Per repeat (``--repeat``), in this order:

1. **cold spawn**: ``--spawns`` times ``SandboxedChild.spawn`` (spawn, handshake with the layer
   report, send the bytes, wait for ``loaded``), each followed by reading the idle child's
   memory and closing it. Interleaved with it (A B A B ...) is the interpreter floor: start
   ``python -I -S -B -c pass`` the same way and wait for it to exit.
2. **warm round trip**: one child, ``--calls`` sequential ``child.call("inspect", ...,
   timeout=5)`` on the asyncio host, each timed on its own. Interleaved with them in runs of
   ``--slice-calls`` is the **in-process baseline**: the same plugin function called directly
   in this process with the same framing both ways (``ipc.encode`` the request, a
   ``FrameDecoder.feed`` on the "child" end, call, ``ipc.encode`` the reply, ``feed`` it back),
   so the ratio is the cost of the process boundary (asyncio machinery, pipes, wake-ups, the
   child's loop) and nothing else. This runs three times: with placement left to the
   scheduler (the headline row, judged against the target), then with the event-loop thread
   and the child pinned to one CPU, then to two different CPUs (``--no-pin`` skips these two),
   because on these VMs the round trip depends mostly on which of the two the scheduler picked.
3. **calls/s**: ``PluginSupervisor(pool_size=N)`` for each N in ``--pools``, with
   ``--tasks-per-child`` x N tasks calling in a loop so every child always has work, in slices
   of ``--slice`` seconds alternating with the in-process baseline run flat out, until each
   side has had ``--seconds``. How many tasks actually got calls through is reported too.
4. **idle memory**: VmRSS / RssAnon / RssFile from ``/proc/<pid>/status`` and Pss /
   Private_Dirty from ``/proc/<pid>/smaps_rollup`` (when readable) of every child of step 1
   right after ``loaded``, and of step 2's child after its calls.

For steps 2 and 3, CPU time and run-queue wait of the host's event-loop thread and of the
children come from ``/proc/<pid>/schedstat`` over the sandboxed slices only.

If ``uvloop`` can be imported, step 2 runs again on a uvloop event loop as an extra row;
uvloop is not a haechi dependency and this script never installs it (the row says so).

Ratios are taken per repeat (sandboxed cost / in-process cost, so 5.0x means five times the
in-process cost) and reported as median (min-max) over repeats, because absolute figures on
the shared 2-core machines drift from one minute to the next.

Run ``python bench/sandbox.py --help`` for the options; results live in bench/results/sandbox.md.
Standard library and haechi's own dependencies only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import hashlib
import importlib
import io
import itertools
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import haechi.host.sandbox
import msgpack
from _machine import machine_facts
from haechi.host.sandbox import SandboxedChild, SandboxError, SandboxPolicy
from haechi.host.sandbox.ipc import FrameDecoder, encode
from haechi.host.sandbox.supervisor import LifecycleEvent, PluginSupervisor, SupervisorPolicy
from haechi.sdk.protocol import check_result
from haechi.trust import Bundle

MANIFEST = b"""\
id = "bench-sandbox"
version = "1.0.0"
kind = "filter"
entry = "plugin.py"
description = "bench/sandbox.py: one detection spanning the first segment"
requires-host = ">=0.1"
capabilities = ["request:body-text"]
"""
# One detection spanning the first segment: the inspect hook's wire shape (sdk/protocol.py),
# which the supervisor checks on every answer.
PLUGIN = (
    b"def inspect(segments, ctx):\n"
    b"    return [{'type': 'length', 'segment': 0, 'start': 0, 'end': len(segments[0])}]\n"
)
HOOK = "inspect"
SEGMENT = "x" * 1024
# The brief's call is child.call("inspect", [[segment], None]): the caller passes ctx. Since the
# capability broker, the child appends its own ctx, so the call is [[segment]]. The run probes
# which one the sandbox under test takes (calling_convention) and records it.
ARGS_CALLER_CTX: list[Any] = [[SEGMENT], None]
ARGS_CHILD_CTX: list[Any] = [[SEGMENT]]
EXPECTED = [{"type": "length", "segment": 0, "start": 0, "end": 1024}]
CALL_TIMEOUT = 5.0
WARMUP_CALLS = 300
WARMUP_SECONDS = 0.2
FLOOR = (sys.executable, "-I", "-S", "-B", "-c", "pass")
STATUS_KEYS = ("VmRSS", "RssAnon", "RssFile", "VmSize")
SMAPS_KEYS = ("Pss", "Private_Dirty", "Private_Clean", "Shared_Clean")
TARGETS = {"spawn_p50_ms": 40.0, "rtt_p50_us": 60.0, "rss_mb": 15.0}
MB_PER_KIB = 1024 / 1e6
# Round-trip variants: (key, label, placement). "free" leaves placement to the scheduler;
# "colocated" is how a gateway worker runs its children (the worker pinned to one CPU, its
# children placed on it by SandboxPolicy.cpus, decision 0003) and is judged against the target
# when it ran; the two pinned rows show the two cases "free" mixes.
ROUNDTRIPS = (
    ("roundtrip", "asyncio, placement left to the scheduler", "free"),
    (
        "roundtrip_colocated",
        "asyncio, worker pinned, child co-located by SandboxPolicy.cpus",
        "colocated",
    ),
    ("roundtrip_one_cpu", "asyncio, host + child pinned to one CPU", "one-cpu"),
    ("roundtrip_two_cpus", "asyncio, host and child pinned to two CPUs", "two-cpus"),
    ("roundtrip_uvloop", "uvloop", "free"),
)


def make_bundle() -> Bundle:
    # Our own two constant files, built in memory: nothing comes from a user, so the bundle is
    # not signed or verified. SandboxedChild takes a Bundle and sends its bytes either way, so
    # skipping the signature changes nothing that is timed here.
    return Bundle.from_files({"plugin.toml": MANIFEST, "plugin.py": PLUGIN})


class InProcess:
    """The baseline: the same plugin function in this process, behind the same framing.

    Request and reply are each ``ipc.encode``d and parsed back with a ``FrameDecoder`` (one per
    direction, kept across calls as the real host keeps its decoder), and the reply's id is
    checked: exactly the codec work of a sandboxed call, without the process boundary.
    """

    def __init__(self, code: bytes, child_adds_ctx: bool) -> None:
        namespace: dict[str, Any] = {"__name__": "__bench_plugin__"}
        # Our own constant plugin source (PLUGIN above), never user input.
        exec(compile(code, "<bench>/plugin.py", "exec"), namespace)
        self.namespace = namespace
        self.to_child = FrameDecoder()
        self.to_host = FrameDecoder()
        self.ids = itertools.count(1)
        self.extra: tuple[Any, ...] = (None,) if child_adds_ctx else ()  # as the child does

    def call(self, hook: str, args: Any) -> Any:
        call_id = next(self.ids)
        frame = encode({"id": call_id, "op": "call", "hook": hook, "args": args})
        (request,) = self.to_child.feed(frame)
        result = self.namespace[request["hook"]](*request["args"], *self.extra)
        (reply,) = self.to_host.feed(encode({"id": request["id"], "ok": True, "result": result}))
        if reply["id"] != call_id or reply["ok"] is not True:
            raise AssertionError(f"baseline: bad reply {reply!r:.80}")
        return check_result(hook, reply["result"])  # the supervisor checks every answer too


# --- /proc readers ---------------------------------------------------------------------------


def child_memory(pid: int) -> dict[str, int]:
    """Memory of one process in KiB: status fields always, smaps_rollup fields if readable."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in STATUS_KEYS:
                fields[key] = int(value.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                key, _, value = line.partition(":")
                if key in SMAPS_KEYS:
                    fields[key] = int(value.split()[0])
    except OSError:
        pass  # not readable (e.g. a non-root host and a non-dumpable child): status only
    return fields


def schedstat(pid: int) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for a CPU) of a process's main thread."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as stat:
            on_cpu, waiting, *_ = stat.read().split()
        return int(on_cpu), int(waiting)
    except (OSError, ValueError):
        return None


class CpuMeter:
    """Sums, over the measured slices only, the CPU time and run-queue wait of the host's
    event-loop thread and of the children (from /proc/<pid>/schedstat, ns resolution).

    The wait ("runnable, no CPU free") is how much other load on the machine got in the way.
    """

    def __init__(self, children: list[int]) -> None:
        self.pids = [os.getpid(), *children]
        self.totals = [0, 0, 0, 0]  # host cpu, host wait, children cpu, children wait
        self.readable = True
        self._before: list[tuple[int, int] | None] = []

    def __enter__(self) -> CpuMeter:
        self._before = [schedstat(pid) for pid in self.pids]
        return self

    def __exit__(self, *exc: object) -> None:
        after = [schedstat(pid) for pid in self.pids]
        for i, (old, new) in enumerate(zip(self._before, after, strict=True)):
            if old is None or new is None:
                self.readable = False
                continue
            side = 0 if i == 0 else 2
            self.totals[side] += new[0] - old[0]
            self.totals[side + 1] += new[1] - old[1]

    def per_call(self, calls: int, wall: float) -> dict[str, float | None]:
        if not self.readable:
            return dict.fromkeys(
                ("host_cpu_us", "host_wait_us", "child_cpu_us", "child_wait_us", "host_busy")
            )
        host_cpu, host_wait, child_cpu, child_wait = (t / 1e3 / calls for t in self.totals)
        return {
            "host_cpu_us": host_cpu,
            "host_wait_us": host_wait,
            "child_cpu_us": child_cpu,
            "child_wait_us": child_wait,
            "host_busy": self.totals[0] / 1e9 / wall,
        }


# --- statistics ------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest rank, as ``haechi doctor`` computes it."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def check(result: Any, where: str) -> None:
    if result != EXPECTED:
        raise AssertionError(f"{where}: expected {EXPECTED}, got {result!r:.80}")


# --- 1. cold spawn ---------------------------------------------------------------------------


async def spawn_phase(bundle: Bundle, policy: SandboxPolicy, spawns: int) -> dict[str, Any]:
    perf = time.perf_counter
    spawn_ms: list[float] = []
    floor_ms: list[float] = []
    memory: list[dict[str, int]] = []
    layers: dict[str, str] = {}
    gc.collect()
    for _ in range(spawns):
        start = perf()
        child = await SandboxedChild.spawn(bundle, policy)
        spawn_ms.append((perf() - start) * 1e3)
        try:
            layers = child.layers
            memory.append(child_memory(child.process.pid))
        finally:
            await child.close()
        start = perf()
        process = await asyncio.create_subprocess_exec(
            *FLOOR,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={},
            cwd="/",
            start_new_session=True,
        )
        code = await process.wait()
        floor_ms.append((perf() - start) * 1e3)
        if code != 0:
            raise SystemExit(f"interpreter floor {' '.join(FLOOR)} exited with {code}")
    return {"spawn_ms": spawn_ms, "floor_ms": floor_ms, "memory": memory, "layers": layers}


# --- 2. warm round trip ----------------------------------------------------------------------


async def roundtrip_phase(
    bundle: Bundle,
    policy: SandboxPolicy,
    baseline: InProcess,
    args: list[Any],
    calls: int,
    slice_calls: int,
    placement: str = "free",
) -> dict[str, Any]:
    perf = time.perf_counter
    saved = os.sched_getaffinity(0)
    if placement == "colocated":
        # As a worker does: pin the event-loop thread, then ask the sandbox for the same CPU.
        os.sched_setaffinity(0, {min(saved)})
        policy = dataclasses.replace(policy, cpus=frozenset({min(saved)}))
    child = await SandboxedChild.spawn(bundle, policy)
    try:
        pid = child.process.pid
        if placement in ("one-cpu", "two-cpus"):
            # This thread (the event loop) and the child's one thread, after the spawn.
            first, second = sorted(saved)[:2]
            os.sched_setaffinity(0, {first})
            os.sched_setaffinity(pid, {first if placement == "one-cpu" else second})
        for _ in range(WARMUP_CALLS):
            check(await child.call(HOOK, args, timeout=CALL_TIMEOUT), "warm-up")
            check(baseline.call(HOOK, args), "baseline warm-up")
        sandboxed: list[float] = []
        direct: list[float] = []
        meter = CpuMeter([pid])
        wall = 0.0
        gc.collect()
        while len(sandboxed) < calls:
            n = min(slice_calls, calls - len(sandboxed))
            with meter:
                began = perf()
                for _ in range(n):
                    start = perf()
                    result = await child.call(HOOK, args, timeout=CALL_TIMEOUT)
                    sandboxed.append(perf() - start)
                    check(result, "sandboxed call")
                wall += perf() - began
            for _ in range(n):
                start = perf()
                result = baseline.call(HOOK, args)
                direct.append(perf() - start)
                check(result, "baseline call")
        idle = child_memory(pid)
    finally:
        os.sched_setaffinity(0, saved)
        await child.close()
    us = [s * 1e6 for s in sandboxed]
    base = [s * 1e6 for s in direct]
    return {
        "calls": len(us),
        "sandboxed_us": {
            q: percentile(us, f) for q, f in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        },
        "baseline_us": {
            q: percentile(base, f) for q, f in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        },
        "cpu": meter.per_call(len(us), wall),
        "memory_after_calls": idle,
    }


# --- 3. calls/s ------------------------------------------------------------------------------


async def drive(
    supervisor: PluginSupervisor, args: list[Any], tasks: int, seconds: float
) -> tuple[int, float, int]:
    """``tasks`` tasks call in a loop for ``seconds``.

    Returns (calls completed, elapsed, tasks that completed a call before the stop): the last
    shows how many tasks the supervisor actually served while they all wanted a child.
    """
    per_task = [0] * tasks
    done = [0]
    stop = asyncio.Event()

    async def worker(i: int) -> None:
        while not stop.is_set():
            check(await supervisor.call(HOOK, args), "supervisor call")
            done[0] += 1
            if not stop.is_set():
                per_task[i] += 1

    start = time.perf_counter()
    workers = [asyncio.create_task(worker(i)) for i in range(tasks)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*workers)
    return done[0], time.perf_counter() - start, sum(1 for n in per_task if n)


def flat_out(baseline: InProcess, args: list[Any], seconds: float) -> tuple[int, float]:
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            check(baseline.call(HOOK, args), "baseline call")
        calls += 100
    return calls, elapsed


async def throughput_phase(
    bundle: Bundle,
    policy: SandboxPolicy,
    baseline: InProcess,
    args: list[Any],
    pool: int,
    tasks: int,
    seconds: float,
    slice_seconds: float,
) -> dict[str, Any]:
    pids: list[int] = []
    trouble: list[LifecycleEvent] = []

    def on_event(event: LifecycleEvent) -> None:
        if event.kind == "spawn":
            pids.append(int(event.detail["pid"]))
        else:
            trouble.append(event)

    supervisor = PluginSupervisor(
        bundle,
        SupervisorPolicy(pool_size=pool, queue_limit=max(64, tasks)),
        policy,
        on_event=on_event,
    )
    await supervisor.start()
    try:
        if len(pids) != pool:
            raise SystemExit(f"pool of {pool}: only {len(pids)} children started: {trouble}")
        await drive(supervisor, args, tasks, WARMUP_SECONDS)
        gc.collect()
        calls, elapsed = [0, 0], [0.0, 0.0]
        meter = CpuMeter(pids)
        served: list[int] = []
        while min(elapsed) < seconds:
            with meter:
                n, t, active = await drive(supervisor, args, tasks, slice_seconds)
            served.append(active)
            calls[0] += n
            elapsed[0] += t
            n, t = flat_out(baseline, args, slice_seconds)
            calls[1] += n
            elapsed[1] += t
        if trouble:
            raise SystemExit(f"pool of {pool}: the supervisor reported {trouble}")
    finally:
        await supervisor.close()
    return {
        "pool": pool,
        "tasks": tasks,
        "tasks_served_per_slice": served,
        "sandboxed_calls_s": calls[0] / elapsed[0],
        "baseline_calls_s": calls[1] / elapsed[1],
        "cpu": meter.per_call(calls[0], elapsed[0]),
    }


# --- uvloop ----------------------------------------------------------------------------------


def uvloop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """uvloop's loop factory if it can be imported, else None and why not."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        return None, (
            f"uvloop is not importable ({type(exc).__name__}: {exc}); it is not a haechi "
            "dependency and this benchmark installs nothing"
        )
    return uvloop.new_event_loop, f"uvloop {getattr(uvloop, '__version__', '?')}"


# --- the run ---------------------------------------------------------------------------------


async def calling_convention(bundle: Bundle, policy: SandboxPolicy) -> tuple[list[Any], bool]:
    """The args this sandbox wants, and whether its child appends ``ctx`` itself.

    ``[[segment], None]`` (the caller passes ctx) is tried first, then ``[[segment]]`` (the
    child passes its own ctx); the wrong one is a plugin TypeError, which is an answer, not a
    crash, so one child can try both.
    """
    child = await SandboxedChild.spawn(bundle, policy)
    try:
        for call_args, child_adds_ctx in ((ARGS_CALLER_CTX, False), (ARGS_CHILD_CTX, True)):
            try:
                result = await child.call(HOOK, call_args, timeout=CALL_TIMEOUT)
            except SandboxError as exc:
                if exc.reason != "plugin-error":
                    raise
                continue
            if result == EXPECTED:
                return call_args, child_adds_ctx
    finally:
        await child.close()
    raise SystemExit("the plugin answered neither [[segment], None] nor [[segment]] with 1024")


def run(args: argparse.Namespace) -> dict[str, Any]:
    bundle = make_bundle()
    policy = SandboxPolicy()  # strict: a layer the kernel cannot give aborts the run
    call_args, child_adds_ctx = asyncio.run(calling_convention(bundle, policy))
    convention = (
        "child.call('inspect', [[segment]]): the child appends its own ctx"
        if child_adds_ctx
        else "child.call('inspect', [[segment], None]): the caller passes ctx"
    )
    print(f"calling convention: {convention}", file=sys.stderr)
    baseline = InProcess(PLUGIN, child_adds_ctx)
    factory, uvloop_note = uvloop_factory()
    skipped: dict[str, str] = {}
    if factory is None:
        skipped["roundtrip_uvloop"] = uvloop_note
    if not args.pin:
        for key in ("roundtrip_colocated", "roundtrip_one_cpu", "roundtrip_two_cpus"):
            skipped[key] = "--no-pin"
    elif len(os.sched_getaffinity(0)) < 2:
        skipped["roundtrip_two_cpus"] = "fewer than 2 CPUs available"
    for key, reason in skipped.items():
        print(f"round-trip row {key} skipped: {reason}", file=sys.stderr)

    def roundtrips(runner: asyncio.Runner, record: dict[str, Any], uvloop: bool) -> None:
        for key, _, placement in ROUNDTRIPS:
            if key in skipped or (key == "roundtrip_uvloop") != uvloop:
                continue
            phase = roundtrip_phase(
                bundle, policy, baseline, call_args, args.calls, args.slice_calls, placement
            )
            try:
                record[key] = runner.run(phase)
            except OSError as exc:  # sched_setaffinity refused: report, do not die
                if placement == "free":
                    raise
                skipped[key] = f"cannot pin: {exc}"

    repeats: list[dict[str, Any]] = []
    for r in range(args.repeat):
        record: dict[str, Any] = {}
        with asyncio.Runner() as runner:
            record["spawn"] = runner.run(spawn_phase(bundle, policy, args.spawns))
            roundtrips(runner, record, uvloop=False)
            record["throughput"] = [
                runner.run(
                    throughput_phase(
                        bundle,
                        policy,
                        baseline,
                        call_args,
                        pool,
                        pool * args.tasks_per_child,
                        args.seconds,
                        args.slice_seconds,
                    )
                )
                for pool in args.pools
            ]
        if factory is not None:
            with asyncio.Runner(loop_factory=factory) as runner:
                roundtrips(runner, record, uvloop=True)
        repeats.append(record)
        spawn, rtt = record["spawn"], record["roundtrip"]
        line = (
            f"repeat {r + 1}/{args.repeat}: spawn p50 {statistics.median(spawn['spawn_ms']):.1f} ms"
            f" (floor {statistics.median(spawn['floor_ms']):.1f}); rtt p50 "
            f"{rtt['sandboxed_us']['p50']:.1f} us (in-process {rtt['baseline_us']['p50']:.1f})"
        )
        for key, label, _ in ROUNDTRIPS[1:]:
            if key in record:
                line += f"; {label.split(', ')[-1]} {record[key]['sandboxed_us']['p50']:.1f} us"
        for tp in record["throughput"]:
            line += (
                f"; {tp['pool']} child(ren) {tp['sandboxed_calls_s']:,.0f}/s "
                f"(in-process {tp['baseline_calls_s']:,.0f}/s)"
            )
        print(line, file=sys.stderr)
    results = aggregate(repeats, skipped)
    results["calling_convention"] = convention
    return results


def cpu_summary(per_repeat: list[dict[str, float | None]]) -> dict[str, Any] | None:
    if any(v is None for entry in per_repeat for v in entry.values()):
        return None  # /proc/<pid>/schedstat was not readable
    return {key: summary([float(e[key] or 0) for e in per_repeat]) for key in per_repeat[0]}


def aggregate(repeats: list[dict[str, Any]], skipped: dict[str, str]) -> dict[str, Any]:
    def over(get: Callable[[dict[str, Any]], float]) -> dict[str, float]:
        return summary([get(r) for r in repeats])

    results: dict[str, Any] = {}
    results["layers"] = repeats[-1]["spawn"]["layers"]
    results["spawn"] = {
        "n_per_repeat": len(repeats[0]["spawn"]["spawn_ms"]),
        "p50_ms": over(lambda r: statistics.median(r["spawn"]["spawn_ms"])),
        "p90_ms": over(lambda r: percentile(r["spawn"]["spawn_ms"], 0.9)),
        "floor_p50_ms": over(lambda r: statistics.median(r["spawn"]["floor_ms"])),
        "floor_p90_ms": over(lambda r: percentile(r["spawn"]["floor_ms"], 0.9)),
        "ratio_p50": over(
            lambda r: (
                statistics.median(r["spawn"]["spawn_ms"])
                / statistics.median(r["spawn"]["floor_ms"])
            )
        ),
        "samples_ms": [r["spawn"]["spawn_ms"] for r in repeats],
    }

    def roundtrip(key: str) -> dict[str, Any]:
        def pick(r: dict[str, Any]) -> dict[str, Any]:
            return dict(r[key])

        out: dict[str, Any] = {"calls_per_repeat": repeats[0][key]["calls"]}
        for q in ("p50", "p90", "p99"):
            out[f"{q}_us"] = over(lambda r, q=q: pick(r)["sandboxed_us"][q])
            out[f"baseline_{q}_us"] = over(lambda r, q=q: pick(r)["baseline_us"][q])
            out[f"ratio_{q}"] = over(
                lambda r, q=q: pick(r)["sandboxed_us"][q] / pick(r)["baseline_us"][q]
            )
        out["cpu"] = cpu_summary([r[key]["cpu"] for r in repeats])
        out["memory_after_calls_kib"] = [r[key]["memory_after_calls"] for r in repeats]
        return out

    for key, _, _ in ROUNDTRIPS:
        present = all(key in r for r in repeats)
        results[key] = roundtrip(key) if present else None
        if not present and key not in skipped:
            skipped[key] = "failed in some repeats"
    results["skipped"] = skipped
    results["throughput"] = []
    for i, first in enumerate(repeats[0]["throughput"]):
        row: dict[str, Any] = {"pool": first["pool"], "tasks": first["tasks"]}
        served = [n for r in repeats for n in r["throughput"][i]["tasks_served_per_slice"]]
        row["tasks_served"] = {"min": min(served), "max": max(served)}
        for key in ("sandboxed_calls_s", "baseline_calls_s"):
            row[key] = over(lambda r, k=key, i=i: r["throughput"][i][k])
        row["cpu"] = cpu_summary([r["throughput"][i]["cpu"] for r in repeats])
        row["ratio"] = over(
            lambda r, i=i: (
                r["throughput"][i]["baseline_calls_s"] / r["throughput"][i]["sandboxed_calls_s"]
            )
        )
        results["throughput"].append(row)

    loaded = [m for r in repeats for m in r["spawn"]["memory"]]
    memory: dict[str, Any] = {"children": len(loaded)}
    for key in (*STATUS_KEYS, *SMAPS_KEYS):
        values = [m[key] * MB_PER_KIB for m in loaded if key in m]
        memory[f"{key}_mb"] = summary(values) if values else None
    after = [r["roundtrip"]["memory_after_calls"] for r in repeats]
    memory["after_calls_VmRSS_mb"] = summary([m["VmRSS"] * MB_PER_KIB for m in after])
    if all("Pss" in m for m in after):
        memory["after_calls_Pss_mb"] = summary([m["Pss"] * MB_PER_KIB for m in after])
    results["memory"] = memory

    spawn_p50 = results["spawn"]["p50_ms"]["median"]
    rtt_p50 = results[judged_roundtrip(results)]["p50_us"]["median"]
    rss_max = memory["VmRSS_mb"]["max"]
    results["targets"] = {
        "spawn_p50_ms": {"target": TARGETS["spawn_p50_ms"], "measured": spawn_p50},
        "rtt_p50_us": {
            "target": TARGETS["rtt_p50_us"],
            "measured": rtt_p50,
            "row": judged_roundtrip(results),
        },
        "idle_rss_mb": {"target": TARGETS["rss_mb"], "measured": rss_max, "note": "max"},
    }
    for entry in results["targets"].values():
        entry["met"] = entry["measured"] <= entry["target"]
    return results


def judged_roundtrip(results: dict[str, Any]) -> str:
    """The row the 60 us target is judged on: the co-located deployment when it ran."""
    return "roundtrip_colocated" if results.get("roundtrip_colocated") else "roundtrip"


# --- profile ---------------------------------------------------------------------------------


async def profile_host(kind: str, seconds: float, top: int) -> str:
    """cProfile the host side (this process, event loop included) of sequential calls on one
    child (``call``) or of a 1-child supervisor driven by 8 tasks (``pool``)."""
    bundle, policy = make_bundle(), SandboxPolicy()
    args, _ = await calling_convention(bundle, policy)
    profiler = cProfile.Profile()
    out = io.StringIO()
    if kind in ("call", "call-one-cpu"):
        child = await SandboxedChild.spawn(bundle, policy)
        saved = os.sched_getaffinity(0)
        try:
            if kind == "call-one-cpu":
                cpu = min(saved)
                os.sched_setaffinity(0, {cpu})
                os.sched_setaffinity(child.process.pid, {cpu})
            for _ in range(WARMUP_CALLS):
                await child.call(HOOK, args, timeout=CALL_TIMEOUT)
            calls = 0
            start = time.perf_counter()
            profiler.enable()
            while time.perf_counter() - start < seconds:
                await child.call(HOOK, args, timeout=CALL_TIMEOUT)
                calls += 1
            profiler.disable()
        finally:
            os.sched_setaffinity(0, saved)
            await child.close()
        where = " (host + child pinned to one CPU)" if kind == "call-one-cpu" else ""
        print(f"cProfile: host side of {calls} sequential child.call round trips{where}", file=out)
    else:
        async with PluginSupervisor(bundle, SupervisorPolicy(pool_size=1), policy) as supervisor:
            await drive(supervisor, args, 8, WARMUP_SECONDS)
            profiler.enable()
            calls, _, _ = await drive(supervisor, args, 8, seconds)
            profiler.disable()
        print(f"cProfile: host side of {calls} supervisor calls, 1 child, 8 tasks", file=out)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- output ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        **machine_facts(),
        "msgpack": ".".join(map(str, msgpack.version)),
        "event_loop": loop_name(),
    }


def loop_name() -> str:
    loop = asyncio.new_event_loop()
    try:
        return type(loop).__name__
    finally:
        loop.close()


def source_state() -> dict[str, Any]:
    """Which sandbox was measured: its path, the git commit, uncommitted changes under it."""
    sandbox = Path(haechi.host.sandbox.__file__).resolve().parent
    state: dict[str, Any] = {"sandbox": str(sandbox), "commit": None, "uncommitted": []}
    try:
        top = subprocess.run(
            ["git", "-C", str(sandbox), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        git = ["git", "-C", top]
        state["commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "host", "sdk", "trust"],
            capture_output=True,
            text=True,
            check=True,
        )
        state["uncommitted"] = [line.strip() for line in status.stdout.splitlines()]
        # Identifies the uncommitted state; compared at the end to catch edits during the run
        # (the child's bootstrap is read from disk at every spawn).
        diff = subprocess.run(
            [*git, "diff", "HEAD", "--", "host", "sdk", "trust"],
            capture_output=True,
            check=True,
        ).stdout
        untracked = [line[3:] for line in state["uncommitted"] if line.startswith("??")]
        digest = hashlib.sha256(diff)
        for name in untracked:
            path = Path(top) / name
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    digest.update(name.encode() + b"\0" + file.read_bytes())
        state["diff_sha256"] = digest.hexdigest()[:16] if state["uncommitted"] else None
    except (OSError, subprocess.CalledProcessError):
        pass
    return state


def span(stats: dict[str, float] | None, fmt: str) -> str:
    if stats is None:
        return "n/a"
    return f"{stats['median']:{fmt}} ({stats['min']:{fmt}}–{stats['max']:{fmt}})"


def served(row: dict[str, Any]) -> str:
    low, high = row["tasks_served"]["min"], row["tasks_served"]["max"]
    return str(low) if low == high else f"{low}–{high}"


def verdict(entry: dict[str, Any]) -> str:
    return "**met**" if entry["met"] else "**missed**"


def table(results: dict[str, Any], pools: list[int]) -> str:
    spawn, rtt, mem, targets = (
        results["spawn"],
        results["roundtrip"],
        results["memory"],
        results["targets"],
    )
    rows = [
        "| measure | sandboxed | in-process baseline | ratio (cost ×) | target | met? |",
        "|---|---:|---:|---:|---:|---|",
        f"| cold spawn → loaded, p50 (ms) | {span(spawn['p50_ms'], '.1f')} "
        f"| floor `python -I -S -B -c pass`: {span(spawn['floor_p50_ms'], '.1f')} "
        f"| {span(spawn['ratio_p50'], '.2f')} | ≤ 40 | {verdict(targets['spawn_p50_ms'])} |",
        f"| cold spawn → loaded, p90 (ms) | {span(spawn['p90_ms'], '.1f')} "
        f"| floor: {span(spawn['floor_p90_ms'], '.1f')} | | | |",
    ]
    for key, label, _ in ROUNDTRIPS:
        data = results[key]
        if data is None:
            reason = results["skipped"].get(key, "?")
            rows.append(f"| round trip 1 KiB, {label} | skipped: {reason} | | | | |")
            continue
        for q in ("p50", "p99"):
            target = (
                f"≤ 60 | {verdict(targets['rtt_p50_us'])}"
                if (key, q) == (judged_roundtrip(results), "p50")
                else " | "
            )
            rows.append(
                f"| round trip 1 KiB, {label}, {q} (µs) | {span(data[f'{q}_us'], '.1f')} "
                f"| {span(data[f'baseline_{q}_us'], '.1f')} | {span(data[f'ratio_{q}'], '.1f')} "
                f"| {target} |"
            )
    for row in results["throughput"]:
        rows.append(
            f"| calls/s, {row['pool']} child{'ren' if row['pool'] > 1 else ''} "
            f"({row['tasks']} tasks, {served(row)} served) "
            f"| {span(row['sandboxed_calls_s'], ',.0f')} "
            f"| {span(row['baseline_calls_s'], ',.0f')} | {span(row['ratio'], '.1f')} | | |"
        )
    rows.append(
        f"| idle child VmRSS after load (MB) | {span(mem['VmRSS_mb'], '.1f')} | | | ≤ 15 (max) "
        f"| {verdict(targets['idle_rss_mb'])} |"
    )
    for key, label in (
        ("Pss", "PSS"),
        ("Private_Dirty", "Private_Dirty"),
        ("RssAnon", "RssAnon"),
        ("RssFile", "RssFile"),
    ):
        value = mem.get(f"{key}_mb")
        shown = span(value, ".1f") if value else "not readable"
        rows.append(f"| idle child {label} after load (MB) | {shown} | | | | |")
    rows.append(
        f"| VmRSS after {WARMUP_CALLS} + {rtt['calls_per_repeat']} calls (MB) "
        f"| {span(mem['after_calls_VmRSS_mb'], '.1f')} | | | | |"
    )
    return "\n".join(rows)


def cpu_table(results: dict[str, Any]) -> str:
    rows = [
        "| sandboxed measurement | host CPU µs/call | host waiting for a CPU µs/call "
        "| child CPU µs/call | child waiting µs/call | host busy (share of wall) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labelled = [
        (f"round trip, {label}", results[key])
        for key, label, _ in ROUNDTRIPS
        if results[key] is not None
    ]
    for row in results["throughput"]:
        labelled.append((f"calls/s, {row['pool']} child(ren)", row))
    for label, data in labelled:
        cpu = data["cpu"]
        if cpu is None:
            rows.append(f"| {label} | /proc/<pid>/schedstat not readable | | | | |")
            continue
        rows.append(
            f"| {label} | {span(cpu['host_cpu_us'], '.1f')} | {span(cpu['host_wait_us'], '.1f')} "
            f"| {span(cpu['child_cpu_us'], '.1f')} | {span(cpu['child_wait_us'], '.1f')} "
            f"| {span(cpu['host_busy'], '.0%')} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/sandbox.py",
        description=(
            "Cold spawn, warm round trip, calls/s with 1 and 4 children and idle memory of "
            "haechi's sandboxed plugin child (all layers, strict mode), with the round trip and "
            "calls/s as ratios against the same plugin called in-process with the same msgpack "
            "framing, measured interleaved in the same run."
        ),
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="repeats of every measurement (default: %(default)s)"
    )
    parser.add_argument(
        "--spawns", type=int, default=20, help="cold spawns per repeat (default: %(default)s)"
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=5000,
        help="timed sequential round trips per repeat, each side (default: %(default)s)",
    )
    parser.add_argument(
        "--slice-calls",
        type=int,
        default=250,
        metavar="N",
        help="sandboxed and in-process round trips alternate in runs of N (default: %(default)s)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="seconds of calls/s measurement per pool size and side (default: %(default)s)",
    )
    parser.add_argument(
        "--slice",
        type=float,
        default=0.25,
        dest="slice_seconds",
        metavar="SECONDS",
        help="calls/s: sandboxed and in-process alternate in slices this long "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--pools",
        default="1,4",
        help="comma-separated pool sizes for calls/s (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks-per-child",
        type=int,
        default=8,
        help="concurrent calling tasks per child for calls/s (default: %(default)s)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help=(
            "skip the two extra round-trip rows with host and child pinned to one CPU and to "
            "two CPUs"
        ),
    )
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable results on stdout"
    )
    parser.add_argument(
        "--profile",
        choices=("call", "call-one-cpu", "pool"),
        help=(
            "instead of timing, cProfile the host side for --seconds: 'call' = sequential "
            "child.call round trips, 'call-one-cpu' = the same with host and child pinned to "
            "one CPU, 'pool' = a 1-child supervisor driven by 8 tasks"
        ),
    )
    parser.add_argument(
        "--top", type=int, default=25, help="rows to print with --profile (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        args.pools = [int(p) for p in args.pools.split(",") if p.strip()]
    except ValueError:
        parser.error("--pools takes comma-separated integers, e.g. 1,4")
    if not args.pools or any(not 1 <= p <= 64 for p in args.pools):
        parser.error("--pools: each pool size must be between 1 and 64")
    if min(args.repeat, args.spawns, args.calls, args.slice_calls, args.tasks_per_child) < 1:
        parser.error(
            "--repeat, --spawns, --calls, --slice-calls and --tasks-per-child must be >= 1"
        )
    if args.seconds <= 0 or args.slice_seconds <= 0:
        parser.error("--seconds and --slice must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.profile is not None:
        print(asyncio.run(profile_host(args.profile, args.seconds, args.top)))
        return 0
    source = source_state()
    began = time.perf_counter()
    started = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    load_start = [round(x, 2) for x in os.getloadavg()]
    results = run(args)
    info = machine()
    info["loadavg_start"] = load_start
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    after = source_state()
    source["changed_during_run"] = after.get("diff_sha256") != source.get("diff_sha256") or (
        after.get("commit") != source.get("commit")
    )
    if source["changed_during_run"]:
        print("WARNING: host/, sdk/ or trust/ changed while the benchmark ran", file=sys.stderr)
    report = {
        "benchmark": "bench/sandbox.py",
        "date": started,
        "command": " ".join(["python", "bench/sandbox.py", *argv]),
        "settings": {
            "repeat": args.repeat,
            "spawns": args.spawns,
            "calls": args.calls,
            "slice_calls": args.slice_calls,
            "seconds": args.seconds,
            "slice_seconds": args.slice_seconds,
            "pools": args.pools,
            "tasks_per_child": args.tasks_per_child,
            "payload": "[['x' * 1024], None]",
            "sandbox_policy": "SandboxPolicy() (strict)",
        },
        "source": source,
        "machine": info,
        "wall_seconds": round(time.perf_counter() - began, 1),
        "results": results,
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{report['date']}  {info['machine']}, nproc {info['nproc']}, Linux {info['kernel']}, "
        f"{info['python']}, msgpack {info['msgpack']}, uid {info['uid']}; "
        f"load {info['loadavg_start']} -> {info['loadavg_end']}"
    )
    dirty = ", ".join(source["uncommitted"]) or "none"
    print(f"sandbox from {source['sandbox']} at {source['commit']}; uncommitted: {dirty}")
    if source["uncommitted"]:
        changed = "CHANGED during the run" if source["changed_during_run"] else "unchanged"
        print(f"uncommitted state sha256 {source['diff_sha256']} ({changed})")
    print(f"calling convention: {results['calling_convention']}")
    layers = ", ".join(f"{k}: {v}" for k, v in results["layers"].items())
    print(f"layers (strict): {layers}")
    print(
        f"{args.repeat} repeats: {args.spawns} spawns, {args.calls} round trips and "
        f"{args.seconds} s per pool size and side each; ran {report['wall_seconds']} s"
    )
    print()
    print(table(results, args.pools))
    print()
    print(cpu_table(results))
    print()
    print("Cells: median (min–max) over repeats (memory: over every child spawned). Ratio =")
    print("sandboxed cost / in-process cost per repeat, from interleaved measurements; the")
    print("in-process baseline is the same plugin function behind the same msgpack framing.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
