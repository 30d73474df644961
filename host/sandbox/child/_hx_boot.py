"""The plugin child's bootstrap: confine this process, then load and serve the verified plugin.

Runs as ``python -I -S -B -c "import _hx_boot; _hx_boot.main()" CONFIG`` with an empty
environment, cwd ``/``, in a new session, with two pipe fds for IPC. CONFIG is the hex of a
``marshal``-ed dict from the host (marshal rather than json: importing json costs ~8 ms of
spawn time, sandbox-facts §4). Order (DESIGN §3), every layer before the first byte of plugin
code arrives:

1. die with the parent (PDEATHSIG, then re-check the parent pid);
2. import everything needed later: msgpack, the confinement modules, preloaded extensions;
3. fd 0 -> /dev/null, fd 1 -> stderr, so ``print`` cannot corrupt frames;
4. ``unshare(CLONE_NEWUSER | CLONE_NEWNET)``: an empty network namespace;
5. drop every capability; rlimits;
6. ``PR_SET_NO_NEW_PRIVS``, not dumpable;
7. Landlock (read-only stdlib and SDK, no TCP, signal and abstract-socket scopes);
8. seccomp, last;
9. ``hello`` with the layer report; receive ``load`` with the verified bytes; compile and run
   them; answer ``call`` frames until the host closes the pipe.

A layer that fails is fatal unless the host asked for ``best-effort``; the hello frame then
names the stage, and the host refuses the plugin with ``sandbox-layer-unavailable:<stage>``.
"""

import ctypes
import marshal
import os
import signal
import sys

PROTOCOL = 1
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _die_with_parent(parent: int) -> None:
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != parent:  # the host died before PDEATHSIG was armed
        os._exit(70)


def _isolate_stdio() -> None:
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)


def _netns() -> str:
    _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET), "unshare(NEWUSER|NEWNET)")
    return "on"


def _drop_caps() -> str:
    # The bounding set first (needs CAP_SETPCAP, which we hold in the fresh user namespace),
    # then the effective, permitted and inheritable sets through capset(2).
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL: past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    return "dropped"


def _rlimits(limits: dict) -> str:
    import resource

    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    return ", ".join(sorted(limits))


def _no_new_privs() -> str:
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    _check(_libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(DUMPABLE)")
    return "on"


def _landlock(read_only: list) -> str:
    import _hx_landlock

    report = _hx_landlock.restrict(read_only)
    return f"abi {report['abi']}"


def _seccomp() -> str:
    import _hx_seccomp

    if not _hx_seccomp.available():
        raise OSError(38, "seccomp filter mode is not available")
    _hx_seccomp.install()
    return "on"


def confine(config: dict) -> tuple[dict, str, str]:
    """Apply every layer in order; return (report, failed stage or "", error or "")."""
    steps = (
        ("netns", _netns, ()),
        ("caps", _drop_caps, ()),
        ("rlimits", _rlimits, (config["rlimits"],)),
        ("no-new-privs", _no_new_privs, ()),
        ("landlock", _landlock, (config["read_only"],)),
        ("seccomp", _seccomp, ()),
    )
    report: dict = {}
    strict = config["mode"] == "strict"
    for stage, step, args in steps:
        try:
            report[stage] = step(*args)
        except OSError as exc:
            report[stage] = f"unavailable: {exc.strerror or exc}"
            if strict:
                return report, stage, str(exc)
    return report, "", ""


class Channel:
    """Length-prefixed msgpack frames over two pipe fds (blocking: the child serves serially)."""

    def __init__(self, fd_in: int, fd_out: int, max_frame: int) -> None:
        import msgpack

        self.fd_in, self.fd_out, self.max_frame = fd_in, fd_out, max_frame
        self.pack = msgpack.Packer(use_bin_type=True).pack
        self.unpackb = msgpack.unpackb

    def _read_exact(self, size: int) -> bytes:
        chunks, got = [], 0
        while got < size:
            chunk = os.read(self.fd_in, min(size - got, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def receive(self) -> dict:
        size = int.from_bytes(self._read_exact(4), "big")
        if size > self.max_frame:
            raise EOFError  # the host never sends this; stop serving
        return self.unpackb(self._read_exact(size), raw=False, strict_map_key=True)

    def send(self, message: dict) -> None:
        try:
            body = self.pack(message)
        except (TypeError, ValueError, OverflowError) as exc:
            body = self.pack(
                {
                    "id": message.get("id"),
                    "ok": False,
                    "error": {"type": "UnserializableResult", "message": str(exc)[:500]},
                }
            )
        view = memoryview(len(body).to_bytes(4, "big") + body)
        while view:
            view = view[os.write(self.fd_out, view) :]


def _import_sdk(sdk_dir: str) -> None:
    """Load ``haechi.sdk`` from its directory before confinement; plugin code imports it.

    Only the SDK: ``haechi`` becomes an empty namespace here, so ``haechi.host`` and
    ``haechi.trust`` cannot be imported by a plugin even if their files were readable.
    """
    import importlib.util
    import types

    namespace = types.ModuleType("haechi")
    namespace.__path__ = []
    sys.modules["haechi"] = namespace
    spec = importlib.util.spec_from_file_location(
        "haechi.sdk", os.path.join(sdk_dir, "__init__.py"), submodule_search_locations=[sdk_dir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["haechi.sdk"] = module
    spec.loader.exec_module(module)
    namespace.sdk = module
    import haechi.sdk.runtime  # noqa: F401


class _HostGone(BaseException):
    """The host closed the channel while the plugin waited for the broker.

    A BaseException, and ours: plugin code cannot catch it by accident with ``except
    Exception``, and an ``EOFError`` the plugin raises itself (gzip on truncated input) stays an
    ordinary plugin error instead of looking like a lost host.
    """


def _transport(channel: Channel):
    """ctx's way to the host broker: one ``cap`` frame out, its answer in."""
    from haechi.sdk import CapabilityError

    counter = [0]

    def request(cap: str, args: dict):
        counter[0] += 1
        try:
            channel.send({"op": "cap", "cid": counter[0], "cap": cap, "args": args})
            reply = channel.receive()
        except (EOFError, OSError):
            raise _HostGone from None
        if reply.get("cid") != counter[0]:
            raise _HostGone
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise CapabilityError(str(error.get("reason")), str(error.get("message")))

    return request


def _error(call_id, kind: str, message: str) -> dict:
    return {"id": call_id, "ok": False, "error": {"type": kind, "message": message[:2000]}}


def _serve(channel: Channel, plugin) -> None:
    from haechi.sdk import Context

    ctx = Context(_transport(channel))
    while True:
        try:
            message = channel.receive()
        except EOFError:
            return
        call_id = message.get("id")
        hook = message.get("hook")
        if message.get("op") != "call" or hook not in plugin.hooks:
            channel.send(
                _error(call_id, "HookNotOffered", f"{hook!r} is not a hook of this plugin")
            )
            continue
        args = message.get("args")
        try:
            result = plugin.call(hook, args, ctx)
        except _HostGone:
            return  # the host went away while the plugin waited for the broker
        except Exception as exc:  # a plugin error is an answer, not a crash
            channel.send(_error(call_id, type(exc).__name__, str(exc)))
            continue
        channel.send({"id": call_id, "ok": True, "result": result})


def main() -> None:
    # The config comes from the host that spawned us (argv), never from the plugin.
    config = marshal.loads(bytes.fromhex(sys.argv[1]))  # noqa: S302
    _die_with_parent(config["parent"])
    # After the stdlib, so nothing outside it can shadow a stdlib module loaded before confinement.
    sys.path.extend(config["sys_path"])
    for name in config["preload"]:
        __import__(name)
    _import_sdk(config["sdk_dir"])
    import importlib.util  # noqa: F401  (used by the bundle importer after confinement)

    import _hx_landlock  # noqa: F401  (imported now: after Landlock this directory is unreadable)
    import _hx_seccomp  # noqa: F401

    # Everything from outside the stdlib is loaded; forget where it came from, so plugin code
    # cannot even list site-packages through the import system's caches.
    # (The stdlib's cached finder stays: after Landlock, which grants the stdlib entry by
    # entry, its directory can no longer be listed to build a new one.)
    for entry in config["sys_path"]:
        while entry in sys.path:
            sys.path.remove(entry)
        sys.path_importer_cache.pop(entry, None)

    channel = Channel(config["fd_in"], config["fd_out"], config["max_frame"])
    _isolate_stdio()
    if config["cpus"] is not None:
        # Placement, not confinement: the host checked the set, so a failure here is a cpuset
        # change in between, which the scheduler handles; report it rather than refuse.
        try:
            os.sched_setaffinity(0, config["cpus"])
            placed = ",".join(map(str, config["cpus"]))
        except OSError as exc:
            placed = f"unchanged: {exc.strerror}"
    report, stage, error = confine(config)
    if config["cpus"] is not None:
        report["cpus"] = placed
    channel.send(
        {
            "op": "hello",
            "protocol": PROTOCOL,
            "kind": config["kind"],
            "ok": not stage,
            "layers": report,
            "stage": stage,
            "error": error,
        }
    )
    if stage:
        os._exit(3)
    try:
        message = channel.receive()
    except EOFError:
        return
    from haechi.sdk.runtime import load_plugin

    try:
        plugin = load_plugin(message["files"], message["entry"], config["kind"])
    except BaseException as exc:  # report any failure to load, then stop
        channel.send({"op": "load-failed", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return
    channel.send({"op": "loaded", "hooks": list(plugin.hooks)})
    _serve(channel, plugin)
