"""Helpers for tests that run the gateway as operators do: ``haechi gateway`` in its own process,
in front of the stub model API (served from a background thread of the test process)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from haechi.host.gateway.home import InitResult, init_home
from haechi.host.gateway.stub import StubUpstream


@dataclass
class RunningStub:
    stub: StubUpstream
    url: str
    loop: asyncio.AbstractEventLoop


@contextmanager
def stub_in_thread() -> Iterator[RunningStub]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stub = StubUpstream()
    url = asyncio.run_coroutine_threadsafe(stub.start(), loop).result(10)
    try:
        yield RunningStub(stub, url, loop)
    finally:
        asyncio.run_coroutine_threadsafe(stub.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# Load tests send hundreds of requests as one principal; the default burst (60) would answer
# most of them 429, which is right, but not what these tests are about.
GENEROUS_RATE_LIMIT = "\n[rate_limit]\nrequests_per_minute = 6000000\nburst = 100000\n"


def make_home(directory: Path, upstream: str, **options: object) -> InitResult:
    options.setdefault("admin", "127.0.0.1:0")
    made = init_home(
        directory,
        listen="127.0.0.1:0",
        upstream_openai=upstream,
        upstream_anthropic=upstream,
        principal="tester",
        **options,  # type: ignore[arg-type]
    )
    with made.config.open("a") as config:
        config.write(GENEROUS_RATE_LIMIT)
    return made


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    port: int
    admin_port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_gateway(config: Path, *extra: str, environ: dict[str, str] | None = None) -> Gateway:
    """``haechi gateway --config CONFIG`` until it prints its listening line."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(environ or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "haechi.host.cli", "gateway", "--config", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        raise AssertionError(f"the gateway did not start: {process.stderr.read()}")  # type: ignore[union-attr]
    event = json.loads(line)
    return Gateway(process, int(event["port"]), event["admin_port"])


def stop(gateway: Gateway) -> None:
    if gateway.process.poll() is None:
        gateway.process.terminate()
        try:
            gateway.process.wait(15)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait(5)
