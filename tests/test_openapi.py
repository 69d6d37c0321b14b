"""GET /api/openapi.json: the app-facing contract, generated from the pydantic models."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from api.core.models import Problem
from api.edge.app_routes import openapi, send_sms
from tests.support.func_requests import request


def document() -> dict[str, Any]:
    response = openapi(request("GET", "/api/openapi.json", caller=None))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = json.loads(response.get_body())
    return body


def test_it_is_openapi_3_1_with_the_app_facing_routes() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/api/sendSms",
        "/api/makeCall",
        "/api/messages",
        "/api/calls",
        "/api/conversations",
        "/api/conversations/{number}",
        "/api/conversations/{number}/read",
        "/api/recordings/{sid}",
        "/api/recordings/{sid}/link",
        "/api/recordings/{sid}/audio",
        "/api/messages/{sid}",
        "/api/calls/{sid}",
        "/api/token",
        "/api/inbox",
        "/api/health",
    }
    operation_ids = [
        operation["operationId"] for path in doc["paths"].values() for operation in path.values()
    ]
    assert len(set(operation_ids)) == len(operation_ids) == 18
    assert {"sendSms", "makeCall", "getMessage", "getCall"} <= set(operation_ids)


def test_what_a_client_may_leave_out_is_optional_with_no_default() -> None:
    # openapi-typescript makes a field with a `default` required; generators read optional
    # from `required` alone.
    for name in ("SendSmsRequest", "MakeCallRequest"):
        schema = document()["components"]["schemas"][name]
        assert all("default" not in field for field in schema["properties"].values()), name
    loop = document()["components"]["schemas"]["MakeCallRequest"]["properties"]["loop"]
    assert "Left out: 1." in loop["description"]


def test_request_schemas_are_the_models_with_their_wire_names() -> None:
    schemas = document()["components"]["schemas"]
    sms = schemas["SendSmsRequest"]
    assert set(sms["properties"]) == {"to", "body", "from", "mediaUrl", "sendAt"}
    assert sms["required"] == ["to", "body"]
    assert sms["additionalProperties"] is False
    assert schemas["MakeCallRequest"]["properties"]["loop"]["maximum"] == 10


@pytest.mark.parametrize(
    "body",
    [{"to": "bad", "body": ""}, {"to": "+19005550100", "body": "hi"}, {"nope": 1}],
)
def test_problems_ahoy_answers_match_the_documented_problem_schema(
    twilio: responses.RequestsMock, body: dict[str, object]
) -> None:
    response = send_sms(request("POST", "/api/sendSms", json_body=body))
    assert response.status_code >= 400
    Problem.model_validate_json(response.get_body())
