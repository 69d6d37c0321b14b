"""One HTTP request to an ASGI app in-process (the local host), and what it sent back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any
from urllib.parse import unquote

App = Callable[..., Coroutine[Any, Any, None]]


def asgi_request(
    app: App,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    header_pairs: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (each sent once) and body of `method path?query` served by `app`.
    `header_pairs` are sent as given (repeats too, and no Content-Length added)."""
    sent: list[MutableMapping[str, Any]] = []
    given = {"host": "127.0.0.1:7071"}
    if body and header_pairs is None:
        given["content-length"] = str(len(body))  # as an HTTP client sends it
    pairs = [*{**given, **(headers or {})}.items(), *(header_pairs or [])]
    scope = {
        "type": "http",
        "method": method,
        "path": unquote(path),  # as uvicorn decodes it
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in pairs],
        "server": ("127.0.0.1", 7071),
        "scheme": "http",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, answer = sent
    pairs = [(k.decode(), v.decode()) for k, v in start["headers"]]
    assert len({k for k, _ in pairs}) == len(pairs), "a header was sent twice"
    return int(start["status"]), dict(pairs), answer["body"]


def run_lifespan(app: App, seconds: float) -> None:
    """Start `app` (its ASGI lifespan), let it run `seconds`, stop it."""

    async def main() -> None:
        messages = [{"type": "lifespan.startup"}]
        sent: list[MutableMapping[str, Any]] = []
        started = asyncio.Event()
        stop = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await stop.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "lifespan.startup.complete":
                started.set()

        task = asyncio.create_task(app({"type": "lifespan"}, receive, send))
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.sleep(seconds)
        stop.set()
        await task

    asyncio.run(main())
