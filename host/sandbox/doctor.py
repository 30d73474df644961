"""What this kernel enforces, what each plugin kind gets, and what a sandboxed call costs.

``haechi doctor`` prints this; an operator runs it on every machine that will host plugins
(a container runtime or an old kernel may lack a layer), and CI can require exit 0.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from haechi.sdk.protocol import hooks_for
from haechi.trust import KINDS, Bundle
from haechi.trust.manifest import capability_forms

from .process import SandboxedChild, SandboxPolicy, _read_only_paths

__all__ = ["DoctorReport", "examine"]

_PROBE_MANIFEST = b"""\
id = "haechi-doctor-probe"
version = "1.0.0"
kind = "filter"
entry = "plugin.py"
description = "haechi doctor's probe: echoes its input"
requires-host = ">=0"
"""
_PROBE_CODE = b"def inspect(segments, ctx):\n    return segments\n"


@dataclass(frozen=True)
class DoctorReport:
    kernel: str
    machine: str
    layers: dict[str, str]
    profiles: dict[str, dict[str, Any]]
    spawn_ms: dict[str, float]
    call_us: dict[str, float]

    @property
    def complete(self) -> bool:
        return not any(v.startswith("unavailable") for v in self.layers.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "machine": self.machine,
            "complete": self.complete,
            "layers": self.layers,
            "profiles": self.profiles,
            "benchmark": {"cold_spawn_ms": self.spawn_ms, "call_round_trip_us": self.call_us},
        }


def _probe_bundle() -> Bundle:
    # Our own code, built in memory: nothing here comes from a user, so it is not verified.
    return Bundle.from_files({"plugin.toml": _PROBE_MANIFEST, "plugin.py": _PROBE_CODE})


def _profiles() -> dict[str, dict[str, Any]]:
    policy = SandboxPolicy()
    profiles = {}
    for kind in KINDS:
        profiles[kind] = {
            "hooks": list(hooks_for(kind)),
            "capabilities": list(capability_forms(kind)),
            "read_only_paths": _read_only_paths(),
            "network": "none (empty network namespace; sockets denied by seccomp)",
            "rlimits": {
                "address_space": f"manifest memory-mb + {policy.memory_overhead_mb} MiB",
                "cpu_seconds": policy.cpu_seconds,
                "open_files": policy.open_files,
                "file_size": 0,
            },
        }
    return profiles


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _measure(spawns: int, calls: int) -> tuple[dict[str, str], list[float], list[float]]:
    bundle = _probe_bundle()
    policy = SandboxPolicy(mode="best-effort")
    spawn_ms: list[float] = []
    layers: dict[str, str] = {}
    for _ in range(spawns):
        start = time.perf_counter()
        child = await SandboxedChild.spawn(bundle, policy)
        spawn_ms.append((time.perf_counter() - start) * 1000)
        layers = child.layers
        await child.close()
    child = await SandboxedChild.spawn(bundle, policy)
    payload = [["x" * 1024]]
    call_us: list[float] = []
    try:
        for _ in range(calls):
            start = time.perf_counter()
            await child.call("inspect", payload, timeout=5.0)
            call_us.append((time.perf_counter() - start) * 1e6)
    finally:
        await child.close()
    return layers, spawn_ms, call_us


def examine(*, spawns: int = 10, calls: int = 1000) -> DoctorReport:
    """Probe the layers in a best-effort child and time spawns and calls."""
    layers, spawn_ms, call_us = asyncio.run(_measure(spawns, calls))
    uname = os.uname()
    return DoctorReport(
        kernel=f"{uname.sysname} {uname.release}",
        machine=uname.machine,
        layers=layers,
        profiles=_profiles(),
        spawn_ms={
            "p50": round(statistics.median(spawn_ms), 2),
            "p90": round(_percentile(spawn_ms, 0.9), 2),
            "n": len(spawn_ms),
        },
        call_us={
            "p50": round(statistics.median(call_us), 1),
            "p99": round(_percentile(call_us, 0.99), 1),
            "n": len(call_us),
        },
    )
