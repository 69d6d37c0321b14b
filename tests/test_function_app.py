"""function_app registers every function with the route, methods and auth level of the contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.functions import http_functions, indexed

FUNCTIONS = indexed()


def test_http_functions_and_their_auth_levels() -> None:
    routes = {f.route: (f.name, f.methods, f.auth_level) for f in http_functions()}
    # The app's routes: anonymous to the host, authenticated by Ahoy (no key ships in the app)
    assert routes["sendSms"] == ("send_sms", ["POST"], "anonymous")
    assert routes["makeCall"] == ("make_call", ["POST"], "anonymous")
    assert routes["twiml"] == ("twiml", ["GET", "POST"], "anonymous")
    for route in ("status", "flowStep", "voice", "incomingCall", "incomingSms"):
        assert routes[route][1:] == (["POST"], "anonymous")  # Twilio's: signed instead
    assert routes["inbox"][1:] == (["GET"], "anonymous")
    assert routes["ops/inbox"][1:] == (["GET"], "admin")
    assert routes["token"][1:] == (["GET", "POST"], "anonymous")
    assert routes["health"] == ("health", ["GET"], "anonymous")


def test_importing_the_app_reads_no_settings_and_imports_nothing_heavy() -> None:
    # A fresh interpreter with no settings at all: importing must still index every function.
    code = (
        "import sys, function_app;"
        "heavy = [m for m in ('twilio.rest', 'pydantic', 'phonenumbers', 'requests') "
        "if m in sys.modules];"
        "print(len(function_app.app.get_functions()), heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={},
        cwd=Path(__file__).parents[1],
    ).stdout
    assert out.strip() == f"{len(FUNCTIONS)} []"
