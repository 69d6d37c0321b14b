"""What a storage request costs on this machine, timed directly with the Tables SDK against
Azurite: a plain insert, an upsert, a point read, and transactions of one to four operations.

    .venv/bin/python -m bench.azurite_costs [--rounds 60]

Prints the median time of each (the first 10 rounds are warm-up) and the CPU this process
spent on it (the SDK's own share, which an app pays wherever its storage is). bench/RESULTS.md
reads these against the send path's storage requests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from azure.data.tables import TableClient, TableServiceClient

from tests.support.azurite import Azurite

PARTITION = "p"


def median_ms(work: Callable[[], object], rounds: int) -> tuple[float, float]:
    """The median time of `work` and the mean CPU time of this process for it, in ms."""
    timings, cpu = [], []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        work()
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(timings[10:]) * 1000, statistics.mean(cpu[10:]) * 1000


def entity() -> dict[str, str]:
    return {"PartitionKey": PARTITION, "RowKey": uuid.uuid4().hex, "Text": "x" * 200}


def transaction(table: TableClient, size: int) -> Callable[[], object]:
    return lambda: table.submit_transaction([("create", entity()) for _ in range(size)])


def costs(table: TableClient, rounds: int) -> dict[str, tuple[float, float]]:
    table.upsert_entity({"PartitionKey": PARTITION, "RowKey": "fixed", "Text": "x"})
    figures = {
        "insert": median_ms(lambda: table.create_entity(entity()), rounds),
        "upsert": median_ms(
            lambda: table.upsert_entity({"PartitionKey": PARTITION, "RowKey": "fixed"}), rounds
        ),
        "point read": median_ms(lambda: table.get_entity(PARTITION, "fixed"), rounds),
    }
    for size in (1, 2, 3, 4):
        figures[f"transaction of {size}"] = median_ms(transaction(table, size), rounds)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    azurite = Azurite(Path(tempfile.mkdtemp())).start()
    try:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        figures = costs(service.create_table(f"costs{uuid.uuid4().hex[:8]}"), args.rounds)
    finally:
        azurite.stop()
    print("| request | median | of which the SDK's CPU (this process) |\n|---|---|---|")
    for name, (ms, cpu) in figures.items():
        print(f"| {name} | {ms:.1f} ms | {cpu:.1f} ms |")


if __name__ == "__main__":
    main()
