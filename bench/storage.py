"""Storage as Azure will see it: every storage request delayed (a proxy in front of Azurite)
and Twilio answering slowly, against the floor of the design.

    .venv/bin/python -m bench.storage [--delay-ms 5] [--twilio-ms 150] [--quick]

For sendSms and makeCall with an Idempotency-Key it prints: the storage requests a first send
makes and how many are sequential (concurrent ones count once), before Twilio is asked and in
all; latency p50/p99 at 1 client; and at 50 concurrent clients spread over 2 local host
processes, p50/p99, errors and the share of 503s. The floor is what the design cannot avoid:
Twilio's delay plus one storage write before it and one after, made directly through the
same proxy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from azure.data.tables import TableServiceClient, UpdateMode

from tests.support.azurite import Azurite
from tests.support.fleet import Fleet, connection_string, fleet, fresh_number
from tests.support.storage_proxy import StorageProxy, sequential_groups

HIGH = {
    "RATE_LIMIT_PER_MINUTE": "10000000",
    "DAILY_QUOTA": "10000000",
    "DESTINATION_LIMIT_PER_HOUR": "10000000",
    "GLOBAL_DAILY_CAP": "10000000",
}
KINDS = {
    "sendSms": lambda: {"to": fresh_number(), "body": "ahoy hoy"},
    "makeCall": lambda: {"to": fresh_number(), "message": "Hello from Ahoy"},
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def p50_p99(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} / {percentile(values, 0.99) * 1000:.1f} ms"


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def round_trips(app: Fleet, proxy: StorageProxy, route: str) -> tuple[int, int, int]:
    """One first send (a new key) by a caller this process has served: (requests,
    sequential before Twilio, sequential in all)."""
    caller = f"rt-{route}"
    for _ in range(3):  # the caller's counters and the process's connections are warm
        app.post(0, route, KINDS[route](), caller=caller, key=uuid.uuid4().hex)
    time.sleep(0.2)
    started = time.monotonic()
    seen = len(app.standin.requests)
    answer = app.post(0, route, KINDS[route](), caller=caller, key=uuid.uuid4().hex)
    assert answer.status_code == 201, answer.text
    asked = app.standin.requests[seen].at
    exchanges = proxy.since(started)
    before = [e for e in exchanges if e.started < asked]
    return len(exchanges), sequential_groups(before), sequential_groups(exchanges)


def one_client(app: Fleet, route: str, n: int) -> list[float]:
    session, latencies = requests.Session(), []
    for _ in range(n):
        started = time.perf_counter()
        answer = app.post(
            0, route, KINDS[route](), caller="solo", key=uuid.uuid4().hex, session=session
        )
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 201, app.hosts[0].output()[-2500:]
    return latencies


def many_clients(app: Fleet, route: str, clients: int, each: int) -> tuple[list[float], Counter]:
    """`clients` clients sending `each` sends one after another, spread over the processes,
    after an untimed burst as large through each process warms it (its first requests load
    modules and fill its connection and thread pools: a cold start, not load)."""
    with ThreadPoolExecutor(clients) as pool:
        list(
            pool.map(
                lambda i: app.post(
                    i, route, KINDS[route](), caller=f"warm{i}", key=uuid.uuid4().hex
                ),
                range(clients * len(app.hosts)),
            )
        )
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        for _ in range(each):
            started = time.perf_counter()
            try:
                status = app.post(
                    index,
                    route,
                    KINDS[route](),
                    caller=f"c{index}",
                    key=uuid.uuid4().hex,
                    session=session,
                ).status_code
            except requests.RequestException:
                status = 0
            with lock:
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies, statuses


def floor(
    proxy: StorageProxy, standin_url: str, twilio_path: str, clients: int, each: int
) -> list[float]:
    """Twilio's delay plus one write before and one after, made directly through the proxy."""
    service = TableServiceClient.from_connection_string(connection_string(proxy.url))
    table = service.create_table_if_not_exists(f"floor{uuid.uuid4().hex[:8]}")
    latencies: list[float] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        for _ in range(each):
            started = time.perf_counter()
            row = {"PartitionKey": f"p{index}", "RowKey": uuid.uuid4().hex, "State": "pending"}
            table.create_entity(row)
            session.post(standin_url + twilio_path, data={"To": "+14155550123"}, timeout=30)
            table.update_entity({**row, "State": "sent"}, mode=UpdateMode.MERGE)
            with lock:
                latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--twilio-ms", type=float, default=150.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    solo, clients, each = (20, 50, 4) if args.quick else (60, 50, 10)
    lines = [
        f"Storage delay {args.delay_ms:g} ms per request (proxy in front of Azurite), "
        f"Twilio {args.twilio_ms:g} ms; floor = Twilio + 1 storage write before + 1 after.",
        "",
        "| figure | Ahoy | floor | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        azurite = Azurite(Path(tmp) / "azurite").start()
        proxy = StorageProxy(f"http://127.0.0.1:{azurite.port}", args.delay_ms / 1000).start()
        try:
            with fleet(
                Path(tmp),
                azurite=azurite,
                storage_url=proxy.url,
                twilio_delay=args.twilio_ms / 1000,
                settings=HIGH,
            ) as app:
                for route in KINDS:
                    path = "/Messages.json" if route == "sendSms" else "/Calls.json"
                    twilio_path = f"/2010-04-01/Accounts/AC{'0' * 32}{path}"
                    total, before, sequential = round_trips(app, proxy, route)
                    met = before <= 3 and sequential <= 5
                    lines.append(
                        f"| {route}: storage requests of a first send | {total} requests, "
                        f"{before} sequential before Twilio, {sequential} sequential in all "
                        f"| 1 before, 2 in all | | <= 3 before, <= 5 in all ({verdict(met)}) |"
                    )
                    ours = one_client(app, route, solo)
                    base = floor(proxy, app.standin.url, twilio_path, 1, solo)
                    ratio = statistics.median(ours) / statistics.median(base)
                    lines.append(
                        f"| {route}: 1 client, p50 / p99 | {p50_p99(ours)} | {p50_p99(base)} "
                        f"| {ratio:.2f}x | p50 <= 1.15x ({verdict(ratio <= 1.15)}) |"
                    )
                    ours, statuses = many_clients(app, route, clients, each)
                    base = floor(proxy, app.standin.url, twilio_path, clients, each)
                    p50, p99 = statistics.median(ours), percentile(ours, 0.99)
                    errors = sum(n for status, n in statuses.items() if status != 201)
                    unavailable = statuses.get(503, 0) / max(1, sum(statuses.values()))
                    ratio = p50 / statistics.median(base)
                    held = verdict(errors == 0 and p99 <= 3 * p50)
                    lines.append(
                        f"| {route}: {clients} clients over 2 processes, p50 / p99 "
                        f"| {p50_p99(ours)}, {errors} errors, {unavailable:.1%} 503 "
                        f"| {p50_p99(base)} | {ratio:.2f}x "
                        f"| 0 errors, 0 503s, p99 <= 3x p50 ({held}) |"
                    )
        finally:
            proxy.stop()
            azurite.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
