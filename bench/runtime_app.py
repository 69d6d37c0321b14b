"""Ahoy's app with the bench's floors beside it, for bench.in_runtime: the runtime invokes
Ahoy's functions and the floors the same way (sync ones on its pool, async ones on the loop),
so a ratio says what Ahoy adds. The floors do what bench.run put in FLOORS."""

import azure.functions as func

from bench.in_runtime import FLOORS
from function_app import app

ANONYMOUS = func.AuthLevel.ANONYMOUS


@app.route(route="bench/floor/{name}", methods=["POST"], auth_level=ANONYMOUS)
def floor(req: func.HttpRequest) -> func.HttpResponse:
    return FLOORS[req.route_params["name"]](req)


@app.route(route="bench/async-floor/{name}", methods=["POST"], auth_level=ANONYMOUS)
async def async_floor(req: func.HttpRequest) -> func.HttpResponse:
    return FLOORS[req.route_params["name"]](req)


@app.route(route="bench/empty", methods=["GET"], auth_level=ANONYMOUS)
def empty(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("")


@app.route(route="bench/async-empty", methods=["GET"], auth_level=ANONYMOUS)
async def async_empty(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("")
