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


class _BundleFinder:
    """Imports the plugin's own modules from the verified bytes, never from disk."""

    def __init__(self, files: dict) -> None:
        self.modules = {}
        for path, data in files.items():
            if not path.endswith(".py"):
                continue
            parts = path[:-3].split("/")
            if parts[-1] == "__init__":
                self.modules[".".join(parts[:-1])] = (path, data, True)
            else:
                self.modules[".".join(parts)] = (path, data, False)

    def find_spec(self, name, path=None, target=None):
        import importlib.util

        entry = self.modules.get(name)
        if entry is None:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=entry[2])

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        path, data, is_package = self.modules[module.__name__]
        if is_package:
            module.__path__ = []
        exec(compile(data, f"<plugin>/{path}", "exec"), module.__dict__)  # noqa: S102


class CapabilityError(Exception):
    """The host refused a capability request; ``reason`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class _KV:
    def __init__(self, ctx: "Context") -> None:
        self._ctx = ctx

    def get(self, key):
        return self._ctx._request("kv", {"op": "get", "key": key})

    def set(self, key, value) -> None:
        self._ctx._request("kv", {"op": "set", "key": key, "value": value})

    def delete(self, key) -> bool:
        return self._ctx._request("kv", {"op": "delete", "key": key})


class Context:
    """What a hook receives as ``ctx``: every method is a request to the host's broker."""

    def __init__(self, channel: "Channel") -> None:
        self._channel = channel
        self._next = 0
        self.kv = _KV(self)

    def secret(self, name):
        return self._request("secret", {"name": name})

    def fetch(self, url, method="GET", body=None, headers=None):
        return self._request(
            "fetch", {"url": url, "method": method, "body": body, "headers": headers or {}}
        )

    def seal(self, key, data, aad=b""):
        """AES-256-GCM with the host's key ``key`` (declared as keys:<key>); bytes out."""
        return self._request("key", {"name": key, "op": "seal", "data": data, "aad": aad})

    def open(self, key, sealed, aad=b""):
        return self._request("key", {"name": key, "op": "open", "data": sealed, "aad": aad})

    def log(self, message) -> None:
        print(str(message)[:2000], file=sys.stderr)

    def _request(self, cap: str, args: dict):
        self._next += 1
        self._channel.send({"op": "cap", "cid": self._next, "cap": cap, "args": args})
        reply = self._channel.receive()
        if reply.get("cid") != self._next:
            raise EOFError("unexpected frame while waiting for the broker")
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise CapabilityError(str(error.get("reason")), str(error.get("message")))


def _load(message: dict, hook_names: list) -> tuple[dict, list]:
    files = message["files"]
    sys.meta_path.append(_BundleFinder(files))
    namespace = {"__name__": "__plugin__", "__file__": f"<plugin>/{message['entry']}"}
    exec(compile(files[message["entry"]], namespace["__file__"], "exec"), namespace)  # noqa: S102
    hooks = [name for name in hook_names if callable(namespace.get(name))]
    return namespace, hooks


def _serve(channel: Channel, namespace: dict, hooks: list) -> None:
    ctx = Context(channel)
    namespace["CapabilityError"] = CapabilityError
    while True:
        try:
            message = channel.receive()
        except EOFError:
            return
        call_id = message.get("id")
        hook = message.get("hook")
        if message.get("op") != "call" or hook not in hooks:
            channel.send(
                {
                    "id": call_id,
                    "ok": False,
                    "error": {
                        "type": "HookNotOffered",
                        "message": f"{hook!r} is not a hook of this plugin",
                    },
                }
            )
            continue
        args = message.get("args")
        try:
            if isinstance(args, dict):
                result = namespace[hook](**args, ctx=ctx)
            else:
                result = namespace[hook](*(args or ()), ctx)
        except Exception as exc:  # a plugin error is an answer, not a crash
            channel.send(
                {
                    "id": call_id,
                    "ok": False,
                    "error": {"type": type(exc).__name__, "message": str(exc)[:2000]},
                }
            )
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
    try:
        namespace, hooks = _load(message, config["hooks"])
    except BaseException as exc:  # report any failure to load, then stop
        channel.send({"op": "load-failed", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return
    channel.send({"op": "loaded", "hooks": hooks})
    _serve(channel, namespace, hooks)
