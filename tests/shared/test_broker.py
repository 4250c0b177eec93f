import pytest

from shared.broker import Publisher, Topology, webhook_route
from shared.errors import BrokerUnavailable
from tests.servers import free_port


def test_webhook_routes_name_known_subscriptions_and_fold_the_rest():
    assert webhook_route("whatsapp") == "webhook.whatsapp"
    assert webhook_route("TURN") == "webhook.turn"
    assert webhook_route(None) == "webhook.other"
    assert webhook_route("weird.#") == "webhook.other"


async def test_confirmed_publish_lands_in_the_work_queue(vhost):
    topology = Topology()
    publisher = Publisher(vhost.url, topology)
    await publisher.start(wait=True)
    try:
        await publisher.publish(b"{}", "webhook.whatsapp", {"x-source": "webhook"})
        await publisher.publish(b"{}", "export.message", {"x-source": "export"})
        await publisher.publish(b"{}", "", {"x-error": "why"}, dead_letter=True)
    finally:
        await publisher.close()
    # Confirmed means enqueued: the counts are exact at once, no waiting.
    assert await vhost.depth(topology.webhook_queue) == 1
    assert await vhost.depth(topology.export_message_queue) == 1
    assert await vhost.depth(topology.export_contact_queue) == 0
    assert await vhost.depth(topology.dead_queue) == 1


async def test_unroutable_publish_is_an_error_not_a_silent_loss(vhost):
    publisher = Publisher(vhost.url, Topology())
    await publisher.start(wait=True)
    try:
        with pytest.raises(BrokerUnavailable, match="unroutable"):
            await publisher.publish(b"{}", "nobody.listens", {})
    finally:
        await publisher.close()


async def test_declaring_twice_is_harmless(vhost):
    for _ in range(2):
        publisher = Publisher(vhost.url, Topology())
        await publisher.start(wait=True)
        await publisher.close()


async def test_publish_without_a_broker_fails_fast():
    publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}/", Topology())
    await publisher.start()
    try:
        assert not publisher.connected
        with pytest.raises(BrokerUnavailable):
            await publisher.publish(b"{}", "webhook.whatsapp", {})
    finally:
        await publisher.close()
