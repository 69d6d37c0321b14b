"""Warmup: runs when an instance is added (Premium plans) and when Ahoy's local host starts.

Building the settings here turns a missing setting into a start-up failure that names it.
"""

from __future__ import annotations

import azure.functions as func

from api.settings import get_settings

bp = func.Blueprint()


@bp.warm_up_trigger(arg_name="warmup")
def warmup(warmup: object) -> None:
    get_settings()
