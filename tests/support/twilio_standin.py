"""A loopback stand-in for Twilio's REST API, for tests that cross real sockets.

It records every request and answers Messages.json and Calls.json with Twilio's resource
shapes. It is deliberately dumb: the sandbox (sandbox/) is the faithful local Twilio.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

_counter = itertools.count(1)


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, list[str]]
    headers: dict[str, str]
    at: float = 0.0  # time.monotonic() when it arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections when many clients connect at once


@dataclass
class TwilioStandIn:
    """Serve on 127.0.0.1:<port>; `requests` lists what arrived; answers after `delay` s."""

    requests: list[Recorded] = field(default_factory=list)
    connections: int = 0
    delay: float = 0.0

    def __post_init__(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every answer

            def setup(self) -> None:
                super().setup()
                standin.connections += 1

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                headers = {k.lower(): v for k, v in self.headers.items()}
                standin.requests.append(Recorded("POST", self.path, form, headers, arrived))
                if standin.delay:
                    time.sleep(standin.delay)
                kind = "SM" if self.path.endswith("/Messages.json") else "CA"
                sid = f"{kind}{next(_counter):032x}"
                self._answer(201, _resource(sid, form))

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> TwilioStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _resource(sid: str, form: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "sid": sid,
        "status": "queued",
        "to": form.get("To", [""])[0],
        "from": form.get("From", [None])[0],
        "date_created": "Sat, 28 Nov 2026 00:00:00 +0000",
    }
