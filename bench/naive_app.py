"""The naive baseline for cold start: the same app with its heavy imports at module top."""

import phonenumbers  # noqa: F401
import pydantic_settings  # noqa: F401
import twilio.rest  # noqa: F401

from function_app import app  # noqa: F401
