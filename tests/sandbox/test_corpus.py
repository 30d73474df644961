"""The malicious-plugin corpus against the real sandbox: one attack per bundle, every layer on.

``tests/corpus/malicious/<attack>/`` holds one filter plugin per attack (see the README there).
Each test copies a bundle to tmp, signs it with a throwaway key (no private key is ever
committed), verifies it (it must be *accepted*: the attack is in the code, not the packaging),
spawns it with the default strict :class:`SandboxPolicy` (and a broker holding a secret the
plugin did not declare), calls ``inspect`` with a map that names the host-side bait (files,
listeners, a memory marker) as its one argument (the host adds ``ctx``), and asserts the
**specific** outcome: the exception type and errno the plugin saw, or the exact
:class:`SandboxError` reason when the host had to kill the child. A plugin that fails for an
unrelated reason (a typo, an ImportError) therefore does not pass as "blocked".

After every attack the host checks what it can observe itself (no connection on any listener,
no datagram, no SIGUSR1, the decoy and key files untouched, nothing created in /tmp, the SDK or
lib-dynload, its own rlimit and nice value unchanged), that the attacking child is gone, and
that it still runs the known-good ``good/echo`` plugin with the exact expected answer.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import importlib.machinery
import importlib.util
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import haechi.sdk
import pytest
from haechi.host.sandbox import SandboxedChild, SandboxError, SandboxPolicy
from haechi.host.sandbox.broker import Broker
from haechi.trust import Bundle, SigningKey

from .helpers import CORPUS, signed_copy, verified

KEY = SigningKey.generate()  # throwaway: signs the tmp copies of this run only
MALICIOUS = CORPUS / "malicious"
GOOD = CORPUS / "good"
RESIDUAL = CORPUS / "residual"
ATTACKS = sorted(p.name for p in MALICIOUS.iterdir() if p.is_dir())
MIN_ATTACKS = 44
MAX_CALL_TIMEOUT = 2.0
CLOSE_DEADLINE = 5.0  # close() kills and reaps; it must never wait for the child's goodwill
X86_64 = platform.machine() == "x86_64"
SECRET_NAME = "HAECHI_CORPUS_TEST_SECRET"

# --- expected outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocked:
    """The hook answered ``{"blocked": True, "error": <type name>, "errno": <errno>}``."""

    error: str
    errno: int | None
    extra: Callable[[dict[str, Any], Bait], None] | None = None


@dataclass(frozen=True)
class Raises:
    """The call raised SandboxError(``reason``).

    ``returncode`` is the child's exact exit status where it is deterministic (the host's
    SIGKILL, seccomp's SIGSYS, the plugin's own exit code); ``None`` accepts any exit, but the
    child must still be gone after close. ``survives``: a plugin error leaves the child serving.
    """

    reason: str
    returncode: int | None = None
    message: str = ""
    survives: bool = False


@dataclass(frozen=True)
class Custom:
    """Anything else: ``check(outcome, bait)`` asserts it."""

    check: Callable[[Outcome, Bait], None]
    returncode: int | None = None


KILLED = -signal.SIGKILL
SIGSYS = -signal.SIGSYS
EACCES = Blocked("PermissionError", errno.EACCES)  # Landlock: a file access outside the grants
EPERM = Blocked("PermissionError", errno.EPERM)  # seccomp's errno for a denied syscall
EAFNOSUPPORT = Blocked("OSError", errno.EAFNOSUPPORT)  # seccomp: every socket() call


def _environ_is_empty(result: dict[str, Any], bait: Bait) -> None:
    # -I -S with env={}: only what CPython's locale coercion (PEP 538) sets for itself.
    assert result["environ"] == {"LC_CTYPE": "C.UTF-8"}


def _memory_creep(result: dict[str, Any], bait: Bait) -> None:
    # RLIMIT_AS is memory-mb (64) + the interpreter's 64 MiB: it stops well short of that.
    assert 1 <= result["mib"] < 128


def _threads_started(result: dict[str, Any], bait: Bait) -> None:
    assert result["started"] >= 1  # threads work; the address-space limit ends the bomb


def _fds_opened(result: dict[str, Any], bait: Bait) -> None:
    assert 0 < result["opened"] < 64  # RLIMIT_NOFILE is 64


def _double_reply(outcome: Outcome, bait: Bait) -> None:
    # Both forged frames arrive in one read. The second answers a finished call: a hostile
    # child, so nothing it sent in that read counts, not even the well-formed first frame.
    assert outcome.error is not None, f"the forged reply was accepted: {outcome.result!r}"
    assert outcome.error.reason == "protocol-violation", outcome.error
    assert outcome.failure is not None
    assert outcome.failure.reason == "protocol-violation"
    assert "unknown or finished call id" in outcome.failure.message
    assert outcome.second_call is not None
    assert outcome.second_call.reason == "protocol-violation"


def _denied(filename: Callable[[dict[str, Any]], str], filename2: Any = None) -> Blocked:
    """EACCES from Landlock, raised on exactly the path the attack aimed at."""

    def where(result: dict[str, Any], bait: Bait) -> None:
        second = filename2(bait.targets) if callable(filename2) else filename2
        expected = {"filename": filename(bait.targets), "filename2": second}
        assert {k: result.get(k) for k in expected} == expected

    return Blocked("PermissionError", errno.EACCES, where)


def _import_refused(error: str, name: Callable[[dict[str, Any]], str], message: str) -> Blocked:
    def where(result: dict[str, Any], bait: Bait) -> None:
        assert result["name"] == name(bait.targets)
        assert result["message"].startswith(message), result["message"]

    return Blocked(error, None, where)


def _capability_refused(reason: str) -> Blocked:
    def where(result: dict[str, Any], bait: Bait) -> None:
        assert result["reason"] == reason

    return Blocked("CapabilityError", None, where)


EXPECTED: dict[str, Blocked | Raises | Custom] = {
    # filesystem: Landlock grants read-only stdlib and SDK, nothing else (the host is root,
    # so DAC alone would allow every one of these)
    "read-etc-passwd": _denied(lambda c: "/etc/passwd"),
    "read-root-decoy": _denied(lambda c: c["decoy"]),
    "read-parent-environ": _denied(lambda c: f"/proc/{os.getpid()}/environ"),
    "read-host-key": _denied(lambda c: c["key_file"]),
    "read-bundle-from-disk": _denied(lambda c: c["bundle_file"]),
    "list-root-dir": _denied(lambda c: "/"),
    "write-tmp-file": _denied(lambda c: c["tmp_target"]),
    "write-sdk-dir": _denied(lambda c: os.path.join(c["sdk_dir"], c["drop_name"])),
    "write-dynload-dir": _denied(lambda c: os.path.join(c["dynload_dir"], c["drop_so"])),
    "create-symlink": _denied(lambda c: "/etc/shadow", lambda c: c["tmp_target"]),
    "create-hardlink": _denied(lambda c: c["decoy"], lambda c: c["tmp_target"]),
    "make-dir-in-tmp": _denied(lambda c: c["tmp_target"]),
    "truncate-decoy": _denied(lambda c: c["decoy"]),
    "ctypes-openat-passwd": EACCES,
    # new processes: seccomp (fork, vfork, clone without CLONE_THREAD, exec*)
    "os-fork": EPERM,
    "subprocess-run": EPERM,
    "posix-spawn": EPERM,
    "os-execv": EPERM,
    "ctypes-execve": EPERM,
    "ctypes-unshare-newuser": EPERM,
    # network: seccomp answers every socket() with EAFNOSUPPORT (and the netns is empty)
    "tcp-connect": EAFNOSUPPORT,
    "udp-sendto": EAFNOSUPPORT,
    "netlink-socket": EAFNOSUPPORT,
    "unix-pathname-connect": EAFNOSUPPORT,
    "unix-abstract-connect": EAFNOSUPPORT,
    "ctypes-socket-inet": EAFNOSUPPORT,
    "socketpair-dgram": EPERM,
    "socketpair-connect": EPERM,  # unconfined the kernel answers EISCONN: EPERM is seccomp
    "dns-localhost": Blocked("gaierror", socket.EAI_AGAIN),
    # kernel attack surface
    "io-uring-setup": EPERM,
    "userfaultfd": EPERM,
    "tiocsti-ioctl": EPERM,
    "x32-syscall": Raises("crashed", returncode=SIGSYS),
    "int80-rwx-page": Raises("crashed", returncode=SIGSYS),
    # other processes: seccomp's own-pid rules (and Landlock's signal scope)
    "kill-parent-sigusr1": EPERM,
    "kill-everyone": EPERM,
    "tgkill-parent": EPERM,
    "ptrace-attach-parent": EPERM,
    "process-vm-readv-parent": EPERM,
    "pidfd-open-parent": EPERM,
    "prlimit-parent": EPERM,
    "setpriority-parent": EPERM,
    "prctl-clear-pdeathsig": EPERM,
    # resources: rlimits contain what they can, the host's deadline and caps the rest
    "memory-bomb": Blocked("MemoryError", None),
    "memory-creep": Blocked("MemoryError", None, _memory_creep),
    "thread-bomb": Blocked("RuntimeError", None, _threads_started),
    "fd-exhaustion": Blocked("OSError", errno.EMFILE, _fds_opened),
    "cpu-spin": Raises("timeout", returncode=KILLED, message="did not answer within"),
    "sleep-past-deadline": Raises("timeout", returncode=KILLED, message="did not answer within"),
    "print-flood": Raises("protocol-violation", returncode=KILLED, message="stderr"),
    "stderr-flood-big-pipe": Raises("protocol-violation", returncode=KILLED, message="stderr"),
    # the IPC channel: the host treats the child as hostile
    "ipc-garbage": Raises("protocol-violation", returncode=KILLED, message="undecodable"),
    "ipc-oversized-length": Raises(
        "protocol-violation", returncode=KILLED, message="frame of 4294967295 bytes"
    ),
    "ipc-unknown-id": Raises(
        "protocol-violation", returncode=KILLED, message="unknown or finished call id 987654321"
    ),
    "ipc-double-reply": Custom(_double_reply, returncode=KILLED),
    "ipc-close-fds": Raises("crashed"),
    "huge-reply": Raises("protocol-violation", returncode=KILLED, message="exceeds"),
    "unserializable-lambda": Raises("plugin-error", message="UnserializableResult:", survives=True),
    "raise-systemexit": Raises("crashed", returncode=7),
    "os-exit-zero": Raises("crashed", returncode=0),
    # imports: Landlock leaves only the stdlib and the SDK readable. The finder of the venv's
    # site-packages (msgpack comes from there, before confinement) still knows the names in it,
    # so the import finds nacl and the open is refused; a new sys.path entry cannot be listed.
    "import-outside-module": _import_refused(
        "ModuleNotFoundError", lambda c: c["module_name"], "No module named"
    ),
    # The child forgets site-packages before confinement, and Landlock then refuses to list
    # it, so the finder a plugin creates for it sees nothing at all.
    "import-site-packages": _import_refused(
        "ModuleNotFoundError", lambda c: "nacl", "No module named 'nacl'"
    ),
    "import-by-file-location": _denied(lambda c: c["module_file"]),
    "import-ext-ssl": _import_refused(
        "ImportError", lambda c: "_ssl", "libssl.so.3: cannot open shared object file"
    ),
    "import-ext-sqlite3": _import_refused(
        "ImportError", lambda c: "_sqlite3", "libsqlite3.so.0: cannot open shared object file"
    ),
    # secrets: the child's environment is empty; the broker grants only what the manifest
    # declares (these declare nothing, while the operator does hold the secret)
    "environ-secret": Blocked("KeyError", None, _environ_is_empty),
    "cap-undeclared-secret": _capability_refused("capability-not-declared"),
    "cap-undeclared-kv": _capability_refused("capability-not-declared"),
    "cap-undeclared-fetch": _capability_refused("capability-not-declared"),
}

X86_64_ONLY = {"x32-syscall", "int80-rwx-page"}

# --- host-side bait ------------------------------------------------------------------------------


@dataclass
class Bait:
    """Everything an attack may aim at, set up by the host; :meth:`assert_untouched` after."""

    root: Path
    bundle_file: Path
    secret: str
    targets: dict[str, Any] = field(default_factory=dict)  # what the plugin is told
    sigusr1: list[int] = field(default_factory=list)
    _sockets: dict[str, socket.socket] = field(default_factory=dict)
    _files: dict[Path, tuple[bytes, int]] = field(default_factory=dict)
    _never: list[Path] = field(default_factory=list)
    _marker: Any = None

    def setup(self) -> None:
        decoy = self._secret_file("decoy.txt", b"decoy " + secrets.token_hex(16).encode())
        key_file = self._secret_file("host.key", b"-----FAKE KEY----- " + secrets.token_bytes(32))
        module_name = f"hx_outside_{secrets.token_hex(4)}"
        module_dir = self.root / "modules"
        module_dir.mkdir()
        module_file = module_dir / f"{module_name}.py"
        module_file.write_text("SECRET = 'imported from outside'\n")
        drop = f"hx_corpus_{secrets.token_hex(6)}"
        sdk_dir = Path(haechi.sdk.__file__).resolve().parent
        dynload = Path(sysconfig.get_config_var("DESTSHARED")).resolve()
        drop_so = drop + importlib.machinery.EXTENSION_SUFFIXES[0]
        tmp_target = self.root / "target"
        self._never += [tmp_target, sdk_dir / f"{drop}.py", dynload / drop_so]
        nacl = importlib.util.find_spec("nacl")
        assert nacl is not None and nacl.origin is not None
        site_packages = Path(nacl.origin).parent.parent
        assert (site_packages / "nacl" / "__init__.py").is_file()  # the import is real
        self._marker = ctypes.create_string_buffer(b"HAECHI-HOST-MEMORY-" + secrets.token_bytes(8))

        tcp = self._listen(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 0), key="tcp")
        udp = self._listen(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 0), key="udp")
        unix_path = str(self.root / "u.sock")
        self._listen(socket.AF_UNIX, socket.SOCK_STREAM, unix_path, key="unix")
        abstract = f"hx-corpus-{secrets.token_hex(8)}"
        self._listen(socket.AF_UNIX, socket.SOCK_STREAM, "\0" + abstract, key="abstract")
        self.targets = {
            "decoy": str(decoy),
            "key_file": str(key_file),
            "bundle_file": str(self.bundle_file),
            "tmp_target": str(tmp_target),
            "sdk_dir": str(sdk_dir),
            "dynload_dir": str(dynload),
            "drop_name": f"{drop}.py",
            "drop_so": drop_so,
            "module_dir": str(module_dir),
            "module_name": module_name,
            "module_file": str(module_file),
            "site_packages": str(site_packages),
            "tcp_port": tcp.getsockname()[1],
            "udp_port": udp.getsockname()[1],
            "unix_path": unix_path,
            "abstract_name": abstract,
            "host_addr": ctypes.addressof(self._marker),
            "host_len": len(self._marker.raw),
            "nofile": 17,
            "secret_name": SECRET_NAME,
        }

    def _secret_file(self, name: str, content: bytes) -> Path:
        path = self.root / name
        path.write_bytes(content)
        path.chmod(0o600)
        self._files[path] = (content, path.stat().st_mtime_ns)
        return path

    def _listen(self, family: int, kind: int, address: Any, key: str) -> socket.socket:
        sock = socket.socket(family, kind)
        sock.bind(address)
        if kind == socket.SOCK_STREAM:
            sock.listen(8)
        sock.setblocking(False)
        self._sockets[key] = sock
        return sock

    def assert_untouched(self) -> None:
        for name, sock in self._sockets.items():
            try:
                if sock.type == socket.SOCK_STREAM:
                    connection, peer = sock.accept()
                    connection.close()
                    got = f"a connection from {peer!r}"
                else:
                    data, peer = sock.recvfrom(1024)
                    got = f"{data!r} from {peer!r}"
            except BlockingIOError:
                continue  # nothing connected, nothing arrived
            pytest.fail(f"the {name} listener received {got}")
        assert self.sigusr1 == [], "the child signalled the host"
        for path, (content, mtime) in self._files.items():
            assert path.read_bytes() == content
            assert path.stat().st_mtime_ns == mtime
        created = [p for p in self._never if os.path.lexists(p)]
        for path in created:  # never leave a planted file behind, then fail
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        assert created == [], f"the child created {created}"

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()


@pytest.fixture
def bait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bait]:
    """The bait, a secret in the host's environment, a SIGUSR1 counter, saved host limits."""
    # AF_UNIX paths are limited to 108 bytes: keep the bait in a short /tmp directory.
    root = Path(tempfile.mkdtemp(prefix="hx-bait-", dir="/tmp"))
    secret = f"s3cr3t-{secrets.token_hex(16)}"
    monkeypatch.setenv(SECRET_NAME, secret)
    bait = Bait(root=root, bundle_file=tmp_path / "bundle" / "plugin.py", secret=secret)
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: bait.sigusr1.append(signum))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        bait.setup()
        yield bait
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == nofile, "host rlimit changed"
        assert os.getpriority(os.PRIO_PROCESS, 0) == nice, "host priority changed"
    finally:
        signal.signal(signal.SIGUSR1, previous)
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        bait.close()
        shutil.rmtree(root, ignore_errors=True)


# --- running one plugin --------------------------------------------------------------------------

STRICT_LAYERS = {
    "netns": "on",
    "caps": "dropped",
    "no-new-privs": "on",
    "seccomp": "on",
}


@dataclass
class Outcome:
    result: Any = None
    error: SandboxError | None = None
    failure: SandboxError | None = None  # what the host recorded against the child
    running_after_call: bool = False
    returncode: int | None = None  # after close
    second_call: SandboxError | None = None
    layers: dict[str, str] = field(default_factory=dict)
    stderr: bytes = field(default=b"", repr=False)
    close_hung: bool = False


CLOSE_HUNG = (
    f"SandboxedChild.close() did not return within {CLOSE_DEADLINE:g} s: the host never "
    "finished reaping the killed child"
)


async def _close(child: SandboxedChild) -> bool:
    """Close under a deadline; True if close() hung (a host bug the caller must report)."""
    try:
        async with asyncio.timeout(CLOSE_DEADLINE):
            await child.close()
    except TimeoutError:
        return True
    return False


def _bundle(source: Path, target: Path) -> Bundle:
    return verified(signed_copy(source, target, KEY), KEY)


async def _attack(bundle: Bundle, bait: Bait, timeout: float) -> Outcome:
    # A realistic host: a broker that holds the operator's secret, for a plugin whose manifest
    # declares no capability at all.
    broker = Broker(bundle.manifest, secrets={SECRET_NAME: bait.secret})
    targets = bait.targets
    outcome = Outcome()
    child = await SandboxedChild.spawn(bundle, SandboxPolicy(), broker)
    try:
        outcome.layers = dict(child.layers)
        try:
            outcome.result = await child.call("inspect", [targets], timeout=timeout)
        except SandboxError as exc:
            outcome.error = exc
        await asyncio.sleep(0)  # let an EOF or a violation seen in the same read land
        outcome.running_after_call = child.process.returncode is None and child.failure is None
        outcome.failure = child.failure
        if not outcome.running_after_call:
            try:
                await child.call("inspect", [targets], timeout=timeout)
            except SandboxError as exc:
                outcome.second_call = exc
    finally:
        outcome.close_hung = await _close(child)
    outcome.returncode = child.process.returncode
    outcome.stderr = child.stderr
    return outcome


ECHO_ARGS = [["ping", "héllo wörld", ""]]
ECHO_ANSWER = [
    {"segment": 0, "length": 4},
    {"segment": 1, "length": 11},
    {"segment": 2, "length": 0},
]


async def _echo(bundle: Bundle) -> tuple[Any, int | None]:
    child = await SandboxedChild.spawn(bundle, SandboxPolicy())
    try:
        answer = await child.call("inspect", ECHO_ARGS, timeout=MAX_CALL_TIMEOUT)
    finally:
        assert not await _close(child), CLOSE_HUNG
    return answer, child.process.returncode


def _assert_host_healthy(tmp_path: Path) -> None:
    answer, returncode = asyncio.run(_echo(_bundle(GOOD / "echo", tmp_path / "echo")))
    assert answer == ECHO_ANSWER
    assert returncode is not None


def _call_timeout(bundle: Bundle) -> float:
    # The manifest's deadline, as `haechi plugin call` uses it, and never above 2 s here.
    timeout = min(bundle.manifest.limits.timeout_ms / 1000, MAX_CALL_TIMEOUT)
    assert timeout <= MAX_CALL_TIMEOUT
    return timeout


# --- the tests -----------------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    # A missing or renamed directory must not silently shrink the suite.
    assert len(ATTACKS) >= MIN_ATTACKS
    assert set(ATTACKS) == set(EXPECTED)
    for name in ATTACKS:
        manifest = (MALICIOUS / name / "plugin.toml").read_text()
        assert 'kind = "filter"' in manifest
        assert "capabilities = []" in manifest
        assert 'requires-host = ">=0.1"' in manifest
        assert "[limits]" in manifest
        assert "def inspect(segments, ctx):" in (MALICIOUS / name / "plugin.py").read_text()
    assert not list(CORPUS.rglob("*.key")), "a private key was committed to the corpus"


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_is_contained(name: str, tmp_path: Path, bait: Bait) -> None:
    if name in X86_64_ONLY and not X86_64:
        pytest.skip(f"{name} uses an x86_64-only syscall entry point")
    expected = EXPECTED[name]
    bundle = _bundle(MALICIOUS / name, tmp_path / "bundle")
    outcome = asyncio.run(_attack(bundle, bait, _call_timeout(bundle)))
    close_hung = outcome.close_hung
    assert not close_hung, f"{CLOSE_HUNG} (after {outcome.error or outcome.result!r:.200})"

    assert {k: outcome.layers.get(k) for k in STRICT_LAYERS} == STRICT_LAYERS
    assert outcome.layers["landlock"].startswith("abi ")
    if isinstance(expected, Blocked):
        assert outcome.error is None, f"{outcome.error!r}: {outcome.stderr[-2000:]!r}"
        result = outcome.result
        assert isinstance(result, dict), result
        triple = {k: result.get(k) for k in ("blocked", "error", "errno")}
        assert triple == {"blocked": True, "error": expected.error, "errno": expected.errno}, result
        if expected.extra is not None:
            expected.extra(result, bait)
        assert outcome.running_after_call, "a contained attack must leave the child serving"
    elif isinstance(expected, Raises):
        assert outcome.error is not None, f"the call answered {outcome.result!r:.300}"
        assert outcome.error.reason == expected.reason, outcome.error
        assert expected.message in outcome.error.message
        assert outcome.running_after_call == expected.survives
        if not expected.survives:
            assert outcome.second_call is not None
            assert outcome.second_call.reason == expected.reason
        if expected.returncode is not None:
            assert outcome.returncode == expected.returncode, outcome.stderr[-2000:]
    else:
        expected.check(outcome, bait)
        if expected.returncode is not None:
            assert outcome.returncode == expected.returncode
    assert outcome.returncode is not None, "the attacking child outlived close()"
    assert bait.secret not in repr(outcome.result) + repr(outcome.stderr)
    bait.assert_untouched()
    _assert_host_healthy(tmp_path)


# Attacks whose code is harmless to run in the test process itself, where nothing confines it:
# there each must *succeed*, which proves the plugin really performs its attack (the "blocked"
# answer in the sandbox is the sandbox's doing, not a bug in the plugin).
UNCONFINED_SAFE = [
    "read-etc-passwd",
    "read-root-decoy",
    "read-host-key",
    "read-bundle-from-disk",
    "list-root-dir",
    "ctypes-openat-passwd",
    "write-tmp-file",
    "create-symlink",
    "create-hardlink",
    "make-dir-in-tmp",
    "truncate-decoy",
    "import-by-file-location",
    "import-ext-ssl",
    "import-ext-sqlite3",
    "dns-localhost",
    "tcp-connect",
    "udp-sendto",
    "netlink-socket",
    "unix-pathname-connect",
    "unix-abstract-connect",
    "socketpair-dgram",
    "ctypes-socket-inet",
    "subprocess-run",
    "posix-spawn",
    "pidfd-open-parent",
    "environ-secret",
]


@pytest.mark.parametrize("name", UNCONFINED_SAFE)
def test_attack_succeeds_without_the_sandbox(name: str, tmp_path: Path, bait: Bait) -> None:
    signed_copy(MALICIOUS / name, tmp_path / "bundle", KEY)
    namespace: dict[str, Any] = {"__name__": f"corpus_{name}"}
    source = (MALICIOUS / name / "plugin.py").read_text()
    exec(compile(source, f"corpus/{name}/plugin.py", "exec"), namespace)
    result = namespace["inspect"](bait.targets, None)
    assert result["blocked"] is False, result
    if name == "environ-secret":
        assert result["evidence"] == bait.secret


def _sha256_of(segments: list[str]) -> str:
    import hashlib

    return hashlib.sha256("".join(segments).encode()).hexdigest()


SDK_FILE = Path(haechi.sdk.__file__).resolve().parent / "protocol.py"
CONTROL_SEGMENTS = [str(SDK_FILE), "héllo", ""]  # read-sdk opens the first one
CONTROL_ANSWERS: dict[str, Any] = {
    "echo": [
        {"segment": 0, "length": len(str(SDK_FILE))},
        {"segment": 1, "length": 5},
        {"segment": 2, "length": 0},
    ],
    "threads": [sum(range(i * 1000)) for i in range(4)],
    "lazy-import-decimal": {"was_loaded": False, "sum": "3.3"},
    "urandom": {"len": 32, "distinct": True},
    "sha256": _sha256_of(CONTROL_SEGMENTS),
    "json-roundtrip": {"segments": CONTROL_SEGMENTS},
    "read-sdk": SDK_FILE.read_bytes,  # read at test time: the SDK may be edited meanwhile
}


@pytest.mark.parametrize("name", sorted(CONTROL_ANSWERS))
def test_positive_control_still_works(name: str, tmp_path: Path) -> None:
    bundle = _bundle(GOOD / name, tmp_path / "bundle")

    async def control() -> Any:
        child = await SandboxedChild.spawn(bundle, SandboxPolicy())
        try:
            assert {k: child.layers.get(k) for k in STRICT_LAYERS} == STRICT_LAYERS
            return await child.call("inspect", [CONTROL_SEGMENTS], timeout=MAX_CALL_TIMEOUT)
        finally:
            assert not await _close(child), CLOSE_HUNG

    answer = asyncio.run(control())
    expected = CONTROL_ANSWERS[name]
    assert answer == (expected() if callable(expected) else expected)


def test_documented_residual_stat_and_chdir_are_not_mediated(tmp_path: Path) -> None:
    """Landlock does not mediate stat() or chdir() (sandbox-facts §6.4): a known residual.

    A plugin learns that /etc/shadow exists, its mode, size and owner, and can chdir into
    /root, but opening the file or listing the directory is still denied. If this test starts
    failing because stat is refused, the residual is gone: update the README and this test.
    """
    path = Path("/etc/shadow")
    directory = Path("/root")
    assert path.exists() and directory.is_dir()
    bundle = _bundle(RESIDUAL / "stat-not-mediated", tmp_path / "bundle")

    async def scenario() -> Any:
        child = await SandboxedChild.spawn(bundle, SandboxPolicy())
        try:
            bait = {"path": str(path), "directory": str(directory)}
            return await child.call("inspect", [bait], timeout=MAX_CALL_TIMEOUT)
        finally:
            assert not await _close(child), CLOSE_HUNG

    result = asyncio.run(scenario())
    st = path.stat()
    # In the child's user namespace (no uid map) root's files show the overflow uid.
    overflow_uid = int(Path("/proc/sys/kernel/overflowuid").read_text())
    assert result == {
        "stat": {"mode": st.st_mode, "size": st.st_size, "uid": overflow_uid},
        "open": {"blocked": True, "error": "PermissionError", "errno": errno.EACCES},
        "cwd": str(directory),
        "listdir": {"blocked": True, "error": "PermissionError", "errno": errno.EACCES},
    }
