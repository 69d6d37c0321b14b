"""Recordings through Ahoy: to their owner only, never as Twilio's raw media URL.

The owner of a voicemail left for a user is that user; of one in the inbox, its admins.
Anyone else hears 404, as if it did not exist. The audio is fetched from Twilio with the
account's credentials when asked. A player that cannot send a token gets a signed link
(`api.core.links`): the recording and an expiry, valid for LINK_SECONDS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from api.core import links
from api.core.errors import Forbidden, NotFound
from api.core.settings import get_settings
from api.stores import recordings
from api.stores.twilio_service import get_twilio_service

LINK_SECONDS = 600  # for the app's player: minutes
# The voicemail text's link: read on a phone by a person who cannot sign in there.
NOTIFICATION_LINK_SECONDS = 86_400


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: datetime


def audio(caller: str, admin: bool, sid: str) -> bytes:
    """The recording's MP3, for its owner."""
    _check_owner(caller, admin, sid)
    return get_twilio_service().fetch_recording(sid)


def link(caller: str, admin: bool, sid: str) -> Link:
    """A signed link to the recording, for its owner."""
    _check_owner(caller, admin, sid)
    return signed_link(sid, LINK_SECONDS)


def linked_audio(sid: str, expires: str, signature: str) -> bytes:
    """The recording a signed link names, while the link is valid."""
    recordings.check_sid(sid)
    if not links.is_valid(sid, expires, signature, get_settings().flow_key.get(), time.time()):
        raise Forbidden("This link is expired or not Ahoy's: ask for a new one.")
    recordings.owner_of(sid)  # deleted since: 404
    return get_twilio_service().fetch_recording(sid)


def delete(caller: str, admin: bool, sid: str) -> None:
    """Delete the recording at Twilio, then Ahoy's record of it."""
    _check_owner(caller, admin, sid)
    get_twilio_service().delete_recording(sid)
    recordings.forget(sid)


def signed_link(sid: str, seconds: int) -> Link:
    settings = get_settings()
    expires = int(time.time()) + seconds
    signature = links.signature(sid, expires, settings.flow_key.get())
    url = (
        f"{settings.public_base_url}/api/recordings/{sid}/audio"
        f"?expires={expires}&signature={signature}"
    )
    return Link(url, datetime.fromtimestamp(expires, UTC))


def _check_owner(caller: str, admin: bool, sid: str) -> None:
    owner = recordings.owner_of(sid)
    if owner != caller and not (owner == recordings.INBOX and admin):
        raise NotFound(f"No recording {sid} of yours.")
