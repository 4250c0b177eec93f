"""The dead-letter queue: look without losing anything, replay with confirms, purge.

Messages are taken with basic.get and held unacknowledged; whatever is not explicitly acked
(after a confirmed republish) goes back to the queue when the channel closes. A message is
never acked before its copy is confirmed on the main exchange, so a crash in between can at
worst replay it twice, and the writer's inserts are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
import aio_pika.abc

from shared.broker import (
    BROKER_ERRORS,
    H_DELIVERY_ID,
    H_ERROR,
    H_ERROR_AT,
    H_ORIGINAL_ROUTING_KEY,
    Publisher,
    Topology,
)
from shared.errors import BrokerUnavailable

# Headers that describe the death, not the message: dropped on replay so that a replayed
# message that dies again carries only its new reason.
DEATH_HEADERS = frozenset(
    {H_ERROR, H_ERROR_AT, H_ORIGINAL_ROUTING_KEY, "x-death", "x-delivery-count"}
    | {"x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"}
    | {"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"}
)
GET_TIMEOUT = 5.0


@dataclass(frozen=True)
class DeadLetter:
    delivery_id: str
    routing_key: str | None  # where it is replayed to; None when nothing says
    reason: str
    died_at: str | None
    deaths: int
    headers: dict[str, Any]
    body: bytes
    message_id: str | None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _deaths(headers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    value = headers.get("x-death")
    return [d for d in value if isinstance(d, Mapping)] if isinstance(value, list) else []


def describe(message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
    headers = dict(message.headers or {})
    deaths = _deaths(headers)
    routing_key: str | None = None
    if headers.get(H_ORIGINAL_ROUTING_KEY):
        routing_key = _text(headers[H_ORIGINAL_ROUTING_KEY])
    elif deaths and deaths[0].get("routing-keys"):
        routing_key = _text(deaths[0]["routing-keys"][0])
    if H_ERROR in headers:
        reason = _text(headers[H_ERROR])
    elif deaths:
        first = deaths[0]
        reason = f"{_text(first.get('reason', '?'))} in {_text(first.get('queue', '?'))}"
    else:
        reason = "(no reason recorded)"
    died_at = _text(headers[H_ERROR_AT]) if H_ERROR_AT in headers else None
    if died_at is None and deaths and isinstance(deaths[0].get("time"), datetime):
        died_at = deaths[0]["time"].isoformat()
    delivery_id = _text(headers.get(H_DELIVERY_ID) or message.message_id or "")
    return DeadLetter(
        delivery_id=delivery_id,
        routing_key=routing_key,
        reason=reason,
        died_at=died_at,
        deaths=sum(int(d.get("count", 1)) for d in deaths) or 1,
        headers=headers,
        body=message.body,
        message_id=message.message_id,
    )


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in headers.items() if k not in DEATH_HEADERS}


@contextlib.asynccontextmanager
async def _dead_queue(
    amqp_url: str, topology: Topology
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    try:
        connection = await aio_pika.connect(amqp_url, timeout=10)
    except BROKER_ERRORS as exc:
        raise BrokerUnavailable(
            f"RabbitMQ is unreachable: {str(exc) or type(exc).__name__}"
        ) from exc
    try:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(topology.dead_queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity as exc:
            raise BrokerUnavailable(
                f"queue {topology.dead_queue} does not exist: no service has declared the "
                "topology in this vhost yet"
            ) from exc
        yield queue
    except BrokerUnavailable:
        raise
    except BROKER_ERRORS as exc:
        raise BrokerUnavailable(f"RabbitMQ failed: {str(exc) or type(exc).__name__}") from exc
    finally:
        # Closing hands every message still unacknowledged back to the queue.
        with contextlib.suppress(*BROKER_ERRORS):
            await connection.close()


async def _take(
    queue: aio_pika.abc.AbstractQueue, limit: int | None
) -> AsyncIterator[aio_pika.abc.AbstractIncomingMessage]:
    taken = 0
    while limit is None or taken < limit:
        message = await queue.get(no_ack=False, fail=False, timeout=GET_TIMEOUT)
        if message is None:
            return
        taken += 1
        yield message


async def count(amqp_url: str, topology: Topology) -> int:
    async with _dead_queue(amqp_url, topology) as queue:
        return int(queue.declaration_result.message_count or 0)


async def peek(amqp_url: str, topology: Topology, limit: int) -> tuple[int, list[DeadLetter]]:
    """(total in the queue, up to `limit` described); every message stays in the queue."""
    async with _dead_queue(amqp_url, topology) as queue:
        total = int(queue.declaration_result.message_count or 0)
        taken = [m async for m in _take(queue, limit)]
        # Handed back explicitly (closing would too); the broker applies it asynchronously,
        # so for a moment after this returns the queue may look shorter than it is.
        for message in taken:
            await message.reject(requeue=True)
        return total, [describe(m) for m in taken]


@dataclass
class ReplayResult:
    replayed: list[str]
    skipped: list[tuple[str, str]]  # (delivery id, why)
    missing: list[str]  # ids asked for but not found


async def replay(
    amqp_url: str, topology: Topology, ids: Iterable[str] | None, *, confirm_timeout: float = 5.0
) -> ReplayResult:
    """Republish the selected dead letters (all when `ids` is None) to the main exchange."""
    wanted = None if ids is None else set(ids)
    left = set(wanted or ())  # selected and not replayed yet: stop once it is empty
    result = ReplayResult([], [], [])
    publisher = Publisher(
        amqp_url, topology, confirm_timeout=confirm_timeout, name="ingestctl-dlq-replay"
    )
    async with _dead_queue(amqp_url, topology) as queue:
        try:
            await _start(publisher)
            async for message in _take(queue, None):
                letter = describe(message)
                if wanted is not None and letter.delivery_id not in wanted:
                    continue  # stays unacked: back to the queue on close
                if letter.routing_key is None:
                    result.skipped.append((letter.delivery_id, "no original routing key"))
                    continue
                await publisher.publish(
                    letter.body,
                    letter.routing_key,
                    replay_headers(letter.headers),
                    message_id=letter.message_id,
                )
                await message.ack()
                result.replayed.append(letter.delivery_id)
                left.discard(letter.delivery_id)
                if wanted is not None and not left:
                    break
        finally:
            await publisher.close()
    if wanted is not None:
        found = set(result.replayed) | {i for i, _ in result.skipped}
        result.missing = sorted(wanted - found)
    return result


async def _start(publisher: Publisher) -> None:
    try:
        await asyncio.wait_for(publisher.start(wait=True), timeout=10)
    except TimeoutError as exc:
        raise BrokerUnavailable("could not open a publishing channel within 10 s") from exc


async def purge(amqp_url: str, topology: Topology) -> int:
    async with _dead_queue(amqp_url, topology) as queue:
        purged = await queue.purge()
        return int(purged.message_count or 0)
