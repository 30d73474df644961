"""docs/authors/tutorial.md is executed: every ``sh`` block, in order, in a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TUTORIAL = ROOT / "docs" / "authors" / "tutorial.md"


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    blocks = shell_blocks(TUTORIAL.read_text(encoding="utf-8"))
    assert len(blocks) >= 8, "the tutorial lost its commands"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # What the reader is told they will see:
    assert "test_plugin::test_finds_a_badge_number" in done.stdout
    assert "all checks passed" in done.stdout
    assert '"type": "badge_number"' in done.stdout  # from plugin call
    assert (tmp_path / "acme-employee-ids" / "plugin.sig").is_file()
