"""What the puller needs to know about one exported contact item (pure).

A contact carries an integer `id` and ISO-8601 `inserted_at` / `updated_at` (turn-api.md §3.5).
Export windows filter and order contacts on `updated_at`, so that is the time a window's
progress and the checkpoint are measured in; `inserted_at` stands in when it is missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import contact_key
from shared.timestamps import iso_time


def contact_id(item: Any) -> str | None:
    """The event identity of a contact (shared/events.py), or None for a shape without an id."""
    value = item.get("id") if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return contact_key(value)


def contact_time(item: Any) -> datetime | None:
    """`updated_at`, else `inserted_at`; None when neither is a readable time."""
    if not isinstance(item, dict):
        return None
    return iso_time(item.get("updated_at")) or iso_time(item.get("inserted_at"))
