"""Landlock layer of the plugin child (``_hx_landlock.py``), tested against the real kernel.

Every probe runs in a fresh ``python -I -S -B`` child with an empty environment, the way the
sandbox starts a plugin child. Each attack is run twice: unconfined first, where it must succeed
(so the probe really exercises something and the test would fail without the defence), then
after ``restrict()``, where it must fail with the errno Landlock gives.
"""

from __future__ import annotations

import ast
import errno
import importlib.util
import socket
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

CHILD_DIR = Path(__file__).resolve().parents[2] / "host" / "sandbox" / "child"
STDLIB = sysconfig.get_paths()["stdlib"]
TIMEOUT = 60


def _load_module() -> ModuleType:
    # Importing the module is harmless in the test process: only restrict() confines, and the
    # in-process tests below never reach landlock_restrict_self.
    spec = importlib.util.spec_from_file_location("_hx_landlock", CHILD_DIR / "_hx_landlock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ll = _load_module()
ABI = ll.abi_version()

pytestmark = pytest.mark.skipif(ABI < 1, reason="this kernel has no Landlock")

# The child: set NNP, run `before` (still unconfined), restrict, run `probe`, print the outcome.
CHILD_TEMPLATE = """\
import ctypes, errno, os, sys
sys.path.insert(0, {child_dir!r})
import _hx_landlock as ll
{before}
if {nnp!r} and ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:
    raise SystemExit("prctl(PR_SET_NO_NEW_PRIVS) failed")
try:
    if {confine!r}:
        print("REPORT", repr(ll.restrict({paths!r})))
{probe}
except Exception as e:
    name = errno.errorcode.get(getattr(e, "errno", None) or 0, "")
    print("RESULT", repr((type(e).__name__, name, str(e))))
else:
    print("RESULT", repr(("ok", "", "")))
"""


@dataclass
class Outcome:
    kind: str  # "ok" or the exception's class name
    errname: str  # "EACCES", "EPERM", ... or "" when there is no errno
    message: str
    report: dict[str, object] | None
    stdout: str

    @property
    def error(self) -> str:
        return f"{self.kind} {self.errname}".strip()


def run_child(
    probe: str,
    paths: list[str],
    *,
    before: str = "",
    confine: bool = True,
    nnp: bool = True,
) -> Outcome:
    code = CHILD_TEMPLATE.format(
        child_dir=str(CHILD_DIR),
        before=before,
        nnp=nnp,
        confine=confine,
        paths=paths,
        probe="\n".join("    " + line for line in (probe.strip() or "pass").splitlines()),
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code],
        env={},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr}"
    report = None
    result = None
    for line in proc.stdout.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "REPORT":
            report = ast.literal_eval(rest)
        elif tag == "RESULT":
            result = ast.literal_eval(rest)
    assert result is not None, f"no result from the child:\n{proc.stdout}\n{proc.stderr}"
    return Outcome(*result, report=report, stdout=proc.stdout)


def assert_blocked(probe: str, paths: list[str], expected: str, *, before: str = "") -> Outcome:
    """The probe succeeds unconfined and fails with ``expected`` once confined."""
    free = run_child(probe, paths, before=before, confine=False)
    assert free.kind == "ok", f"the probe does not work even unconfined: {free}"
    confined = run_child(probe, paths, before=before)
    assert confined.report is not None, confined.stdout
    assert confined.error == expected, confined
    return confined


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "data.txt").write_text("plugin data\n")
    (plugin / "other.txt").write_text("other data\n")
    return plugin


@pytest.fixture
def allowed(plugin_dir: Path) -> list[str]:
    return [STDLIB, str(plugin_dir)]


@pytest.fixture
def tmp_names() -> Iterator[list[Path]]:
    """Two fresh names directly in /tmp (unconfined run, confined run), removed afterwards."""
    names = [Path("/tmp") / f"haechi-ll-{uuid.uuid4().hex}" for _ in range(2)]
    yield names
    for name in names:
        if name.is_symlink() or name.exists():
            name.unlink()


# --- attacks: each must fail once confined -------------------------------------------------


def test_etc_passwd_is_unreadable(allowed: list[str]) -> None:
    assert_blocked("open('/etc/passwd').read()", allowed, "PermissionError EACCES")


def test_root_owned_decoy_outside_allowed_paths_is_unreadable(
    tmp_path: Path, allowed: list[str]
) -> None:
    decoy = tmp_path / "outside" / "secret.key"
    decoy.parent.mkdir()
    decoy.write_text("decoy secret\n")
    decoy.chmod(0o600)
    # As root, DAC alone would let the child read it: only Landlock stands in the way.
    assert_blocked(f"open({str(decoy)!r}).read()", allowed, "PermissionError EACCES")


def test_write_new_file_in_tmp_is_denied(allowed: list[str], tmp_names: list[Path]) -> None:
    free_name, confined_name = tmp_names
    probe = "open(NAME, 'x').write('x')"
    free = run_child(probe.replace("NAME", repr(str(free_name))), allowed, confine=False)
    assert free.kind == "ok" and free_name.exists()
    out = run_child(probe.replace("NAME", repr(str(confined_name))), allowed)
    assert out.error == "PermissionError EACCES"
    assert not confined_name.exists()


def test_write_into_allowed_plugin_dir_is_denied(plugin_dir: Path, allowed: list[str]) -> None:
    probe = f"open(os.path.join({str(plugin_dir)!r}, NAME), 'x').write('x')"
    free = run_child(probe.replace("NAME", "'free.txt'"), allowed, confine=False)
    assert free.kind == "ok" and (plugin_dir / "free.txt").exists()
    out = run_child(probe.replace("NAME", "'confined.txt'"), allowed)
    assert out.error == "PermissionError EACCES"
    assert not (plugin_dir / "confined.txt").exists()


def test_overwriting_a_readable_file_is_denied(plugin_dir: Path, allowed: list[str]) -> None:
    target = plugin_dir / "data.txt"
    out = run_child(f"open({str(target)!r}, 'w')", allowed)
    assert out.error == "PermissionError EACCES"
    assert target.read_text() == "plugin data\n"  # not truncated either


def test_symlink_in_tmp_is_denied(allowed: list[str], tmp_names: list[Path]) -> None:
    free_name, confined_name = tmp_names
    probe = "os.symlink('/etc/passwd', NAME)"
    free = run_child(probe.replace("NAME", repr(str(free_name))), allowed, confine=False)
    assert free.kind == "ok" and free_name.is_symlink()
    out = run_child(probe.replace("NAME", repr(str(confined_name))), allowed)
    assert out.error == "PermissionError EACCES"
    assert not confined_name.is_symlink()


def test_parent_environ_is_unreadable(allowed: list[str]) -> None:
    # The parent is this pytest process: its environment could hold secrets.
    probe = "open(f'/proc/{os.getppid()}/environ', 'rb').read()"
    assert_blocked(probe, allowed, "PermissionError EACCES")


def _tcp_listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    return listener


def _pending_connections(listener: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.mark.skipif(ABI < 4, reason="TCP rules need Landlock ABI 4")
def test_tcp_connect_to_local_listener_is_denied(allowed: list[str]) -> None:
    probe = "socket.create_connection(('127.0.0.1', PORT), timeout=10).close()"
    with _tcp_listener() as free_listener:
        port = free_listener.getsockname()[1]
        free = run_child(
            probe.replace("PORT", str(port)), allowed, before="import socket", confine=False
        )
        assert free.kind == "ok"
        assert _pending_connections(free_listener) == 1
    with _tcp_listener() as listener:
        port = listener.getsockname()[1]
        out = run_child(probe.replace("PORT", str(port)), allowed, before="import socket")
        assert out.error == "PermissionError EACCES"
        assert _pending_connections(listener) == 0


@pytest.mark.skipif(ABI < 4, reason="TCP rules need Landlock ABI 4")
def test_tcp_bind_is_denied(allowed: list[str]) -> None:
    probe = "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)"
    assert_blocked(probe, allowed, "PermissionError EACCES", before="import socket")


@pytest.mark.skipif(ABI < 6, reason="the signal scope needs Landlock ABI 6")
def test_signal_to_parent_is_denied_by_scope(allowed: list[str]) -> None:
    # Same uid (root): without the scope, kill() of the host would be allowed.
    assert_blocked("os.kill(os.getppid(), 0)", allowed, "PermissionError EPERM")


@pytest.mark.skipif(ABI < 6, reason="the signal scope needs Landlock ABI 6")
def test_signal_to_itself_still_works(allowed: list[str]) -> None:
    out = run_child("os.kill(os.getpid(), 0)", allowed)
    assert out.kind == "ok", out


def _abstract_listener() -> tuple[socket.socket, bytes]:
    name = b"\0haechi-test-" + uuid.uuid4().hex.encode()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen(4)
    listener.setblocking(False)
    return listener, name


@pytest.mark.skipif(ABI < 6, reason="the abstract unix socket scope needs Landlock ABI 6")
def test_abstract_unix_connect_is_denied_by_scope(allowed: list[str]) -> None:
    probe = "s = socket.socket(socket.AF_UNIX); s.connect(NAME); s.close()"
    free_listener, free_name = _abstract_listener()
    with free_listener:
        free = run_child(
            probe.replace("NAME", repr(free_name)), allowed, before="import socket", confine=False
        )
        assert free.kind == "ok"
        assert _pending_connections(free_listener) == 1
    listener, name = _abstract_listener()
    with listener:
        out = run_child(probe.replace("NAME", repr(name)), allowed, before="import socket")
        assert out.error == "PermissionError EPERM"
        assert _pending_connections(listener) == 0


# --- positive controls: what a plugin needs keeps working ----------------------------------


def test_reading_the_plugin_dir_works(plugin_dir: Path, allowed: list[str]) -> None:
    probe = f"print('DATA', open({str(plugin_dir / 'data.txt')!r}).read().strip())\n"
    probe += f"print('LIST', sorted(os.listdir({str(plugin_dir)!r})))"
    out = run_child(probe, allowed)
    assert out.kind == "ok", out
    assert "DATA plugin data" in out.stdout
    assert "LIST ['data.txt', 'other.txt']" in out.stdout


def test_lazy_stdlib_import_works(allowed: list[str]) -> None:
    probe = """
assert "decimal" not in sys.modules and "fractions" not in sys.modules
import decimal, fractions
print("VALUE", fractions.Fraction(decimal.Decimal("1.5")))
"""
    out = run_child(probe, allowed)
    assert out.kind == "ok", out
    assert "VALUE 3/2" in out.stdout


def test_urandom_works(allowed: list[str]) -> None:
    out = run_child("assert len(os.urandom(32)) == 32", allowed)
    assert out.kind == "ok", out


def test_threads_work_and_inherit_the_confinement(allowed: list[str]) -> None:
    probe = """
import threading
results = []
def work():
    try:
        open("/etc/passwd").read()
        results.append("read")
    except PermissionError:
        results.append("denied")
t = threading.Thread(target=work)
t.start()
t.join()
print("THREAD", results)
"""
    out = run_child(probe, allowed)
    assert out.kind == "ok", out
    assert "THREAD ['denied']" in out.stdout


def test_zlib_imported_before_restrict_keeps_working(allowed: list[str]) -> None:
    # sandbox-facts pitfall 2: extension modules that link system libraries cannot be loaded
    # once ld.so can no longer read /etc/ld.so.cache and /usr/lib; the child preloads them.
    probe = "assert zlib.decompress(zlib.compress(b'x' * 1000)) == b'x' * 1000"
    out = run_child(probe, allowed, before="import zlib")
    assert out.kind == "ok", out


@pytest.mark.skipif("zlib" in sys.builtin_module_names, reason="zlib is built into python")
def test_zlib_not_preloaded_cannot_be_imported_after_restrict(allowed: list[str]) -> None:
    # Documents why the preload list exists: the same import, made after restrict, fails.
    out = run_child("import zlib", allowed)
    assert out.kind == "ImportError", out


# --- API behaviour --------------------------------------------------------------------------


def test_abi_version_is_available_here() -> None:
    assert ABI >= 1


def test_report_contents(allowed: list[str]) -> None:
    out = run_child("pass", allowed)
    assert out.kind == "ok", out
    assert out.report == {
        "abi": ABI,
        "fs": "read-only 2 paths",
        "net": "tcp denied" if ABI >= 4 else "unavailable",
        "scopes": "signal, abstract-unix" if ABI >= 6 else "unavailable",
        "threads": "all (tsync)" if ABI >= 8 else "single-threaded",
    }


def test_missing_path_is_an_error_naming_it() -> None:
    out = run_child("", [STDLIB, "/no/such/path"])
    assert out.error == "FileNotFoundError ENOENT"
    assert "/no/such/path" in out.message


def test_refused_without_no_new_privs(allowed: list[str]) -> None:
    # Root could restrict without NNP; the module insists on it anyway.
    out = run_child("", allowed, nnp=False)
    assert out.error == "PermissionError EPERM"
    assert "no_new_privs" in out.message


def test_file_rule_grants_that_file_only(plugin_dir: Path) -> None:
    # A rule on a regular file must carry file rights only (READ_DIR there is EINVAL).
    data = plugin_dir / "data.txt"
    probe = f"""
print("DATA", open({str(data)!r}).read().strip())
open({str(plugin_dir / "other.txt")!r}).read()
"""
    out = run_child(probe, [STDLIB, str(data)])
    assert out.report is not None and out.report["fs"] == "read-only 2 paths"
    assert "DATA plugin data" in out.stdout
    assert out.error == "PermissionError EACCES"


def test_threads_already_running(allowed: list[str]) -> None:
    """Below ABI 8 restrict() refuses while other threads run; from ABI 8 TSYNC confines them."""
    if ABI < 8:
        before = """
import threading
gate = threading.Event()
threading.Thread(target=gate.wait, daemon=True).start()
"""
        out = run_child("", allowed, before=before)
        assert out.error == "OSError EBUSY"
        assert "threads" in out.message
        return
    before = """
import threading
gate = threading.Event()
results = []
def work():
    gate.wait()
    try:
        open("/etc/passwd").read()
        results.append("read")
    except PermissionError:
        results.append("denied")
worker = threading.Thread(target=work)
worker.start()
"""
    probe = "gate.set()\nworker.join()\nprint('THREAD', results)"
    out = run_child(probe, allowed, before=before)
    assert out.kind == "ok", out
    assert "THREAD ['denied']" in out.stdout


@pytest.mark.parametrize("abi", range(1, min(ABI, 7) + 1))
def test_each_older_abi_layout_is_accepted_by_the_kernel(abi: int, allowed: list[str]) -> None:
    # Pretend the kernel is older: the ruleset size and masks for that ABI must be accepted
    # (E2BIG/EINVAL otherwise), and the filesystem must still be read-only.
    probe = "open('/etc/passwd').read()"
    out = run_child(probe, allowed, before=f"ll.abi_version = lambda: {abi}")
    assert out.report is not None, out
    assert out.report["abi"] == abi
    assert out.report["net"] == ("tcp denied" if abi >= 4 else "unavailable")
    assert out.report["scopes"] == ("signal, abstract-unix" if abi >= 6 else "unavailable")
    assert out.error == "PermissionError EACCES"


@pytest.mark.parametrize(
    ("abi", "fs_mask", "size"),
    [(1, 0x1FFF, 8), (2, 0x3FFF, 8), (3, 0x7FFF, 8), (4, 0x7FFF, 16), (5, 0xFFFF, 16),
     (6, 0xFFFF, 24), (7, 0xFFFF, 24)],
)  # fmt: skip
def test_ruleset_attr_per_abi(abi: int, fs_mask: int, size: int) -> None:
    attr = ll._ruleset_attr(abi)
    assert len(attr) == size
    assert int.from_bytes(attr[:8], sys.byteorder) == fs_mask
    if size >= 16:
        assert int.from_bytes(attr[8:16], sys.byteorder) == 0b11  # bind_tcp | connect_tcp
    if size >= 24:
        assert int.from_bytes(attr[16:24], sys.byteorder) == 0b11  # abstract unix | signal


def test_unknown_machine_reports_abi_zero_and_restrict_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ll, "_KNOWN_MACHINE", False)
    assert ll.abi_version() == 0
    with pytest.raises(OSError) as info:
        ll.restrict([STDLIB])  # stops at abi 0, long before restrict_self
    assert info.value.errno == errno.ENOSYS


def test_module_uses_only_fast_stdlib_imports() -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c",
         f"import sys; sys.path.insert(0, {str(CHILD_DIR)!r}); before = set(sys.modules)\n"
         "import _hx_landlock\n"
         "print(sorted(set(sys.modules) - before))"],
        env={}, cwd="/", capture_output=True, text=True, timeout=TIMEOUT, check=True,
    )  # fmt: skip
    loaded = set(ast.literal_eval(out.stdout))
    # ctypes, os and struct with what they pull in themselves; nothing like re, json or platform.
    assert loaded <= {
        "_hx_landlock", "ctypes", "_ctypes", "ctypes._endian", "struct", "_struct", "errno",
        "os", "os.path", "posixpath", "genericpath", "stat", "_stat", "_collections_abc", "types",
    }  # fmt: skip
