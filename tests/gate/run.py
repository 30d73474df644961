"""``make gate``: run the security gate of tests/gate/gates.toml and print one row per gate.

Exit 0 only if every listed test was collected and passed; a listed test that no longer
exists fails its gate (a renamed test must not silently drop out of the gate).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    gates = tomllib.loads((ROOT / "tests" / "gate" / "gates.toml").read_text())["gates"]
    listed = sorted({test for gate in gates.values() for test in gate["tests"]})
    # pytest stops at a missing file; such a test is reported missing, the others still run.
    node_ids = [test for test in listed if (ROOT / test.split("::", 1)[0]).is_file()]
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "gate.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                *node_ids,
            ],
            cwd=ROOT,
            check=False,
        )
        results = _results(junit) if junit.exists() else {}
    failed = 0
    print("\nsecurity gate")
    for name, gate in gates.items():
        problems = [t for t in gate["tests"] if results.get(t) != "pass"]
        mark = "PASS" if not problems else "FAIL"
        failed += bool(problems)
        print(f"  {mark}  {name}: {gate['why']}")
        for test in problems:
            print(f"          {results.get(test, 'not collected')}: {test}")
    print("gate passed" if not failed else f"{failed} gate(s) failed")
    return 1 if failed else 0


def _results(junit: Path) -> dict[str, str]:
    """Function-level outcome per node id: a parametrised test passes only if every case did."""
    outcome: dict[str, str] = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        module = (case.get("classname") or "").replace(".", "/") + ".py"
        function = (case.get("name") or "").split("[", 1)[0]
        node = f"{module}::{function}"
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        status = "fail" if failed else "skipped" if skipped else "pass"
        if outcome.get(node) in (None, "pass"):
            outcome[node] = status
    return outcome


if __name__ == "__main__":
    sys.exit(main())
