"""The app settings every test starts from, and the values no log line may ever hold."""

from __future__ import annotations

import base64
import re

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789"
FROM_NUMBER = "+14155550100"
PUBLIC_BASE_URL = "https://ahoy.example.net"
FLOW_KEY = base64.b64encode(bytes(range(32))).decode()
TWILIO_API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
MESSAGES_URL = f"{TWILIO_API}/Messages.json"
CALLS_URL = f"{TWILIO_API}/Calls.json"

BASE_SETTINGS = {
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "TWILIO_FROM_NUMBER": FROM_NUMBER,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    "AHOY_FLOW_KEY": FLOW_KEY,
    "ALLOWED_TWIML_HOSTS": "twiml.example.org",
    "WEBSITE_AUTH_ENABLED": "true",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",  # the tests point it at their Azurite
    # Limits out of the way; the tests of limits set their own.
    "RATE_LIMIT_PER_MINUTE": "100000",
    "DAILY_QUOTA": "100000",
    "DESTINATION_LIMIT_PER_HOUR": "100000",
    "GLOBAL_DAILY_CAP": "100000",
}
CALLER_ID = "user-1"
API_KEY_SID = "SK" + "5" * 32
API_KEY_SECRET = "api-key-secret-0123456789abcdef0123"  # 32+ bytes: an HMAC key
TWIML_APP_SID = "AP" + "6" * 32

OPTIONAL_SETTINGS = [
    "TWILIO_API_KEY_SID",
    "TWILIO_API_KEY_SECRET",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
    "TWILIO_REGION",
    "TWILIO_EDGE",
    "FLOW_TTL_SECONDS",
    "AHOY_TABLE_PREFIX",
    "IDEMPOTENCY_TTL_HOURS",
    "CALL_TIME_LIMIT_SECONDS",
    "TWILIO_TWIML_APP_SID",
    "TWILIO_PUSH_CREDENTIAL_SID",
    "TOKEN_TTL_SECONDS",
    "CALLER_AUTH",
    "OIDC_ISSUER",
    "OIDC_AUDIENCE",
    "OIDC_JWKS_URL",
    "DEV_PRINCIPAL",
    "DEVHOST_BIND",
    "TWILIO_VALIDATE_SIGNATURES",
    "TWILIO_AUTH_TOKEN_SECONDARY",
    "TWILIO_SANDBOX",
    "ALLOWED_COUNTRIES",
    "ALLOWED_NUMBER_TYPES",
    "WEBSITE_INSTANCE_ID",
    "WEBSITE_SITE_NAME",
    "RETENTION_DAYS",
    "CONVERSATION_DAYS",
    "OPT_OUT_KEEP_DAYS",
    "INCOMING_HELP_REPLY",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
]


# Never in a log line: what the suite uses as secrets, destinations and message bodies.
NEVER_LOGGED = [
    AUTH_TOKEN,
    FLOW_KEY,
    "key-secret",
    API_KEY_SECRET,
    "next-token",
    "+14155551234",
    "14155551234",
    "ahoy hoy",
    "secret meeting at noon",
]
JWT_SHAPE = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.")


def reset_caches() -> None:
    """Forget the process's settings, Twilio client and tables (after changing settings)."""
    from api.core import root

    root.reset()
