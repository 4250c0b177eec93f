"""Wiring: connect, consume, write batches, serve probes, shut down.

Flow: the three work queues' deliveries go into the Batcher; one flush loop takes a batch,
explodes its bodies into events, stores them in one transaction (store.py) and only then
settles the deliveries: refused items are dead-lettered (published with their reason, then
acked), the rest acked. While PostgreSQL is away nothing is acked; the same batch is retried
with bounded exponential backoff, so the writer resumes by itself. Which tags may be acked
together, and why a dead channel's never are, is acks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import aio_pika.abc
import asyncpg

from services.db_writer import metrics
from services.db_writer.acks import Acks, Delivery
from services.db_writer.batcher import Batcher
from services.db_writer.explode import Event, explode
from services.db_writer.settings import WriterSettings
from services.db_writer.store import EventId, Result, dedupe, identity, store
from shared import broker
from shared.database import CONNECTION_ERRORS, create_pool, database_answers
from shared.errors import BrokerUnavailable, DatabaseUnavailable, InvalidPayload
from shared.probes import ProbeServer

log = logging.getLogger("db_writer")

CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *CONNECTION_ERRORS)


@dataclass(frozen=True, slots=True)
class Poison:
    delivery: Delivery
    reason: str
    category: str


class Writer:
    def __init__(self, settings: WriterSettings) -> None:
        self.settings = settings
        common = settings.common
        self.topology = broker.Topology(prefix=common.queue_prefix)
        self.batcher: Batcher[Delivery] = Batcher(settings.batch_size, settings.batch_max_age)
        self.publisher = broker.Publisher(
            common.amqp_url, self.topology, name="db_writer.dead_letters"
        )
        self.probes = ProbeServer(self.ready, settings.host, settings.port)
        self.acks = Acks()
        self._pool: asyncpg.Pool | None = None
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._consumers: list[tuple[aio_pika.abc.AbstractQueue, str]] = []
        self._db_ok = False
        self._writes_failing = False
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._flusher: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.probes.start()
        await self.publisher.start()
        self._tasks = [
            asyncio.create_task(self._connect_database(), name="writer-db-connect"),
            asyncio.create_task(self._connect_broker(), name="writer-broker-connect"),
            asyncio.create_task(self._watch_database(), name="writer-db-watch"),
        ]
        self._flusher = asyncio.create_task(self._flush_loop(), name="writer-flush")
        log.info(
            "writer started",
            extra={
                "batch_size": self.settings.batch_size,
                "batch_max_age": self.settings.batch_max_age,
                "prefetch": self.settings.prefetch,
                "port": self.settings.port,
            },
        )

    async def stop(self) -> None:
        """Stop taking work, commit and ack what was received (or leave it unacked), close."""
        self._stopping.set()
        for queue, tag in self._consumers:
            with contextlib.suppress(*broker.BROKER_ERRORS):
                await queue.cancel(tag)
        self._consumers.clear()
        self.batcher.close()
        if self._flusher is not None:
            await self._flusher
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = self.batcher.drain()  # arrived after the cancel: the broker redelivers them
        if self._connection is not None:
            with contextlib.suppress(*broker.BROKER_ERRORS):
                await self._connection.close()
        await self.publisher.close()
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), timeout=5)
            except CLOSE_ERRORS:
                self._pool.terminate()
        await self.probes.stop()
        log.info("writer stopped", extra={"left_unacked": len(left), "acked": self.acked})

    @property
    def acked(self) -> int:
        """Deliveries settled by ack since start (dead letters included)."""
        return self.acks.acked

    def ready(self) -> dict[str, bool]:
        # A database that answers pings but refuses writes (read-only, disk full) is not ready.
        return {
            "database": self._db_ok and not self._writes_failing,
            "consuming": self.consuming,
        }

    @property
    def consuming(self) -> bool:
        return (
            bool(self._consumers)
            and self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    # --- connections -----------------------------------------------------------------------

    async def _connect_database(self) -> None:
        delay = self.settings.backoff_initial
        while self._pool is None:
            try:
                self._pool = await create_pool(self.settings.common.database_url, max_size=3)
                self._set_database(True)
            except CONNECTION_ERRORS as exc:
                self._set_database(False)
                log.warning("PostgreSQL not reachable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max)

    async def _watch_database(self) -> None:
        # /ready must turn 503 while PostgreSQL is away even when no batch is being written.
        interval = self.settings.db_check_interval
        url = self.settings.common.database_url
        while True:
            await asyncio.sleep(interval)
            if self._pool is not None:
                self._set_database(await database_answers(url, within=max(interval, 1.0)))

    def _set_database(self, up: bool) -> None:
        if up != self._db_ok:
            log.log(logging.INFO if up else logging.WARNING, f"PostgreSQL {'up' if up else 'down'}")
        self._db_ok = up
        metrics.DB_UP.set(1 if up else 0)

    async def _connect_broker(self) -> None:
        delay = self.settings.backoff_initial
        while True:
            connection: aio_pika.abc.AbstractRobustConnection | None = None
            try:
                # Robust: after a lost connection aio-pika reconnects, restores the QoS and
                # the consumers; unacked deliveries of the dead channel are redelivered.
                connection = await aio_pika.connect_robust(
                    self.settings.common.amqp_url,
                    client_properties={"connection_name": "db_writer"},
                )
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=self.settings.prefetch)
                await broker.declare(channel, self.topology)
                self._connection, self._channel = connection, channel
                for name in self.topology.bindings():
                    queue = await channel.get_queue(name)
                    tag = await queue.consume(self._on_message)
                    self._consumers.append((queue, tag))
                log.info("consuming", extra={"queues": list(self.topology.bindings())})
                return
            except broker.BROKER_ERRORS as exc:
                # Connected but refused (e.g. a queue declared with other arguments): close
                # this connection, or every retry would leave one more reconnecting forever.
                if connection is not None:
                    with contextlib.suppress(*broker.BROKER_ERRORS):
                        await connection.close()
                    self._consumers.clear()
                what = "refused the topology" if connection is not None else "not reachable"
                log.warning(f"RabbitMQ {what}, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.batcher.add(self.acks.received(message))

    # --- batches ---------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            batch = await self.batcher.next_batch()
            if not batch:
                return
            try:
                await self._flush(batch)
            except Exception:
                # A bug, not a dependency: hand the batch back rather than sit on it unacked.
                # Redelivered, it fails again until the queue's delivery limit dead-letters it.
                log.exception("batch failed unexpectedly; requeueing it")
                for delivery in batch:
                    if not delivery.channel.is_closed:
                        await self.acks.settle_one(delivery, requeue=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), timeout=self.settings.backoff_initial
                    )

    async def _flush(self, batch: Sequence[Delivery]) -> None:
        started = time.perf_counter()
        # A closed channel's deliveries are being redelivered on the new one already.
        live = [d for d in batch if not d.channel.is_closed]
        self.acks.forget_closed_channels()
        now = datetime.now(UTC)
        poison: list[Poison] = []
        events: list[Event] = []
        owners: dict[EventId, list[Delivery]] = {}
        number = self.settings.common.business_number_id
        for delivery in live:
            message = delivery.message
            try:
                exploded = explode(
                    message.body,
                    message.headers or {},
                    message.routing_key or "",
                    business_number_id=number,
                    now=now,
                )
            except InvalidPayload as exc:
                poison.append(Poison(delivery, exc.reason, "invalid_json"))
                continue
            for event in exploded:
                metrics.EVENTS.labels(event.event_type.value).inc()
                owners.setdefault(identity(event), []).append(delivery)
                events.append(event)
        unique = dedupe(events)
        result = await self._store_retrying(unique) if unique else Result.empty()
        if result is None:
            return  # stopping while PostgreSQL is away: leave the batch to the broker
        poison.extend(self._refused_deliveries(result, owners))
        for table, outcomes in result.counts.rows.items():
            for outcome, count in outcomes.items():
                if count:
                    metrics.ROWS.labels(table, outcome).inc(count)
        bad = {id(p.delivery) for p in poison}
        await self._dead_letter(poison)
        await self.acks.ack([d for d in live if id(d) not in bad])
        metrics.BATCH_DELIVERIES.observe(len(batch))
        metrics.BATCH_EVENTS.observe(len(unique))
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)

    async def _store_retrying(self, events: Sequence[Event]) -> Result | None:
        """Commit the events; while PostgreSQL is away, back off and try again (None: stop)."""
        delay = self.settings.backoff_initial
        while True:
            try:
                if self._pool is None:
                    raise DatabaseUnavailable("no connection to PostgreSQL yet")
                result = await store(self._pool, events)
                self._writes_failing = False
                self._set_database(True)
                return result
            except DatabaseUnavailable as exc:
                self._writes_failing = True
                self._set_database(False)
                metrics.DB_RETRIES.inc()
                log.warning(
                    "batch not written, PostgreSQL unavailable; retrying",
                    extra={"error": str(exc), "retry_in": delay, "events": len(events)},
                )
            if self._stopping.is_set():
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            if self._stopping.is_set():
                return None
            delay = min(delay * 2, self.settings.backoff_max)

    @staticmethod
    def _refused_deliveries(result: Result, owners: dict[EventId, list[Delivery]]) -> list[Poison]:
        # The whole body is dead-lettered, as it came; its other events are stored already,
        # so replaying it after a fix is harmless.
        reasons: dict[int, Poison] = {}
        for refused in result.refused:
            for delivery in owners.get(identity(refused.event), []):
                seen = reasons.get(id(delivery))
                reason = refused.reason if seen is None else f"{seen.reason}; {refused.reason}"
                reasons[id(delivery)] = Poison(delivery, reason, refused.category)
        return list(reasons.values())

    # --- settling deliveries ---------------------------------------------------------------

    async def _dead_letter(self, poison: Sequence[Poison]) -> None:
        for item in poison:
            message = item.delivery.message
            headers = dict(message.headers or {})
            headers[broker.H_ERROR] = item.reason[:4000]
            headers[broker.H_ERROR_AT] = broker.utc_now_iso()
            headers[broker.H_ORIGINAL_ROUTING_KEY] = message.routing_key or ""
            log.warning(
                "dead-lettering",
                extra={"reason": item.reason[:500], "routing_key": message.routing_key},
            )
            try:
                await self.publisher.publish(
                    message.body, "", headers, message_id=message.message_id, dead_letter=True
                )
            except BrokerUnavailable as exc:
                # Not dead-lettered, so not acked: requeued, it comes back later (and after the
                # queue's delivery limit the broker dead-letters it itself).
                metrics.DEAD_LETTER_FAILURES.inc()
                log.warning("dead letter not published; requeueing", extra={"error": str(exc)})
                await self.acks.settle_one(item.delivery, requeue=True)
                continue
            metrics.DEAD_LETTERED.labels(item.category).inc()
            if await self.acks.settle_one(item.delivery, requeue=None):
                metrics.DELIVERIES.labels("dead_lettered").inc()


async def run(settings: WriterSettings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    writer = Writer(settings)
    await writer.start()
    await stop.wait()
    log.info("shutting down")
    await writer.stop()
