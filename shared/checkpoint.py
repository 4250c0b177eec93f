"""The forward-only checkpoint per (business number, stream) in `ingestion_state`.

The SQL itself refuses to move a checkpoint backwards (GREATEST and a WHERE) or past the
database's clock (LEAST with now()), so no caller bug, slow replica or late sweep can undo
progress. An advance may be fenced by a lease: it then only lands while that lease is held,
so a holder that lost its lease mid-window cannot write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.errors import RetryableError


class LeaseNotHeld(RetryableError):
    """The checkpoint fence refused the write: another replica holds the lease now."""


@dataclass(frozen=True)
class Checkpoint:
    pool: asyncpg.Pool
    business_number_id: str
    stream: str

    async def load(self) -> datetime | None:
        value: datetime | None = await self.pool.fetchval(
            "SELECT checkpoint FROM ingestion_state WHERE business_number_id = $1 AND stream = $2",
            self.business_number_id,
            self.stream,
        )
        return value

    async def load_or_start(self, start: datetime) -> datetime:
        """The checkpoint, creating it at `start` (never in the future) when there is none."""
        value: datetime = await self.pool.fetchval(
            """
            WITH created AS (
                INSERT INTO ingestion_state (business_number_id, stream, checkpoint)
                VALUES ($1, $2, LEAST($3::timestamptz, now()))
                ON CONFLICT (business_number_id, stream) DO NOTHING
                RETURNING checkpoint
            )
            SELECT checkpoint FROM created
            UNION ALL
            SELECT checkpoint FROM ingestion_state
            WHERE business_number_id = $1 AND stream = $2
            LIMIT 1
            """,
            self.business_number_id,
            self.stream,
            start,
        )
        return value

    async def advance(
        self, to: datetime, *, lease: tuple[str, str] | None = None
    ) -> datetime | None:
        """Move forward to `to` (clamped to now); a no-op when that is not forward.

        `lease` = (name, holder): only while that lease is held. Returns the checkpoint now
        stored, or None when nothing was written.
        """
        lease_name, holder = lease if lease is not None else (None, None)
        value: datetime | None = await self.pool.fetchval(
            """
            INSERT INTO ingestion_state AS s (business_number_id, stream, checkpoint)
            SELECT $1, $2, LEAST($3::timestamptz, now())
            WHERE $4::text IS NULL OR EXISTS (
                SELECT 1 FROM leases
                WHERE name = $4 AND holder = $5 AND expires_at > now()
            )
            ON CONFLICT (business_number_id, stream) DO UPDATE
                SET checkpoint = GREATEST(s.checkpoint, EXCLUDED.checkpoint),
                    updated_at = now()
                WHERE EXCLUDED.checkpoint > s.checkpoint
            RETURNING checkpoint
            """,
            self.business_number_id,
            self.stream,
            to,
            lease_name,
            holder,
        )
        return value

    async def advance_fenced(self, to: datetime, *, lease: tuple[str, str] | None) -> datetime:
        """`advance`, and the checkpoint now stored; LeaseNotHeld when the fence refused the
        write (nothing written while the stored checkpoint is still behind `to`)."""
        stored = await self.advance(to, lease=lease)
        if stored is None:
            current = await self.load()
            if current is None or current < to:
                raise LeaseNotHeld("checkpoint refused: the lease is not held")
            stored = current
        return stored
