"""The listener's bounds, below the level of HTTP exchanges.

The head bound's accounting, read by read, with aiohttp's real parser: the end-to-end tests
(test_connections.py) cannot choose how the kernel splits what a client writes into reads;
these feed a real connection's parser exactly the reads each case needs. Limits: 8 KiB per head
in all, 2 KiB per line, 16 headers. And the open-file limit a worker raises for
``gateway.max_connections``, in a child process with a lowered limit.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from collections.abc import Iterator

import pytest
from aiohttp import web
from haechi.host.config import GatewaySection
from haechi.host.gateway.connections import (
    HeadTooLarge,
    TrailersTooLarge,
    VersionUnsupported,
    _Connection,
)

LIMIT = 8192


def make_connection(loop: asyncio.AbstractEventLoop, limits: GatewaySection) -> _Connection:
    """A public-listener connection as PublicSite makes it, with no socket behind it."""

    async def never(request: web.BaseRequest) -> web.StreamResponse:
        raise AssertionError("no request is handled here")

    async def make() -> _Connection:
        return _Connection(
            web.Server(never),
            loop=loop,
            limits=limits,
            on_refusal=None,  # type: ignore[arg-type]
            admit=lambda: True,
            max_line_size=limits.max_header_bytes,
            max_field_size=limits.max_header_bytes,
            max_headers=limits.max_header_count,
            auto_decompress=False,
        )

    return loop.run_until_complete(make())


@pytest.fixture
def feed() -> Iterator[object]:
    loop = asyncio.new_event_loop()
    limits = GatewaySection(max_head_bytes=LIMIT, max_header_bytes=2048, max_header_count=16)
    connection = make_connection(loop, limits)
    parser = connection._parser

    def feed(*reads: bytes) -> int:
        """Feed each read, then let a handler take each request parsed (as aiohttp does
        between reads); return how many were parsed."""
        parsed = 0
        for read in reads:
            messages = parser.feed_data(read)[0]
            for _ in messages:
                parser.message_consumed()
            parsed += len(messages)
        return parsed

    yield feed
    loop.close()


def request(body: bytes = b"", *extra: bytes) -> bytes:
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: x", *extra]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def unfinished(size: int) -> bytes:
    """The start of a head of about ``size`` bytes that never ends."""
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: x"]
    lines += [b"X-Pad-%d: " % i + b"p" * 1000 for i in range(size // 1012)]
    return b"\r\n".join(lines) + b"\r\n"


def test_an_unfinished_head_over_the_bound_is_refused_across_reads(feed) -> None:
    head = unfinished(10_000)
    with pytest.raises(HeadTooLarge):
        feed(head[:5000], head[5000:])


def test_a_finished_head_over_the_bound_is_refused_in_one_read(feed) -> None:
    pads = [b"X-Pad-%d: " % i + b"p" * 1000 for i in range(10)]
    with pytest.raises(HeadTooLarge):
        feed(request(b"", *pads))


def test_a_request_then_an_unfinished_head_in_one_read_is_refused(feed) -> None:
    """The read that finished one request also carried the next head's start: that start
    counts, it is not forgiven with the request."""
    with pytest.raises(HeadTooLarge):
        feed(request() + unfinished(10_000))


def test_a_body_then_an_unfinished_head_in_one_read_is_refused(feed) -> None:
    body = b"{" + b"x" * 20_000 + b"}"
    whole = request(body)
    with pytest.raises(HeadTooLarge):
        feed(whole[:1000], whole[1000:] + unfinished(10_000))


def test_a_chunked_body_then_an_unfinished_head_in_one_read_is_refused(feed) -> None:
    with pytest.raises(HeadTooLarge):
        feed(chunked(b"y" * 20_000) + unfinished(10_000))


@pytest.mark.parametrize("where", ["same-read", "next-read"])
def test_bodies_do_not_count_toward_the_next_head(feed, where: str) -> None:
    """A keep-alive client: a 30 KB body, then a 6 KB head arriving in two reads."""
    first = request(b"z" * 30_000)
    head = request(b"", *[b"X-Pad-%d: " % i + b"p" * 1000 for i in range(6)])
    if where == "same-read":
        assert feed(first + head[:3000], head[3000:]) == 2
    else:
        assert feed(first[:500], first[500:], head[:3000], head[3000:]) == 2


def test_a_body_containing_blank_lines_does_not_count_toward_the_next_head(feed) -> None:
    body = b"\r\n\r\n".join([b"w" * 7000] * 4)
    head = request(b"", *[b"X-Pad-%d: " % i + b"p" * 1000 for i in range(6)])
    assert feed(request(body) + head[:3000], head[3000:]) == 2


def test_many_small_requests_in_one_connection_are_not_summed(feed) -> None:
    one = request(b"{}", b"X-Pad: " + b"p" * 1000)
    assert feed(*[one] * 60) == 60


def test_pipelined_requests_in_one_read_share_the_bound(feed) -> None:
    """aiohttp queues up to 32 parsed requests before a handler takes them: their heads are
    held together, so together they are bounded (32 heads of 64 KiB were 2 MiB)."""
    one = request(b"{}", b"X-Pad: " + b"p" * 1000)
    assert feed(b"".join([one] * 6)) == 6
    with pytest.raises(HeadTooLarge):
        feed(b"".join([one] * 10))


def test_a_keep_alive_head_after_a_whole_request_in_one_read_is_not_charged_for_it(feed) -> None:
    """A whole request (5 KB head, 10 KB body) in one read, then the next head in two reads:
    nothing of the first request may count toward the second head (an attack sweep found a
    valid client refused 431 this way)."""
    pads = [b"X-Pad-%d: " % i + b"p" * 1000 for i in range(5)]
    first, second = request(b"b" * 10_000, *pads), request(b"", *pads)
    assert feed(first, second[:4000], second[4000:]) == 2


def test_a_head_begun_in_an_earlier_read_does_not_hide_the_next_one(feed) -> None:
    """A head split over two reads, its body, then an unfinished 9 KB head: the first head's
    bytes from the earlier read must not be taken off the second head's count."""
    pads = [b"X-Pad-%d: " % i + b"p" * 1000 for i in range(6)]
    first = request(b"b" * 3000, *pads)
    with pytest.raises(HeadTooLarge):
        feed(first[:6000], first[6000:] + unfinished(9000))


def test_trailers_of_a_chunked_body_are_bounded(feed) -> None:
    """aiohttp holds trailer lines like header lines but bounds only each line and their
    count: 95 trailers of 16 KB per connection took a worker to 3 GiB at 1000 connections."""
    start = chunked(b"{}").removesuffix(b"\r\n") + unfinished(10_000).split(b"\r\n", 2)[2]
    with pytest.raises(TrailersTooLarge):
        feed(start[:4000], start[4000:])


def test_small_chunks_are_not_mistaken_for_trailers(feed) -> None:
    body = b"c" * 50
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [b"%x\r\n" % len(body) + body + b"\r\n"] * 400  # 20 KB in 50-byte chunks
    reads = [head] + [b"".join(chunks[i : i + 20]) for i in range(0, 400, 20)] + [b"0\r\n\r\n"]
    assert feed(*reads) == 1


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9"])
def test_a_version_other_than_1_0_and_1_1_is_refused(feed, version: bytes) -> None:
    with pytest.raises(VersionUnsupported):
        feed(request().replace(b"HTTP/1.1", version, 1))


FILE_LIMIT = """\
import json, logging, resource, sys
from haechi.host.config import GatewaySection
from haechi.host.gateway.connections import ensure_file_limit
records = []
logging.getLogger("haechi.gateway").addHandler(logging.Handler())
logging.getLogger("haechi.gateway").handlers[0].emit = records.append
in_force = ensure_file_limit(GatewaySection(max_connections=int(sys.argv[1])))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
print(json.dumps([in_force, soft, [r.getMessage() for r in records]]))
"""


def _with_file_limit(soft: int, hard: int, max_connections: int) -> list[object]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    out = subprocess.run(
        [sys.executable, "-c", FILE_LIMIT, str(max_connections)],
        preexec_fn=lower,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return list(json.loads(out))


def test_the_open_file_limit_is_raised_to_fit_max_connections() -> None:
    # 1000 connections + 256 in flight upstream + 128 headroom = 1384 wanted; soft 1024 is short.
    assert _with_file_limit(1024, 4096, 1000) == [1384, 1384, []]


def test_a_hard_limit_too_low_for_max_connections_is_reported() -> None:
    in_force, soft, logged = _with_file_limit(512, 1024, 1000)
    assert (in_force, soft) == (1024, 1024)
    assert logged == ["open-file limit below gateway.max_connections"]


def test_trailers_are_bounded_after_aiohttp_paused_a_body_it_never_resumed() -> None:
    """aiohttp pauses the parser for a body of over 16384 chunks and, when the body ends in
    the same read, never resumes it: the trailers check, skipped while paused, stayed off for
    the rest of the connection. Fed through the connection, so aiohttp's own pause path runs."""
    loop = asyncio.new_event_loop()
    try:
        connection = make_connection(loop, GatewaySection())
        head = b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        connection.data_received(head)
        connection.data_received((b"1e\r\n" + b"x" * 30 + b"\r\n") * 16386 + b"0\r\n\r\n")
        connection.data_received(head + b"2\r\nab\r\n0\r\n")
        for i in range(95):
            connection.data_received(b"X-T%d: " % i + b"t" * 16000 + b"\r\n")
        refused = [
            m
            for m, _ in connection._messages
            if isinstance(getattr(m, "exc", None), TrailersTooLarge)
        ]
        assert refused, "95 trailers of 16 KB were held"
    finally:
        loop.close()
