"""Keeping one plugin's children available: a warm pool, a bounded queue, respawn with backoff,
a circuit breaker and a quarantine of inputs that kill children.

Rules this module owns (DESIGN §3, "Supervisor"):

* children are spawned at :meth:`PluginSupervisor.start`, off the request path, from the
  verified bytes held in memory; a respawn never re-reads the disk;
* a child serves only after the plugin's ``setup`` hook (if it offers one) answered; a failed
  setup is a failed spawn (``setup-failed``); ``close`` gives idle children ``teardown``;
* at most ``queue_limit`` calls wait for a free child; one more is refused at once with
  ``queue-full`` rather than queued without bound;
* a child that times out, crashes or breaks the protocol is killed and replaced after an
  exponential backoff (reset by a successful spawn);
* ``breaker_threshold`` such failures within ``breaker_window`` seconds open the breaker: calls
  are refused with ``breaker-open`` until ``breaker_cooldown`` has passed, then one probe call is
  let through (half-open); its success closes the breaker, its failure opens it again;
* the input of a failed call is fingerprinted with a keyed hash (never stored in clear) and
  refused with ``quarantined`` for ``quarantine_ttl`` seconds, so one poison request does not
  kill every child in turn;
* every answer is checked against the hook's wire shape (:func:`haechi.sdk.protocol.check_result`);
  a malformed one is refused with ``invalid-result`` (the child answered, so it stays);
* every spawn, refusal, failure, kill and breaker change is reported to ``on_event``.

Example::

    supervisor = PluginSupervisor(verdict.bundle, SupervisorPolicy(pool_size=2), on_event=log)
    await supervisor.start()
    result = await supervisor.call("inspect", [["text"], None])
    await supervisor.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
from haechi.sdk.protocol import ResultError, check_result
from haechi.trust import Bundle

from .errors import SandboxError
from .process import SandboxedChild, SandboxPolicy

__all__ = ["LifecycleEvent", "PluginSupervisor", "SupervisorPolicy"]

# Failures that mean the child is gone (as opposed to an answer such as a plugin exception).
CHILD_FATAL = frozenset({"timeout", "crashed", "protocol-violation"})


@dataclass(frozen=True)
class SupervisorPolicy:
    pool_size: int = 1
    queue_limit: int = 64
    call_timeout: float | None = None  # None: the manifest's limits.timeout-ms
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    breaker_threshold: int = 5
    breaker_window: float = 30.0
    breaker_cooldown: float = 10.0
    quarantine_ttl: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.pool_size <= 64:
            raise ValueError("pool_size must be between 1 and 64")
        if self.queue_limit < 0 or self.breaker_threshold < 1:
            raise ValueError("queue_limit must be >= 0 and breaker_threshold >= 1")


@dataclass(frozen=True)
class LifecycleEvent:
    """A structured event: ``kind`` is one of spawn, spawn-failed, refused, failure, kill,
    retire, breaker-open, breaker-half-open, breaker-closed, quarantine, teardown-failed."""

    kind: str
    plugin: str
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# How fast a child's CPU time can grow: at most one second per wall-clock second per CPU.
_CPUS = os.cpu_count() or 64


class _Breaker:
    def __init__(self, policy: SupervisorPolicy) -> None:
        self.policy = policy
        self.state = "closed"
        self.failures: deque[float] = deque()
        self.opened_at = 0.0
        self.probing = False

    def admit(self, now: float) -> str | None:
        """None to let the call through, or the state change to report first."""
        if self.state == "closed":
            return None
        if self.state == "open" and now - self.opened_at >= self.policy.breaker_cooldown:
            self.state = "half-open"
            return "breaker-half-open"
        return None

    def allows(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "half-open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> bool:
        """Record a good call; True when that closed the breaker."""
        if self.state == "half-open":
            self.state, self.probing = "closed", False
            self.failures.clear()
            return True
        return False

    def failure(self, now: float) -> bool:
        """Record a fatal failure; True when that opened the breaker."""
        if self.state == "half-open":
            self.state, self.probing, self.opened_at = "open", False, now
            return True
        self.failures.append(now)
        while self.failures and now - self.failures[0] > self.policy.breaker_window:
            self.failures.popleft()
        if self.state == "closed" and len(self.failures) >= self.policy.breaker_threshold:
            self.state, self.opened_at = "open", now
            return True
        return False


class PluginSupervisor:
    """Runs calls for one verified plugin on a pool of sandboxed children."""

    def __init__(
        self,
        bundle: Bundle,
        policy: SupervisorPolicy | None = None,
        sandbox: SandboxPolicy | None = None,
        on_event: Callable[[LifecycleEvent], None] | None = None,
        broker: Any = None,
    ) -> None:
        self.bundle = bundle
        self.broker = broker
        self.policy = policy or SupervisorPolicy()
        self.sandbox = sandbox or SandboxPolicy()
        self.plugin = bundle.manifest.id
        self._on_event = on_event or (lambda event: None)
        self._idle: deque[SandboxedChild] = deque()
        self._waiters: deque[asyncio.Future[SandboxedChild]] = deque()
        self._children: set[SandboxedChild] = set()
        self._calls: dict[SandboxedChild, tuple[int, float]] = {}  # calls, next CPU read
        self._breaker = _Breaker(self.policy)
        self._quarantine: dict[bytes, float] = {}
        self._key = secrets.token_bytes(32)
        self._backoff = self.policy.backoff_initial
        self._respawns: set[asyncio.Task[None]] = set()
        self._closed = False
        self.layers: dict[str, str] = {}  # the layer report of the newest child
        self._in_flight = 0
        self._idle_event = asyncio.Event()
        self._idle_event.set()
        self._timeout = self.policy.call_timeout or bundle.manifest.limits.timeout_ms / 1000

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the warm pool; raises the first spawn's SandboxError if none could start."""
        results = await asyncio.gather(
            *(self._spawn_one() for _ in range(self.policy.pool_size)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == len(results):
            raise errors[0]
        for _ in errors:
            self._schedule_respawn()

    async def drain(self, timeout: float) -> bool:
        """Refuse new calls, let the calls in flight finish (at most ``timeout`` s), then close.

        Returns True when every call in flight finished by itself."""
        self._closed = True
        try:
            async with asyncio.timeout(timeout):
                await self._idle_event.wait()
            finished = True
        except TimeoutError:
            finished = False
        await self.close()
        return finished

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def close(self) -> None:
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(SandboxError("closed", "the plugin has been unloaded"))
        idle = list(self._idle)
        self._idle.clear()
        for task in list(self._respawns):
            task.cancel()
        # Graceful retirement gives idle children their teardown hook; busy ones are stopped.
        await asyncio.gather(*(self._teardown(child) for child in idle))
        for child in list(self._children):
            await child.close()
        self._children.clear()

    async def _teardown(self, child: SandboxedChild) -> None:
        if "teardown" not in child.hooks:
            return
        try:
            check_result("teardown", await child.call("teardown", [], timeout=self._timeout))
        except (SandboxError, ResultError) as exc:
            reason = exc.reason if isinstance(exc, SandboxError) else "invalid-result"
            self._emit("teardown-failed", pid=child.process.pid, reason=reason)

    @property
    def breaker_state(self) -> str:
        return self._breaker.state

    @property
    def idle_children(self) -> int:
        return len(self._idle)

    def _emit(self, kind: str, **detail: Any) -> None:
        self._on_event(LifecycleEvent(kind, self.plugin, detail))

    async def _spawn_one(self) -> None:
        try:
            child = await SandboxedChild.spawn(self.bundle, self.sandbox, self.broker)
        except SandboxError as exc:
            self._emit("spawn-failed", reason=exc.reason, message=exc.message)
            raise
        if self._closed:
            await child.close()
            return
        self._children.add(child)  # tracked from now on, so close() stops it even mid-setup
        try:
            await self._setup(child)
        except BaseException:
            self._children.discard(child)
            raise
        if self._closed:  # closed while setup ran
            self._children.discard(child)
            await child.close()
            return
        self._backoff = self.policy.backoff_initial
        self.layers = dict(child.layers)
        self._release(child)
        self._emit("spawn", pid=child.process.pid, layers=child.layers)

    async def _setup(self, child: SandboxedChild) -> None:
        """Run the plugin's setup hook once, before the child serves; failing it fails the spawn."""
        if "setup" not in child.hooks:
            return
        try:
            check_result("setup", await child.call("setup", [], timeout=self._timeout))
        except BaseException as exc:
            await child.kill()
            if not isinstance(exc, SandboxError | ResultError):
                raise  # cancelled: the child is gone, nothing to report
            message = exc.message if isinstance(exc, SandboxError) else str(exc)
            error = SandboxError("setup-failed", f"the plugin's setup hook failed: {message}")
            self._emit("spawn-failed", reason=error.reason, message=error.message)
            raise error from None

    def _schedule_respawn(self) -> None:
        if self._closed:
            return
        delay, self._backoff = self._backoff, min(self._backoff * 2, self.policy.backoff_max)
        task = asyncio.get_running_loop().create_task(self._respawn_after(delay))
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._spawn_one()
        except SandboxError:
            self._schedule_respawn()
        except Exception as exc:  # never let the respawn chain end silently
            self._emit("spawn-failed", reason="spawn-failed", message=repr(exc)[:200])
            self._schedule_respawn()

    # --- calls -------------------------------------------------------------------------------

    async def call(self, hook: str, args: Any) -> Any:
        """Run one call; every failure is a :class:`SandboxError` with a stable reason."""
        if self._closed:
            raise self._refuse("closed", "the plugin has been unloaded")
        try:
            packed = msgpack.packb([hook, args], use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SandboxError(
                "invalid-args", f"the call's arguments cannot be sent: {exc}"
            ) from None
        now = time.monotonic()
        if self._quarantine and self._quarantined(self._fingerprint(packed), now):
            raise self._refuse(
                "quarantined", "this input made a child fail recently; it is refused for a while"
            )
        change = self._breaker.admit(now)
        if change:
            self._emit(change)
        if not self._breaker.allows():
            raise self._refuse(
                "breaker-open",
                f"{self.plugin} failed repeatedly; calls are refused until a probe succeeds",
            )
        probe = self._breaker.state == "half-open"
        self._in_flight += 1
        self._idle_event.clear()
        try:
            result = await self._run(hook, args, packed)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle_event.set()
            # A probe that ended without a verdict (cancelled, refused) must not leave the
            # breaker waiting for it forever: the next call probes instead.
            if probe and self._breaker.state == "half-open":
                self._breaker.probing = False
        try:
            return check_result(hook, result)
        except ResultError as exc:
            self._emit("refused", reason="invalid-result")
            raise SandboxError("invalid-result", str(exc)) from None

    async def _run(self, hook: str, args: Any, packed: bytes) -> Any:
        child = await self._acquire()
        try:
            result = await child.call(hook, args, timeout=self._timeout)
        except SandboxError as exc:
            await self._failed(child, exc, packed)
            raise
        except BaseException:
            await self._drop(child)  # cancelled mid-call: the child's state is unknown
            raise
        if self._breaker.success():
            self._emit("breaker-closed")
        await self._recycle_or_release(child)
        return result

    async def _recycle_or_release(self, child: SandboxedChild) -> None:
        """Retire a child before RLIMIT_CPU (counted over its whole life) would kill it in the
        middle of some innocent call: when what it used, plus two of its average calls, would
        reach the budget. Otherwise hand it on.

        Reading /proc costs 20-30 us of host CPU, a quarter of a call (bench/sandbox.py), so it
        is read again only when the test could pass: CPU time grows by at most one second per
        second per CPU, and later calls only add to the divisor of the average."""
        calls, read_at = self._calls.get(child, (0, 0.0))
        calls += 1
        now = time.monotonic()
        if now >= read_at:
            used = _cpu_seconds(child.process.pid)
            share = 1 + 2 / calls  # the test is used * share >= budget
            if used * share >= self.sandbox.cpu_seconds:
                self._calls.pop(child, None)
                self._children.discard(child)
                await child.kill()
                self._emit("retire", pid=child.process.pid, reason="cpu budget")
                self._schedule_respawn()
                return
            # /proc truncates user and system time to clock ticks: allow a tick for each.
            room = self.sandbox.cpu_seconds / share - used - 2 / os.sysconf("SC_CLK_TCK")
            read_at = now + max(room, 0.0) / _CPUS
        self._calls[child] = (calls, read_at)
        self._release(child)

    def _refuse(self, reason: str, message: str) -> SandboxError:
        self._emit("refused", reason=reason)
        if reason != "breaker-open" and self._breaker.probing:
            self._breaker.probing = False  # the probe never ran; let the next call probe
        return SandboxError(reason, message)

    async def _acquire(self) -> SandboxedChild:
        """A free child, first come first served; refuse at once when the queue is full."""
        while self._idle and not self._waiters:
            child = self._idle.popleft()
            if child.failure is None and child.process.returncode is None:
                return child
            await self._drop(child)  # died while idle: replace it, and blame no input
        if len(self._waiters) >= self.policy.queue_limit:
            raise self._refuse(
                "queue-full",
                f"{len(self._waiters)} calls are already waiting for {self.plugin}; "
                "try again later",
            )
        waiter: asyncio.Future[SandboxedChild] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._timeout + self.sandbox.spawn_timeout):
                return await waiter
        except (TimeoutError, asyncio.CancelledError) as exc:
            # A child may have been handed over in the same instant: give it back, never lose it.
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._refuse(
                "queue-timeout", f"no child of {self.plugin} became free in time"
            ) from None

    def _release(self, child: SandboxedChild) -> None:
        """Hand a free child to the oldest live waiter, so no caller can be starved."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(child)
                return
        self._idle.append(child)

    async def _failed(self, child: SandboxedChild, error: SandboxError, packed: bytes) -> None:
        if error.reason not in CHILD_FATAL:
            self._release(child)  # the plugin answered with an error: the child is fine
            if self._breaker.success():
                self._emit("breaker-closed")
            return
        now = time.monotonic()
        self._emit("failure", reason=error.reason, pid=child.process.pid)
        # Not the input's fault: the host is closing, or RLIMIT_CPU (a lifetime budget) ran out.
        innocent = self._closed or child.exit_description() == "killed by SIGXCPU"
        if not innocent:
            fingerprint = self._fingerprint(packed)
            self._quarantine[fingerprint] = now + self.policy.quarantine_ttl
            self._emit(
                "quarantine", fingerprint=fingerprint.hex()[:16], seconds=self.policy.quarantine_ttl
            )
        if self._breaker.failure(now):
            self._emit("breaker-open", failures=len(self._breaker.failures))
        await self._drop(child)

    async def _drop(self, child: SandboxedChild) -> None:
        self._children.discard(child)
        self._calls.pop(child, None)
        await child.kill()
        self._emit("kill", pid=child.process.pid, how=child.exit_description())
        self._schedule_respawn()

    def _fingerprint(self, packed: bytes) -> bytes:
        return hmac.new(self._key, packed, hashlib.sha256).digest()

    def _quarantined(self, fingerprint: bytes, now: float) -> bool:
        expiry = self._quarantine.get(fingerprint)
        if expiry is None:
            return False
        if now >= expiry:
            del self._quarantine[fingerprint]
            return False
        return True

    async def __aenter__(self) -> PluginSupervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.close()
