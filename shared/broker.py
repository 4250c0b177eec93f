"""RabbitMQ: the topology every service declares, and the confirmed publisher.

Topology (declared idempotently at start by every service):

    exchange <prefix> (topic, durable)
      webhook.#        -> queue <prefix>.webhook          raw webhook bodies
      export.message   -> queue <prefix>.export.message   Data Export messages, one per event
      export.contact   -> queue <prefix>.export.contact   Data Export contacts, one per event
    exchange <prefix>.dead (fanout, durable)
      -> queue <prefix>.dead                               what could not be stored, with why

The three work queues are quorum queues with an explicit delivery limit: a message that crashes
its consumer over and over is dead-lettered by the broker (at-least-once) instead of looping.
The writer dead-letters what it can never store itself, publishing to <prefix>.dead with a
reason header, so a person can inspect and replay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions
from pamqp import commands as spec

from shared.errors import BrokerUnavailable

log = logging.getLogger(__name__)

# Message headers: what the writer needs besides the body.
H_SOURCE = "x-source"  # webhook | export
H_SUBSCRIPTION = "x-turn-hook-subscription"  # whatsapp | turn | journey_outbound
H_WHATSAPP_ID = "x-whatsapp-id"  # turn subscription: the message's WhatsApp id
H_RECEIVED_AT = "x-received-at"  # ISO-8601 UTC, when we took it in
H_DELIVERY_ID = "x-delivery-id"  # one per inbound request / exported item
H_BUSINESS_NUMBER = "x-business-number"
H_TURN_EVENT = "x-turn-event"  # Turn's X-Turn-Event, passed on when present
H_TURN_FALLBACK_CHANNEL = "x-turn-fallback-channel"
H_KIND = "x-kind"  # export: message | contact
H_ERROR = "x-error"  # dead letters: why it could not be stored
H_ERROR_AT = "x-error-at"
H_ORIGINAL_ROUTING_KEY = "x-original-routing-key"

ROUTE_EXPORT_MESSAGE = "export.message"
ROUTE_EXPORT_CONTACT = "export.contact"
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
KNOWN_SUBSCRIPTIONS = frozenset({"whatsapp", "turn", "journey_outbound", "engage"})


def webhook_route(subscription: str | None) -> str:
    """Routing key for a webhook body; unknown subscription names still route."""
    name = (subscription or "").strip().lower()
    return f"webhook.{name if name in KNOWN_SUBSCRIPTIONS else 'other'}"


@dataclass(frozen=True)
class Topology:
    prefix: str = "turnio"
    delivery_limit: int = 5

    @property
    def exchange(self) -> str:
        return self.prefix

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def webhook_queue(self) -> str:
        return f"{self.prefix}.webhook"

    @property
    def export_message_queue(self) -> str:
        return f"{self.prefix}.export.message"

    @property
    def export_contact_queue(self) -> str:
        return f"{self.prefix}.export.contact"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    def bindings(self) -> dict[str, str]:
        """Work queue -> binding key."""
        return {
            self.webhook_queue: "webhook.#",
            self.export_message_queue: ROUTE_EXPORT_MESSAGE,
            self.export_contact_queue: ROUTE_EXPORT_CONTACT,
        }

    def work_queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            # 3.10 quorum queues have no default limit: without one a poison message loops.
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            # at-least-once dead-lettering needs reject-publish overflow (RabbitMQ >= 3.10).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


async def declare(
    channel: aio_pika.abc.AbstractChannel, topology: Topology
) -> aio_pika.abc.AbstractExchange:
    """Declare everything; safe to run from every service at every start."""
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_exchange(
        topology.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(
        topology.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_queue.bind(dead, routing_key="")
    for name, key in topology.bindings().items():
        queue = await channel.declare_queue(
            name, durable=True, arguments=topology.work_queue_arguments()
        )
        await queue.bind(exchange, routing_key=key)
    return exchange


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_delivery_id() -> str:
    return uuid.uuid4().hex


# What a lost or refusing broker looks like from aio-pika, across connection states.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    RuntimeError,  # aio-pika raises it for a channel used while closed/reconnecting
)


def refusal(exc: BaseException) -> str | None:
    """The broker's reason when it answered and said no; None when it was not reached at all.

    A refusal (an inequivalent queue, access refused, bad credentials) will not go away by
    waiting, so it is worth telling apart from a broker that is down.
    """
    refused = (
        aiormq.exceptions.ChannelClosed,
        aiormq.exceptions.ConnectionClosed,
        aiormq.exceptions.AuthenticationError,
        aiormq.exceptions.ProbableAuthenticationError,
    )
    if not isinstance(exc, refused):
        return None
    return " ".join(str(arg) for arg in exc.args if arg is not None) or type(exc).__name__


async def _close_quietly(connection: aio_pika.abc.AbstractConnection) -> None:
    with contextlib.suppress(*BROKER_ERRORS):
        await connection.close()


class Publisher:
    """Persistent, mandatory, confirmed publishing over one robust connection.

    `publish` returns only once RabbitMQ confirmed the message (it is then on disk in a quorum
    queue); every failure becomes BrokerUnavailable. The first connection is retried in the
    background, so a service can start (and say not-ready) while the broker is down.
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        confirm_timeout: float = 2.0,
        name: str = "turnio-ingest",
    ) -> None:
        self._url = url
        self._topology = topology
        self._confirm_timeout = confirm_timeout
        self._name = name
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._connector: asyncio.Task[None] | None = None

    async def start(self, *, wait: bool = False) -> None:
        self._connector = asyncio.create_task(self._connect_forever(), name="broker-connect")
        if wait:
            await asyncio.shield(self._connector)

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            connection: aio_pika.abc.AbstractRobustConnection | None = None
            try:
                connection = await aio_pika.connect_robust(
                    self._url, client_properties={"connection_name": self._name}
                )
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await declare(channel, self._topology)
                self._connection, self._channel = connection, channel
                log.info("broker connected", extra={"exchange": self._topology.exchange})
                return
            except asyncio.CancelledError:
                if connection is not None:
                    await _close_quietly(connection)
                raise
            except BROKER_ERRORS as exc:
                # A robust connection reconnects itself forever: left open, every round of a
                # refused declare would add one more.
                if connection is not None:
                    await _close_quietly(connection)
                reason = refusal(exc)
                if reason is None:
                    log.warning("broker not reachable, retrying", extra={"error": repr(exc)})
                else:
                    log.warning(f"broker refused: {reason}, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @property
    def connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def publish(
        self,
        body: bytes,
        routing_key: str,
        headers: Mapping[str, Any],
        *,
        message_id: str | None = None,
        dead_letter: bool = False,
    ) -> None:
        """Publish and wait for the broker's confirm; raise BrokerUnavailable otherwise."""
        channel = self._channel
        if channel is None or not self.connected:
            raise BrokerUnavailable("not connected to RabbitMQ")
        # aiormq's frame directly, as aio-pika's Exchange.publish sends it, without building an
        # aio_pika.Message first: that object cost a third of the client CPU per publish.
        properties = spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            headers=dict(headers),
            message_id=message_id,
            timestamp=datetime.now(UTC),
        )
        exchange = self._topology.dead_exchange if dead_letter else self._topology.exchange
        try:
            # One deadline for the whole publish, channel waits included.
            async with asyncio.timeout(self._confirm_timeout):
                underlay = await channel.get_underlay_channel()
                await underlay.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                )
        except aiormq.exceptions.PublishError as exc:
            raise BrokerUnavailable(f"unroutable: {routing_key}") from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise BrokerUnavailable("broker refused the message (nack)") from exc
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"publish failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, *BROKER_ERRORS):
                await self._connector
        if self._connection is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._connection.close()
        self._connection = self._channel = None
