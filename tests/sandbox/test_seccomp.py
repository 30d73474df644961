"""seccomp layer of the plugin child (``_hx_seccomp.py``).

Two kinds of test:

* against the real kernel: each probe runs in a fresh ``python -I -S -B`` child that sets
  ``PR_SET_NO_NEW_PRIVS``, installs the filter and prints what the attempt gave.  Where it is safe,
  the same probe also runs unconfined first as a control, so a test proves the filter (and not the
  environment) is what stops it;
* against a small classic-BPF interpreter in this file, for every rule on both arches (aarch64
  cannot be run here) and for the assembler's jump checks.

Raw syscall numbers used by probes are written out here, not taken from the module, so a wrong
number in its tables cannot make a probe pass vacuously.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

CHILD_DIR = Path(__file__).resolve().parents[2] / "host" / "sandbox" / "child"
MACHINE = os.uname().machine
TIMEOUT = 60

NR: dict[str, int] = {
    "x86_64": {
        "read": 0,
        "write": 1,
        "ioctl": 16,
        "getpid": 39,
        "clone": 56,
        "fork": 57,
        "vfork": 58,
        "execve": 59,
        "ptrace": 101,
        "openat": 257,
        "unshare": 272,
        "process_vm_readv": 310,
        "seccomp": 317,
        "io_uring_setup": 425,
        "clone3": 435,
    },
    "aarch64": {
        "read": 63,
        "write": 64,
        "ioctl": 29,
        "getpid": 172,
        "clone": 220,
        "execve": 221,
        "ptrace": 117,
        "openat": 56,
        "unshare": 97,
        "process_vm_readv": 270,
        "seccomp": 277,
        "io_uring_setup": 425,
        "clone3": 435,
    },
}.get(MACHINE, {})


def _load_module() -> ModuleType:
    # Importing is side-effect free: only install() touches the process, and the in-process
    # tests below only build and interpret programs.
    spec = importlib.util.spec_from_file_location("_hx_seccomp", CHILD_DIR / "_hx_seccomp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sc = _load_module()

# --- running probes in a child -----------------------------------------------------------------

CHILD_TEMPLATE = """\
import ctypes, errno, os, sys
sys.path.insert(0, {child_dir!r})
import _hx_seccomp
NR = {nr!r}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def raw(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])
    return errno.errorcode.get(ctypes.get_errno(), "?") if r == -1 else "ok"

def name(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))

def addr(obj):
    return ctypes.addressof(obj)

if {nnp!r} and libc.prctl(38, 1, 0, 0, 0) != 0:
    raise SystemExit("prctl(PR_SET_NO_NEW_PRIVS) failed")
if {confine!r}:
    _hx_seccomp.install()
{probe}
"""


def run_child(
    probe: str, *, confine: bool = True, nnp: bool = True
) -> subprocess.CompletedProcess[str]:
    code = CHILD_TEMPLATE.format(
        child_dir=str(CHILD_DIR), nr=NR, nnp=nnp, confine=confine, probe=probe
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={},
        cwd="/",
    )


def outcome(probe: str, *, confine: bool = True, nnp: bool = True) -> str:
    """What the probe printed; the child must have exited cleanly."""
    result = run_child(probe, confine=confine, nnp=nnp)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout.strip()


def assert_denied(probe: str, confined: str, unconfined: str | None = None) -> None:
    assert outcome(probe) == confined
    if unconfined is not None:  # control: without the filter the probe gets through
        assert outcome(probe, confine=False) == unconfined


# --- the real kernel -----------------------------------------------------------------------------


def test_available() -> None:
    assert outcome("print(_hx_seccomp.available())", confine=False) == "True"
    assert sc.ARCH == MACHINE


def test_install_requires_no_new_privs() -> None:
    probe = """
try:
    _hx_seccomp.install()
except OSError as e:
    print(name(e))
"""
    assert outcome(probe, confine=False, nnp=False) == "EPERM"


def test_unsupported_arch_raises_enosys() -> None:
    probe = """
_hx_seccomp.ARCH = "riscv64"
print(_hx_seccomp.available())
try:
    _hx_seccomp.install()
except OSError as e:
    print(name(e))
"""
    assert outcome(probe, confine=False).split() == ["False", "ENOSYS"]


def test_os_fork_denied() -> None:
    # glibc's fork() is clone(SIGCHLD...), so this exercises the clone rule.
    probe = """
try:
    pid = os.fork()
except OSError as e:
    print(name(e))
else:
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print("forked")
"""
    assert_denied(probe, "EPERM", "forked")


def test_raw_fork_family_denied() -> None:
    # fork/vfork exist only on x86_64; clone with CLONE_THREAD only in the high word is a fork to
    # the kernel (it uses the low 32 bits) and must be judged the same way.
    probe = """
out = []
for nr_name in ("fork", "vfork"):
    if nr_name in NR:
        out.append(raw(nr_name))
ctypes.set_errno(0)
flags = ctypes.c_long(17 | (0x10000 << 32))  # SIGCHLD, CLONE_THREAD << 32
r = libc.syscall(ctypes.c_long(NR["clone"]), flags, *[ctypes.c_long(0)] * 4)
if r == 0:
    os._exit(0)
out.append(errno.errorcode.get(ctypes.get_errno(), "?") if r == -1 else "forked")
print(" ".join(out))
"""
    expected = "EPERM EPERM EPERM" if MACHINE == "x86_64" else "EPERM"
    assert outcome(probe) == expected


def test_execv_denied() -> None:
    probe = """
try:
    os.execv("/bin/true", ["/bin/true"])
except OSError as e:
    print(name(e))
"""
    # Unconfined, the child becomes /bin/true: exit 0 and nothing printed.
    assert_denied(probe, "EPERM", "")


def test_raw_execve_denied() -> None:
    probe = """
path = ctypes.create_string_buffer(b"/bin/true")
argv = (ctypes.c_void_p * 2)(addr(path), None)
envp = (ctypes.c_void_p * 1)(None)
print(raw("execve", addr(path), addr(argv), addr(envp)))
"""
    assert_denied(probe, "EPERM", "")


@pytest.mark.parametrize(
    ("family", "kind"),
    [("AF_INET", "SOCK_STREAM"), ("AF_UNIX", "SOCK_STREAM"), ("AF_NETLINK", "SOCK_RAW")],
)
def test_socket_denied_with_eafnosupport(family: str, kind: str) -> None:
    probe = f"""
import socket
try:
    socket.socket(socket.{family}, socket.{kind}).close()
except OSError as e:
    print(name(e))
else:
    print("ok")
"""
    assert_denied(probe, "EAFNOSUPPORT", "ok")


def test_unshare_newuser_denied() -> None:
    assert_denied('print(raw("unshare", 0x10000000))', "EPERM", "ok")


def test_io_uring_setup_denied() -> None:
    # No unconfined control: kernel.io_uring_disabled=2 would also give EPERM there.
    probe = """
params = ctypes.create_string_buffer(120)
print(raw("io_uring_setup", 1, addr(params)))
"""
    assert outcome(probe) == "EPERM"


def test_ptrace_parent_denied() -> None:
    # PTRACE_SEIZE, not PTRACE_ATTACH: if the rule ever regressed, ATTACH would SIGSTOP the
    # pytest process; SEIZE attaches without stopping it, and the tracer's exit detaches.
    assert_denied('print(raw("ptrace", 0x4206, os.getppid(), 0, 0))', "EPERM", "ok")


def test_process_vm_readv_parent_denied() -> None:
    probe = """
buf = ctypes.create_string_buffer(8)
local = (ctypes.c_void_p * 2)(addr(buf), 8)
remote = (ctypes.c_void_p * 2)(0x10000, 8)
print(raw("process_vm_readv", os.getppid(), addr(local), 1, addr(remote), 1, 0))
"""
    assert outcome(probe) == "EPERM"
    assert outcome(probe, confine=False) != "EPERM"


def test_kill_only_own_pid() -> None:
    probe = """
out = []
for target in (os.getppid(), 0):
    try:
        os.kill(target, 0)
        out.append("ok")
    except OSError as e:
        out.append(name(e))
os.kill(os.getpid(), 0)
import signal
signal.signal(signal.SIGUSR1, lambda *_: out.append("got"))
signal.raise_signal(signal.SIGUSR1)
print(" ".join(out))
"""
    assert_denied(probe, "EPERM EPERM got", "ok ok got")


def test_clone3_enosys_and_threads_still_work() -> None:
    probe = """
import threading
results = []
t = threading.Thread(target=lambda: results.append(os.getpid()))
t.start()
t.join()
print(raw("clone3", 0, 0), results == [os.getpid()])
"""
    # Unconfined, clone3 with size 0 is EINVAL: ENOSYS comes from the filter.
    assert_denied(probe, "ENOSYS True", "EINVAL True")


def test_x32_syscall_kills_the_process() -> None:
    probe = """
libc.syscall(ctypes.c_long(0x40000000 | 39))
print("survived")
"""
    result = run_child(probe)
    assert result.returncode == -signal.SIGSYS, (result.returncode, result.stdout, result.stderr)
    assert "survived" not in result.stdout


@pytest.mark.skipif(MACHINE != "x86_64", reason="int 0x80 (the i386 ABI) exists only on x86")
def test_int80_i386_syscall_kills_the_process() -> None:
    # mov eax, 20 (i386 getpid); int 0x80; ret -- run from an RWX page.
    probe = """
import mmap
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(b"\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3")
func = ctypes.CFUNCTYPE(ctypes.c_int)(addr(ctypes.c_char.from_buffer(page)))
print("survived", func() == os.getpid())
"""
    result = run_child(probe)
    assert result.returncode == -signal.SIGSYS, (result.returncode, result.stdout, result.stderr)
    assert outcome(probe, confine=False) == "survived True"


def test_socketpair_stream_and_seqpacket_work() -> None:
    probe = """
import socket
out = []
for kind in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC):
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    a.sendall(b"ping")
    out.append(b.recv(4).decode())
print(" ".join(out))
"""
    assert outcome(probe) == "ping ping"


def test_socketpair_dgram_and_other_families_denied() -> None:
    # A SOCK_DGRAM pair can sendto() any pathname datagram socket (journald, /dev/log).
    probe = """
import socket
out = []
for family, kind in (
    (socket.AF_UNIX, socket.SOCK_DGRAM),
    (socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK),
    (socket.AF_INET, socket.SOCK_STREAM),
):
    try:
        socket.socketpair(family, kind)
        out.append("ok")
    except OSError as e:
        out.append(name(e))
print(" ".join(out))
"""
    unsupported = errno.errorcode[errno.EOPNOTSUPP]  # the kernel's own answer for AF_INET
    assert_denied(probe, "EPERM EPERM EAFNOSUPPORT", f"ok ok {unsupported}")


def test_ioctl_tiocsti_and_tioclinux_denied() -> None:
    # On /dev/null the kernel itself answers ENOTTY; EPERM can only come from the filter.  The
    # 0x1_0000_5412 variant checks the low-32-bit comparison (the kernel truncates the request).
    probe = """
fd = os.open("/dev/null", os.O_RDWR)
arg = ctypes.create_string_buffer(8)
reqs = (0x5412, 0x541C, 0x100005412, 0x5401)
print(" ".join(raw("ioctl", fd, req, addr(arg)) for req in reqs))
"""
    assert_denied(probe, "EPERM EPERM EPERM ENOTTY", "ENOTTY ENOTTY ENOTTY ENOTTY")


def test_prlimit_only_on_self() -> None:
    # A same-uid child could otherwise set the host's RLIMIT_NOFILE or RLIMIT_CPU.  Reading is
    # enough to show the rule; the values written back are the current ones.
    probe = """
import resource
out = []
try:
    resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE)
    out.append("ok")
except OSError as e:
    out.append(name(e))
limits = resource.prlimit(os.getpid(), resource.RLIMIT_NOFILE)
resource.prlimit(0, resource.RLIMIT_NOFILE, limits)
resource.setrlimit(resource.RLIMIT_NOFILE, limits)
out.append("self")
print(" ".join(out))
"""
    assert_denied(probe, "EPERM self", "ok self")


def test_scheduling_only_on_self() -> None:
    # Writes back the parent's current values, so the unconfined control changes nothing.
    probe = """
out = []
ppid = os.getppid()
for call in (
    lambda: os.setpriority(os.PRIO_PROCESS, ppid, os.getpriority(os.PRIO_PROCESS, ppid)),
    lambda: os.sched_setaffinity(ppid, os.sched_getaffinity(ppid)),
):
    try:
        call()
        out.append("ok")
    except OSError as e:
        out.append(name(e))
os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0))
os.sched_setaffinity(0, os.sched_getaffinity(0))
print(" ".join(out), "self")
"""
    assert_denied(probe, "EPERM EPERM self", "ok ok self")


def test_prctl_cannot_undo_bootstrap_settings() -> None:
    probe = """
libc.prctl.restype = ctypes.c_int
out = []
for option, arg in ((1, 0), (4, 1), (22, 2)):  # PDEATHSIG, DUMPABLE, SECCOMP (filter mode)
    ctypes.set_errno(0)
    r = libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0)
    out.append(errno.errorcode.get(ctypes.get_errno(), "?") if r == -1 else "ok")
out.append(str(libc.prctl(3, 0, 0, 0, 0)))  # PR_GET_DUMPABLE still works
print(" ".join(out))
"""
    # Unconfined, PR_SET_SECCOMP with a NULL program is EFAULT.
    assert_denied(probe, "EPERM EPERM EPERM 1", "ok ok EFAULT 1")


def test_seccomp_syscall_denied_after_install() -> None:
    probe = """
action = ctypes.c_uint32(0x80000000)
print(raw("seccomp", 2, 0, addr(action)), _hx_seccomp.available())
"""
    assert_denied(probe, "EPERM False", "ok True")


def test_positive_controls() -> None:
    # What a plugin legitimately needs keeps working: randomness, file reads (seccomp does not
    # mediate opens), lazy imports, threads, and signals to itself.
    probe = f"""
import threading
assert len(os.urandom(16)) == 16
with open({str(CHILD_DIR / "_hx_seccomp.py")!r}, "rb") as f:
    assert b"def install" in f.read()
import decimal
assert str(decimal.Decimal("1.5") * 2) == "3.0"
t = threading.Thread(target=lambda: None)
t.start()
t.join()
os.kill(os.getpid(), 0)
print("ok")
"""
    assert outcome(probe) == "ok"


# --- the program, interpreted ----------------------------------------------------------------

AUDIT = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7, "i386": 0x40000003, "arm": 0x40000028}
ALLOW, KILL, ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
EPERM = ERRNO | errno.EPERM
PID = 4242
OTHER = 4243

# The brief's EPERM list, written out independently of the module.
REQUIRED_EPERM = (
    "execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "unshare", "setns", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "reboot", "swapon", "swapoff", "acct", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal", "connect", "bind", "listen", "accept", "accept4", "name_to_handle_at",
    "open_by_handle_at", "personality", "iopl", "ioperm", "modify_ldt", "lookup_dcookie",
    "quotactl", "memfd_secret", "landlock_create_ruleset", "landlock_add_rule",
    "landlock_restrict_self", "seccomp",
)  # fmt: skip
X86_ONLY = {"fork", "vfork", "iopl", "ioperm", "modify_ldt", "uselib"}

# Spot checks of the tables against numbers written out here (the header test does the rest).
SPOT = {
    "x86_64": {"execve": 59, "clone": 56, "socket": 41, "kill": 62, "ioctl": 16, "seccomp": 317},
    "aarch64": {"execve": 221, "clone": 220, "socket": 198, "kill": 129, "ioctl": 29},
}
NR_BY_ARCH = {
    "x86_64": {"read": 0, "write": 1, "openat": 257, "getpid": 39},
    "aarch64": {"read": 63, "write": 64, "openat": 56, "getpid": 172},
}
HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"),
    "aarch64": ("/usr/include/asm-generic/unistd.h",),
}


def interpret(program: list[tuple[int, int, int, int]], data: bytes) -> int:
    """Run a classic-BPF seccomp program over one ``struct seccomp_data``."""
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            (acc,) = struct.unpack_from("<I", data, k)
        elif code == 0x54:  # BPF_ALU | BPF_AND | BPF_K
            acc &= k
        elif code in (0x15, 0x35, 0x45):  # BPF_JMP | JEQ / JGE / JSET, BPF_K
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def verdict(arch: str, nr: int | str, *args: int, audit: int | None = None) -> int:
    number = sc._TABLES[arch][1][nr] if isinstance(nr, str) else nr
    words = [a & 0xFFFF_FFFF_FFFF_FFFF for a in (*args, 0, 0, 0, 0, 0, 0)[:6]]
    data = struct.pack("<IIQ6Q", number, AUDIT[arch] if audit is None else audit, 0, *words)
    return interpret(sc._build_program(arch, PID), data)


ARCHES = pytest.mark.parametrize("arch", ["x86_64", "aarch64"])


@ARCHES
def test_program_foreign_arch_and_x32_are_killed(arch: str) -> None:
    other = "aarch64" if arch == "x86_64" else "x86_64"
    for audit in (AUDIT["i386"], AUDIT["arm"], AUDIT[other]):
        assert verdict(arch, 39, audit=audit) == KILL
        assert verdict(arch, "execve", audit=audit) == KILL
    assert verdict(arch, 0x40000000 | 39) == KILL
    assert verdict(arch, 0xFFFFFFFF) == KILL


@ARCHES
def test_program_required_eperm_list(arch: str) -> None:
    table = sc._TABLES[arch][1]
    missing = {n for n in REQUIRED_EPERM if n not in table}
    assert missing == (set() if arch == "x86_64" else X86_ONLY & set(REQUIRED_EPERM))
    for name in REQUIRED_EPERM:
        if name in table:
            assert verdict(arch, name) == EPERM, name


@ARCHES
def test_program_special_returns(arch: str) -> None:
    assert verdict(arch, "socket", 2, 1) == ERRNO | errno.EAFNOSUPPORT
    assert verdict(arch, "socket", 1, 1) == ERRNO | errno.EAFNOSUPPORT
    assert verdict(arch, "clone3") == ERRNO | errno.ENOSYS
    for name in ("read", "write", "openat", "getpid"):
        assert verdict(arch, NR_BY_ARCH[arch][name]) == ALLOW


@ARCHES
def test_program_clone_needs_clone_thread(arch: str) -> None:
    # glibc's pthread_create: VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    glibc_thread = 0x3D0F00
    assert verdict(arch, "clone", glibc_thread) == ALLOW
    assert verdict(arch, "clone", glibc_thread | (1 << 40)) == ALLOW
    assert verdict(arch, "clone", 17) == EPERM  # SIGCHLD: fork
    assert verdict(arch, "clone", 0x4111) == EPERM  # posix_spawn: VM|VFORK|SIGCHLD
    assert verdict(arch, "clone", 17 | (0x10000 << 32)) == EPERM
    assert verdict(arch, "clone", glibc_thread | 0x40000000) == EPERM  # + CLONE_NEWNET


@ARCHES
def test_program_signals_only_to_own_pid(arch: str) -> None:
    for name in ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        assert verdict(arch, name, PID, OTHER) == ALLOW, name
        assert verdict(arch, name, PID | (7 << 32)) == ALLOW, name  # the kernel uses the low word
        for target in (OTHER, 0, -1, -PID, (PID << 32) | OTHER):
            assert verdict(arch, name, target) == EPERM, (name, target)


@ARCHES
def test_program_resource_calls_only_on_self(arch: str) -> None:
    for name in (
        "prlimit64",
        "sched_setparam",
        "sched_setscheduler",
        "sched_setaffinity",
        "sched_setattr",
        "migrate_pages",
        "move_pages",
    ):
        assert verdict(arch, name, 0) == ALLOW, name
        assert verdict(arch, name, PID) == ALLOW, name
        assert verdict(arch, name, OTHER) == EPERM, name
    assert verdict(arch, "setpriority", 0, 0, 10) == ALLOW
    assert verdict(arch, "setpriority", 0, PID, 10) == ALLOW
    assert verdict(arch, "setpriority", 0, OTHER, 10) == EPERM
    assert verdict(arch, "setpriority", 1, 0, 10) == EPERM  # PRIO_PGRP
    assert verdict(arch, "setpriority", 2, 0, 10) == EPERM  # PRIO_USER: every process of the uid
    assert verdict(arch, "ioprio_set", 1, 0) == ALLOW
    assert verdict(arch, "ioprio_set", 1, OTHER) == EPERM
    assert verdict(arch, "ioprio_set", 3, 0) == EPERM  # IOPRIO_WHO_USER
    assert verdict(arch, "kcmp", PID, PID) == EPERM


@ARCHES
def test_program_ioctl_prctl_socketpair(arch: str) -> None:
    for request in (0x5412, 0x541C, 0x1_0000_5412):
        assert verdict(arch, "ioctl", 0, request) == EPERM
    assert verdict(arch, "ioctl", 0, 0x541B) == ALLOW  # FIONREAD
    for option in (1, 4, 22):
        assert verdict(arch, "prctl", option) == EPERM
    assert verdict(arch, "prctl", 15) == ALLOW  # PR_SET_NAME
    assert verdict(arch, "socketpair", 1, 1) == ALLOW
    assert verdict(arch, "socketpair", 1, 5 | 0x80000) == ALLOW
    assert verdict(arch, "socketpair", 1, 2) == EPERM
    assert verdict(arch, "socketpair", 2, 1) == ERRNO | errno.EAFNOSUPPORT


@ARCHES
def test_tables_spot_check(arch: str) -> None:
    table = sc._TABLES[arch][1]
    for name, number in SPOT[arch].items():
        assert table[name] == number, name
    assert len(set(table.values())) == len(table), "two names share a number"


@ARCHES
def test_tables_match_kernel_headers(arch: str) -> None:
    # linux-libc-dev may be older than the kernel: compare only the names the header has.
    # Without any header this degrades to the spot check above.
    header = next((Path(p) for p in HEADERS[arch] if Path(p).exists()), None)
    if header is None:
        return
    known: dict[str, int] = {}
    for line in header.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define" and parts[2].isdigit():
            name = parts[1].removeprefix("__NR3264_").removeprefix("__NR_")
            known.setdefault(name, int(parts[2]))
    table = sc._TABLES[arch][1]
    compared = {name: table[name] for name in table if name in known}
    assert compared == {name: known[name] for name in compared}
    assert len(compared) >= len(table) - 4  # statmount, listmount, open_tree_attr may be newer


def test_assembler_rejects_bad_jumps() -> None:
    asm = sc._Asm()
    asm.jump(0x15, 0, "far")
    for _ in range(256):
        asm.ret(ALLOW)
    asm.label("far")
    asm.ret(ALLOW)
    with pytest.raises(ValueError, match="out of range"):
        asm.assemble()

    asm = sc._Asm()
    asm.label("back")
    asm.ret(ALLOW)
    asm.jump(0x15, 0, "back")
    with pytest.raises(ValueError, match="out of range"):
        asm.assemble()

    asm = sc._Asm()
    asm.jump(0x15, 0, "nowhere")
    with pytest.raises(ValueError, match="undefined"):
        asm.assemble()

    asm = sc._Asm()
    asm.label("twice")
    with pytest.raises(ValueError, match="twice"):
        asm.label("twice")


def test_assembler_accepts_the_longest_jump() -> None:
    asm = sc._Asm()
    asm.jump(0x15, 0, "far")
    for _ in range(255):
        asm.ret(ALLOW)
    asm.label("far")
    asm.ret(KILL)
    program = asm.assemble()
    assert program[0] == (0x15, 255, 0, 0)
    assert interpret(program, struct.pack("<IIQ6Q", 0, 0, 0, *[0] * 6)) == KILL


def test_build_program_rejects_unknown_arch_and_bad_pid() -> None:
    with pytest.raises(OSError, match="unsupported") as info:
        sc._build_program("riscv64", PID)
    assert info.value.errno == errno.ENOSYS
    with pytest.raises(ValueError, match="pid"):
        sc._build_program("x86_64", 0)
