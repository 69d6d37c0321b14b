"""Loopback load run of the local host: N concurrent clients for S seconds, zero errors expected.

    .venv/bin/python -m bench.load_devhost [--clients 20] [--seconds 30]

Half the requests render TwiML, half send an SMS to a loopback Twilio stand-in.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from tests.support.devhost_process import DevHost
from tests.support.settings import BASE_SETTINGS
from tests.support.twilio_standin import TwilioStandIn


def client(url: str, until: float, counts: Counter[str], lock: threading.Lock) -> None:
    session = requests.Session()
    n = 0
    while time.monotonic() < until:
        n += 1
        try:
            if n % 2:
                response = session.get(f"{url}/api/twiml?Message%5B0%5D=hello", timeout=10)
                ok = response.status_code == 200
            else:
                response = session.post(
                    f"{url}/api/sendSms",
                    json={"to": "+14155551234", "body": "load"},
                    timeout=10,
                )
                ok = response.status_code == 201
        except requests.RequestException:
            ok = False
        with lock:
            counts["ok" if ok else "error"] += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    with TwilioStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
        host = DevHost({**BASE_SETTINGS, "TWILIO_API_BASE_URL": standin.url}, Path(tmp))
        try:
            host.wait_ready()
            counts: Counter[str] = Counter()
            lock = threading.Lock()
            until = time.monotonic() + args.seconds
            threads = [
                threading.Thread(target=client, args=(host.url, until, counts, lock))
                for _ in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            host.stop()
        print(
            f"{args.clients} clients x {args.seconds:.0f} s: {counts['ok']} ok, "
            f"{counts['error']} errors, {len(standin.requests)} SMS reached the stand-in "
            f"({counts['ok'] / args.seconds:.0f} req/s)"
        )
    return 1 if counts["error"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
