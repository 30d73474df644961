"""The SQLite token vault: strict tokens, sealed values only, threads, processes, kill -9."""

from __future__ import annotations

import dataclasses
import doctest
import json
import os
import signal
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from haechi.host import vault as vault_package
from haechi.host.vault import SqliteVault, VaultError, parse_token
from haechi.host.vault import sqlite as vault_module
from haechi.sdk import Sealed

from ..keys import run_together, start

HEX = "0123456789abcdef" * 2


def sealed(kind: str = "email", tenant: str = "acme", expires: int = 0) -> bytes:
    return Sealed("vault", kind, os.urandom(40), tenant, expires).to_bytes()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[SqliteVault]:
    with SqliteVault(tmp_path / "vault.db") as v:
        yield v


def test_docstring_examples_run() -> None:
    for module in (vault_package, vault_module):
        assert doctest.testmod(module).failed == 0


def test_put_and_get(vault: SqliteVault) -> None:
    value = sealed()
    token = vault.put("email", value, "acme")
    assert parse_token(token) == ("email", token[-32:])
    entry = vault.get(token)
    assert entry is not None
    assert (entry.token, entry.type, entry.tenant, entry.sealed, entry.expires) == (
        token,
        "email",
        "acme",
        value,
        None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.tenant = "other"  # type: ignore[misc]
    assert vault.get("tok_email_" + HEX) is None
    assert vault.count() == 1


def test_equal_values_get_distinct_tokens(vault: SqliteVault) -> None:
    value = sealed()
    tokens = {vault.put("email", value, "acme") for _ in range(5)}
    assert len(tokens) == 5


@pytest.mark.parametrize(
    "token",
    [
        "tok_email_" + HEX[:31],
        "tok_email_" + HEX + "0",
        "tok_email_" + HEX.upper(),
        "tok_email_" + HEX + "\n",
        "tok_EMAIL_" + HEX,
        "tok__" + HEX,
        "tok_" + "a" * 33 + "_" + HEX,
        "tok_e-mail_" + HEX,
        "tok_x_' OR '1'='1",
        "TOK_email_" + HEX,
        "",
        b"tok_email_" + HEX.encode(),
        None,
    ],
)
def test_malformed_tokens_are_refused_before_any_query(tmp_path: Path, token: object) -> None:
    vault = SqliteVault(tmp_path / "vault.db")
    vault.close()  # any database access would now fail with vault-closed
    for operation in (vault.get, vault.delete):
        with pytest.raises(VaultError) as refused:
            operation(token)  # type: ignore[arg-type]
        assert refused.value.reason == "token-malformed"


def test_types_with_underscores_parse(vault: SqliteVault) -> None:
    token = vault.put("us_ssn", sealed("us_ssn"), "acme")
    assert parse_token(token)[0] == "us_ssn"
    assert vault.get(token) is not None


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("email", b"bob@example.com", "acme"), "vault-not-sealed"),
        (("email", "bob@example.com", "acme"), "vault-not-sealed"),
        (("phone", sealed("email"), "acme"), "vault-mismatch"),
        (("email", sealed(tenant="globex"), "acme"), "vault-mismatch"),
        (("email", sealed(expires=2_000_000), "acme", 3_000_000), "vault-mismatch"),
        (("email", sealed(expires=2_000_000), "acme"), "vault-mismatch"),
        (("Email", sealed("Email"), "acme"), "vault-field-invalid"),
        (("email", sealed(), "acme", 0), "vault-field-invalid"),
        (("email", sealed(), "acme", True), "vault-field-invalid"),
        (("email", sealed(tenant="t" * 129), "t" * 129), "vault-field-invalid"),
    ],
)
def test_put_stores_only_a_consistent_sealed_value(
    vault: SqliteVault, args: tuple[object, ...], reason: str
) -> None:
    with pytest.raises(VaultError) as refused:
        vault.put(*args)  # type: ignore[arg-type]
    assert refused.value.reason == reason
    assert vault.count() == 0


def test_expiry_hides_then_purge_deletes(tmp_path: Path) -> None:
    clock = Clock()
    with SqliteVault(tmp_path / "vault.db", clock=clock) as vault:
        soon = vault.put("email", sealed(expires=1_000_100), "acme", 1_000_100)
        never = vault.put("email", sealed(), "acme")
        assert vault.get(soon) is not None
        clock.now = 1_000_100
        assert vault.get(soon) is None and vault.get(never) is not None
        assert vault.count() == 2
        assert vault.purge_expired() == 1
        assert vault.count() == 1 and vault.purge_expired() == 0


def test_delete(vault: SqliteVault) -> None:
    token = vault.put("email", sealed(), "acme")
    assert vault.delete(token) is True
    assert vault.delete(token) is False
    assert vault.get(token) is None


def test_the_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "data" / "vault.db"
    with SqliteVault(path, synchronous="NORMAL") as vault:
        vault.put("email", sealed(), "acme")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        other = sqlite3.connect(path)
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("PRAGMA user_version").fetchone() == (1,)
        other.close()
    with pytest.raises(ValueError, match="synchronous"):
        SqliteVault(path, synchronous="OFF")  # type: ignore[arg-type]


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    SqliteVault(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(VaultError) as refused:
        SqliteVault(path)
    assert refused.value.reason == "vault-invalid" and "schema version 7" in refused.value.message


def test_threads_share_one_vault(vault: SqliteVault) -> None:
    tokens: list[str] = []

    def work(tenant: str) -> None:
        mine = [vault.put("email", sealed(tenant=tenant), tenant) for _ in range(50)]
        assert all(vault.get(t).tenant == tenant for t in mine)  # type: ignore[union-attr]
        tokens.extend(mine)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 400 and vault.count() == 400


WRITER = """\
import os
from pathlib import Path
from haechi.host.vault import SqliteVault
from haechi.sdk import Sealed
tenant = sys.argv[2]
with SqliteVault(Path(sys.argv[1])) as vault:
    tokens = [
        vault.put("email", Sealed("vault", "email", os.urandom(40), tenant).to_bytes(), tenant)
        for _ in range(100)
    ]
print(json.dumps(tokens))
"""


def test_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    outputs = run_together(WRITER, [[str(path), f"tenant{i}"] for i in range(4)])
    with SqliteVault(path) as vault:
        assert vault.count() == 400
        for i, out in enumerate(outputs):
            tokens = json.loads(out)
            assert len(set(tokens)) == 100
            assert all(vault.get(t).tenant == f"tenant{i}" for t in tokens)  # type: ignore[union-attr]


OPENER = """\
import sys
from pathlib import Path
from haechi.host.vault import SqliteVault, VaultError
for line in sys.stdin:
    try:
        SqliteVault(Path(line.strip())).close()
        print("ok", flush=True)
    except VaultError as exc:
        print(exc, flush=True)
"""


def test_processes_opening_a_fresh_vault_at_once_all_start(tmp_path: Path) -> None:
    # The gateway's workers open the vault together on first start. SQLite refuses one of
    # several processes switching a fresh file to WAL at once without waiting (a deadlock it
    # avoids), so a vault that gave up on that refusal failed a start now and then: 1 round
    # in 6 here before the fix. Lockstep rounds in long-lived children make many collisions
    # cheap.
    children = [start(OPENER, []) for _ in range(6)]
    try:
        for turn in range(30):
            path = tmp_path / f"vault{turn}.db"
            for child in children:
                assert child.stdin is not None
                child.stdin.write(f"{path}\n")
                child.stdin.flush()
            answers = [child.stdout.readline().strip() for child in children]  # type: ignore[union-attr]
            assert answers == ["ok"] * 6, f"round {turn}: {answers}"
            with SqliteVault(path) as vault:
                assert vault.count() == 0 and vault.integrity_check() == "ok"
    finally:
        for child in children:
            child.kill()
            child.wait()


STREAMER = """\
import os, sys, threading
from pathlib import Path
from haechi.host.vault import SqliteVault
from haechi.sdk import Sealed
vault = SqliteVault(Path(sys.argv[1]))
lock = threading.Lock()
def work():
    while True:
        value = Sealed("vault", "email", os.urandom(64), "acme").to_bytes()
        token = vault.put("email", value, "acme")
        with lock:  # one whole line per write: the parent never reads half a token
            sys.stdout.write(token + "\\n")
            sys.stdout.flush()
for _ in range(3):
    threading.Thread(target=work).start()
"""


def test_kill_9_mid_stream_loses_no_reported_token(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    SqliteVault(path).close()  # the schema exists before the writer starts
    writer = start(STREAMER, [str(path)])
    assert writer.stdout is not None
    reported = [writer.stdout.readline().strip() for _ in range(300)]
    os.kill(writer.pid, signal.SIGKILL)
    rest, _ = writer.communicate()
    reported += [line for line in rest.split("\n")[:-1] if line]  # drop an unfinished line
    assert writer.returncode == -signal.SIGKILL
    with SqliteVault(path) as vault:
        missing = [t for t in reported if vault.get(t) is None]
        assert missing == []
        assert vault.count() >= len(reported)
        assert vault.integrity_check() == "ok"
    with sqlite3.connect(path) as fresh:
        assert fresh.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
