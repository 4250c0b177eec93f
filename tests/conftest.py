"""Fixtures: a fresh database and a fresh RabbitMQ vhost per test, on real servers.

Each pytest process migrates one template database once; each test gets a copy of it
(CREATE DATABASE ... TEMPLATE, ~60 ms) and its own vhost, so tests never see each other's
rows or queues and may run side by side.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import psycopg2
import pytest

from shared.migrate import apply as apply_migrations
from tests.servers import RabbitEndpoint, postgres_server, rabbit_endpoint, with_database
from tests.waiting import eventually_sync

EXAMPLES = Path(__file__).parent / "fixtures" / "turn"
WEBHOOK_SECRET = "test-webhook-secret"
BUSINESS_NUMBER = "27600000000"


def _admin(url: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        eventually_sync(lambda: _can_connect(url), timeout=60, interval=0.2, what="PostgreSQL")
        yield url


def _can_connect(url: str) -> bool:
    try:
        _admin(url).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    name = f"turnio_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    # Not `with conn:`: psycopg2 >= 2.9 opens a transaction there even in autocommit mode,
    # and CREATE DATABASE refuses to run inside one.
    conn = _admin(pg_admin_url)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    apply_migrations(with_database(pg_admin_url, name))
    yield name
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def database_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = _admin(pg_admin_url)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield with_database(pg_admin_url, name)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection for assertions about what landed."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitEndpoint]:
    with rabbit_endpoint() as endpoint:
        yield endpoint


@dataclass
class Vhost:
    name: str
    url: str
    endpoint: RabbitEndpoint

    async def depth(self, queue: str) -> int:
        """Messages ready in `queue`, asked of the broker itself (passive declare).

        The management API's counts lag by its statistics interval (5 s); this does not.
        """
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await connection.close()


@pytest.fixture
def vhost(rabbit: RabbitEndpoint) -> Iterator[Vhost]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = rabbit.create_vhost(name)
    yield Vhost(name, url, rabbit)
    rabbit.delete_vhost(name)


@pytest.fixture
def amqp_url(vhost: Vhost) -> str:
    return vhost.url


@pytest.fixture
def service_env(database_url: str, amqp_url: str) -> dict[str, str]:
    """The environment a service would get in a pod, pointed at this test's servers."""
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
        "TURNIO_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LOG_LEVEL": "INFO",
    }
