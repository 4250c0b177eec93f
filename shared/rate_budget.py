"""Turn's per-number request budget, held in PostgreSQL and shared by every puller process.

Turn limits requests per number over a window (60 per 60 s by default; raised on request).
Every request any puller sends first takes a *grant* here. A grant is one row in
`rate_budget_grants`, written under a row lock on the number's `rate_budget` row, only while
fewer than `limit` grants exist in the last `window` seconds. Grants are stamped with the
database's clock, in order, so "never more than `limit` in ANY sliding window" holds across
processes and hosts: the count is checked at each grant, and every window's worst case ends
at a grant.

The limit in force is Turn's announced `X-Ratelimit-Limit` once seen (else the configured one)
times a safety margin, which absorbs the jitter between taking a grant and Turn counting the
request. A 429's `Retry-After` (or `Remaining: 0` until `Reset`) blocks every client.

Fair share: each acquire records the client's demand. A client with a `share` (the contact
puller) gets at most that share of the window while another client (the message puller) asked
within `demand_horizon`; when the others are idle it may use the whole budget. Uncapped
clients never wait for a capped one beyond the plain limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

log = logging.getLogger(__name__)

# Grants older than this many windows are deleted; they can never count again.
_PRUNE_AFTER_WINDOWS = 2.0
_EPSILON = 0.001


@dataclass(frozen=True)
class BudgetPolicy:
    limit: int = 60  # requests per window, as configured (Turn's headers override it)
    window: float = 60.0  # seconds
    margin: float = 0.9  # use this share of the limit in force
    bucket: str = "general"
    share: float | None = None  # this client's cap while others have demand; None = no cap
    demand_horizon: float | None = None  # "recent demand" look-back; default one window

    def effective(self, limit: int) -> int:
        return max(1, math.floor(limit * self.margin))

    @property
    def horizon(self) -> float:
        return self.demand_horizon if self.demand_horizon is not None else self.window


@dataclass(frozen=True)
class Grant:
    granted_at: datetime
    waited: float  # seconds spent waiting for it


class RateBudget:
    def __init__(
        self,
        pool: asyncpg.Pool,
        business_number_id: str,
        client: str,
        policy: BudgetPolicy,
        *,
        on_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._pool = pool
        self._number = business_number_id
        self._client = client
        self.policy = policy
        self._on_wait = on_wait
        self._announced: int | None = None
        self._last_prune = 0.0

    @property
    def client(self) -> str:
        return self._client

    async def setup(self) -> None:
        """Create the number's row, or update the configured limit and window."""
        await self._pool.execute(
            """
            INSERT INTO rate_budget (business_number_id, bucket, limit_per_window, window_seconds)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (business_number_id, bucket) DO UPDATE
                SET limit_per_window = EXCLUDED.limit_per_window,
                    window_seconds = EXCLUDED.window_seconds,
                    updated_at = now()
            """,
            self._number,
            self.policy.bucket,
            self.policy.limit,
            self.policy.window,
        )

    async def acquire(self) -> Grant:
        """Wait until a request may be sent, and record it."""
        started = time.monotonic()
        slept = False
        while True:
            wait = await self._try_grant()
            if isinstance(wait, datetime):
                # Only a grant that had to wait counts, not the round trip of every grant.
                waited = time.monotonic() - started if slept else 0.0
                if waited > 0:
                    self._on_wait(waited)
                return Grant(wait, waited)
            slept = True
            # Others may free or take slots meanwhile; look again after at most a window.
            await asyncio.sleep(min(max(wait, _EPSILON), self.policy.window))

    async def _try_grant(self) -> datetime | float:
        """A grant's time, or how many seconds to wait before asking again."""
        policy = self.policy
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                SELECT limit_per_window, announced_limit, window_seconds, blocked_until
                FROM rate_budget WHERE business_number_id = $1 AND bucket = $2
                FOR UPDATE
                """,
                self._number,
                policy.bucket,
            )
            if row is None:
                raise RuntimeError("rate budget row missing: call setup() first")
            # Taken after the lock is ours, so grants are stamped in the order they are made.
            now: datetime = await conn.fetchval("SELECT clock_timestamp()")
            await conn.execute(
                """
                INSERT INTO rate_budget_demand (business_number_id, bucket, client, last_demand_at)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (business_number_id, bucket, client)
                DO UPDATE SET last_demand_at = EXCLUDED.last_demand_at
                """,
                self._number,
                policy.bucket,
                self._client,
                now,
            )
            blocked_until: datetime | None = row["blocked_until"]
            if blocked_until is not None and blocked_until > now:
                return (blocked_until - now).total_seconds()
            window = timedelta(seconds=row["window_seconds"])
            limit = policy.effective(row["announced_limit"] or row["limit_per_window"])
            since = now - window
            wait = await self._over(conn, since, limit, None)
            if wait is None and policy.share is not None and await self._others_busy(conn, now):
                cap = max(1, math.floor(limit * policy.share))
                wait = await self._over(conn, since, cap, self._client)
            if wait is not None:
                return max((wait + window - now).total_seconds(), 0.0) + _EPSILON
            await conn.execute(
                """
                INSERT INTO rate_budget_grants (business_number_id, bucket, client, granted_at)
                VALUES ($1, $2, $3, $4)
                """,
                self._number,
                policy.bucket,
                self._client,
                now,
            )
            if time.monotonic() - self._last_prune > policy.window:
                self._last_prune = time.monotonic()
                await conn.execute(
                    """
                    DELETE FROM rate_budget_grants
                    WHERE business_number_id = $1 AND bucket = $2 AND granted_at < $3
                    """,
                    self._number,
                    policy.bucket,
                    now - window * _PRUNE_AFTER_WINDOWS,
                )
            return now

    async def _over(
        self, conn: asyncpg.Connection, since: datetime, limit: int, client: str | None
    ) -> datetime | None:
        """None when fewer than `limit` grants (of `client`, or all) are newer than `since`;
        else the grant whose leaving the window brings the count below `limit`."""
        count: int = await conn.fetchval(
            """
            SELECT count(*) FROM rate_budget_grants
            WHERE business_number_id = $1 AND bucket = $2 AND granted_at > $3
              AND ($4::text IS NULL OR client = $4)
            """,
            self._number,
            self.policy.bucket,
            since,
            client,
        )
        if count < limit:
            return None
        oldest: datetime = await conn.fetchval(
            """
            SELECT granted_at FROM rate_budget_grants
            WHERE business_number_id = $1 AND bucket = $2 AND granted_at > $3
              AND ($4::text IS NULL OR client = $4)
            ORDER BY granted_at OFFSET $5 LIMIT 1
            """,
            self._number,
            self.policy.bucket,
            since,
            client,
            count - limit,
        )
        return oldest

    async def _others_busy(self, conn: asyncpg.Connection, now: datetime) -> bool:
        busy: bool = await conn.fetchval(
            """
            SELECT EXISTS (
                SELECT 1 FROM rate_budget_demand
                WHERE business_number_id = $1 AND bucket = $2 AND client <> $3
                  AND last_demand_at > $4
            )
            """,
            self._number,
            self.policy.bucket,
            self._client,
            now - timedelta(seconds=self.policy.horizon),
        )
        return busy

    async def observe(self, limit: int | None, remaining: int | None, reset: float | None) -> None:
        """Feed back Turn's X-Ratelimit-* headers from any answer."""
        if limit is not None and limit > 0 and limit != self._announced:
            self._announced = limit
            changed = await self._pool.execute(
                """
                UPDATE rate_budget SET announced_limit = $3, updated_at = now()
                WHERE business_number_id = $1 AND bucket = $2
                  AND announced_limit IS DISTINCT FROM $3
                """,
                self._number,
                self.policy.bucket,
                limit,
            )
            if changed != "UPDATE 0":
                log.warning(
                    "Turn announced a rate limit; adopting it",
                    extra={"limit": limit, "effective": self.policy.effective(limit)},
                )
        if remaining == 0 and reset is not None:
            # Turn says the window is spent (other callers may share it): wait for its reset,
            # but never longer than a window, whatever clock skew says.
            try:
                until = datetime.fromtimestamp(reset, UTC)
            except (ValueError, OverflowError, OSError):
                # A garbled reset (inf, nan, past the platform's range) counts as absent.
                return
            await self._block_until(until)

    async def block(self, seconds: float) -> None:
        """Obey a 429's Retry-After for every client of this number."""
        await self._pool.execute(
            """
            UPDATE rate_budget
            SET blocked_until = GREATEST(blocked_until, clock_timestamp()
                                         + make_interval(secs => $3)),
                updated_at = now()
            WHERE business_number_id = $1 AND bucket = $2
            """,
            self._number,
            self.policy.bucket,
            max(seconds, 0.0),
        )

    async def _block_until(self, until: datetime) -> None:
        await self._pool.execute(
            """
            UPDATE rate_budget
            SET blocked_until = GREATEST(blocked_until, LEAST($3::timestamptz,
                    clock_timestamp() + make_interval(secs => window_seconds))),
                updated_at = now()
            WHERE business_number_id = $1 AND bucket = $2
            """,
            self._number,
            self.policy.bucket,
            until,
        )

    async def limit_in_force(self) -> int:
        row = await self._pool.fetchrow(
            """
            SELECT limit_per_window, announced_limit FROM rate_budget
            WHERE business_number_id = $1 AND bucket = $2
            """,
            self._number,
            self.policy.bucket,
        )
        if row is None:
            return self.policy.effective(self.policy.limit)
        return self.policy.effective(row["announced_limit"] or row["limit_per_window"])
