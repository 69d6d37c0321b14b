"""An OIDC issuer's JWKS endpoint on loopback, and tokens signed with its keys."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://login.example.com/tenant/v2.0"
AUDIENCE = "api://ahoy"


class Issuer:
    """Holds signing keys; `fetches` counts how often the JWKS was downloaded."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {"rsa-1": rsa.generate_private_key(65537, 2048)}
        self.published: set[str] = {"rsa-1"}
        self.fetches = 0
        self.url = ""
        self.stall = 0.0
        # How the JWKS answer goes wrong: "short" (fewer bytes than its Content-Length),
        # "trickle" (one byte every 1.5 s), "redirect", "html", "list"; "" answers well.
        self.fault = ""

    def add_key(self, kid: str, *, publish: bool = True, curve: bool = False) -> None:
        self.keys[kid] = (
            ec.generate_private_key(ec.SECP256R1())
            if curve
            else rsa.generate_private_key(65537, 2048)
        )
        if publish:
            self.published.add(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in sorted(self.published):
            public = self.keys[kid].public_key()
            algorithm = (
                jwt.algorithms.ECAlgorithm
                if isinstance(public, ec.EllipticCurvePublicKey)
                else jwt.algorithms.RSAAlgorithm
            )
            jwk = json.loads(algorithm.to_jwk(public))
            jwk.update(kid=kid, use="sig")
            keys.append(jwk)
        return {"keys": keys}

    def token(self, *, kid: str = "rsa-1", algorithm: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "iat": now, "exp": now + 300}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        key = self.keys[kid]
        alg = algorithm or ("ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256")
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    issuer = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.fetches += 1
            time.sleep(issuer.stall)  # an identity provider that hangs
            body = json.dumps(issuer.jwks()).encode()
            kind = "application/json"
            if issuer.fault == "redirect":
                self.send_response(302)
                self.send_header("Location", issuer.url + "?again")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if issuer.fault == "html":
                body, kind = b"<html>sign in</html>", "text/html"
            if issuer.fault == "list":
                body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header(
                "Content-Length", str(len(body) + (50 if issuer.fault == "short" else 0))
            )
            self.end_headers()
            if issuer.fault == "trickle":
                for byte in body[:6]:
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up, as it should
                    time.sleep(1.5)
                return
            self.wfile.write(body)
            if issuer.fault == "short":
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}/keys"
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
