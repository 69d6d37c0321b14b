"""For operators and the platform, not for the app or Twilio: GET /api/health, lines pinned
to users (PUT|DELETE /api/ops/lines/{number}, master key), and the daily `retention` timer
(run it now: POST /admin/functions/retention with the master key)."""

from __future__ import annotations

import azure.functions as func

from api.edge.http import (
    answers_problems,
    json_response,
    page_request,
    parse_json,
    route_number,
)

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


@bp.route(route="ops/lines/{number}", methods=["PUT"], auth_level=func.AuthLevel.ADMIN)
@answers_problems
def pin_line(req: func.HttpRequest) -> func.HttpResponse:
    """Pin one of Ahoy's numbers to a user: its calls ring them, its texts are theirs."""
    from api.core.models import LinePin
    from api.stores import conversations

    number = route_number(req)
    conversations.pin(number, parse_json(req, LinePin).user)
    return func.HttpResponse(status_code=204)


@bp.route(route="ops/lines/{number}", methods=["DELETE"], auth_level=func.AuthLevel.ADMIN)
@answers_problems
def unpin_line(req: func.HttpRequest) -> func.HttpResponse:
    from api.stores import conversations

    conversations.unpin(route_number(req))
    return func.HttpResponse(status_code=204)


@bp.route(route="ops/opt-outs", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answers_problems
def list_opt_outs(req: func.HttpRequest) -> func.HttpResponse:
    """Who opted out (STOP, or Twilio's 21610), by number, paged."""
    from api.stores import opt_outs

    return json_response(opt_outs.list_page(*page_request(req)))


@bp.route(route="ops/opt-outs/{number}", methods=["DELETE"], auth_level=func.AuthLevel.ADMIN)
@answers_problems
def clear_opt_out(req: func.HttpRequest) -> func.HttpResponse:
    """Clear an opt-out (the recipient asked to hear again by other means)."""
    from api.stores import opt_outs

    opt_outs.remove(route_number(req))
    return func.HttpResponse(status_code=204)


@bp.timer_trigger(schedule=RETENTION_SCHEDULE, arg_name="timer", run_on_startup=False)
def retention(timer: func.TimerRequest) -> None:
    """Delete expired keys, ended counter windows, and rows past RETENTION_DAYS."""
    from api.services.retention import purge

    purge()
