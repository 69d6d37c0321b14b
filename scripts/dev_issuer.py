"""A token issuer on loopback, for trying Ahoy locally with CALLER_AUTH=jwt and no identity
provider: it publishes its key at /jwks and mints tokens at /token. Development only: its key
lives in memory and is new at every start.

    .venv/bin/python scripts/dev_issuer.py [--port 7073]
    curl 'http://127.0.0.1:7073/token?sub=alice'              # a token for user "alice"
    curl 'http://127.0.0.1:7073/token?sub=ops&roles=admin'    # with the admin role
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "api://ahoy-local"
KID = "dev-1"
TOKEN_SECONDS = 3600


def serve(host: str, port: int) -> ThreadingHTTPServer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/jwks":
                self._send(200, jwks, "application/json")
                return
            if parts.path != "/token":
                self._send(404, b"not found\n", "text/plain")
                return
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            now = int(time.time())
            claims: dict[str, Any] = {
                "iss": issuer,
                "aud": AUDIENCE,
                "sub": query.get("sub", "dev-user"),
                "iat": now,
                "nbf": now,
                "exp": now + TOKEN_SECONDS,
            }
            if query.get("roles"):
                claims["roles"] = query["roles"].split(",")
            if query.get("name"):
                claims["name"] = query["name"]
            token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})
            self._send(200, token.encode(), "text/plain")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tokens are in the query's answer, never in a log

    server = ThreadingHTTPServer((host, port), Handler)
    issuer = f"http://127.0.0.1:{server.server_port}"
    return server


def settings(server: ThreadingHTTPServer) -> dict[str, str]:
    """What local.settings.json needs for Ahoy to accept this issuer's tokens."""
    origin = f"http://127.0.0.1:{server.server_port}"
    return {
        "CALLER_AUTH": "jwt",
        "OIDC_ISSUER": origin,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_JWKS_URL": f"{origin}/jwks",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev_issuer", description=__doc__)
    parser.add_argument("--port", type=int, default=7073)
    args = parser.parse_args(argv)
    server = serve("127.0.0.1", args.port)  # loopback only: it signs anything it is asked
    print("Set in local.settings.json's Values (and remove DEV_PRINCIPAL):", flush=True)
    print(json.dumps(settings(server), indent=2), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
