"""Loopback load run of the send path: nothing lost, nothing sent twice.

    .venv/bin/python -m bench.ledger_load [--sends 2000] [--clients 20] [--retry-every 5]

Ahoy runs under its local host with Azurite and a loopback Twilio stand-in; limits are raised
for the run. Every send carries its own Idempotency-Key, and every Nth one is sent again with
the same key (the app retrying after a dropped response). The run prints the counts that must
agree: accepted ledger rows, Twilio POSTs and distinct SIDs answered with 201.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests
from azure.data.tables import TableClient

from tests.support.azurite import Azurite
from tests.support.devhost_process import DevHost
from tests.support.settings import BASE_SETTINGS
from tests.support.twilio_standin import TwilioStandIn

PREFIX = "bench"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--retry-every", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, TwilioStandIn() as standin:
        azurite = Azurite(Path(tmp) / "azurite").start()
        host = DevHost(
            {
                **BASE_SETTINGS,
                "TWILIO_API_BASE_URL": standin.url,
                "DEV_PRINCIPAL": "bench-user",
                "AzureWebJobsStorage": azurite.connection_string,
                "AHOY_TABLE_PREFIX": PREFIX,
            },
            Path(tmp),
        )
        try:
            host.wait_ready()
            started = time.perf_counter()
            sids, statuses = run(host.url, args.sends, args.clients, args.retry_every)
            elapsed = time.perf_counter() - started
            ledger = TableClient.from_connection_string(
                azurite.connection_string, f"{PREFIX}ledger"
            )
            states = Counter(
                e["State"]
                for e in ledger.query_entities(
                    "RowKey ge 'send-' and RowKey lt 'send.'", select=["State"]
                )
            )
        finally:
            host.stop()
            azurite.stop()

    posts = len(standin.requests)
    distinct = len(set(sids))
    print(
        f"{args.sends} sends ({args.clients} clients, every {args.retry_every}th retried) "
        f"in {elapsed:.1f} s ({args.sends / elapsed:.0f} sends/s)"
    )
    print(f"  answers:              {dict(sorted(statuses.items()))}")
    print(f"  ledger rows accepted: {states.get('sent', 0)}  (all states: {dict(states)})")
    print(f"  Twilio POSTs:         {posts}")
    print(f"  distinct 201 SIDs:    {distinct}")
    ok = states.get("sent", 0) == posts == distinct == args.sends
    print("  duplicates: 0, lost: 0" if ok else "  MISMATCH: duplicates or losses")
    return 0 if ok else 1


def run(url: str, sends: int, clients: int, retry_every: int) -> tuple[list[str], Counter[int]]:
    sids: list[str] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    work = iter(range(sends))

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                n = next(work, None)
            if n is None:
                return
            key = uuid.uuid4().hex
            for _ in range(2 if n % retry_every == 0 else 1):
                response = session.post(
                    f"{url}/api/sendSms",
                    json={"to": f"+1415555{n % 10_000:04d}", "body": f"load {n}"},
                    headers={"Idempotency-Key": key},
                    timeout=30,
                )
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 201:
                        sids.append(response.json()["sid"])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sids, statuses


if __name__ == "__main__":
    raise SystemExit(main())
