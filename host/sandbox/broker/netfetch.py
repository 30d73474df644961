"""``net:fetch:<host>``: HTTP on a plugin's behalf, with an SSRF guard the plugin cannot bypass.

Rules (DESIGN §3, sandbox-facts §6.11, and the original's verified gaps, peer-plugin-gate §10.16):

* only ``http``/``https`` URLs whose host and port a declared capability names exactly;
* the host resolves DNS, and *every* address the name resolves to must be public: loopback,
  private, link-local (cloud metadata 169.254.169.254), CGNAT 100.64/10, benchmark 198.18/15,
  multicast, reserved, unspecified, broadcast, ULA, deprecated site-local fec0::/10 and Teredo
  are refused, and addresses embedded in IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96,
  64:ff9b:1::/48) and 6to4 (2002::/16) forms are unwrapped and judged as IPv4. Because the
  check is on resolved addresses, every numeric spelling (``2130706433``, ``0x7f.1``,
  ``0177.0.0.1``, ``127.1``) ends up judged as the address it denotes;
* the connection goes to the address that was checked (a pinned resolver), so a second DNS
  answer cannot rebind it; TLS still verifies the certificate for the name;
* redirects are followed by hand, at most ``max_redirects``, each target checked again;
* the whole exchange has one deadline and the body a size cap, enforced while reading;
* an operator allowlist of networks (``allow_networks``) may open specific ranges: tests open
  127.0.0.1/32 to reach their local server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..errors import SandboxError

__all__ = ["FetchGuard", "FetchResult", "forbidden_reason"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"),)
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_COMPAT = ipaddress.ip_network("::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Not globally reachable per the IANA registries, though some Python versions call them global.
_SPECIAL_V4 = tuple(
    ipaddress.ip_network(n) for n in ("0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4")
)
_RESPONSE_HEADERS = ("content-type", "content-length", "cache-control", "etag", "last-modified")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _SIXTOFOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64) or (ip in _COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be contacted, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = forbidden_reason(inner)
            return f"embeds {inner}, {reason}" if reason else None
        if ip.is_site_local:
            return "a deprecated site-local address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "the unspecified address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if isinstance(ip, ipaddress.IPv4Address) and any(ip in net for net in _SPECIAL_V4):
        return "a special-purpose address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class FetchResult:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class _PinnedResolver(AbstractResolver):
    """Answers aiohttp's lookup with the addresses the guard already checked, and nothing else."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host, self.addresses = host, addresses

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"unexpected lookup of {host!r}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


def _refuse(message: str) -> SandboxError:
    return SandboxError("fetch-refused", message)


@dataclass
class FetchGuard:
    """Checks and performs fetches for one plugin's declared ``net:fetch:<host>`` grants."""

    declared: Iterable[str]
    allow_networks: Iterable[str] = ()
    max_bytes: int = 1024 * 1024
    timeout: float = 5.0
    max_redirects: int = 3
    resolver: Resolver = field(default=_system_resolver)

    def __post_init__(self) -> None:
        self._grants = {_grant(name) for name in self.declared}
        self._networks = [ipaddress.ip_network(n, strict=False) for n in self.allow_networks]

    def _check_url(self, url: str) -> tuple[str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # a port out of range, a bad IPv6 literal...
            raise _refuse(f"not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise _refuse(f"only http and https URLs may be fetched, not {parts.scheme!r}")
        if parts.username or parts.password:
            raise _refuse("URLs with credentials are refused")
        host = (parts.hostname or "").lower()
        port = port or (443 if parts.scheme == "https" else 80)
        # A grant without a port means the scheme's standard ports only.
        if (host, port) not in self._grants and not (
            (host, None) in self._grants and port in (80, 443)
        ):
            raise SandboxError(
                "capability-not-declared", f"net:fetch:{host} (port {port}) is not declared"
            )
        return host, port

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise _refuse(f"{host} does not resolve: {exc}") from None
        if not addresses:
            raise _refuse(f"{host} does not resolve")
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            if any(ip in net for net in self._networks):
                continue
            reason = forbidden_reason(ip)
            if reason:
                raise _refuse(f"{host} resolves to {ip}, {reason}")
        return addresses

    async def fetch(
        self, url: str, *, method: str = "GET", body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> FetchResult:  # fmt: skip
        if method not in ("GET", "POST"):
            raise _refuse(f"method {method!r} is not allowed (GET or POST)")
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(url, method, body, dict(headers or {}))
        except TimeoutError:
            raise SandboxError(
                "fetch-timeout", f"fetching {url} took over {self.timeout:g} s"
            ) from None

    async def _follow(
        self, url: str, method: str, body: bytes | None, headers: dict[str, str]
    ) -> FetchResult:
        headers = _request_headers(headers)
        for _ in range(self.max_redirects + 1):
            host, port = self._check_url(url)
            addresses = await self._checked_addresses(host, port)
            status, response_headers, data, location = await self._once(
                url, host, addresses, method, body, headers
            )
            if location is None:
                return FetchResult(status, response_headers, data, url)
            target = urljoin(url, location)
            if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                raise _refuse("a redirect from https to plain http is refused")
            if _origin(target) != _origin(url):
                # Credentials were meant for the first origin only.
                headers = {k: v for k, v in headers.items() if k not in _CREDENTIAL_HEADERS}
            url, method, body = target, "GET", None
        raise _refuse(f"more than {self.max_redirects} redirects")

    async def _once(
        self, url: str, host: str, addresses: list[str], method: str, body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes, str | None]:  # fmt: skip
        connector = aiohttp.TCPConnector(
            resolver=_PinnedResolver(host, addresses), use_dns_cache=False
        )
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            try:
                async with session.request(
                    method, url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if 300 <= response.status < 400 and "location" in response.headers:
                        return response.status, {}, b"", response.headers["location"]
                    data = await _read_capped(response, self.max_bytes)
                    kept = {
                        k: response.headers[k] for k in _RESPONSE_HEADERS if k in response.headers
                    }
                    return response.status, kept, data, None
            except (aiohttp.ClientError, ValueError) as exc:
                raise _refuse(f"fetching {url} failed: {exc}") from None


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise SandboxError("fetch-too-large", f"the response is {declared} bytes, over {limit}")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise SandboxError("fetch-too-large", f"the response exceeded {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# Headers that frame or route the request are the host's to set: a plugin choosing Host,
# Content-Length or Transfer-Encoding could reach another virtual host or smuggle a request.
_FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "trailer", "upgrade",
     "keep-alive", "expect", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"}
)  # fmt: skip
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _request_headers(headers: dict[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for name, value in headers.items():
        key = name.strip().lower()
        if key in _FORBIDDEN_HEADERS or key.startswith("proxy-"):
            raise _refuse(f"the header {name[:40]!r} is set by the host, not by plugins")
        if not key or any(c in name + value for c in "\r\n\x00") or len(name + value) > 8192:
            raise _refuse(f"the header {name[:40]!r} is malformed")
        clean[key] = value
    if len(clean) > 32:
        raise _refuse("at most 32 request headers")
    return clean


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _grant(capability: str) -> tuple[str, int | None]:
    host = capability.removeprefix("net:fetch:")
    name, _, port = host.partition(":")
    return name, int(port) if port else None
