"""Delivery statuses of outbound messages: their history and the webhook bodies announcing them.

An outbound message goes sent -> delivered -> read (stopping anywhere), or fails; its export
item carries only the furthest status (`_vnd.v1.last_status`), the `whatsapp` webhook one
notification per status, keyed `{id}:{status}` (shared/events.py).
"""

from __future__ import annotations

import random
from typing import Any

STATUS_CHAIN = ("sent", "delivered", "read")


def status_history(rng: random.Random, timestamp: int) -> list[tuple[str, int]]:
    """The statuses an outbound message went through, with their epoch-second times."""
    roll = rng.random()
    if roll < 0.03:
        return []
    if roll < 0.08:
        return [("failed", timestamp + rng.randrange(1, 30))]
    reached = 1 if roll < 0.2 else 2 if roll < 0.5 else 3
    history: list[tuple[str, int]] = []
    at = timestamp
    for status, gap in zip(STATUS_CHAIN[:reached], (3, 120, 7200), strict=False):
        at += rng.randrange(1, gap)
        history.append((status, at))
    return history


def status_body(
    message_id: str, recipient: str, status: str, at: int, conversation: str
) -> dict[str, Any]:
    """A `whatsapp` subscription status notification, as webhook_status_*.json."""
    item: dict[str, Any] = {
        "id": message_id,
        "recipient_id": recipient,
        "status": status,
        "timestamp": str(at),
    }
    if status in ("sent", "delivered"):
        item["conversation"] = {
            "expiration_timestamp": str(at + 86400),
            "id": conversation,
            "origin": {"type": "service"},
        }
        item["pricing"] = {"billable": True, "category": "service", "pricing_model": "CBP"}
    if status == "failed":
        item["errors"] = [
            {
                "code": 131026,
                "error_data": {"details": "Message Undeliverable."},
                "message": "Message undeliverable",
                "title": "Message undeliverable",
            }
        ]
    return {"statuses": [item]}
