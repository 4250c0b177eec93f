"""Event identity: the heart of idempotency.

Every event is keyed by (provider, event_type, external_event_id), unique in `webhook_events`.
The same WhatsApp message arriving by webhook and by export has one key, so it is one row.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

import orjson

PROVIDER = "turn"


class EventType(StrEnum):
    MESSAGE = "message"
    STATUS = "status"
    CONTACT = "contact"
    CONTACT_PROFILE = "contact_profile"
    ERROR = "error"
    UNKNOWN = "unknown"


class Source(StrEnum):
    WEBHOOK = "webhook"
    EXPORT = "export"


def canonical_bytes(item: Any) -> bytes:
    """A stable serialisation: the same JSON value always gives the same bytes."""
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def content_hash(item: Any) -> str:
    return hashlib.sha256(canonical_bytes(item)).hexdigest()


def message_key(message_id: str) -> str:
    return message_id


def status_key(message_id: str, status: str) -> str:
    # sent, delivered and read of one message are three events.
    return f"{message_id}:{status}"


def contact_key(contact_id: int | str) -> str:
    return str(contact_id)


def contact_profile_key(wa_id: str, profile: Any) -> str:
    # A changed profile name is a new event; the same one repeated is not.
    return f"{wa_id}:{content_hash(profile)[:16]}"


def fallback_key(item: Any) -> str:
    """Errors and shapes we do not know: keyed by content, never dropped."""
    return content_hash(item)
