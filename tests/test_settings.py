"""App settings: read once, every bad one named, no value ever shown."""

from __future__ import annotations

import json

import pytest

from api.core.errors import ConfigurationError
from api.core.settings import Settings, get_settings
from api.edge.app_routes import send_sms
from tests.support.func_requests import problem, request, run_twiml
from tests.support.settings import AUTH_TOKEN, BASE_SETTINGS


def test_base_settings_load() -> None:
    settings = Settings.from_environ(BASE_SETTINGS)
    assert settings.public_host == "ahoy.example.net"
    assert settings.flow_ttl_seconds == 900
    assert len(settings.flow_key.get()) == 32


def test_every_missing_setting_is_named_at_once() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({"TWILIO_ACCOUNT_SID": BASE_SETTINGS["TWILIO_ACCOUNT_SID"]})
    assert raised.value.settings == [
        "AHOY_FLOW_KEY",
        "AzureWebJobsStorage",
        "PUBLIC_BASE_URL",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_ACCOUNT_SID", "not-a-sid"),
        ("TWILIO_FROM_NUMBER", "4155550100"),
        ("PUBLIC_BASE_URL", "ftp://example.net"),
        ("AHOY_FLOW_KEY", "dG9vIHNob3J0"),
        ("AHOY_FLOW_KEY", "not base64 at all!"),
        ("FLOW_TTL_SECONDS", "forever"),
        ("TWILIO_API_BASE_URL", "nowhere"),
        ("TWILIO_AUTH_TOKEN", "@Microsoft.KeyVault(SecretUri=https://vault.example/secrets/x)"),
    ],
)
def test_invalid_values_are_named(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({**BASE_SETTINGS, name: value})
    assert raised.value.settings == [name]
    assert value not in str(raised.value)


def test_an_api_key_needs_its_secret() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({**BASE_SETTINGS, "TWILIO_API_KEY_SID": "SK" + "0" * 32})
    assert raised.value.settings == ["TWILIO_API_KEY_SECRET", "TWILIO_API_KEY_SID"]


def test_secrets_do_not_show_in_reprs() -> None:
    settings = Settings.from_environ(BASE_SETTINGS)
    assert AUTH_TOKEN not in repr(settings)
    assert BASE_SETTINGS["AHOY_FLOW_KEY"] not in repr(settings)


def test_settings_are_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("FLOW_TTL_SECONDS", "120")
    assert get_settings() is first


def test_a_missing_setting_answers_500_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_FROM_NUMBER")
    response = send_sms(
        request("POST", "/api/sendSms", json_body={"to": "+14155551234", "body": "hi"})
    )
    assert response.status_code == 500
    body = problem(response)
    assert body["settings"] == ["TWILIO_FROM_NUMBER"]
    assert "TWILIO_FROM_NUMBER" in body["detail"]
    assert AUTH_TOKEN not in json.dumps(body)


def test_twiml_with_a_missing_setting_is_500_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AHOY_FLOW_KEY", "@Microsoft.KeyVault(VaultName=v;SecretName=s)")
    response = run_twiml(request("GET", "/api/twiml?flow=abc"))
    assert response.status_code == 500
    assert problem(response)["settings"] == ["AHOY_FLOW_KEY"]
    assert "VaultName" not in response.get_body().decode()


IDENTITY = {k: v for k, v in BASE_SETTINGS.items() if k != "AzureWebJobsStorage"}
CLIENT_ID = "3f0c2c0e-6a7b-4c1d-9e2f-0a1b2c3d4e5f"


def test_storage_by_account_name_uses_its_public_table_endpoint_and_the_identity() -> None:
    storage = Settings.from_environ(
        {
            **IDENTITY,
            "AzureWebJobsStorage__accountName": "stahoy123",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": CLIENT_ID,
        }
    ).storage
    assert storage.connection_string is None
    assert storage.table_endpoint == "https://stahoy123.table.core.windows.net"
    assert storage.managed_identity
    assert storage.client_id == CLIENT_ID


def test_a_table_service_uri_beats_the_account_name_and_no_credential_means_the_default_chain() -> (
    None
):
    storage = Settings.from_environ(
        {
            **IDENTITY,
            "AzureWebJobsStorage__accountName": "stahoy123",
            "AzureWebJobsStorage__tableServiceUri": "https://tables.example.net/",
        }
    ).storage
    assert storage.table_endpoint == "https://tables.example.net"
    assert not storage.managed_identity


def test_a_connection_string_wins_over_identity_settings() -> None:
    storage = Settings.from_environ(
        {**BASE_SETTINGS, "AzureWebJobsStorage__accountName": "stahoy123"}
    ).storage
    assert storage.connection_string is not None
    assert storage.connection_string.get() == "UseDevelopmentStorage=true"
    assert storage.table_endpoint is None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, ["AzureWebJobsStorage"]),
        ({"AzureWebJobsStorage__credential": "managedidentity"}, ["AzureWebJobsStorage"]),
        (
            {"AzureWebJobsStorage__accountName": "Not_An-Account"},
            ["AzureWebJobsStorage__accountName"],
        ),
        (
            {
                "AzureWebJobsStorage__accountName": "stahoy",
                "AzureWebJobsStorage__clientId": CLIENT_ID,
            },
            ["AzureWebJobsStorage__clientId", "AzureWebJobsStorage__credential"],
        ),
        (
            {
                "AzureWebJobsStorage__accountName": "stahoy",
                "AzureWebJobsStorage__credential": "connectionstring",
            },
            ["AzureWebJobsStorage__credential"],
        ),
        (
            {"AzureWebJobsStorage__tableServiceUri": "http://tables.example.net"},
            ["AzureWebJobsStorage__tableServiceUri"],
        ),
        (
            {
                "AzureWebJobsStorage__accountName": "stahoy",
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": "not-a-guid",
            },
            ["AzureWebJobsStorage__clientId"],
        ),
    ],
)
def test_missing_or_contradictory_storage_settings_are_named(
    settings: dict[str, str], named: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({**IDENTITY, **settings})
    assert raised.value.settings == named


@pytest.mark.parametrize(
    ("days", "hours", "valid"),
    [("1", "72", False), ("2", "49", False), ("2", "48", True), ("3", "72", True), ("1", "", True)],
)
def test_retention_may_never_delete_a_row_whose_key_is_still_honoured(
    days: str, hours: str, valid: bool
) -> None:
    env = {**BASE_SETTINGS, "RETENTION_DAYS": days, "IDEMPOTENCY_TTL_HOURS": hours}
    if valid:
        assert Settings.from_environ(env).retention_days == int(days)
        return
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_environ(env)
    assert refused.value.settings == ["IDEMPOTENCY_TTL_HOURS", "RETENTION_DAYS"]
