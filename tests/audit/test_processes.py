"""Real processes: several writers on one chain (with rotation), and kill -9 mid-append."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from haechi.host.audit import verify

from . import records, write_log

ROOT = Path(__file__).resolve().parents[2]

# Appends COUNT request events from 20 tasks; request ids carry the writer number, and every
# acknowledged append is printed as "seq hash request_id" once append() has returned.
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from haechi.host.audit import AuditConfig, AuditLog
    from tests.audit import request_fields

    path, writer, count, rotate, fsync = sys.argv[1:6]
    writer, count, rotate = int(writer), int(count), int(rotate)

    async def main() -> None:
        config = AuditConfig(Path(path), rotate_bytes=rotate or None, fsync=fsync, max_batch=8)
        async with await AuditLog.open(config) as log:
            async def task(k: int) -> None:
                i = k
                while count == 0 or i < count:
                    fields = request_fields(writer * 10**9 + i)
                    head = await log.append("request", **fields)
                    sys.stdout.write(f"{head.seq} {head.hash} {fields['request_id']}\\n")
                    sys.stdout.flush()
                    i += 20
            await asyncio.gather(*(task(k) for k in range(20)))

    asyncio.run(main())
    """
)


def spawn(path: Path, writer: int, count: int, rotate: int, fsync: str) -> subprocess.Popen[str]:
    args = [str(path), str(writer), str(count), str(rotate), fsync]
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def all_records(directory: Path) -> list[dict[str, object]]:
    return [r for path in sorted(directory.iterdir()) for r in records(path)]


def test_four_processes_append_to_one_chain_while_rotating(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writers = [spawn(path, w, 600, 32768, "interval") for w in range(4)]
    outputs = [p.communicate(timeout=120) for p in writers]
    for proc, (_, err) in zip(writers, outputs, strict=True):
        assert proc.returncode == 0, err
    report = verify(tmp_path)
    assert report.ok, report.message
    archives = len(list(tmp_path.iterdir())) - 1
    assert archives >= 3
    assert report.lines == 4 * 600 + archives
    logged = all_records(tmp_path)
    ids = [r["request_id"] for r in logged if r["kind"] == "request"]
    assert len(ids) == len(set(ids)) == 2400
    acked = {tuple(line.split()) for out, _ in outputs for line in out.splitlines()}
    requests = [r for r in logged if r["kind"] == "request"]
    assert acked == {(str(r["seq"]), r["hash"], r["request_id"]) for r in requests}


def read_acks(proc: subprocess.Popen[str], at_least: int) -> list[str]:
    assert proc.stdout is not None
    acks: list[str] = []
    while len(acks) < at_least:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "writer exited"
        acks.append(line)
    return acks


def test_kill_9_mid_append_loses_no_acknowledged_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    acked: set[tuple[str, ...]] = set()
    for round_, (fsync, rotate) in enumerate(
        [("never", 0), ("interval", 16384), ("always", 0), ("never", 16384), ("interval", 0)]
    ):
        proc = spawn(path, round_ + 1, 0, rotate, fsync)
        lines = read_acks(proc, 150 + 97 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # Only complete lines are acknowledgements; a partial last one was never flushed whole.
        lines += rest.splitlines(keepends=True)
        acked |= {tuple(line.split()) for line in lines if line.endswith("\n")}
        report = verify(tmp_path)
        if not report.ok:
            assert report.reason == "torn-line", report.message
        write_log(path, 0)  # opening repairs a torn tail
        report = verify(tmp_path)
        assert report.ok, report.message
    logged = {(str(r["seq"]), r["hash"], r.get("request_id")) for r in all_records(tmp_path)}
    missing = acked - logged
    assert not missing, sorted(missing)[:5]
    assert len(acked) >= 5 * 150
