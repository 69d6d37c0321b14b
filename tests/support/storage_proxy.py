"""An HTTP proxy in front of Azurite that makes storage behave as far away as Azure's is.

Each request waits `delay` seconds before it is forwarded (Azure Table Storage answers in a
few milliseconds, Azurite on loopback in a fraction of one), and is recorded with when it
started and ended, so a bench can count a send's requests and how many of them overlapped.
`cut()` makes storage fail at a chosen moment (connections reset) without touching Azurite,
whose last writes a kill would lose; `rule` picks requests to fail one by one: "drop" (never
forwarded), "lose" (forwarded, so the write lands, but its answer is lost) or "busy-after"
(forwarded, then answered 503, which azure-core retries even for a POST).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from yarl import URL

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    started: float  # time.monotonic(), comparable across processes on one machine
    ended: float


@dataclass
class StorageProxy:
    upstream: str  # e.g. http://127.0.0.1:10002
    delay: float = 0.005
    exchanges: list[Exchange] = field(default_factory=list)
    cut_off: bool = False
    rule: Callable[[str, str, bytes], str | None] | None = None  # (method, path, body)
    dropped: int = 0  # requests that failed as dropped connections

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StorageProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            await self._runner.cleanup()
            await self._session.close()
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(close(), self._loop)
        self._thread.join(10)
        self._loop.close()

    def cut(self, off: bool = True) -> None:
        """While cut, every request fails as a dropped connection would."""
        self.cut_off = off

    def since(self, moment: float) -> list[Exchange]:
        return [e for e in list(self.exchanges) if e.started >= moment]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        session: dict[str, ClientSession] = {}

        async def forward(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            body = await request.read()
            await asyncio.sleep(self.delay)
            verdict = self.rule(request.method, request.path, body) if self.rule else None
            if self.cut_off or verdict == "drop":
                self.dropped += 1
                assert request.transport is not None
                request.transport.close()  # the client sees the connection drop
                raise ConnectionResetError
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            path = request.raw_path
            if path.startswith("http://"):  # sent to it as a forward proxy: absolute form
                path = "/" + path.split("/", 3)[3]
            target = URL(self.upstream + path, encoded=True)  # as signed
            async with session["client"].request(
                request.method,
                target,
                headers=headers,
                data=body or None,
                skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
            ) as answer:
                payload = await answer.read()
                status = answer.status
                out: dict[str, Any] = {
                    k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP
                }
            self.exchanges.append(
                Exchange(request.method, request.path, status, started, time.monotonic())
            )
            if verdict == "lose":
                assert request.transport is not None
                request.transport.close()
                raise ConnectionResetError
            if verdict == "busy-after":
                return web.Response(status=503, body=b"Server busy")
            return web.Response(status=status, body=payload, headers=out)

        async def main() -> None:
            session["client"] = self._session = ClientSession(
                connector=TCPConnector(limit=200), timeout=ClientTimeout(total=30)
            )
            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", forward)
            runner = self._runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            listener = socket.create_server(("127.0.0.1", 0))
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.port = listener.getsockname()[1]
            await web.SockSite(runner, listener).start()
            self._ready.set()

        self._loop.run_until_complete(main())
        self._loop.run_forever()


def sequential_groups(exchanges: list[Exchange]) -> int:
    """How many round trips one after another: overlapping requests count once."""
    groups, end = 0, float("-inf")
    for exchange in sorted(exchanges, key=lambda e: e.started):
        if exchange.started >= end:
            groups += 1
            end = exchange.ended
        else:
            end = max(end, exchange.ended)
    return groups
