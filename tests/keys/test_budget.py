"""The nonce budget: windows persisted before use, atomic across processes, fail closed."""

from __future__ import annotations

import doctest
import json
import os
import signal
from pathlib import Path

import pytest
from haechi.host import keys as keys_package
from haechi.host.keys import KeyStore, KeyStoreError, PersistentKeyRing, budget, store
from haechi.host.keys.budget import Settlement, read_budget, reserve

from . import run_together, start


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    KeyStore.init(tmp_path / "keys", "vault", budget=10)
    return tmp_path / "keys"


def test_docstring_examples_run() -> None:
    for module in (budget, store, keys_package):
        assert doctest.testmod(module).failed == 0


def test_a_reservation_is_on_disk_before_it_is_returned(keydir: Path) -> None:
    window = reserve(keydir, "vault", 1, 4)
    assert (window.start, window.end) == (0, 4)
    on_disk = json.loads((keydir / "vault.budget.json").read_text())
    assert on_disk["versions"]["1"] == {"reserved": 4, "used": 0}


def test_windows_follow_each_other_and_stop_at_the_budget(keydir: Path) -> None:
    windows = [reserve(keydir, "vault", 1, 4) for _ in range(3)]
    assert [(w.start, w.end) for w in windows] == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(KeyStoreError) as refused:
        reserve(keydir, "vault", 1, 4)
    assert refused.value.reason == "key-exhausted"
    assert "haechi keys rotate vault" in refused.value.message
    assert read_budget(keydir, "vault").get(1).reserved == 10  # type: ignore[union-attr]


def test_settled_use_is_recorded_but_never_above_the_reservation(keydir: Path) -> None:
    reserve(keydir, "vault", 1, 4)
    reserve(keydir, "vault", 1, 4, Settlement(1, 3))
    budget.settle(keydir, "vault", Settlement(1, 99))
    assert read_budget(keydir, "vault").get(1) == budget.VersionBudget(1, 8, 8)


def test_a_missing_budget_file_refuses_instead_of_counting_from_zero(keydir: Path) -> None:
    reserve(keydir, "vault", 1, 4)
    (keydir / "vault.budget.json").unlink()
    with pytest.raises(KeyStoreError) as refused:
        reserve(keydir, "vault", 1, 4)
    assert refused.value.reason == "key-store-invalid"
    assert "haechi keys rotate vault" in refused.value.message
    # Rotation is the way out: a new version whose count (0) is known.
    assert KeyStore(keydir).rotate("vault") == 2
    assert reserve(keydir, "vault", 2, 4).start == 0
    with pytest.raises(KeyStoreError, match="no count for version 1"):
        reserve(keydir, "vault", 1, 4)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"format": "haechi-nonce-budget/1", "name": "vault", "budget": 10, '
        '"versions": {"1": {"reserved": 11, "used": 0}}}',
        '{"format": "haechi-nonce-budget/1", "name": "other", "budget": 10, "versions": {}}',
        '{"format": "haechi-nonce-budget/1", "name": "vault", "budget": 8589934592, '
        '"versions": {}}',
        '{"format": "haechi-nonce-budget/1", "name": "vault", "budget": 10, '
        '"versions": {"1": {"reserved": -1, "used": 0}}}',
    ],
)
def test_a_malformed_budget_file_is_refused(keydir: Path, content: str) -> None:
    path = keydir / "vault.budget.json"
    path.write_text(content)
    with pytest.raises(KeyStoreError) as refused:
        reserve(keydir, "vault", 1, 4)
    assert refused.value.reason == "key-store-invalid"
    assert str(path) in refused.value.message


RESERVER = """\
from pathlib import Path
from haechi.host.keys.budget import reserve
directory, count, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
windows = [reserve(directory, "vault", 1, size) for _ in range(count)]
print(json.dumps([[w.start, w.end] for w in windows]))
"""


def test_processes_reserving_at_once_never_overlap(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    KeyStore.init(directory, "vault")
    processes, count, size = 6, 40, 7
    outputs = run_together(RESERVER, [[str(directory), str(count), str(size)]] * processes)
    windows = sorted(tuple(w) for out in outputs for w in json.loads(out))
    assert len(windows) == processes * count
    # Sorted windows tile 0..total exactly: no overlap, no gap, every seal counted once.
    position = 0
    for start_, end in windows:
        assert (start_, end) == (position, position + size)
        position = end
    assert position == processes * count * size
    assert read_budget(directory, "vault").get(1).reserved == position  # type: ignore[union-attr]


SEALER = """\
import sys
from pathlib import Path
from haechi.host.keys import PersistentKeyRing
ring = PersistentKeyRing(Path(sys.argv[1]), window=int(sys.argv[2]))
while True:
    ring.seal("vault", b"x", b"")
    print(ring.uses("vault"), flush=True)
"""


def test_after_kill_9_counting_resumes_above_every_seal_made(tmp_path: Path) -> None:
    directory, window = tmp_path / "keys", 16
    KeyStore.init(directory, "vault")
    child = start(SEALER, [str(directory), str(window)])
    assert child.stdout is not None
    sealed = 0
    while sealed < 500:
        sealed = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate()
    sealed = max([sealed, *(int(line) for line in rest.splitlines() if line.strip())])
    persisted = read_budget(directory, "vault").get(1)
    assert persisted is not None
    # Every seal the child made (and reported) lies below the persisted high-water mark;
    # `used` (settled at each refill, never for the last window) only under-reports ...
    assert persisted.used <= sealed <= persisted.reserved
    # ... and a restarted ring starts a new window exactly at that mark, never below it.
    with PersistentKeyRing(directory, window=window) as ring:
        ring.seal("vault", b"y", b"")
    after = read_budget(directory, "vault").get(1)
    assert after is not None and after.reserved == persisted.reserved + window
