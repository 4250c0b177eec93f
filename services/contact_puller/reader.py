"""Reading contact windows side by side: one cursor per window, its pages until `paging.next`
is falsy, every contact published as its own confirmed event.

`read_all` reads a run's windows with at most `concurrency` at once and returns only when
every contact of every window is confirmed by the broker; the first window that fails cancels
the others and the run fails as a whole (the caller then leaves the checkpoint where it was).

Cursor creations, across all windows, start at least `cursor_stagger` seconds apart: Turn has
answered 403 to many contact cursors created at once (turn-api.md §3.7). A 403 is retried with
a growing backoff a bounded number of times; one that persists is MissingPermission, a clear
error naming the likely cause (the token may not export contacts).

Inside a window, an expired cursor or Turn still failing after the client's retries gets a new
cursor from the last seen `updated_at` (inclusive: contacts of that instant are read again,
which is harmless); a window that keeps failing without progress is split in halves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.contact_puller import metrics
from services.contact_puller.items import contact_id, contact_time
from services.message_puller.pull import Interrupted
from shared.broker import (
    H_BUSINESS_NUMBER,
    H_DELIVERY_ID,
    H_KIND,
    H_RECEIVED_AT,
    H_SOURCE,
    ROUTE_EXPORT_CONTACT,
    Publisher,
    new_delivery_id,
    utc_now_iso,
)
from shared.turn_client import CursorExpired, Page, TurnClient, TurnForbidden, TurnUnavailable
from shared.window import Window

log = logging.getLogger(__name__)

KIND = "contacts"
# Failures in a row without progress before a window is split, and before giving up.
SPLIT_AFTER = 2
GIVE_UP_AFTER = 6
MAX_FORBIDDEN_DELAY = 60.0


class MissingPermission(TurnForbidden):
    """Turn kept refusing contact cursors with 403: most likely the token lacks permission."""


@dataclass
class Progress:
    scanned: int = 0
    published: int = 0
    newest: datetime | None = None  # the newest updated_at (else inserted_at) published
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
        self._client = client
        self._publisher = publisher
        self._gate = gate
        self._number = business_number_id
        self._page_size = page_size
        self._concurrency = concurrency
        self._publish_concurrency = publish_concurrency
        self._forbidden_retries = forbidden_retries
        self._forbidden_backoff = forbidden_backoff

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
                metrics.WINDOW_SPLITS.inc()
                progress.splits += 1
                log.warning(
                    "window keeps failing; splitting it", extra={"seconds": current.seconds}
                )
                for half in current.halves():
                    await self._read(half, run, stop, progress)
                return
            if stuck >= GIVE_UP_AFTER:
                raise TurnUnavailable(f"contact window {start} .. {window.until} keeps failing")
            metrics.CURSOR_RECREATIONS.labels(reason).inc()
            progress.recreations += 1
            # Contacts come in updated_at order, so the newest seen is where reading stopped.
            if progress.newest is not None and start < progress.newest < window.until:
                start = progress.newest
            log.info("re-creating cursor", extra={"reason": reason, "from": start.isoformat()})

    async def create_cursor(self, window: Window) -> str:
        """A cursor for `window`, its creation staggered; 403 retried with backoff, a
        persistent one raised as MissingPermission."""
        for attempt in range(self._forbidden_retries + 1):
            await self._gate.turn()
            try:
                return await self._client.create_cursor(
                    KIND, window.start, window.until, page_size=self._page_size
                )
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

    async def _follow(
        self,
        window: Window,
        run: str,
        stop: asyncio.Event,
        progress: Progress,
    ) -> None:
        cursor = await self.create_cursor(window)
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
        metrics.CONTACTS_SCANNED.labels(run).inc(len(items))
        if not items:
            return
        received = utc_now_iso()
        gate = asyncio.Semaphore(self._publish_concurrency)

        async def one(item: Any) -> None:
            headers = {
                H_SOURCE: "export",
                H_KIND: "contact",
                H_RECEIVED_AT: received,
                H_DELIVERY_ID: new_delivery_id(),
                H_BUSINESS_NUMBER: self._number,
            }
            async with gate:
                await self._publisher.publish(
                    orjson.dumps(item), ROUTE_EXPORT_CONTACT, headers, message_id=contact_id(item)
                )

        results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        progress.published += len(items)
        metrics.CONTACTS_PUBLISHED.labels(run).inc(len(items))
        times = [t for t in map(contact_time, items) if t is not None]
        if times:
            progress.saw(max(times))


def _first_failure(failed: Sequence[asyncio.Task[Progress]]) -> BaseException:
    """The failure to report: a real error before an Interrupted (stop) of another window."""
    errors = [t.exception() for t in failed]
    real = [e for e in errors if e is not None and not isinstance(e, Interrupted)]
    chosen = real[0] if real else errors[0]
    assert chosen is not None
    return chosen
