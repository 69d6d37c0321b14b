"""Ahoy's local host for Azure Functions Python v2 apps, for machines without Core Tools.

It knows nothing of the app it serves: give it any module that defines a `FunctionApp`.
"""

from devhost.host import FunctionHost, Keys, read_route_prefix
from devhost.settings import load_local_settings

__all__ = ["FunctionHost", "Keys", "load_local_settings", "read_route_prefix"]
