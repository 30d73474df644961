"""Helpers for the key-store and vault tests: real processes that start at the same moment."""

from __future__ import annotations

import subprocess
import sys

# Every child script starts with this: it reports that it is ready, then waits for "go", so
# all children are past their imports and contend at once (no sleeps, no timing).
PRELUDE = """\
import sys, json
print("ready", flush=True)
sys.stdin.readline()
"""


def run_together(script: str, argvs: list[list[str]], timeout: float = 180) -> list[str]:
    """Start one ``python -c PRELUDE+script`` per argv, release them together, return stdouts."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PRELUDE + script, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    return [out for out, _ in outputs]


def start(script: str, argv: list[str]) -> subprocess.Popen[str]:
    """One child running ``script`` (no prelude), stdin and stdout line by line."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
