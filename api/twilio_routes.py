"""Routes Twilio calls during a call. Kept light: a cold start here races Twilio's 15 s limit.

/api/twiml is async: it never blocks (no storage, no network), so it runs on the worker's
event loop instead of paying a thread-pool hand-off on every fetch.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from api.call_flows import render_twiml
from api.http import answers_problems
from api.signatures import verify_twilio_request

bp = func.Blueprint()


@bp.route(route="twiml", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
async def twiml(req: func.HttpRequest) -> func.HttpResponse:
    verify_twilio_request(req)
    query = parse_qsl(urlsplit(req.url).query, keep_blank_values=True)
    return func.HttpResponse(render_twiml(query), mimetype="text/xml")


@bp.route(route="status", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def status(req: func.HttpRequest) -> func.HttpResponse:
    from api.status_callbacks import record_callback  # storage: only callbacks that store pay

    verify_twilio_request(req)
    record_callback(parse_qsl(urlsplit(req.url).query), req.form)
    return func.HttpResponse(status_code=204)


@bp.route(route="voice", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def voice(req: func.HttpRequest) -> func.HttpResponse:
    from api.voice import render_voice  # storage and limits: not on the /api/twiml path

    verify_twilio_request(req)
    return func.HttpResponse(render_voice(req.form), mimetype="text/xml")
