"""deploy/k8s/rabbitmq/definitions.json must say exactly what shared.broker declares."""

from __future__ import annotations

import json
from typing import Any

import aio_pika

from shared.broker import Topology, declare
from tests.conftest import Vhost
from tests.deploy.conftest import K8S

DEFINITIONS = K8S / "rabbitmq" / "definitions.json"


def expected(topology: Topology, vhost: str = "/") -> dict[str, Any]:
    """The definitions document Topology implies, built from its own methods."""

    def exchange(name: str, kind: str) -> dict[str, Any]:
        return {
            "name": name,
            "vhost": vhost,
            "type": kind,
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }

    def queue(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "vhost": vhost,
            "durable": True,
            "auto_delete": False,
            "arguments": arguments,
        }

    def binding(source: str, queue_name: str, key: str) -> dict[str, Any]:
        return {
            "source": source,
            "vhost": vhost,
            "destination": queue_name,
            "destination_type": "queue",
            "routing_key": key,
            "arguments": {},
        }

    work = topology.bindings()
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": [
            exchange(topology.exchange, "topic"),
            exchange(topology.dead_exchange, "fanout"),
        ],
        "queues": [
            *(queue(name, topology.work_queue_arguments()) for name in work),
            queue(topology.dead_queue, {"x-queue-type": "quorum"}),
        ],
        "bindings": [
            *(binding(topology.exchange, name, key) for name, key in work.items()),
            binding(topology.dead_exchange, topology.dead_queue, ""),
        ],
    }


def _sorted(document: dict[str, Any]) -> dict[str, Any]:
    return {
        key: sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        for key, items in document.items()
    }


def test_definitions_file_matches_shared_broker_topology() -> None:
    assert _sorted(json.loads(DEFINITIONS.read_text())) == _sorted(expected(Topology()))


async def test_definitions_are_what_a_declaring_service_leaves_behind(vhost: Vhost) -> None:
    """The broker's own export after `declare()` holds the same exchanges, queues, bindings.

    This checks the file against RabbitMQ's reading of the topology, not only ours: a loaded
    file that disagreed would make the services' own declare fail with PRECONDITION_FAILED.
    """
    connection = await aio_pika.connect(vhost.url)
    try:
        await declare(await connection.channel(), Topology())
    finally:
        await connection.close()
    exported = _export(vhost)
    ours = json.loads(DEFINITIONS.read_text())
    for section in ("exchanges", "queues", "bindings"):
        theirs = [
            {k: v for k, v in item.items() if k in ours[section][0]}
            for item in exported[section]
            if not item.get("name", item.get("source", "x")).startswith("amq.")
            and item.get("source", "x") != ""  # the default exchange's implicit bindings
        ]
        mine = [{**item, "vhost": vhost.name} for item in ours[section]]
        assert _sorted({section: theirs}) == _sorted({section: mine}), section


def _export(vhost: Vhost) -> dict[str, Any]:
    from urllib.parse import quote

    with vhost.endpoint._client() as client:
        response = client.get(f"definitions/{quote(vhost.name, safe='')}")
        response.raise_for_status()
        document: dict[str, Any] = response.json()
    # A per-vhost export leaves the vhost out of each item; put it back for comparison.
    for section in ("exchanges", "queues", "bindings"):
        for item in document.get(section, []):
            item["vhost"] = vhost.name
    return document
