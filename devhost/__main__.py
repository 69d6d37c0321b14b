"""python -m devhost [--app function_app] [--host 127.0.0.1] [--port 7071]"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

import uvicorn

from devhost.host import FunctionHost, Keys, read_route_prefix
from devhost.settings import BIND_VARIABLE, load_local_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devhost", description=__doc__)
    parser.add_argument("--app", default="function_app", help="module:attribute of the FunctionApp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="folder of host.json")
    parser.add_argument("--settings", type=Path, help="default: ROOT/local.settings.json")
    parser.add_argument(
        "--no-access-log", action="store_true", help="no log line per request (as uvicorn's flag)"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    load_local_settings(args.settings or args.root / "local.settings.json")
    os.environ[BIND_VARIABLE] = f"{args.host}:{args.port}"
    sys.path.insert(0, str(args.root))
    module_name, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")

    keys, generated = Keys.from_environ(os.environ)
    host = FunctionHost(
        app,
        route_prefix=read_route_prefix(args.root / "host.json"),
        keys=keys,
        access_log=not args.no_access_log,
    )
    origin = f"http://{args.host}:{args.port}"
    print(f"devhost: serving {len(host.routes)} HTTP functions on {origin}", flush=True)
    for route in host.routes:
        print(f"  {','.join(sorted(route.methods)):<9} {route.template}  [{route.auth_level}]")
    if generated:
        print(f"devhost: function key (x-functions-key): {keys.function}", flush=True)
    config = uvicorn.Config(
        host,
        host=args.host,
        port=args.port,
        lifespan="on",
        access_log=False,  # query strings can carry keys; devhost logs paths itself
        log_level="warning",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
