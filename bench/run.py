"""Ahoy's performance figures, each against its baseline measured in the same run.

    .venv/bin/python -m bench.run [--quick] [--write bench/RESULTS.md]

1. cold import of function_app vs a naive app with the libraries it uses imported at module
   top (bench/naive_app.py; goal <= 0.3x the naive delta); and cold start on Python 3.13 with
   Azure's runtime against 3.11 (bench/python_versions.py, paired);
2. first signed /api/twiml request in a fresh process: which heavy modules it loaded, and its
   time to first response vs the naive app;
3. warm overhead in-process, every call invoked through Azure's execution runtime (Ahoy's
   functions and the floors alike, bench/runtime_app.py): sendSms and makeCall handlers
   (Twilio answered by an in-memory transport, storage on Azurite) vs the same Twilio call plus
   the same storage requests made directly, as Ahoy makes them (all but the last at once, then
   the last): Ahoy's own code (goal <= 1.3x); and, for reference, vs the design's floor of
   storage, one write before and one after (bench/storage.py holds the design to its goals
   with storage as far away as Azure's); TwiML render of a sealed flow with its signature
   checked vs a direct handler that checks the same signature on the same request and builds
   the same VoiceResponse (goal <= 1.5x), and, for reference, vs those two library calls alone; the
   runtime's own cost per invocation (an empty function through it vs called directly);
4. connection reuse: TCP connections opened for 200 sequential sends to a loopback stand-in
   (goal: exactly 1);
5. local host throughput for /api/twiml at 32 connections vs a bare ASGI hello world on the
   same server (goal >= 0.5x), and where it goes: the local host with an empty function, and
   with only the floor of /api/twiml (bench/floor_app.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["twilio.rest", "requests", "urllib3", "aiohttp", "azure.data.tables"]
TOKEN = "bench-auth-token"
ACCOUNT = "AC" + "0" * 32
SETTINGS = {
    "TWILIO_ACCOUNT_SID": ACCOUNT,
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_FROM_NUMBER": "+14155550100",
    "PUBLIC_BASE_URL": "https://ahoy.example.net",
    "AHOY_FLOW_KEY": base64.b64encode(bytes(range(32))).decode(),
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "CALLER_AUTH": "key",  # a server's named key (below), no user: nothing else to sign in
    "CALLER_KEYS": "bench:" + hashlib.sha256(b"bench-server-key").hexdigest(),
    "RATE_LIMIT_PER_MINUTE": "10000000",
    "DAILY_QUOTA": "10000000",
    "DESTINATION_LIMIT_PER_HOUR": "10000000",
    "GLOBAL_DAILY_CAP": "10000000",
}
Row = tuple[str, str, str, str, str]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--write", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    os.environ.update(SETTINGS)
    sys.path.insert(0, str(ROOT))
    runs = 3 if args.quick else 15
    rows: list[Row] = []
    rows += cold_import(runs)
    rows += python_versions(runs)
    rows += first_request(runs)
    with tempfile.TemporaryDirectory() as tmp:
        from tests.support.azurite import Azurite

        azurite = Azurite(Path(tmp) / "azurite").start()
        try:
            os.environ["AzureWebJobsStorage"] = azurite.connection_string
            rows += warm_overhead(100 if args.quick else 300)
            rows += connection_reuse()
        finally:
            azurite.stop()
        rows += throughput(3.0 if args.quick else 10.0, Path(tmp))
    table = render(rows)
    print(table)
    storage = storage_figures(args.quick)
    print(storage)
    if args.write:
        args.write.write_text(results_page(table) + STORAGE_SECTION.format(table=storage))
    return 0


def storage_figures(quick: bool) -> str:
    """bench/storage.py's table (its own process: it starts local hosts with their settings)."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    out = subprocess.run(
        [sys.executable, "-m", "bench.storage", *(["--quick"] if quick else [])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(line for line in out.splitlines() if line.startswith(("|", "Storage delay")))


# --- 1 and 2: cold start --------------------------------------------------------------------


def _fresh(code: str, *argv: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


COLD_IMPORT = """
import json, sys, time
import azure.functions
started = time.perf_counter()
__import__(sys.argv[1])
print(json.dumps((time.perf_counter() - started) * 1000))
"""


def cold_import(runs: int) -> list[Row]:
    ours = statistics.median(_fresh(COLD_IMPORT, "function_app") for _ in range(runs))
    naive = statistics.median(_fresh(COLD_IMPORT, "bench.naive_app") for _ in range(runs))
    return [
        (
            "1. cold import (minus azure.functions)",
            f"{ours:.1f} ms",
            f"{naive:.1f} ms (naive app)",
            f"{ours / naive:.2f}x",
            "<= 0.3x " + _verdict(ours / naive <= 0.3),
        )
    ]


def python_versions(runs: int) -> list[Row]:
    from bench.python_versions import paired

    found = paired(runs)
    if not found:
        return [("1. Python 3.13 vs 3.11", "-", "no Python 3.11 here", "-", "")]
    return [
        (
            f"1. {figure}, Python 3.13 + azure-functions-runtime",
            f"{new:.1f} ms",
            f"{old:.1f} ms (Python 3.11, azure-functions 1.x, paired)",
            f"{ratio:.2f}x",
            "",
        )
        for figure, new, old, ratio in found
    ]


FIRST_REQUEST = """
import asyncio, json, sys, time
import azure.functions as func
url, signature, body = sys.argv[2], sys.argv[3], sys.argv[4].encode()
started = time.perf_counter()
__import__(sys.argv[1])
from api.edge.twilio_routes import twiml
request = func.HttpRequest(
    "POST", url, body=body,
    headers={"X-Twilio-Signature": signature,
             "Content-Type": "application/x-www-form-urlencoded"},
)
response = asyncio.run(twiml(request))
elapsed = (time.perf_counter() - started) * 1000
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"ms": elapsed, "status": response.status_code,
                  "xml": response.get_body().decode(), "heavy": heavy}))
""".replace("HEAVY", repr(HEAVY))


def signed_twiml_request() -> tuple[str, str, str]:
    """A sealed message flow as makeCall issues it, POSTed and signed as Twilio does."""
    from twilio.request_validator import RequestValidator

    from api.core.sealing import seal

    token = seal(
        [("Message[0]", "Hello from Ahoy"), ("Voice", "woman")],
        caller="bench",
        ttl_seconds=900,
        key=base64.b64decode(SETTINGS["AHOY_FLOW_KEY"]),
    )
    url = f"{SETTINGS['PUBLIC_BASE_URL']}/api/twiml?flow={token}"
    form = {"CallSid": "CA" + "1" * 32, "AccountSid": ACCOUNT, "CallStatus": "in-progress"}
    return url, RequestValidator(TOKEN).compute_signature(url, form), urlencode(form)


def first_request(runs: int) -> list[Row]:
    url, signature, body = signed_twiml_request()
    ours = [_fresh(FIRST_REQUEST, "function_app", url, signature, body) for _ in range(runs)]
    naive = [_fresh(FIRST_REQUEST, "bench.naive_app", url, signature, body) for _ in range(runs)]
    assert all(r["status"] == 200 and "Hello from Ahoy" in r["xml"] for r in ours + naive)
    heavy = sorted({m for r in ours for m in r["heavy"]})
    ours_ms = statistics.median(r["ms"] for r in ours)
    naive_ms = statistics.median(r["ms"] for r in naive)
    return [
        (
            "2. first /api/twiml in a fresh process",
            f"{ours_ms:.1f} ms",
            f"{naive_ms:.1f} ms (naive app)",
            f"{ours_ms / naive_ms:.2f}x",
            f"heavy modules loaded: {', '.join(heavy) or 'none'} " + _verdict(not heavy),
        )
    ]


# --- 3 and 4: warm, in-process -----------------------------------------------------------


def _in_memory_twilio() -> Any:
    """Twilio's REST API answered in memory: no sockets, the same JSON Twilio sends."""
    import logging

    from twilio.http import HttpClient
    from twilio.http.response import Response

    class InMemoryTwilio(HttpClient):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(logging.getLogger("bench.twilio"), False, None)

        def request(
            self,
            method: str,
            uri: str,
            params: Any = None,
            data: Any = None,
            headers: Any = None,
            auth: Any = None,
            timeout: Any = None,
            allow_redirects: bool = False,
        ) -> Response:
            kind = "CA" if uri.endswith("/Calls.json") else "SM"
            return Response(
                201,
                json.dumps(
                    {
                        "sid": kind + uuid.uuid4().hex,
                        "status": "queued",
                        "to": data["To"],
                        "from": data.get("From"),
                        "date_created": "Sat, 28 Nov 2026 00:00:00 +0000",
                    }
                ),
                {},
            )

    return InMemoryTwilio()


def _drive(coroutine: Any) -> Any:
    """Run a coroutine that never awaits to its end, with no event loop in the way."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine awaited something")


def _paired(
    ahoy: Callable[[], object], floor: Callable[[], object], n: int, rounds: int
) -> tuple[float, float, float]:
    """Seconds per call of each (medians over rounds) and the median of the rounds' ratios.

    Each round runs a block of n calls of one, then of the other, so the two blocks of a round
    share the machine's state of the moment; the median of those paired ratios is steady on a
    noisy machine where a ratio of two separate best times drifts by 0.1x from run to run."""
    for _ in range(10):
        ahoy()
        floor()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for side, run in zip(times, (ahoy, floor), strict=True):
            started = time.perf_counter()
            for _ in range(n):
                run()
            side.append((time.perf_counter() - started) / n)
    ratio = statistics.median(a / f for a, f in zip(*times, strict=True))
    return statistics.median(times[0]), statistics.median(times[1]), ratio


def _storage_round_trips(action: Callable[[], None]) -> list[str]:
    from azure.core.pipeline.transport import RequestsTransport

    seen: list[str] = []
    original = RequestsTransport.send

    def counting(self: Any, request: Any, **kwargs: Any) -> Any:
        seen.append(request.method)
        return original(self, request, **kwargs)

    RequestsTransport.send = counting  # type: ignore[method-assign]
    try:
        action()
    finally:
        RequestsTransport.send = original  # type: ignore[method-assign]
    return seen


def warm_overhead(n: int) -> list[Row]:
    """Figure 3, every call invoked through Azure's execution runtime, Ahoy's and the floor's."""
    import azure.functions as func
    from azure.data.tables import TableServiceClient, UpdateMode
    from twilio.request_validator import RequestValidator
    from twilio.rest import Client
    from twilio.twiml.voice_response import VoiceResponse

    from api.core import root
    from api.core.settings import get_settings
    from api.stores.twilio_service import TwilioService
    from bench.in_runtime import FLOORS, Invoker

    invoke = Invoker()
    transport = _in_memory_twilio()
    service = TwilioService(get_settings(), http_client=transport)
    with root.use(twilio=service):  # Twilio in memory, through the composition root
        direct = Client(
            ACCOUNT,
            TOKEN,
            ACCOUNT,
            http_client=transport,
            environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
        )
        table = TableServiceClient.from_connection_string(
            os.environ["AzureWebJobsStorage"]
        ).create_table_if_not_exists("benchfloor")
        table.upsert_entity({"PartitionKey": "p", "RowKey": "existing", "Count": 0})

        def app_call(function: str, path: str, body: dict[str, Any]) -> None:
            status, answer = invoke(
                function,
                path,
                body=json.dumps(body).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": uuid.uuid4().hex,
                    "X-Ahoy-Key": "bench-server-key",
                },
            )
            assert status in (200, 201), answer

        def floor_call(name: str, body: dict[str, Any]) -> None:
            status, _ = invoke(
                "floor",
                f"/api/bench/floor/{name}",
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "X-Ahoy-Key": "bench-server-key"},
                route_params={"name": name},
            )
            assert status == 201

        def one(method: str) -> None:
            if method == "GET":
                table.get_entity("p", "existing")
            elif method == "POST":
                table.create_entity({"PartitionKey": "p", "RowKey": uuid.uuid4().hex})
            else:
                table.update_entity(
                    {"PartitionKey": "p", "RowKey": "existing", "Count": 1}, mode=UpdateMode.REPLACE
                )

        pool = ThreadPoolExecutor(8)

        def floor_storage(methods: list[str]) -> Callable[[], None]:
            """`methods` made directly: all but the last at once, then the last."""

            def replay() -> None:
                list(pool.map(one, methods[:-1]))
                one(methods[-1])

            return replay

        def floor_function(
            twilio_call: Callable[[], object], storage: Callable[[], None]
        ) -> Callable[[func.HttpRequest], func.HttpResponse]:
            def handle(req: func.HttpRequest) -> func.HttpResponse:
                twilio_call()
                storage()
                return func.HttpResponse("{}", status_code=201, mimetype="application/json")

            return handle

        rows: list[Row] = []
        cases = [
            (
                "sendSms",
                "send_sms",
                "/api/sendSms",
                {"to": "+14155551234", "body": "ahoy hoy"},
                lambda: direct.api.v2010.account.messages.create(
                    to="+14155551234",
                    from_="+14155550100",
                    body="ahoy hoy",
                    status_callback="https://ahoy.example.net/api/status?ref=" + "0" * 32,
                ),
            ),
            (
                "makeCall",
                "make_call",
                "/api/makeCall",
                {"to": "+14155551234", "message": "Hello"},
                lambda: direct.api.v2010.account.calls.create(
                    to="+14155551234",
                    from_="+14155550100",
                    url="https://ahoy.example.net/api/twiml",
                    status_callback="https://ahoy.example.net/api/status?ref=" + "0" * 32,
                    status_callback_event=["initiated", "ringing", "answered", "completed"],
                    status_callback_method="POST",
                    time_limit=600,
                ),
            ),
        ]
        for name, function, path, body, twilio_call in cases:
            app_call(function, path, body)  # tables exist, connections open
            methods = _storage_round_trips(lambda: app_call(function, path, body))  # noqa: B023
            baselines = [
                (
                    f"3. warm {name} (in-memory Twilio, Azurite)",
                    floor_storage(methods),
                    f"Twilio call + the same {len(methods)} storage requests made directly:"
                    f" {', '.join(methods)}",
                    True,
                ),
                (
                    f"3. (for reference) warm {name} against the design's floor",
                    floor_storage(["POST", "PUT"]),
                    "Twilio call + 1 storage write before and 1 after",
                    False,
                ),
            ]
            for label, storage, described, goal in baselines:
                FLOORS[name] = floor_function(twilio_call, storage)
                ahoy, floor, ratio = _paired(
                    lambda: app_call(function, path, body),  # noqa: B023
                    lambda: floor_call(name, body),  # noqa: B023
                    max(5, n // 10),
                    rounds=20,
                )
                verdict = "<= 1.3x " + _verdict(ratio <= 1.3) if goal else ""
                rows.append(
                    (
                        label,
                        f"{ahoy * 1000:.2f} ms",
                        f"{floor * 1000:.2f} ms ({described})",
                        f"{ratio:.2f}x",
                        verdict,
                    )
                )
        pool.shutdown()

        url, signature, body_text = signed_twiml_request()
        blocks, rounds = n, 40
        path = url.removeprefix(SETTINGS["PUBLIC_BASE_URL"])
        twiml_headers = {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        validator = RequestValidator(TOKEN)

        def direct_handler(req: func.HttpRequest) -> func.HttpResponse:
            """The floor: the same request checked and answered directly, nothing of Ahoy's."""
            form = dict(parse_qsl(req.get_body().decode()))
            if not validator.validate(url, form, req.headers.get("X-Twilio-Signature", "")):
                return func.HttpResponse(status_code=403)
            response = VoiceResponse()
            response.say("Hello from Ahoy", voice="woman")
            return func.HttpResponse(str(response.to_xml()), mimetype="text/xml")

        FLOORS["twiml"] = direct_handler

        def ours() -> bytes:
            status, answer = invoke("twiml", path, body=body_text.encode(), headers=twiml_headers)
            assert status == 200, answer
            return answer

        def theirs() -> bytes:
            status, answer = invoke(
                "async_floor",  # Ahoy's twiml is async too: both run on the loop
                "/api/bench/async-floor/twiml",
                body=body_text.encode(),
                headers=twiml_headers,
                route_params={"name": "twiml"},
            )
            assert status == 200, answer
            return answer

        def calls_only() -> None:
            """Below the floor: only the two library calls, on a form parsed beforehand."""
            assert validator.validate(url, bare_form, signature)
            response = VoiceResponse()
            response.say("Hello from Ahoy", voice="woman")
            response.to_xml()

        bare_form = dict(parse_qsl(body_text))
        assert ours() == theirs()
        ahoy, floor, ratio = _paired(ours, theirs, blocks, rounds)
        ahoy_again, calls, against_calls = _paired(ours, calls_only, blocks, rounds)
        rows.append(
            (
                "3. warm TwiML render (sealed flow, signature)",
                f"{ahoy * 1e6:.0f} us",
                f"{floor * 1e6:.0f} us"
                " (direct handler: parse form, RequestValidator, VoiceResponse)",
                f"{ratio:.2f}x",
                "<= 1.5x " + _verdict(ratio <= 1.5),
            )
        )
        rows.append(
            (
                "3. (for reference) the same against the two library calls alone, no runtime",
                f"{ahoy_again * 1e6:.0f} us",
                f"{calls * 1e6:.0f} us (validate on a parsed dict + VoiceResponse.to_xml)",
                f"{against_calls:.2f}x",
                "",
            )
        )
        rows += runtime_cost(invoke, blocks, rounds)
        invoke.close()
        return rows


def runtime_cost(invoke: Any, blocks: int, rounds: int) -> list[Row]:
    """What the runtime itself costs an invocation: an empty function invoked through it (as the
    local host invokes, request conversion included) against the same function called directly
    on a request built beforehand."""
    import azure.functions as func

    def direct() -> None:
        func.HttpResponse("")

    async def direct_async() -> func.HttpResponse:
        return func.HttpResponse("")

    rows: list[Row] = []
    for label, name, path, baseline in [
        ("sync, on the runtime's pool", "empty", "/api/bench/empty", direct),
        (
            "async, on the loop",
            "async_empty",
            "/api/bench/async-empty",
            lambda: _drive(direct_async()),
        ),
    ]:
        through, alone, _ = _paired(
            lambda: invoke(name, path, method="GET"),  # noqa: B023
            baseline,
            blocks,
            rounds,
        )
        rows.append(
            (
                f"3. runtime's own cost per invocation ({label})",
                f"{through * 1e6:.0f} us",
                f"{alone * 1e6:.0f} us (the empty function called directly)",
                f"+{(through - alone) * 1e6:.0f} us",
                "",
            )
        )
    return rows


def connection_reuse() -> list[Row]:
    import azure.functions as func

    from api.core import root
    from api.core.settings import get_settings
    from api.edge.app_routes import send_sms
    from api.stores.twilio_service import TwilioService
    from tests.support.twilio_standin import TwilioStandIn

    with TwilioStandIn() as standin:
        os.environ["TWILIO_API_BASE_URL"] = standin.url
        root.reset()
        service = TwilioService(get_settings())
        statuses = set()
        for _ in range(200):
            request = func.HttpRequest(
                "POST",
                "http://127.0.0.1:7071/api/sendSms",
                body=json.dumps({"to": "+14155551234", "body": "hi"}).encode(),
                headers={"Content-Type": "application/json", "X-Ahoy-Key": "bench-server-key"},
            )
            with root.use(twilio=service):
                statuses.add(send_sms(request).status_code)
        assert statuses == {201}, statuses
        sent, connections = len(standin.requests), standin.connections
    return [
        (
            "4. connection reuse",
            f"{connections} TCP connection(s)",
            f"{sent} sequential sends",
            "",
            "exactly 1 " + _verdict(connections == 1),
        )
    ]


# --- 5: the local host under load ----------------------------------------------------------


async def _load(
    port: int, request: bytes, seconds: float, connections: int
) -> tuple[int, int, list[float]]:
    latencies: list[float] = []
    errors = 0
    until = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies), errors, latencies


def _serve(
    command: list[str], port: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    import socket

    output = log.open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{command} did not start: {log.read_text()}")


def throughput(seconds: float, tmp: Path) -> list[Row]:
    """The servers run side by side; load alternates between them in one-second rounds, and
    each round's ratio compares neighbours in time, so the machine's drift hits both alike.
    Neither server writes an access log (uvicorn's --no-access-log, devhost's likewise)."""
    from twilio.request_validator import RequestValidator

    from tests.support.devhost_process import free_port

    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    no_settings = str(tmp / "none.json")  # the environment alone configures the app
    devhost = [sys.executable, "-m", "devhost", "--no-access-log", "--settings", no_settings]
    twiml_path = f"/api/twiml?{urlsplit(signed_twiml_request()[0]).query}"
    floor_app = ["--root", str(ROOT / "bench"), "--script-file", "floor_app.py"]
    plans = {
        "hello": ([*uvicorn, "bench.hello_asgi:app"], "/"),
        "host": ([*devhost, *floor_app], "/api/hello"),
        "floor": ([*devhost, *floor_app], twiml_path),
        "twiml": (devhost, twiml_path),
    }
    servers: dict[str, tuple[int, bytes, subprocess.Popen[bytes]]] = {}
    for name, (command, path) in plans.items():
        port = free_port()
        env = {**os.environ, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
        url = f"http://127.0.0.1:{port}{path}"
        signature = RequestValidator(TOKEN).compute_signature(url, {})
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"X-Twilio-Signature: {signature}\r\n\r\n"
        ).encode()
        process = _serve([*command, "--port", str(port)], port, env, tmp / f"{name}.log")
        servers[name] = (port, request, process)
    rounds = max(2, int(seconds))
    counts: dict[str, list[int]] = {name: [] for name in servers}
    errors = dict.fromkeys(servers, 0)
    latencies: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for port, request, _ in servers.values():
            asyncio.run(_load(port, request, 0.5, 32))  # warm-up
        for _ in range(rounds):
            for name, (port, request, _) in servers.items():
                count, failed, seen = asyncio.run(_load(port, request, 1.0, 32))
                counts[name].append(count)
                errors[name] += failed
                latencies[name] += seen
    finally:
        for _, _, process in servers.values():
            process.terminate()
            process.wait()

    def describe(name: str) -> str:
        seen = sorted(latencies[name])
        p50, p99 = seen[len(seen) // 2], seen[int(len(seen) * 0.99)]
        return (
            f"{sum(counts[name]) / rounds:.0f} req/s, p50 {p50 * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, {errors[name]} errors"
        )

    def ratio(name: str, baseline: str) -> float:
        return statistics.median(a / b for a, b in zip(counts[name], counts[baseline], strict=True))

    twiml = ratio("twiml", "hello")
    return [
        (
            "5. local host, /api/twiml at 32 connections",
            describe("twiml"),
            describe("hello") + " (bare ASGI hello world, same uvicorn)",
            f"{twiml:.2f}x",
            ">= 0.5x " + _verdict(twiml >= 0.5 and errors["twiml"] == 0),
        ),
        (
            "5. (where it goes) local host, an empty function",
            describe("host"),
            "the bare hello world above",
            f"{ratio('host', 'hello'):.2f}x",
            "",
        ),
        (
            "5. (where it goes) local host, the floor of /api/twiml alone",
            describe("floor"),
            "the bare hello world above",
            f"{ratio('floor', 'hello'):.2f}x",
            "",
        ),
    ]


def _verdict(ok: bool) -> str:
    return "(met)" if ok else "(MISSED)"


def render(rows: list[Row]) -> str:
    lines = ["| figure | Ahoy | baseline | ratio | goal |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def results_page(table: str) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return f"""# Benchmark results

Produced by `.venv/bin/python -m bench.run --write bench/RESULTS.md` on
{time.strftime("%Y-%m-%d")}: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()},
{platform.system()} {platform.release()}. Every figure is compared with its baseline measured in
the same run; absolute times are noisy on a shared 2-core machine, ratios much less so.

{table}

## How to read it

- **Azure's runtime in every figure.** Figures 3 and 5 go through `azure-functions-runtime`,
  the execution runtime Azure runs on Python 3.13: figure 3 invokes Ahoy's functions and the
  floors alike through it in process (`bench/runtime_app.py`), figure 5 through the local
  host, which hands every request to it. So a ratio still says what Ahoy adds, and the
  runtime's own cost per invocation is a row of its own: request conversion, argument
  decoding, the invocation context, the answer's encoding, and for a sync function the hop to
  the runtime's pool and back. Figure 1's two paired rows compare cold start with Python 3.11
  (azure-functions 1.x, the app indexed by `get_functions()`), same code, same machine: the
  import is no slower on 3.13; getting ready to invoke costs the runtime's init on top (its
  binding registry, every function's annotations checked, the metadata built).
- **50 clients and the runtime's pool.** The local hosts of the storage figures run the
  runtime's default pool for sync functions, min(32, cores + 4) = 6 threads here, so 50
  clients over 2 processes queue behind 12 threads: p50 about 3x the floor (the floor makes
  its requests directly, one thread per client). With `PYTHON_THREADPOOL_THREAD_COUNT=16` (what the
  template now sets: the instance's `perInstanceConcurrency`) the same run gave p50 411-477 ms
  against a floor of 257-272 ms, 1.6x-1.75x. Before the runtime, the local host ran sync
  functions on 32 threads of its own.
- **Method.** Figures 3 alternate blocks of calls between Ahoy and its floor and report the
  median of the rounds' ratios (the two blocks of a round share the machine's state); figure 5
  alternates one-second rounds between the servers the same way. Neither server in figure 5
  writes an access log.
- **Send overhead.** Figure 3's sends are measured against the same Twilio call and the same
  storage requests made directly, as Ahoy makes them (all but the last at once, then the
  last): what Ahoy's own code adds. The reference row below each compares with the design's
  floor (one write before Twilio and one after): in process, against Azurite with no network
  delay, that gap is the CPU of the three counters' requests the limits need (the SDK spends
  about 4 ms of CPU on each); `bench/storage.py` (below) holds the design to its goals with
  storage as far away as Azure's.
- **TwiML floor.** The floor is a Functions handler with nothing of Ahoy's in it, given the
  same `func.HttpRequest`: it parses the form the signature covers, calls
  `RequestValidator.validate`, builds the same `VoiceResponse` and returns it as a
  `func.HttpResponse`. The reference row below it compares Ahoy's handler with the two
  library calls alone on a form parsed beforehand, which no handler can do for a request.
  What Ahoy adds: opening the AES-GCM sealed flow (base64, decrypt, JSON), reading its
  Twimlets parameters, rebuilding the URL Twilio signed from PUBLIC_BASE_URL, and the
  problem-answering wrapper.
- **Throughput.** The two "where it goes" rows split the gap: the local host with an empty
  function (uvicorn, the host's rules and the runtime's invocation), and the local host
  serving only the floor of /api/twiml. Before the runtime was in the loop the floor alone sat
  at about the 0.5x goal (0.42x for /api/twiml); the runtime's per-invocation cost now puts
  even an empty function under it, so the goal, written for a host that called handlers
  directly, cannot be met with Azure's own runtime in the loop on this machine. What it would
  take: a cheaper invocation in the runtime itself (its cost is measured in figure 3), which
  is Azure's code, not Ahoy's; Ahoy's own share is the gap between the floor row and the
  /api/twiml row.
"""


STORAGE_SECTION = """

# Storage as far away as Azure's

Printed by `bench/storage.py`, which `bench.run` runs after the figures above (Azurite 3.35.0;
the run below on the same machine as those).

{table}

## How to read it

- **Round trips.** A first send with an Idempotency-Key on a warm process makes 5 storage
  requests, each a single-entity write: the ledger row (which is the key's claim, written
  with an insert-if-absent) and the caller's and destination's counters (the caller's row
  holds its minute and day) at once, then a global shard, only for a send its own limits
  admitted (so a burst its own limits refuse never holds a slot of the cap: issue 22), then
  one update of the row after Twilio (its status and the answer a retry with the key
  replays): 2 round trips before Twilio and 3 in all. Taking the cap after the others cost
  the 1-client ratio about 0.03x (1.06x/1.07x before it, 1.09x/1.12x since, goal 1.15x).
  The SID index is written by the first status callback; a stale counter ETag costs a re-read
  (a global shard's: one query of the shards' partition).
- **Why no transaction.** An entity-group transaction costs far more than a plain write, and
  most of it is the SDK's own CPU, which the app pays wherever its storage is:
  `.venv/bin/python -m bench.azurite_costs` measured, on this machine, an insert at 6.3 ms
  (3.9 ms of it the SDK's CPU) and a transaction at 13.9 ms with one operation and 18.5 ms
  with four (10.8 and 14.2 ms of CPU: azure-core builds and parses the multipart body with the
  `email` package and starts two thread pools per transaction). The earlier layout (a
  claim-and-row transaction, and another after Twilio with the SID index and the key's
  answer) measured 1.26x and 1.30x at 1 client; moving the caller's counters into the claim
  transaction gave 1.19x and 1.23x; no transaction on the send path gives the figures above.
- **Global shards.** The daily cap is split over 128 rows. Each process takes from the first
  shard with room in a random order of its own and skips shards its other sends are writing,
  so two processes rarely write the same row and the ETags each remembers stay fresh; after a
  conflict it reads the whole partition again. At 50 clients over 2 processes this cut the
  conflicts (412s) from about 0.45 a send (32 shards picked at random) to under 0.1.
- **Exactness** (tests, not this bench): `tests/test_storage_load.py` runs 600 concurrent
  sends over 2 processes with `GLOBAL_DAILY_CAP=500` (exactly 500 sent, 100 `503`), 20
  concurrent sends by one caller with `RATE_LIMIT_PER_MINUTE=5` (exactly 5), and 2,000
  concurrent callbacks (every message ends `delivered`, each status once).
- **50 clients**: measured after an untimed burst of as many sends through each process
  (a process's first requests load modules and fill its connection and thread pools: a cold
  start, which figures 1 and 2 measure, not load). p50 is well above the floor's at the same
  concurrency: two host processes, Azurite, the proxy and the stand-in share two cores, and
  every request costs Ahoy CPU (pydantic, the Twilio and Tables SDKs); the floor is one
  process making two writes.
- **Run to run.** Over this layout's runs (quick and full) the 1-client ratio ranged from
  1.12x to 1.18x: the design sits at the goal, within this machine's spread between runs; the
  table above is one full run. One caller's sends at once (`.venv/bin/python -m
  bench.ledger_load --sends 600`: 20 clients, one caller, every fifth send retried with its
  key): 18 sends/s, nothing lost or sent twice; the previous layout made 3 sends/s there, and
  5 requests outlived the client's 30 s timeout while the caller's counter row was fought
  over (each process now lets one of its sends write a counter row at a time).
"""


if __name__ == "__main__":
    raise SystemExit(main())
