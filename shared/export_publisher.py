"""Publishing Data Export items, each as its own confirmed event (DESIGN.md: one export item
per message body, `x-source: export`, `x-kind` naming what it is).

All items of a page are published side by side, at most `concurrency` awaiting their confirm
at once; `publish` returns only when every one is confirmed, and raises the first failure
otherwise, so a caller never counts an item as done that the broker has not taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from shared.broker import (
    H_BUSINESS_NUMBER,
    H_DELIVERY_ID,
    H_KIND,
    H_RECEIVED_AT,
    H_SOURCE,
    Publisher,
    new_delivery_id,
    utc_now_iso,
)


class ExportPublisher:
    def __init__(
        self,
        publisher: Publisher,
        *,
        kind: str,
        route: str,
        identity: Callable[[Any], str | None],
        business_number_id: str,
        concurrency: int,
    ) -> None:
        """`kind` is the `x-kind` header ("message" | "contact"), `route` the routing key,
        `identity` the item's event identity (shared/events.py) used as the message id."""
        self._publisher = publisher
        self._kind = kind
        self._route = route
        self._identity = identity
        self._number = business_number_id
        self._concurrency = concurrency

    def headers(self, received_at: str) -> dict[str, str]:
        return {
            H_SOURCE: "export",
            H_KIND: self._kind,
            H_RECEIVED_AT: received_at,
            H_DELIVERY_ID: new_delivery_id(),
            H_BUSINESS_NUMBER: self._number,
        }

    async def publish(self, items: list[Any]) -> None:
        """Every item published and confirmed, or the first failure raised."""
        if not items:
            return
        received = utc_now_iso()
        gate = asyncio.Semaphore(self._concurrency)

        async def one(item: Any) -> None:
            headers = self.headers(received)
            async with gate:
                await self._publisher.publish(
                    orjson.dumps(item), self._route, headers, message_id=self._identity(item)
                )

        results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
