"""TLS from config: a non-loopback-capable listener serves HTTPS with the configured pair."""

from __future__ import annotations

import asyncio
import datetime
import re
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from haechi.host.config import load_config
from haechi.host.gateway.server import start_runtime

from .processes import make_home, stub_in_thread


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def tls_home(tmp_path: Path, upstream: str, cert: Path, key: Path, extra: str = "") -> Any:
    """A gateway home serving TLS with ``cert``/``key``, ``extra`` added to [gateway]."""
    home = make_home(tmp_path / "gw", upstream)
    settings = f'[gateway]\ntls_cert = "{cert}"\ntls_key = "{key}"\n{extra}'
    home.config.write_text(home.config.read_text().replace("[gateway]\n", settings, 1))
    return home, load_config(home.config, environ={})


def test_the_gateway_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with stub_in_thread() as stub:
        home = make_home(tmp_path / "gw", stub.url)
        text = home.config.read_text().replace(
            "[gateway]\n", f'[gateway]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1
        )
        home.config.write_text(text)
        config = load_config(home.config, environ={})

        async def scenario() -> tuple[int, str]:
            runtime = await start_runtime(config)
            port, _ = await runtime.listen()
            try:
                context = ssl.create_default_context(cafile=str(cert))
                body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                headers = {"Authorization": f"Bearer {home.token}"}
                async with aiohttp.ClientSession() as client:
                    url = f"https://localhost:{port}/v1/chat/completions"
                    async with client.post(url, json=body, headers=headers, ssl=context) as r:
                        status = r.status
                    try:
                        plain = f"http://127.0.0.1:{port}/v1/chat/completions"
                        async with client.post(plain, json=body, headers=headers) as r:
                            refused = f"plain HTTP answered {r.status}"
                    except aiohttp.ClientError:
                        refused = "plain HTTP refused"
                return status, refused
            finally:
                await runtime.close()

        status, refused = asyncio.run(scenario())
    assert status == 200
    assert refused == "plain HTTP refused"


def test_connections_still_in_their_handshake_count_toward_the_cap(tmp_path: Path) -> None:
    """asyncio's TLS server connects a protocol only once its handshake is done, so
    connections that never finish one were outside max_connections: an attack sweep held 4000
    of them (1.3 GiB, a 256 KiB TLS buffer each) until the handshake timeout."""
    cert, key = self_signed(tmp_path)
    with stub_in_thread() as stub:
        home, config = tls_home(tmp_path, stub.url, cert, key, "max_connections = 3\n")

        async def scenario() -> tuple[tuple[str, str], int, int]:
            runtime = await start_runtime(config)
            port, _ = await runtime.listen()
            try:
                stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
                counts = await _counts_once_seen(runtime, 10)
                context = ssl.create_default_context(cafile=str(cert))
                url = f"https://localhost:{port}/v1/chat/completions"
                body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                headers = {"Authorization": f"Bearer {home.token}"}
                async with aiohttp.ClientSession() as client:
                    try:
                        async with client.post(url, json=body, headers=headers, ssl=context) as r:
                            while_full = r.status
                    except aiohttp.ClientError:
                        while_full = 0  # turned away before the handshake
                    for _, writer in stalled:
                        writer.close()
                    await _counts_once_seen(runtime, 0, open_only=True)
                    async with client.post(url, json=body, headers=headers, ssl=context) as r:
                        after = r.status
                return counts, while_full, after
            finally:
                await runtime.close()

        counts, while_full, after = asyncio.run(scenario())
    assert counts == ("3.0", "7.0")
    assert while_full == 0
    assert after == 200


async def _counts_once_seen(
    runtime: Any, total: int, *, open_only: bool = False
) -> tuple[str, str]:
    """(open, refused) from the worker's metrics, once they add up to ``total`` (or, with
    ``open_only``, once open is ``total``)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        text = runtime.metrics.render().decode()
        found = [
            re.search(rf"(?m)^haechi_connections_{name} (\S+)$", text)
            for name in ("open", "refused_total")
        ]
        assert all(found), text
        opened, refused = found[0][1], found[1][1]  # type: ignore[index]
        seen = float(opened) if open_only else float(opened) + float(refused)
        if seen == total:
            return opened, refused
        assert asyncio.get_running_loop().time() < deadline, (opened, refused)
        await asyncio.sleep(0.05)


def test_a_handshake_in_progress_is_ended_when_the_gateway_stops(tmp_path: Path) -> None:
    """aiohttp's shutdown closes the connections it knows; a handshake it never saw went on
    for header_timeout_s and was then served by the stopped application (a 500, unaudited)."""
    cert, key = self_signed(tmp_path)
    with stub_in_thread() as stub:
        _, config = tls_home(tmp_path, stub.url, cert, key)

        async def scenario() -> bytes:
            runtime = await start_runtime(config)
            port, _ = await runtime.listen()
            closed = False
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                await _counts_once_seen(runtime, 1, open_only=True)
                # Within 20 s: the handshake's own timeout (header_timeout_s) is 65 s.
                await asyncio.wait_for(runtime.close(), 20)
                closed = True
                try:  # the gateway ends it: EOF or a reset, not a 65 s wait
                    return await asyncio.wait_for(reader.read(), 20)
                except ConnectionResetError:
                    return b""
                finally:
                    writer.close()
            finally:
                if not closed:
                    await runtime.close()

        assert asyncio.run(scenario()) == b""
