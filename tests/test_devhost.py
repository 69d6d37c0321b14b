"""The local host's routing, responses and access log, driven in-process over ASGI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from devhost.host import FunctionHost
from tests.support.asgi import asgi_request
from tests.support.probe_apps import load_probe

TINY_APP = """
    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="{*rest}", methods=["GET"])
    def catch_all(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"catch-all {req.route_params['rest']}")

    @app.route(route="items/latest", methods=["GET"])
    async def latest(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            "<latest/>", headers={"Content-Type": "application/xml"}, mimetype="text/plain"
        )

    @app.route(route="whereami", methods=["GET"])
    def whereami(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.url)

    @app.route(route="items/{id}", methods=["GET"])
    def item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"item {req.route_params['id']}")
"""


def call(host: FunctionHost, path: str, query: str = "") -> tuple[int, dict[str, str], bytes]:
    return asgi_request(host, "GET", path, query=query)


@pytest.fixture
def host(tmp_path: Path) -> FunctionHost:
    return load_probe(tmp_path, TINY_APP)


def test_the_more_specific_route_wins_whatever_the_declaration_order(host: FunctionHost) -> None:
    assert call(host, "/api/items/latest")[2] == b"<latest/>"
    assert call(host, "/API/Items/LATEST")[2] == b"<latest/>"
    assert call(host, "/api/items/7")[2] == b"item 7"
    assert call(host, "/api/elsewhere/x")[2] == b"catch-all elsewhere/x"


def test_a_functions_own_content_type_is_sent_once_and_wins(host: FunctionHost) -> None:
    status, headers, _ = call(host, "/api/items/latest")
    assert (status, headers["content-type"], headers["content-length"]) == (
        200,
        "application/xml",
        "9",
    )
    _, headers, _ = call(host, "/api/items/7")
    assert headers["content-type"] == "text/plain; charset=utf-8"


def test_each_request_is_logged_by_path_without_its_query(
    host: FunctionHost, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="devhost"):
        call(host, "/api/items/7", "code=secret-key")
    [record] = [r for r in caplog.records if r.name == "devhost"]
    assert record.getMessage().startswith("GET /api/items/7 -> 200 (")
    assert "secret-key" not in caplog.text


def test_no_access_log_writes_no_line_per_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = load_probe(tmp_path, TINY_APP, access_log=False)
    with caplog.at_level(logging.DEBUG, logger="devhost"):
        assert call(quiet, "/api/items/7")[0] == 200
    assert [r for r in caplog.records if r.name == "devhost"] == []


@pytest.mark.parametrize(
    "bad",
    [
        "evil.example/api/twiml?x=",  # would move the path the app reads
        "user@allowed.example",
        "a b.example",
        "example.org:port",
        "example.org:123456",
        "[::1",
        "-lead.example",
        "",
    ],
)
def test_a_malformed_host_header_is_400_and_reaches_no_function(
    host: FunctionHost, bad: str
) -> None:
    status, _, body = asgi_request(host, "GET", "/api/whereami", headers={"host": bad})
    assert (status, body) == (400, b"")


@pytest.mark.parametrize(
    "good", ["localhost:7071", "127.0.0.1", "[::1]:7071", "abc-1.ngrok-free.app", "EXAMPLE.org."]
)
def test_a_well_formed_host_makes_the_request_url(host: FunctionHost, good: str) -> None:
    status, _, body = asgi_request(host, "GET", "/api/whereami", headers={"host": good})
    assert (status, body.decode()) == (200, f"http://{good}/api/whereami")


def test_a_body_declared_over_the_hosts_limit_is_413_before_it_is_read(host: FunctionHost) -> None:
    from devhost.host import MAX_REQUEST_BYTES

    declared = {"content-length": str(MAX_REQUEST_BYTES + 1)}
    status, _, body = asgi_request(host, "GET", "/api/items/7", headers=declared)
    assert (status, body) == (413, b"")


KEYED_APP = """
    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="keyed", methods=["POST"])
    def keyed(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("in", status_code=201)
"""


@pytest.fixture
def keyed(tmp_path: Path) -> FunctionHost:
    return load_probe(tmp_path, KEYED_APP)


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("", {"x-functions-key": "function-key-0123456789"}, 201),
        ("code=function-key-0123456789", {}, 201),  # the key in the `code` query parameter
        ("", {"x-functions-key": "master-key-0123456789"}, 201),  # the master key opens all
        ("", {}, 401),
        ("", {"x-functions-key": "wrong"}, 401),
        ("code=wrong", {}, 401),
    ],
)
def test_a_function_level_route_needs_a_key_as_the_host_checks_it(
    keyed: FunctionHost, query: str, headers: dict[str, str], status: int
) -> None:
    answered, _, body = asgi_request(keyed, "POST", "/api/keyed", query=query, headers=headers)
    assert answered == status
    if status == 401:
        assert body == b""  # the host's empty 401: the function never ran
