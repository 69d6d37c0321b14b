"""GET /api/health: 200 when settings are complete and storage answers, 503 otherwise."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from api.edge.ops_routes import health
from tests.support.func_requests import request
from tests.support.settings import BASE_SETTINGS


def get_health() -> tuple[int, dict[str, object], dict[str, str]]:
    response = health(request("GET", "/api/health", caller=None))
    return response.status_code, json.loads(response.get_body()), dict(response.headers)


@pytest.mark.usefixtures("storage")
def test_healthy_when_settings_are_complete_and_storage_answers() -> None:
    status, body, headers = get_health()
    assert status == 200
    assert body == {"status": "healthy", "checks": {"settings": "ok", "storage": "ok"}}
    assert headers["Cache-Control"] == "no-store"


def test_incomplete_settings_are_503_without_naming_any_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    monkeypatch.setenv("AHOY_FLOW_KEY", "not-a-key")
    status, body, headers = get_health()
    assert status == 503
    assert body == {"status": "unhealthy", "checks": {"settings": "failed", "storage": "skipped"}}
    assert headers["Retry-After"]
    text = json.dumps(body)
    assert not any(name in text for name in BASE_SETTINGS)
    assert "not-a-key" not in text


def test_unreachable_storage_is_503() -> None:
    # conftest points storage at a closed port unless a test asks for Azurite.
    status, body, _ = get_health()
    assert status == 503
    assert body["checks"] == {"settings": "ok", "storage": "failed"}


@pytest.fixture
def silent_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A table endpoint that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    monkeypatch.setenv(
        "AzureWebJobsStorage",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=bm9uZQ==;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
    )
    yield
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.mark.usefixtures("silent_storage")
def test_storage_that_hangs_is_503_within_the_check_timeout() -> None:
    started = time.monotonic()
    status, body, _ = get_health()
    assert status == 503
    assert body["checks"] == {"settings": "ok", "storage": "failed"}
    assert time.monotonic() - started < 5  # the check's own 2 s bound, not the SDK's retries


@pytest.mark.usefixtures("silent_storage")
def test_anonymous_health_checks_cannot_load_storage_or_hold_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.services import health as health_module

    pings: list[float] = []
    real_ping = health_module.get_tables().ping

    def counted(timeout: float) -> None:
        pings.append(timeout)
        real_ping(timeout)

    monkeypatch.setattr(health_module.get_tables(), "ping", counted)
    assert get_health()[0] == 503  # the first check, waited for: storage hangs, 2 s bound
    assert len(pings) == 1
    waits: list[float] = []

    def one() -> None:
        started = time.monotonic()
        assert get_health()[0] == 503
        waits.append(time.monotonic() - started)

    threads = [threading.Thread(target=one) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pings) == 1  # answered from the last result: storage was not asked again
    assert max(waits) < 0.5
    monkeypatch.setattr(health_module.time, "monotonic", lambda: time.time() + 3600)
    threads = [threading.Thread(target=one) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pings) == 2  # stale: one request checks again, the others answer meanwhile
