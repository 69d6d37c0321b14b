"""Write Ahoy's OpenAPI document (what GET /api/openapi.json answers) to a file.

.venv/bin/python scripts/openapi_document.py clients/typescript/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.edge.openapi import openapi_document


def render() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(render())
