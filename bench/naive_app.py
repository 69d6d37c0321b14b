"""The naive baseline for cold start: the same app with the libraries of its requirements that
it uses when serving imported at module top, as a naive app would (nothing Ahoy never uses)."""

import ada_url  # noqa: F401
import azure.data.tables  # noqa: F401
import jwt  # noqa: F401
import phonenumbers  # noqa: F401
import pydantic  # noqa: F401
import twilio.rest  # noqa: F401
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401

from function_app import app  # noqa: F401
