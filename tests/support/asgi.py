"""One HTTP request to an ASGI app in-process (the local host), and what it sent back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

App = Callable[..., Coroutine[Any, Any, None]]


def asgi_request(
    app: App,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (each sent once) and body of `method path?query` served by `app`."""
    sent: list[MutableMapping[str, Any]] = []
    given = {"host": "127.0.0.1:7071"}
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in {**given, **(headers or {})}.items()],
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
