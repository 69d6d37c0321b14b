"""Ahoy's domain exceptions: services raise them, `api.core.problems` turns them into documents.

Hierarchy (status in brackets):

    AhoyError
    ├── ClientError                      the caller can fix it
    │   ├── MalformedJson          [400]
    │   ├── NotAuthenticated       [401]
    │   ├── Forbidden              [403]
    │   │   ├── InvalidSignature   [403]  a Twilio-facing request failed X-Twilio-Signature
    │   │   └── DestinationNotPermitted [403]
    │   ├── NotFound               [404]
    │   ├── Conflict               [409]
    │   ├── PayloadTooLarge        [413]
    │   ├── UnsupportedMediaType   [415]
    │   ├── ValidationFailed       [422]  carries per-field errors
    │   └── RateLimited            [429]  with Retry-After
    └── ServerError                      the operator must fix it, or Twilio is unwell
        ├── ConfigurationError     [500]  names the settings, never their values
        ├── UpstreamError          [502]  Twilio answered with something we cannot pass on
        │   └── UpstreamUnreachable [502]  never reached Twilio: nothing was sent
        ├── ServiceUnavailable     [503]  with Retry-After
        │   └── StorageUnavailable [503]  table storage cannot be reached or fails
        └── UpstreamTimeout        [504]

Any error may carry `retry_after` (seconds): the problem document then has a Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request: its JSON name and what is wrong with it."""

    field: str
    message: str


class AhoyError(Exception):
    """Base of every error Ahoy answers with a problem document."""

    status = 500
    slug = "about:blank"
    title = "Internal error"

    def __init__(
        self, detail: str, *, code: int | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code  # Twilio's error code, when Twilio is where it came from
        self.retry_after = retry_after  # seconds until a retry may succeed


class ClientError(AhoyError):
    """The request cannot be served as sent."""


class MalformedJson(ClientError):
    status, slug, title = 400, "malformed-json", "Malformed JSON"


class NotAuthenticated(ClientError):
    status, slug, title = 401, "not-authenticated", "Not authenticated"

    def __init__(self, detail: str, *, www_authenticate: str | None = None) -> None:
        super().__init__(detail)
        self.www_authenticate = www_authenticate


class Forbidden(ClientError):
    status, slug, title = 403, "forbidden", "Forbidden"


class InvalidSignature(Forbidden):
    slug, title = "invalid-signature", "Invalid Twilio signature"


class DestinationNotPermitted(Forbidden):
    slug, title = "destination-not-permitted", "Destination not permitted"


class NotFound(ClientError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ClientError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ClientError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(ClientError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(ClientError):
    status, slug, title = 422, "validation-failed", "Validation failed"

    def __init__(
        self, errors: list[FieldError], *, detail: str | None = None, code: int | None = None
    ) -> None:
        super().__init__(detail or "The request has invalid fields.", code=code)
        self.errors = errors


class RecipientOptedOut(ValidationFailed):
    slug, title = "recipient-opted-out", "The recipient opted out"

    def __init__(self, detail: str) -> None:
        super().__init__([FieldError("to", "has opted out (texted STOP)")], detail=detail)


class RateLimited(ClientError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class ServerError(AhoyError):
    """Not the caller's fault."""


class ConfigurationError(ServerError):
    status, slug, title = 500, "server-misconfigured", "Server misconfigured"

    def __init__(self, detail: str, *, settings: list[str], code: int | None = None) -> None:
        super().__init__(detail, code=code)
        self.settings = settings

    @classmethod
    def missing(cls, names: list[str]) -> ConfigurationError:
        return cls(f"Missing or invalid app settings: {', '.join(names)}.", settings=names)


class UpstreamError(ServerError):
    status, slug, title = 502, "upstream-error", "Twilio error"

    def __init__(
        self, detail: str, *, code: int | None = None, outcome_unknown: bool = False
    ) -> None:
        super().__init__(detail, code=code)
        self.outcome_unknown = outcome_unknown  # Twilio may or may not have acted on it


class UpstreamUnreachable(UpstreamError):
    slug, title = "upstream-unreachable", "Twilio unreachable"


class ServiceUnavailable(ServerError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class StorageUnavailable(ServiceUnavailable):
    """Table storage failed: what was being written may or may not have landed."""


class UpstreamTimeout(ServerError):
    status, slug, title = 504, "upstream-timeout", "Twilio did not answer in time"
