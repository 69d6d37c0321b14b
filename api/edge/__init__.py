"""The edge: the Functions the host calls (blueprints) and what every handler shares (HTTP,
callers, signatures, the OpenAPI document)."""
