"""The OpenAPI 3.1 document of the app-facing API, generated from the pydantic models.

Written for client generators (openapi-typescript, openapi-generator for Swift and Kotlin):
every operation has a stable `operationId`, every problem status its own description, and a
request field a client may leave out is simply not `required`: request schemas carry no
`default` (generators read a default as "always present", openapi-typescript by default turns
it into a required field); what Ahoy assumes when a field is left out is in its description.
`clients/typescript/` is generated from this document (scripts/client).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.core.errors import AhoyError
from api.core.models import (
    ConversationMessagePage,
    ConversationPage,
    MakeCallRequest,
    Problem,
    Record,
    RecordingLink,
    RecordPage,
    Resource,
    SendSmsRequest,
    VoiceToken,
)
from api.core.problems import PROBLEM_JSON, PROBLEM_TYPE_PREFIX
from api.core.settings import PUSH_PLATFORMS
from api.services.history import STATES

_REF = "#/components/schemas/{model}"
# The app's routes take the user's token or a server's named key; no function key.
_CALLER: list[dict[str, list[str]]] = [{"user": []}, {"serverKey": []}]


# What each problem status means on Ahoy's routes (see the README's "Errors").
PROBLEMS = {
    400: "Malformed request: the body is not JSON, or not a JSON object.",
    401: "No valid caller: sign in (a bearer token, or Easy Auth), or the function key is missing.",
    403: "Not allowed: a destination the policy refuses, a route this caller may not use, or "
    "an expired or altered signed link.",
    404: "Not found, or not the caller's own.",
    409: "The Idempotency-Key is in flight, or its first request's outcome is not known yet; "
    "or the message is no longer scheduled.",
    413: "The body is too large.",
    415: "The body is not application/json.",
    422: "A field is invalid (`errors` names each one), or the recipient opted out.",
    429: "A limit is reached: the caller's, or the destination's.",
    500: "Ahoy is misconfigured: `settings` names the app settings to fix.",
    502: "Twilio failed, or refused with an error of its own.",
    503: "Storage, Twilio or the identity provider is unavailable, or the daily cap is spent.",
    504: "Twilio did not answer in time: the outcome is unknown; retry with the same key.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _problems(*statuses: int) -> dict[str, Any]:
    content = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}}
    return {
        str(status): {
            "description": PROBLEMS[status],
            "content": content,
            **({"headers": _RETRY_AFTER} if status in (409, 429, 503) else {}),
        }
        for status in statuses
    }


def _send(operation_id: str, summary: str, request: type[BaseModel]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": _CALLER,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Retries with the same key get the first answer back.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": _REF.format(model=request.__name__)}}
                },
            },
            "responses": {
                "201": {
                    "description": "Twilio accepted it",
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(model="Resource")}}
                    },
                },
                **_problems(400, 401, 403, 409, 413, 415, 422, 429, 500, 502, 503, 504),
            },
        }
    }


_SID = {
    "name": "sid",
    "in": "path",
    "required": True,
    "description": "Twilio's SID, as the send's answer gave it.",
    "schema": {"type": "string"},
}


def _record(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": _CALLER,
            "parameters": [_SID],
            "responses": {
                "200": {
                    "description": "the caller's own record",
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(model="Record")}}
                    },
                },
                **_problems(401, 404, 500, 503),
            },
        }
    }


_PAGE = [
    {
        "name": "pageSize",
        "in": "query",
        "required": False,
        "description": "Items per page (1 to 100; 20 when left out).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    {
        "name": "continuation",
        "in": "query",
        "required": False,
        "description": "The previous page's `next`.",
        "schema": {"type": "string"},
    },
]
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the copy the client has: 304 when it is still current.",
    "schema": {"type": "string"},
}
_ETAG = {
    "ETag": {
        "description": "Changes whenever anything on the page may have.",
        "schema": {"type": "string"},
    }
}


def _cached(description: str, model: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "headers": _ETAG,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
        },
        "304": {"description": "Not modified: the client's copy is current", "headers": _ETAG},
    }


_NUMBER = {
    "name": "number",
    "in": "path",
    "required": True,
    "description": "The counterpart, E.164 (`+` as is, or `%2B`).",
    "schema": {"type": "string", "pattern": r"^\+[1-9]\d{1,14}$"},
}


_RECORDING_SID = {
    "name": "sid",
    "in": "path",
    "required": True,
    "description": "The recording's SID (`recordingSid` of a voicemail).",
    "schema": {"type": "string", "pattern": "^RE[0-9a-f]{32}$"},
}
_MP3 = {
    "description": "the recording (MP3)",
    "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}},
}


def _recordings() -> dict[str, Any]:
    return {
        "/api/recordings/{sid}": {
            "get": {
                "operationId": "getRecording",
                "summary": "A recording of the caller's (a voicemail), fetched from Twilio",
                "security": _CALLER,
                "parameters": [_RECORDING_SID],
                "responses": {"200": _MP3, **_problems(401, 404, 422, 500, 502, 503, 504)},
            },
            "delete": {
                "operationId": "deleteRecording",
                "summary": "Delete a recording of the caller's, at Twilio too",
                "security": _CALLER,
                "parameters": [_RECORDING_SID],
                "responses": {
                    "204": {"description": "deleted"},
                    **_problems(401, 404, 422, 500, 502, 503, 504),
                },
            },
        },
        "/api/recordings/{sid}/link": {
            "get": {
                "operationId": "getRecordingLink",
                "summary": "A signed link to a recording, for a player that cannot send a token",
                "security": _CALLER,
                "parameters": [_RECORDING_SID],
                "responses": {
                    "200": {
                        "description": "a link valid for minutes",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="RecordingLink")}
                            }
                        },
                    },
                    **_problems(401, 404, 422, 500, 503),
                },
            }
        },
        "/api/recordings/{sid}/audio": {
            "get": {
                "operationId": "getLinkedRecording",
                "summary": "The recording a signed link names (the link is the credential)",
                "security": [],
                "parameters": [
                    _RECORDING_SID,
                    {
                        "name": "expires",
                        "in": "query",
                        "required": True,
                        "description": "As the link gave it.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "signature",
                        "in": "query",
                        "required": True,
                        "description": "As the link gave it.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {"200": _MP3, **_problems(403, 404, 422, 500, 502, 503, 504)},
            }
        },
    }


def _page_of(operation_id: str, summary: str, model: str, *extra: Any) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": _CALLER,
            "parameters": [*extra, *_PAGE],
            "responses": {
                "200": {
                    "description": summary,
                    "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
                },
                **_problems(401, 422, 500, 503),
            },
        }
    }


def _history(operation_id: str, summary: str, kind: str) -> dict[str, Any]:
    statuses = ", ".join(sorted(STATES[kind]))
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": _CALLER,
            "parameters": [
                *_PAGE,
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "description": "Up to 5, comma-separated: Twilio's latest status, or for a "
                    f"send Twilio never answered, Ahoy's state. One of: {statuses}.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "since",
                    "in": "query",
                    "required": False,
                    "description": "Only sends created at or after this time.",
                    "schema": {"type": "string", "format": "date-time"},
                },
                _IF_NONE_MATCH,
            ],
            "responses": {
                **_cached("the caller's own, newest first", "RecordPage"),
                **_problems(401, 422, 500, 503),
            },
        }
    }


_HEALTH = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
        "checks": {
            "type": "object",
            "additionalProperties": {"type": "string", "enum": ["ok", "failed", "skipped"]},
        },
    },
}


def problem_types() -> list[str]:
    """The `type` of every problem Ahoy answers (each AhoyError's slug)."""
    found, pending = set(), [AhoyError]
    while pending:
        error = pending.pop()
        pending.extend(error.__subclasses__())
        if error.slug != AhoyError.slug:
            found.add(PROBLEM_TYPE_PREFIX + error.slug)
    return sorted(found)


def _optional_without_default(schema: dict[str, Any]) -> None:
    """Move each property's `default` into its description (see the module's docstring)."""
    for field in schema["properties"].values():
        if "default" in field:
            default = field.pop("default")
            if default not in (None, []):
                note = f"Left out: {default}."
                field["description"] = f"{field.get('description', '')} {note}".strip()


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (SendSmsRequest, "validation"),
            (MakeCallRequest, "validation"),
            (Resource, "serialization"),
            (Record, "serialization"),
            (RecordPage, "serialization"),
            (ConversationPage, "serialization"),
            (ConversationMessagePage, "serialization"),
            (RecordingLink, "serialization"),
            (VoiceToken, "serialization"),
            (Problem, "serialization"),
        ],
        by_alias=True,
        ref_template=_REF,
    )
    for name in ("SendSmsRequest", "MakeCallRequest"):
        _optional_without_default(schemas["$defs"][name])
    # Every problem type Ahoy answers, so a generated client can switch over them exhaustively.
    schemas["$defs"]["Problem"]["properties"]["type"]["enum"] = problem_types()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ahoy",
            "version": "1.0.0",
            "summary": "Calls and SMS through Twilio for a mobile app.",
            "description": "The app-facing API of Ahoy. Errors are RFC 9457 problem documents.",
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
            "contact": {"name": "Ahoy maintainers"},
        },
        "servers": [
            {"url": "http://127.0.0.1:7071", "description": "the local host (scripts/run)"},
            {
                "url": "https://{app}.azurewebsites.net",
                "description": "the Function App in Azure (azd env get-value AHOY_BASE_URL)",
                "variables": {"app": {"default": "func-ahoy", "description": "its name"}},
            },
        ],
        "paths": {
            "/api/sendSms": _send("sendSms", "Send an SMS through Twilio", SendSmsRequest),
            "/api/makeCall": _send("makeCall", "Place a call through Twilio", MakeCallRequest),
            "/api/messages": _history(
                "listMessages", "The caller's own messages, newest first", "sms"
            ),
            "/api/calls": _history("listCalls", "The caller's own calls, newest first", "call"),
            "/api/conversations": _page_of(
                "listConversations",
                "The caller's conversations, newest activity first",
                "ConversationPage",
            ),
            "/api/conversations/{number}": _page_of(
                "getConversation",
                "A conversation's messages both ways, newest first",
                "ConversationMessagePage",
                _NUMBER,
            ),
            "/api/conversations/{number}/read": {
                "post": {
                    "operationId": "markConversationRead",
                    "summary": "Mark a conversation read (its unread count becomes 0)",
                    "security": _CALLER,
                    "parameters": [_NUMBER],
                    "responses": {
                        "204": {"description": "read"},
                        **_problems(401, 404, 422, 500, 503),
                    },
                }
            },
            **_recordings(),
            "/api/messages/{sid}": {
                **_record("getMessage", "A message's status, as Twilio reported it"),
                "delete": {
                    "operationId": "cancelMessage",
                    "summary": "Cancel a scheduled message (Twilio never sends it)",
                    "security": _CALLER,
                    "parameters": [_SID],
                    "responses": {
                        "200": {
                            "description": "canceled: the message as it is now",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": _REF.format(model="Record")}
                                }
                            },
                        },
                        **_problems(401, 404, 409, 500, 502, 503, 504),
                    },
                },
            },
            "/api/calls/{sid}": _record("getCall", "A call's status, as Twilio reported it"),
            "/api/inbox": {
                "get": {
                    "operationId": "listInbox",
                    "summary": "Inbound calls, SMS and voicemails, newest first (admin role)",
                    "security": _CALLER,
                    "parameters": _PAGE,
                    "responses": {
                        "200": {
                            "description": '{"items": [...], "next": "<continuation>" or null}',
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_problems(401, 403, 422, 500, 503),
                    },
                }
            },
            "/api/token": {
                method: {
                    "operationId": f"{method}VoiceToken",
                    "summary": "A Voice SDK access token for the signed-in caller",
                    "security": _CALLER,
                    "parameters": [
                        {
                            "name": "platform",
                            "in": "query",
                            "required": False,
                            "description": "The device's platform and build, for its push "
                            "credential: `ios` (store builds), `ios-sandbox` (development "
                            "builds), `android`. Left out: the default credential.",
                            "schema": {"type": "string", "enum": list(PUSH_PLATFORMS)},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the token; never cached (Cache-Control: no-store)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": _REF.format(model="VoiceToken")}
                                }
                            },
                        },
                        **_problems(401, 422, 500, 503),
                    },
                }
                for method in ("get", "post")
            },
            "/api/health": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "Whether this instance can serve (anonymous, for monitors)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "every check passed",
                            "content": {"application/json": {"schema": _HEALTH}},
                        },
                        "503": {
                            "description": "a check failed (settings or storage)",
                            "headers": _RETRY_AFTER,
                            "content": {"application/json": {"schema": _HEALTH}},
                        },
                    },
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "user": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The signed-in user's access token (CALLER_AUTH jwt; with "
                    "easyauth, App Service Authentication checks it and tells Ahoy who it is).",
                },
                "serverKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Ahoy-Key",
                    "description": "A server's named key (CALLER_KEYS): its own caller.",
                },
            },
        },
    }
