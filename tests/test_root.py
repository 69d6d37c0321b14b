"""The composition root: collaborators built once, on first use, and swapped whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from api.core import clock, root
from api.core.settings import get_settings
from api.edge.app_routes import send_sms
from api.stores.storage import get_tables
from api.stores.twilio_service import Created, get_twilio_service
from tests.support.func_requests import request


class RecordingTwilio:
    """A Twilio service that keeps what it was asked and accepts it."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def send_sms(self, **params: Any) -> Created:
        self.asked.append(params)
        return Created("SM" + "9" * 32, "queued", params["to"], params["from_"], clock.now())


def test_each_collaborator_is_built_once_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    assert get_twilio_service() is get_twilio_service()
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "7")
    assert get_settings().rate_limit_per_minute == first.rate_limit_per_minute  # still built
    root.reset()
    assert get_settings().rate_limit_per_minute == 7


def test_use_puts_collaborators_in_place_for_a_block_and_nests() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    built = get_twilio_service()
    with root.use(clock=lambda: moment):
        assert clock.now() == moment
        with root.use(clock=lambda: moment.replace(year=2030)):
            assert clock.now().year == 2030
        assert clock.now() == moment
        assert get_twilio_service() is built  # what was not swapped is the process's own
    assert clock.now() > moment
    with pytest.raises(TypeError, match="no such collaborator: twillio"), root.use(twillio=1):
        pass


def test_a_send_goes_to_the_twilio_service_the_root_holds(storage: str) -> None:
    twilio = RecordingTwilio()
    with root.use(twilio=twilio):
        answer = send_sms(
            request("POST", "/api/sendSms", json_body={"to": "+14155551234", "body": "hi"})
        )
    assert answer.status_code == 201
    assert json.loads(answer.get_body())["sid"] == "SM" + "9" * 32
    assert [(p["to"], p["body"]) for p in twilio.asked] == [("+14155551234", "hi")]
    assert get_tables() is get_tables()
