"""What the pullers keep in PostgreSQL, read for `status`, and back-fill requests written.

Connection failures become DatabaseUnavailable with a sentence an operator can act on; the
CLI prints it instead of a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import asyncpg

from shared.database import CONNECTION_ERRORS, create_pool
from shared.errors import DatabaseUnavailable, IngestError
from shared.schedule import Backfills

STREAMS = ("messages", "contacts")


class SchemaMismatch(IngestError):
    """The database answers, but not with the tables and columns this version expects."""


@dataclass(frozen=True)
class StreamState:
    stream: str
    checkpoint: datetime | None
    lag_seconds: float | None
    lease_holder: str | None
    lease_expires_at: datetime | None
    lease_expired: bool


@dataclass(frozen=True)
class SweepRun:
    stream: str
    sweep: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    position: datetime | None


@dataclass(frozen=True)
class PendingBackfill:
    id: int
    stream: str
    from_ts: datetime
    until_ts: datetime
    requested_at: datetime
    started_at: datetime | None
    position: datetime | None


@dataclass(frozen=True)
class DatabaseReport:
    now: datetime
    streams: list[StreamState]
    sweeps: list[SweepRun]
    backfills: list[PendingBackfill]


def where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Pool]:
    try:
        pool = await create_pool(url, min_size=1, max_size=1)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(
            f"PostgreSQL at {where(url)} is unreachable: {_why(exc)}"
        ) from exc
    try:
        yield pool
    except (*CONNECTION_ERRORS, asyncpg.PostgresConnectionError) as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {where(url)} failed: {_why(exc)}") from exc
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
        raise SchemaMismatch(
            f"PostgreSQL at {where(url)}: {_why(exc)}; is the schema current? "
            "(python -m shared.migrate, or the turnio-migrate Job)"
        ) from exc
    finally:
        await pool.close()


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def read(pool: asyncpg.Pool, number: str) -> DatabaseReport:
    now: datetime = await pool.fetchval("SELECT now()")
    checkpoints = {
        r["stream"]: r["checkpoint"]
        for r in await pool.fetch(
            "SELECT stream, checkpoint FROM ingestion_state WHERE business_number_id = $1",
            number,
        )
    }
    prefix = f"{number}:"
    leases = {
        r["name"][len(prefix) :]: r
        for r in await pool.fetch(
            "SELECT name, holder, expires_at FROM leases WHERE starts_with(name, $1)", prefix
        )
    }
    streams = []
    for stream in sorted(set(STREAMS) | set(checkpoints) | set(leases)):
        checkpoint = checkpoints.get(stream)
        lease = leases.get(stream)
        expires = lease["expires_at"] if lease else None
        streams.append(
            StreamState(
                stream=stream,
                checkpoint=checkpoint,
                lag_seconds=(now - checkpoint).total_seconds() if checkpoint else None,
                lease_holder=lease["holder"] if lease else None,
                lease_expires_at=expires,
                lease_expired=expires is not None and expires < now,
            )
        )
    sweeps = [
        SweepRun(
            r["stream"], r["sweep"], r["last_started_at"], r["last_finished_at"], r["position"]
        )
        for r in await pool.fetch(
            """
            SELECT stream, sweep, last_started_at, last_finished_at, position
            FROM ingestion_schedule WHERE business_number_id = $1 ORDER BY stream, sweep
            """,
            number,
        )
    ]
    backfills = [
        PendingBackfill(
            r["id"],
            r["stream"],
            r["from_ts"],
            r["until_ts"],
            r["requested_at"],
            r["started_at"],
            r["position"],
        )
        for r in await pool.fetch(
            """
            SELECT id, stream, from_ts, until_ts, requested_at, started_at, position
            FROM backfill_requests
            WHERE business_number_id = $1 AND finished_at IS NULL ORDER BY id
            """,
            number,
        )
    ]
    return DatabaseReport(now, streams, sweeps, backfills)


async def request_backfill(
    pool: asyncpg.Pool, number: str, stream: str, from_ts: datetime, until_ts: datetime
) -> int:
    return await Backfills(pool, number, stream).request(from_ts, until_ts)
