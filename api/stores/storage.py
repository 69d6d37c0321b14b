"""Azure Table Storage on the Function App's own account (AzureWebJobsStorage; Azurite locally).

Reached with a connection string, or with a Microsoft Entra token for the endpoint (the
managed identity in Azure, where shared keys are off): see `settings.StorageAccess`. One
service client per process; each table is created on first use. Storage being down is a
503 for the caller (nothing is sent without a ledger row), never a stack trace.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError

from api.core import root
from api.core.errors import AhoyError, ConfigurationError, StorageUnavailable
from api.core.logs import quiet_url_loggers
from api.core.settings import STORAGE_SETTING, StorageAccess, get_settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import RequestsTransport

log = logging.getLogger("ahoy.storage")

__all__ = [
    "Expiry",
    "ResourceExistsError",
    "ResourceModifiedError",
    "ResourceNotFoundError",
    "TableTransactionError",
    "Tables",
    "at_once",
    "get_tables",
    "keep_trying",
    "key_of",
    "odata_time",
    "row_key_prefix",
    "storage_errors",
    "table",
]


class Tables:
    """Ahoy's tables, named `<AHOY_TABLE_PREFIX><name>`."""

    def __init__(self, access: StorageAccess, prefix: str) -> None:
        quiet_url_loggers()
        options: dict[str, Any] = {
            "retry_total": 2,
            "retry_backoff_factor": 0.2,
            "transport": _transport(access),
        }
        if access.connection_string is not None:
            self._service = TableServiceClient.from_connection_string(
                access.connection_string.get(), **options
            )
        else:
            self._service = TableServiceClient(
                endpoint=access.table_endpoint or "",
                credential=_token_credential(access),
                **options,
            )
        self._prefix = prefix
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> TableClient:
        client = self._clients.get(name)
        if client is None:
            with self._lock, storage_errors():
                client = self._clients.get(name)
                if client is None:
                    client = self._service.get_table_client(self._prefix + name)
                    with suppress(ResourceExistsError):
                        client.create_table()
                    self._clients[name] = client
        return client

    def ping(self, timeout_seconds: float) -> None:
        """One cheap request to the table service, not retried; AzureError if it fails."""
        tables = self._service.list_tables(
            results_per_page=1,
            retry_total=0,
            connection_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
        )
        next(iter(tables.by_page()), None)


def _transport(access: StorageAccess) -> RequestsTransport:
    """HTTP for the tables: a connection per storage thread kept open (requests keeps 10 and
    opens, then drops, one more for every request beyond them), the environment's proxy
    settings read only when there are some (requests would read them on every request)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    session.trust_env = access.network_from_environment
    no_retries = Retry(total=False, redirect=False, raise_on_status=False)  # azure-core retries
    adapter = HTTPAdapter(pool_maxsize=STORAGE_THREADS, max_retries=no_retries)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(session=session, connection_timeout=3, read_timeout=5)


def _token_credential(access: StorageAccess) -> TokenCredential:
    """The managed identity (user-assigned when a client id is set), else the default chain."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if access.managed_identity:
        return ManagedIdentityCredential(client_id=access.client_id)
    return DefaultAzureCredential()


def get_tables() -> Tables:
    """The process's tables, on its one service client (see `api.core.root`)."""

    def build() -> Tables:
        settings = get_settings()
        return Tables(settings.storage, settings.table_prefix)

    return root.get(root.TABLES, build)


# Less than the time after which a retry treats a pending send as abandoned
# (sending.IN_FLIGHT_LIMIT) and settles what is left itself.
KEEP_TRYING_SECONDS = 90.0
KEEP_TRYING_THREAD = "ahoy-keep-trying"
KEEP_TRYING_MAX = 10_000

# The tables a background retry is bound to (see keep_trying); unset, the process's own.
_bound: contextvars.ContextVar[Tables | None] = contextvars.ContextVar("tables", default=None)

T = TypeVar("T")
STORAGE_THREADS = 64  # storage requests a process makes at once (at_once's threads)
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def at_once(calls: list[Callable[[], T]]) -> list[T | AhoyError]:
    """Run storage calls concurrently (one round trip for all); each one's result, or the
    AhoyError it raised. Anything else it raised is raised here.

    The first call runs in this thread, the others on the pool. A call that itself uses
    `at_once` must come first: pool threads then never wait for the pool, which could
    otherwise fill up with waiters and deadlock.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=STORAGE_THREADS, thread_name_prefix="ahoy-storage"
            )
        pool = _pool

    def attempt(call: Callable[[], T]) -> T | AhoyError:
        try:
            return call()
        except AhoyError as error:
            return error

    if not calls:
        return []
    others = [pool.submit(contextvars.copy_context().run, attempt, call) for call in calls[1:]]
    first = attempt(calls[0])
    return [first, *(future.result() for future in others)]


def table(name: str) -> TableClient:
    """Ahoy's table `name` (created on first use) on the process's one service client."""
    return (_bound.get() or get_tables())(name)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Storage that cannot be reached or fails becomes a 503; conflicts are left to callers."""
    try:
        yield
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        raise
    except TableTransactionError as error:
        if error.status_code is not None and error.status_code < 500:
            raise  # a conflict inside the transaction: the caller decides
        log.error("table storage failed (HTTP %s)", error.status_code)
        raise _unavailable() from None
    except HttpResponseError as error:
        if error.status_code in (401, 403):  # a wrong key, or an identity without its role
            log.error("table storage refused Ahoy's credentials (HTTP %s)", error.status_code)
            raise ConfigurationError(
                "Storage refused this app's credentials.", settings=[STORAGE_SETTING]
            ) from None
        if error.status_code is not None and error.status_code < 500:
            raise
        log.error("table storage failed (HTTP %s)", error.status_code)
        raise _unavailable() from None
    except AzureError as error:
        log.error("table storage unreachable (%s)", type(error).__name__)
        raise _unavailable() from None


def _unavailable() -> StorageUnavailable:
    return StorageUnavailable("Storage is unavailable; nothing was sent.", retry_after=5)


def keep_trying(work: Callable[[], object], what: str) -> None:
    """Run `work` now; while storage is unavailable, again in the background until it is back
    (for up to KEEP_TRYING_SECONDS), so that what a failed send holds is let go as soon as it
    can be. Errors other than StorageUnavailable are raised (now) or logged (later). The
    background attempts use the tables of this moment, and stop if the process has moved to
    other tables since (new settings: in Azure, a restart; in tests, the next test).

    However many sends fail, a process keeps one background worker for all their retries,
    and at most KEEP_TRYING_MAX of them waiting: an outage under load never piles up threads.
    """
    try:
        work()
        return
    except StorageUnavailable:
        log.warning("storage unavailable: %s will be retried in the background", what)
    tables = _bound.get() or get_tables()  # a retry started by a retry keeps its tables
    context = contextvars.copy_context()
    context.run(_bound.set, tables)
    _retries.add(_Retry(work, what, tables, context, time.monotonic() + KEEP_TRYING_SECONDS))


@dataclass(eq=False)  # compared by identity
class _Retry:
    work: Callable[[], object]
    what: str
    tables: Tables
    context: contextvars.Context
    deadline: float
    pause: float = 0.1
    due: float = field(default_factory=lambda: time.monotonic() + 0.1)

    def attempt(self) -> bool:
        """One try, in the context it was made in; True when it needs no more."""
        if not _in_use(self.tables):
            log.warning("gave up on %s: the process uses other tables now", self.what)
            return True
        try:
            self.context.run(self.work)
        except StorageUnavailable:
            if time.monotonic() >= self.deadline:
                log.error("gave up on %s: storage still unavailable", self.what)
                return True
            self.pause = min(self.pause * 2, 1.0)
            self.due = time.monotonic() + self.pause
            return False
        except AhoyError as failed:
            log.error("%s failed once storage was back (%s)", self.what, failed.slug)
            return True
        log.info("%s done once storage was back", self.what)
        return True


class _Retries:
    """The process's background retries, worked through by one thread while there are any."""

    def __init__(self) -> None:
        self._waiting: list[_Retry] = []
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def add(self, retry: _Retry) -> None:
        with self._lock:
            if len(self._waiting) >= KEEP_TRYING_MAX:
                log.error("too many background retries: %s is not retried", retry.what)
                return
            self._waiting.append(retry)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name=KEEP_TRYING_THREAD, daemon=True
                )
                self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._worker = None
                    return
                now = time.monotonic()
                due = [r for r in self._waiting if r.due <= now]
                wait = min(r.due for r in self._waiting) - now
            if not due:
                time.sleep(max(wait, 0.01))
                continue
            done = [retry for retry in due if retry.attempt()]
            with self._lock:
                self._waiting = [r for r in self._waiting if r not in done]


_retries = _Retries()


def _in_use(tables: Tables) -> bool:
    try:
        return get_tables() is tables
    except AhoyError:  # settings no longer valid: not the tables in use either
        return False


@dataclass(frozen=True)
class Expiry:
    """Rows a store keeps for a while: where they are and the filter that finds the expired.
    Each store declares its own (`expiries(now, settings)`); `api.services.retention` deletes
    them."""

    name: str
    table: str
    query: str
    # Called for each expired row before it is deleted; False keeps the row (for now).
    before_delete: Callable[[Any], bool] | None = None


def row_key_prefix(prefix: str) -> str:
    """A filter for row keys that start with `prefix` (its last character, plus one, ends the
    range: `send-` runs to before `send.`)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"RowKey ge '{prefix}' and RowKey lt '{end}'"


def odata_time(moment: datetime) -> str:
    return f"datetime'{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"


def key_of(text: str) -> str:
    """A table key for any text: keys may not hold `/ \\ # ?` or control characters."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]
