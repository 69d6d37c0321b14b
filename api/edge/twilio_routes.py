"""Routes Twilio calls: TwiML during calls, status callbacks, inbound calls and SMS.

Every one checks X-Twilio-Signature first. /api/twiml is async and light: a cold start
there races Twilio's 15 s limit, and it never blocks (no storage, no network), so it runs on
the worker's event loop instead of paying a thread-pool hand-off on every fetch. Routes
that store things import storage inside the function.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from api.core.call_twiml import build_apology_twiml
from api.edge.http import answers_problems
from api.edge.signatures import verify_twilio_request
from api.services.call_flows import continue_flow, render_twiml

bp = func.Blueprint()


def _query(req: func.HttpRequest) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(req.url).query, keep_blank_values=True)


def _twiml(body: str) -> func.HttpResponse:
    return func.HttpResponse(body, mimetype="text/xml")


@bp.route(route="twiml", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
async def twiml(req: func.HttpRequest) -> func.HttpResponse:
    call = verify_twilio_request(req)
    return _twiml(render_twiml(_query(req), call))


@bp.route(route="voiceFallback", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def voice_fallback(req: func.HttpRequest) -> func.HttpResponse:
    """What Twilio fetches when a call's own TwiML failed (its fallback URL): a short apology,
    instead of "an application error has occurred". Static, so it works when nothing else
    does: no settings, no storage, no signature to check (it reveals and does nothing)."""
    return _twiml(build_apology_twiml())


@bp.route(route="flowStep", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def flow_step(req: func.HttpRequest) -> func.HttpResponse:
    call = verify_twilio_request(req)
    return _twiml(continue_flow(_query(req), call))


@bp.route(route="status", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def status(req: func.HttpRequest) -> func.HttpResponse:
    from api.services.status_callbacks import record_callback

    call = verify_twilio_request(req)
    record_callback(_query(req), call)
    return func.HttpResponse(status_code=204)


@bp.route(route="voice", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def voice(req: func.HttpRequest) -> func.HttpResponse:
    from api.services.voice import render_voice

    call = verify_twilio_request(req)
    return _twiml(render_voice(call))


@bp.route(route="incomingCall", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def incoming_call(req: func.HttpRequest) -> func.HttpResponse:
    from api.services.inbound import answer_incoming_call

    call = verify_twilio_request(req)
    return _twiml(answer_incoming_call(_query(req), call))


@bp.route(route="incomingSms", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def incoming_sms(req: func.HttpRequest) -> func.HttpResponse:
    from api.services.inbound import answer_incoming_sms

    message = verify_twilio_request(req)
    return _twiml(answer_incoming_sms(message))
