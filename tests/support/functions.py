"""function_app's functions, indexed once per process (a FunctionApp indexes only once, as in
Azure), and its HTTP routes with their handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger


@lru_cache(maxsize=1)
def indexed() -> list[Any]:
    import function_app

    return list(function_app.app.get_functions())


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: list[str]
    auth_level: str
    handler: Callable[[func.HttpRequest], Any]


def http_functions() -> list[HttpFunction]:
    found = []
    for function in indexed():
        trigger = function.get_trigger()
        if isinstance(trigger, HttpTrigger) and trigger.methods and trigger.auth_level:
            found.append(
                HttpFunction(
                    function.get_function_name(),
                    str(trigger.route),
                    sorted(str(m.value) for m in trigger.methods),
                    str(trigger.auth_level.value),
                    function.get_user_function(),
                )
            )
    return found
