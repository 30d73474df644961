"""Landlock for a plugin child: read-only filesystem, no TCP, signal and abstract-socket scopes.

Imported by the child bootstrap, which runs as ``python -I -S -B``: this module uses the standard
library only (``ctypes``, ``errno``, ``os``, ``stat``, ``struct``) and must be imported *before*
:func:`restrict`, like everything else the child needs later (after it, the bootstrap's own
directory is unreadable, and so are the system libraries that ``_ctypes`` links).

What :func:`restrict` enforces, for the calling process and everything it later spawns:

* filesystem: every access right the running ABI knows is *handled*; only ``read_file`` (files)
  and ``read_file | read_dir`` (directories) are granted, beneath the given paths. No write,
  truncate, make_*, remove_*, refer (rename/link across directories) or ioctl on devices, and no
  execute (Landlock's ``execute`` covers ``execve`` only; ``mmap(PROT_EXEC)`` of an extension
  module that can be read still works, which is what lazy stdlib imports need);
* network (ABI >= 4): TCP ``bind`` and ``connect`` are handled with no port rule, so both fail;
* scopes (ABI >= 6): no signal to, and no abstract unix socket connect to, a process outside this
  Landlock domain (the host, other plugins).

What Landlock does NOT mediate, so seccomp (and the netns) must cover it:

* ``stat``, ``access``, ``chdir``, ``readlink`` and the like: names, modes and sizes of any path
  stay visible (``readlink /proc/self/exe`` works; reading ``/proc`` files does not);
* UDP, raw and netlink sockets, and TCP rules are port-only, for any address;
* ``connect`` to a *pathname* AF_UNIX socket (docker.sock, the D-Bus socket);
* fork and clone, io_uring, ``kill`` below ABI 6, and the i386/x32 syscall entry points.

Threads: with ABI >= 8, ``LANDLOCK_RESTRICT_SELF_TSYNC`` confines every thread at once. Below
that, Landlock confines only the calling thread (threads started later inherit it), so
:func:`restrict` must be called while the process is single-threaded; it checks
``/proc/self/task`` and refuses (EBUSY) when it sees another thread. If ``/proc`` is not mounted
the check cannot run and the single-thread requirement is the caller's.

``PR_SET_NO_NEW_PRIVS`` must already be set by the caller (the bootstrap sets it just before).
:func:`restrict` refuses without it, even for a root caller the kernel would let through.
"""

import ctypes
import errno
import os
import stat
import struct

# Syscalls added since Linux 5.1 share one number across architectures; we vouch for these two.
_NR_CREATE_RULESET = 444
_NR_ADD_RULE = 445
_NR_RESTRICT_SELF = 446
_KNOWN_MACHINE = os.uname().machine in ("x86_64", "aarch64")

_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RESTRICT_SELF_TSYNC = 1 << 3  # ABI 8

_PR_GET_NO_NEW_PRIVS = 39

# Filesystem access rights (uapi linux/landlock.h), grouped by the ABI that introduced them.
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_ABI1 = (1 << 13) - 1  # execute .. make_sym: 13 bits
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5

_NET_TCP = (1 << 0) | (1 << 1)  # bind_tcp | connect_tcp, ABI 4
_SCOPES = (1 << 0) | (1 << 1)  # abstract_unix_socket | signal, ABI 6

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_prctl = _libc.prctl
_prctl.restype = ctypes.c_int


def _call(step: str, nr: int, *args: object) -> int:
    """Run one Landlock syscall; raise OSError naming ``step`` on failure."""
    if not _KNOWN_MACHINE:
        raise OSError(errno.ENOSYS, f"{step}: no Landlock syscall numbers for this machine")
    ret = _syscall(ctypes.c_long(nr), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{step}: {os.strerror(err)}")
    return int(ret)


def abi_version() -> int:
    """Landlock ABI of this kernel; 0 when unavailable.

    0 means ENOSYS (not built, or a machine this module has no syscall numbers for), EOPNOTSUPP
    (built but disabled at boot) or EPERM (a container seccomp profile that predates Landlock).
    """
    try:
        return _call(
            "landlock_create_ruleset(VERSION)",
            _NR_CREATE_RULESET,
            ctypes.c_void_p(None),
            ctypes.c_size_t(0),
            ctypes.c_ulong(_CREATE_RULESET_VERSION),
        )
    except OSError as e:
        # EPERM: an older container seccomp profile that does not know Landlock.
        if e.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            return 0
        raise


def _handled_fs(abi: int) -> int:
    """Every filesystem right the ABI knows: the kernel rejects (EINVAL) a bit it does not."""
    mask = _FS_ABI1
    if abi >= 2:
        mask |= _FS_REFER
    if abi >= 3:
        mask |= _FS_TRUNCATE
    if abi >= 5:
        mask |= _FS_IOCTL_DEV
    return mask


def _ruleset_attr(abi: int) -> bytes:
    """struct landlock_ruleset_attr, cut to the size this ABI accepts (E2BIG otherwise)."""
    net = _NET_TCP if abi >= 4 else 0
    scoped = _SCOPES if abi >= 6 else 0
    attr = struct.pack("=QQQ", _handled_fs(abi), net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    return attr[:size]


def _add_read_rule(ruleset_fd: int, path: str) -> None:
    """Grant read beneath ``path``: a file may only carry file rights (EINVAL otherwise)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise OSError(
            e.errno, f"landlock rule: cannot open allowed path ({e.strerror})", path
        ) from e
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        access = _FS_READ_FILE | _FS_READ_DIR if is_dir else _FS_READ_FILE
        rule = struct.pack("=Qi", access, fd)  # packed: 12 bytes, no tail padding
        _call(
            f"landlock_add_rule({path!r})",
            _NR_ADD_RULE,
            ctypes.c_long(ruleset_fd),
            ctypes.c_long(_RULE_PATH_BENEATH),
            ctypes.c_char_p(rule),
            ctypes.c_ulong(0),
        )
    finally:
        os.close(fd)


def _require_no_new_privs() -> None:
    # Root with CAP_SYS_ADMIN may restrict without NNP; we do not rely on it, so that the
    # confinement cannot be shed by exec'ing a set-uid binary should exec ever be allowed.
    if _prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise OSError(
            errno.EPERM,
            "landlock_restrict_self: no_new_privs is not set; "
            "call prctl(PR_SET_NO_NEW_PRIVS, 1) first",
        )


def _require_single_thread() -> None:
    # Without TSYNC, a thread that already runs would stay unconfined.
    try:
        count = len(os.listdir("/proc/self/task"))
    except OSError:
        return  # no /proc: the documented single-thread requirement is the caller's
    if count > 1:
        raise OSError(
            errno.EBUSY,
            f"landlock_restrict_self: {count} threads and no TSYNC in this ABI; "
            "restrict before starting threads",
        )


def _restrict_self(ruleset_fd: int, flags: int) -> None:
    try:
        _call(
            "landlock_restrict_self",
            _NR_RESTRICT_SELF,
            ctypes.c_long(ruleset_fd),
            ctypes.c_ulong(flags),
        )
    except PermissionError as e:
        raise OSError(
            errno.EPERM, "landlock_restrict_self: EPERM (is PR_SET_NO_NEW_PRIVS set?)"
        ) from e


def _report(abi: int, n_paths: int, tsync: bool) -> dict[str, object]:
    return {
        "abi": abi,
        "fs": f"read-only {n_paths} path{'' if n_paths == 1 else 's'}",
        "net": "tcp denied" if abi >= 4 else "unavailable",
        "scopes": "signal, abstract-unix" if abi >= 6 else "unavailable",
        "threads": "all (tsync)" if tsync else "single-threaded",
    }


def restrict(read_only: list[str]) -> dict[str, object]:
    """Confine this process to reading beneath ``read_only``, with no TCP and no way out of scope.

    See the module docstring for what is enforced. Raises OSError (errno, message naming the
    step) on any failure, including a kernel without Landlock (abi 0); on failure nothing is
    enforced, and the caller must refuse to go on.
    """
    abi = abi_version()
    if abi < 1:
        raise OSError(errno.ENOSYS, "landlock_create_ruleset: Landlock is unavailable (abi 0)")
    _require_no_new_privs()
    tsync = abi >= 8
    if not tsync:
        _require_single_thread()
    attr = _ruleset_attr(abi)
    ruleset_fd = _call(
        "landlock_create_ruleset",
        _NR_CREATE_RULESET,
        ctypes.c_char_p(attr),
        ctypes.c_size_t(len(attr)),
        ctypes.c_ulong(0),
    )
    try:
        for path in read_only:
            _add_read_rule(ruleset_fd, path)
        _restrict_self(ruleset_fd, _RESTRICT_SELF_TSYNC if tsync else 0)
    finally:
        os.close(ruleset_fd)
    return _report(abi, len(read_only), tsync)
