"""Several local host processes serving Ahoy on one Azurite, as scaled-out instances would.

For tests and benches that need more than one process: Twilio is the loopback stand-in,
callers sign in through Easy Auth headers (one principal per caller), and storage may sit
behind a `StorageProxy`.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.azurite import ACCOUNT_KEY, Azurite
from tests.support.devhost_process import DevHost
from tests.support.settings import BASE_SETTINGS
from tests.support.twilio_standin import TwilioStandIn

_numbers = itertools.count(1)


def connection_string(table_endpoint: str) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};TableEndpoint={table_endpoint}/devstoreaccount1;"
    )


@dataclass
class Fleet:
    hosts: list[DevHost]
    standin: TwilioStandIn
    prefix: str

    def post(
        self,
        index: int,
        route: str,
        body: dict[str, Any],
        *,
        caller: str,
        key: str | None = None,
        session: requests.Session | None = None,
    ) -> requests.Response:
        """POST to host `index % len(hosts)` as `caller` (Easy Auth), with an optional key."""
        headers = {"X-MS-CLIENT-PRINCIPAL-ID": caller}
        if key is not None:
            headers["Idempotency-Key"] = key
        host = self.hosts[index % len(self.hosts)]
        return (session or requests).post(
            f"{host.url}/api/{route}", json=body, headers=headers, timeout=60
        )


def fresh_number() -> str:
    """A distinct US mobile-shaped destination, so no destination counter is shared."""
    return f"+1415{5_000_000 + next(_numbers) % 4_000_000:07d}"


@contextmanager
def fleet(
    tmp: Path,
    *,
    azurite: Azurite,
    processes: int = 2,
    storage_url: str | None = None,
    twilio_delay: float = 0.0,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Fleet]:
    """`processes` local hosts on `azurite` (or on `storage_url`, a proxy in front of it)."""
    prefix = f"f{uuid.uuid4().hex[:10]}"
    with ExitStack() as stack:
        standin = stack.enter_context(TwilioStandIn(delay=twilio_delay))
        endpoint = storage_url or f"http://127.0.0.1:{azurite.port}"
        env = {
            **BASE_SETTINGS,
            "TWILIO_API_BASE_URL": standin.url,
            "AzureWebJobsStorage": connection_string(endpoint),
            "AHOY_TABLE_PREFIX": prefix,
            **(settings or {}),
        }
        hosts = [DevHost(env, tmp) for _ in range(processes)]
        for host in hosts:
            stack.callback(host.stop)
        threads = [threading.Thread(target=host.wait_ready) for host in hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        yield Fleet(hosts, standin, prefix)
