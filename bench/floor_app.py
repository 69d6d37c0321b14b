"""Functions served by the local host in the throughput figure, to show where the time goes:
one that does nothing, and one that does only the floor of /api/twiml (the signature checked
with RequestValidator, the same VoiceResponse built), with nothing of Ahoy's in it."""

from __future__ import annotations

import os

import azure.functions as func
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])


@app.route(route="hello", methods=["GET"])
async def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")


@app.route(route="twiml", methods=["GET"])
async def floor(req: func.HttpRequest) -> func.HttpResponse:
    if not validator.validate(req.url, {}, req.headers.get("X-Twilio-Signature", "")):
        return func.HttpResponse(status_code=403)
    response = VoiceResponse()
    response.say("Hello from Ahoy", voice="woman")
    return func.HttpResponse(str(response.to_xml()), mimetype="text/xml")
