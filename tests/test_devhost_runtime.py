"""The local host runs apps on Azure's own execution runtime (the pinned azure-functions-runtime)
and imitates the .NET host's rules around it: what the runtime or the host would refuse is
refused at start, requests reach functions converted as ToRpcHttp converts them, sync functions
run on the worker's pool, timers and warmup get what the host gives them."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import typing
from importlib.metadata import version
from pathlib import Path

import azure.functions as func
import azure_functions_runtime
import pytest
from packaging.requirements import Requirement

from devhost.host import FunctionHost
from devhost.runtime import AppRefused
from tests.support.asgi import asgi_request, run_lifespan
from tests.support.functions import indexed
from tests.support.probe_apps import SEEN, load_probe, write_app

ROOT = Path(__file__).resolve().parents[1]

HEADER = """
import json
import azure.functions as func
from tests.support.probe_apps import SEEN

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
"""

WARMUP_AS_OBJECT = (
    HEADER
    + """
@app.route(route="hello", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")

@app.warm_up_trigger(arg_name="warmup")
def warmup(warmup: object) -> None:
    pass
"""
)


def reserved_route(route: str) -> str:
    return (
        HEADER
        + f"""
@app.route(route="{route}", methods=["GET"])
def reserved(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("never served in Azure")
"""
    )


ECHO = (
    HEADER
    + """
@app.route(route="echo/{*rest}")
def echo(req: func.HttpRequest) -> func.HttpResponse:
    seen = {
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "route": dict(req.route_params),
        "headers": {k: v for k, v in req.headers.items() if k.startswith("x-")},
        "body": req.get_body().decode(),
    }
    return func.HttpResponse(json.dumps(seen), mimetype="application/json")

@app.route(route="text", methods=["GET"])
def text(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("plain")

@app.route(route="fails", methods=["GET"])
def fails(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the function's own failure")

from azure.functions.warmup import WarmUpContext

@app.warm_up_trigger(arg_name="warmup")
def warmup(warmup: WarmUpContext) -> None:
    SEEN.append(type(warmup).__name__)
"""
)


def check(script: str | None = None, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`python -m devhost --check`: index the app in `root` as the local host would."""
    args = [sys.executable, "-m", "devhost", "--check", "--root", str(root)]
    if script:
        args += ["--script-file", script]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


# --- what Azure would refuse is refused at start -------------------------------------------


def test_an_app_the_runtime_refuses_is_refused_with_the_runtimes_reason(tmp_path: Path) -> None:
    with pytest.raises(AppRefused) as refused:
        load_probe(tmp_path, WARMUP_AS_OBJECT)
    # the runtime's own FunctionLoadError, naming the function and the annotation
    assert "cannot load the warmup function" in str(refused.value)
    assert "annotation object" in str(refused.value)


def test_the_command_line_refuses_it_too_and_serves_nothing(tmp_path: Path) -> None:
    script = write_app(tmp_path, WARMUP_AS_OBJECT)
    result = check(script, tmp_path)
    assert result.returncode == 1
    assert "Azure would serve no function of this app" in result.stderr
    assert "cannot load the warmup function" in result.stderr
    assert "/api/hello" not in result.stdout


@pytest.mark.parametrize("route", ["admin/inbox", "Admin/x", "administrators", "runtime/status"])
def test_a_route_in_the_hosts_reserved_space_is_refused(tmp_path: Path, route: str) -> None:
    with pytest.raises(AppRefused, match="reserved: The specified route conflicts"):
        load_probe(tmp_path, reserved_route(route))


@pytest.mark.parametrize("route", ["ops/admin", "my-runtime", "inbox"])
def test_a_route_that_only_contains_a_reserved_word_is_served(tmp_path: Path, route: str) -> None:
    host = load_probe(tmp_path, reserved_route(route))
    assert asgi_request(host, "GET", f"/api/{route}")[0] == 200


# --- Ahoy on the pinned runtime --------------------------------------------------------------


def readme_routes() -> set[tuple[str, str, str]]:
    """(methods, path, auth level) of each row of the README's route table."""
    text = (ROOT / "README.md").read_text()
    table = text.split("### Routes at a glance", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `([A-Z|]+) (/api/[^`]+)` \| (\w+) \|", table, re.MULTILINE)
    return {(",".join(sorted(m.split("|"))), path, level.upper()) for m, path, level in rows}


def test_the_pinned_runtime_indexes_ahoy_with_the_routes_the_readme_lists() -> None:
    [pin] = [
        Requirement(line)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("azure-functions-runtime")
    ]
    assert str(pin.specifier).startswith("==")  # runtime version control: an exact pin
    assert version("azure-functions-runtime") == azure_functions_runtime.version.VERSION
    assert pin.specifier.contains(version("azure-functions-runtime"))

    result = check()
    assert result.returncode == 0, result.stderr
    served = set(re.findall(r"^  (\S+)\s+(/api/\S+)  \[(\w+)\]", result.stdout, re.MULTILINE))
    assert served == readme_routes()
    assert len(served) == 30
    assert "timerTrigger: retention" in result.stdout
    assert "warmupTrigger: warmup" in result.stdout


def test_every_bound_parameter_passes_azure_functions_own_converter_check() -> None:
    registry = func.get_binding_registry()
    checked = 0
    for function in indexed():
        hints = typing.get_type_hints(function.get_user_function())
        for binding in function.get_bindings():
            if binding.name == "$return" or binding.name not in hints:
                continue
            converter = registry.get(binding.type)
            assert converter is not None, binding.type
            assert converter.check_input_type_annotation(hints[binding.name]), (
                function.get_function_name(),
                binding.name,
            )
            checked += 1
    assert checked == len(indexed())  # one trigger each, all annotated


# --- requests as ToRpcHttp converts them ---------------------------------------------------


@pytest.fixture
def echo(tmp_path: Path) -> FunctionHost:
    return load_probe(tmp_path, ECHO)


def seen(
    host: FunctionHost,
    path: str,
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    method: str = "POST",
) -> dict[str, typing.Any]:
    status, answer_headers, answer = asgi_request(
        host, method, path, query=query, header_pairs=headers, body=body
    )
    assert status == 200, answer
    assert answer_headers["content-type"] == "application/json"
    return dict(json.loads(answer))


def test_empty_query_values_are_dropped_and_repeated_ones_joined(echo: FunctionHost) -> None:
    got = seen(echo, "/api/echo/x", "pageSize=&a=1&b=2&A=3&flag&c=x+y%20z")
    assert got["params"] == {"a": "1,3", "b": "2", "c": "x y z"}


def test_repeated_headers_are_joined_and_names_lower_cased(echo: FunctionHost) -> None:
    got = seen(echo, "/api/echo/x", headers=[("X-Tag", "one"), ("x-tag", "two"), ("X-Solo", "")])
    assert got["headers"] == {"x-tag": "one,two", "x-solo": ""}


def test_the_body_is_passed_only_with_a_content_length(echo: FunctionHost) -> None:
    with_length = seen(echo, "/api/echo/x", headers=[("content-length", "5")], body=b"hello")
    assert with_length["body"] == "hello"
    chunked = [("transfer-encoding", "chunked")]
    assert seen(echo, "/api/echo/x", headers=chunked, body=b"hello")["body"] == ""


def test_the_url_is_the_decoded_path_escaped_again_and_the_raw_query(echo: FunctionHost) -> None:
    got = seen(echo, "/api/echo/a%41b%2Fc%20d", "q=%41+b", method="GET")
    assert got["url"] == "http://127.0.0.1:7071/api/echo/aAb%2Fc%20d?q=%41+b"
    assert got["route"] == {"rest": "aAb%2Fc d"}  # an escaped slash never splits a segment
    assert got["method"] == "GET"


def test_a_route_with_no_methods_answers_every_method(echo: FunctionHost) -> None:
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        assert seen(echo, "/api/echo/x", method=method)["method"] == method


def test_json_goes_out_bare_and_text_with_its_charset(echo: FunctionHost) -> None:
    # azure-functions' HttpResponseConverter: a charset for text/* only
    assert asgi_request(echo, "GET", "/api/text")[1]["content-type"] == "text/plain; charset=utf-8"


def test_a_failed_invocation_is_a_bare_500_and_its_reason_stays_in_the_log(
    echo: FunctionHost, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="devhost"):
        status, _, body = asgi_request(echo, "GET", "/api/fails")
    assert (status, body) == (500, b"")
    assert "function fails failed: RuntimeError: the function's own failure" in caplog.text


def test_warmup_gets_a_warmup_context_at_start(echo: FunctionHost) -> None:
    run_lifespan(echo, 0)
    assert SEEN == ["WarmUpContext"]


# --- the worker's pool ---------------------------------------------------------------------

POOL = (
    HEADER
    + """
import threading, time

lock = threading.Lock()
running = [0]

@app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    with lock:
        running[0] += 1
        SEEN.append(running[0])
    time.sleep(0.2)
    with lock:
        running[0] -= 1
    return func.HttpResponse("done")
"""
)


def concurrent_peak(host: FunctionHost, requests: int) -> int:
    async def burst() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(
                loop.run_in_executor(None, asgi_request, host, "GET", "/api/slow")
                for _ in range(requests)
            )
        )

    asyncio.run(burst())
    return max(SEEN)


def test_sync_functions_run_on_a_pool_sized_as_the_worker_sizes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("PYTHON_THREADPOOL_THREAD_COUNT", "2")
    assert concurrent_peak(load_probe(tmp_path, POOL), 6) == 2
    monkeypatch.delenv("PYTHON_THREADPOOL_THREAD_COUNT")
    default = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
    assert concurrent_peak(load_probe(tmp_path, POOL), default + 3) == default
