import asyncio
import logging
import uuid
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest

from shared.broker import Publisher, Topology, webhook_route
from shared.errors import BrokerUnavailable
from tests.servers import free_port
from tests.waiting import eventually


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


def _api(vhost, path: str):
    with vhost.endpoint._client() as client:
        response = client.get(path)
        response.raise_for_status()
        return response.json()


def _open_connections(vhost, connection_name: str) -> list[dict[str, Any]]:
    return [
        c
        for c in _api(vhost, f"vhosts/{quote(vhost.name, safe='')}/connections")
        if c.get("client_properties", {}).get("connection_name") == connection_name
    ]


async def test_declaring_twice_is_harmless(vhost):
    topology = Topology(delivery_limit=7)
    for _ in range(2):
        publisher = Publisher(vhost.url, topology)
        await publisher.start(wait=True)
        await publisher.close()
    for queue in topology.bindings():
        arguments = vhost.endpoint.queue(vhost.name, queue)["arguments"]
        assert arguments == topology.work_queue_arguments()
    assert vhost.endpoint.queue(vhost.name, topology.dead_queue)["arguments"] == {
        "x-queue-type": "quorum"
    }
    bindings = {
        (b["source"], b["destination"], b["routing_key"])
        for b in _api(vhost, f"bindings/{quote(vhost.name, safe='')}")
        if b["source"]  # the default exchange's implicit bindings say nothing
    }
    assert bindings == {
        (topology.exchange, queue, key) for queue, key in topology.bindings().items()
    } | {(topology.dead_exchange, topology.dead_queue, "")}


async def test_a_refused_declare_closes_its_connection_before_retrying(vhost, caplog):
    topology = Topology()
    # A classic queue under the work queue's name: every declare fails PRECONDITION_FAILED.
    connection = await aio_pika.connect(vhost.url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(topology.webhook_queue, durable=True)
    finally:
        await connection.close()
    name = f"refused-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(vhost.url, topology, name=name)
    caplog.set_level(logging.WARNING, logger="shared.broker")

    def refusals() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("broker refused")]

    async def rounds() -> int:
        return len(refusals())

    await publisher.start()
    try:
        await eventually(rounds, until=lambda n: n >= 4, timeout=30, what="four refusals")
        assert not publisher.connected
        # The management API lists connections only after its next statistics poll; once it
        # lists one opened after the refusals, it lists every one still open from before.
        probe = await aio_pika.connect(
            vhost.url, client_properties={"connection_name": f"{name}-probe"}
        )
        try:
            await eventually(
                lambda: asyncio.to_thread(_open_connections, vhost, f"{name}-probe"),
                timeout=30,
                interval=0.5,
                what="the management API's view to include the probe",
            )
        finally:
            await probe.close()
        # At most the attempt in flight; a leak would leave one robust connection per round.
        assert len(_open_connections(vhost, name)) <= 1
    finally:
        await publisher.close()
    assert "PRECONDITION_FAILED" in refusals()[0].__dict__["error"]
    assert not [r for r in caplog.records if "not reachable" in r.getMessage()]


async def test_publish_without_a_broker_fails_fast():
    publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}/", Topology())
    await publisher.start()
    try:
        assert not publisher.connected
        with pytest.raises(BrokerUnavailable):
            await publisher.publish(b"{}", "webhook.whatsapp", {})
    finally:
        await publisher.close()
