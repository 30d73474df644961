"""seccomp-BPF filter for a plugin child: the last confinement step (DESIGN §3 step 8).

Standard library only (ctypes, struct, os, errno): the child runs as ``python -I -S -B`` and must
import this before Landlock stops it from reading more code (sandbox-facts §6.3).  No libseccomp.

The caller sets ``PR_SET_NO_NEW_PRIVS`` and then calls :func:`install` last, because the filter
denies syscalls (unshare, landlock_*, seccomp) that the earlier steps need.  The filter is put on
every thread at once with ``SECCOMP_FILTER_FLAG_TSYNC``; there is no prctl fallback, since
``PR_SET_SECCOMP`` cannot synchronise threads and a partial install must never pass for success.

Policy: default ALLOW (a denylist, as in the prototype), plus

* **kill the process** on a foreign ``seccomp_data.arch`` (i386 ``int 0x80``, AArch32 compat) and
  on any number >= 0x40000000 (x32 ABI): a denylist keyed on native numbers would not see those
  calls at all (sandbox-facts §6.7; IA32_EMULATION is on here, X32 may be on elsewhere);
* **EPERM** for exec* and uselib, fork/vfork, ptrace, process_vm_*, kcmp, the mount family (with
  statmount/listmount), unshare/setns, bpf, perf_event_open, userfaultfd, the key syscalls,
  io_uring_*, kexec and module loading, reboot, swap, acct, pidfd_*, connect/bind/listen/accept*,
  file handles, personality, iopl/ioperm/modify_ldt, lookup_dcookie, quotactl*, memfd_secret,
  landlock_* and seccomp itself (no user-notify filter that a plugin could answer for itself);
* **EAFNOSUPPORT** for every ``socket()``: Landlock ABI 7 does not mediate UDP, netlink or
  pathname AF_UNIX connects (sandbox-facts §6.6), and a brokered socket must not be re-targeted
  with connect (§6.11), so Python code sees a clean "address family not supported";
* ``socketpair`` only for AF_UNIX SOCK_STREAM/SOCK_SEQPACKET (else EAFNOSUPPORT/EPERM): a
  SOCK_DGRAM pair can ``sendto()`` any pathname datagram socket (/dev/log, journald), and neither
  Landlock ABI 7 nor the netns stops that (verified on this kernel);
* ``clone3`` answers **ENOSYS**, so glibc falls back to ``clone`` and threads keep working; its
  flags live in memory where BPF cannot look (§6.7);
* ``clone`` only with CLONE_THREAD and no CLONE_NEW* flag, else EPERM (glibc's fork() and
  posix_spawn() use clone, not the fork syscall);
* kill/tkill/tgkill/rt_sigqueueinfo/rt_tgsigqueueinfo only at the child's own pid (baked in at
  install time): dropping caps and a userns do not stop ``kill()`` of a same-uid host (§6.9);
* prlimit64, setpriority, ioprio_set, sched_set{param,scheduler,affinity,attr}, migrate_pages and
  move_pages only on the child itself (pid 0 or its own pid), else EPERM: a same-uid child could
  otherwise set the host's RLIMIT_NOFILE or RLIMIT_CPU (verified through Landlock ABI 7 and a
  userns with every cap dropped), or starve it with nice 19 or SCHED_IDLE; kcmp is denied;
* ``ioctl`` TIOCSTI and TIOCLINUX: EPERM (terminal input injection);
* ``prctl`` PR_SET_PDEATHSIG, PR_SET_DUMPABLE and PR_SET_SECCOMP: EPERM, so plugin code cannot
  undo the bootstrap's die-with-parent and non-dumpable settings.

Integer arguments are compared on their low 32 bits, which is what the kernel uses for ``int``
and ``unsigned int`` parameters (and for clone's flags); both supported arches are little-endian,
so that word sits at offset 16 + 8*i of ``struct seccomp_data``.
"""

import ctypes
import errno
import os
import struct

ARCH: str = os.uname().machine

# --- kernel constants ------------------------------------------------------------------------

_PR_GET_NO_NEW_PRIVS = 39
_SYS_SECCOMP_SET_MODE_FILTER = 1
_SYS_SECCOMP_GET_ACTION_AVAIL = 2
_SECCOMP_FILTER_FLAG_TSYNC = 1

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_AUDIT_ARCH_X86_64 = 0xC000003E
_AUDIT_ARCH_AARCH64 = 0xC00000B7
_X32_SYSCALL_BIT = 0x40000000  # no native number is this large on either arch

_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARGS = 16  # args[i] low word at 16 + 8*i (little-endian)

_CLONE_THREAD = 0x00010000
_CLONE_NEW_ANY = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_AF_UNIX = 1
_SOCK_TYPE_MASK = 0xF
_SOCK_STREAM = 1
_SOCK_SEQPACKET = 5
_PRIO_PROCESS = 0
_IOPRIO_WHO_PROCESS = 1
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22

# Classic BPF opcodes (linux/bpf_common.h): only what this filter emits.
_BPF_LD_W_ABS = 0x20
_BPF_ALU_AND_K = 0x54
_BPF_JMP_JEQ_K = 0x15
_BPF_JMP_JGE_K = 0x35
_BPF_JMP_JSET_K = 0x45
_BPF_RET_K = 0x06
_BPF_MAXINSNS = 4096

# --- syscall numbers ---------------------------------------------------------------------------
# From arch/x86/entry/syscalls/syscall_64.tbl and the generic include/uapi/asm-generic/unistd.h
# used by arm64.  Names an arch lacks (fork, vfork, iopl, ioperm, modify_ldt, uselib on arm64)
# are simply absent; the policy skips them.

_COMMON: dict[str, int] = {
    "pidfd_send_signal": 424,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_open": 434,
    "clone3": 435,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
    "landlock_create_ruleset": 444,
    "landlock_add_rule": 445,
    "landlock_restrict_self": 446,
    "memfd_secret": 447,
    "statmount": 457,
    "listmount": 458,
    "open_tree_attr": 467,
}

_X86_64: dict[str, int] = _COMMON | {
    "ioctl": 16,
    "socket": 41,
    "connect": 42,
    "accept": 43,
    "bind": 49,
    "listen": 50,
    "socketpair": 53,
    "clone": 56,
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "kill": 62,
    "ptrace": 101,
    "rt_sigqueueinfo": 129,
    "uselib": 134,
    "personality": 135,
    "setpriority": 141,
    "sched_setparam": 142,
    "sched_setscheduler": 144,
    "modify_ldt": 154,
    "pivot_root": 155,
    "prctl": 157,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "tkill": 200,
    "sched_setaffinity": 203,
    "lookup_dcookie": 212,
    "tgkill": 234,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "ioprio_set": 251,
    "migrate_pages": 256,
    "unshare": 272,
    "move_pages": 279,
    "accept4": 288,
    "rt_tgsigqueueinfo": 297,
    "perf_event_open": 298,
    "prlimit64": 302,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "sched_setattr": 314,
    "seccomp": 317,
    "kexec_file_load": 320,
    "bpf": 321,
    "execveat": 322,
    "userfaultfd": 323,
}

_AARCH64: dict[str, int] = _COMMON | {
    "lookup_dcookie": 18,
    "ioctl": 29,
    "ioprio_set": 30,
    "umount2": 39,
    "mount": 40,
    "pivot_root": 41,
    "chroot": 51,
    "quotactl": 60,
    "acct": 89,
    "personality": 92,
    "unshare": 97,
    "kexec_load": 104,
    "init_module": 105,
    "delete_module": 106,
    "ptrace": 117,
    "sched_setparam": 118,
    "sched_setscheduler": 119,
    "sched_setaffinity": 122,
    "kill": 129,
    "tkill": 130,
    "tgkill": 131,
    "rt_sigqueueinfo": 138,
    "setpriority": 140,
    "reboot": 142,
    "prctl": 167,
    "socket": 198,
    "socketpair": 199,
    "bind": 200,
    "listen": 201,
    "accept": 202,
    "connect": 203,
    "add_key": 217,
    "request_key": 218,
    "keyctl": 219,
    "clone": 220,
    "execve": 221,
    "swapon": 224,
    "swapoff": 225,
    "migrate_pages": 238,
    "move_pages": 239,
    "rt_tgsigqueueinfo": 240,
    "perf_event_open": 241,
    "accept4": 242,
    "prlimit64": 261,
    "name_to_handle_at": 264,
    "open_by_handle_at": 265,
    "setns": 268,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "kcmp": 272,
    "finit_module": 273,
    "sched_setattr": 274,
    "seccomp": 277,
    "bpf": 280,
    "execveat": 281,
    "userfaultfd": 282,
    "kexec_file_load": 294,
}

_TABLES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (_AUDIT_ARCH_X86_64, _X86_64),
    "aarch64": (_AUDIT_ARCH_AARCH64, _AARCH64),
}

# --- policy ------------------------------------------------------------------------------------

_DENY_EPERM: tuple[str, ...] = (
    # new programs and processes
    "execve", "execveat", "fork", "vfork", "uselib",
    # other processes' memory and handles
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    # mounts and namespaces
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "open_tree_attr",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "statmount", "listmount",
    "unshare", "setns",
    # kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "personality",
    "iopl", "ioperm", "modify_ldt", "lookup_dcookie", "memfd_secret",
    # system administration
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    # network endpoints (a brokered fd must not be re-targeted, sandbox-facts §6.11)
    "connect", "bind", "listen", "accept", "accept4",
    # filesystem handles bypass path-based Landlock rules
    "name_to_handle_at", "open_by_handle_at",
    # no further self-confinement: no user-notify filter answered by the plugin itself
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "seccomp",
)  # fmt: skip

# Syscalls whose verdict depends on arguments or differs from EPERM: name -> program label.
_SPECIAL: tuple[tuple[str, str], ...] = (
    ("socket", "eafnosupport"),
    ("clone3", "enosys"),
    ("clone", "clone"),
    ("socketpair", "socketpair"),
    ("ioctl", "ioctl"),
    ("prctl", "prctl"),
    ("kill", "own_pid_arg0"),
    ("tkill", "own_pid_arg0"),
    ("tgkill", "own_pid_arg0"),
    ("rt_sigqueueinfo", "own_pid_arg0"),
    ("rt_tgsigqueueinfo", "own_pid_arg0"),
    ("prlimit64", "self_arg0"),
    ("sched_setparam", "self_arg0"),
    ("sched_setscheduler", "self_arg0"),
    ("sched_setaffinity", "self_arg0"),
    ("sched_setattr", "self_arg0"),
    ("migrate_pages", "self_arg0"),
    ("move_pages", "self_arg0"),
    ("setpriority", "setpriority"),
    ("ioprio_set", "ioprio_set"),
)

# --- a tiny classic-BPF assembler with forward-only, range-checked labels ---------------------

_Insn = tuple[int, int, int, int]  # code, jt, jf, k


class _Asm:
    """Collects instructions whose jump targets are label names; ``None`` means "next"."""

    def __init__(self) -> None:
        self._items: list[tuple[int, str | None, str | None, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"BPF label {name!r} defined twice")
        self._labels[name] = len(self._items)

    def stmt(self, code: int, k: int) -> None:
        self._items.append((code, None, None, k))

    def jump(self, code: int, k: int, jt: str | None, jf: str | None = None) -> None:
        self._items.append((code, jt, jf, k))

    def load_word(self, offset: int) -> None:
        self.stmt(_BPF_LD_W_ABS, offset)

    def load_arg_low(self, index: int) -> None:
        self.load_word(_OFF_ARGS + 8 * index)

    def ret(self, action: int) -> None:
        self.stmt(_BPF_RET_K, action)

    def assemble(self) -> list[_Insn]:
        """Resolve labels; raise ValueError on a backward, too-long or unknown jump."""
        if not 0 < len(self._items) <= _BPF_MAXINSNS:
            raise ValueError(f"BPF program has {len(self._items)} instructions")
        return [
            (code, self._offset(pc, jt), self._offset(pc, jf), k)
            for pc, (code, jt, jf, k) in enumerate(self._items)
        ]

    def _offset(self, pc: int, target: str | None) -> int:
        if target is None:
            return 0
        if target not in self._labels:
            raise ValueError(f"BPF jump to undefined label {target!r}")
        delta = self._labels[target] - (pc + 1)
        if not 0 <= delta <= 0xFF:
            raise ValueError(f"BPF jump from {pc} to {target!r} out of range ({delta})")
        return delta


def _emit_header(asm: _Asm, audit_arch: int) -> None:
    # The arch check must come first: numbers only mean something for the native ABI.
    asm.load_word(_OFF_ARCH)
    asm.jump(_BPF_JMP_JEQ_K, audit_arch, None, "kill")
    asm.load_word(_OFF_NR)
    asm.jump(_BPF_JMP_JGE_K, _X32_SYSCALL_BIT, "kill")


def _emit_dispatch(asm: _Asm, numbers: dict[str, int]) -> None:
    # Only nr and arch are read before a match, so the kernel's action cache can still treat
    # every other syscall as constant-ALLOW and skip the filter for it.
    for name in _DENY_EPERM:
        if name in numbers:
            asm.jump(_BPF_JMP_JEQ_K, numbers[name], "eperm")
    for name, target in _SPECIAL:
        asm.jump(_BPF_JMP_JEQ_K, numbers[name], target)
    asm.ret(_RET_ALLOW)


def _emit_clone(asm: _Asm) -> None:
    asm.label("clone")
    asm.load_arg_low(0)
    asm.jump(_BPF_JMP_JSET_K, _CLONE_NEW_ANY, "eperm")
    asm.jump(_BPF_JMP_JSET_K, _CLONE_THREAD, "allow", "eperm")


def _emit_socketpair(asm: _Asm) -> None:
    asm.label("socketpair")
    asm.load_arg_low(0)
    asm.jump(_BPF_JMP_JEQ_K, _AF_UNIX, None, "eafnosupport")
    asm.load_arg_low(1)
    asm.stmt(_BPF_ALU_AND_K, _SOCK_TYPE_MASK)  # drop SOCK_CLOEXEC / SOCK_NONBLOCK
    asm.jump(_BPF_JMP_JEQ_K, _SOCK_STREAM, "allow")
    asm.jump(_BPF_JMP_JEQ_K, _SOCK_SEQPACKET, "allow", "eperm")


def _emit_arg_denylist(asm: _Asm, label: str, index: int, values: tuple[int, ...]) -> None:
    asm.label(label)
    asm.load_arg_low(index)
    for value in values:
        asm.jump(_BPF_JMP_JEQ_K, value, "eperm")
    asm.ret(_RET_ALLOW)


def _emit_pid_rules(asm: _Asm, pid: int) -> None:
    # Signals: exactly our pid (0 and negatives address process groups, -1 everyone).
    asm.label("own_pid_arg0")
    asm.load_arg_low(0)
    asm.jump(_BPF_JMP_JEQ_K, pid, "allow", "eperm")
    # Resource and scheduling calls: 0 means "the caller" for all of these.
    asm.label("self_arg0")
    asm.load_arg_low(0)
    asm.jump(_BPF_JMP_JEQ_K, 0, "allow")
    asm.jump(_BPF_JMP_JEQ_K, pid, "allow", "eperm")
    # setpriority/ioprio_set(which, who): only "this process", then the same pid test on who.
    asm.label("setpriority")
    asm.load_arg_low(0)
    asm.jump(_BPF_JMP_JEQ_K, _PRIO_PROCESS, "self_arg1", "eperm")
    asm.label("ioprio_set")
    asm.load_arg_low(0)
    asm.jump(_BPF_JMP_JEQ_K, _IOPRIO_WHO_PROCESS, "self_arg1", "eperm")
    asm.label("self_arg1")
    asm.load_arg_low(1)
    asm.jump(_BPF_JMP_JEQ_K, 0, "allow")
    asm.jump(_BPF_JMP_JEQ_K, pid, "allow", "eperm")


def _emit_returns(asm: _Asm) -> None:
    # Shared returns at the very end: classic BPF can only jump forward.
    for name, action in (
        ("allow", _RET_ALLOW),
        ("eperm", _RET_ERRNO | errno.EPERM),
        ("eafnosupport", _RET_ERRNO | errno.EAFNOSUPPORT),
        ("enosys", _RET_ERRNO | errno.ENOSYS),
        ("kill", _RET_KILL_PROCESS),
    ):
        asm.label(name)
        asm.ret(action)


def _build_program(arch: str, pid: int) -> list[_Insn]:
    """The filter for ``arch`` with ``pid`` baked in, as (code, jt, jf, k) tuples."""
    if arch not in _TABLES:
        raise OSError(errno.ENOSYS, f"seccomp: unsupported architecture {arch!r}")
    if not 0 < pid < 2**31:
        raise ValueError(f"seccomp: bad pid {pid}")
    audit_arch, numbers = _TABLES[arch]
    asm = _Asm()
    _emit_header(asm, audit_arch)
    _emit_dispatch(asm, numbers)
    _emit_clone(asm)
    _emit_socketpair(asm)
    _emit_arg_denylist(asm, "ioctl", 1, (_TIOCSTI, _TIOCLINUX))
    _emit_arg_denylist(asm, "prctl", 0, (_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_SECCOMP))
    _emit_pid_rules(asm, pid)
    _emit_returns(asm)
    return asm.assemble()


# --- loading -----------------------------------------------------------------------------------


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _libc_handle  # one dlopen per process, done lazily
    if _libc_handle is None:
        _libc_handle = ctypes.CDLL(None, use_errno=True)
        _libc_handle.syscall.restype = ctypes.c_long
        _libc_handle.prctl.restype = ctypes.c_int
    return _libc_handle


def _syscall(name: str, *args: int) -> int:
    """Raw syscall by name on this arch; returns the result or -errno."""
    number = _TABLES[ARCH][1][name]
    libc = _libc()
    ctypes.set_errno(0)
    # syscall() is variadic: pass every argument as a full-width long, never a C int.
    result = int(libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args)))
    return -ctypes.get_errno() if result == -1 else result


def _pack(program: list[_Insn]) -> bytes:
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def available() -> bool:
    """seccomp filter mode works here: a supported arch and SECCOMP_RET_KILL_PROCESS is known."""
    if ARCH not in _TABLES:
        return False
    try:
        action = ctypes.c_uint32(_RET_KILL_PROCESS)
        return _syscall("seccomp", _SYS_SECCOMP_GET_ACTION_AVAIL, 0, ctypes.addressof(action)) == 0
    except (OSError, AttributeError):  # no libc symbols at all: treat as unavailable
        return False


def install() -> None:
    """Install the filter on every thread; raise OSError(errno, message) if it cannot be."""
    if ARCH not in _TABLES:
        raise OSError(errno.ENOSYS, f"seccomp: unsupported architecture {ARCH!r}")
    if _libc().prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        # The kernel would accept the filter without NNP for a CAP_SYS_ADMIN caller (root host);
        # refuse anyway so the bootstrap's order is enforced, not assumed.
        raise OSError(errno.EPERM, "seccomp: PR_SET_NO_NEW_PRIVS must be set before install()")
    program = _build_program(ARCH, os.getpid())
    code = ctypes.create_string_buffer(_pack(program))  # must stay alive until the call returns
    prog = _SockFprog(len(program), ctypes.addressof(code))
    result = _syscall(
        "seccomp",
        _SYS_SECCOMP_SET_MODE_FILTER,
        _SECCOMP_FILTER_FLAG_TSYNC,
        ctypes.addressof(prog),
    )
    if result < 0:
        raise OSError(-result, f"seccomp: installing the filter failed: {os.strerror(-result)}")
    if result > 0:
        # With TSYNC a positive result is the tid of a thread that could not be synchronised,
        # and no thread got the filter.
        raise OSError(errno.EAGAIN, f"seccomp: thread {result} could not be synchronised")
