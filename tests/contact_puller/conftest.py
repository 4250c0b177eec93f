"""Fixtures for the contact puller: a contact-heavy simulated Turn (tests/shared/
simulated_export.py), the puller in-process or as a process, and what landed, read from the
queue or from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import datetime

import asyncpg

from services.contact_puller import app
from services.contact_puller.settings import STREAM, ContactSettings
from shared.broker import Topology
from shared.settings import Env
from tests.shared.simulated_export import (
    Turn,
    drain_ids,
    service_running,
    spec_before_now,
    stream_checkpoint,
    turn_env,
)
from turnsim.dataset import DatasetSpec


def contact_spec(
    contacts: int, *, messages: int = 200, days: float = 2.0, seed: int = 31
) -> DatasetSpec:
    """Contacts updated over the `days` before a moment a little before now."""
    return spec_before_now(messages=messages, contacts=contacts, days=days, seed=seed)


def contact_env(database_url: str, amqp_url: str, turn: Turn, **overrides: str) -> dict[str, str]:
    """Fast settings: small lags, frequent runs, no stagger unless a test asks for one."""
    env = {
        **turn_env(database_url, amqp_url, turn),
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
    }
    env.update(overrides)
    return env


def settings_from(env: dict[str, str]) -> ContactSettings:
    return ContactSettings.from_env(Env(env))


def contact_puller_running(
    env: dict[str, str],
) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """The whole service in this process (probes on a free port), stopped like SIGTERM."""
    return service_running(app.run, settings_from(env))


async def contact_checkpoint(database_url: str) -> datetime | None:
    return await stream_checkpoint(database_url, STREAM)


async def drain_contacts(amqp_url: str) -> Counter[str]:
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
