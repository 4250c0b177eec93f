"""The ledger counts what it claims to: lost, stale, unexpected, stored without a 200, dead."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aio_pika

from chaos.ledger import Truth, measure
from shared import broker

T1 = datetime(2025, 1, 1, tzinfo=UTC)
T2 = datetime(2025, 1, 2, tzinfo=UTC)


async def insert(db, *, messages=(), statuses=(), contacts=()):
    for external_id in messages:
        await db.execute(
            "INSERT INTO messages (external_id, business_number_id, source, raw) "
            "VALUES ($1, 'n', 'webhook', '{}')",
            external_id,
        )
    for message_id, status in statuses:
        await db.execute(
            "INSERT INTO statuses (message_external_id, status, business_number_id, raw) "
            "VALUES ($1, $2, 'n', '{}')",
            message_id,
            status,
        )
    for external_id, updated in contacts:
        await db.execute(
            "INSERT INTO contacts (external_id, business_number_id, turn_updated_at, raw) "
            "VALUES ($1, 'n', $2, '{}')",
            external_id,
            updated,
        )


async def dead_letter(amqp_url: str, body: bytes, routing_key: str, reason: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await broker.declare(channel, broker.Topology())
        dead = await channel.get_exchange(broker.Topology().dead_exchange)
        headers: dict[str, Any] = {
            broker.H_ERROR: reason,
            broker.H_ORIGINAL_ROUTING_KEY: routing_key,
        }
        await dead.publish(aio_pika.Message(body, headers=headers), routing_key="")
    finally:
        await connection.close()


TRUTH = Truth(
    webhook_messages=frozenset({"m1", "m2"}),
    webhook_statuses=frozenset({"m1:sent", "m1:read"}),
    sent_messages=frozenset({"m1", "m2", "m9"}),
    sent_statuses=frozenset({"m1:sent", "m1:read", "m1:delivered"}),
    export_messages=frozenset({"m1", "m2", "m3"}),
    contacts={"1": T2, "2": T1},
)


async def test_a_complete_store_is_clean(db, database_url, amqp_url):
    await insert(
        db,
        messages=["m1", "m2", "m3"],
        statuses=[("m1", "sent"), ("m1", "read")],
        contacts=[("1", T2), ("2", T1)],
    )
    await dead_letter(amqp_url, b"{}", "webhook.whatsapp", "never mind")
    ledger = await measure(database_url, amqp_url, TRUTH, drain_dead=False)
    assert ledger.clean, ledger.format()
    assert ledger.lines["webhook messages"].dead_lettered == 0  # counted only when read


async def test_losses_stale_versions_unexpected_rows_and_dead_letters_are_counted(
    db, database_url, amqp_url
):
    await insert(
        db,
        # m2 lost (owed by its 200 and by export); m9 stored without a 200; m7 nobody sent.
        messages=["m1", "m3", "m9", "m7"],
        # m1:read lost; m1:delivered stored without a 200; m5:sent nobody sent.
        statuses=[("m1", "sent"), ("m1", "delivered"), ("m5", "sent")],
        contacts=[("1", T1), ("3", T1)],  # 1 stale, 2 missing, 3 unknown to Turn
    )
    await dead_letter(amqp_url, b'{"statuses":[]}', "webhook.whatsapp", "jsonb refused \\u0000")
    ledger = await measure(database_url, amqp_url, TRUTH, drain_dead=True)
    lines = ledger.lines

    assert not ledger.clean
    assert (lines["webhook messages"].lost, lines["webhook messages"].unexpected) == (1, 1)
    assert lines["webhook messages"].without_200 == 1
    assert (lines["export messages"].lost, lines["export messages"].stored) == (1, 2)
    assert (lines["webhook statuses"].lost, lines["webhook statuses"].unexpected) == (1, 1)
    assert lines["webhook statuses"].without_200 == 1
    assert lines["webhook statuses"].dead_lettered == 1
    assert (lines["export contacts"].lost, lines["export contacts"].unexpected) == (2, 1)
    assert "1 stale" in lines["export contacts"].examples
    assert ledger.dead_reasons == {"webhook statuses: jsonb refused \\u0000": 1}
    assert "NOT CLEAN" in ledger.format()
