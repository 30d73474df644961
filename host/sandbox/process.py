"""One sandboxed plugin child, seen from the host: spawn, handshake, load, call, kill.

The host never imports plugin code. It spawns ``python -I -S -B`` running the bootstrap in
``child/``, waits for the child to report the confinement layers it got, sends the **verified
bytes** of the bundle (never a path), and then exchanges call frames. Everything the child says
is treated as hostile: frames are capped before allocation, any decode error, unknown call id or
second reply is a protocol violation that kills the child, each call has a deadline, writes wait
for the pipe under the same deadline, and stderr is kept only up to a cap (a flood kills).

Example::

    child = await SandboxedChild.spawn(verdict.bundle, SandboxPolicy())
    print(child.layers)                 # {"netns": "on", "landlock": "abi 7", ...}
    result = await child.call("inspect", [["hello"]], timeout=1.0)
    await child.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import marshal
import os
import reprlib
import signal
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import haechi.sdk
import msgpack
from haechi.sdk.protocol import PROTOCOL_VERSION, hooks_for
from haechi.trust import Bundle

from .errors import SandboxError
from .ipc import MAX_FRAME, MAX_REPLY_FRAME, FrameDecoder, encode

__all__ = ["SandboxPolicy", "SandboxedChild"]

CHILD_DIR = Path(__file__).resolve().parent / "child"
SDK_DIR = Path(haechi.sdk.__file__).resolve().parent
_MIB = 1024 * 1024


@dataclass(frozen=True)
class SandboxPolicy:
    """How a child is confined and watched. ``mode = "best-effort"`` must be chosen explicitly."""

    mode: str = "strict"
    spawn_timeout: float = 10.0
    max_frame: int = MAX_FRAME  # host -> child (the load frame holds the bundle)
    max_reply_frame: int = MAX_REPLY_FRAME  # child -> host
    stderr_keep: int = 64 * 1024
    stderr_kill: int = 4 * _MIB
    cpu_seconds: int = 30
    open_files: int = 64
    memory_overhead_mb: int = 64  # the interpreter itself, on top of the manifest's memory-mb
    preload: tuple[str, ...] = ("binascii", "zlib", "resource", "msgpack")
    extra_env: dict[str, str] = field(default_factory=dict)
    # CPUs the child may run on. A gateway worker pinned to one CPU passes that CPU here, so
    # each call is a same-CPU hand-off instead of two cross-CPU wake-ups (about 40 us against
    # 120 us per round trip, docs/decisions/0003-colocated-children.md). None: the host's set.
    cpus: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("strict", "best-effort"):
            raise ValueError(f"sandbox mode must be 'strict' or 'best-effort', not {self.mode!r}")
        if self.cpus is not None and not _cpu_set(self.cpus):
            raise ValueError(
                f"sandbox cpus must be a non-empty set of CPU numbers, not {set(self.cpus)!r}"
            )


def _cpu_set(cpus: frozenset[int]) -> bool:
    return bool(cpus) and all(
        isinstance(cpu, int) and not isinstance(cpu, bool) and cpu >= 0 for cpu in cpus
    )


@functools.cache
def _compile_child_modules() -> None:
    """Write the child's .pyc files once, where we may (a source checkout, an editable install).

    The child runs with -B and recompiled its bootstrap on every spawn otherwise (~10 ms,
    bench/results/sandbox.md). A read-only install already has them from pip; failures are
    harmless, the child then compiles in memory as before.
    """
    import py_compile

    for source in [*CHILD_DIR.glob("_hx_*.py"), *SDK_DIR.glob("*.py")]:
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            py_compile.compile(str(source), doraise=True)


@functools.cache
def _read_only_paths() -> list[str]:
    """The stdlib (with lib-dynload) and the SDK: the only files a plugin may read.

    The stdlib directory of a pyenv or source build holds the interpreter's own
    ``site-packages``; Landlock cannot carve a hole out of a granted directory, so each entry
    of the stdlib is granted on its own and ``site-packages`` / ``dist-packages`` are left out.
    """
    stdlib = Path(sysconfig.get_path("stdlib")).resolve()
    paths = {
        str(entry)
        for entry in stdlib.iterdir()
        if entry.name not in ("site-packages", "dist-packages")
    }
    dynload = sysconfig.get_config_var("DESTSHARED")
    if dynload and not Path(dynload).resolve().is_relative_to(stdlib):
        paths.add(str(Path(dynload).resolve()))
    paths.add(str(SDK_DIR))
    return sorted(paths)


def _child_config(bundle: Bundle, policy: SandboxPolicy, fd_in: int, fd_out: int) -> bytes:
    limits = bundle.manifest.limits
    address_space = (limits.memory_mb + policy.memory_overhead_mb) * _MIB
    config = {
        "parent": os.getpid(),
        "fd_in": fd_in,
        "fd_out": fd_out,
        "max_frame": policy.max_frame,
        "mode": policy.mode,
        "read_only": _read_only_paths(),
        "sys_path": [str(CHILD_DIR), str(Path(msgpack.__file__).resolve().parent.parent)],
        "preload": list(policy.preload),
        "cpus": sorted(policy.cpus) if policy.cpus is not None else None,
        "kind": bundle.manifest.kind,
        "sdk_dir": str(SDK_DIR),
        "rlimits": {
            "RLIMIT_AS": (address_space, address_space),
            "RLIMIT_CPU": (policy.cpu_seconds, policy.cpu_seconds + 1),
            "RLIMIT_NOFILE": (policy.open_files, policy.open_files),
            "RLIMIT_FSIZE": (0, 0),
            "RLIMIT_CORE": (0, 0),
        },
    }
    return marshal.dumps(config)


def _brief(value: object) -> str:
    """A bounded, recursion-safe rendering of child-supplied data for a message."""
    text = value if isinstance(value, str) else reprlib.repr(value)
    return text[:500]


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Writer(asyncio.Protocol):
    """Write side of the host->child pipe, with flow control so writes can wait under a deadline."""

    def __init__(self) -> None:
        self._resume = asyncio.Event()
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def pause_writing(self) -> None:
        self._resume.clear()

    def resume_writing(self) -> None:
        self._resume.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._resume.set()

    async def drain(self) -> None:
        await self._resume.wait()


class _Reader(asyncio.Protocol):
    def __init__(self, child: SandboxedChild) -> None:
        self.child = child

    def data_received(self, data: bytes) -> None:
        self.child._on_data(data)

    def eof_received(self) -> bool:
        self.child._on_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.child._on_eof()


class SandboxedChild:
    """A confined child running one verified plugin. Create with :meth:`spawn`."""

    def __init__(self, process: asyncio.subprocess.Process, policy: SandboxPolicy) -> None:
        self.process = process
        self.policy = policy
        self.layers: dict[str, str] = {}
        self.hooks: tuple[str, ...] = ()
        self.failure: SandboxError | None = None
        self._decoder = FrameDecoder(policy.max_reply_frame)
        # Control frames are valid only from spawn until the plugin is loaded; the hello frame
        # may arrive before spawn() reaches the handshake, so this starts out True.
        self._expecting_control = True
        self._control: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._writer: asyncio.WriteTransport | None = None
        self._reader: asyncio.BaseTransport | None = None
        self._writer_protocol: _Writer | None = None
        self._stderr = bytearray()
        self._stderr_total = 0
        self._stderr_task: asyncio.Task[None] | None = None
        self._capability_task: asyncio.Task[None] | None = None
        self.broker: Any = None  # set by spawn(); answers the child's capability requests
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def spawn(
        cls, bundle: Bundle, policy: SandboxPolicy | None = None, broker: Any = None
    ) -> SandboxedChild:
        """Spawn, check the layer report, send the verified bytes, wait until loaded.

        ``broker`` (a :class:`~haechi.host.sandbox.broker.Broker`) answers capability
        requests; without one, the plugin gets none.
        """
        policy = policy or SandboxPolicy()
        child = await cls._start(bundle, policy)
        child.broker = broker
        try:
            async with asyncio.timeout(policy.spawn_timeout):
                await child._handshake(bundle)
        except TimeoutError:
            await child.kill()
            raise SandboxError("spawn-failed", "the child did not get ready in time") from None
        except SandboxError:
            await child.kill()
            raise
        except Exception as exc:  # whatever the child sent made us fail: it is the child's fault
            await child.kill()
            raise SandboxError(
                "protocol-violation", f"start-up failed on the child's data: {_brief(exc)}"
            ) from None
        except BaseException:
            await child.kill()
            raise
        finally:
            child._expecting_control = False
        return child

    @classmethod
    async def _start(cls, bundle: Bundle, policy: SandboxPolicy) -> SandboxedChild:
        _compile_child_modules()
        if policy.cpus is not None and not policy.cpus <= os.sched_getaffinity(0):
            outside = sorted(policy.cpus - os.sched_getaffinity(0))
            raise SandboxError(
                "spawn-failed",
                f"sandbox cpus {outside} are not CPUs this host may run on "
                f"({sorted(os.sched_getaffinity(0))}); choose from those",
            )
        try:
            to_child_r, to_child_w = os.pipe()
        except OSError as exc:
            raise SandboxError("spawn-failed", f"cannot create the IPC pipes: {exc}") from None
        try:
            from_child_r, from_child_w = os.pipe()
        except OSError as exc:
            os.close(to_child_r)
            os.close(to_child_w)
            raise SandboxError("spawn-failed", f"cannot create the IPC pipes: {exc}") from None
        config = _child_config(bundle, policy, to_child_r, from_child_w)
        bootstrap = (
            f"import sys; sys.path.insert(0, {str(CHILD_DIR)!r}); import _hx_boot; _hx_boot.main()"
        )
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                "-B",
                "-c",
                bootstrap,
                config.hex(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=dict(policy.extra_env),
                cwd="/",
                start_new_session=True,
                pass_fds=(to_child_r, from_child_w),
            )
        except OSError as exc:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise SandboxError("spawn-failed", f"cannot start the child: {exc}") from None
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        child = cls(process, policy)
        loop = asyncio.get_running_loop()
        child._reader, _ = await loop.connect_read_pipe(
            lambda: _Reader(child), os.fdopen(from_child_r, "rb", 0)
        )
        transport, protocol = await loop.connect_write_pipe(_Writer, os.fdopen(to_child_w, "wb", 0))
        child._writer, child._writer_protocol = transport, protocol
        assert process.stderr is not None
        child._stderr_task = asyncio.create_task(child._drain_stderr(process.stderr))
        return child

    async def _handshake(self, bundle: Bundle) -> None:
        hello = await self._next_control()
        expected = (PROTOCOL_VERSION, bundle.manifest.kind)
        if hello.get("op") != "hello" or (hello.get("protocol"), hello.get("kind")) != expected:
            raise await self._fatal("protocol-violation", f"bad hello frame: {_brief(hello)}")
        self.layers = {str(k): str(v) for k, v in dict(hello.get("layers") or {}).items()}
        if not hello.get("ok"):
            stage = str(hello.get("stage"))
            error = await self._fatal(
                f"sandbox-layer-unavailable:{stage}",
                f"the kernel could not give the {stage} layer ({_brief(hello.get('error'))}); "
                "refusing to run the plugin. Set sandbox mode to best-effort only if you "
                "accept that.",
            )
            error.layers = self.layers
            raise error
        files = dict(bundle.files)
        await self._write(
            encode({"op": "load", "entry": bundle.manifest.entry, "files": files}),
        )
        loaded = await self._next_control()
        if loaded.get("op") == "load-failed":
            raise await self._fatal(
                "load-failed", f"the plugin failed to load: {_brief(loaded.get('error'))}"
            )
        hooks = loaded.get("hooks")
        if loaded.get("op") != "loaded" or not isinstance(hooks, list):
            raise await self._fatal("protocol-violation", f"bad loaded frame: {_brief(loaded)}")
        allowed = hooks_for(bundle.manifest.kind)
        if any(h not in allowed for h in hooks):
            raise await self._fatal("protocol-violation", f"offers hooks outside {allowed}")
        if not hooks:
            raise await self._fatal(
                "load-failed",
                f"the plugin defines none of the {bundle.manifest.kind} hooks "
                f"({', '.join(allowed)})",
            )
        self.hooks = tuple(hooks)
        self._expecting_control = False

    async def _next_control(self) -> dict[str, Any]:
        getter = asyncio.ensure_future(self._control.get())
        exited = asyncio.ensure_future(self.process.wait())
        done, _ = await asyncio.wait({getter, exited}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        if not self._control.empty():
            return self._control.get_nowait()
        raise self.failure or SandboxError(
            "crashed", f"the child exited during start-up ({self.exit_description()}){self._tail()}"
        )

    async def kill(self) -> None:
        """Kill the child's whole process group and reap it."""
        self._closed = True
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        for transport in (self._writer, self._reader):
            if transport is not None:
                transport.close()
        if self._capability_task is not None:
            self._capability_task.cancel()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        self._fail_pending(self.failure or SandboxError("crashed", "the child was stopped"))

    async def close(self) -> None:
        await self.kill()

    # --- calls -------------------------------------------------------------------------------

    async def call(self, hook: str, args: Any, *, timeout: float) -> Any:
        """Call one hook; raise :class:`SandboxError` unless the plugin answered in time."""
        if self.failure is not None or self._closed:
            raise self.failure or SandboxError("crashed", "the child is not running")
        if hook not in self.hooks:
            raise SandboxError(
                "hook-not-offered",
                f"the plugin does not offer {hook!r} "
                f"(it offers: {', '.join(self.hooks) or 'none'})",
            )
        call_id = next(self._ids)
        try:  # encoded once, before anything is registered: bad arguments cost no child
            frame = encode({"id": call_id, "op": "call", "hook": hook, "args": args})
        except (TypeError, ValueError, OverflowError) as exc:
            raise SandboxError(
                "invalid-args", f"the call's arguments cannot be sent: {exc}"
            ) from None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[call_id] = future
        # One timer per call rather than asyncio.timeout(): it is the hot path (bench/sandbox.py).
        timer = loop.call_later(timeout, _expire, future)
        try:
            await self._write(frame, timeout)
            reply = await future
            if self.failure is not None:
                # A violation in the same read as this reply: nothing the child sent counts.
                raise SandboxError(self.failure.reason, self.failure.message)
        except TimeoutError:
            raise await self._fatal(
                "timeout", f"{hook} did not answer within {timeout:g} s"
            ) from None
        except SandboxError as exc:
            if exc.reason != "crashed":
                raise
            raise await self._crash_report() from None
        finally:
            timer.cancel()
            self._pending.pop(call_id, None)
        if reply.get("ok") is True:
            return reply.get("result")
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        kind = str(error.get("type", "Error"))
        reason = "hook-not-offered" if kind == "HookNotOffered" else "plugin-error"
        raise SandboxError(reason, f"{kind}: {str(error.get('message', ''))[:2000]}")

    async def _write(self, frame: bytes, timeout: float | None = None) -> None:
        """Queue a frame; wait (at most ``timeout``) only if the child stopped reading."""
        if self._writer is None or self._writer.is_closing():
            raise self.failure or SandboxError("crashed", "the child's input is closed")
        self._writer.write(frame)
        assert self._writer_protocol is not None
        if self._writer_protocol.paused:
            async with asyncio.timeout(timeout):
                await self._writer_protocol.drain()

    # --- events from the pipes ---------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self.failure is not None:
            return
        try:
            for message in self._decoder.feed(data):
                if self.failure is not None:
                    return
                self._dispatch(message)
        except SandboxError as exc:
            self._violate(exc)
        except Exception as exc:  # anything the child's data provokes is the child's fault
            self._violate(SandboxError("protocol-violation", f"bad frame: {_brief(exc)}"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("op") == "cap":
            self._capability_request(message)
            return
        if "op" in message and "id" not in message:
            # Control frames only while the handshake waits for exactly one.
            if not self._expecting_control or not self._control.empty():
                self._violate(SandboxError("protocol-violation", "unexpected control frame"))
                return
            self._control.put_nowait(message)
            return
        call_id = message.get("id")
        future = self._pending.get(call_id) if type(call_id) is int else None
        if future is None or future.done():
            self._violate(
                SandboxError(
                    "protocol-violation",
                    f"reply to unknown or finished call id {message.get('id')!r:.40}",
                )
            )
            return
        future.set_result(message)

    def _capability_request(self, message: dict[str, Any]) -> None:
        # Only while a call runs (its deadline then covers the broker's work too), one at a
        # time: the child is serial, so a second request in flight is not ours.
        assert self._writer_protocol is not None
        if not self._pending or self._capability_task is not None or self._writer_protocol.paused:
            # Outside a call, a second request in flight, or asking again before reading the
            # last answer: the child is flooding us, not using a capability.
            self._violate(SandboxError("protocol-violation", "capability request out of turn"))
            return
        self._capability_task = asyncio.get_running_loop().create_task(self._answer(message))

    async def _answer(self, message: dict[str, Any]) -> None:
        cid = message.get("cid")
        try:
            if self.broker is None:
                raise SandboxError("capability-not-declared", "no capabilities are brokered here")
            result = await self.broker.handle(message.get("cap"), message.get("args"))
            reply: dict[str, Any] = {"cid": cid, "ok": True, "result": result}
        except SandboxError as exc:
            reply = {
                "cid": cid,
                "ok": False,
                "error": {"reason": exc.reason, "message": exc.message},
            }
        except Exception as exc:  # a broker bug or odd input must still answer the child
            reply = {
                "cid": cid,
                "ok": False,
                "error": {"reason": "capability-invalid", "message": _brief(exc)},
            }
        try:
            # Busy until the answer is written: the call's deadline bounds this wait.
            with contextlib.suppress(SandboxError, ConnectionError):
                await self._write(encode(reply))
        finally:
            self._capability_task = None

    def _violate(self, error: SandboxError) -> None:
        """A hostile child: remember why, fail every call, kill the process group."""
        if self.failure is None:
            self.failure = error
        self._fail_pending(error)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def _on_eof(self) -> None:
        if self.failure is None and not self._closed:
            self.failure = SandboxError("crashed", "the child closed its IPC channel")
            asyncio.get_running_loop().create_task(self._describe_crash())
        self._fail_pending(self.failure or SandboxError("crashed", "the child is gone"))

    async def _crash_report(self) -> SandboxError:
        """The crash, with how the child died and the end of its stderr."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.process.wait()
        return SandboxError("crashed", f"the child died ({self.exit_description()}){self._tail()}")

    async def _describe_crash(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        if self.failure is not None and self.failure.reason == "crashed":
            self.failure.message = f"the child died ({self.exit_description()}){self._tail()}"
            self.failure.args = (self.failure.message,)

    def _fail_pending(self, error: SandboxError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SandboxError(error.reason, error.message))
        self._pending.clear()

    async def _fatal(self, reason: str, message: str) -> SandboxError:
        error = SandboxError(reason, message)
        self._violate(error)
        await self.process.wait()
        return error

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        # Read to EOF even after a flood: asyncio's Process.wait() also waits for the pipes to
        # close, so a pipe left unread would make reaping the killed child hang.
        while chunk := await stream.read(65536):
            self._stderr_total += len(chunk)
            room = self.policy.stderr_keep - len(self._stderr)
            if room > 0:
                self._stderr += chunk[:room]
            if self._stderr_total > self.policy.stderr_kill and self.failure is None:
                self._violate(
                    SandboxError(
                        "protocol-violation",
                        f"the child wrote more than {self.policy.stderr_kill} bytes to stderr",
                    )
                )

    # --- reporting ---------------------------------------------------------------------------

    @property
    def stderr(self) -> bytes:
        return bytes(self._stderr)

    def exit_description(self) -> str:
        code = self.process.returncode
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def _tail(self) -> str:
        text = self._stderr[-500:].decode("utf-8", "replace").strip()
        return f"; stderr: {text}" if text else ""
