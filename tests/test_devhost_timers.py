"""The local host runs timer triggers as the Functions host does: on their NCRONTAB schedule,
at start when asked, and now through POST /admin/functions/{name} with the master key."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest

from devhost.host import FunctionHost, Keys, timer_functions
from tests.support.asgi import asgi_request

KEYS = Keys(function="function-key-0123456789", master="master-key-0123456789")


def timer_app(
    schedule: str = "0 30 3 * * *", *, on_startup: bool = False
) -> tuple[func.FunctionApp, list[bool]]:
    ran: list[bool] = []
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=on_startup)
    def cleanup(timer: func.TimerRequest) -> None:
        ran.append(timer.past_due)

    return app, ran


def admin_post(host: FunctionHost, path: str, key: str | None) -> int:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-functions-key"] = key
    return asgi_request(host, "POST", path, headers=headers, body=b'{"input": ""}')[0]


def test_ncrontab_has_six_fields_seconds_first() -> None:
    app, _ = timer_app("0 30 3 * * *")
    [timer] = timer_functions(app.get_functions())
    moment = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert timer.next_after(moment) == datetime(2026, 12, 1, 3, 30, tzinfo=UTC)
    every_five, _ = timer_app("*/5 * * * * *")
    [fast] = timer_functions(every_five.get_functions())
    assert fast.next_after(moment) == datetime(2026, 11, 30, 14, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize("schedule", ["0 3 * * *", "61 * * * * *", "every day"])
def test_an_invalid_schedule_stops_the_host_naming_the_function(schedule: str) -> None:
    app, _ = timer_app(schedule)
    with pytest.raises(ValueError, match="cleanup: invalid NCRONTAB schedule"):
        FunctionHost(app, route_prefix="api", keys=KEYS)


def test_the_master_key_runs_a_timer_function_now() -> None:
    app, ran = timer_app()
    host = FunctionHost(app, route_prefix="api", keys=KEYS)
    assert admin_post(host, "/admin/functions/cleanup", KEYS.master) == 202
    assert ran == [False]
    assert admin_post(host, "/admin/functions/Cleanup", KEYS.master) == 202  # case-insensitive
    assert len(ran) == 2


@pytest.mark.parametrize("key", [None, KEYS.function, "wrong"])
def test_only_the_master_key_may_run_a_function(key: str | None) -> None:
    app, ran = timer_app()
    host = FunctionHost(app, route_prefix="api", keys=KEYS)
    assert admin_post(host, "/admin/functions/cleanup", key) == 401
    assert ran == []


def test_an_unknown_function_is_404() -> None:
    app, _ = timer_app()
    host = FunctionHost(app, route_prefix="api", keys=KEYS)
    assert admin_post(host, "/admin/functions/nothing", KEYS.master) == 404


def run_lifespan(host: FunctionHost, seconds: float) -> None:
    """Start the host, let it run `seconds`, stop it."""

    async def main() -> None:
        messages = [{"type": "lifespan.startup"}]
        sent: list[MutableMapping[str, Any]] = []
        started = asyncio.Event()
        stop = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await stop.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "lifespan.startup.complete":
                started.set()

        task = asyncio.create_task(host({"type": "lifespan"}, receive, send))
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.sleep(seconds)
        stop.set()
        await task

    asyncio.run(main())


def test_run_on_startup_is_honoured_and_nothing_runs_before_its_time() -> None:
    app, ran = timer_app("0 30 3 * * *", on_startup=True)
    run_lifespan(FunctionHost(app, route_prefix="api", keys=KEYS), 0.3)
    assert ran == [False]
    app, ran = timer_app("0 30 3 * * *")
    run_lifespan(FunctionHost(app, route_prefix="api", keys=KEYS), 0.3)
    assert ran == []


def test_a_timer_runs_on_its_schedule() -> None:
    app, ran = timer_app("* * * * * *")  # every second
    run_lifespan(FunctionHost(app, route_prefix="api", keys=KEYS), 2.5)
    assert 1 <= len(ran) <= 3
