"""AuditLog in one process: group commit, fsync policies, refusals, torn-tail repair, rotation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from haechi.host.audit import AuditConfig, AuditError, AuditLog, ChainHead, verify

from . import append_requests, lines_of, records, request_fields, write_log


def test_ten_thousand_appends_from_a_hundred_tasks(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def run() -> list[ChainHead]:
        async with await AuditLog.open(AuditConfig(path, rotate_bytes=None)) as log:

            async def worker(k: int) -> list[ChainHead]:
                heads = []
                for i in range(100):
                    heads.append(await log.append("request", **request_fields(k * 100 + i)))
                return heads

            results = await asyncio.gather(*(worker(k) for k in range(100)))
            return [head for heads in results for head in heads]

    heads = asyncio.run(run())
    assert sorted(h.seq for h in heads) == list(range(1, 10_001))
    by_seq = {r["seq"]: r for r in records(path)}
    assert all(by_seq[h.seq]["hash"] == h.hash for h in heads)
    assert len({r["request_id"] for r in by_seq.values()}) == 10_000
    report = verify(path)
    assert report.ok and report.lines == 10_000, report.message


def _write_syscalls() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/self/io")


def test_concurrent_appends_share_one_write(tmp_path: Path) -> None:
    # 1,000 appends issued in one loop tick land in one batch: the kernel counts the writes.
    path = tmp_path / "audit.jsonl"

    async def run() -> int:
        async with await AuditLog.open(AuditConfig(path, window_ms=50, fsync="never")) as log:
            before = _write_syscalls()
            await append_requests(log, 0, 1000)
            return _write_syscalls() - before

    writes = asyncio.run(run())
    assert len(lines_of(path)) == 1000
    assert writes <= 5


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_every_fsync_policy_writes_a_valid_chain(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "audit.jsonl"
    heads = write_log(path, 200, fsync=policy, fsync_interval_ms=1, max_batch=7)
    assert [h.seq for h in heads] == list(range(1, 201))
    assert verify(path).ok


def test_a_refused_event_raises_in_the_caller_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def run() -> None:
        async with await AuditLog.open(AuditConfig(path)) as log:
            with pytest.raises(AuditError) as info:
                await log.append("request", **request_fields(1), message="hello alice")
            assert info.value.field == "message"
            with pytest.raises(AuditError) as info:
                await log.append("recovered", dropped_bytes=1, reason="torn-tail")
            assert info.value.reason == "reserved-kind"
            await log.append("stop", pid=os.getpid())

    asyncio.run(run())
    assert [r["kind"] for r in records(path)] == ["stop"]


def test_append_after_close_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        log = await AuditLog.open(AuditConfig(tmp_path / "audit.jsonl"))
        await log.aclose()
        await log.aclose()
        with pytest.raises(AuditError) as info:
            await log.append("stop", pid=1)
        assert info.value.reason == "closed"

    asyncio.run(run())


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 5)
    heads = write_log(path, 5)
    assert [h.seq for h in heads] == [6, 7, 8, 9, 10]
    assert verify(path).ok


def test_a_torn_tail_is_repaired_on_open_with_a_recovered_event(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    intact = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(b'{"seq":4,"ts":"2026-01-31T12:00:0')
    assert verify(path).reason == "torn-line"
    heads = write_log(path, 1)
    assert path.read_bytes().startswith(intact)
    kinds = [(r["seq"], r["kind"]) for r in records(path)]
    assert kinds == [*((i, "request") for i in (1, 2, 3)), (4, "recovered"), (5, "request")]
    assert records(path)[3]["dropped_bytes"] == 33 and records(path)[3]["reason"] == "torn-tail"
    assert heads[0].seq == 5
    assert verify(path).ok


def test_a_log_that_is_only_a_torn_line_restarts_from_genesis(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"seq":1,"ts"')
    write_log(path, 1)
    assert [r["kind"] for r in records(path)] == ["recovered", "request"]
    assert verify(path).ok


def test_an_unreadable_last_line_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    with path.open("ab") as handle:
        handle.write(b"not an audit line\n")
    with pytest.raises(AuditError) as info:
        write_log(path, 1)
    assert info.value.reason == "tail-unreadable"


def test_a_symlinked_log_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.jsonl").write_bytes(b"")
    (tmp_path / "audit.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(AuditError) as info:
        write_log(tmp_path / "audit.jsonl", 1)
    assert info.value.reason == "open-failed"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"path": Path("audit.log")}, "path"),
        ({"path": Path("audit.3.jsonl")}, "path"),
        ({"fsync": "sometimes"}, "fsync"),
        ({"window_ms": -1}, "window_ms"),
        ({"rotate_bytes": 10}, "rotate_bytes"),
        ({"max_batch": 0}, "max_batch"),
    ],
)
def test_bad_config_is_refused_by_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"path": Path("audit.jsonl")} | kwargs
    with pytest.raises(AuditError) as info:
        AuditConfig(**args)  # type: ignore[arg-type]
    assert (info.value.reason, info.value.field) == ("config-invalid", field)


def test_a_crash_between_link_and_rename_does_not_duplicate_an_archive(tmp_path: Path) -> None:
    # Simulate the state a rotation leaves if killed after os.link and before os.rename.
    path = tmp_path / "audit.jsonl"
    write_log(path, 40, rotate_bytes=None)
    os.link(path, tmp_path / "audit.1.jsonl")
    write_log(path, 5, rotate_bytes=8192)  # opening rotates: the file is already too big
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.1.jsonl", "audit.jsonl"]
    assert [r["kind"] for r in records(path)] == ["rotate"] + ["request"] * 5
    assert records(path)[0]["previous_file"] == "audit.1.jsonl"
    report = verify(tmp_path)
    assert report.ok and report.lines == 46, report.message


FULL_DISK = textwrap.dedent(
    """
    import asyncio, os, resource, signal, sys
    from pathlib import Path
    from haechi.host.audit import AuditConfig, AuditError, AuditLog
    from tests.audit import request_fields

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
    path = Path(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 3000, resource.RLIM_INFINITY))

    async def main() -> None:
        async with await AuditLog.open(AuditConfig(path, max_batch=3, window_ms=0)) as log:
            for i in range(100):
                try:
                    head = await log.append("request", **request_fields(1000 + i))
                except AuditError as exc:
                    print("refused", exc.reason, flush=True)
                    return
                print("acked", head.seq, flush=True)

    asyncio.run(main())
    """
)


def test_a_failed_write_refuses_the_batch_and_leaves_a_repairable_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = run.stdout.split("\n")
    assert "refused write-failed" in out, run.stdout + run.stderr
    acked = [int(line.split()[1]) for line in out if line.startswith("acked")]
    assert acked
    write_log(path, 1)  # repairs a torn tail, if the failing write left one
    report = verify(path)
    assert report.ok, report.message
    present = {r["seq"] for r in records(path) if r["kind"] == "request"}
    assert set(acked) <= present
