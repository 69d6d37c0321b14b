"""python -m devhost [--root .] [--host 127.0.0.1] [--port 7071] [--check]

Serves the Functions app in ROOT (its PYTHON_SCRIPT_FILE_NAME, by default function_app.py) on
Azure's own execution runtime, with the .NET host's rules. --check indexes it, lists its
functions and exits: 0 when Azure would serve them, 1 with the reason when it would not."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from devhost.host import FunctionHost, Keys
from devhost.runtime import SCRIPT_FILE_SETTING, AppRefused
from devhost.settings import BIND_VARIABLE, load_local_settings

HEADER_TIMEOUT_VARIABLE = "DEVHOST_HEADER_TIMEOUT"  # seconds a request's headers may take


class HeaderDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request's headers: a client that
    connects and never finishes them (slowloris) is disconnected, not waited for forever."""

    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm()  # the next request's headers are on their way
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # headers complete: the app has the request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devhost", description=__doc__)
    parser.add_argument(
        "--script-file", help=f"the app's file in ROOT (sets {SCRIPT_FILE_SETTING})"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="folder of host.json")
    parser.add_argument("--settings", type=Path, help="default: ROOT/local.settings.json")
    parser.add_argument(
        "--no-access-log", action="store_true", help="no log line per request (as uvicorn's flag)"
    )
    parser.add_argument("--check", action="store_true", help="index the app, list it and exit")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    load_local_settings(args.settings or args.root / "local.settings.json")
    os.environ[BIND_VARIABLE] = f"{args.host}:{args.port}"
    if args.script_file:
        os.environ[SCRIPT_FILE_SETTING] = args.script_file

    keys, generated = Keys.from_environ(os.environ)
    try:
        host = FunctionHost.load(args.root.resolve(), keys=keys, access_log=not args.no_access_log)
    except AppRefused as refused:
        print(f"devhost: Azure would serve no function of this app: {refused}", file=sys.stderr)
        return 1
    origin = f"http://{args.host}:{args.port}"
    print(f"devhost: {len(host.routes)} HTTP functions on {origin}", flush=True)
    for route in host.routes:
        methods = ",".join(sorted(route.methods)) if route.methods else "*"
        print(f"  {methods:<9} {route.template}  [{route.auth_level}]  {route.name}")
    for function in host.runtime.functions:
        if function.trigger["type"] != "httpTrigger":
            print(f"  {function.trigger['type']}: {function.name}")
    if args.check:
        return 0
    if generated:
        print(f"devhost: function key (x-functions-key): {keys.function}", flush=True)
    HeaderDeadline.header_timeout = float(os.environ.get(HEADER_TIMEOUT_VARIABLE) or 10)
    config = uvicorn.Config(
        host,
        http=HeaderDeadline,
        host=args.host,
        port=args.port,
        lifespan="on",
        access_log=False,  # query strings can carry keys; devhost logs paths itself
        log_level="warning",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
