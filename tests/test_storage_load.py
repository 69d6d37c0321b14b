"""Limits and status callbacks stay exact when two processes serve Ahoy on one Azurite, as two
scaled-out instances share one storage account."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests
from twilio.request_validator import RequestValidator

from tests.support.azurite import Azurite
from tests.support.devhost_process import FUNCTION_KEY
from tests.support.fleet import fleet, fresh_number
from tests.support.settings import AUTH_TOKEN, PUBLIC_BASE_URL

HIGH = {
    "RATE_LIMIT_PER_MINUTE": "100000",
    "DAILY_QUOTA": "100000",
    "DESTINATION_LIMIT_PER_HOUR": "100000",
    "GLOBAL_DAILY_CAP": "100000",
}


def run_concurrently(count: int, workers: int, job: Callable[[int], int]) -> list[int]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(job, range(count)))


def not_at_the_end_of_a_minute() -> None:
    """A minute window must not roll over in the middle of a per-minute test."""
    while time.time() % 60 > 45:
        time.sleep(0.5)


def test_the_global_cap_is_exact_across_two_processes(azurite: Azurite, tmp_path: Path) -> None:
    settings = {**HIGH, "GLOBAL_DAILY_CAP": "500"}
    with fleet(tmp_path, azurite=azurite, settings=settings) as app:

        def send(i: int) -> int:
            body = {"to": fresh_number(), "body": "cap"}
            return app.post(i, "sendSms", body, caller=f"cap-{i}").status_code

        statuses = Counter(run_concurrently(600, 60, send))
        assert statuses == {201: 500, 503: 100}
        assert len(app.standin.requests) == 500


def test_one_callers_rate_limit_is_exact_across_two_processes(
    azurite: Azurite, tmp_path: Path
) -> None:
    settings = {**HIGH, "RATE_LIMIT_PER_MINUTE": "5"}
    with fleet(tmp_path, azurite=azurite, settings=settings) as app:
        not_at_the_end_of_a_minute()
        barrier = threading.Barrier(20)

        def send(i: int) -> int:
            barrier.wait()
            body = {"to": fresh_number(), "body": "rate"}
            return app.post(i, "sendSms", body, caller="one-caller").status_code

        statuses = Counter(run_concurrently(20, 20, send))
        assert statuses == {201: 5, 429: 15}
        assert len(app.standin.requests) == 5


def test_2000_concurrent_callbacks_end_on_the_right_status(
    azurite: Azurite, tmp_path: Path
) -> None:
    with fleet(tmp_path, azurite=azurite, settings=HIGH) as app:
        sent = []
        for i in range(20):
            answer = app.post(i, "sendSms", {"to": fresh_number(), "body": "x"}, caller=f"cb-{i}")
            assert answer.status_code == 201
            sent.append((f"cb-{i}", answer.json()["sid"]))
        callbacks = [r.form["StatusCallback"][0] for r in app.standin.requests]
        statuses = ["queued", "sending", "sent", "delivered"]
        work = [
            (callbacks[i], sid, statuses[n % 4])
            for i, (_, sid) in enumerate(sent)
            for n in range(100)
        ]
        random.Random(7).shuffle(work)
        sessions = threading.local()

        def callback(n: int) -> int:
            url, sid, status = work[n]
            form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
            path = urlsplit(url).path + "?" + urlsplit(url).query
            signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + path, form)
            session = getattr(sessions, "session", None) or requests.Session()
            sessions.session = session
            host = app.hosts[n % len(app.hosts)]
            answer = session.post(
                host.url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=60
            )
            return answer.status_code

        assert Counter(run_concurrently(len(work), 50, callback)) == {204: 2000}
        for i, (caller, sid) in enumerate(sent):
            shown = requests.get(
                f"{app.hosts[i % 2].url}/api/messages/{sid}",
                headers={"x-functions-key": FUNCTION_KEY, "X-MS-CLIENT-PRINCIPAL-ID": caller},
                timeout=10,
            ).json()
            assert shown["status"] == "delivered"
            assert [h["status"] for h in shown["history"]].count("delivered") == 1
            assert {h["status"] for h in shown["history"]} == set(statuses)


def test_a_burst_its_own_limit_refuses_never_closes_the_cap_for_others(
    azurite: Azurite, tmp_path: Path
) -> None:
    # One caller allowed one send a minute fires 60 at once while nine others send one each,
    # cap 10: the burst's refused sends must not read as the cap spent to the nine.
    settings = {
        **HIGH,
        "RATE_LIMIT_PER_MINUTE": "1",
        "GLOBAL_DAILY_CAP": "10",
        "PYTHON_THREADPOOL_THREAD_COUNT": "40",  # every send of the burst in flight at once
    }
    with fleet(tmp_path, azurite=azurite, settings=settings) as app:
        not_at_the_end_of_a_minute()
        barrier = threading.Barrier(69)

        def send(i: int) -> tuple[str, int]:
            caller = "burst" if i < 60 else f"other-{i}"
            barrier.wait()
            body = {"to": fresh_number(), "body": "burst"}
            return caller, app.post(i, "sendSms", body, caller=caller).status_code

        with ThreadPoolExecutor(69) as pool:
            results = list(pool.map(send, range(69)))
        burst = Counter(status for caller, status in results if caller == "burst")
        others = Counter(status for caller, status in results if caller != "burst")
        assert burst == {201: 1, 429: 59}
        assert others == {201: 9}  # none hears "503 daily cap reached" before it is
        assert len(app.standin.requests) == 10
        # and now the cap is truly spent: the next send anywhere is 503
        spent = app.post(0, "sendSms", {"to": fresh_number(), "body": "x"}, caller="late")
        assert spent.status_code == 503
