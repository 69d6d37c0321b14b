"""Write local.settings.json for a first local run (fresh random keys), and print how to try it."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path

ORIGIN = "http://127.0.0.1:7071"


def fresh_settings() -> dict[str, object]:
    example = json.loads(Path("local.settings.json.example").read_text())
    values = example["Values"]
    values.update(
        # A well-formed placeholder account: put real credentials here to reach Twilio.
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN=secrets.token_hex(16),
        TWILIO_FROM_NUMBER="+15005550006",
        PUBLIC_BASE_URL=ORIGIN,
        AHOY_FLOW_KEY=base64.b64encode(os.urandom(32)).decode(),
        DEVHOST_FUNCTION_KEY=secrets.token_urlsafe(32),
        DEV_PRINCIPAL="local-developer",  # honoured only by the local host on loopback
    )
    return example


def main(path: Path) -> None:
    if not path.exists():
        path.write_text(json.dumps(fresh_settings(), indent=2) + "\n")
        print(f"Wrote {path} with fresh local keys.")
    values = json.loads(path.read_text())["Values"]
    key = values.get("DEVHOST_FUNCTION_KEY", "<printed by the host below>")
    print(
        f"""
Ahoy is starting on {ORIGIN}. Function key: {key}

  curl '{ORIGIN}/api/twiml?Message%5B0%5D=Hello%20World&Voice=woman'
  curl -X POST {ORIGIN}/api/sendSms -H 'x-functions-key: {key}' \\
       -H 'Content-Type: application/json' -d '{{"to": "+14155550100", "body": "ahoy hoy"}}'
""",
        flush=True,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
