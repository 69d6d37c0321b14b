"""Warmup: runs when an instance is added (Premium plans) and when Ahoy's local host starts.

Building the settings here turns a missing setting into a start-up failure that names it.
"""

from __future__ import annotations

import azure.functions as func

# Not `func.WarmUpContext`: azure-functions lists it in __all__ but does not export it. And not
# `object`: the runtime checks each trigger's annotation against its converter, and one refusal
# fails the whole index (Azure would serve no function at all).
from azure.functions.warmup import WarmUpContext

from api.edge.auth import warn_about_key_mode

bp = func.Blueprint()


@bp.warm_up_trigger(arg_name="warmup")
def warmup(warmup: WarmUpContext) -> None:
    warn_about_key_mode()  # builds the settings first
