"""Microsoft Entra tokens on loopback, the way Azure hands them to a Function App.

`ManagedIdentityEndpoint` answers like App Service's managed identity endpoint
(IDENTITY_ENDPOINT + X-IDENTITY-HEADER, what azure-identity's ManagedIdentityCredential asks
in Azure) with a JWT that Azurite's `--oauth basic` accepts: issuer sts.windows.net, audience
https://storage.azure.com, a lifetime. `self_signed_certificate` makes Azurite's HTTPS pair.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
IDENTITY_HEADER = "test-identity-header-value"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def storage_token(*, issuer: str = f"https://sts.windows.net/{TENANT}/", ttl: int = 3600) -> str:
    """A token for https://storage.azure.com (Azurite's basic OAuth checks no signature)."""
    now = int(time.time())
    claims = {"aud": "https://storage.azure.com", "iss": issuer, "iat": now, "nbf": now}
    claims |= {"exp": now + ttl, "oid": "00000000-0000-0000-0000-000000000001"}
    return jwt.encode(claims, "not-checked-by-azurite-0123456789abcdef", algorithm="HS256")


class ManagedIdentityEndpoint:
    """App Service's token endpoint on a free loopback port; records who asked for what."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                outer.requests.append(
                    {"query": query, "header": self.headers.get("X-IDENTITY-HEADER")}
                )
                if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps(
                    {
                        "access_token": storage_token(),
                        "expires_on": str(int(time.time()) + 3600),
                        "resource": query.get("resource", ""),
                        "token_type": "Bearer",
                        "client_id": query.get("client_id", ""),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
