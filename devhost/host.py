"""An ASGI host for any Azure Functions Python v2 app: the .NET host's part, by its rules.

The app itself runs on Azure's own execution runtime (`devhost.runtime`): it indexes the app,
checks its bindings, converts requests and answers, and invokes the functions, as in Azure.
What the .NET host does, and cannot run here, this module imitates rule by rule, each naming its
source: routes, methods and auth levels read from the runtime's metadata; keys; reserved routes;
the request conversion (`devhost.conversion`); timers and warmup. It answers as the host does:
an unmatched route or method is an empty 404, a missing or wrong key an empty 401, a failed
invocation an empty 500 (the error goes to the host's log only), a malformed `Host` header an
empty 400.

Timer triggers run on their NCRONTAB schedule (six fields, seconds first, UTC; parsed by
croniter), once at start when `run_on_startup`; `POST /admin/functions/{name}` with the
master key runs any non-HTTP function now, as Core Tools does (202 once it has run).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from devhost import conversion
from devhost import messages as protos
from devhost.runtime import AppRefused, Function, Runtime, succeeded

log = logging.getLogger("devhost")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The host's request size limit (Functions' HTTP limits: 100 MB). Like the host, the local
# host reads a whole body before invoking the function, which gets it as bytes.
MAX_REQUEST_BYTES = 100 * 1024 * 1024
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
    methods: frozenset[str] | None  # None: every method
    auth_level: str
    arg_name: str
    function: Function

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods

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


# ScriptHost.ValidateHttpFunction (azure-functions-host, src/WebJobs.Script/Host/ScriptHost.cs):
# a route that starts with one of these, in any case, conflicts with the host's own routes; the
# function is put in error and never served. Here the app is refused at start, naming it.
RESERVED_ROUTE_PREFIXES = ("admin", "runtime")
RESERVED_ROUTE_MESSAGE = "The specified route conflicts with one or more built in routes."


def http_routes(functions: list[Function], route_prefix: str) -> list[Route]:
    """The HTTP functions, read from the runtime's metadata as the host reads function.json:
    `route` defaults to the function's name, no `methods` means every method, `authLevel`
    defaults to function (HttpTriggerAttribute)."""
    routes = []
    for function in functions:
        trigger = function.trigger
        if trigger["type"] != "httpTrigger":
            continue
        route = str(trigger.get("route") or "")
        if route.lower().startswith(RESERVED_ROUTE_PREFIXES):
            raise AppRefused(f"function {function.name}: {RESERVED_ROUTE_MESSAGE}")
        template = route or function.name
        methods = trigger.get("methods")
        routes.append(
            Route(
                name=function.name,
                template="/"
                + "/".join(p for p in (route_prefix.strip("/"), template.strip("/")) if p),
                pattern=compile_template(route_prefix, template),
                methods=frozenset(m.upper() for m in methods) if methods else None,
                auth_level=str(trigger.get("authLevel") or "FUNCTION").upper(),
                arg_name=trigger["name"],
                function=function,
            )
        )
    return routes


def warmup_functions(functions: list[Function]) -> list[Function]:
    return [f for f in functions if f.trigger["type"] == "warmupTrigger"]


@dataclass
class Timer:
    """A timer-triggered function, its NCRONTAB schedule and its status (TimerInfo's)."""

    function: Function
    schedule: str
    run_on_startup: bool
    last: datetime | None = None

    @property
    def name(self) -> str:
        return self.function.name

    def next_after(self, moment: datetime) -> datetime:
        from croniter import croniter

        following: datetime = croniter(self.schedule, moment, second_at_beginning=True).get_next(
            datetime
        )
        return following

    def info(self, now: datetime, *, past_due: bool) -> protos.TypedData:
        """TimerInfo as the host serializes it to the worker (its JSON property names)."""
        status = {
            "Last": (self.last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": self.next_after(now).isoformat(),
            "LastUpdated": now.isoformat(),
        }
        info = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due}
        return protos.TypedData(json=json.dumps(info))


def timer_functions(functions: list[Function]) -> list[Timer]:
    """The app's timer functions; an invalid schedule refuses the app, naming the function."""
    from croniter import croniter

    timers = []
    for function in functions:
        trigger = function.trigger
        if trigger["type"] != "timerTrigger":
            continue
        schedule = str(trigger.get("schedule", ""))
        if len(schedule.split()) != 6 or not croniter.is_valid(schedule, second_at_beginning=True):
            raise AppRefused(f"function {function.name}: invalid NCRONTAB schedule")
        timers.append(Timer(function, schedule, bool(trigger.get("runOnStartup"))))
    return timers


def read_route_prefix(host_json: Path) -> str:
    """host.json's extensions.http.routePrefix, `api` when unset (as in Azure)."""
    if not host_json.exists():
        return "api"
    config = json.loads(host_json.read_text())
    prefix = config.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return str(prefix)


class FunctionHost:
    """The ASGI application, serving the functions of an app the runtime has loaded."""

    def __init__(
        self, runtime: Runtime, *, route_prefix: str, keys: Keys, access_log: bool = True
    ) -> None:
        self.runtime = runtime
        self.routes = http_routes(runtime.functions, route_prefix)
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
        self.warmups = warmup_functions(runtime.functions)
        self.timers = {timer.name.lower(): timer for timer in timer_functions(runtime.functions)}
        self.schedules: list[asyncio.Task[None]] = []
        self.keys = keys
        self.access_log = access_log

    @classmethod
    def load(cls, app_dir: Path, *, keys: Keys, access_log: bool = True) -> FunctionHost:
        """Index and load the app in `app_dir` on the runtime (AppRefused when either the
        runtime or the host's own rules refuse it), with host.json's route prefix."""
        runtime = asyncio.run(Runtime.start(app_dir))
        return cls(
            runtime,
            route_prefix=read_route_prefix(app_dir / "host.json"),
            keys=keys,
            access_log=access_log,
        )

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
                # The host runs warmup functions when an instance starts; a WarmUpContext is
                # what the worker decodes (azure.functions.warmup.WarmUpTriggerConverter).
                for warmup in self.warmups:
                    answer = await self.runtime.invoke(
                        warmup, warmup.trigger["name"], protos.TypedData(json="{}")
                    )
                    if not succeeded(answer.result):
                        failure = f"function {warmup.name}: {answer.result.exception.message}"
                        await send({"type": "lifespan.startup.failed", "message": failure})
                        return
                for timer in self.timers.values():
                    self.schedules.append(asyncio.create_task(self._schedule(timer)))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self.schedules:
                    task.cancel()
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
        now = datetime.now(UTC)
        answer = await self.runtime.invoke(
            timer.function, timer.function.trigger["name"], timer.info(now, past_due=past_due)
        )
        timer.last = now
        if not succeeded(answer.result):  # as Azure: logged, and the schedule goes on
            _log_failure(timer.name, answer.result)
            return False
        log.info("function %s ran", timer.name)
        return True

    async def _admin_run(self, scope: Scope, receive: Receive, send: Send, name: str) -> int:
        """POST /admin/functions/{name} (master key): run a non-HTTP function now."""
        headers = conversion.header_values(scope["headers"])
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
        headers = conversion.header_values(scope["headers"])
        host = headers.get("host")
        if host is not None and not _HOST.fullmatch(host):
            return await _empty(send, 400)
        path = conversion.request_path(scope.get("raw_path") or scope["path"].encode())
        route, route_params = self._find(path, method)
        if route is None:
            return await _empty(send, 404)
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        presented = headers.get("x-functions-key") or dict(query).get("code")
        if not self.keys.admits(route.auth_level, presented):
            return await _empty(send, 401)
        if (conversion.declared_length(headers) or 0) > MAX_REQUEST_BYTES:
            return await _empty(send, 413)  # refused before a byte of it is read
        body = await _read_body(receive)
        if body is None:
            return await _empty(send, 413)
        server = scope.get("server") or ("127.0.0.1", 80)
        request = conversion.to_rpc_http(
            method=method,
            url=conversion.request_url(
                scope.get("scheme", "http"),
                host or f"{server[0]}:{server[1]}",
                path,
                scope["query_string"],
            ),
            headers=headers,
            query_string=scope["query_string"],
            route_params=route_params,
            body=body,
        )
        answer = await self.runtime.invoke(route.function, route.arg_name, request)
        if not succeeded(answer.result):  # as Azure: the caller gets a bare 500
            _log_failure(route.name, answer.result)
            return await _empty(send, 500)
        return await _send_response(send, *conversion.response_parts(answer.return_value))

    def _find(self, path: str, method: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.literal_routes.get(path.lower(), ()):
            if route.allows(method):
                return route, {}
        for route in self.templated_routes:
            params = route.match(path)
            if params is not None and route.allows(method):
                return route, params
        return None, {}


def _log_failure(name: str, result: Any) -> None:
    """The host's log only: the runtime's message and stack trace, never to the caller."""
    exception = result.exception
    log.error("function %s failed: %s\n%s", name, exception.message, exception.stack_trace)


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


async def _send_response(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes
) -> int:
    pairs = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    pairs = [(k, v) for k, v in pairs if k != b"content-length"]
    pairs.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": pairs})
    await send({"type": "http.response.body", "body": body})
    return status
