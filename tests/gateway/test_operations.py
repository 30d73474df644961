"""The gateway as operators run it (``haechi gateway`` in its own process): kill -9 under load,
live trust application under load, haechi init's no-overwrite rule, several workers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from haechi.host.audit import verify
from haechi.host.gateway.home import InitError, init_home
from haechi.host.keys.budget import read_budget
from haechi.host.keys.store import KeyStore
from haechi.host.vault import SqliteVault

from .processes import make_home, start_gateway, stop, stub_in_thread

POLICY = {"mode": "enforce", "actions": {"email": "tokenize", "iban": "encrypt"}}
TOKEN_PATTERN = re.compile(r"tok_email_[0-9a-f]+")


def chat(text: str) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


async def hammer(
    url: str, token: str, total: int, on_response=None, concurrency: int = 12
) -> dict[str, int]:
    """Send ``total`` requests with distinct ids; return id -> status (0: no answer)."""
    outcomes: dict[str, int] = {}
    queue = list(range(total))

    async def worker(client: aiohttp.ClientSession) -> None:
        while queue:
            number = queue.pop()
            request_id = secrets.token_hex(8)
            body = chat(f"mail user{number}@example.com about invoice {number}")
            headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
            try:
                async with client.post(
                    f"{url}/v1/chat/completions", json=body, headers=headers
                ) as response:
                    await response.read()
                    outcomes[request_id] = response.status
            except (TimeoutError, aiohttp.ClientError):
                outcomes[request_id] = 0
            if on_response is not None:
                on_response(outcomes)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return outcomes


def audited_ids(path: Path) -> dict[str, int]:
    ids = {}
    for file in sorted(path.parent.glob("*.jsonl")):
        for line in file.read_text().splitlines():
            event = json.loads(line)
            if event["kind"] == "request":
                ids[event["request_id"]] = event["status"]
    return ids


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    with stub_in_thread() as stub:
        home = make_home(tmp_path / "gw", stub.url, policy=POLICY)
        gateway = start_gateway(home.config)
        killed = []

        def kill_midway(outcomes: dict[str, int]) -> None:
            if len(outcomes) >= 80 and not killed:
                killed.append(True)
                os.kill(gateway.process.pid, signal.SIGKILL)

        try:
            outcomes = asyncio.run(hammer(gateway.url, home.token, 400, kill_midway))
        finally:
            gateway.process.wait(10)
        acknowledged = {rid for rid, status in outcomes.items() if status == 200}
        assert killed and len(acknowledged) >= 80
        assert 0 in outcomes.values()  # the kill really cut requests off

        # The chain verifies, and every 2xx has its line.
        audit = home.directory / "audit" / "audit.jsonl"
        report = verify(audit)
        assert report.ok, report.message
        assert acknowledged <= set(audited_ids(audit))

        # Every token the model API received is in the vault, which is intact.
        tokens = {t for r in stub.stub.received for t in TOKEN_PATTERN.findall(json.dumps(r.body))}
        vault = SqliteVault(home.directory / "vault.db")
        try:
            assert vault.integrity_check() == "ok"
            assert tokens and all(vault.get(token) is not None for token in tokens)
        finally:
            vault.close()

        # The nonce high-water mark covers every seal made, and a restart starts above it.
        keys = home.directory / "keys"
        current = KeyStore(keys).status("vault").current
        mark = read_budget(keys, "vault").get(current)
        assert mark is not None and mark.reserved >= len(tokens)
        restarted = start_gateway(home.config)
        try:
            after = asyncio.run(hammer(restarted.url, home.token, 3))
            assert set(after.values()) == {200}
        finally:
            stop(restarted)
        again = read_budget(keys, "vault").get(current)
        assert again is not None and again.reserved > mark.reserved
        assert verify(audit).ok


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_trust_apply_revokes_a_plugin_under_load(tmp_path: Path) -> None:
    """A revoked filter stops serving within 5 s of trust apply; requests that fail are only
    those the revocation requires (the gateway fails closed without that filter)."""
    import tomllib

    import tomli_w

    with stub_in_thread() as stub:
        home = make_home(tmp_path / "gw", stub.url, admin=f"127.0.0.1:{free_port()}")
        gateway = start_gateway(home.config)
        try:
            trust = home.directory / "trust.toml"
            state = tomllib.loads(trust.read_text())
            version = tomllib.loads(
                (home.directory / "plugins" / "secret-filter" / "plugin.toml").read_text()
            )["version"]
            state["version"] = 2
            state["revoked"] = {"plugins": [f"secret-filter@{version}"]}
            candidate = tmp_path / "trust-2.toml"
            candidate.write_text(tomli_w.dumps(state))

            async def scenario() -> tuple[dict[str, int], subprocess.CompletedProcess[str]]:
                load = asyncio.create_task(hammer(gateway.url, home.token, 300, concurrency=6))
                await asyncio.sleep(0.3)
                applied = await asyncio.to_thread(
                    subprocess.run,
                    [
                        sys.executable,
                        "-m",
                        "haechi.host.cli",
                        "trust",
                        "apply",
                        str(candidate),
                        "--config",
                        str(home.config),
                        "--timeout",
                        "5",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                return await load, applied

            outcomes, applied = asyncio.run(scenario())
            assert applied.returncode == 0, applied.stderr
            assert "version 2" in applied.stdout
            statuses = set(outcomes.values())
            assert statuses <= {200, 503}, statuses  # never a 5xx other than fail-closed
            assert 0 not in statuses
            after = asyncio.run(hammer(gateway.url, home.token, 2))
            assert set(after.values()) == {503}  # the revoked filter is gone: fail closed
        finally:
            stop(gateway)
        events = [
            json.loads(line)
            for line in (home.directory / "audit" / "audit.jsonl").read_text().splitlines()
        ]
        revoked = [e for e in events if e["kind"] == "plugin" and e["event"] == "revoked"]
        assert [e["plugin"] for e in revoked] == ["secret-filter"]
        assert (home.directory / "trust.toml").read_text() == candidate.read_text()
        assert list(home.directory.glob("trust.toml.bak-*"))


def test_trust_apply_refuses_an_older_state_and_keeps_the_file(tmp_path: Path) -> None:
    with stub_in_thread() as stub:
        home = make_home(tmp_path / "gw", stub.url, admin=f"127.0.0.1:{free_port()}")
        trust = home.directory / "trust.toml"
        before = trust.read_text()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "haechi.host.cli",
                "trust",
                "apply",
                str(trust),
                "--config",
                str(home.config),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert "not newer" in result.stderr
        assert trust.read_text() == before


def test_init_never_overwrites_and_force_keeps_backups(tmp_path: Path) -> None:
    first = init_home(tmp_path, listen="127.0.0.1:0")
    config_before = first.config.read_text()
    with pytest.raises(InitError, match="already exists"):
        init_home(tmp_path)
    assert first.config.read_text() == config_before
    second = init_home(tmp_path, force=True)
    assert second.token != first.token
    names = {p.name.split(".bak-")[0] for p in tmp_path.iterdir() if ".bak-" in p.name}
    assert names == {"haechi.toml", "trust.toml", "secrets.toml", "keys", "plugins"}
    backup = next(p for p in tmp_path.iterdir() if p.name.startswith("haechi.toml.bak-"))
    assert backup.read_text() == config_before
    for secret in (tmp_path / "secrets.toml", tmp_path / "keys" / "operator.key"):
        assert secret.stat().st_mode & 0o077 == 0, secret
    assert first.token not in (tmp_path / "secrets.toml").read_text()


def test_init_cli_prints_the_token_once_and_the_gateway_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "haechi.host.cli",
            "init",
            "--dir",
            str(tmp_path),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    token = re.search(r"^  (hx_\S+)$", result.stdout, re.MULTILINE)
    assert token is not None
    again = subprocess.run(
        [sys.executable, "-m", "haechi.host.cli", "init", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "never overwrites" in again.stderr


def test_two_workers_share_the_port_and_one_audit_chain(tmp_path: Path) -> None:
    with stub_in_thread() as stub:
        home = make_home(tmp_path / "gw", stub.url, policy=POLICY)
        port = free_port()
        config = home.config.read_text().replace(
            'listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"', 1
        )
        home.config.write_text(config)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "haechi.host.cli",
                "gateway",
                "--config",
                str(home.config),
                "--workers",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            pids = {json.loads(process.stdout.readline())["pid"] for _ in range(2)}
            outcomes = asyncio.run(hammer(f"http://127.0.0.1:{port}", home.token, 120))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        assert len(pids) == 2
        assert set(outcomes.values()) == {200}
        audit = home.directory / "audit" / "audit.jsonl"
        assert verify(audit).ok
        assert set(outcomes) <= set(audited_ids(audit))
