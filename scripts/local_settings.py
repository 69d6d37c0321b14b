"""Write local.settings.json for a first local run (sandbox mode, fresh keys); print how to try it.

python scripts/local_settings.py local.settings.json              write if missing, print usage
python scripts/local_settings.py --is-sandbox local.settings.json exit 0 if TWILIO_SANDBOX is on
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path

ORIGIN = "http://127.0.0.1:7071"
SANDBOX = "http://127.0.0.1:7072"


def fresh_settings() -> dict[str, object]:
    example = json.loads(Path("local.settings.json.example").read_text())
    values = example["Values"]
    values.update(
        # Sandbox mode: the local Twilio stand-in plays this made-up account. Put real
        # credentials here and blank TWILIO_SANDBOX and TWILIO_API_BASE_URL to reach Twilio.
        TWILIO_SANDBOX="1",
        TWILIO_API_BASE_URL=SANDBOX,
        TWILIO_ACCOUNT_SID="AC" + secrets.token_hex(16),
        TWILIO_AUTH_TOKEN=secrets.token_hex(16),
        TWILIO_FROM_NUMBER="+15005550006",
        PUBLIC_BASE_URL=ORIGIN,
        AHOY_FLOW_KEY=base64.b64encode(os.urandom(32)).decode(),
        DEVHOST_FUNCTION_KEY=secrets.token_urlsafe(32),
        DEV_PRINCIPAL="local-developer",  # honoured only by the local host on loopback
        # Dev-sized limits: room to play, still limits.
        RATE_LIMIT_PER_MINUTE="30",
        DAILY_QUOTA="500",
        DESTINATION_LIMIT_PER_HOUR="30",
        GLOBAL_DAILY_CAP="1000",
    )
    return example


def is_sandbox(values: dict[str, str]) -> bool:
    return values.get("TWILIO_SANDBOX", "").lower() in ("1", "true", "yes")


def main(args: list[str]) -> int:
    if args[0] == "--is-sandbox":
        return 0 if is_sandbox(json.loads(Path(args[1]).read_text())["Values"]) else 1
    path = Path(args[0])
    if not path.exists():
        path.write_text(json.dumps(fresh_settings(), indent=2) + "\n")
        print(f"Wrote {path}: sandbox mode, fresh local keys.")
    values = json.loads(path.read_text())["Values"]
    where = (
        f"Sandbox mode: no Twilio account needed. Watch messages and calls at {SANDBOX}/"
        if is_sandbox(values)
        else "Real Twilio: no sandbox. Messages and calls cost money and reach real phones."
    )
    print(
        f"""
Ahoy is starting on {ORIGIN}. {where}
No key is needed: locally you are the development principal (DEV_PRINCIPAL).

Send an SMS:
  curl -X POST {ORIGIN}/api/sendSms -H "Idempotency-Key: $(uuidgen)" \\
       -H 'Content-Type: application/json' -d '{{"to": "+14155550100", "body": "ahoy hoy"}}'
Place a call:
  curl -X POST {ORIGIN}/api/makeCall -H "Idempotency-Key: $(uuidgen)" \\
       -H 'Content-Type: application/json' -d '{{"to": "+14155550100", "message": "Ahoy"}}'
""",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
