"""Fixtures only: app settings, the leak check, Azurite, Twilio mocked by HTTP, the local host.

Helpers and shared constants live in modules under tests/support/. Azurite starts only when
a test asks for storage (the `storage` fixture, or a fixture that needs it), so the pure tests
run without Node.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import responses

from tests.support.azurite import Azurite
from tests.support.devhost_process import DevHost, devhost_settings
from tests.support.fleet import connection_string
from tests.support.jwks_server import AUDIENCE, ISSUER, Issuer, running_issuer
from tests.support.polling import eventually
from tests.support.settings import (
    BASE_SETTINGS,
    JWT_SHAPE,
    NEVER_LOGGED,
    OPTIONAL_SETTINGS,
    reset_caches,
)
from tests.support.storage_proxy import StorageProxy
from tests.support.tables import background_retries_running
from tests.support.twilio_standin import TwilioStandIn

# Where storage points when a test did not ask for it: nothing listens there, so a test that
# touches storage without the `storage` fixture fails instead of using whatever runs locally.
NO_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=bm9uZQ==;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs Azurite `storage`: `pytest -m "not storage"` needs no Node."""
    for item in items:
        if "azurite" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.storage)


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def no_secrets_in_logs() -> Iterator[None]:
    """Every test doubles as a leak check: all log output at DEBUG, from every logger."""
    capture = _LogCapture()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    yield
    root.removeHandler(capture)
    root.setLevel(level)
    leaks = [
        line
        for line in capture.lines
        if JWT_SHAPE.search(line) or any(secret in line for secret in NEVER_LOGGED)
    ]
    assert not leaks, f"secrets or personal data in logs: {leaks}"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Real Azure Table Storage (Azurite) for the whole run, on a free port, fresh data."""
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def app_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Every test starts from the base settings; storage is nowhere until it asks for it."""
    for name in [*BASE_SETTINGS, *OPTIONAL_SETTINGS]:
        monkeypatch.delenv(name, raising=False)
    for name, value in BASE_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AzureWebJobsStorage", NO_STORAGE)
    reset_caches()
    yield dict(BASE_SETTINGS)
    reset_caches()
    # Background retries (storage.keep_trying) stop once the process uses other tables: none
    # outlives its test, to write or be counted in the next one's.
    assert eventually(lambda: not background_retries_running(), timeout=10), (
        "background storage work left"
    )


@pytest.fixture
def storage(app_settings: dict[str, str], azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """Ahoy's tables in Azurite, fresh for this test (their own name prefix)."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("AHOY_TABLE_PREFIX", prefix)
    reset_caches()
    return prefix


@pytest.fixture
def twilio(storage: str, azurite: Azurite) -> Iterator[responses.RequestsMock]:
    """Twilio's REST API, mocked at the HTTP layer; every registered answer must be used.

    azure-data-tables sends through requests too: Azurite's traffic passes through.
    """
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru(f"http://127.0.0.1:{azurite.port}")
        yield mock


@pytest.fixture
def proxy(
    storage: str, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StorageProxy]:
    """This test's tables, reached through a proxy the test can cut or count."""
    server = StorageProxy(f"http://127.0.0.1:{azurite.port}", delay=0).start()
    monkeypatch.setenv("AzureWebJobsStorage", connection_string(server.url))
    reset_caches()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def standin() -> Iterator[TwilioStandIn]:
    """Twilio's REST API on loopback, for tests whose Ahoy runs in another process."""
    with TwilioStandIn() as server:
        yield server


@pytest.fixture(scope="session")
def devhost(
    standin: TwilioStandIn, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """Ahoy under its local host on loopback, signed in as DEV_PRINCIPAL, Twilio = standin."""
    process = DevHost(devhost_settings(standin, azurite), tmp_path_factory.mktemp("devhost"))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
def issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Issuer]:
    """An OIDC issuer on loopback, and CALLER_AUTH=jwt pointed at it."""
    from api.edge import auth

    with running_issuer() as running:
        monkeypatch.setenv("CALLER_AUTH", "jwt")
        monkeypatch.setenv("OIDC_ISSUER", ISSUER)
        monkeypatch.setenv("OIDC_AUDIENCE", AUDIENCE)
        monkeypatch.setenv("OIDC_JWKS_URL", running.url)
        auth._jwks_by_url.clear()
        yield running
        auth._jwks_by_url.clear()
