"""Warmup: runs when an instance is added (Premium plans) and when Ahoy's local host starts.

Building the settings here turns a missing setting into a start-up failure that names it.
"""

from __future__ import annotations

import azure.functions as func

from api.auth import warn_about_key_mode

bp = func.Blueprint()


@bp.warm_up_trigger(arg_name="warmup")
def warmup(warmup: object) -> None:
    warn_about_key_mode()  # builds the settings first
