"""Turn's two kinds of time, read leniently: anything unreadable is None, never an exception.

An item's time decides where a window resumes and which copy of a contact is newest; an
exception here would stall a puller on one odd item (an OSError even passes for a lost
database), so every failure of the platform's conversion is caught.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def epoch_time(value: Any) -> datetime | None:
    """WhatsApp timestamps: Unix epoch seconds, usually as a string."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def iso_time(value: Any) -> datetime | None:
    """Turn's `_vnd` and export times: ISO-8601, UTC when no offset is given."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
