"""Multiple-acks must never settle another batch's deliveries: checked on a real broker."""

import aio_pika

from services.db_writer.acks import Acks
from shared.broker import Publisher, Topology


async def test_a_batch_ack_never_reaches_past_an_unsettled_delivery_of_another_batch(vhost):
    topology = Topology()
    publisher = Publisher(vhost.url, topology)
    await publisher.start(wait=True)
    for n in range(6):
        await publisher.publish(b"{}", "webhook.whatsapp", {"n": n})
    await publisher.close()

    connection = await aio_pika.connect(vhost.url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.webhook_queue)
        acks = Acks()
        deliveries = []
        for _ in range(6):
            message = await queue.get(no_ack=False)
            assert message is not None
            deliveries.append(acks.received(message))
        # Batch A = tags 1, 2, 4, 5; tag 3 and 6 belong to a batch still being written.
        await acks.ack([deliveries[i] for i in (0, 1, 3, 4)])
        assert acks.acked == 4
        await channel.close()  # the unacked ones go back to the queue
    finally:
        await connection.close()
    assert await vhost.depth(topology.webhook_queue) == 2


async def test_deliveries_of_a_closed_channel_are_never_acked(vhost):
    topology = Topology()
    publisher = Publisher(vhost.url, topology)
    await publisher.start(wait=True)
    await publisher.publish(b"{}", "webhook.whatsapp", {})
    await publisher.close()

    connection = await aio_pika.connect(vhost.url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.webhook_queue)
        acks = Acks()
        message = await queue.get(no_ack=False)
        assert message is not None
        delivery = acks.received(message)
        await channel.close()
        acks.forget_closed_channels()
        await acks.ack([delivery])
        assert acks.acked == 0
    finally:
        await connection.close()
    assert await vhost.depth(topology.webhook_queue) == 1
