"""The audit log writer: group commit, one chain across processes, torn-tail repair, rotation.

Rules this module enforces:

1. ``await log.append(kind, **fields)`` validates at once (an :class:`AuditError` in the
   caller), then joins the current batch and returns the line's :class:`ChainHead` only after
   the batch was written with one ``write()`` (and fsynced when the policy says so). A caller
   that answers 2xx after awaiting it knows the line survives ``kill -9`` of the process.
2. A batch is written by one worker thread, under an exclusive ``flock`` on the log file, after
   reading the head (sequence, hash) from the file's last line; so several processes appending
   to one file form one chain. No lock file, no fsync per event.
3. Under the lock, a torn tail (bytes after the last newline) is truncated and a ``recovered``
   event recording the dropped byte count is chained first; on open this repairs a crash.
4. When the file grows past ``rotate_bytes``, still under the lock, the file is hard-linked to
   ``<stem>.<n>.jsonl`` and atomically replaced by a new file whose first line is a ``rotate``
   event chained from the last hash. The active path never disappears, so no process can start
   a fresh chain in the gap; a process whose descriptor points at a rotated-out file notices
   after locking (inode changed) and reopens.
5. fsync policy: ``always`` (each batch), ``interval`` (at most every ``fsync_interval_ms``, and
   no later than that after a write), ``never`` (the OS decides). Only ``always`` makes an
   acknowledged line survive power loss; all three survive a process crash.

Example::

    import asyncio
    from pathlib import Path
    from haechi.host.audit import AuditConfig, AuditLog

    async def main() -> None:
        async with await AuditLog.open(AuditConfig(Path("/tmp/demo/audit.jsonl"))) as log:
            head = await log.append("start", pid=1234, version="0.1.0")
            print(head.seq, head.hash)

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, TypeVar

from .chain import ChainHead, TailState, now_ts, read_tail, render_fields, render_line
from .layout import archive_path, archives, check_active_name
from .schema import AuditError, ValidEvent, validate

__all__ = ["AuditConfig", "AuditLog", "FsyncPolicy"]

FsyncPolicy = Literal["always", "interval", "never"]
_POLICIES: Final = ("always", "interval", "never")
_log = logging.getLogger("haechi.audit")
_R = TypeVar("_R")


@dataclass(frozen=True)
class AuditConfig:
    path: Path
    window_ms: float = 2.0  # how long the first append of a batch waits for company
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: float = 100.0
    rotate_bytes: int | None = 64 << 20  # None: never rotate
    max_batch: int = 4096  # a full batch is written without waiting for the window

    def __post_init__(self) -> None:
        check_active_name(self.path)
        if self.fsync not in _POLICIES:
            raise AuditError("config-invalid", "fsync must be always, interval or never", "fsync")
        for name in ("window_ms", "fsync_interval_ms"):
            if not 0 <= getattr(self, name) <= 60_000:
                raise AuditError("config-invalid", f"{name} must be in [0, 60000]", name)
        if self.rotate_bytes is not None and self.rotate_bytes < 4096:
            raise AuditError("config-invalid", "rotate_bytes must be at least 4096", "rotate_bytes")
        if not 1 <= self.max_batch <= 1_000_000:
            raise AuditError("config-invalid", "max_batch must be in [1, 1000000]", "max_batch")


@dataclass(frozen=True)
class _Entry:
    """One accepted event, rendered as far as possible outside the lock."""

    event: ValidEvent
    ts: str
    fields: str


# --- the file side: runs only on the writer thread ----------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileWriter:
    """Owns the file descriptor; every method runs on the single writer thread."""

    def __init__(self, config: AuditConfig) -> None:
        self._config = config
        self._fd = -1
        self._synced_at = time.monotonic()
        self.dirty = False

    def open(self) -> None:
        try:
            self._config.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = self._open_active()
        except OSError as exc:
            # ELOOP here means the path is a symlink, refused by O_NOFOLLOW.
            raise AuditError(
                "open-failed", f"cannot open {self._config.path}: {exc.strerror}", "path"
            ) from exc

    def _open_active(self) -> int:
        # O_NOFOLLOW: never append through a symlink planted in the audit directory.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        return os.open(self._config.path, flags, 0o600)

    def _lock_current(self) -> int:
        """Lock the file that is the active log *now*; reopen if ours was rotated out."""
        while True:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                on_disk = os.stat(self._config.path, follow_symlinks=False)
            except FileNotFoundError:
                on_disk = None
            mine = os.fstat(self._fd)
            if on_disk and (on_disk.st_ino, on_disk.st_dev) == (mine.st_ino, mine.st_dev):
                return self._fd
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = self._open_active()

    def write_batch(self, entries: list[_Entry]) -> list[ChainHead]:
        fd = self._lock_current()
        try:
            heads, size, head = self._append_locked(fd, entries)
            new_fd = self._maybe_rotate(fd, size, head)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        if new_fd is not None:
            os.close(fd)
            self._fd = new_fd
        return heads

    def _append_locked(
        self, fd: int, entries: list[_Entry]
    ) -> tuple[list[ChainHead], int, ChainHead]:
        tail = read_tail(fd)
        lines, head = self._repair(fd, tail)
        heads: list[ChainHead] = []
        for entry in entries:
            line = render_line(head.seq + 1, entry.ts, head.hash, entry.event, entry.fields)
            head = ChainHead(head.seq + 1, line[-67:-3].decode())
            heads.append(head)
            lines.append(line)
        data = b"".join(lines)
        if data:
            try:
                _write_all(fd, data)
            except OSError as exc:
                raise AuditError("write-failed", f"audit write failed: {exc.strerror}") from exc
            self._after_write(fd)
        return heads, tail.size - tail.torn_bytes + len(data), head

    def _repair(self, fd: int, tail: TailState) -> tuple[list[bytes], ChainHead]:
        """Drop a torn tail (a write cut short by a crash) and say so in the chain."""
        if not tail.torn_bytes:
            return [], tail.head
        os.ftruncate(fd, tail.size - tail.torn_bytes)
        _log.warning("audit log %s: dropped %d torn bytes", self._config.path, tail.torn_bytes)
        event = validate(
            "recovered", {"dropped_bytes": tail.torn_bytes, "reason": "torn-tail"}, internal=True
        )
        line = render_line(tail.head.seq + 1, now_ts(), tail.head.hash, event)
        return [line], ChainHead(tail.head.seq + 1, line[-67:-3].decode())

    def _after_write(self, fd: int) -> None:
        policy = self._config.fsync
        due = time.monotonic() - self._synced_at >= self._config.fsync_interval_ms / 1000
        if policy == "always" or (policy == "interval" and due):
            self._sync(fd)
        elif policy == "interval":
            self.dirty = True

    def _sync(self, fd: int) -> None:
        os.fdatasync(fd)
        self._synced_at = time.monotonic()
        self.dirty = False

    def sync_if_dirty(self) -> None:
        if self.dirty and self._fd >= 0:
            self._sync(self._fd)

    def _maybe_rotate(self, fd: int, size: int, head: ChainHead) -> int | None:
        limit = self._config.rotate_bytes
        if limit is None or size <= limit or head.seq == 0:
            return None
        try:
            return self._rotate(fd, head)
        except OSError as exc:
            # The batch is written and valid; refusing it would turn a full disk or a
            # read-only directory into failed requests. The next batch retries.
            _log.error("audit log %s: rotation failed: %s", self._config.path, exc.strerror)
            return None

    def _archive_for(self, fd: int) -> Path:
        """The next archive name, or the one a crashed rotation already linked to this file."""
        found = archives(self._config.path)
        if found:
            last = os.stat(found[-1][1], follow_symlinks=False)
            mine = os.fstat(fd)
            if (last.st_ino, last.st_dev) == (mine.st_ino, mine.st_dev):
                return found[-1][1]
        return archive_path(self._config.path, found[-1][0] + 1 if found else 1)

    def _rotate(self, fd: int, head: ChainHead) -> int:
        path = self._config.path
        archive = self._archive_for(fd)
        if not archive.exists():
            os.link(path, archive, follow_symlinks=False)
        event = validate(
            "rotate", {"previous_file": archive.name, "previous_hash": head.hash}, internal=True
        )
        line = render_line(head.seq + 1, now_ts(), head.hash, event)
        staging = path.with_name(path.name + ".rotating")
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        new_fd = os.open(staging, flags, 0o600)
        try:
            _write_all(new_fd, line)
            if self._config.fsync != "never":
                os.fdatasync(fd)
                os.fdatasync(new_fd)
            # rename() replaces the active path atomically: it always names a complete file.
            os.rename(staging, path)
            if self._config.fsync != "never":
                _fsync_dir(path.parent)
        except BaseException:
            os.close(new_fd)
            raise
        self.dirty = False
        return new_fd

    def discard(self) -> None:
        """Close without syncing (open failed: nothing of ours was written)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        if self._fd >= 0:
            if self._config.fsync != "never":
                os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1


# --- the asyncio side ----------------------------------------------------------------------


@dataclass
class _Pending:
    entry: _Entry
    future: asyncio.Future[ChainHead]


@dataclass
class _State:
    pending: list[_Pending] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    sync_timer: asyncio.TimerHandle | None = None
    flush: asyncio.Task[None] | None = None
    closed: bool = False


class AuditLog:
    """An append-only, hash-chained audit log shared by every process that opens its path.

    Create it with ``await AuditLog.open(config)``; use one per process and event loop.
    """

    def __init__(self, config: AuditConfig, writer: _FileWriter) -> None:
        self.config = config
        self._writer = writer
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="haechi-audit")
        self._loop = asyncio.get_running_loop()
        self._state = _State()
        self._head = ChainHead(0, "0" * 64)

    @classmethod
    async def open(cls, config: AuditConfig) -> AuditLog:
        """Open (creating if needed) and repair a torn tail, under the lock."""
        log = cls(config, _FileWriter(config))
        try:
            await log._run(log._writer.open)
            await log._run(log._writer.write_batch, [])
        except OSError as exc:
            log._executor.shutdown(wait=True)
            log._writer.discard()
            raise AuditError("open-failed", f"cannot open the audit log: {exc.strerror}") from exc
        except BaseException:
            log._executor.shutdown(wait=True)
            log._writer.discard()
            raise
        return log

    @property
    def head(self) -> ChainHead:
        """The last line this process wrote (other processes may have written since)."""
        return self._head

    async def append(self, kind: str, /, **fields: object) -> ChainHead:
        """Write one event; returns its sequence number and hash once it is on disk."""
        if self._state.closed:
            raise AuditError("closed", "the audit log is closed")
        event = validate(kind, fields)
        entry = _Entry(event, now_ts(), render_fields(event))
        pending = _Pending(entry, self._loop.create_future())
        self._state.pending.append(pending)
        self._schedule()
        return await pending.future

    async def aclose(self) -> None:
        """Write what is pending, sync (unless ``never``) and close. Idempotent."""
        state = self._state
        if state.closed and state.flush is None and not state.pending:
            return
        state.closed = True
        while state.pending or state.flush is not None:
            if state.flush is None:
                self._start_flush()
            if state.flush is not None:
                await asyncio.shield(state.flush)
        for timer in (state.timer, state.sync_timer):
            if timer is not None:
                timer.cancel()
        try:
            await self._run(self._writer.close)
        finally:
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> AuditLog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- batching --

    async def _run(self, fn: Callable[..., _R], *args: object) -> _R:
        return await self._loop.run_in_executor(self._executor, fn, *args)

    def _schedule(self) -> None:
        state = self._state
        if state.flush is not None:
            return  # the flush in flight starts the next batch when it ends
        if len(state.pending) >= self.config.max_batch:
            self._start_flush()
        elif state.timer is None:
            state.timer = self._loop.call_later(self.config.window_ms / 1000, self._start_flush)

    def _start_flush(self) -> None:
        state = self._state
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if state.flush is not None or not state.pending:
            return
        batch = state.pending[: self.config.max_batch]
        del state.pending[: self.config.max_batch]
        state.flush = self._loop.create_task(self._flush(batch))

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            heads = await self._run(self._writer.write_batch, [p.entry for p in batch])
        except Exception as exc:
            error = exc if isinstance(exc, AuditError) else self._wrap(exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
        else:
            for pending, head in zip(batch, heads, strict=True):
                if not pending.future.done():
                    pending.future.set_result(head)
            self._head = heads[-1]
        finally:
            self._state.flush = None
        # Appends that arrived during this write have waited long enough: write them now.
        self._start_flush()
        self._schedule_sync()

    @staticmethod
    def _wrap(exc: Exception) -> AuditError:
        message = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
        error = AuditError("write-failed", f"audit write failed: {message}")
        error.__cause__ = exc
        return error

    def _schedule_sync(self) -> None:
        state = self._state
        if self._writer.dirty and state.sync_timer is None and not state.closed:
            delay = self.config.fsync_interval_ms / 1000
            state.sync_timer = self._loop.call_later(delay, self._deferred_sync)

    def _deferred_sync(self) -> None:
        self._state.sync_timer = None
        if not self._state.closed:
            future = self._loop.run_in_executor(self._executor, self._writer.sync_if_dirty)
            future.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        _log.error("audit log: deferred fsync failed: %s", future.exception())
