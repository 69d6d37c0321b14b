"""python -m sandbox [--port 7072] [--settings local.settings.json]

Plays the Twilio account named in the settings (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and,
if set, TWILIO_API_KEY_SID/SECRET): the app must present those credentials, and every
webhook the sandbox sends is signed with that auth token, as Twilio signs it, or, when
TWILIO_WEBHOOK_SHARED_KEY is set, with that SharedKey and HMAC-SHA256, as a Webhook Rule does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from sandbox.server import Account, Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7072)
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"))
    parser.add_argument(
        "--voice-url",
        help="the number's 'A call comes in' webhook (default: PUBLIC_BASE_URL/api/incomingCall)",
    )
    parser.add_argument(
        "--app-voice-url",
        help="the TwiML App's Voice URL (default: PUBLIC_BASE_URL/api/voice)",
    )
    parser.add_argument(
        "--sms-url",
        help="the number's 'A message comes in' webhook (default: PUBLIC_BASE_URL/api/incomingSms)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    values = dict(os.environ)
    if args.settings.exists():
        values.update(json.loads(args.settings.read_text()).get("Values", {}))
    account = Account(
        sid=values.get("TWILIO_ACCOUNT_SID", ""),
        auth_token=values.get("TWILIO_AUTH_TOKEN", ""),
        api_key_sid=values.get("TWILIO_API_KEY_SID") or None,
        api_key_secret=values.get("TWILIO_API_KEY_SECRET") or None,
        numbers=frozenset({values.get("TWILIO_FROM_NUMBER") or "+15005550006", "+15005550006"}),
        service_sender=values.get("TWILIO_FROM_NUMBER") or "+15005550006",
        # With the app's shared key set, the sandbox plays an account whose Webhook Rule signs
        # every webhook with that SharedKey and HMAC-SHA256.
        webhook_shared_key=values.get("TWILIO_WEBHOOK_SHARED_KEY") or None,
        sms_url=args.sms_url or _app_url(values, "/api/incomingSms"),
        voice_url=args.voice_url or _app_url(values, "/api/incomingCall"),
        app_voice_url=args.app_voice_url or _app_url(values, "/api/voice"),
    )
    if not account.sid or not account.auth_token:
        print("sandbox: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed", file=sys.stderr)
        return 2
    sandbox = Sandbox(account, host=args.host, port=args.port)
    print(f"sandbox: Twilio stand-in and outbox page on {sandbox.url}/", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    sandbox.start()
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    sandbox.stop()
    return 0


def _app_url(values: dict[str, str], path: str) -> str | None:
    base = values.get("PUBLIC_BASE_URL", "").rstrip("/")
    return f"{base}{path}" if base else None


if __name__ == "__main__":
    sys.exit(main())
