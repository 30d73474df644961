"""``haechi plugin test DIR``: load the bundle in the sandbox, run the kind's conformance
vectors and the bundle's own tests, and report one row per check.

The bundle is read once, as it is on disk (signed or not: authors test before they sign). Its
own tests are the ``test_*.py`` files at its top level, run by pytest in a separate process
with the bundle as the working directory; they load the bundle through
:mod:`haechi.sdk.testing`, so the plugin they call runs in the real sandbox, but the test
files themselves run as the caller, with a reduced environment. That is the author's own code
on the author's machine; for a bundle from someone else, ``--no-own-tests`` runs only the
conformance vectors, where nothing from the bundle runs outside the sandbox. Nothing is
written into the bundle (no ``__pycache__``, no ``.pytest_cache``), since every file there
would be signed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from haechi.host.sandbox import SandboxError
from haechi.trust import Bundle, BundleError, ManifestError, read_bundle

from .conformance import Outcome, run_conformance, secrets_for
from .harness import PluginHarness

__all__ = ["Report", "Row", "check_bundle"]

OWN_TESTS_TIMEOUT = 600


@dataclass(frozen=True)
class Row:
    section: str  # load, conformance, tests
    name: str
    status: str  # pass, fail, n/a
    detail: str = ""


OWN_TESTS_NOTE = (
    "the bundle's own tests ran as you, outside the sandbox (only the plugin they load is "
    "confined); for a bundle you did not write, use --no-own-tests"
)
# What the own tests' pytest process inherits: enough to find Python and a temp dir, never the
# caller's credentials or tokens that happen to be in the environment.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass
class Report:
    plugin: str
    kind: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(row.status != "fail" for row in self.rows)


def check_bundle(
    directory: Path,
    *,
    secrets: dict[str, str] | None = None,
    allow_networks: tuple[str, ...] = (),
    mode: str = "strict",
    own_tests: bool = True,
) -> Report:
    try:
        bundle = read_bundle(directory)
    except (BundleError, ManifestError) as exc:
        report = Report(plugin="?", kind="?")
        report.rows.append(Row("load", "the bundle is well-formed", "fail", str(exc)))
        return report
    report = Report(plugin=bundle.manifest.id, kind=bundle.manifest.kind)
    report.rows.extend(_conformance(bundle, dict(secrets or {}), allow_networks, mode))
    if own_tests:
        rows = _own_tests(directory, bundle)
        report.rows.extend(rows)
        if any(row.status != "n/a" for row in rows):
            report.notes.append(OWN_TESTS_NOTE)
    return report


def _conformance(
    bundle: Bundle, given: dict[str, str], allow_networks: tuple[str, ...], mode: str
) -> list[Row]:
    merged, made = secrets_for(bundle.manifest, given)
    harness = PluginHarness(bundle, secrets=merged, allow_networks=allow_networks, mode=mode)
    loaded = "the plugin loads and sets up in the sandbox"
    try:
        harness.start()
    except SandboxError as exc:
        return [Row("load", loaded, "fail", f"{exc.reason}: {exc.message}")]
    try:
        outcomes: list[Outcome] = run_conformance(harness, made)
    finally:
        harness.close()
    rows = [Row("load", loaded, "pass", ", ".join(_layers(harness)))]
    return rows + [Row("conformance", o.name, o.status, o.detail) for o in outcomes]


def _layers(harness: PluginHarness) -> list[str]:
    spawns = [e for e in harness.events if e.kind == "spawn"]
    layers = spawns[0].detail.get("layers", {}) if spawns else {}
    return [f"{name} {value}" for name, value in layers.items() if name != "rlimits"]


def _own_tests(directory: Path, bundle: Bundle) -> list[Row]:
    tests = sorted(p for p in bundle.files if "/" not in p and _is_test_file(p))
    if not tests:
        return [Row("tests", "the bundle's own tests", "n/a", "no test_*.py at the bundle's top")]
    with tempfile.TemporaryDirectory(prefix="haechi-plugin-test-") as scratch:
        junit = Path(scratch) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
            f"--rootdir={directory.resolve()}",
            f"--junitxml={junit}",
            *tests,
        ]
        env = {k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            done = subprocess.run(
                command,
                cwd=directory.resolve(),
                env=env,
                capture_output=True,
                text=True,
                timeout=OWN_TESTS_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [Row("tests", "the bundle's own tests", "fail", "did not finish in 600 s")]
        rows = _junit_rows(junit) if junit.exists() else []
        if not rows or (done.returncode not in (0, 1) and all(r.status != "fail" for r in rows)):
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            rows.append(Row("tests", "pytest ran the bundle's tests", "fail", " | ".join(tail)))
        return rows


def _is_test_file(path: str) -> bool:
    return path.startswith("test_") and path.endswith(".py")


def _junit_rows(path: Path) -> list[Row]:
    rows = []
    # pytest wrote this file in our own temporary directory a moment ago.
    for case in ElementTree.parse(path).getroot().iter("testcase"):  # noqa: S314
        name = f"{case.get('file') or case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            lines = (problem.get("message") or "").splitlines() or [""]
            rows.append(Row("tests", name, "fail", lines[0][:300]))
        elif case.find("skipped") is not None:
            rows.append(Row("tests", name, "n/a", "skipped"))
        else:
            rows.append(Row("tests", name, "pass"))
    return rows
