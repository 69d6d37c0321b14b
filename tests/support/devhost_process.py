"""Start Ahoy under its local host in a child process, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from tests.support.azurite import Azurite
from tests.support.settings import API_KEY_SECRET, API_KEY_SID, BASE_SETTINGS, TWIML_APP_SID
from tests.support.twilio_standin import TwilioStandIn

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_KEY = "test-function-key-0123456789"
MASTER_KEY = "test-master-key-0123456789"


SANDBOX_FROM = "+15005550006"  # Twilio's valid test sender, which the sandbox owns


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevHost:
    """`python -m devhost` with exactly the settings given (no local.settings.json)."""

    def __init__(self, settings: Mapping[str, str], tmp: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "AHOY_"))}
        env.update(settings)
        env.update(DEVHOST_FUNCTION_KEY=FUNCTION_KEY, DEVHOST_MASTER_KEY=MASTER_KEY)
        self.log = (tmp / f"devhost-{self.port}.log").open("w+")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devhost",
                "--port",
                str(self.port),
                "--root",
                str(ROOT),
                "--settings",
                str(tmp / "absent.json"),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devhost exited:\n{self.output()}")
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"devhost did not start:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def devhost_settings(standin: TwilioStandIn, azurite: Azurite) -> dict[str, str]:
    """Ahoy's settings under the local host: signed in as DEV_PRINCIPAL, Twilio = `standin`."""
    return {
        **BASE_SETTINGS,
        "TWILIO_API_BASE_URL": standin.url,
        "DEV_PRINCIPAL": "dev-user",
        "AzureWebJobsStorage": azurite.connection_string,
        "AHOY_TABLE_PREFIX": "devhost",
        "TWILIO_API_KEY_SID": API_KEY_SID,
        "TWILIO_API_KEY_SECRET": API_KEY_SECRET,
        "TWILIO_TWIML_APP_SID": TWIML_APP_SID,
        "DEVHOST_HEADER_TIMEOUT": "2",  # short, so a test can see it pass
    }


def sandbox_app(sandbox_url: str, azurite: Azurite, tmp: Path, **overrides: str) -> DevHost:
    """Ahoy on the local host with the sandbox playing Twilio (its test sender), Azurite for
    storage and the development principal as the caller; started and ready."""
    port = free_port()
    settings = {
        **BASE_SETTINGS,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TWILIO_API_BASE_URL": sandbox_url,
        "TWILIO_FROM_NUMBER": SANDBOX_FROM,
        "TWILIO_SANDBOX": "1",
        "DEV_PRINCIPAL": "dev-user",
        "AzureWebJobsStorage": azurite.connection_string,
        "AHOY_TABLE_PREFIX": f"sandbox{port}",
        **overrides,
    }
    host = DevHost(settings, tmp, port=port)
    host.wait_ready()
    return host
