"""The singleton's loop: an incremental run every `interval`, operator back-fills between runs.

    incremental  [checkpoint - overlap, now - safety_lag), cut into `windows` windows read
                 `concurrency` at a time; once EVERY window succeeded, the checkpoint moves to
                 the newest `updated_at` (else `inserted_at`) seen: Turn's own clock, so a
                 contact Turn commits a little late is still ahead of it, and a run that found
                 nothing leaves it where it is. A failed run moves nothing and is retried.
    back-fill    operator requests (`python -m services.contact_puller backfill`), a group of
                 `windows` windows at a time, position persisted after each group; never
                 touches the checkpoint.

The checkpoint only moves forward, never past the database's clock, and only while this
replica holds the lease (shared/checkpoint.py checks all three in its SQL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from services.contact_puller import metrics, plan
from services.contact_puller.reader import ContactReader, MissingPermission
from services.contact_puller.settings import ContactSettings
from shared.checkpoint import Checkpoint
from shared.export_reader import Interrupted
from shared.puller_loop import RECOVERABLE, LoopMetrics, PullerLoop, utc_now
from shared.puller_service import wait_or_stop
from shared.schedule import Backfills
from shared.turn_client import TurnRejected
from shared.window import Window, floor_second, horizon

log = logging.getLogger(__name__)

LOOP_METRICS = LoopMetrics(checkpoint=metrics.CHECKPOINT, lag=metrics.LAG, errors=metrics.ERRORS)


class ContactPuller(PullerLoop):
    rejected_message = "Turn refused the contact export; retrying later"
    retry_message = "run failed; retrying"

    def __init__(
        self,
        settings: ContactSettings,
        reader: ContactReader,
        checkpoint: Checkpoint,
        backfills: Backfills,
        *,
        lease: tuple[str, str] | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(settings, checkpoint, LOOP_METRICS, lease=lease, clock=clock)
        self._s = settings
        self._reader = reader
        self._backfills = backfills

    async def run(self, stop: asyncio.Event) -> None:
        """Pull until `stop` is set; failures are logged and retried with backoff."""
        backoff = self._s.error_backoff
        next_run = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_run:
                    await self.incremental(stop)
                    next_run = time.monotonic() + self._s.interval
                    backoff = self._s.error_backoff
                    continue
                if await self.backfill_step(stop):
                    backoff = self._s.error_backoff
                    continue
                await wait_or_stop(stop, min(next_run - time.monotonic(), self._s.backfill_poll))
            except Interrupted:
                return
            except RECOVERABLE as exc:
                backoff = await self.recover(exc, stop, backoff)

    def rejected_category(self, exc: TurnRejected) -> str:
        return "forbidden" if isinstance(exc, MissingPermission) else "rejected"

    async def incremental(self, stop: asyncio.Event) -> datetime:
        """One run over every window up to the horizon; returns the checkpoint after it."""
        checkpoint = await self.current_checkpoint()
        whole = plan.run_range(
            checkpoint, self._clock(), overlap=self._s.overlap, safety_lag=self._s.safety_lag
        )
        if whole is None:
            return checkpoint
        windows = plan.partition(whole, self._s.windows, self._s.max_window)
        started = time.monotonic()
        progress = await self._reader.read_all(windows, "incremental", stop)
        metrics.RUNS.labels("incremental").inc()
        stored = checkpoint
        if progress.newest is not None:
            target = min(progress.newest, whole.until)
            stored = await self.advance(target)
        self.observe(stored)
        log.info(
            "contacts run finished",
            extra={
                "from": whole.start.isoformat(),
                "until": whole.until.isoformat(),
                "windows": len(windows),
                "contacts": progress.published,
                "checkpoint": stored.isoformat(),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return stored

    async def backfill_step(self, stop: asyncio.Event) -> bool:
        """One group of windows of the oldest pending back-fill; False when there is none."""
        request = await self._backfills.next_pending()
        if request is None:
            return False
        await self._backfills.start(request.id)
        until = min(request.until_ts, horizon(self._clock(), self._s.safety_lag))
        start = floor_second(request.resume_from)
        if start >= until:
            await self._backfills.finish(request.id)
            metrics.RUNS.labels("backfill").inc()
            log.info("back-fill finished", extra={"request": request.id})
            return True
        group = plan.partition(Window(start, until), self._s.windows, self._s.max_window)
        group = group[: self._s.windows]
        try:
            progress = await self._reader.read_all(group, "backfill", stop)
        except TurnRejected as exc:
            await self._backfills.finish(request.id, error=str(exc))
            log.error("back-fill refused by Turn", extra={"request": request.id, "error": str(exc)})
            return True
        await self._backfills.progress(request.id, group[-1].until)
        log.info(
            "back-fill windows read",
            extra={
                "request": request.id,
                "until": group[-1].until.isoformat(),
                "contacts": progress.published,
            },
        )
        return True
