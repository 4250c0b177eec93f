"""Writer throughput: events/s from a pre-filled queue into PostgreSQL, beside a bare
consume-and-ack loop (aio-pika, same prefetch) draining an identically pre-filled queue.

Target (issue 2 §8): the writer reaches >= 70 % of the bare loop's rate.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson

from benchmarks.environment import fresh_database, fresh_vhost
from benchmarks.figures import Figure, record
from services.db_writer.app import Writer
from services.db_writer.settings import WriterSettings
from shared import broker
from shared.settings import Env

EXAMPLES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "turn"
EVENTS = int(os.environ.get("BENCH_WRITER_EVENTS", "50000"))
BATCH_SIZE = int(os.environ.get("BENCH_WRITER_BATCH_SIZE", "500"))
PREFETCH = 2 * BATCH_SIZE
NUMBER = "27600000000"


def _load(name: str) -> Any:
    return orjson.loads((EXAMPLES / name).read_bytes())


def workload(events: int) -> list[tuple[bytes, str, dict[str, Any]]]:
    """A realistic mix with unique ids: per 5 bodies, 2 inbound texts (a contact profile and a
    message each), 2 statuses and 1 outbound `turn` copy: 7 events per 5 bodies."""
    inbound = _load("webhook_inbound_text.json")
    outbound = _load("webhook_outbound_turn_subscription.json")
    status = _load("webhook_status_delivered.json")
    bodies: list[tuple[bytes, str, dict[str, Any]]] = []
    made, i = 0, 0
    while made < events:
        i += 1
        kind = i % 5
        if kind in (0, 1):
            wa_id = f"2782{i:08d}"
            inbound["contacts"][0]["wa_id"] = wa_id
            inbound["contacts"][0]["profile"]["name"] = f"Contact {i}"
            message = inbound["messages"][0]
            message["id"], message["from"] = f"wamid.IN{i}", wa_id
            message["timestamp"] = str(1735732800 + i)
            body, subscription, whatsapp_id, made = (
                orjson.dumps(inbound),
                "whatsapp",
                None,
                made + 2,
            )
        elif kind in (2, 3):
            entry = status["statuses"][0]
            entry["id"] = f"wamid.OUT{i - kind}"
            entry["status"] = "delivered" if kind == 2 else "read"
            body, subscription, whatsapp_id, made = orjson.dumps(status), "whatsapp", None, made + 1
        else:
            outbound["id"] = whatsapp_id = f"wamid.OUT{i - kind}"
            body, subscription, made = orjson.dumps(outbound), "turn", made + 1
        headers: dict[str, Any] = {
            broker.H_SOURCE: "webhook",
            broker.H_SUBSCRIPTION: subscription,
            broker.H_RECEIVED_AT: broker.utc_now_iso(),
            broker.H_DELIVERY_ID: broker.new_delivery_id(),
            broker.H_BUSINESS_NUMBER: NUMBER,
        }
        if whatsapp_id:
            headers[broker.H_WHATSAPP_ID] = whatsapp_id
        bodies.append((body, broker.webhook_route(subscription), headers))
    return bodies


async def fill(url: str, bodies: list[tuple[bytes, str, dict[str, Any]]]) -> float:
    """Publish every body (confirmed, as the gateway does); returns seconds taken."""
    publisher = broker.Publisher(url, broker.Topology(), confirm_timeout=30)
    await publisher.start(wait=True)
    started = time.perf_counter()
    try:
        for at in range(0, len(bodies), 1000):
            await asyncio.gather(
                *(publisher.publish(b, route, h) for b, route, h in bodies[at : at + 1000])
            )
    finally:
        await publisher.close()
    return time.perf_counter() - started


async def bare(url: str, total: int, *, ack_every: int = 1) -> float:
    """Consume and ack, nothing else: the ceiling. Returns seconds to drain.

    ack_every=1 acks each message; ack_every=BATCH_SIZE acks with multiple=True once per
    batch, as the writer does, which makes the stricter ceiling.
    """
    connection = await aio_pika.connect(url)
    done = asyncio.Event()
    seen = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        seen += 1
        if ack_every == 1:
            await message.ack()
        elif seen % ack_every == 0 or seen >= total:
            await message.ack(multiple=True)
        if seen >= total:
            done.set()

    try:
        started = time.perf_counter()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(broker.Topology().webhook_queue)
        await queue.consume(on_message)
        await done.wait()
        return time.perf_counter() - started
    finally:
        await connection.close()


async def writer(url: str, database_url: str, total: int) -> float:
    env = {
        "DATABASE_URL": database_url,
        "AMQP_URL": url,
        "BUSINESS_NUMBER_ID": NUMBER,
        "LOG_LEVEL": "WARNING",
        "PORT": "0",
        "HOST": "127.0.0.1",
        "WRITER_BATCH_SIZE": str(BATCH_SIZE),
        "WRITER_PREFETCH": str(PREFETCH),
    }
    service = Writer(WriterSettings.from_env(Env(env)))
    started = time.perf_counter()
    await service.start()
    try:
        # Polling a plain counter every 5 ms costs nothing measurable and needs no hook.
        while service.acked < total:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return time.perf_counter() - started
    finally:
        await service.stop()


async def count_rows(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            for table in ("webhook_events", "messages", "statuses")
        }
    finally:
        await conn.close()


async def measure() -> str:
    bodies = workload(EVENTS)
    print(f"{len(bodies)} bodies, ~{EVENTS} events, batch {BATCH_SIZE}, prefetch {PREFETCH}")
    with fresh_vhost() as url:
        fill_seconds = await fill(url, bodies)
        print(f"pre-filled in {fill_seconds:.1f}s", flush=True)
        bare_seconds = await bare(url, len(bodies))
        print(f"bare consume+ack: {len(bodies) / bare_seconds:,.0f} bodies/s", flush=True)
    with fresh_vhost() as url:
        await fill(url, bodies)
        multi_seconds = await bare(url, len(bodies), ack_every=BATCH_SIZE)
        print(f"bare, multiple ack: {len(bodies) / multi_seconds:,.0f} bodies/s", flush=True)
    with fresh_vhost() as url, fresh_database() as database_url:
        await fill(url, bodies)
        writer_seconds = await writer(url, database_url, len(bodies))
        rows = await count_rows(database_url)
    total_events = rows["webhook_events"]
    print(f"writer: {len(bodies) / writer_seconds:,.0f} bodies/s, rows {rows}", flush=True)
    bare_rate = total_events / bare_seconds
    multi_rate = total_events / multi_seconds
    writer_rate = total_events / writer_seconds
    ratio = writer_rate / bare_rate
    strict = writer_rate / multi_rate
    record(
        Figure(
            "writer",
            throughput=writer_rate,
            unit="events/s",
            baseline="bare consume + ack",
            baseline_throughput=bare_rate,
        )
    )
    return (
        "## Writer\n\n"
        f"{len(bodies):,} webhook bodies ({total_events:,} events: inbound texts with their "
        "contact profile, delivered/read statuses, outbound `turn` copies; unique ids) "
        "pre-filled into the quorum queue `turnio.webhook` of a fresh vhost, drained once by a "
        "bare aio-pika consume-and-ack loop and once (identically pre-filled) by the writer "
        f"into a fresh database. Batch size {BATCH_SIZE}, prefetch {PREFETCH} for both.\n\n"
        "| consumer | seconds | events/s | share of bare |\n"
        "|---|---:|---:|---:|\n"
        f"| bare consume + ack each (the baseline) | {bare_seconds:.2f} | {bare_rate:,.0f} "
        "| 100 % |\n"
        f"| bare consume + one multiple-ack per {BATCH_SIZE} (stricter ceiling) | "
        f"{multi_seconds:.2f} | {multi_rate:,.0f} | {multi_rate / bare_rate:.0%} |\n"
        f"| writer (explode, 4 set-based upserts, commit, ack) | {writer_seconds:.2f} | "
        f"{writer_rate:,.0f} | **{ratio:.0%}** ({strict:.0%} of the stricter ceiling) |\n\n"
        f"Target >= 70 % of the bare rate: {'met' if ratio >= 0.7 else 'NOT met'}. The writer "
        "acks a committed batch with one multiple-ack where the tags allow it, which is why it "
        "can beat a loop that acks message by message. Rows written: "
        + ", ".join(f"{t} {n:,}" for t, n in rows.items())
        + ".\n"
    )


def run() -> str:
    return asyncio.run(measure())


if __name__ == "__main__":
    print(run())
