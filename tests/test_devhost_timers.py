"""The local host runs timer triggers as the Functions host does: on their NCRONTAB schedule,
at start when asked, and now through POST /admin/functions/{name} with the master key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from devhost.host import FunctionHost
from devhost.runtime import AppRefused
from tests.support.asgi import asgi_request, run_lifespan
from tests.support.probe_apps import KEYS, SEEN, load_probe


def timer_app(
    tmp_path: Path, schedule: str = "0 30 3 * * *", *, on_startup: bool = False
) -> FunctionHost:
    """The local host serving one timer function that records what it was given in SEEN."""
    return load_probe(
        tmp_path,
        f"""
        import azure.functions as func
        from tests.support.probe_apps import SEEN

        app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

        @app.timer_trigger(schedule="{schedule}", arg_name="timer", run_on_startup={on_startup})
        def cleanup(timer: func.TimerRequest) -> None:
            SEEN.append(timer)
        """,
    )


def admin_post(host: FunctionHost, path: str, key: str | None) -> int:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-functions-key"] = key
    return asgi_request(host, "POST", path, headers=headers, body=b'{"input": ""}')[0]


def test_ncrontab_has_six_fields_seconds_first(tmp_path: Path) -> None:
    moment = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    timer = timer_app(tmp_path, "0 30 3 * * *").timers["cleanup"]
    assert timer.next_after(moment) == datetime(2026, 12, 1, 3, 30, tzinfo=UTC)
    fast = timer_app(tmp_path, "*/5 * * * * *").timers["cleanup"]
    assert fast.next_after(moment) == datetime(2026, 11, 30, 14, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize("schedule", ["0 3 * * *", "61 * * * * *", "every day"])
def test_an_invalid_schedule_stops_the_host_naming_the_function(
    tmp_path: Path, schedule: str
) -> None:
    with pytest.raises(AppRefused, match="cleanup: invalid NCRONTAB schedule"):
        timer_app(tmp_path, schedule)


def test_the_master_key_runs_a_timer_function_now_with_the_hosts_timer_info(
    tmp_path: Path,
) -> None:
    host = timer_app(tmp_path)
    assert admin_post(host, "/admin/functions/cleanup", KEYS.master) == 202
    [timer] = SEEN
    # TimerInfo as the host sends it: the schedule's status, its next occurrence, not past due.
    assert timer.past_due is False
    assert timer.schedule == {"AdjustForDST": True}
    assert set(timer.schedule_status) == {"Last", "Next", "LastUpdated"}
    assert datetime.fromisoformat(timer.schedule_status["Next"]).time().isoformat() == "03:30:00"
    assert admin_post(host, "/admin/functions/Cleanup", KEYS.master) == 202  # case-insensitive
    assert len(SEEN) == 2
    # the second run's Last is the first run's time
    assert SEEN[1].schedule_status["Last"] == SEEN[0].schedule_status["LastUpdated"]


@pytest.mark.parametrize("key", [None, KEYS.function, "wrong"])
def test_only_the_master_key_may_run_a_function(tmp_path: Path, key: str | None) -> None:
    host = timer_app(tmp_path)
    assert admin_post(host, "/admin/functions/cleanup", key) == 401
    assert SEEN == []


def test_an_unknown_function_is_404(tmp_path: Path) -> None:
    host = timer_app(tmp_path)
    assert admin_post(host, "/admin/functions/nothing", KEYS.master) == 404


def test_run_on_startup_is_honoured_and_nothing_runs_before_its_time(tmp_path: Path) -> None:
    run_lifespan(timer_app(tmp_path, "0 30 3 * * *", on_startup=True), 0.3)
    assert [timer.past_due for timer in SEEN] == [False]
    run_lifespan(timer_app(tmp_path, "0 30 3 * * *"), 0.3)
    assert SEEN == []


def test_a_timer_runs_on_its_schedule(tmp_path: Path) -> None:
    run_lifespan(timer_app(tmp_path, "* * * * * *"), 2.5)  # every second
    assert 1 <= len(SEEN) <= 3
