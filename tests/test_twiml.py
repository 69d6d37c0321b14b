"""GET|POST /api/twiml: golden TwiML for Twimlets parameters and sealed flows."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote, urlencode

import pytest

from api.core.sealing import seal
from api.core.settings import get_settings
from tests.support.func_requests import run_twiml, signed

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
HANGUP = f"{DECLARATION}<Response><Hangup /></Response>"


def render(query: str, method: str = "GET", form: list[tuple[str, str]] | None = None) -> str:
    response = run_twiml(signed(method, f"/api/twiml?{query}" if query else "/api/twiml", form))
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    return response.get_body().decode()


def sealed(params: list[tuple[str, str]], *, ttl: int = 900, key: bytes | None = None) -> str:
    token = seal(params, caller="user-1", ttl_seconds=ttl, key=key or get_settings().flow_key.get())
    return urlencode({"flow": token})


def test_the_contract_example() -> None:
    assert render("Message[0]=Hello%20World&Voice=woman") == (
        f'{DECLARATION}<Response><Say voice="woman">Hello World</Say></Response>'
    )


def test_no_parameters_give_an_empty_response() -> None:
    assert render("") == f"{DECLARATION}<Response />"


def test_messages_are_said_or_played_in_index_order() -> None:
    query = urlencode(
        {
            "Message[1]": "https://cdn.example.org/tune.mp3",
            "Message[0]": "First",
            "Message[2]": "Last",
            "Voice": "alice",
            "Language": "en-GB",
            "Loop": "3",
        }
    )
    assert render(query) == (
        f"{DECLARATION}<Response>"
        '<Say language="en-GB" loop="3" voice="alice">First</Say>'
        "<Play>https://cdn.example.org/tune.mp3</Play>"
        '<Say language="en-GB" loop="3" voice="alice">Last</Say>'
        "</Response>"
    )


def test_markup_is_escaped_and_control_characters_are_stripped() -> None:
    text = 'Tom & <Jerry> say "hi"\x00\x07\x1b'
    assert render(urlencode({"Message[0]": text})) == (
        f'{DECLARATION}<Response><Say>Tom &amp; &lt;Jerry&gt; say "hi"</Say></Response>'
    )


def test_posted_call_fields_are_never_flow_parameters() -> None:
    form = [("Message[0]", "injected"), ("CallSid", "CA" + "0" * 32)]
    xml = render("Message[0]=hello", method="POST", form=form)
    assert "injected" not in xml
    assert "hello" in xml


@pytest.mark.parametrize(
    "query", ["Loop=0&Message[0]=hi", "Loop=11&Message[0]=hi", "Voice=%3Cx%3E&Message[0]=hi"]
)
def test_invalid_parameters_apologise_and_hang_up(query: str) -> None:
    assert render(query) == (
        f"{DECLARATION}<Response><Say>Sorry, this call cannot be completed. Goodbye.</Say>"
        "<Hangup /></Response>"
    )


def test_a_sealed_flow_renders_its_parameters() -> None:
    query = sealed([("Message[0]", "Hello from Ahoy"), ("Voice", "woman")])
    assert render(query) == (
        f'{DECLARATION}<Response><Say voice="woman">Hello from Ahoy</Say></Response>'
    )


def test_a_sealed_flow_ignores_plain_parameters_beside_it() -> None:
    query = sealed([("Message[0]", "sealed")]) + "&Message[1]=" + quote("added")
    assert "added" not in render(query)


def test_an_altered_flow_hangs_up(caplog: pytest.LogCaptureFixture) -> None:
    token = sealed([("Message[0]", "Hello")]).removeprefix("flow=")
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[20] ^= 1
    altered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert render(f"flow={altered}") == HANGUP
    assert "sealed flow refused" in caplog.text


def test_an_expired_flow_hangs_up() -> None:
    query = sealed([("Message[0]", "Hello")], ttl=-1)
    assert render(query) == HANGUP


def test_a_flow_sealed_under_another_key_hangs_up() -> None:
    assert render(sealed([("Message[0]", "Hello")], key=bytes(32))) == HANGUP


@pytest.mark.parametrize("garbage", ["", "abc", "%%%", "A" * 400])
def test_garbage_flows_hang_up(garbage: str) -> None:
    assert render(f"flow={garbage}") == HANGUP


def test_flow_expiry_is_enforced_at_open_time() -> None:
    from api.core.sealing import SealRejected, unseal

    key = get_settings().flow_key.get()
    token = seal([("Message[0]", "hi")], caller="u", ttl_seconds=60, key=key)
    assert unseal(token, key=key).caller == "u"
    with pytest.raises(SealRejected):
        unseal(token, key=key, now=time.time() + 61)
