"""What /api/twiml answers: a sealed flow from makeCall, or Twimlets parameters from the console."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from api.flows import FlowRejected, open_flow
from api.settings import get_settings
from api.twiml import (
    APP_USER_IDENTITY,
    InvalidFlow,
    build_apology_twiml,
    build_client_dial_twiml,
    build_hangup_twiml,
    build_message_twiml,
    parse_message_flow,
)

log = logging.getLogger("ahoy.twiml")


def render_twiml(query: Sequence[tuple[str, str]]) -> str:
    """TwiML for the flow in `query` (the request's query string, never its form)."""
    params: Sequence[tuple[str, str]] = query
    sealed = [value for name, value in query if name == "flow"]
    if sealed:
        try:
            params = open_flow(sealed[0], key=get_settings().flow_key.get()).params
        except FlowRejected as rejected:
            log.warning("sealed flow refused (%s): hanging up", rejected)
            return build_hangup_twiml()
    try:
        mode = dict(params).get("mode", "message")
        if mode == "client":
            return build_client_dial_twiml(_identity(params))
        if mode != "message":
            raise InvalidFlow("unknown mode")
        return build_message_twiml(parse_message_flow(params))
    except InvalidFlow as invalid:
        log.warning("flow parameters refused (%s): apologising and hanging up", invalid)
        return build_apology_twiml()


def _identity(params: Sequence[tuple[str, str]]) -> str:
    """`Identity` of an app user to ring (mode=client): Twilio's identity characters only."""
    identity = dict(params).get("Identity", "")
    if not APP_USER_IDENTITY.match(identity):
        raise InvalidFlow("Identity is not an app user's identity")
    return identity
