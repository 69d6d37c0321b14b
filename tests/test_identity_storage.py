"""Ahoy's tables with no connection string: a Microsoft Entra token from the managed identity.

Against a real table service that checks tokens: Azurite with `--oauth basic` over HTTPS (a
certificate made here), and the token from an App Service-style managed identity endpoint,
which is what ManagedIdentityCredential asks in Azure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient

from api.edge.app_routes import get_message, send_sms
from tests.support.azurite import Azurite
from tests.support.func_requests import request
from tests.support.identity import (
    IDENTITY_HEADER,
    ManagedIdentityEndpoint,
    self_signed_certificate,
    storage_token,
)
from tests.support.settings import MESSAGES_URL, reset_caches
from tests.support.twilio_api import twilio_message

CLIENT_ID = "3f0c2c0e-6a7b-4c1d-9e2f-0a1b2c3d4e5f"


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, Path]]:
    folder = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = self_signed_certificate(folder)
    server = Azurite(
        folder / "data", extra=("--oauth", "basic", "--cert", str(cert), "--key", str(key))
    ).start()
    yield server, cert
    server.stop()


@pytest.fixture
def identity_endpoint() -> Iterator[ManagedIdentityEndpoint]:
    endpoint = ManagedIdentityEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def identity_storage(
    oauth_azurite: tuple[Azurite, Path],
    identity_endpoint: ManagedIdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> Azurite:
    """Settings as the template writes them: no AzureWebJobsStorage, the identity instead."""
    server, cert = oauth_azurite
    monkeypatch.delenv("AzureWebJobsStorage")
    monkeypatch.setenv("AzureWebJobsStorage__tableServiceUri", server.table_endpoint)
    monkeypatch.setenv("AzureWebJobsStorage__credential", "managedidentity")
    monkeypatch.setenv("AzureWebJobsStorage__clientId", CLIENT_ID)
    monkeypatch.setenv("AHOY_TABLE_PREFIX", "identity")
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity_endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust the test's certificate
    reset_caches()
    return server


def test_a_send_is_recorded_and_read_back_with_a_managed_identity_token(
    identity_storage: Azurite, identity_endpoint: ManagedIdentityEndpoint
) -> None:
    with responses.RequestsMock() as twilio:
        twilio.add_passthru(identity_storage.table_endpoint.rsplit("/", 1)[0])
        twilio.add_passthru(identity_endpoint.url)
        twilio.post(MESSAGES_URL, json=twilio_message(), status=201)
        sent = send_sms(
            request("POST", "/api/sendSms", json_body={"to": "+14155551234", "body": "hi"})
        )
    assert sent.status_code == 201
    sid = json.loads(sent.get_body())["sid"]
    shown = get_message(request("GET", f"/api/messages/{sid}", route_params={"sid": sid}))
    assert shown.status_code == 200
    assert json.loads(shown.get_body())["state"] == "sent"
    # The user-assigned identity asked for a storage token, as in Azure.
    asked = identity_endpoint.requests
    assert asked
    assert all(r["header"] == IDENTITY_HEADER for r in asked)
    assert {r["query"].get("client_id") for r in asked} == {CLIENT_ID}
    assert {r["query"].get("resource") for r in asked} == {"https://storage.azure.com"}


def test_the_table_service_really_checks_the_token(
    oauth_azurite: tuple[Azurite, Path],
) -> None:
    """Without this, the test above would prove nothing: a bad or missing token is refused."""
    server, cert = oauth_azurite

    class Fixed:
        def __init__(self, token: str) -> None:
            self.token = token

        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            return AccessToken(self.token, 2**31)

    foreign = storage_token(issuer="https://login.example.org/tenant/")
    client = TableServiceClient(
        endpoint=server.table_endpoint,
        credential=Fixed(foreign),
        connection_verify=str(cert),
        retry_total=0,
    )
    with pytest.raises(HttpResponseError) as refused:
        next(iter(client.list_tables().by_page()), None)
    assert refused.value.status_code in (401, 403)
    anonymous = requests.get(f"{server.table_endpoint}/Tables", verify=str(cert), timeout=5)
    assert anonymous.status_code in (401, 403)
    good = TableServiceClient(
        endpoint=server.table_endpoint,
        credential=Fixed(storage_token()),
        connection_verify=str(cert),
        retry_total=0,
    )
    next(iter(good.list_tables().by_page()), None)  # accepted


def test_no_storage_setting_at_all_names_azurewebjobsstorage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage")
    reset_caches()
    response = send_sms(
        request("POST", "/api/sendSms", json_body={"to": "+14155551234", "body": "x"})
    )
    assert response.status_code == 500
    assert json.loads(response.get_body())["settings"] == ["AzureWebJobsStorage"]
