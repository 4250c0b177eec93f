"""Fixtures for the contact puller: a contact-heavy simulated Turn, the puller in-process or
as a process, and what landed, read from the queue or from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg

from services.contact_puller import app
from services.contact_puller.settings import ContactSettings
from shared.broker import Topology
from shared.settings import Env
from tests.conftest import BUSINESS_NUMBER
from tests.message_puller.conftest import Turn, drain_ids
from tests.servers import free_port
from turnsim.dataset import DatasetSpec


def contact_spec(contacts: int, *, messages: int = 200, days: float = 2.0, seed: int = 31):
    """Contacts updated over the `days` before a moment a little before now."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return DatasetSpec(
        seed=seed,
        messages=messages,
        contacts=contacts,
        start=end - timedelta(days=days),
        end=end,
        business_number=BUSINESS_NUMBER,
    )


def contact_env(database_url: str, amqp_url: str, turn: Turn, **overrides: str) -> dict[str, str]:
    """Fast settings: small lags, frequent runs, no stagger unless a test asks for one."""
    env = {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
        "TURNIO_BASE_URL": turn.url,
        "TURNIO_BEARER_TOKEN": turn.sim.config.token,
        "TURNIO_RATE_LIMIT": str(turn.sim.config.rate_limit),
        "TURNIO_RATE_WINDOW": str(turn.sim.config.rate_window),
        "CONTACTS_START_FROM": turn.spec.start.isoformat(),
        "CONTACTS_SAFETY_LAG": "2",
        "CONTACTS_OVERLAP": "60",
        "CONTACTS_INTERVAL": "0.5",
        "CONTACTS_WINDOWS": "4",
        "CONTACTS_CONCURRENCY": "2",
        "CONTACTS_CURSOR_STAGGER": "0",
        "CONTACTS_BACKFILL_POLL": "0.2",
        "CONTACTS_ERROR_BACKOFF": "0.1",
        "CONTACTS_FORBIDDEN_BACKOFF": "0.05",
        "LEASE_TTL": "2",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }
    env.update(overrides)
    return env


def settings_from(env: dict[str, str]) -> ContactSettings:
    return ContactSettings.from_env(Env(env))


@contextlib.asynccontextmanager
async def contact_puller_running(env: dict[str, str]) -> AsyncIterator[asyncio.Task[None]]:
    """The whole service in this process (probes on a free port), stopped like SIGTERM."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(settings_from(env), stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def contact_checkpoint(database_url: str) -> datetime | None:
    conn = await asyncpg.connect(database_url)
    try:
        value: datetime | None = await conn.fetchval(
            "SELECT checkpoint FROM ingestion_state WHERE stream = 'contacts'"
        )
        return value
    finally:
        await conn.close()


async def drain_contacts(amqp_url: str):
    """Contact id -> how often it was published (everything queued now, consumed)."""
    return await drain_ids(amqp_url, Topology().export_contact_queue)


def newest_version(turn: Turn) -> datetime:
    return max(parse_iso(v) for v in turn.sim.dataset.contact_versions().values())


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def stored_versions(db: asyncpg.Connection) -> dict[str, datetime]:
    rows = await db.fetch("SELECT external_id, turn_updated_at FROM contacts")
    return {r["external_id"]: r["turn_updated_at"] for r in rows}


def expected_versions(turn: Turn) -> dict[str, datetime]:
    return {k: parse_iso(v) for k, v in turn.sim.dataset.contact_versions().items()}
