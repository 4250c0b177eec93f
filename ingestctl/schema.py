"""`schema wait`: block until every migration this image ships is applied.

The writer's and pullers' init containers run it, so a pod never starts on a schema older
than its code while the migrate Job is still working. It only reads yoyo's bookkeeping table,
so the services' database role needs no DDL rights.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
from yoyo import read_migrations

from shared.database import CONNECTION_ERRORS
from shared.migrate import MIGRATIONS


def shipped(directory: Path = MIGRATIONS) -> set[str]:
    return {m.id for m in read_migrations(str(directory))}


async def pending(database_url: str, directory: Path = MIGRATIONS) -> list[str]:
    """Migrations shipped but not applied; raises what asyncpg raises when PG is away."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        try:
            rows = await conn.fetch("SELECT migration_id FROM _yoyo_migration")
        except asyncpg.UndefinedTableError:
            rows = []
    finally:
        await conn.close()
    return sorted(shipped(directory) - {r["migration_id"] for r in rows})


async def wait(
    database_url: str,
    give_up_after: float,
    *,
    interval: float = 2.0,
    say: Callable[[str], None] = print,
) -> list[str]:
    """Poll until nothing is pending or `give_up_after` seconds pass; return what is left."""
    deadline = time.monotonic() + give_up_after
    last = ""
    while True:
        try:
            missing = await pending(database_url)
            status = f"waiting for migrations: {', '.join(missing)}" if missing else ""
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            missing = ["(database unreachable)"]
            status = f"waiting for PostgreSQL: {str(exc) or type(exc).__name__}"
        if not missing:
            return []
        if status != last:
            say(status)
            last = status
        if time.monotonic() >= deadline:
            return missing
        await asyncio.sleep(interval)
