"""An ASGI host for any Azure Functions Python v2 app, with Azure's semantics.

It uses only the public azure-functions API (`get_functions()`, `get_trigger()`,
`func.HttpRequest`, `func.HttpResponse`, `func.TimerRequest`) and answers as the Azure host
does: an unmatched route or method is an empty 404, a missing or wrong key an empty 401, an
unhandled exception an empty 500 (the traceback goes to the host's log only), a malformed
`Host` header an empty 400.

Timer triggers run on their NCRONTAB schedule (six fields, seconds first, UTC; parsed by
croniter), once at start when `run_on_startup`; `POST /admin/functions/{name}` with the
master key runs any non-HTTP function now, as Core Tools does (202 once it has run).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
from azure.functions.timer import TimerRequest

log = logging.getLogger("devhost")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_REQUEST_BYTES = 100 * 1024 * 1024  # Azure's front end limit
ADMIN_FUNCTIONS = "/admin/functions/"
# A Host header as RFC 9110 has it: a name or address, and a port. Anything else (paths, user
# info, spaces) would make the request's URL, and so Twilio's signature check, read otherwise.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]+)?(\?)?\}")


@dataclass(frozen=True)
class Keys:
    """The host's keys: a function key opens FUNCTION routes, the master key every route."""

    function: str
    master: str

    @classmethod
    def from_environ(cls, env: MutableMapping[str, str]) -> tuple[Keys, bool]:
        """Keys from DEVHOST_FUNCTION_KEY / DEVHOST_MASTER_KEY, generated when unset."""
        generated = not env.get("DEVHOST_FUNCTION_KEY")
        function = env.get("DEVHOST_FUNCTION_KEY") or secrets.token_urlsafe(32)
        master = env.get("DEVHOST_MASTER_KEY") or secrets.token_urlsafe(32)
        return cls(function, master), generated

    def admits(self, level: str, presented: str | None) -> bool:
        if level == "ANONYMOUS":
            return True
        accepted = [self.master] if level == "ADMIN" else [self.function, self.master]
        return presented is not None and any(
            secrets.compare_digest(presented.encode(), key.encode()) for key in accepted
        )


@dataclass(frozen=True)
class Route:
    """One HTTP function: its compiled route template, methods and auth level."""

    name: str
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    auth_level: str
    arg_name: str
    handler: Callable[..., Any]
    is_async: bool

    @property
    def literal(self) -> bool:
        """No parameters in the template: it matches one path only."""
        return _PARAM.search(self.template) is None

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {name: value for name, value in found.groupdict().items() if value is not None}


def compile_template(prefix: str, template: str) -> re.Pattern[str]:
    """Route template (`calls/{sid}`, `{id?}`, `{*rest}`, `{n:int}`) → case-insensitive regex."""
    parts = [p for p in (prefix.strip("/"), template.strip("/")) if p]
    regex, last = "", 0
    source = "/" + "/".join(parts)
    for param in _PARAM.finditer(source):
        literal = source[last : param.start()]
        catch_all, name, optional = param.groups()
        value = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
        if optional and literal.endswith("/"):
            regex += re.escape(literal[:-1]) + "(?:/" + value + ")?"
        else:
            regex += re.escape(literal) + (value + "?" if optional else value)
        last = param.end()
    regex += re.escape(source[last:])
    return re.compile(regex, re.IGNORECASE)


def _precedence(template: str) -> tuple[int, ...]:
    """Per segment: literal 0, parameter 1, optional parameter 2, catch-all 3 (lower first)."""
    ranks = []
    for segment in template.strip("/").split("/"):
        param = _PARAM.fullmatch(segment)
        if param is None:
            ranks.append(0)
        else:
            catch_all, _, optional = param.groups()
            ranks.append(3 if catch_all else 2 if optional else 1)
    return tuple(ranks)


def http_routes(functions: list[Any], route_prefix: str) -> list[Route]:
    routes = []
    for function in functions:
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        name = function.get_function_name() or ""
        template = str(getattr(trigger, "route", None) or name)
        methods = getattr(trigger, "methods", None) or ["GET", "POST"]
        level = getattr(trigger, "auth_level", None)
        routes.append(
            Route(
                name=name,
                template="/"
                + "/".join(p for p in (route_prefix.strip("/"), template.strip("/")) if p),
                pattern=compile_template(route_prefix, template),
                methods=frozenset(str(getattr(m, "value", m)).upper() for m in methods),
                auth_level=str(getattr(level, "value", level or "FUNCTION")).upper(),
                arg_name=trigger.name,
                handler=function.get_user_function(),
                is_async=inspect.iscoroutinefunction(function.get_user_function()),
            )
        )
    return routes


def warmup_functions(functions: list[Any]) -> list[Callable[..., Any]]:
    return [
        f.get_user_function()
        for f in functions
        if (t := f.get_trigger()) is not None and t.get_binding_name() == "warmupTrigger"
    ]


@dataclass(frozen=True)
class Timer:
    """A timer-triggered function and its NCRONTAB schedule."""

    name: str
    schedule: str
    run_on_startup: bool
    handler: Callable[..., Any]
    arg_name: str

    def next_after(self, moment: datetime) -> datetime:
        from croniter import croniter

        following: datetime = croniter(self.schedule, moment, second_at_beginning=True).get_next(
            datetime
        )
        return following


def timer_functions(functions: list[Any]) -> list[Timer]:
    """The app's timer functions; an invalid schedule stops the host, naming the function."""
    from croniter import croniter

    timers = []
    for f in functions:
        trigger = f.get_trigger()
        if trigger is None or trigger.get_binding_name() != "timerTrigger":
            continue
        if len(trigger.schedule.split()) != 6 or not croniter.is_valid(
            trigger.schedule, second_at_beginning=True
        ):
            raise ValueError(f"function {f.get_function_name()}: invalid NCRONTAB schedule")
        timers.append(
            Timer(
                f.get_function_name(),
                trigger.schedule,
                bool(trigger.run_on_startup),
                f.get_user_function(),
                trigger.name,
            )
        )
    return timers


def read_route_prefix(host_json: Path) -> str:
    """host.json's extensions.http.routePrefix, `api` when unset (as in Azure)."""
    if not host_json.exists():
        return "api"
    config = json.loads(host_json.read_text())
    prefix = config.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return str(prefix)


class FunctionHost:
    """The ASGI application."""

    def __init__(
        self, app: func.FunctionApp, *, route_prefix: str, keys: Keys, access_log: bool = True
    ) -> None:
        functions = app.get_functions()  # indexes the app; a second call would fail
        self.routes = http_routes(functions, route_prefix)
        # As in ASP.NET routing, the more specific route wins whatever the declaration order:
        # literal routes (found by path), then templates by precedence (see _precedence).
        self.literal_routes: dict[str, list[Route]] = {}
        for route in self.routes:
            if route.literal:
                self.literal_routes.setdefault(route.template.lower(), []).append(route)
        self.templated_routes = sorted(
            (route for route in self.routes if not route.literal),
            key=lambda route: _precedence(route.template),
        )
        self.warmups = warmup_functions(functions)
        self.timers = {timer.name.lower(): timer for timer in timer_functions(functions)}
        self.schedules: list[asyncio.Task[None]] = []
        self.keys = keys
        self.access_log = access_log
        # Azure runs sync functions on a worker thread pool; so do we.
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="function")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and self.access_log:
            await self._logged(scope, receive, send)
        elif scope["type"] == "http":
            await self._serve(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for warmup in self.warmups:
                        await self._invoke(
                            warmup, {"warmup": None}, inspect.iscoroutinefunction(warmup)
                        )
                except Exception as exc:  # noqa: BLE001  # any failed warmup stops the host
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                for timer in self.timers.values():
                    self.schedules.append(asyncio.create_task(self._schedule(timer)))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self.schedules:
                    task.cancel()
                self.pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = await self._serve(scope, receive, send)
        log.info(
            "%s %s -> %d (%.1f ms)",
            scope["method"],
            scope["path"],  # never the query string: it can hold keys (`code=`)
            status,
            (time.perf_counter() - started) * 1000,
        )

    async def _schedule(self, timer: Timer) -> None:
        """Run `timer` at startup if asked, then at every time its schedule names."""
        if timer.run_on_startup:
            await self._run_timer(timer, past_due=False)
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((timer.next_after(now) - now).total_seconds())
            await self._run_timer(timer, past_due=False)

    async def _run_timer(self, timer: Timer, *, past_due: bool) -> bool:
        try:
            await self._invoke(
                timer.handler,
                {timer.arg_name: TimerRequest(past_due=past_due)},
                inspect.iscoroutinefunction(timer.handler),
            )
        except Exception:  # as Azure: logged, and the schedule goes on
            log.exception("function %s failed", timer.name)
            return False
        log.info("function %s ran", timer.name)
        return True

    async def _admin_run(self, scope: Scope, receive: Receive, send: Send, name: str) -> int:
        """POST /admin/functions/{name} (master key): run a non-HTTP function now."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        if not self.keys.admits("ADMIN", headers.get("x-functions-key") or query.get("code")):
            return await _empty(send, 401)
        await _read_body(receive)  # Core Tools sends {"input": ""}; timers take no input
        timer = self.timers.get(name.lower())
        if timer is None:
            return await _empty(send, 404)
        return await _empty(send, 202 if await self._run_timer(timer, past_due=False) else 500)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        method = scope["method"].upper()
        if method == "POST" and scope["path"].lower().startswith(ADMIN_FUNCTIONS):
            return await self._admin_run(
                scope, receive, send, scope["path"][len(ADMIN_FUNCTIONS) :]
            )
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        if host is not None and not _HOST.fullmatch(host.decode("latin-1")):
            return await _empty(send, 400)
        route, route_params = self._find(scope["path"], method)
        if route is None:
            return await _empty(send, 404)
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        presented = headers.get("x-functions-key") or dict(query).get("code")
        if not self.keys.admits(route.auth_level, presented):
            return await _empty(send, 401)
        body = await _read_body(receive)
        if body is None:
            return await _empty(send, 413)
        request = func.HttpRequest(
            method,
            _full_url(scope, headers),
            headers=headers,
            params=dict(query),
            route_params=route_params,
            body=body,
        )
        try:
            response = await self._invoke(route.handler, {route.arg_name: request}, route.is_async)
        except Exception:  # as Azure: the function failed, the caller gets a bare 500
            log.exception("function %s failed", route.name)
            return await _empty(send, 500)
        return await _send_response(send, response)

    def _find(self, path: str, method: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.literal_routes.get(path.lower(), ()):
            if method in route.methods:
                return route, {}
        for route in self.templated_routes:
            params = route.match(path)
            if params is not None and method in route.methods:
                return route, params
        return None, {}

    async def _invoke(
        self, handler: Callable[..., Any], kwargs: dict[str, Any], is_async: bool
    ) -> Any:
        if is_async:
            return await handler(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: handler(**kwargs))


def _full_url(scope: Scope, headers: dict[str, str]) -> str:
    server = scope.get("server") or ("127.0.0.1", 80)
    host = headers.get("host") or f"{server[0]}:{server[1]}"
    query = scope["query_string"].decode("latin-1")
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


async def _read_body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _empty(send: Send, status: int) -> int:
    headers = [(b"content-length", b"0")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    return status


async def _send_response(send: Send, response: func.HttpResponse) -> int:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    # (no response.headers.get(): werkzeug builds an exception for every missing header)
    if all(name != b"content-type" for name, _ in headers) and response.mimetype:
        content_type = response.mimetype
        if response.charset and (content_type.startswith("text/") or "json" in content_type):
            content_type += f"; charset={response.charset}"
        headers.append((b"content-type", content_type.encode("latin-1")))
    body = response.get_body() or b""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return int(response.status_code)
