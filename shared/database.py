"""PostgreSQL connection pools, and which asyncpg failures mean "the database is away"."""

from __future__ import annotations

import asyncio

import asyncpg

# Errors after which the same statement may succeed once PostgreSQL is back.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        # Rows are written as JSON text; jsonb decoding is only needed by readers.
        server_settings={"application_name": "turnio-ingest"},
    )
    assert pool is not None
    return pool


async def database_answers(url: str, within: float) -> bool:
    """A readiness ping on a connection of its own; False for any way PostgreSQL fails it.

    Not through the service's pool: a ping timing out inside pool.acquire() can strand pool
    slots, and the pool then hangs the next piece of work instead of failing it.
    """
    try:
        conn = await asyncpg.connect(url, timeout=within)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError):
        return False
    try:
        await conn.fetchval("SELECT 1", timeout=within)
        return True
    except (*CONNECTION_ERRORS, asyncpg.PostgresError):
        return False
    finally:
        conn.terminate()
