"""A layer the kernel cannot give refuses the spawn; best-effort runs and says it is degraded.

Old kernels and container runtimes are simulated the way sandbox-facts §5 did it: a helper
process installs a small seccomp filter on itself that makes one syscall fail, then execs the
real ``haechi plugin call``. The host and its child inherit the filter, so the child meets the
same "no Landlock" / "no seccomp" / "no user namespaces" kernel a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from haechi.trust import SigningKey
from haechi.trust.signing import write_keypair

from .helpers import CORPUS, signed_copy

MACHINE = os.uname().machine
# (syscall number on x86_64, on aarch64, errno the "kernel" answers, stage the child reports)
LAYERS = {
    "landlock": (444, 444, 38, "landlock"),  # landlock_create_ruleset -> ENOSYS
    "seccomp": (317, 277, 38, "seccomp"),  # seccomp -> ENOSYS (kernel without filter mode)
    "userns": (272, 97, 1, "netns"),  # unshare -> EPERM (Docker's default profile)
}

# The filter: load nr; if nr == N return ERRNO(e) else ALLOW. Installed with prctl, which the
# filter itself does not touch, then the helper execs the CLI.
FILTER_HELPER = r"""
import ctypes, os, struct, sys
nr, err = int(sys.argv[1]), int(sys.argv[2])
prog = b"".join(struct.pack("=HBBI", *ins) for ins in (
    (0x20, 0, 0, 0),                 # ld  [0]            seccomp_data.nr
    (0x15, 0, 1, nr),                # jeq #nr, 0, 1
    (0x06, 0, 0, 0x00050000 | err),  # ret ERRNO(err)
    (0x06, 0, 0, 0x7FFF0000),        # ret ALLOW
))
buf = ctypes.create_string_buffer(prog)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0                      # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()  # SECCOMP_MODE_FILTER
os.execv(sys.executable, [sys.executable, "-m", "haechi.host.cli", *sys.argv[3:]])
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fail-closed")
    key = SigningKey.generate()
    write_keypair(root / "keys", "k", key)
    return signed_copy(CORPUS / "good" / "detector", root / "d", key), root / "keys" / "k.pub"


def call_without(layer: str, bundle: tuple[Path, Path], *extra: str) -> tuple[int, dict]:
    x86, arm, err, _stage = LAYERS[layer]
    nr = x86 if MACHINE == "x86_64" else arm
    directory, anchor = bundle
    proc = subprocess.run(
        [sys.executable, "-c", FILTER_HELPER, str(nr), str(err),
         "plugin", "call", str(directory), "--trust", str(anchor),
         "--hook", "inspect", "--args", '[["say hello"]]', *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_missing_layer_refuses_the_spawn(layer: str, bundle) -> None:
    code, outcome = call_without(layer, bundle)
    stage = LAYERS[layer][3]
    assert (code, outcome["ok"]) == (20, False)
    assert outcome["reason"] == f"refused:sandbox-layer-unavailable:{stage}"
    assert outcome["layers"][stage].startswith("unavailable")


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_best_effort_runs_degraded_and_says_so(layer: str, bundle) -> None:
    code, outcome = call_without(layer, bundle, "--sandbox", "best-effort")
    stage = LAYERS[layer][3]
    detection = {"type": "greeting", "segment": 0, "start": 4, "end": 9}
    assert (code, outcome["ok"], outcome["result"]) == (0, True, [detection])
    assert outcome["degraded"] == [stage]
    assert outcome["layers"][stage].startswith("unavailable")


def test_without_the_filter_every_layer_is_on(bundle) -> None:
    """Control: the same call with no simulated gap is strict and complete."""
    directory, anchor = bundle
    proc = subprocess.run(
        [sys.executable, "-m", "haechi.host.cli", "plugin", "call", str(directory),
         "--trust", str(anchor), "--hook", "inspect", "--args", '[["say hello"]]'],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    outcome = json.loads(proc.stdout)
    assert proc.returncode == 0 and "degraded" not in outcome
    assert not [v for v in outcome["layers"].values() if v.startswith("unavailable")]


def run_doctor(*prefix: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [*prefix, "doctor", "--format", "json", "--calls", "50", "--spawns", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout)


def test_doctor_reports_every_layer() -> None:
    code, report = run_doctor(sys.executable, "-m", "haechi.host.cli")
    assert (code, report["complete"]) == (0, True)
    assert report["layers"]["landlock"].startswith("abi ")
    assert set(report["profiles"]) == {"auth", "filter", "crypto"}
    assert "request:credentials" not in report["profiles"]["filter"]["capabilities"]
    assert not any("site-packages" in p for p in report["profiles"]["auth"]["read_only_paths"])
    bench = report["benchmark"]
    assert bench["cold_spawn_ms"]["n"] == 2 and bench["call_round_trip_us"]["n"] == 50


def test_doctor_names_a_missing_layer() -> None:
    nr = LAYERS["landlock"][0 if MACHINE == "x86_64" else 1]
    code, report = run_doctor(sys.executable, "-c", FILTER_HELPER, str(nr), "38")
    assert (code, report["complete"]) == (1, False)
    assert report["layers"]["landlock"].startswith("unavailable")
