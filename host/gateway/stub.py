"""An embedded stand-in for a model API, on loopback: what ``haechi demo`` and the tests put
behind the gateway so that nothing leaves the machine.

It answers the three API shapes the gateway adapts (OpenAI chat completions and responses,
Anthropic messages), echoing the text it received so a caller can see exactly what reached the
"model" after the gateway's actions, and keeps every request it got (``received``) for
tests. ``stream: true`` answers as server-sent events, a chunk per word; ``X-Stub-Delay`` and
``X-Stub-Status`` request headers make it slow or fail on purpose (for 504 and 502 paths), and
``X-Stub-Set-Cookie`` makes it set a cookie, as real model APIs behind a CDN do.

Example::

    stub = StubUpstream()
    url = await stub.start()          # http://127.0.0.1:<port>
    ...
    await stub.close()
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["ReceivedRequest", "StubUpstream"]


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class StubUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[ReceivedRequest] = field(default_factory=list)

    async def start(self) -> str:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = await request.json()
        self.received.append(ReceivedRequest(request.path, dict(request.headers), body))
        delay = float(request.headers.get("X-Stub-Delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        status = int(request.headers.get("X-Stub-Status", "200"))
        if status != 200:
            return body, web.json_response({"error": {"message": "stub failure"}}, status=status)
        return body, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._receive(request)
        if failure:
            return failure
        text = _echo([m.get("content") for m in body.get("messages", [])])
        if body.get("stream"):
            return await _stream(
                request, text, lambda word: {"choices": [{"delta": {"content": word}}]}
            )
        return _answer(
            request,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._receive(request)
        if failure:
            return failure
        items = body.get("input")
        text = _echo(items if isinstance(items, list) else [items])
        if body.get("stream"):
            return await _stream(
                request, text, lambda word: {"type": "response.output_text.delta", "delta": word}
            )
        return _answer(
            request,
            {
                "id": "resp-stub",
                "object": "response",
                "model": body.get("model"),
                "output": [
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text}],
                    }
                ],
            },
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._receive(request)
        if failure:
            return failure
        text = _echo([m.get("content") for m in body.get("messages", [])])
        if body.get("stream"):
            return await _stream(
                request,
                text,
                lambda word: {
                    "type": "content_block_delta",
                    "delta": {"type": "text_delta", "text": word},
                },
            )
        return _answer(
            request,
            {
                "id": "msg-stub",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": [{"type": "text", "text": text}],
            },
        )


def _answer(request: web.Request, payload: dict[str, Any]) -> web.Response:
    response = web.json_response(payload)
    cookie = request.headers.get("X-Stub-Set-Cookie")
    if cookie:
        response.headers["Set-Cookie"] = cookie
    return response


def _echo(contents: list[Any]) -> str:
    """The texts the stub was sent, joined: what the model would have seen."""
    texts: list[str] = []
    for content in contents:
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    value = part.get("text") or part.get("content")
                    if isinstance(value, str):
                        texts.append(value)
                elif isinstance(part, str):
                    texts.append(part)
        elif isinstance(content, dict):
            value = content.get("content") or content.get("text")
            if isinstance(value, str):
                texts.append(value)
    return "echo: " + " | ".join(texts)


async def _stream(request: web.Request, text: str, event: Any) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for word in text.split(" "):
        await response.write(f"data: {json.dumps(event(word + ' '))}\n\n".encode())
        await asyncio.sleep(float(request.headers.get("X-Stub-Chunk-Delay", "0")))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
