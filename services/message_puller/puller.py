"""The singleton's loop: incremental windows first, then back-fills and sweeps, one window at
a time, so a long back-fill never holds the incremental pull back by more than one window.

    incremental  [checkpoint - overlap, now - safety_lag], every `interval`; while it lags it
                 goes on at once (no sleep) until caught up; moves the checkpoint forward
    back-fill    operator requests, window by window, position persisted
    sweeps       recovery (last 3 days, daily) and audit (last 30 days, weekly), up to the
                 checkpoint, position persisted; never move the checkpoint

The checkpoint moves to a window's end only after every item of the window is confirmed by the
broker, and only while this replica holds the lease (the SQL checks it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.message_puller import metrics, windows
from services.message_puller.settings import PullerSettings
from shared.checkpoint import Checkpoint
from shared.export_reader import ExportReader, Interrupted
from shared.puller_loop import RECOVERABLE, LoopMetrics, PullerLoop, utc_now
from shared.puller_service import wait_or_stop
from shared.schedule import Backfills, Sweeps
from shared.turn_client import TurnRejected
from shared.window import horizon

log = logging.getLogger(__name__)

LOOP_METRICS = LoopMetrics(checkpoint=metrics.CHECKPOINT, lag=metrics.LAG, errors=metrics.ERRORS)
RECOVERY = "recovery"
AUDIT = "audit"


@dataclass(frozen=True)
class SweepPlan:
    name: str
    every: timedelta
    span: float


class MessagePuller(PullerLoop):
    def __init__(
        self,
        settings: PullerSettings,
        reader: ExportReader,
        checkpoint: Checkpoint,
        sweeps: Sweeps,
        backfills: Backfills,
        *,
        lease: tuple[str, str] | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(settings, checkpoint, LOOP_METRICS, lease=lease, clock=clock)
        self._s = settings
        self._reader = reader
        self._sweeps = sweeps
        self._backfills = backfills
        self._plans = (
            SweepPlan(RECOVERY, timedelta(seconds=settings.recovery_every), settings.recovery_span),
            SweepPlan(AUDIT, timedelta(seconds=settings.audit_every), settings.audit_span),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Pull until `stop` is set; failures are logged and retried with backoff."""
        backoff = self._s.error_backoff
        next_incremental = 0.0
        started = False
        while not stop.is_set():
            try:
                if not started:
                    await self._start()
                    started = True
                if time.monotonic() >= next_incremental:
                    if not await self.incremental(stop):
                        continue  # lagging: catch up without sleeping
                    next_incremental = time.monotonic() + self._s.interval
                if await self.job_step(stop):
                    backoff = self._s.error_backoff
                    continue
                backoff = self._s.error_backoff
                await wait_or_stop(stop, next_incremental - time.monotonic())
            except Interrupted:
                return
            except RECOVERABLE as exc:
                backoff = await self.recover(exc, stop, backoff)

    async def _start(self) -> None:
        checkpoint = await self.start_checkpoint()
        for plan in self._plans:
            await self._sweeps.ensure(plan.name)
        log.info("pulling", extra={"checkpoint": checkpoint.isoformat()})

    async def incremental(self, stop: asyncio.Event) -> bool:
        """Read the next incremental window; True when that caught up with the horizon."""
        checkpoint = await self.current_checkpoint()
        window, caught_up = windows.incremental(
            checkpoint,
            self._clock(),
            overlap=self._s.overlap,
            safety_lag=self._s.safety_lag,
            max_window=self._s.max_window,
        )
        if window is None:
            return True
        progress = await self._reader.read(window, "incremental", stop)
        stored = await self.advance(window.until)
        self.observe(stored)
        log.info(
            "window pulled",
            extra={
                "from": window.start.isoformat(),
                "until": window.until.isoformat(),
                "items": progress.published,
                "caught_up": caught_up,
            },
        )
        return caught_up

    async def job_step(self, stop: asyncio.Event) -> bool:
        """One window of a back-fill or a due sweep; False when there is nothing to do."""
        if await self._backfill_step(stop):
            return True
        for plan in self._plans:
            if await self._sweep_step(plan, stop):
                return True
        return False

    async def _backfill_step(self, stop: asyncio.Event) -> bool:
        request = await self._backfills.next_pending()
        if request is None:
            return False
        await self._backfills.start(request.id)
        until = min(request.until_ts, horizon(self._clock(), self._s.safety_lag))
        chunk = windows.next_chunk(request.resume_from, until, self._s.max_window)
        if chunk is None:
            await self._backfills.finish(request.id)
            metrics.SWEEP_RUNS.labels("backfill").inc()
            log.info("back-fill finished", extra={"request": request.id})
            return True
        try:
            await self._reader.read(chunk, "backfill", stop)
        except TurnRejected as exc:
            await self._backfills.finish(request.id, error=str(exc))
            log.error("back-fill refused by Turn", extra={"request": request.id, "error": str(exc)})
            return True
        await self._backfills.progress(request.id, chunk.until)
        return True

    async def _sweep_step(self, plan: SweepPlan, stop: asyncio.Event) -> bool:
        now = self._clock()
        state = await self._sweeps.state(plan.name)
        if not state.due(plan.every, now):
            return False
        checkpoint = await self._checkpoint.load() or now
        start, until = windows.sweep_range(
            now, checkpoint, span=plan.span, safety_lag=self._s.safety_lag
        )
        if state.unfinished and state.position is not None:
            position = state.position
        else:
            await self._sweeps.start(plan.name, start)
            log.info("sweep started", extra={"sweep": plan.name, "from": start.isoformat()})
            position = start
        chunk = windows.next_chunk(position, until, self._s.max_window)
        if chunk is None:
            await self._sweeps.finish(plan.name)
            metrics.SWEEP_RUNS.labels(plan.name).inc()
            log.info("sweep finished", extra={"sweep": plan.name})
            return True
        await self._reader.read(chunk, plan.name, stop)
        await self._sweeps.progress(plan.name, chunk.until)
        return True
