"""Azure's Python execution runtime, driven in process as Azure's proxy worker drives it.

From Python 3.13 the Functions host talks gRPC to a thin proxy worker, and the proxy calls
`azure-functions-runtime` (pinned in requirements.txt, so the same version runs in Azure) through
its public verbs: `worker_init_request` (which imports the app and indexes it, checking every
bound parameter's annotation), `functions_metadata_request`, `function_load_request` and
`invocation_request`. This module plays the proxy's part with the message classes of
`devhost.messages`; the runtime does the rest, exactly as in Azure. Never called here:
`function_environment_reload_request` (it clears `os.environ`; only placeholder mode uses it).

The runtime keeps its registry in module globals: one app per process, as one worker serves one
app in Azure. Starting another app in the same process replaces the first.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure_functions_runtime as runtime

from devhost import messages as protos

log = logging.getLogger("devhost")

# The runtime's own logger ("azure.functions") writes a line per invocation at INFO; in Azure
# those are the worker's system logs, not the app's. The app's loggers are left as they are.
RUNTIME_LOGGER = "azure.functions"
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"  # the app setting the runtime reads


class AppRefused(Exception):
    """The runtime would not index or load the app: Azure would serve none of its functions."""


@dataclass(frozen=True)
class Function:
    """One indexed function, as the host reads it from the runtime's metadata."""

    name: str
    function_id: str
    bindings: tuple[dict[str, Any], ...]  # the raw bindings (function.json's "bindings")

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if str(b.get("type", "")).endswith("Trigger"))


class Runtime:
    """The execution runtime with one app indexed and loaded."""

    def __init__(self, functions: list[Function]) -> None:
        self.functions = functions

    @classmethod
    async def start(cls, app_dir: Path) -> Runtime:
        """Index and load the app in `app_dir` (its `PYTHON_SCRIPT_FILE_NAME`, by default
        `function_app.py`); AppRefused with the runtime's own message when it fails."""
        logging.getLogger(RUNTIME_LOGGER).setLevel(logging.WARNING)
        # The proxy starts the sync pool before init: PYTHON_THREADPOOL_THREAD_COUNT threads, or
        # ThreadPoolExecutor's default, min(32, cores + 4) (azure_functions_runtime.utils
        # .threadpool.start_threadpool_executor).
        runtime.start_threadpool_executor()
        # The proxy worker puts the app's folder first on sys.path before init.
        if str(app_dir) not in sys.path:
            sys.path.insert(0, str(app_dir))
        init = await runtime.worker_init_request(
            _request(
                "worker_init_request",
                protos.WorkerInitRequest(
                    function_app_directory=str(app_dir),
                    capabilities={},
                    worker_directory=str(Path(runtime.__file__).parent),
                    host_version="4",
                ),
                {"protos": protos, "host": "127.0.0.1"},
            )
        )
        _raise_for(init.result, os.environ.get(SCRIPT_FILE_SETTING) or "function_app.py")
        metadata = await runtime.functions_metadata_request(
            _request("functions_metadata_request", protos.FunctionsMetadataRequest())
        )
        _raise_for(metadata.result, "the app")
        functions = [
            Function(
                name=m.name,
                function_id=m.function_id,
                bindings=tuple(json.loads(raw) for raw in m.raw_bindings),
            )
            for m in metadata.function_metadata_results or []
        ]
        for function in functions:
            loaded = await runtime.function_load_request(
                _request(
                    "function_load_request",
                    protos.FunctionLoadRequest(function_id=function.function_id),
                )
            )
            _raise_for(loaded.result, f"function {function.name}")
        return cls(functions)

    async def invoke(self, function: Function, arg_name: str, data: protos.TypedData) -> Any:
        """Run `function` with its trigger's data; the InvocationResponse."""
        return await runtime.invocation_request(
            _request(
                "invocation_request",
                protos.InvocationRequest(
                    invocation_id=str(uuid.uuid4()),
                    function_id=function.function_id,
                    input_data=[protos.ParameterBinding(name=arg_name, data=data)],
                    trigger_metadata={},
                ),
            )
        )

    @staticmethod
    def stop() -> None:
        runtime.stop_threadpool_executor()


def succeeded(result: Any) -> bool:
    return bool(result.status == protos.StatusResult.Success)


def _raise_for(result: Any, what: str) -> None:
    if not succeeded(result):
        message = result.exception.message if result.exception else "no reason given"
        raise AppRefused(f"{what}: {message}")


def _request(
    verb: str, message: protos.Message, properties: dict[str, Any] | None = None
) -> protos.RuntimeRequest:
    envelope = protos.StreamingMessage(request_id=str(uuid.uuid4()), **{verb: message})
    return protos.RuntimeRequest(verb, envelope, properties or {})
