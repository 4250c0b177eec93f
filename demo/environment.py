"""The demo's own database and vhost, made fresh each run and kept afterwards for a look."""

from __future__ import annotations

import os
from types import TracebackType
from urllib.parse import urlsplit

import psycopg2

from tests.servers import RabbitEndpoint, management_url_for, with_database

DATABASE = "turnio_demo"
VHOST = "turnio-demo"


class DemoEnvironment:
    def __init__(self) -> None:
        self.admin_url = os.environ["DATABASE_URL"]
        amqp = os.environ["AMQP_URL"]
        self.rabbit = RabbitEndpoint(amqp, management_url_for(amqp))
        self.database_url = with_database(self.admin_url, DATABASE)
        self.vhost = VHOST
        self.amqp_url = ""

    @property
    def management_ui(self) -> str:
        parts = urlsplit(self.rabbit.management_url)
        return f"http://{parts.hostname}:{parts.port}/#/queues/{self.vhost}"

    def __enter__(self) -> DemoEnvironment:
        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{DATABASE}"')
        conn.close()
        self.rabbit.delete_vhost(self.vhost)
        self.amqp_url = self.rabbit.create_vhost(self.vhost)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Kept on purpose: the report points at them. The next run starts them afresh.
        return None
