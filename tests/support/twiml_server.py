"""A web server on loopback standing for the app in sandbox tests: serves TwiML documents by
path and records every request (path, parameters, whether X-Twilio-Signature held, method)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator

from tests.support.settings import AUTH_TOKEN


class TwimlServer:
    def __init__(self) -> None:
        self.documents: dict[str, tuple[str, str]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], bool]] = []
        self.methods: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                self._answer(form, {k: v[0] for k, v in form.items()}, f"{server.url}{self.path}")

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                self._answer(query, {}, f"{server.url}{self.path}")

            def _answer(self, params: dict[str, list[str]], signed_params: Any, url: str) -> None:
                signature = self.headers.get("X-Twilio-Signature", "")
                signed = RequestValidator(AUTH_TOKEN).validate(url, signed_params, signature)
                path = urlsplit(self.path).path
                server.requests.append((path, params, signed))
                server.methods.append(self.command)
                body, content_type = server.documents.get(path, ("", "text/plain"))
                self.send_response(200 if path in server.documents else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def serve(self, path: str, twiml: str, content_type: str = "text/xml") -> str:
        self.documents[path] = (twiml, content_type)
        return f"{self.url}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
