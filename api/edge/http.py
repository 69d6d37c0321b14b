"""The HTTP edge shared by every handler: JSON in, JSON, answers or problem documents out.

`answers_problems` lets a handler raise `AhoyError`; `problem_response` wraps the
framework-free problem document (`api.core.problems`) in a `func.HttpResponse`.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import azure.functions as func

from api.core.answers import Answer
from api.core.errors import (
    AhoyError,
    FieldError,
    MalformedJson,
    PayloadTooLarge,
    ServerError,
    UnsupportedMediaType,
    ValidationFailed,
)
from api.core.problems import problem_for
from api.core.text import ascii_int

if TYPE_CHECKING:
    from pydantic import BaseModel

log = logging.getLogger("ahoy.http")

MAX_BODY_BYTES = 64 * 1024
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
M = TypeVar("M", bound="BaseModel")
H = TypeVar("H", bound=Callable[..., Any])


def media_type(req: func.HttpRequest) -> str:
    """The request's Content-Type without parameters, lower case ("" when there is none)."""
    content_type: str = req.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower()


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
    """The RFC 9457 problem document for `error`, as a response."""
    problem = problem_for(error)
    return func.HttpResponse(
        problem.body,
        status_code=problem.status,
        headers=problem.headers,
        mimetype=problem.content_type,
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
    if media_type(req) != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        data = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise MalformedJson("The body is not valid JSON.") from exc
    except RecursionError:  # nesting deeper than the parser's stack, well under 64 KiB
        raise MalformedJson("The body is nested too deeply.") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                FieldError(".".join(str(part) for part in e["loc"]) or "body", e["msg"])
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


def answer_response(answer: Answer) -> func.HttpResponse:
    """A send's answer; a replay for a repeated Idempotency-Key says so in a header."""
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return func.HttpResponse(
        answer.body, status_code=answer.status, headers=headers, mimetype=answer.content_type
    )


def page_request(req: func.HttpRequest) -> tuple[int, str | None]:
    """`pageSize` (1-100, default 20) and `continuation` from the query string."""
    size = ascii_int(req.params.get("pageSize", str(DEFAULT_PAGE_SIZE)))
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValidationFailed([FieldError("pageSize", f"must be 1 to {MAX_PAGE_SIZE}")])
    return size, req.params.get("continuation") or None


def if_none_match(req: func.HttpRequest) -> list[str]:
    """The ETags of If-None-Match (RFC 9110 13.1.2), as sent."""
    return [tag.strip() for tag in req.headers.get("if-none-match", "").split(",") if tag.strip()]


def cached_response(payload: BaseModel | None, etag: str) -> func.HttpResponse:
    """`payload` with its ETag; 304 Not Modified with no body when there is none. Private
    and revalidated on every use: the answer is one caller's, and changes."""
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if payload is None:
        return func.HttpResponse(status_code=304, headers=headers)
    return json_response(payload, headers=headers)


def route_number(req: func.HttpRequest) -> str:
    """The `{number}` of the route: strict E.164 (422 otherwise)."""
    from api.core.phone import parse_e164

    try:
        return parse_e164(req.route_params.get("number", ""))
    except ValueError as wrong:
        raise ValidationFailed([FieldError("number", str(wrong))]) from None


def audio_response(audio: bytes) -> func.HttpResponse:
    """A recording's MP3: one person's, so never kept by a shared cache."""
    return func.HttpResponse(
        audio, mimetype="audio/mpeg", headers={"Cache-Control": "private, max-age=300"}
    )
