"""Routes the mobile app calls. Each handler: authenticate, parse, one service call, respond.

They are anonymous at the Functions level: the app ships no shared secret (a function key in
every copy of an app is no secret). Ahoy authenticates every request itself (api.edge.auth): the
user's token, or a server's named key.

Heavy modules (pydantic models, phonenumbers, twilio.rest) are imported inside the handlers
so that a cold start serving only /api/twiml never pays for them.
"""

from __future__ import annotations

import azure.functions as func

from api.edge.auth import authenticate, require_admin
from api.edge.http import (
    answer_response,
    answers_problems,
    audio_response,
    cached_response,
    if_none_match,
    json_response,
    page_request,
    parse_json,
    route_number,
)

bp = func.Blueprint()


@bp.route(route="sendSms", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def send_sms(req: func.HttpRequest) -> func.HttpResponse:
    from api.core import models
    from api.services import messaging

    caller = authenticate(req)
    request = parse_json(req, models.SendSmsRequest)
    return answer_response(
        messaging.send_sms(caller.id, request, req.headers.get("idempotency-key"))
    )


@bp.route(route="makeCall", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def make_call(req: func.HttpRequest) -> func.HttpResponse:
    from api.core import models
    from api.services import messaging

    caller = authenticate(req)
    request = parse_json(req, models.MakeCallRequest)
    return answer_response(
        messaging.make_call(caller.id, request, req.headers.get("idempotency-key"))
    )


@bp.route(route="messages", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def list_messages(req: func.HttpRequest) -> func.HttpResponse:
    return _history(req, "sms")


@bp.route(route="calls", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def list_calls(req: func.HttpRequest) -> func.HttpResponse:
    return _history(req, "call")


def _history(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    from api.services import history

    caller = authenticate(req)
    query = history.parse_query(kind, req.params, *page_request(req))
    listing = history.list_records(caller.id, kind, query, if_none_match(req))
    return cached_response(listing.page, listing.etag)


@bp.route(route="messages/{sid}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def get_message(req: func.HttpRequest) -> func.HttpResponse:
    from api.services import history

    caller = authenticate(req)
    return json_response(history.get_record(caller.id, "sms", req.route_params["sid"]))


@bp.route(route="messages/{sid}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def cancel_message(req: func.HttpRequest) -> func.HttpResponse:
    """Cancel a scheduled message of the caller's."""
    from api.services import messaging

    caller = authenticate(req)
    return json_response(messaging.cancel_message(caller.id, req.route_params["sid"]))


@bp.route(route="calls/{sid}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def get_call(req: func.HttpRequest) -> func.HttpResponse:
    from api.services import history

    caller = authenticate(req)
    return json_response(history.get_record(caller.id, "call", req.route_params["sid"]))


@bp.route(route="conversations", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def list_conversations(req: func.HttpRequest) -> func.HttpResponse:
    from api.stores import conversations

    caller = authenticate(req)
    return json_response(conversations.list_threads(caller.id, *page_request(req)))


@bp.route(route="conversations/{number}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def get_conversation(req: func.HttpRequest) -> func.HttpResponse:
    from api.stores import conversations

    caller = authenticate(req)
    number = route_number(req)
    return json_response(conversations.list_messages(caller.id, number, *page_request(req)))


@bp.route(
    route="conversations/{number}/read", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS
)
@answers_problems
def read_conversation(req: func.HttpRequest) -> func.HttpResponse:
    from api.stores import conversations

    caller = authenticate(req)
    conversations.mark_read(caller.id, route_number(req))
    return func.HttpResponse(status_code=204)


@bp.route(route="recordings/{sid}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def get_recording(req: func.HttpRequest) -> func.HttpResponse:
    """The recording's audio, for its owner (a user's voicemail; the inbox's for admins)."""
    from api.services import media

    caller = authenticate(req)
    return audio_response(media.audio(caller.id, caller.admin, req.route_params["sid"]))


@bp.route(route="recordings/{sid}/link", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def recording_link(req: func.HttpRequest) -> func.HttpResponse:
    """A short-lived signed link to the recording, for a player that cannot send a token."""
    from api.core.models import RecordingLink
    from api.services import media

    caller = authenticate(req)
    link = media.link(caller.id, caller.admin, req.route_params["sid"])
    answer = RecordingLink(url=link.url, expires_at=link.expires_at)
    return json_response(answer, headers={"Cache-Control": "no-store"})


@bp.route(route="recordings/{sid}/audio", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def recording_audio(req: func.HttpRequest) -> func.HttpResponse:
    """A signed link's audio: the link is the credential (anonymous to the host and Ahoy)."""
    from api.services import media

    sid, expires, signature = (
        req.route_params["sid"],
        req.params.get("expires", ""),
        req.params.get("signature", ""),
    )
    return audio_response(media.linked_audio(sid, expires, signature))


@bp.route(route="recordings/{sid}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def delete_recording(req: func.HttpRequest) -> func.HttpResponse:
    """Delete the recording, at Twilio too."""
    from api.services import media

    caller = authenticate(req)
    media.delete(caller.id, caller.admin, req.route_params["sid"])
    return func.HttpResponse(status_code=204)


@bp.route(route="token", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def token(req: func.HttpRequest) -> func.HttpResponse:
    from api.services import voice_tokens

    caller = authenticate(req)
    minted = voice_tokens.mint_token(caller.id, req.params.get("platform"), caller.name)
    return json_response(minted, headers={"Cache-Control": "no-store"})


@bp.route(route="inbox", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_problems
def inbox(req: func.HttpRequest) -> func.HttpResponse:
    """For signed-in users with the admin role."""
    require_admin(authenticate(req))
    return _inbox_page(req)


@bp.route(route="ops/inbox", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@answers_problems
def admin_inbox(req: func.HttpRequest) -> func.HttpResponse:
    """The same for the master key: the host has checked it (the Functions admin level)."""
    return _inbox_page(req)


def _inbox_page(req: func.HttpRequest) -> func.HttpResponse:
    from api.stores import inbox

    page_size, continuation = page_request(req)
    return json_response(inbox.list_inbox(page_size, continuation))


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from api.edge.openapi import openapi_document

    return json_response(openapi_document())
