"""Azurite's table service on a free loopback port, with a fresh data folder, for one test run."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Azurite:
    """`extra` goes to azurite-table as is (e.g. `--oauth basic --cert C --key K` for HTTPS)."""

    def __init__(self, data: Path, port: int = 0, extra: tuple[str, ...] = ()) -> None:
        self.data = data
        self.port = port or _free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def table_endpoint(self) -> str:
        scheme = "https" if "--cert" in self.extra else "http"
        return f"{scheme}://127.0.0.1:{self.port}/devstoreaccount1"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;"
        )

    def start(self) -> Azurite:
        binary = ROOT / "node_modules" / ".bin" / "azurite-table"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run scripts/setup (npm ci)")
        self.process = subprocess.Popen(
            [
                str(binary),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(self.port),
                "--location",
                str(self.data),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("Azurite exited at start") from None
                time.sleep(0.1)
        raise RuntimeError("Azurite did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
