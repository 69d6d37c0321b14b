"""The app-facing HTTP contract as pydantic models: requests are strict, bodies camelCase."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from api.core.phone import parse_e164
from api.core.text import SMS_MAX_UNITS, sms_length
from api.core.urls import is_public_https_url


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https URL")
    return value


def _public_https_url(value: str) -> str:
    """An https URL Twilio may fetch media from: a public DNS name, read one way only."""
    if not is_public_https_url(value):
        raise ValueError(
            "must be an https URL on a public host name, with no user info, IP address, "
            "backslash or control character"
        )
    return value


PhoneNumber = Annotated[
    str,
    Field(max_length=16, examples=["+14155550100"], description="Strict E.164."),
    AfterValidator(parse_e164),
]
OWN_APP = "app"  # makeCall's `to` that rings the caller's own app


def _number_or_own_app(value: str) -> str:
    return value if value == OWN_APP else parse_e164(value)


CallTarget = Annotated[
    str,
    Field(
        max_length=16,
        examples=["+14155550100", "app"],
        description='Strict E.164, or "app": the caller\'s own app (its Voice SDK client).',
    ),
    AfterValidator(_number_or_own_app),
]
HttpsUrl = Annotated[str, Field(max_length=2048), AfterValidator(_https_url)]
MediaUrl = Annotated[str, Field(max_length=2048), AfterValidator(_public_https_url)]


class _Contract(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True
    )


def _within_twilios_limit(body: str) -> str:
    if sms_length(body) > SMS_MAX_UNITS:
        raise ValueError(
            f"is longer than Twilio's {SMS_MAX_UNITS} (counted as Twilio counts: characters "
            "outside GSM-7 make the whole body UTF-16, and an emoji counts two)"
        )
    return body


class SendSmsRequest(_Contract):
    """POST /api/sendSms."""

    to: PhoneNumber
    body: Annotated[
        str,
        Field(
            min_length=1,
            max_length=SMS_MAX_UNITS,
            description="At most 1,600 as Twilio counts: GSM-7 characters count one (`€`, `{`, "
            "`[`, `~` and the like two), and a body with any other character counts UTF-16 "
            "units (an emoji two).",
        ),
        AfterValidator(_within_twilios_limit),
    ]
    from_: Annotated[PhoneNumber | None, Field(alias="from")] = None
    media_url: Annotated[list[MediaUrl], Field(max_length=10)] = []
    send_at: Annotated[
        AwareDatetime | None,
        Field(
            description="Schedule it: an RFC 3339 time with an offset, 15 minutes to 35 days "
            "ahead. Needs the app's Messaging Service (TWILIO_MESSAGING_SERVICE_SID); leave "
            "`from` out. Left out: sent now."
        ),
    ] = None


class MakeCallRequest(_Contract):
    """POST /api/makeCall: either `message` and/or `audioUrl`, or a TwiML `url`."""

    to: CallTarget
    message: Annotated[str | None, Field(min_length=1, max_length=1000)] = None
    audio_url: MediaUrl | None = None
    voice: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = None
    language: Annotated[str | None, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")] = (
        None
    )
    loop: Annotated[int, Field(ge=1, le=10, strict=True)] = 1  # never true, "5" or 5.0
    url: HttpsUrl | None = None

    @field_validator("message")
    @classmethod
    def _a_played_message_is_a_public_url(cls, message: str | None) -> str | None:
        # A message that is an https URL is played, so Twilio fetches it: the media rule.
        if message is not None and message.strip().lower().startswith("https://"):
            return _public_https_url(message.strip())
        return message

    @model_validator(mode="after")
    def _one_source_of_twiml(self) -> MakeCallRequest:
        speaks = self.message is not None or self.audio_url is not None
        if speaks == (self.url is not None):
            raise ValueError("give either message and/or audioUrl, or url")
        if self.url is not None and (self.voice or self.language or self.loop != 1):
            raise ValueError("voice, language and loop apply to message, not to url")
        return self


class Resource(BaseModel):
    """What Ahoy answers about a message or call it asked Twilio to create."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    sid: str
    status: str
    to: str
    from_: Annotated[str | None, Field(alias="from")]
    date_created: datetime | None


class ProblemFieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every Ahoy error is answered (see api/core/problems.py)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = None
    twilioCode: int | None = None  # the wire name
    settings: list[str] | None = None


class StatusChange(BaseModel):
    status: str
    at: str


class DeliveryError(BaseModel):
    """Why a message was not delivered, for its sender (api.core.delivery_errors)."""

    model_config = ConfigDict(frozen=True)

    code: int = Field(description="Twilio's error code")
    title: str = Field(description="What it means, in a sentence the app can show")
    retryable: bool = Field(description="Whether sending again later can help")


class Record(BaseModel):
    """A message or call of the caller's: Twilio's latest status and the ledger's."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    sid: str | None = Field(
        description="Twilio's SID; null while Twilio has not answered, or its answer was lost "
        "(state pending or unknown): find such a send by its idempotencyKey"
    )
    status: str | None = Field(description="Twilio's latest status")
    state: str = Field(description="pending, sent, failed or unknown")
    error_code: int | None
    error: DeliveryError | None = Field(
        default=None, description="What errorCode means, and whether a retry can help"
    )
    to: str
    from_: Annotated[str | None, Field(alias="from")]
    date_created: datetime
    history: list[StatusChange]
    idempotency_key: str | None = Field(
        description="The Idempotency-Key the send was made with, if any"
    )


class RecordPage(BaseModel):
    """GET /api/messages and /api/calls: the caller's own, newest first."""

    model_config = ConfigDict(frozen=True)

    items: list[Record]
    next: str | None = Field(description="The continuation token of the next page; null: last")


class VoiceToken(BaseModel):
    """GET|POST /api/token: a Voice SDK access token for the signed-in caller."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    token: str
    identity: str
    expires_at: datetime
    platform: str | None = Field(description="The platform the token was made for, if named")
    push_credential_sid: str | None = Field(
        description="The push credential in the token's Voice grant: null means incoming calls "
        "cannot ring this device by push (none is configured for its platform)"
    )


class ConversationMessage(BaseModel):
    """A message of a conversation, either way (a voicemail is one, with its recording)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    sid: str
    direction: Literal["in", "out"] = Field(description="in: from the counterpart; out: yours")
    body: str
    at: str = Field(description="When Ahoy kept it (RFC 3339, UTC)")
    recording_sid: str | None = Field(
        default=None,
        description="A voicemail's recording: GET /api/recordings/{recordingSid} (or /link)",
    )


class Conversation(BaseModel):
    """A thread with one number, as GET /api/conversations lists it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    number: str = Field(description="The counterpart, E.164")
    unread: int = Field(description="Messages from the counterpart since the thread was read")
    last_message: ConversationMessage


class ConversationPage(BaseModel):
    """GET /api/conversations: the caller's threads, newest activity first."""

    model_config = ConfigDict(frozen=True)

    items: list[Conversation]
    next: str | None = Field(description="The continuation token of the next page; null: last")


class ConversationMessagePage(BaseModel):
    """GET /api/conversations/{number}: the thread's messages, newest first."""

    model_config = ConfigDict(frozen=True)

    items: list[ConversationMessage]
    next: str | None = Field(description="The continuation token of the next page; null: last")


class RecordingLink(BaseModel):
    """GET /api/recordings/{sid}/link: a signed link for a player that cannot send a token."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    url: str
    expires_at: datetime


class LinePin(BaseModel):
    """PUT /api/ops/lines/{number}: the user this number of Ahoy's rings and texts."""

    model_config = ConfigDict(extra="forbid")

    user: Annotated[str, Field(min_length=1, max_length=256, description="The caller id")]
