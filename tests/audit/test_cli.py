"""``haechi audit verify`` through the real module in a subprocess: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from . import lines_of, write_log


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haechi.host.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_intact_series_exits_0(tmp_path: Path) -> None:
    write_log(tmp_path / "audit.jsonl", 120, rotate_bytes=8192)
    run = audit("verify", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok: ")
    assert " lines in " in run.stdout


def test_a_broken_line_exits_1_naming_file_line_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 10)
    lines = lines_of(path)
    lines[6] = lines[6].replace(b'"status":200', b'"status":204')
    path.write_bytes(b"".join(lines))
    run = audit("verify", str(path))
    assert run.returncode == 1
    assert run.stdout.startswith(f"{path}:7: hash-mismatch: ")


def test_json_format(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    with path.open("ab") as handle:
        handle.write(b'{"seq":4')
    run = audit("verify", "--format", "json", str(path))
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert report["ok"] is False
    assert report["reason"] == "torn-line"
    assert report["first_broken"] == {"file": str(path), "line": 4}
    assert report["lines"] == 3 and report["head"]["seq"] == 3


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = audit("verify", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("haechi: error: no-audit-files: ")
    (tmp_path / "a.jsonl").write_bytes(b"")
    (tmp_path / "b.jsonl").write_bytes(b"")
    assert audit("verify", str(tmp_path)).returncode == 2
    assert audit("verify", "--format", "yaml", str(tmp_path / "a.jsonl")).returncode == 2
    assert audit("verify").returncode == 2


def test_register_adds_the_group_to_a_top_level_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from haechi.host.cli import audit as audit_cli
    from haechi.host.cli._args import Parser

    write_log(tmp_path / "audit.jsonl", 2)
    parser = Parser(prog="haechi")
    groups = parser.add_subparsers(dest="group", parser_class=Parser)
    audit_cli.register(groups)
    args = parser.parse_args(["audit", "verify", "--format", "json", str(tmp_path)])
    assert args.handler(args) == 0
    assert json.loads(capsys.readouterr().out)["lines"] == 2
