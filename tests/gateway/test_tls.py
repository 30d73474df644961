"""TLS from config: a non-loopback-capable listener serves HTTPS with the configured pair."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

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
