"""Fuzzing through the real writer into PostgreSQL: every body published is, once the queues
are empty, either stored (each of its events in the lake) or dead-lettered with a reason.
Nothing is dropped silently, and the writer never stops consuming."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
from hypothesis import given, settings
from hypothesis import strategies as st

from services.db_writer.explode import explode
from shared import broker
from shared.errors import PoisonError
from tests.conftest import BUSINESS_NUMBER
from tests.db_writer.conftest import started
from tests.fuzz.conftest import examples, on_loop
from tests.fuzz.strategies import any_body
from tests.servers import free_port
from tests.waiting import eventually

ROUTES = {
    "webhook": ("webhook.whatsapp", None),
    "turn": ("webhook.turn", None),
    "export message": (broker.ROUTE_EXPORT_MESSAGE, "message"),
    "export contact": (broker.ROUTE_EXPORT_CONTACT, "contact"),
}


def headers_for(route: str) -> tuple[str, dict[str, Any]]:
    routing_key, kind = ROUTES[route]
    headers: dict[str, Any] = {
        broker.H_SOURCE: "export" if kind else "webhook",
        broker.H_RECEIVED_AT: broker.utc_now_iso(),
        broker.H_BUSINESS_NUMBER: BUSINESS_NUMBER,
    }
    if kind:
        headers[broker.H_KIND] = kind
    else:
        headers[broker.H_SUBSCRIPTION] = routing_key.split(".", 1)[1]
    return routing_key, headers


async def dead_reasons(amqp_url: str) -> dict[str, str]:
    """message id -> x-error of everything in the dead-letter queue now (taken off it)."""
    connection = await aio_pika.connect(amqp_url)
    found: dict[str, str] = {}
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(broker.Topology().dead_queue)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            error = (message.headers or {}).get(broker.H_ERROR)
            found[message.message_id or ""] = error if isinstance(error, str) else ""
    finally:
        await connection.close()
    return found


async def queued(amqp_url: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        total = 0
        for name in broker.Topology().bindings():
            declared = await channel.declare_queue(name, passive=True)
            total += declared.declaration_result.message_count or 0
        return total
    finally:
        await connection.close()


def expected_keys(
    body: bytes, routing_key: str, headers: Mapping[str, Any]
) -> set[tuple[str, str]]:
    try:
        events = explode(body, headers, routing_key, business_number_id=BUSINESS_NUMBER, now=_NOW)
    except PoisonError:
        return set()
    return {(str(e.event_type), e.key) for e in events}


_NOW = datetime.now(UTC)


async def test_every_body_is_stored_or_dead_lettered_with_a_reason(service_env, amqp_url, db):
    env = {
        **service_env,
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "WRITER_BATCH_SIZE": "50",
        "WRITER_BATCH_MAX_AGE": "0.02",
    }
    writer = await started(env)
    publisher = broker.Publisher(amqp_url, broker.Topology())
    await publisher.start(wait=True)
    loop = asyncio.get_running_loop()
    counter = iter(range(10**9))

    async def publish_and_account(bodies: list[tuple[bytes, str]]) -> None:
        sent: dict[str, tuple[bytes, str, dict[str, Any]]] = {}
        for body, route in bodies:
            routing_key, headers = headers_for(route)
            message_id = f"fuzz-{next(counter)}"
            await publisher.publish(body, routing_key, headers, message_id=message_id)
            sent[message_id] = (body, routing_key, headers)
        dead: dict[str, str] = {}

        async def unaccounted() -> list[bytes]:
            dead.update(await dead_reasons(amqp_url))
            stored = {
                (r["event_type"], r["external_event_id"])
                for r in await db.fetch("SELECT event_type, external_event_id FROM webhook_events")
            }
            missing = []
            for message_id, (body, routing_key, headers) in sent.items():
                keys = expected_keys(body, routing_key, headers)
                if message_id not in dead and not (keys and keys <= stored):
                    missing.append(body)
            return missing

        await eventually(
            unaccounted,
            until=lambda missing: not missing,
            timeout=30,
            interval=0.05,
            what="every body stored or dead-lettered",
        )
        for message_id in sent.keys() & dead.keys():
            assert dead[message_id], f"dead-lettered without a reason: {sent[message_id][0]!r}"
        assert await queued(amqp_url) == 0

    @settings(settings.get_profile("fuzz"), max_examples=examples(40))
    @given(
        bodies=st.lists(
            st.tuples(any_body(), st.sampled_from(sorted(ROUTES))), min_size=1, max_size=20
        )
    )
    def check(bodies: list[tuple[bytes, str]]) -> None:
        on_loop(loop, publish_and_account(bodies))

    try:
        await asyncio.to_thread(check)
        assert all(writer.ready().values())
    finally:
        await publisher.close()
        await writer.stop()
