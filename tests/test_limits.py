"""Send limits: counted in Table Storage, exact under concurrency, refusals in the ledger."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import azure.functions as func
import pytest
import responses

from api.edge.app_routes import send_sms
from tests.support.clock import at
from tests.support.func_requests import problem, request
from tests.support.settings import MESSAGES_URL
from tests.support.tables import ledger_rows
from tests.support.twilio_api import twilio_message


def post(to: str = "+14155551234", caller: str = "user-1", key: str = "") -> func.HttpResponse:
    body = {"to": to, "body": "hi"}
    headers = {"Idempotency-Key": key} if key else {}
    return send_sms(request("POST", "/api/sendSms", json_body=body, caller=caller, headers=headers))


@pytest.fixture(autouse=True)
def mid_minute() -> Iterator[None]:
    """Hold the clock mid-minute, so no window rolls over during a test."""
    from api.core import clock

    with at(clock.now().replace(second=30)):
        yield


@pytest.fixture
def twilio_ok(twilio: responses.RequestsMock) -> responses.RequestsMock:
    twilio.assert_all_requests_are_fired = False
    twilio.add_callback(
        "POST", MESSAGES_URL, callback=lambda _: (201, {}, json.dumps(twilio_message()))
    )
    return twilio


def test_the_per_minute_limit_refuses_with_retry_after(
    twilio_ok: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "2")
    assert [post().status_code for _ in range(3)] == [201, 201, 429]
    refused = post()
    assert refused.status_code == 429
    assert 1 <= int(refused.headers.get("Retry-After") or 0) <= 61
    assert "a minute" in problem(refused)["detail"]
    assert len(twilio_ok.calls) == 2
    assert sorted(row.state for row in ledger_rows()) == ["sent", "sent"]  # refusals cost no row
    assert post(caller="user-2").status_code == 201  # limits are per caller


def test_the_daily_quota(
    twilio_ok: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAILY_QUOTA", "1")
    assert [post().status_code for _ in range(2)] == [201, 429]
    assert int(post().headers.get("Retry-After") or 0) <= 86_401


def test_the_per_destination_limit_spans_callers(
    twilio_ok: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION_LIMIT_PER_HOUR", "1")
    assert post(caller="a").status_code == 201
    assert post(caller="b").status_code == 429
    assert post(to="+14155559876", caller="b").status_code == 201


def test_the_global_cap_is_503(
    twilio_ok: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLOBAL_DAILY_CAP", "1")
    assert post(caller="a").status_code == 201
    capped = post(caller="b")
    assert capped.status_code == 503
    assert capped.headers.get("Retry-After")


def test_a_retry_past_the_callers_limit_still_gets_its_first_answer(
    twilio_ok: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "1")
    first = post(key="once")
    assert first.status_code == 201
    again = post(key="once")
    assert (again.status_code, again.get_body()) == (201, first.get_body())
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert post(key="another").status_code == 429  # a new send is counted, and refused
    assert len(twilio_ok.calls) == 1


def test_a_refusal_gives_back_what_it_took(
    twilio_ok: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "2")
    monkeypatch.setenv("DESTINATION_LIMIT_PER_HOUR", "1")
    assert post().status_code == 201
    assert post().status_code == 429  # the destination is spent; the minute is not
    assert post(to="+14155559876").status_code == 201


def test_limits_hold_under_concurrency(
    twilio_ok: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "5")
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def app(i: int) -> None:
        barrier.wait()
        statuses.append(post(to=f"+1415555{i:04d}").status_code)

    threads = [threading.Thread(target=app, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 5 + [429] * 15
    assert len(twilio_ok.calls) == 5


def test_more_concurrent_sends_than_storage_threads_never_deadlock(
    twilio_ok: responses.RequestsMock,
) -> None:
    """Each send takes its limits on the storage pool while holding a thread: 80 at once."""
    barrier = threading.Barrier(80)
    statuses: list[int] = []

    def app(i: int) -> None:
        barrier.wait()
        statuses.append(post(to=f"+1415556{i:04d}", caller=f"many-{i}").status_code)

    threads = [threading.Thread(target=app, args=(i,), daemon=True) for i in range(80)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses.count(201) == 80
