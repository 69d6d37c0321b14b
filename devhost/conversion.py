"""HTTP requests to the runtime's RpcHttp and its answers back, as the Functions host does it.

Each rule names its source. The .NET host converts an ASP.NET Core request with
`ToRpcHttp` (azure-functions-host, src/WebJobs.Script.Grpc/MessageExtensions/
GrpcMessageConversionExtensions.cs), over the capabilities the Python runtime announces at init
(raw body bytes, body only, no nullable query dictionary, no empty-header skipping). The answer's
content type is the worker's own (azure-functions' `HttpResponseConverter.encode`, run by the
runtime), so nothing is added here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from devhost import messages as protos

# RFC 3986 pchar plus "/": what ASP.NET Core's PathString.ToUriComponent leaves unescaped.
_PATH_SAFE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]")
_ESCAPED = re.compile(r"%[0-9A-Fa-f]{2}")
_ESCAPED_SLASH = re.compile(r"(%2[Ff])")


def request_path(raw_path: bytes) -> str:
    """Request.Path: Kestrel decodes the path's escapes except %2F, which stays as sent so that
    an escaped slash never splits a segment (KestrelHttpServer's UrlDecoder). Routes match it,
    and route values come from it."""
    pieces = _ESCAPED_SLASH.split(raw_path.decode("latin-1"))
    return "".join(
        p if i % 2 else unquote(p, errors="surrogateescape") for i, p in enumerate(pieces)
    )


def request_url(scheme: str, host: str, path: str, query_string: bytes) -> str:
    """`url`: scheme://Host + Request.Path + Request.QueryString (ToRpcHttp), the path escaped
    again as PathString.ToUriComponent does (pchar kept, %XX sequences kept, the rest escaped
    as UTF-8), the query string as received."""
    escaped = "".join(_escape_path_char(path, i) for i in range(len(path)))
    query = query_string.decode("latin-1")
    return f"{scheme}://{host}{escaped}" + (f"?{query}" if query else "")


def _escape_path_char(path: str, i: int) -> str:
    char = path[i]
    if _PATH_SAFE.fullmatch(char) or (char == "%" and _ESCAPED.match(path, i)):
        return char
    encoded = char.encode("utf-8", errors="surrogateescape")
    return "".join(f"%{byte:02X}" for byte in encoded)


def query_values(query_string: bytes) -> dict[str, str]:
    """`query`: ASP.NET Core's query collection (QueryHelpers.ParseQuery: `+` is a space, keys
    compared ignoring case, the first spelling kept), each key's values joined with "," (a
    StringValues' ToString), and a key whose joined value is empty left out (ToRpcHttp:
    `if (!string.IsNullOrEmpty(value)) http.Query.Add(...)`)."""
    collected: dict[str, tuple[str, list[str]]] = {}
    for pair in query_string.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name, value = _form_decode(raw_name), _form_decode(raw_value)
        collected.setdefault(name.lower(), (name, []))[1].append(value)
    joined = ((name, ",".join(values)) for name, values in collected.values())
    return {name: value for name, value in joined if value}


def _form_decode(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", errors="replace")


def header_values(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """`headers`: names lower-cased (`pair.Key.ToLowerInvariant()`), repeated values joined with
    "," (Kestrel's header dictionary merges them; StringValues' ToString joins with ",")."""
    headers: dict[str, str] = {}
    for name, value in raw_headers:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def request_body(headers: dict[str, str], body: bytes) -> protos.TypedData:
    """`body`: set only when the request has a Content-Length above 0 (ToRpcHttp:
    `request.ContentLength > 0`), as bytes (the runtime asks for RawHttpBodyBytes). A chunked
    body, with no Content-Length, reaches the function empty, as in Azure."""
    if (declared_length(headers) or 0) > 0:
        return protos.TypedData(bytes=body)
    return protos.TypedData()


def declared_length(headers: dict[str, str]) -> int | None:
    """The request's Content-Length, when it has a well-formed one."""
    length = headers.get("content-length", "")
    return int(length) if length.isascii() and length.isdigit() else None


def to_rpc_http(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    query_string: bytes,
    route_params: dict[str, str],
    body: bytes,
) -> protos.TypedData:
    return protos.TypedData(
        http=protos.RpcHttp(
            method=method,
            url=url,
            headers=headers,
            query=query_values(query_string),
            params=route_params,
            body=request_body(headers, body),
        )
    )


def response_parts(return_value: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of what an HTTP function returned (RpcHttp, or a plain string,
    which the host answers as 200 text/plain)."""
    if return_value is None:
        return 204, [], b""
    kind = return_value.WhichOneof("data")
    if kind == "string":
        return 200, [("content-type", "text/plain; charset=utf-8")], return_value.string.encode()
    http = return_value.http
    headers = [(name, str(value)) for name, value in http.headers.items()]
    headers += [("set-cookie", _cookie(c)) for c in http.cookies or ()]
    body_data = http.body
    body = (
        (body_data.bytes if body_data.WhichOneof("data") == "bytes" else b"") if body_data else b""
    )
    if isinstance(body, str):
        body = body.encode()
    return int(http.status_code or 200), headers, body


_SAME_SITE = {1: "Lax", 2: "Strict", 3: "None"}


def _cookie(cookie: Any) -> str:
    """A Set-Cookie header from an RpcHttpCookie (the host writes each cookie as one header)."""
    parts = [f"{cookie.name}={cookie.value}"]
    for label, field in (("Domain", "domain"), ("Path", "path"), ("Max-Age", "max_age")):
        nullable = getattr(cookie, field)
        if nullable:
            value = nullable.value
            parts.append(f"{label}={int(value) if label == 'Max-Age' else value}")
    if cookie.expires:
        moment = datetime.fromtimestamp(cookie.expires.value.seconds, UTC)
        parts.append(f"Expires={moment:%a, %d %b %Y %H:%M:%S GMT}")
    if cookie.secure and cookie.secure.value:
        parts.append("Secure")
    if cookie.http_only and cookie.http_only.value:
        parts.append("HttpOnly")
    if cookie.same_site in _SAME_SITE:
        parts.append(f"SameSite={_SAME_SITE[cookie.same_site]}")
    return "; ".join(parts)
