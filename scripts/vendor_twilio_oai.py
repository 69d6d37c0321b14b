"""Vendor the part of Twilio's OpenAPI description that the sandbox's contract tests read.

    .venv/bin/python scripts/vendor_twilio_oai.py ../shared/twilio-oai/twilio_api_v2010.json

Writes tests/contract/twilio_api_v2010_subset.json: the Message and Call paths (list, create,
fetch, update, delete) and every component schema they reference, unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PATHS = [
    "/2010-04-01/Accounts/{AccountSid}/Messages.json",
    "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json",
]
SOURCE = (
    "spec/json/twilio_api_v2010.json of github.com/twilio/twilio-oai (MIT licence), "
    "commit d50069b44ea8cd23141385bdb6db48f16ff75bb5 (2026-04-14)"
)
OUT = Path(__file__).resolve().parent.parent / "tests" / "contract" / "twilio_api_v2010_subset.json"


def references(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
        return found.union(*(references(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(references(v) for v in node))
    return set()


def main(source: str) -> None:
    spec = json.loads(Path(source).read_text())
    paths = {path: spec["paths"][path] for path in PATHS}
    schemas: dict[str, Any] = {}
    pending = references(paths)
    while pending:
        name = pending.pop()
        schemas[name] = spec["components"]["schemas"][name]
        pending |= references(schemas[name]) - schemas.keys()
    subset = {
        "x-vendored-from": SOURCE,
        "openapi": spec["openapi"],
        "info": spec["info"],
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
    OUT.write_text(json.dumps(subset, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
