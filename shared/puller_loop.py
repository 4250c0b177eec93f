"""What a puller's loop does alike in both pullers: where the first pull starts, the
checkpoint read (created at the start point when there is none) and advanced under the lease
fence, the checkpoint and lag gauges, and how a failed step is counted and backed off.

Each puller subclasses `PullerLoop` and writes its own `run`: what a step is (an incremental
window, a run of parallel windows, a back-fill, a sweep) and when the next one is due differ;
`recover` is what each calls when a step fails.

Failures: a refusal from Turn (TurnRejected: 401, 403, 404) waits at least
REJECTED_BACKOFF and keeps the backoff where it is; a retryable one (RetryableError, the
database away) waits the backoff, which then doubles up to MAX_BACKOFF. Anything else is a bug
and ends the loop (the service exits non-zero and the orchestrator restarts it).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge

from shared.checkpoint import Checkpoint
from shared.database import CONNECTION_ERRORS
from shared.errors import RetryableError
from shared.puller_service import wait_or_stop
from shared.puller_settings import PullerSettingsBase
from shared.turn_client import TurnRejected

# Failures after which the same step may succeed later.
RETRYABLE: tuple[type[BaseException], ...] = (RetryableError, *CONNECTION_ERRORS)
RECOVERABLE: tuple[type[BaseException], ...] = (TurnRejected, *RETRYABLE)
REJECTED_BACKOFF = 60.0
MAX_BACKOFF = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LoopMetrics:
    """The service's own: `errors` labelled by category."""

    checkpoint: Gauge
    lag: Gauge
    errors: Counter


class PullerLoop:
    # Log lines of a failed step; a subclass words them for what its step is.
    rejected_message = "Turn refused a request; retrying later"
    retry_message = "pull failed; retrying"

    def __init__(
        self,
        settings: PullerSettingsBase,
        checkpoint: Checkpoint,
        metrics: LoopMetrics,
        *,
        lease: tuple[str, str] | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._checkpoint = checkpoint
        self._metrics = metrics
        self._lease = lease
        self._clock = clock
        self._start_from = settings.start_from
        self._start_lookback = settings.start_lookback
        self._error_backoff = settings.error_backoff
        # Log under the subclass's module, as before the loop was shared.
        self._log = logging.getLogger(type(self).__module__)

    def initial_checkpoint(self) -> datetime:
        if self._start_from is not None:
            return self._start_from
        return self._clock() - timedelta(seconds=self._start_lookback)

    async def run(self, stop: asyncio.Event) -> None:
        """Pull until `stop` is set: the subclass's own."""
        raise NotImplementedError

    async def pull(self, stop: asyncio.Event) -> None:
        """`run`, for as long as this replica holds the lease (the LeaseKeeper's work).

        Once it ends (stopped and released, cancelled on a lost lease, failed) this replica
        stops reporting a checkpoint and lag: its last figures would otherwise stay exported
        beside the new holder's, and max(lag) would alert on a standby's stale value.
        """
        try:
            await self.run(stop)
        finally:
            self.forget()

    def observe(self, checkpoint: datetime) -> None:
        self._metrics.checkpoint.set(checkpoint.timestamp())
        self._metrics.lag.set(max(0.0, (self._clock() - checkpoint).total_seconds()))

    def forget(self) -> None:
        """No checkpoint and lag to report (NaN: PromQL's max() takes any other value first)."""
        self._metrics.checkpoint.set(math.nan)
        self._metrics.lag.set(math.nan)

    async def start_checkpoint(self) -> datetime:
        """The checkpoint, created at the start point when there is none; observed."""
        checkpoint = await self._checkpoint.load_or_start(self.initial_checkpoint())
        self.observe(checkpoint)
        return checkpoint

    async def current_checkpoint(self) -> datetime:
        """Like `start_checkpoint`, without a write when the checkpoint exists."""
        checkpoint = await self._checkpoint.load()
        if checkpoint is None:
            checkpoint = await self._checkpoint.load_or_start(self.initial_checkpoint())
        self.observe(checkpoint)
        return checkpoint

    async def advance(self, to: datetime) -> datetime:
        """Move the checkpoint to `to` under the lease fence (LeaseNotHeld if refused); the
        checkpoint now stored."""
        return await self._checkpoint.advance_fenced(to, lease=self._lease)

    def rejected_category(self, exc: TurnRejected) -> str:
        return "rejected"

    async def recover(self, exc: BaseException, stop: asyncio.Event, backoff: float) -> float:
        """Count, log and wait out a failed step (one of RECOVERABLE); the next backoff."""
        if isinstance(exc, TurnRejected):
            self._metrics.errors.labels(self.rejected_category(exc)).inc()
            self._log.error(self.rejected_message, extra={"error": str(exc)})
            await wait_or_stop(stop, max(backoff, REJECTED_BACKOFF))
            return backoff
        self._metrics.errors.labels(type(exc).__name__).inc()
        self._log.warning(self.retry_message, extra={"error": repr(exc), "delay": backoff})
        await wait_or_stop(stop, backoff)
        return min(backoff * 2, MAX_BACKOFF)
