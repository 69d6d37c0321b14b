"""The messages azure-functions-runtime reads and builds, as small Python classes.

In Azure the proxy worker hands the runtime its protobuf module (`FunctionRpc.proto` of
azure-functions-language-worker-protobuf) at init, as `properties["protos"]`; the runtime reads
requests by attribute and builds answers with `protos.Name(**fields)`. It imports neither
protobuf nor gRPC, so these classes serve in process: each takes any field by keyword, an unset
field reads as the proto3 default (empty, zero, or an empty message), and `WhichOneof` answers as
protobuf's does for the two oneofs the runtime asks about (`TypedData.data`,
`ParameterBinding.rpc_data`). Enum values are the proto's numbers. Tested against the pinned
runtime (tests/test_devhost_runtime.py).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Message:
    """A proto3 message: its fields by keyword; one never set reads as its default."""

    # Every field of the message (FunctionRpc.proto) and its default: "", 0, or a factory for
    # maps, lists and messages. Any other name is an AttributeError, as in protobuf.
    fields: ClassVar[dict[str, Any]] = {}
    oneofs: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.fields)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no field {sorted(unknown)}")
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        if name not in self.fields:
            raise AttributeError(name)
        default = self.fields[name]
        return default() if callable(default) else default

    def WhichOneof(self, group: str) -> str | None:  # protobuf's name
        return next((f for f in self.oneofs.get(group, ()) if f in self.__dict__), None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(sorted(self.__dict__))})"


def _fields(*names: str, **defaults: Any) -> dict[str, Any]:
    return {**dict.fromkeys(names, ""), **defaults}


class StatusResult(Message):
    Failure, Success, Cancelled = 0, 1, 2
    fields: ClassVar[dict[str, Any]] = _fields("result", status=0, exception=None, logs=list)


class RpcException(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "source", "stack_trace", "message", is_user_exception=False, type=""
    )


class WorkerMetadata(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "runtime_name",
        "runtime_version",
        "worker_version",
        "worker_bitness",
        custom_properties=dict,
    )


class WorkerInitRequest(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "host_version",
        "worker_directory",
        "function_app_directory",
        capabilities=dict,
        log_categories=dict,
    )


class WorkerInitResponse(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "worker_version", capabilities=dict, worker_metadata=None, result=None
    )


class FunctionsMetadataRequest(Message):
    fields: ClassVar[dict[str, Any]] = _fields("function_app_directory")


class FunctionMetadataResponse(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        function_metadata_results=list, result=None, use_default_metadata_indexing=False
    )


class BindingInfo(Message):
    # BindingInfo.Direction and BindingInfo.DataType
    in_, out, inout = 0, 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3
    fields: ClassVar[dict[str, Any]] = _fields("type", direction=0, data_type=0, properties=dict)


class RpcFunctionMetadata(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "name",
        "directory",
        "script_file",
        "entry_point",
        "language",
        "function_id",
        bindings=dict,
        is_proxy=False,
        status=None,
        raw_bindings=list,
        managed_dependency_enabled=False,
        retry_options=None,
        properties=dict,
    )


class RpcRetryOptions(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "retry_strategy",
        max_retry_count=0,
        delay_interval=None,
        minimum_interval=None,
        maximum_interval=None,
    )


class FunctionLoadRequest(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "function_id", metadata=None, managed_dependency_enabled=False
    )


class FunctionLoadResponse(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "function_id", result=None, is_dependency_downloaded=False
    )


class RpcTraceContext(Message):
    fields: ClassVar[dict[str, Any]] = _fields("trace_parent", "trace_state", attributes=dict)


class RetryContext(Message):
    fields: ClassVar[dict[str, Any]] = _fields(retry_count=0, max_retry_count=0, exception=None)


class InvocationRequest(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "invocation_id",
        "function_id",
        input_data=list,
        trigger_metadata=dict,
        trace_context=RpcTraceContext,
        retry_context=RetryContext,
    )


class InvocationResponse(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "invocation_id", output_data=list, return_value=None, result=None
    )


_TYPED_DATA = (
    "string",
    "json",
    "bytes",
    "stream",
    "http",
    "int",
    "double",
    "collection_bytes",
    "collection_string",
    "collection_double",
    "collection_sint64",
    "model_binding_data",
    "collection_model_binding_data",
)


class TypedData(Message):
    fields: ClassVar[dict[str, Any]] = dict.fromkeys(_TYPED_DATA)
    oneofs: ClassVar[dict[str, tuple[str, ...]]] = {"data": _TYPED_DATA}


class ParameterBinding(Message):
    fields: ClassVar[dict[str, Any]] = _fields("name", data=None, rpc_shared_memory=None)
    oneofs: ClassVar[dict[str, tuple[str, ...]]] = {"rpc_data": ("data", "rpc_shared_memory")}


class RpcHttp(Message):
    fields: ClassVar[dict[str, Any]] = _fields(
        "method",
        "url",
        "status_code",
        headers=dict,
        body=TypedData,
        params=dict,
        query=dict,
        enable_content_negotiation=False,
        rawBody=None,
        identities=list,
        cookies=list,
        nullable_headers=dict,
        nullable_params=dict,
        nullable_query=dict,
    )


class RpcHttpCookie(Message):
    class SameSite:
        # RpcHttpCookie.SameSite; "None" is a Python keyword, so protobuf's name is set below.
        Lax, Strict, ExplicitNone = 1, 2, 3

    fields: ClassVar[dict[str, Any]] = _fields(
        "name",
        "value",
        domain=None,
        path=None,
        expires=None,
        secure=None,
        http_only=None,
        same_site=0,
        max_age=None,
    )


setattr(RpcHttpCookie.SameSite, "None", 0)


class NullableString(Message):
    fields: ClassVar[dict[str, Any]] = _fields("value")


class NullableBool(Message):
    fields: ClassVar[dict[str, Any]] = _fields(value=False)


class NullableDouble(Message):
    fields: ClassVar[dict[str, Any]] = _fields(value=0.0)


class NullableTimestamp(Message):
    fields: ClassVar[dict[str, Any]] = _fields(value=None)


class Timestamp(Message):
    """google.protobuf.Timestamp (the runtime asks the protos it was given for it by name)."""

    fields: ClassVar[dict[str, Any]] = _fields(seconds=0, nanos=0)


class StreamingMessage(Message):
    """The envelope: `request.request.<verb>_request`, as the runtime reads it."""

    fields: ClassVar[dict[str, Any]] = _fields(
        "request_id",
        worker_init_request=None,
        functions_metadata_request=None,
        function_load_request=None,
        invocation_request=None,
    )


class RuntimeRequest:
    """What the proxy worker passes to each runtime verb: the message and its properties."""

    def __init__(self, name: str, message: StreamingMessage, properties: dict[str, Any]) -> None:
        self.name = name
        self.request = message
        self.properties = properties
