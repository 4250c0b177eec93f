"""A fresh database and vhost for a benchmark, on the servers `make services` started."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg2

from shared.migrate import apply as apply_migrations
from tests.servers import RabbitEndpoint, management_url_for, with_database


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set: run through `make bench`")
    return url


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated database that is dropped afterwards; yields its URL."""
    admin = _admin_url()
    name = f"bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    try:
        apply_migrations(url)
        yield url
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@contextlib.contextmanager
def fresh_vhost() -> Iterator[str]:
    """A vhost that is deleted afterwards; yields its AMQP URL."""
    amqp = os.environ.get("AMQP_URL")
    if not amqp:
        raise SystemExit("AMQP_URL is not set: run through `make bench`")
    endpoint = RabbitEndpoint(amqp, management_url_for(amqp))
    name = f"bench_{uuid.uuid4().hex[:10]}"
    url = endpoint.create_vhost(name)
    try:
        yield url
    finally:
        endpoint.delete_vhost(name)
