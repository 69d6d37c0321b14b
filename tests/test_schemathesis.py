"""Schemathesis against the running app, from its own OpenAPI document: no 5xx, only problems."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.support.devhost_process import FUNCTION_KEY, DevHost

schema = schemathesis.pytest.from_fixture("app_schema")


@pytest.fixture(scope="module")
def app_schema(devhost: DevHost) -> object:
    return schemathesis.openapi.from_url(f"{devhost.url}/api/openapi.json")


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_every_error_is_a_problem(case: object, devhost: DevHost) -> None:
    response = case.call(base_url=devhost.url, headers={"x-functions-key": FUNCTION_KEY})  # type: ignore[attr-defined]
    case.validate_response(response, checks=[not_a_server_error])  # type: ignore[attr-defined]
    if response.status_code >= 400 and not response.content:
        # The host's own answers (a missing or wrong key; a method the route does not take).
        assert response.status_code in (401, 404)
    elif response.status_code >= 400:
        headers = {name.lower(): values for name, values in response.headers.items()}
        assert headers["content-type"][0].startswith("application/problem+json")
        assert response.json()["status"] == response.status_code
