"""Fixtures for the writer: an in-process writer, and publishing exactly as the gateway does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aio_pika
import orjson
import pytest

from services.db_writer.app import Writer
from services.db_writer.settings import WriterSettings
from shared import broker
from shared.settings import Env
from tests.conftest import BUSINESS_NUMBER, EXAMPLES
from tests.servers import free_port
from tests.waiting import eventually


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def webhook_headers(
    subscription: str = "whatsapp", whatsapp_id: str | None = None
) -> dict[str, Any]:
    headers: dict[str, Any] = {
        broker.H_SOURCE: "webhook",
        broker.H_SUBSCRIPTION: subscription,
        broker.H_RECEIVED_AT: broker.utc_now_iso(),
        broker.H_DELIVERY_ID: broker.new_delivery_id(),
        broker.H_BUSINESS_NUMBER: BUSINESS_NUMBER,
    }
    if whatsapp_id:
        headers[broker.H_WHATSAPP_ID] = whatsapp_id
    return headers


class Feed:
    """Publishes raw bytes + headers through shared.broker.Publisher, like the gateway/pullers."""

    def __init__(self, publisher: broker.Publisher) -> None:
        self.publisher = publisher

    async def webhook(
        self, body: bytes, subscription: str = "whatsapp", whatsapp_id: str | None = None
    ) -> None:
        await self.publisher.publish(
            body,
            broker.webhook_route(subscription),
            webhook_headers(subscription, whatsapp_id),
            message_id=broker.new_delivery_id(),
        )

    async def export(self, item: Any, kind: str) -> None:
        body = item if isinstance(item, bytes) else orjson.dumps(item)
        route = broker.ROUTE_EXPORT_CONTACT if kind == "contact" else broker.ROUTE_EXPORT_MESSAGE
        headers = {
            broker.H_SOURCE: "export",
            broker.H_KIND: kind,
            broker.H_RECEIVED_AT: broker.utc_now_iso(),
            broker.H_DELIVERY_ID: broker.new_delivery_id(),
            broker.H_BUSINESS_NUMBER: BUSINESS_NUMBER,
        }
        await self.publisher.publish(body, route, headers, message_id=broker.new_delivery_id())


@pytest.fixture
async def feed(amqp_url: str) -> AsyncIterator[Feed]:
    publisher = broker.Publisher(amqp_url, broker.Topology())
    await publisher.start(wait=True)
    yield Feed(publisher)
    await publisher.close()


@pytest.fixture
def writer_env(service_env: dict[str, str]) -> dict[str, str]:
    return {
        **service_env,
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "WRITER_BATCH_SIZE": "100",
        "WRITER_BATCH_MAX_AGE": "0.05",
        "WRITER_BACKOFF_INITIAL": "0.05",
        "WRITER_BACKOFF_MAX": "0.5",
        "WRITER_DB_CHECK_INTERVAL": "0.2",
    }


def settings_from(env: Mapping[str, str]) -> WriterSettings:
    return WriterSettings.from_env(Env(env))


async def started(env: Mapping[str, str], *, wait_ready: bool = True) -> Writer:
    writer = Writer(settings_from(env))
    await writer.start()
    if wait_ready:
        await eventually(
            lambda: _all_ready(writer), timeout=20, what="writer ready (database and consuming)"
        )
    return writer


async def _all_ready(writer: Writer) -> bool:
    return all(writer.ready().values())


@pytest.fixture
async def writer(writer_env: dict[str, str]) -> AsyncIterator[Writer]:
    running = await started(writer_env)
    yield running
    await running.stop()


async def dead_letters(amqp_url: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Everything in turnio.dead, taken off the queue (acked)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(broker.Topology().dead_queue)
        taken = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            taken.append(message)
        return taken
    finally:
        await connection.close()


async def count(db: Any, sql: str, *args: Any) -> int:
    return int(await db.fetchval(sql, *args))
