"""Reading contact windows side by side: one cursor per window, its pages until `paging.next`
is falsy, every contact published as its own confirmed event.

`read_all` reads a run's windows with at most `concurrency` at once and returns only when
every contact of every window is confirmed by the broker; the first window that fails cancels
the others and the run fails as a whole (the caller then leaves the checkpoint where it was).

Cursor creations, across all windows, start at least `cursor_stagger` seconds apart: Turn has
answered 403 to many contact cursors created at once (turn-api.md §3.7). A 403 is retried with
a growing backoff a bounded number of times; one that persists is MissingPermission, a clear
error naming the likely cause (the token may not export contacts).

Inside a window (shared/export_reader.py), an expired cursor or Turn still failing after the
client's retries gets a new cursor from the last seen `updated_at` (inclusive: contacts of that
instant are read again, which is harmless); a window that keeps failing without progress is
split in halves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

from services.contact_puller import metrics
from services.contact_puller.items import contact_id, contact_time
from shared.broker import ROUTE_EXPORT_CONTACT, Publisher
from shared.export_publisher import ExportPublisher
from shared.export_reader import ExportReader, Interrupted, Progress, ReaderMetrics
from shared.turn_client import TurnClient, TurnForbidden
from shared.window import Window

log = logging.getLogger(__name__)

KIND = "contacts"
READER_METRICS = ReaderMetrics(
    scanned=metrics.CONTACTS_SCANNED,
    published=metrics.CONTACTS_PUBLISHED,
    recreations=metrics.CURSOR_RECREATIONS,
    splits=metrics.WINDOW_SPLITS,
)
MAX_FORBIDDEN_DELAY = 60.0


class MissingPermission(TurnForbidden):
    """Turn kept refusing contact cursors with 403: most likely the token lacks permission."""


class CursorGate:
    """Spaces cursor creations `stagger` seconds apart, whichever window asks."""

    def __init__(self, stagger: float) -> None:
        self._stagger = stagger
        self._lock = asyncio.Lock()
        self._last = -float("inf")

    async def turn(self) -> None:
        async with self._lock:
            wait = self._last + self._stagger - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = time.monotonic()


class ContactReader:
    def __init__(
        self,
        client: TurnClient,
        publisher: Publisher,
        gate: CursorGate,
        *,
        business_number_id: str,
        page_size: int,
        concurrency: int,
        publish_concurrency: int,
        forbidden_retries: int,
        forbidden_backoff: float,
    ) -> None:
        self._gate = gate
        self._concurrency = concurrency
        self._forbidden_retries = forbidden_retries
        self._forbidden_backoff = forbidden_backoff
        items = ExportPublisher(
            publisher,
            kind="contact",
            route=ROUTE_EXPORT_CONTACT,
            identity=contact_id,
            business_number_id=business_number_id,
            concurrency=publish_concurrency,
        )
        self._window = ExportReader(
            client,
            items,
            READER_METRICS,
            stream=KIND,
            item_time=contact_time,
            page_size=page_size,
            create_cursor=self.create_cursor,
        )

    async def read_all(self, windows: Sequence[Window], run: str, stop: asyncio.Event) -> Progress:
        """Every window read and confirmed, or the first failure raised (the rest cancelled)."""
        total = Progress()
        gate = asyncio.Semaphore(self._concurrency)

        async def one(window: Window) -> Progress:
            async with gate:
                if stop.is_set():
                    raise Interrupted()
                return await self.read(window, run, stop)

        tasks = [asyncio.create_task(one(w), name=f"contacts:{w.start}") for w in windows]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if t.exception() is not None]
            if failed:
                raise _first_failure(failed)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            total.add(task.result())
        return total

    async def read(self, window: Window, run: str, stop: asyncio.Event) -> Progress:
        return await self._window.read(window, run, stop)

    async def create_cursor(self, window: Window) -> str:
        """A cursor for `window`, its creation staggered; 403 retried with backoff, a
        persistent one raised as MissingPermission."""
        for attempt in range(self._forbidden_retries + 1):
            await self._gate.turn()
            try:
                return await self._window.plain_cursor(window)
            except TurnForbidden as exc:
                if attempt >= self._forbidden_retries:
                    raise MissingPermission(
                        403,
                        f"Turn answered 403 to {attempt + 1} contact cursor creations in a "
                        "row; the token probably lacks permission to export contacts "
                        f"(last answer: {exc})",
                    ) from exc
                metrics.FORBIDDEN_RETRIES.inc()
                delay = min(
                    self._forbidden_backoff * 2**attempt * random.uniform(0.75, 1.25),
                    MAX_FORBIDDEN_DELAY,
                )
                log.warning(
                    "contact cursor refused with 403; retrying",
                    extra={"attempt": attempt + 1, "delay": round(delay, 2)},
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises


def _first_failure(failed: Sequence[asyncio.Task[Progress]]) -> BaseException:
    """The failure to report: a real error before an Interrupted (stop) of another window."""
    errors = [t.exception() for t in failed]
    real = [e for e in errors if e is not None and not isinstance(e, Interrupted)]
    chosen = real[0] if real else errors[0]
    assert chosen is not None
    return chosen
