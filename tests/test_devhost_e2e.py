"""End to end over real HTTP: Ahoy served by its local host, Twilio by a loopback stand-in."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.support.azurite import Azurite
from tests.support.devhost_process import FUNCTION_KEY, MASTER_KEY, ROOT, DevHost, devhost_settings
from tests.support.settings import AUTH_TOKEN, BASE_SETTINGS, FROM_NUMBER, PUBLIC_BASE_URL
from tests.support.twilio_standin import TwilioStandIn

KEY = {"x-functions-key": FUNCTION_KEY}


@pytest.fixture(scope="module")
def host(devhost: DevHost) -> str:
    return devhost.url


def test_send_sms_round_trip(host: str, standin: TwilioStandIn) -> None:
    before = len(standin.requests)
    response = requests.post(
        f"{host}/api/sendSms",
        json={"to": "+14155551234", "body": "ahoy hoy"},
        headers=KEY,
        timeout=10,
    )
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["sid"].startswith("SM")
    assert response.json()["from"] == FROM_NUMBER
    sent = standin.requests[before]
    assert sent.path.endswith("/Messages.json")
    callback = sent.form.pop("StatusCallback")
    assert callback[0].startswith(f"{PUBLIC_BASE_URL}/api/status?ref=")
    assert sent.form == {"To": ["+14155551234"], "From": [FROM_NUMBER], "Body": ["ahoy hoy"]}


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong"}])
def test_the_apps_routes_need_no_function_key_ahoy_checks_the_caller(
    host: str, headers: dict[str, str]
) -> None:
    # No shared secret ships in the app: the host lets the request through (a wrong function
    # key included), and Ahoy authenticates the caller (here the development principal).
    response = requests.post(
        f"{host}/api/sendSms",
        json={"to": "+14155551234", "body": "no key"},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/sendSms"), ("PUT", "/api/twiml"), ("POST", "/api/nope"), ("GET", "/sendSms")],
)
def test_unknown_routes_and_methods_are_404(host: str, method: str, path: str) -> None:
    assert requests.request(method, f"{host}{path}", headers=KEY, timeout=10).status_code == 404


def test_routes_match_case_insensitively_as_in_azure(host: str) -> None:
    response = requests.post(
        f"{host}/API/SENDSMS", json={"to": "+14155551234", "body": "hi"}, headers=KEY, timeout=10
    )
    assert response.status_code == 201


def test_twiml_is_anonymous_signed_and_xml(host: str) -> None:
    path = "/api/twiml?Message%5B0%5D=Hello%20World&Voice=woman"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + path, {})
    unsigned = requests.get(f"{host}{path}", timeout=10)
    assert unsigned.status_code == 403
    assert unsigned.headers["content-type"].startswith("application/problem+json")
    response = requests.get(f"{host}{path}", headers={"X-Twilio-Signature": signature}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith('<Response><Say voice="woman">Hello World</Say></Response>')


def test_problems_cross_the_wire_as_problem_json(host: str) -> None:
    response = requests.post(
        f"{host}/api/sendSms",
        data="not json",
        headers={**KEY, "Content-Type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 415


def test_the_host_refuses_to_start_naming_a_missing_setting(tmp_path: Path) -> None:
    settings = {k: v for k, v in BASE_SETTINGS.items() if k != "AHOY_FLOW_KEY"}
    env = {"PATH": "/usr/bin:/bin", **settings}
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", "0", "--settings", str(tmp_path / "x.json")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "AHOY_FLOW_KEY" in result.stdout + result.stderr
    assert BASE_SETTINGS["TWILIO_AUTH_TOKEN"] not in result.stdout + result.stderr


def test_the_master_key_alone_opens_the_admin_inbox(host: str) -> None:
    assert requests.get(f"{host}/api/ops/inbox", headers=KEY, timeout=10).status_code == 401
    response = requests.get(
        f"{host}/api/ops/inbox", headers={"x-functions-key": MASTER_KEY}, timeout=10
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_duplicates_across_processes_reach_twilio_once(
    devhost: DevHost,
    standin: TwilioStandIn,
    azurite: Azurite,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    second = DevHost(devhost_settings(standin, azurite), tmp_path_factory.mktemp("second"))
    try:
        second.wait_ready()
        before = len(standin.requests)
        barrier = threading.Barrier(40)
        statuses: list[int] = []

        def app(url: str) -> None:
            barrier.wait()
            response = requests.post(
                f"{url}/api/sendSms",
                json={"to": "+14155551234", "body": "once"},
                headers={**KEY, "Idempotency-Key": "across-processes"},
                timeout=30,
            )
            statuses.append(response.status_code)

        threads = [
            threading.Thread(target=app, args=(url,)) for url in [devhost.url, second.url] * 20
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        second.stop()
    assert len(standin.requests) - before == 1
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}


def test_the_hosts_log_holds_no_keys_numbers_or_bodies(devhost: DevHost, host: str) -> None:
    requests.post(
        f"{host}/api/sendSms?code={FUNCTION_KEY}",
        json={"to": "+14155551234", "body": "secret meeting at noon"},
        timeout=10,
    )
    log = devhost.output()
    assert "POST /api/sendSms -> 201" in log
    for secret in (FUNCTION_KEY, MASTER_KEY, AUTH_TOKEN, "14155551234", "secret meeting"):
        assert secret not in log


def test_the_master_key_runs_the_retention_timer_now(host: str) -> None:
    """Core Tools' convention: POST /admin/functions/{name}; 202 once it has run."""
    url = f"{host}/admin/functions/retention"
    assert requests.post(url, json={"input": ""}, timeout=30).status_code == 401
    refused = requests.post(
        url, json={"input": ""}, headers={"x-functions-key": FUNCTION_KEY}, timeout=30
    )
    assert refused.status_code == 401
    ran = requests.post(
        url, json={"input": ""}, headers={"x-functions-key": MASTER_KEY}, timeout=30
    )
    assert ran.status_code == 202


def test_half_sent_headers_are_cut_off_and_other_callers_still_served(devhost: DevHost) -> None:
    """A client that never finishes its headers (slowloris) is disconnected after
    DEVHOST_HEADER_TIMEOUT (2 s in the tests), however slowly it keeps sending."""
    with socket.create_connection(("127.0.0.1", devhost.port), timeout=10) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert requests.get(f"{devhost.url}/api/health", timeout=5).status_code in (200, 503)
        closed = False
        while time.monotonic() - started < 8:
            try:
                slow.sendall(b"X-Drip: 1\r\n")  # a byte now and then never resets the clock
                if slow.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.25)
        assert closed, "the half-sent request held its connection"
        assert 1.5 < time.monotonic() - started < 5


def test_an_empty_query_value_is_no_value_as_in_azure(host: str) -> None:
    # The host drops empty query values (ToRpcHttp), so `?pageSize=` is the default page size.
    response = requests.get(f"{host}/api/inbox?pageSize=&continuation=", headers=KEY, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"  # the worker adds no charset
    assert "items" in response.json()
    bad = requests.get(f"{host}/api/inbox?pageSize=0", headers=KEY, timeout=10)
    assert bad.status_code == 422  # a value given is still checked
