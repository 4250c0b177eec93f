import aio_pika
import orjson

from shared.broker import (
    H_BUSINESS_NUMBER,
    H_DELIVERY_ID,
    H_KIND,
    H_RECEIVED_AT,
    H_SOURCE,
    ROUTE_EXPORT_CONTACT,
    Publisher,
    Topology,
)
from shared.export_publisher import ExportPublisher


async def consume_all(
    url: str, queue: str, count: int
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        taken = []
        for _ in range(count):
            message = await declared.get(no_ack=True, fail=True)
            assert message is not None
            taken.append(message)
        assert await declared.get(no_ack=True, fail=False) is None
        return taken
    finally:
        await connection.close()


async def test_every_item_is_its_own_confirmed_event_with_the_export_headers(amqp_url):
    publisher = Publisher(amqp_url, Topology())
    await publisher.start(wait=True)
    items = [{"id": n, "name": f"c{n}"} for n in range(5)]
    try:
        export = ExportPublisher(
            publisher,
            kind="contact",
            route=ROUTE_EXPORT_CONTACT,
            identity=lambda item: str(item["id"]),
            business_number_id="27600000000",
            concurrency=2,
        )
        await export.publish(items)
        await export.publish([])
    finally:
        await publisher.close()
    messages = await consume_all(amqp_url, Topology().export_contact_queue, 5)
    assert sorted(orjson.loads(m.body)["id"] for m in messages) == list(range(5))
    assert sorted(m.message_id or "" for m in messages) == [str(n) for n in range(5)]
    for message in messages:
        headers = message.headers
        assert (headers[H_SOURCE], headers[H_KIND], headers[H_BUSINESS_NUMBER]) == (
            "export",
            "contact",
            "27600000000",
        )
        assert headers[H_RECEIVED_AT]
    # One delivery id per item.
    assert len({m.headers[H_DELIVERY_ID] for m in messages}) == 5
