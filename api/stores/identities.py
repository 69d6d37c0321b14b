"""Voice SDK identities: which caller an identity in a `client:` address stands for.

A caller id Twilio accepts as a client identity is its own identity; any other id gets a
digest (`u_` and 48 hex digits), remembered here so that /api/voice can map the call back to
its caller. Ids that start with `u_` are always digested, so no caller's own id can equal
another caller's digest.
"""

from __future__ import annotations

import hashlib

from api.core.call_twiml import APP_USER_IDENTITY
from api.stores.storage import ResourceNotFoundError, storage_errors, table

TABLE = "identities"
DIGEST_PREFIX = "u_"


def identity_for(caller_id: str) -> str:
    """The Voice SDK identity of a caller: its id when Twilio accepts it as is, else a digest."""
    if APP_USER_IDENTITY.match(caller_id) and not caller_id.startswith(DIGEST_PREFIX):
        return caller_id
    return DIGEST_PREFIX + hashlib.sha256(caller_id.encode()).hexdigest()[:48]


def remember(identity: str, caller_id: str, name: str | None = None) -> None:
    """Record that `identity` stands for `caller_id` (shown to callees as `name`, else the id):
    every caller who takes a token, so others can call them by id."""
    from azure.data.tables import UpdateMode

    entity = {"PartitionKey": identity, "RowKey": "", "Caller": caller_id, "Name": name or ""}
    with storage_errors():
        table(TABLE).upsert_entity(entity, mode=UpdateMode.REPLACE)


def known(caller_id: str) -> tuple[str, str] | None:
    """The identity and display name of a caller who has taken a Voice SDK token (None for
    one who never has: their app cannot ring)."""
    identity = identity_for(caller_id)
    with storage_errors():
        try:
            entity = table(TABLE).get_entity(identity, "")
        except ResourceNotFoundError:
            return None
    if entity["Caller"] != caller_id:
        return None
    return identity, str(entity.get("Name") or caller_id)


def caller_of(identity: str) -> str | None:
    """The caller `identity` stands for: itself unless it is a digest, which must have been
    registered when its token was minted (None otherwise)."""
    if not identity.startswith(DIGEST_PREFIX):
        return identity
    with storage_errors():
        try:
            entity = table(TABLE).get_entity(identity, "")
        except ResourceNotFoundError:
            return None
    return str(entity["Caller"])
