"""`ingestctl dlq list | replay | purge` against a real RabbitMQ vhost."""

from __future__ import annotations

import aio_pika

from shared.broker import (
    H_DELIVERY_ID,
    H_ERROR,
    H_ERROR_AT,
    H_ORIGINAL_ROUTING_KEY,
    H_SOURCE,
    Publisher,
    Topology,
)
from tests.conftest import Vhost
from tests.ingestctl.conftest import Ctl
from tests.servers import free_port
from tests.waiting import eventually


async def _dead_letter(amqp_url: str, delivery_id: str, route: str, error: str) -> None:
    """What the writer does with an item it can never store."""
    publisher = Publisher(amqp_url, Topology())
    await publisher.start(wait=True)
    try:
        headers = {
            H_SOURCE: "webhook",
            H_DELIVERY_ID: delivery_id,
            H_ERROR: error,
            H_ERROR_AT: "2026-12-04T10:00:00Z",
            H_ORIGINAL_ROUTING_KEY: route,
        }
        body = f'{{"id": "{delivery_id}"}}'.encode()
        await publisher.publish(body, "", headers, message_id=delivery_id, dead_letter=True)
    finally:
        await publisher.close()


async def _poison_by_delivery_limit(amqp_url: str, delivery_id: str) -> None:
    """What the broker does with a message that keeps failing: x-death, no x-error."""
    publisher = Publisher(amqp_url, Topology())
    await publisher.start(wait=True)
    await publisher.publish(
        b'{"poison": true}',
        "webhook.whatsapp",
        {H_DELIVERY_ID: delivery_id},
        message_id=delivery_id,
    )
    await publisher.close()
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(Topology().webhook_queue)

        async def reject_once() -> bool:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                return True  # gone: dead-lettered after the limit
            await message.nack(requeue=True)
            return False

        await eventually(reject_once, timeout=10, interval=0.01, what="delivery limit reached")
    finally:
        await connection.close()


async def _take_all(amqp_url: str, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    try:
        queue = await (await connection.channel()).get_queue(queue_name)
        taken = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
        return taken
    finally:
        await connection.close()


async def _depth_becomes(vhost: Vhost, queue: str, expected: int) -> None:
    """Returned messages reach a quorum queue's count asynchronously, just after the get."""
    await eventually(
        lambda: vhost.depth(queue), until=lambda n: n == expected, timeout=10, what=queue
    )


async def test_list_shows_reasons_and_loses_nothing(
    ctl: Ctl, amqp_url: str, vhost: Vhost, topology: Topology
) -> None:
    await _dead_letter(amqp_url, "d-1", "webhook.whatsapp", "InvalidPayload: not JSON")
    await _dead_letter(amqp_url, "d-2", "export.contact", "jsonb refused \\u0000")
    await _poison_by_delivery_limit(amqp_url, "d-3")
    assert await vhost.depth(topology.dead_queue) == 3

    for _ in range(2):  # listing twice must not eat anything
        result = await ctl("dlq", "list")
        assert result.code == 0
        await _depth_becomes(vhost, topology.dead_queue, 3)
    out = result.out
    assert out.startswith("3 dead letter(s) in turnio.dead, showing 3")
    assert "delivery d-1  route webhook.whatsapp" in out
    assert "reason: InvalidPayload: not JSON" in out
    assert "delivery d-2  route export.contact" in out
    # Dead-lettered by the broker: the reason and route come from x-death.
    assert "delivery d-3  route webhook.whatsapp" in out
    assert "reason: delivery_limit in turnio.webhook" in out

    limited = await ctl("dlq", "list", "--limit", "1", "--body")
    assert "showing 1" in limited.out and 'body: {"id": "d-1"}' in limited.out
    await _depth_becomes(vhost, topology.dead_queue, 3)


async def test_replay_selected_then_all_routes_home_without_death_headers(
    ctl: Ctl, amqp_url: str, vhost: Vhost, topology: Topology
) -> None:
    await _dead_letter(amqp_url, "d-1", "webhook.whatsapp", "boom")
    await _dead_letter(amqp_url, "d-2", "export.contact", "boom")
    await _poison_by_delivery_limit(amqp_url, "d-3")

    result = await ctl("dlq", "replay", "--id", "d-2")
    assert result.code == 0, result.out
    assert "replayed 1 message(s)" in result.out
    await _depth_becomes(vhost, topology.dead_queue, 2)
    [contact] = await _take_all(amqp_url, topology.export_contact_queue)
    assert contact.body == b'{"id": "d-2"}'
    assert contact.message_id == "d-2"
    headers = dict(contact.headers or {})
    assert headers[H_DELIVERY_ID] == "d-2" and headers[H_SOURCE] == "webhook"
    assert not {H_ERROR, H_ERROR_AT, H_ORIGINAL_ROUTING_KEY, "x-death"} & set(headers)

    result = await ctl("dlq", "replay", "--all")
    assert result.code == 0, result.out
    assert "replayed 2 message(s)" in result.out
    assert await vhost.depth(topology.dead_queue) == 0
    webhook = await _take_all(amqp_url, topology.webhook_queue)
    assert sorted(m.message_id or "" for m in webhook) == ["d-1", "d-3"]
    for message in webhook:
        assert "x-death" not in (message.headers or {})


async def test_replay_of_an_unknown_id_says_so_and_keeps_the_rest(
    ctl: Ctl, amqp_url: str, vhost: Vhost, topology: Topology
) -> None:
    await _dead_letter(amqp_url, "d-1", "webhook.whatsapp", "boom")
    result = await ctl("dlq", "replay", "--id", "nope")
    assert result.code == 1
    assert "not found in turnio.dead: nope" in result.out
    await _depth_becomes(vhost, topology.dead_queue, 1)


async def test_purge_asks_first(ctl: Ctl, amqp_url: str, vhost: Vhost, topology: Topology) -> None:
    await _dead_letter(amqp_url, "d-1", "webhook.whatsapp", "boom")
    await _dead_letter(amqp_url, "d-2", "webhook.whatsapp", "boom")

    refused = await ctl("dlq", "purge", answer="no")
    assert refused.code == 1 and "not purged" in refused.out
    assert await vhost.depth(topology.dead_queue) == 2

    confirmed = await ctl("dlq", "purge", answer="purge")
    assert confirmed.code == 0 and "purged 2 dead letter(s)" in confirmed.out
    assert await vhost.depth(topology.dead_queue) == 0

    await _dead_letter(amqp_url, "d-3", "webhook.whatsapp", "boom")
    forced = await ctl("dlq", "purge", "--yes")
    assert forced.code == 0 and "purged 1" in forced.out
    assert (await ctl("dlq", "purge", "--yes")).out.strip() == "turnio.dead is empty"


async def test_broker_away_or_topology_missing_is_a_clear_line(
    ctl: Ctl, ctl_env: dict[str, str]
) -> None:
    closed = {**ctl_env, "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    result = await ctl("dlq", "list", env=closed)
    assert result.code == 1
    assert result.out.startswith("unavailable: RabbitMQ is unreachable")
    # A fresh vhost where no service has started yet.
    result = await ctl("dlq", "list")
    assert result.code == 1
    assert "queue turnio.dead does not exist" in result.out
