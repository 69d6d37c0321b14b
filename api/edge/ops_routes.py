"""For operators and the platform, not for the app or Twilio: GET /api/health, and the daily
`retention` timer (run it now: POST /admin/functions/retention with the master key)."""

from __future__ import annotations

import azure.functions as func

from api.edge.http import json_response

bp = func.Blueprint()

HEALTH_RETRY_AFTER_SECONDS = 10
RETENTION_SCHEDULE = "0 30 3 * * *"  # NCRONTAB, seconds first: every day at 03:30 UTC


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """200 when every check passes, else 503; never a setting's name or value."""
    from api.services.health import check_health

    checks = check_health()
    healthy = all(result == "ok" for result in checks.values())
    headers = {"Cache-Control": "no-store"}
    if not healthy:
        headers["Retry-After"] = str(HEALTH_RETRY_AFTER_SECONDS)
    return json_response(
        {"status": "healthy" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
        headers=headers,
    )


@bp.timer_trigger(schedule=RETENTION_SCHEDULE, arg_name="timer", run_on_startup=False)
def retention(timer: func.TimerRequest) -> None:
    """Delete expired keys, ended counter windows, and rows past RETENTION_DAYS."""
    from api.services.retention import purge

    purge()
