"""A FunctionApp with one empty HTTP function: what the local host costs with no work in it."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp()


@app.route(route="hello", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")
