"""Library loggers that write URLs are kept quiet: a URL's path and query string carry phone
numbers, the account SID, table keys and, for storage, signatures.

urllib3 (under both twilio's requests and azure-core) logs each request line at DEBUG and each
retry, path and query included, at WARNING; azure-core's HTTP logging policy logs every request
and response at INFO and its network trace at DEBUG. Only their errors get through.
"""

from __future__ import annotations

import logging

URL_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.core.pipeline.policies._universal",
)


def quiet_url_loggers() -> None:
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
