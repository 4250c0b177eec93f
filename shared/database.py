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
