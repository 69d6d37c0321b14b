"""Typed app settings, read from the environment (Azure app settings) once, on first use.

Pydantic stays out of this module on purpose: the TwiML webhook needs settings on a cold
start, and pydantic's import and model build cost more than Twilio's patience allows.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from api.core import root
from api.core.errors import ConfigurationError

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("
CALLER_AUTH_MODES = ("easyauth", "jwt", "key")
NUMBER_TYPES = frozenset(
    {
        "FIXED_LINE",
        "MOBILE",
        "FIXED_LINE_OR_MOBILE",
        "TOLL_FREE",
        "PREMIUM_RATE",
        "SHARED_COST",
        "VOIP",
        "PERSONAL_NUMBER",
        "PAGER",
        "UAN",
        "VOICEMAIL",
        "UNKNOWN",
    }
)
# Ahoy's local host sets this to its bind address; Azure sets WEBSITE_INSTANCE_ID.
LOCAL_HOST_BIND = "DEVHOST_BIND"
WEBHOOK_SHARED_KEY = "TWILIO_WEBHOOK_SHARED_KEY"  # and _SECONDARY while rotating
# A device's platform and build -> the setting naming its push credential (APNs VoIP
# production for store builds, APNs sandbox for development builds, FCM for Android).
PUSH_PLATFORMS = {
    "ios": "TWILIO_PUSH_CREDENTIAL_SID_IOS",
    "ios-sandbox": "TWILIO_PUSH_CREDENTIAL_SID_IOS_SANDBOX",
    "android": "TWILIO_PUSH_CREDENTIAL_SID_ANDROID",
}
AZURE_MARKERS = ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME")

T = TypeVar("T")
V = TypeVar("V", str, bytes)


class Secret(Generic[V]):
    """A value that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)
    _value: V

    def __init__(self, value: V) -> None:
        self._value = value

    def get(self) -> V:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True)
class StorageAccess:
    """How Ahoy reaches its tables, read as the Functions host reads its own storage.

    A connection string (`AzureWebJobsStorage`) wins when set; otherwise the table endpoint
    (`AzureWebJobsStorage__tableServiceUri`, or the account name's public endpoint) with a
    Microsoft Entra token: the managed identity (`__credential=managedidentity`, `__clientId`
    for a user-assigned one), else DefaultAzureCredential.
    """

    connection_string: Secret[str] | None
    table_endpoint: str | None
    managed_identity: bool
    client_id: str | None
    # A proxy or CA bundle set in the environment (NETWORK_ENVIRONMENT): only then does the
    # HTTP client look there, which it otherwise does on every request.
    network_from_environment: bool = False


STORAGE_SETTING = "AzureWebJobsStorage"
STORAGE_TABLE_URI = "AzureWebJobsStorage__tableServiceUri"
STORAGE_ACCOUNT = "AzureWebJobsStorage__accountName"
STORAGE_CREDENTIAL = "AzureWebJobsStorage__credential"
STORAGE_CLIENT_ID = "AzureWebJobsStorage__clientId"
NETWORK_ENVIRONMENT = (
    *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"),
    *("http_proxy", "https_proxy", "all_proxy", "no_proxy"),
    *("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
)


@dataclass(frozen=True)
class Settings:
    """Everything Ahoy reads from its app settings. Names match the settings table in README."""

    twilio_account_sid: str
    twilio_auth_token: Secret[str]
    twilio_api_key_sid: str | None
    twilio_api_key_secret: Secret[str] | None
    twilio_from_number: str
    twilio_messaging_service_sid: str | None
    twilio_api_base_url: str | None
    public_base_url: str
    flow_key: Secret[bytes]
    flow_ttl_seconds: int
    allowed_twiml_hosts: frozenset[str]
    caller_auth: str
    easy_auth_enabled: bool
    oidc_issuer: str | None
    oidc_audience: str | None
    oidc_jwks_url: str | None
    dev_principal: str | None
    validate_signatures: bool
    twilio_auth_token_secondary: Secret[str] | None
    webhook_shared_keys: tuple[Secret[str], ...]  # Twilio SharedKey secrets (HMAC-SHA256)
    caller_keys: tuple[tuple[str, str], ...]  # (name, SHA-256 hex of the key): server callers
    allowed_countries: frozenset[str]
    allowed_number_types: frozenset[str]
    sandbox: bool
    storage: StorageAccess
    table_prefix: str
    idempotency_ttl_hours: int
    rate_limit_per_minute: int
    daily_quota: int
    destination_limit_per_hour: int
    global_daily_cap: int
    call_time_limit_seconds: int
    twilio_twiml_app_sid: str | None
    twilio_push_credential_sid: str | None  # the default for every platform
    push_credentials: dict[str, str]  # platform (PUSH_PLATFORMS) -> its push credential SID
    token_ttl_seconds: int
    twilio_caller_ids: frozenset[str]
    incoming_call_flow: str
    incoming_sms_reply: str
    retention_days: int
    conversation_days: int
    opt_out_keep_days: int  # 0: kept until the recipient opts back in or an admin clears it
    incoming_help_reply: str

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_base_url).hostname or ""

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from `env`; raise ConfigurationError naming every bad setting."""
        reader = _Reader(env)
        settings = cls(
            twilio_account_sid=reader.required("TWILIO_ACCOUNT_SID", _account_sid),
            twilio_auth_token=reader.required("TWILIO_AUTH_TOKEN", Secret[str]),
            twilio_api_key_sid=reader.optional("TWILIO_API_KEY_SID", _api_key_sid),
            twilio_api_key_secret=reader.optional("TWILIO_API_KEY_SECRET", Secret[str]),
            twilio_from_number=reader.required("TWILIO_FROM_NUMBER", _e164),
            twilio_messaging_service_sid=reader.optional(
                "TWILIO_MESSAGING_SERVICE_SID", _messaging_service_sid
            ),
            twilio_api_base_url=reader.optional("TWILIO_API_BASE_URL", _origin),
            public_base_url=reader.required("PUBLIC_BASE_URL", _origin),
            flow_key=reader.required("AHOY_FLOW_KEY", _flow_key),
            flow_ttl_seconds=reader.optional("FLOW_TTL_SECONDS", _int_between(60, 86_400)) or 900,
            allowed_twiml_hosts=reader.optional("ALLOWED_TWIML_HOSTS", _host_list) or frozenset(),
            caller_auth=reader.optional("CALLER_AUTH", _one_of(CALLER_AUTH_MODES)) or "easyauth",
            # The platform sets it to true/True when App Service Authentication is on; nothing
            # else (1, yes) is trusted, since the headers it vouches for are then anyone's.
            easy_auth_enabled=(reader.optional("WEBSITE_AUTH_ENABLED", str) or "").lower()
            == "true",
            oidc_issuer=reader.optional("OIDC_ISSUER", str),
            oidc_audience=reader.optional("OIDC_AUDIENCE", str),
            oidc_jwks_url=reader.optional("OIDC_JWKS_URL", _origin_and_path),
            dev_principal=reader.optional("DEV_PRINCIPAL", str),
            validate_signatures=reader.optional("TWILIO_VALIDATE_SIGNATURES", _boolean)
            is not False,
            twilio_auth_token_secondary=reader.optional("TWILIO_AUTH_TOKEN_SECONDARY", Secret[str]),
            caller_keys=reader.optional("CALLER_KEYS", _caller_keys) or (),
            webhook_shared_keys=tuple(
                key
                for name in (WEBHOOK_SHARED_KEY, f"{WEBHOOK_SHARED_KEY}_SECONDARY")
                if (key := reader.optional(name, Secret[str])) is not None
            ),
            allowed_countries=reader.optional("ALLOWED_COUNTRIES", _upper_list)
            or frozenset({"US", "CA"}),
            allowed_number_types=reader.optional("ALLOWED_NUMBER_TYPES", _number_types)
            or frozenset({"MOBILE", "FIXED_LINE", "FIXED_LINE_OR_MOBILE"}),
            sandbox=reader.optional("TWILIO_SANDBOX", _boolean) is True,
            storage=_storage_access(reader),
            table_prefix=reader.optional(
                "AHOY_TABLE_PREFIX", _matching(r"[A-Za-z][A-Za-z0-9]{0,29}")
            )
            or "ahoy",
            idempotency_ttl_hours=reader.optional("IDEMPOTENCY_TTL_HOURS", _int_between(1, 720))
            or 24,
            rate_limit_per_minute=reader.optional("RATE_LIMIT_PER_MINUTE", _positive) or 5,
            daily_quota=reader.optional("DAILY_QUOTA", _positive) or 50,
            destination_limit_per_hour=reader.optional("DESTINATION_LIMIT_PER_HOUR", _positive)
            or 5,
            global_daily_cap=reader.optional("GLOBAL_DAILY_CAP", _positive) or 1000,
            call_time_limit_seconds=reader.optional(
                "CALL_TIME_LIMIT_SECONDS", _int_between(10, 14_400)
            )
            or 600,
            twilio_twiml_app_sid=reader.optional("TWILIO_TWIML_APP_SID", _twiml_app_sid),
            twilio_push_credential_sid=reader.optional(
                "TWILIO_PUSH_CREDENTIAL_SID", _push_credential_sid
            ),
            push_credentials={
                platform: sid
                for platform, name in PUSH_PLATFORMS.items()
                if (sid := reader.optional(name, _push_credential_sid)) is not None
            },
            token_ttl_seconds=reader.optional("TOKEN_TTL_SECONDS", _int_between(60, 86_400))
            or 3600,
            twilio_caller_ids=reader.optional("TWILIO_CALLER_IDS", _number_list) or frozenset(),
            incoming_call_flow=reader.optional("INCOMING_CALL_FLOW", str)
            or "mode=voicemail&Message=Hello.+Please+leave+a+message+after+the+beep.",
            incoming_sms_reply=reader.optional("INCOMING_SMS_REPLY", str) or "",
            retention_days=reader.optional("RETENTION_DAYS", _int_between(1, 3650)) or 90,
            conversation_days=reader.optional("CONVERSATION_DAYS", _int_between(1, 365)) or 30,
            opt_out_keep_days=reader.optional("OPT_OUT_KEEP_DAYS", _keep_days) or 0,
            incoming_help_reply=reader.optional("INCOMING_HELP_REPLY", str) or "",
        )
        if (settings.twilio_api_key_sid is None) != (settings.twilio_api_key_secret is None):
            reader.bad.extend(["TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET"])
        if settings.retention_days * 24 < settings.idempotency_ttl_hours:
            # Retention would delete a key's row while the key is still honoured, and a retry
            # after that would send again.
            reader.bad.extend(["RETENTION_DAYS", "IDEMPOTENCY_TTL_HOURS"])
        if settings.caller_auth == "jwt":
            for name in ("OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL"):
                reader.required(name, str)
        if settings.caller_auth == "key":
            reader.required("CALLER_KEYS", _caller_keys)
        if not served_by_local_host(env):
            # Development switches open doors: anywhere but the local host they are an error.
            if settings.dev_principal is not None:
                reader.bad.append("DEV_PRINCIPAL")
            if not settings.validate_signatures:
                reader.bad.append("TWILIO_VALIDATE_SIGNATURES")
        if reader.bad:
            raise ConfigurationError.missing(sorted(set(reader.bad)))
        return settings


def _storage_access(reader: _Reader) -> StorageAccess:
    network = any(reader.env.get(name) for name in NETWORK_ENVIRONMENT)
    connection = reader.optional(STORAGE_SETTING, Secret[str])
    if connection is not None or STORAGE_SETTING in reader.bad:
        return StorageAccess(connection, None, False, None, network)
    endpoint = reader.optional(STORAGE_TABLE_URI, _https_origin_and_path) or (
        _account_table_endpoint(account)
        if (account := reader.optional(STORAGE_ACCOUNT, _account_name))
        else None
    )
    credential = reader.optional(STORAGE_CREDENTIAL, _one_of(("managedidentity",)))
    client_id = reader.optional(STORAGE_CLIENT_ID, _matching(r"[0-9A-Fa-f-]{36}"))
    if client_id is not None and credential is None:
        # A client id only means something with the managed identity: say which is off.
        reader.bad.extend([STORAGE_CLIENT_ID, STORAGE_CREDENTIAL])
    if endpoint is None and not {STORAGE_TABLE_URI, STORAGE_ACCOUNT} & set(reader.bad):
        reader.bad.append(STORAGE_SETTING)
    return StorageAccess(None, endpoint, credential == "managedidentity", client_id, network)


def _account_table_endpoint(account: str) -> str:
    return f"https://{account}.table.core.windows.net"


def served_by_local_host(env: Mapping[str, str]) -> bool:
    """True only under Ahoy's local host bound to loopback, and never on Azure."""
    bind = env.get(LOCAL_HOST_BIND, "")
    if not bind or any(env.get(marker) for marker in AZURE_MARKERS):
        return False
    if bind.startswith("["):  # [IPv6]:port
        host = bind[1 : bind.find("]")]
    elif bind.count(":") == 1:  # host:port
        host = bind.split(":")[0]
    else:
        host = bind
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost, or a host:port: not known to be loopback
        return False


def get_settings() -> Settings:
    """The process's settings, built on first use (never at import: that would un-index the
    app); see `api.core.root`."""
    return root.get(root.SETTINGS, lambda: Settings.from_environ(os.environ))


class _Reader:
    """Reads settings, collecting the names of the missing or invalid ones instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.bad: list[str] = []

    def optional(self, name: str, parse: Callable[[str], T]) -> T | None:
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        if raw.startswith(KEY_VAULT_REFERENCE):  # Azure could not resolve the reference
            self.bad.append(name)
            return None
        try:
            return parse(raw)
        except ValueError:
            self.bad.append(name)
            return None

    def required(self, name: str, parse: Callable[[str], T]) -> T:
        value = self.optional(name, parse)
        if value is None and name not in self.bad:
            self.bad.append(name)
        return value  # type: ignore[return-value]  # callers raise before using a None


_CALLER_KEY = re.compile(r"([A-Za-z0-9_-]{1,64}):([0-9a-f]{64})")


def _caller_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """`name:sha256hex,…`: each server caller's name and the SHA-256 of its key (a name may
    appear twice while its key is rotated)."""
    keys = []
    for entry in raw.split(","):
        found = _CALLER_KEY.fullmatch(entry.strip())
        if found is None:
            raise ValueError("not name:sha256hex")
        keys.append((found[1], found[2]))
    return tuple(keys)


def _matching(pattern: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(raw: str) -> str:
        if not compiled.fullmatch(raw):
            raise ValueError
        return raw

    return parse


_account_sid = _matching(r"AC[0-9a-fA-F]{32}")
_api_key_sid = _matching(r"SK[0-9a-fA-F]{32}")
_messaging_service_sid = _matching(r"MG[0-9a-fA-F]{32}")
_twiml_app_sid = _matching(r"AP[0-9a-fA-F]{32}")
_push_credential_sid = _matching(r"CR[0-9a-fA-F]{32}")
_e164 = _matching(E164.pattern[1:-1])


def _origin(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.path.strip("/"):
        raise ValueError
    return _origin_and_path(raw).rstrip("/")


def _https_origin_and_path(raw: str) -> str:
    if urlsplit(raw).scheme != "https":
        raise ValueError  # a bearer token never travels over plain http
    return _origin_and_path(raw).rstrip("/")


_account_name = _matching(r"[a-z0-9]{3,24}")


def _origin_and_path(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError
    return raw


def _keep_days(raw: str) -> int:
    """0 (kept until withdrawn), or 365 to 36500 days: never less than a year of proof."""
    value = int(raw)
    if value != 0 and not 365 <= value <= 36_500:
        raise ValueError
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError
    return lowered in ("1", "true", "yes")


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError
        return raw.lower()

    return parse


def _upper_list(raw: str) -> frozenset[str]:
    return frozenset(item.strip().upper() for item in raw.split(",") if item.strip())


def _number_types(raw: str) -> frozenset[str]:
    types = _upper_list(raw)
    if not types <= NUMBER_TYPES:
        raise ValueError
    return types


def _flow_key(raw: str) -> Secret[bytes]:
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError from exc
    if len(key) != 32:
        raise ValueError
    return Secret(key)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError
        return value

    return parse


_positive = _int_between(1, 10_000_000)


def _number_list(raw: str) -> frozenset[str]:
    return frozenset(_e164(number.strip()) for number in raw.split(",") if number.strip())


def _host_list(raw: str) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in raw.split(",") if host.strip())
