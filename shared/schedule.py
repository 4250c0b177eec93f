"""Persisted work beside the incremental loop: sweeps and operator back-fills.

Sweeps (`ingestion_schedule`): each run records when it started and finished, and how far it
got (`position`), so a restart resumes an unfinished sweep and never repeats a finished one.
Back-fills (`backfill_requests`): an operator records a range (`python -m services.<puller>
backfill --from ... --until ...`); the running singleton executes it window by window, also
keeping `position`, and marks it finished (with an error if Turn refused it).

Neither ever touches the checkpoint: they re-read history, the incremental loop moves forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


@dataclass(frozen=True)
class SweepState:
    last_started_at: datetime | None
    last_finished_at: datetime | None
    position: datetime | None

    @property
    def unfinished(self) -> bool:
        return self.last_started_at is not None and (
            self.last_finished_at is None or self.last_finished_at < self.last_started_at
        )

    def due(self, every: timedelta, now: datetime) -> bool:
        """An interrupted run is due at once; otherwise one `every` after the last start."""
        if self.unfinished:
            return True
        return self.last_started_at is None or now >= self.last_started_at + every


@dataclass(frozen=True)
class Sweeps:
    pool: asyncpg.Pool
    business_number_id: str
    stream: str

    async def ensure(self, sweep: str) -> None:
        """On the very first start, count the sweep as just run: the initial back-fill from
        the start point reads that history anyway."""
        await self.pool.execute(
            """
            INSERT INTO ingestion_schedule
                (business_number_id, stream, sweep, last_started_at, last_finished_at)
            VALUES ($1, $2, $3, now(), now())
            ON CONFLICT DO NOTHING
            """,
            self.business_number_id,
            self.stream,
            sweep,
        )

    async def state(self, sweep: str) -> SweepState:
        row = await self.pool.fetchrow(
            """
            SELECT last_started_at, last_finished_at, position FROM ingestion_schedule
            WHERE business_number_id = $1 AND stream = $2 AND sweep = $3
            """,
            self.business_number_id,
            self.stream,
            sweep,
        )
        if row is None:
            return SweepState(None, None, None)
        return SweepState(row["last_started_at"], row["last_finished_at"], row["position"])

    async def start(self, sweep: str, position: datetime) -> None:
        await self.pool.execute(
            """
            INSERT INTO ingestion_schedule
                (business_number_id, stream, sweep, last_started_at, position)
            VALUES ($1, $2, $3, now(), $4)
            ON CONFLICT (business_number_id, stream, sweep) DO UPDATE
                SET last_started_at = now(), position = EXCLUDED.position
            """,
            self.business_number_id,
            self.stream,
            sweep,
            position,
        )

    async def progress(self, sweep: str, position: datetime) -> None:
        await self.pool.execute(
            """
            UPDATE ingestion_schedule SET position = GREATEST(position, $4)
            WHERE business_number_id = $1 AND stream = $2 AND sweep = $3
            """,
            self.business_number_id,
            self.stream,
            sweep,
            position,
        )

    async def finish(self, sweep: str) -> None:
        await self.pool.execute(
            """
            UPDATE ingestion_schedule SET last_finished_at = now(), position = NULL
            WHERE business_number_id = $1 AND stream = $2 AND sweep = $3
            """,
            self.business_number_id,
            self.stream,
            sweep,
        )


@dataclass(frozen=True)
class Backfill:
    id: int
    from_ts: datetime
    until_ts: datetime
    position: datetime | None

    @property
    def resume_from(self) -> datetime:
        return self.position or self.from_ts


@dataclass(frozen=True)
class Backfills:
    pool: asyncpg.Pool
    business_number_id: str
    stream: str

    async def request(self, from_ts: datetime, until_ts: datetime) -> int:
        if until_ts <= from_ts:
            raise ValueError("--until must be after --from")
        request_id: int = await self.pool.fetchval(
            """
            INSERT INTO backfill_requests (business_number_id, stream, from_ts, until_ts)
            VALUES ($1, $2, $3, $4) RETURNING id
            """,
            self.business_number_id,
            self.stream,
            from_ts,
            until_ts,
        )
        return request_id

    async def next_pending(self) -> Backfill | None:
        row = await self.pool.fetchrow(
            """
            SELECT id, from_ts, until_ts, position FROM backfill_requests
            WHERE business_number_id = $1 AND stream = $2 AND finished_at IS NULL
            ORDER BY id LIMIT 1
            """,
            self.business_number_id,
            self.stream,
        )
        if row is None:
            return None
        return Backfill(row["id"], row["from_ts"], row["until_ts"], row["position"])

    async def start(self, request_id: int) -> None:
        await self.pool.execute(
            "UPDATE backfill_requests SET started_at = COALESCE(started_at, now()) WHERE id = $1",
            request_id,
        )

    async def progress(self, request_id: int, position: datetime) -> None:
        await self.pool.execute(
            """
            UPDATE backfill_requests SET position = GREATEST(position, $2)
            WHERE id = $1 AND finished_at IS NULL
            """,
            request_id,
            position,
        )

    async def finish(self, request_id: int, error: str | None = None) -> None:
        await self.pool.execute(
            "UPDATE backfill_requests SET finished_at = now(), error = $2 WHERE id = $1",
            request_id,
            error,
        )
