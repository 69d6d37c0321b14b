"""Invoke functions through Azure's execution runtime in this process, as the local host does,
so a warm figure pays the runtime's per-invocation cost on both sides of its ratio.

`bench/runtime_app.py` is Ahoy's app plus the bench's floors (their bodies set in FLOORS by
bench.run), indexed and loaded by the pinned azure-functions-runtime through devhost.runtime.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func

from devhost import conversion
from devhost.runtime import SCRIPT_FILE_SETTING, Runtime, succeeded

BENCH = Path(__file__).resolve().parent

# name -> what the floor function does with the request (set before it is invoked)
FLOORS: dict[str, Callable[[func.HttpRequest], func.HttpResponse]] = {}


class Invoker:
    """The runtime with bench/runtime_app.py loaded, and a way to call its functions."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        os.environ[SCRIPT_FILE_SETTING] = "runtime_app.py"
        try:
            self.runtime = self.loop.run_until_complete(Runtime.start(BENCH))
        finally:
            del os.environ[SCRIPT_FILE_SETTING]  # the local hosts it starts serve function_app
        self.functions = {f.name: f for f in self.runtime.functions}

    def __call__(
        self,
        name: str,
        path: str,
        *,
        method: str = "POST",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        route_params: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Status and body of one invocation of function `name`, as the host makes it."""
        function = self.functions[name]
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        sent["content-length"] = str(len(body))
        data = conversion.to_rpc_http(
            method=method,
            url=f"http://127.0.0.1:7071{path}",
            headers=sent,
            query_string=path.partition("?")[2].encode(),
            route_params=route_params or {},
            body=body,
        )
        answer: Any = self.loop.run_until_complete(
            self.runtime.invoke(function, function.trigger["name"], data)
        )
        assert succeeded(answer.result), answer.result.exception.message
        status, _, answer_body = conversion.response_parts(answer.return_value)
        return status, answer_body

    def close(self) -> None:
        self.runtime.stop()
        self.loop.close()
