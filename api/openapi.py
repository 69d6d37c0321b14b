"""The OpenAPI 3.1 document of the app-facing API, generated from the pydantic models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.models import MakeCallRequest, Problem, Record, Resource, SendSmsRequest, VoiceToken
from api.problems import PROBLEM_JSON

_REF = "#/components/schemas/{model}"


def _problems(*statuses: int) -> dict[str, Any]:
    content = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}}
    return {str(status): {"description": "problem", "content": content} for status in statuses}


def _send(summary: str, request: type[BaseModel]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"functionKey": []}],
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


def _record(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [{"functionKey": []}],
            "parameters": [
                {"name": "sid", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
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


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (SendSmsRequest, "validation"),
            (MakeCallRequest, "validation"),
            (Resource, "serialization"),
            (Record, "serialization"),
            (VoiceToken, "serialization"),
            (Problem, "serialization"),
        ],
        by_alias=True,
        ref_template=_REF,
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ahoy", "version": "1.0.0"},
        "paths": {
            "/api/sendSms": _send("Send an SMS through Twilio", SendSmsRequest),
            "/api/makeCall": _send("Place a call through Twilio", MakeCallRequest),
            "/api/messages/{sid}": _record("A message's status, as Twilio reported it"),
            "/api/calls/{sid}": _record("A call's status, as Twilio reported it"),
            "/api/inbox": {
                "get": {
                    "summary": "Inbound calls, SMS and voicemails, newest first (admin role)",
                    "security": [{"functionKey": []}],
                    "parameters": [
                        {
                            "name": "pageSize",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        },
                        {
                            "name": "continuation",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
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
                    "summary": "A Voice SDK access token for the signed-in caller",
                    "security": [{"functionKey": []}],
                    "responses": {
                        "200": {
                            "description": "the token; never cached (Cache-Control: no-store)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": _REF.format(model="VoiceToken")}
                                }
                            },
                        },
                        **_problems(401, 500, 503),
                    },
                }
                for method in ("get", "post")
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}
            },
        },
    }
