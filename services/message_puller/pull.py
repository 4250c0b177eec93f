"""Reading one window: a cursor, its pages until `paging.next` is falsy, every item published.

Each item becomes its own confirmed event; `read` returns only when every item of the window
is confirmed by the broker, so the caller may then advance the checkpoint past the window.
The next page is fetched while the current one is being published.

Failures inside a window: an expired cursor, or Turn still failing after the client's
retries, gets a new cursor from the last seen `timestamp` (inclusive: items of that second
are read again, which is harmless). A window that keeps failing without any progress is split
in halves (Turn times out on ranges that are too large).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.message_puller import metrics
from services.message_puller.items import message_id, message_time
from shared.broker import (
    H_BUSINESS_NUMBER,
    H_DELIVERY_ID,
    H_KIND,
    H_RECEIVED_AT,
    H_SOURCE,
    ROUTE_EXPORT_MESSAGE,
    Publisher,
    new_delivery_id,
    utc_now_iso,
)
from shared.turn_client import CursorExpired, Page, TurnClient, TurnUnavailable
from shared.window import Window

log = logging.getLogger(__name__)

KIND = "messages"
# Failures in a row without progress before a window is split, and before giving up.
SPLIT_AFTER = 2
GIVE_UP_AFTER = 6


class Interrupted(Exception):
    """The service is stopping; the window was left unfinished (its checkpoint not moved)."""


@dataclass
class Progress:
    scanned: int = 0
    published: int = 0
    last_seen: datetime | None = None
    recreations: int = 0
    splits: int = 0


class WindowReader:
    def __init__(
        self,
        client: TurnClient,
        publisher: Publisher,
        *,
        business_number_id: str,
        page_size: int,
        concurrency: int,
    ) -> None:
        self._client = client
        self._publisher = publisher
        self._number = business_number_id
        self._page_size = page_size
        self._concurrency = concurrency

    async def read(self, window: Window, run: str, stop: asyncio.Event) -> Progress:
        progress = Progress()
        await self._read(window, run, stop, progress)
        return progress

    async def _read(
        self, window: Window, run: str, stop: asyncio.Event, progress: Progress
    ) -> None:
        start = window.start
        stuck = 0
        while True:
            before = (progress.published, progress.last_seen)
            try:
                await self._follow(Window(start, window.until), run, stop, progress)
                return
            except CursorExpired:
                reason = "expired"
            except TurnUnavailable:
                reason = "unavailable"
            moved = (progress.published, progress.last_seen) != before
            stuck = 0 if moved else stuck + 1
            current = Window(start, window.until)
            if stuck >= SPLIT_AFTER and current.seconds >= 2:
                metrics.WINDOW_SPLITS.inc()
                progress.splits += 1
                log.warning(
                    "window keeps failing; splitting it", extra={"seconds": current.seconds}
                )
                for half in current.halves():
                    await self._read(half, run, stop, progress)
                return
            if stuck >= GIVE_UP_AFTER:
                raise TurnUnavailable(f"window {start} .. {window.until} keeps failing")
            metrics.CURSOR_RECREATIONS.labels(reason).inc()
            progress.recreations += 1
            if progress.last_seen is not None and progress.last_seen > start:
                start = progress.last_seen
            log.info("re-creating cursor", extra={"reason": reason, "from": start.isoformat()})

    async def _follow(
        self, window: Window, run: str, stop: asyncio.Event, progress: Progress
    ) -> None:
        cursor = await self._client.create_cursor(
            KIND, window.start, window.until, page_size=self._page_size
        )
        pending: asyncio.Task[Page] | None = asyncio.create_task(self._client.page(KIND, cursor))
        try:
            while pending is not None:
                page = await pending
                pending = None
                if page.next_cursor is not None and not stop.is_set():
                    pending = asyncio.create_task(self._client.page(KIND, page.next_cursor))
                await self._publish(page.items, run, progress)
                if page.next_cursor is None:
                    return
                if stop.is_set():
                    raise Interrupted()
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _publish(self, items: list[Any], run: str, progress: Progress) -> None:
        progress.scanned += len(items)
        metrics.ITEMS_SCANNED.labels(run).inc(len(items))
        if not items:
            return
        received = utc_now_iso()
        gate = asyncio.Semaphore(self._concurrency)

        async def one(item: Any) -> None:
            headers = {
                H_SOURCE: "export",
                H_KIND: "message",
                H_RECEIVED_AT: received,
                H_DELIVERY_ID: new_delivery_id(),
                H_BUSINESS_NUMBER: self._number,
            }
            async with gate:
                await self._publisher.publish(
                    orjson.dumps(item), ROUTE_EXPORT_MESSAGE, headers, message_id=message_id(item)
                )

        results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        progress.published += len(items)
        metrics.ITEMS_PUBLISHED.labels(run).inc(len(items))
        times = [t for t in map(message_time, items) if t is not None]
        if times:
            newest = max(times)
            if progress.last_seen is None or newest > progress.last_seen:
                progress.last_seen = newest
