"""What the puller needs to know about one exported message item (pure).

Two shapes share a page (turn-api.md §3.4): an inbound container
`{"contacts": [...], "messages": [msg]}` and a bare outbound message object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.timestamps import epoch_time


def message_of(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    inner = item.get("messages")
    if isinstance(inner, list):
        first = inner[0] if inner else None
        return first if isinstance(first, dict) else None
    return item


def message_id(item: Any) -> str | None:
    message = message_of(item)
    value = message.get("id") if message is not None else None
    return value if isinstance(value, str) and value else None


def message_time(item: Any) -> datetime | None:
    """The message `timestamp` (epoch seconds, a string), the field export windows filter on."""
    message = message_of(item)
    return epoch_time(message.get("timestamp")) if message is not None else None
