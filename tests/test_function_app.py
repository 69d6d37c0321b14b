"""function_app registers every function with the route, methods and auth level of the contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from azure.functions.decorators.http import HttpTrigger

import function_app

FUNCTIONS = function_app.app.get_functions()  # indexing may happen once per app, as in Azure


def test_http_functions_and_their_auth_levels() -> None:
    routes = {}
    for function in FUNCTIONS:
        trigger = function.get_trigger()
        if isinstance(trigger, HttpTrigger) and trigger.methods and trigger.auth_level:
            routes[trigger.route] = (
                function.get_function_name(),
                sorted(str(m.value) for m in trigger.methods),
                str(trigger.auth_level.value),
            )
    assert routes["sendSms"] == ("send_sms", ["POST"], "function")
    assert routes["makeCall"] == ("make_call", ["POST"], "function")
    assert routes["twiml"] == ("twiml", ["GET", "POST"], "anonymous")
    for route in ("status", "flowStep", "voice", "incomingCall", "incomingSms"):
        assert routes[route][1:] == (["POST"], "anonymous")  # Twilio's: signed instead
    assert routes["inbox"][1:] == (["GET"], "function")
    assert routes["admin/inbox"][1:] == (["GET"], "admin")
    assert routes["token"][1:] == (["GET", "POST"], "function")
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
