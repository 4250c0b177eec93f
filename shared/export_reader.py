"""Reading one window of Turn's Data Export: a cursor, its pages until `paging.next` is falsy,
every item published as its own confirmed event (shared/export_publisher.py).

`read` returns only when every item of the window is confirmed by the broker, so the caller
may then count the window as done (move a checkpoint, a job's position). The next page is
fetched while the current one is being published.

Failures inside a window: an expired cursor, or Turn still failing after the client's
retries, gets a new cursor from the newest item time seen (exports come in that order, so it
is where reading stopped; inclusive: items of that instant are read again, which is
harmless). A window that keeps failing without any progress is split in halves (Turn times
out on ranges that are too large); one that fails without progress for too long is given up.

What differs between streams is passed in: which export (`stream`), how an item's time is
read, how a cursor is created (the contact puller staggers them and retries 403s), and the
service's own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from shared.export_publisher import ExportPublisher
from shared.turn_client import CursorExpired, Page, TurnClient, TurnUnavailable
from shared.window import Window

log = logging.getLogger(__name__)

# Failures in a row without progress before a window is split, and before giving up.
SPLIT_AFTER = 2
GIVE_UP_AFTER = 6


class Interrupted(Exception):
    """The service is stopping; the window was left unfinished (its checkpoint not moved)."""


@dataclass
class Progress:
    scanned: int = 0
    published: int = 0
    newest: datetime | None = None  # the newest item time published
    recreations: int = 0
    splits: int = 0

    def saw(self, moment: datetime) -> None:
        if self.newest is None or moment > self.newest:
            self.newest = moment

    def add(self, other: Progress) -> None:
        self.scanned += other.scanned
        self.published += other.published
        self.recreations += other.recreations
        self.splits += other.splits
        if other.newest is not None:
            self.saw(other.newest)


@dataclass(frozen=True)
class ReaderMetrics:
    """The service's counters: `scanned` and `published` labelled by run, `recreations` by
    reason (expired | unavailable)."""

    scanned: Counter
    published: Counter
    recreations: Counter
    splits: Counter


class ExportReader:
    def __init__(
        self,
        client: TurnClient,
        items: ExportPublisher,
        metrics: ReaderMetrics,
        *,
        stream: str,
        item_time: Callable[[Any], datetime | None],
        page_size: int,
        create_cursor: Callable[[Window], Awaitable[str]] | None = None,
    ) -> None:
        """`stream` is the export ("messages" | "contacts"); `create_cursor` defaults to
        one plain request for the window."""
        self._client = client
        self._items = items
        self._metrics = metrics
        self._stream = stream
        self._item_time = item_time
        self._page_size = page_size
        self._create_cursor = create_cursor or self.plain_cursor

    async def plain_cursor(self, window: Window) -> str:
        return await self._client.create_cursor(
            self._stream, window.start, window.until, page_size=self._page_size
        )

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
            before = (progress.published, progress.newest)
            try:
                await self._follow(Window(start, window.until), run, stop, progress)
                return
            except CursorExpired:
                reason = "expired"
            except TurnUnavailable:
                reason = "unavailable"
            moved = (progress.published, progress.newest) != before
            stuck = 0 if moved else stuck + 1
            current = Window(start, window.until)
            if stuck >= SPLIT_AFTER and current.seconds >= 2:
                self._metrics.splits.inc()
                progress.splits += 1
                log.warning(
                    "window keeps failing; splitting it", extra={"seconds": current.seconds}
                )
                for half in current.halves():
                    await self._read(half, run, stop, progress)
                return
            if stuck >= GIVE_UP_AFTER:
                raise TurnUnavailable(
                    f"{self._stream} window {start} .. {window.until} keeps failing"
                )
            self._metrics.recreations.labels(reason).inc()
            progress.recreations += 1
            # Items come in time order, so the newest seen is where reading stopped. One at
            # or past `until` cannot be in the window's filter; never resume from it.
            if progress.newest is not None and start < progress.newest < window.until:
                start = progress.newest
            log.info("re-creating cursor", extra={"reason": reason, "from": start.isoformat()})

    async def _follow(
        self, window: Window, run: str, stop: asyncio.Event, progress: Progress
    ) -> None:
        cursor = await self._create_cursor(window)
        pending: asyncio.Task[Page] | None = asyncio.create_task(
            self._client.page(self._stream, cursor)
        )
        try:
            while pending is not None:
                page = await pending
                pending = None
                if page.next_cursor is not None and not stop.is_set():
                    pending = asyncio.create_task(self._client.page(self._stream, page.next_cursor))
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
        self._metrics.scanned.labels(run).inc(len(items))
        if not items:
            return
        await self._items.publish(items)
        progress.published += len(items)
        self._metrics.published.labels(run).inc(len(items))
        times = [t for t in map(self._item_time, items) if t is not None]
        if times:
            progress.saw(max(times))
