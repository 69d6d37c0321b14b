"""HTTP edges shared by every handler: JSON in, JSON or problem documents out.

`problem_response` is the one place that turns an `AhoyError` into a status code and an
RFC 9457 body; `answers_problems` applies it to a handler.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import azure.functions as func

from api.errors import (
    AhoyError,
    ConfigurationError,
    Conflict,
    FieldError,
    MalformedJson,
    NotAuthenticated,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from api.messaging import Outcome

log = logging.getLogger("ahoy.http")

MAX_BODY_BYTES = 64 * 1024
PROBLEM_TYPE_PREFIX = "urn:ahoy:problem:"
M = TypeVar("M", bound="BaseModel")
H = TypeVar("H", bound=Callable[..., Any])


def json_response(
    payload: BaseModel | Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> func.HttpResponse:
    """A JSON response; pydantic models are written with their camelCase aliases."""
    if isinstance(payload, Mapping):
        body = json.dumps(payload, separators=(",", ":"))
    else:
        body = payload.model_dump_json(by_alias=True)
    return func.HttpResponse(
        body, status_code=status, headers=dict(headers or {}), mimetype="application/json"
    )


def problem_response(error: AhoyError) -> func.HttpResponse:
    """The RFC 9457 problem document for `error`, with the headers its status calls for."""
    problem: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if isinstance(error, ValidationFailed):
        problem["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    if isinstance(error, ConfigurationError):
        problem["settings"] = error.settings
    if error.code is not None:
        problem["twilioCode"] = error.code
    headers = {"Cache-Control": "no-store"}
    if isinstance(error, (RateLimited, ServiceUnavailable, Conflict)) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, NotAuthenticated) and error.www_authenticate:
        headers["WWW-Authenticate"] = error.www_authenticate
    return func.HttpResponse(
        json.dumps(problem, separators=(",", ":")),
        status_code=error.status,
        headers=headers,
        mimetype="application/problem+json",
    )


def answers_problems(handler: H) -> H:
    """Let `handler` (sync or async) raise AhoyError; answer it as a problem document."""
    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def async_wrapper(req: func.HttpRequest) -> func.HttpResponse:
            try:
                response: func.HttpResponse = await handler(req)
            except AhoyError as error:
                return _answer(handler.__name__, error)
            return response

        return cast(H, async_wrapper)

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            response: func.HttpResponse = handler(req)
        except AhoyError as error:
            return _answer(handler.__name__, error)
        return response

    return cast(H, wrapper)


def _answer(name: str, error: AhoyError) -> func.HttpResponse:
    level = logging.ERROR if isinstance(error, ServerError) else logging.INFO
    # The slug and status say what happened; detail can name request fields.
    log.log(level, "%s answered %d %s", name, error.status, error.slug)
    return problem_response(error)


def parse_json(req: func.HttpRequest, model: type[M]) -> M:
    """Read the request body as JSON into `model`: 413, 415, 400 or 422 when it cannot be."""
    from pydantic import ValidationError

    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is over {MAX_BODY_BYTES // 1024} KiB.")
    content_type = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        data = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise MalformedJson("The body is not valid JSON.") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                FieldError(".".join(str(part) for part in e["loc"]) or "body", e["msg"])
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


def idempotency_key(req: func.HttpRequest) -> str | None:
    """The request's Idempotency-Key header, checked (422 when malformed), or None."""
    from api.idempotency import check_key

    key = req.headers.get("idempotency-key")
    return None if key is None else check_key(key)


def outcome_response(outcome: Outcome) -> func.HttpResponse:
    """A send's outcome; a replay for a repeated Idempotency-Key says so in a header."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return func.HttpResponse(
        outcome.body, status_code=outcome.status, headers=headers, mimetype=outcome.content_type
    )
