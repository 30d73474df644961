"""The wheel carries every package and data file, and the demo runs as the README says."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_every_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            tmp_path,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("haechi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for top in ("host", "sdk", "trust"):
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.relative_to(ROOT).as_posix()
            expected.add("haechi/" + relative)
    missing = sorted(expected - names)
    assert not missing, f"packages missing from the wheel (list them in pyproject): {missing}"
    assert "haechi/trust/py.typed" in names
    templates = {
        "haechi/" + t.relative_to(ROOT).as_posix()
        for t in (ROOT / "sdk" / "scaffold").rglob("*.tmpl")
    }
    assert templates and templates <= names, sorted(templates - names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "haechi = haechi.host.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_demo_walkthrough(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),
    }
    proc = subprocess.run(
        ["bash", ROOT / "docs" / "examples" / "walkthrough.sh"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ACCEPTED hello-filter 1.0.0" in proc.stdout
    assert "REFUSED  tampered: file 'plugin.py' differs" in proc.stdout
    assert not list(tmp_path.iterdir()), "the demo must clean up its work directory"
