"""Property tests (hypothesis): signatures, TwiML, E.164 and sealed flows hold for any input."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from api.core.call_twiml import build_message_twiml, message_params, parse_message_flow
from api.core.errors import InvalidSignature
from api.core.phone import parse_e164
from api.core.sealing import SealRejected, seal, unseal
from api.core.settings import E164
from api.edge.signatures import verify_twilio_request
from tests.support.func_requests import request
from tests.support.settings import AUTH_TOKEN, PUBLIC_BASE_URL

KEY = os.urandom(32)
form_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
pairs = st.lists(st.tuples(form_text.filter(bool), form_text), max_size=6)


def form_request(path: str, form: list[tuple[str, str]], signature: str) -> object:
    from urllib.parse import urlencode

    return request(
        "POST",
        path,
        body=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
        caller=None,
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=pairs, query=st.sampled_from(["", "?a=1", "?Message%5B0%5D=x&b=%20"]))
def test_what_twilio_signs_is_accepted(form: list[tuple[str, str]], query: str) -> None:
    path = f"/api/twiml{query}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        PUBLIC_BASE_URL + path, MultiDict(form)
    )
    verify_twilio_request(form_request(path, form, signature))  # type: ignore[arg-type]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=pairs, extra=st.tuples(form_text.filter(bool), form_text))
def test_a_signature_never_covers_an_added_field(
    form: list[tuple[str, str]], extra: tuple[str, str]
) -> None:
    path = "/api/twiml"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        PUBLIC_BASE_URL + path, MultiDict(form)
    )
    if extra in form:
        return  # the validator folds duplicate pairs, as Twilio does
    with pytest.raises(InvalidSignature):
        verify_twilio_request(form_request(path, [*form, extra], signature))  # type: ignore[arg-type]


@settings(max_examples=300)
@given(items=st.lists(st.text(max_size=200), max_size=5), voice=st.sampled_from([None, "woman"]))
def test_twiml_is_always_well_formed_xml(items: list[str], voice: str | None) -> None:
    flow = parse_message_flow(message_params(items, voice=voice, language=None, loop=1))
    root = ET.fromstring(build_message_twiml(flow).encode())  # noqa: S314  # our own output
    assert root.tag == "Response"
    assert all(child.tag in ("Say", "Play") for child in root)


@settings(max_examples=300)
@given(region=st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)), kind=st.integers(0, 10))
def test_example_numbers_round_trip_through_e164(region: str, kind: int) -> None:
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    if not E164.fullmatch(e164):
        # The contract's shape is 7 to 15 digits; a few service numbers (Iran's 6-digit UAN
        # +989601) are shorter, and are refused as the contract says.
        with pytest.raises(ValueError, match=r"E\.164"):
            parse_e164(e164)
        return
    assert parse_e164(e164) == e164


@settings(max_examples=300)
@given(text=st.text(max_size=20))
def test_whatever_parse_e164_accepts_is_canonical_e164(text: str) -> None:
    try:
        number = parse_e164(text)
    except ValueError:
        return
    assert number == text
    assert (
        phonenumbers.format_number(phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.E164)
        == number
    )


@settings(max_examples=200)
@given(params=pairs, position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_sealed_flows_never_open_altered_or_under_another_key(
    params: list[tuple[str, str]], position: int, bit: int
) -> None:
    import base64

    token = seal(params, caller="u", ttl_seconds=60, key=KEY)
    assert list(unseal(token, key=KEY).params) == params
    with pytest.raises(SealRejected):
        unseal(token, key=os.urandom(32))
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[position % len(raw)] ^= 1 << bit
    altered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(SealRejected):
        unseal(altered, key=KEY)
