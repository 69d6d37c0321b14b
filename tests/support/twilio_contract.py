"""Twilio's published description of Messages and Calls (vendored under tests/contract/), as
JSON Schema validators for what the sandbox answers.

The description is OpenAPI 3.0: `nullable` becomes a `null` type, `$ref`s point at `$defs`. A
resource must have every property the description lists (null when empty) and no other; the
description's own formats are checked (RFC 2822 dates, E.164 numbers, currencies, URIs
relative to api.twilio.com).
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

DESCRIPTION = Path(__file__).parent.parent / "contract" / "twilio_api_v2010_subset.json"
RESOURCES = {"api.v2010.account.message", "api.v2010.account.call"}
ERROR_BODY = {
    "type": "object",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string", "minLength": 1},
        "more_info": {"type": "string", "format": "uri"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
    },
    "required": ["code", "message", "more_info", "status"],
    "additionalProperties": False,
}
_RFC_2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$"
)

checker = FormatChecker()


@checker.checks("date-time-rfc-2822")
def _rfc_2822(value: object) -> bool:
    return not isinstance(value, str) or (
        bool(_RFC_2822.match(value)) and parsedate_to_datetime(value) is not None
    )


@checker.checks("phone-number")
def _phone_number(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"\+[1-9]\d{1,14}", value))


@checker.checks("currency")
def _currency(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"[A-Z]{3}", value))


@checker.checks("uri")
def _uri(value: object) -> bool:
    """Twilio's URIs are relative to https://api.twilio.com; more_info is absolute."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return value.startswith("/2010-04-01/") or (parts.scheme == "https" and bool(parts.netloc))


@checker.checks("uri-map")
def _uri_map(value: object) -> bool:
    return not isinstance(value, dict) or all(
        isinstance(v, str) and v.startswith("/2010-04-01/") for v in value.values()
    )


def _converted(node: Any, *, exact: bool = False) -> Any:
    if isinstance(node, list):
        return [_converted(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _converted(value)
        for key, value in node.items()
        if key not in ("nullable", "description", "x-twilio", "example", "title")
    }
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("nullable") and "enum" in out:
        out["enum"] = [*out["enum"], None]
    if exact and "properties" in out:
        out["required"] = sorted(out["properties"])
        out["additionalProperties"] = False
    return out


@cache
def _description() -> dict[str, Any]:
    return json.loads(DESCRIPTION.read_text())  # type: ignore[no-any-return]


@cache
def _defs() -> dict[str, Any]:
    schemas = _description()["components"]["schemas"]
    return {name: _converted(schema, exact=name in RESOURCES) for name, schema in schemas.items()}


@cache
def validator(path_template: str, method: str, status: int) -> Draft202012Validator:
    """The validator of the answer `status` to `method path_template`, as described."""
    operation = _description()["paths"][path_template][method.lower()]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    document = {"$defs": _defs(), **_converted(schema, exact=True)}
    return Draft202012Validator(document, format_checker=checker)


def operation_id(path_template: str, method: str) -> str:
    return str(_description()["paths"][path_template][method.lower()]["operationId"])


def template_of(path: str) -> str | None:
    """The described path template `path` is an instance of."""
    for template in _description()["paths"]:
        pattern = (
            re.escape(template).replace(r"\{AccountSid\}", "[^/]+").replace(r"\{Sid\}", "[^/]+")
        )
        if re.fullmatch(pattern, path):
            return str(template)
    return None


def violations(method: str, path: str, status: int, body: bytes) -> list[str]:
    """What is wrong with one answer of the sandbox, by the description (empty if nothing)."""
    if status == 204:
        return [] if body == b"" else ["a 204 with a body"]
    payload = json.loads(body)
    if status >= 400:
        schema = Draft202012Validator(ERROR_BODY, format_checker=checker)
        return [e.message for e in schema.iter_errors(payload)]
    template = template_of(path)
    if template is None:
        return [f"{path} is not a described path"]
    found = validator(template, method, status).iter_errors(payload)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]
