"""The Azure Functions app: registrations only. Every function lives in a blueprint under api/."""

import azure.functions as func

from api.edge import app_routes, ops_routes, twilio_routes, warmup

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(app_routes.bp)
app.register_functions(twilio_routes.bp)
app.register_functions(ops_routes.bp)
app.register_functions(warmup.bp)
